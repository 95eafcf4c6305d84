#!/usr/bin/env bash
# Counts the instructions sessiongate itself executes per request (user
# space: sessiongate, its libraries, libc), under valgrind's callgrind, for
# the benchmark targets (c) public, (d) logged-in session and (e) a new
# stored session, and (i) a FastCGI route to php-fpm when php-fpm is
# installed (sessiongate's share only, not php-fpm's). Unlike requests/s, the count does not move with what else
# the shared machine is doing, so it tells whether a change made the request
# path cheaper by a few percent. The kernel's share (the loopback TCP work,
# about as large as nginx's) is not counted.
#
# Each target is served twice to the same keep-alive connections, REQUESTS
# and then 2 x REQUESTS requests; the difference of the two totals, divided
# by REQUESTS, is the cost of one request without the start and the
# connection set-up.
#
# Usage: bench/instructions.sh [BIN ...]   (default: target/release/sessiongate,
#        built first; several binaries are measured one after the other)
#        REQUESTS=5000 by default. Needs: valgrind, nginx, ab (apache2-utils), curl.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-5000}
for tool in valgrind callgrind_control nginx ab curl; do
  command -v "$tool" >/dev/null || { echo "instructions: $tool is missing" >&2; exit 1; }
done
if [ $# -eq 0 ]; then
  cargo build --release --quiet
  set -- "$PWD/target/release/sessiongate"
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
. bench/common.sh

UP=$(free_port)
upstream_nginx_conf "$WORK/up.conf" "$UP" "$WORK"
nginx -c "$WORK/up.conf" -g 'daemon off;' & PIDS+=($!)
wait_port "$UP"
KEY=instructions-key-0123456789-abcdefghijklmnop
TARGETS=(public session new)
php_fpm_start "$WORK" "" sg && TARGETS+=(fastcgi)

# Total instructions of one proxy run that served `count` requests of a target.
total_for() { # bin target count
  local bin=$1 target=$2 count=$3 port pid out
  port=$(free_port)
  if [ "$target" = fastcgi ]; then
    sg_fastcgi_conf "$WORK/sg.toml" "$port" "$FPM_PORT_sg" "$WORK" 1
  else
    sg_conf "$WORK/sg.toml" "$port" 'kind = "memory"' 1
  fi
  out=$WORK/callgrind.out
  rm -f "$out"*
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --config "$WORK/sg.toml" \
    > "$WORK/sg.log" 2> "$WORK/valgrind.log" & pid=$!
  wait_port "$port" 600   # valgrind starts slowly
  local hdr=()
  case $target in
    public) url=/public/ ;;
    session) url=/session/; hdr=(-H "Cookie: $(login_cookie "$port")") ;;
    new) url=/new/ ;;
    fastcgi) url=/hello.php ;;
  esac
  ab -q -k -c 8 -n "$count" "${hdr[@]}" "http://127.0.0.1:$port$url" > "$WORK/ab.log"
  grep -q '^Non-2xx' "$WORK/ab.log" && { echo "instructions: $target answered non-2xx" >&2; exit 1; }
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  awk '/^summary:|^totals:/ { print $2; exit }' "$out"*
}

# The same for nginx as a plain reverse proxy (one process, no master), the
# reference: its access log on, like sessiongate's.
nginx_total_for() { # count
  local count=$1 port pid out
  port=$(free_port)
  cat > "$WORK/px.conf" <<NGINX
master_process off; daemon off; worker_processes 1; pid $WORK/px.pid; error_log $WORK/px.err warn;
events { worker_connections 4096; }
http { access_log $WORK/px.access.log; keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$UP; keepalive 128; }
  server { listen 127.0.0.1:$port;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection '';
                 proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$remote_addr; } } }
NGINX
  out=$WORK/callgrind.out
  rm -f "$out"*
  valgrind --tool=callgrind --callgrind-out-file="$out" nginx -c "$WORK/px.conf" 2> "$WORK/valgrind.log" & pid=$!
  wait_port "$port" 600   # valgrind starts slowly
  ab -q -k -c 8 -n "$count" "http://127.0.0.1:$port/public/" > "$WORK/ab.log"
  kill -QUIT "$pid"; wait "$pid" 2>/dev/null || true
  awk '/^summary:|^totals:/ { print $2; exit }' "$out"*
}

printf '| build | target | instructions per request |\n|---|---|---:|\n'
one=$(nginx_total_for "$REQUESTS")
two=$(nginx_total_for $((2 * REQUESTS)))
printf '| nginx (reference) | plain proxy | %d |\n' $(((two - one) / REQUESTS))
for bin in "$@"; do
  for target in "${TARGETS[@]}"; do
    one=$(total_for "$bin" "$target" "$REQUESTS")
    two=$(total_for "$bin" "$target" $((2 * REQUESTS)))
    printf '| %s | %s | %d |\n' "$(basename "$bin")" "$target" $(((two - one) / REQUESTS))
  done
done
