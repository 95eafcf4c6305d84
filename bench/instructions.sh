#!/usr/bin/env bash
# Counts the instructions sessiongate itself executes per request (user
# space: sessiongate, its libraries, libc), under valgrind's callgrind, for
# the benchmark targets (c) public, (d) logged-in session, (e) a new
# stored session, (s) a 4 KiB file from a static: route, (h) HTTP Basic
# on a basic_auth route with the cache of verified passwords warm (its one
# argon2 run falls in both runs of the target, so the difference leaves it
# out) and (i) a FastCGI route to php-fpm when php-fpm is installed
# (sessiongate's share only, not php-fpm's), with nginx as a plain proxy and
# nginx serving the same file as the references. Unlike requests/s, the
# count does not move with what else the shared machine is doing, so it
# tells whether a change made the request
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
#        REQUESTS=5000 by default; TARGETS="public session new files basic fastcgi" by default.
#        Needs: valgrind, nginx, ab (apache2-utils), curl.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-5000}
TARGETS=${TARGETS:-public session new files basic fastcgi}
for tool in valgrind callgrind_control nginx ab curl; do
  command -v "$tool" >/dev/null || { echo "instructions: $tool is missing" >&2; exit 1; }
done
if [ $# -eq 0 ]; then
  cargo build --release --quiet
  set -- "$PWD/target/release/sessiongate"
fi
BIN=$1   # hashes the basic target's password

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
FILES=$WORK/files
make_files "$FILES"
php_fpm_start "$WORK" "" sg || TARGETS=${TARGETS/fastcgi/}

# Total instructions of one proxy run that served `count` requests of a target.
total_for() { # bin target count
  local bin=$1 target=$2 count=$3 port pid out
  port=$(free_port)
  if [ "$target" = basic ]; then
    sg_basic_conf "$WORK/sg.toml" "$port" "$WORK/users" 1
  elif [ "$target" = fastcgi ]; then
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
    files) url=/files/4k.html ;;
    basic) url=/basic/; hdr=(-H "$BASIC_RIGHT") ;;
    fastcgi) url=/hello.php ;;
  esac
  ab -q -k -c 8 -n "$count" "${hdr[@]}" "http://127.0.0.1:$port$url" > "$WORK/ab.log"
  grep -q '^Non-2xx' "$WORK/ab.log" && { echo "instructions: $target answered non-2xx" >&2; exit 1; }
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  awk '/^summary:|^totals:/ { print $2; exit }' "$out"*
}

# The same for nginx as a plain reverse proxy (one process, no master), the
# reference: its access log on, like sessiongate's. Path /files/4k.html is
# the static file, served by nginx itself.
nginx_total_for() { # count path
  local count=$1 path=$2 port pid out
  port=$(free_port)
  cat > "$WORK/px.conf" <<NGINX
master_process off; daemon off; worker_processes 1; pid $WORK/px.pid; error_log $WORK/px.err warn;
events { worker_connections 4096; }
http { access_log $WORK/px.access.log; keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$UP; keepalive 128; }
  server { listen 127.0.0.1:$port;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection '';
                 proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$remote_addr; }
    location /files/ { alias $FILES/; } } }
NGINX
  out=$WORK/callgrind.out
  rm -f "$out"*
  valgrind --tool=callgrind --callgrind-out-file="$out" nginx -c "$WORK/px.conf" 2> "$WORK/valgrind.log" & pid=$!
  wait_port "$port" 600   # valgrind starts slowly
  ab -q -k -c 8 -n "$count" "http://127.0.0.1:$port$path" > "$WORK/ab.log"
  kill -QUIT "$pid"; wait "$pid" 2>/dev/null || true
  awk '/^summary:|^totals:/ { print $2; exit }' "$out"*
}

printf '| build | target | instructions per request |\n|---|---|---:|\n'
for ref in "plain proxy|/public/" "4 KiB static file|/files/4k.html"; do
  one=$(nginx_total_for "$REQUESTS" "${ref#*|}")
  two=$(nginx_total_for $((2 * REQUESTS)) "${ref#*|}")
  printf '| nginx (reference) | %s | %d |\n' "${ref%|*}" $(((two - one) / REQUESTS))
done
for bin in "$@"; do
  for target in $TARGETS; do
    one=$(total_for "$bin" "$target" "$REQUESTS")
    two=$(total_for "$bin" "$target" $((2 * REQUESTS)))
    printf '| %s | %s | %d |\n' "$(basename "$bin")" "$target" $(((two - one) / REQUESTS))
  done
done
