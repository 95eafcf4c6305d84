#!/usr/bin/env bash
# Counts the instructions sessiongate itself executes per request (user
# space: sessiongate, its libraries, libc), under valgrind's callgrind, for
# the benchmark targets (c) public, (d) logged-in session, (d') the same
# with headers.sign_key set (target "signed": the signed assertion's cost
# is its difference to "session"), (e) a new stored session, (s) a 4 KiB
# file from a static: route, (h) HTTP Basic on a basic_auth route with
# the cache of verified passwords warm (its one argon2 run falls in both
# runs of the target, so the difference leaves it out), (i) a FastCGI
# route to php-fpm when php-fpm is installed (sessiongate's share only, not
# php-fpm's), (x) a form POST with a same-origin Origin through the
# cross-site shield on the logged-in route and (y) the same POST on a route
# with csrf = "off" (x - y is the shield's cost), with nginx as a plain
# proxy and nginx serving the same file as the references. Unlike requests/s, the
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
# The anchor (bench/anchor/, a minimal hyper proxy that only forwards) is
# measured the same way on the public route's request, as the ceiling: every
# sessiongate row also shows its ratio to the anchor.
#
# Usage: bench/instructions.sh [BIN ...]   (default: target/release/sessiongate,
#        built first; several binaries are measured one after the other)
#        REQUESTS=5000 by default; TARGETS="public session signed new files basic fastcgi shield unshielded" by default.
#        Needs: valgrind, nginx, ab (apache2-utils), curl.
#
# The regression check, to run before finishing a change (a few minutes):
#        bench/instructions.sh --check [BIN]    public, session and new (and
#          the anchor) with REQUESTS=2000, compared with
#          bench/instructions.baseline; the change in percent per target;
#          exits 1 when a sessiongate target grew by more than THRESHOLD
#          percent (3 by default). The anchor's change is shown, not judged:
#          when it moved too, valgrind or the toolchain changed, not the code.
#        bench/instructions.sh --update [BIN]   the same, and writes the
#          numbers to bench/instructions.baseline (commit it with the change
#          that moved them).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=table
case ${1:-} in --check|--update) MODE=${1#--}; shift ;; esac
BASELINE=bench/instructions.baseline
THRESHOLD=${THRESHOLD:-3}
if [ "$MODE" = table ]; then
  REQUESTS=${REQUESTS:-5000}
  TARGETS=${TARGETS:-public session signed new files basic fastcgi shield unshielded}
else
  # The baseline's numbers hold for its REQUESTS and targets.
  REQUESTS=${REQUESTS:-2000}
  TARGETS="public session new"
  [ $# -le 1 ] || { echo "instructions: --$MODE measures one binary" >&2; exit 2; }
fi
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
build_anchor

UP=$(free_port)
upstream_nginx_conf "$WORK/up.conf" "$UP" "$WORK"
nginx -c "$WORK/up.conf" -g 'daemon off;' & PIDS+=($!)
wait_port "$UP"
KEY=instructions-key-0123456789-abcdefghijklmnop
FILES=$WORK/files
make_files "$FILES"
if [[ " $TARGETS " == *" fastcgi "* ]]; then
  php_fpm_start "$WORK" "" sg || TARGETS=${TARGETS/fastcgi/}
fi

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
  if [ "$target" = signed ]; then
    printf '[headers]\nsign_key = "%s"\n' "sign-$KEY" >> "$WORK/sg.toml"
  fi
  out=$WORK/callgrind.out
  rm -f "$out"*
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --config "$WORK/sg.toml" \
    > "$WORK/sg.log" 2> "$WORK/valgrind.log" & pid=$!
  wait_port "$port" 600   # valgrind starts slowly
  local hdr=() post=()
  case $target in
    public) url=/public/ ;;
    session|signed) url=/session/; hdr=(-H "Cookie: $(login_cookie "$port")") ;;
    new) url=/new/ ;;
    files) url=/files/4k.html ;;
    basic) url=/basic/; hdr=(-H "$BASIC_RIGHT") ;;
    fastcgi) url=/hello.php ;;
    shield|unshielded)
      [ "$target" = shield ] && url=/session/form || url=/unshielded/form
      printf 'comment=a+short+form&submit=Send' > "$WORK/form.txt"
      post=(-p "$WORK/form.txt" -T application/x-www-form-urlencoded)
      hdr=(-H "Cookie: $(login_cookie "$port")" -H "Origin: http://127.0.0.1:$port") ;;
  esac
  ab -q -k -c 8 -n "$count" "${hdr[@]}" "${post[@]}" "http://127.0.0.1:$port$url" > "$WORK/ab.log"
  grep -q '^Non-2xx' "$WORK/ab.log" && { echo "instructions: $target answered non-2xx" >&2; exit 1; }
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  awk '/^summary:|^totals:/ { print $2; exit }' "$out"*
}

# The same for nginx as a plain reverse proxy (one process, no master), the
# reference: its access log on, like sessiongate's. Path /files/4k.html is
# the static file, served by nginx itself.
nginx_total_for() { # path count
  local path=$1 count=$2 port pid out
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

# The same for the anchor, the minimal hyper proxy: the public route's request.
anchor_total_for() { # count
  local count=$1 port pid out
  port=$(free_port)
  out=$WORK/callgrind.out
  rm -f "$out"*
  valgrind --tool=callgrind --callgrind-out-file="$out" "$ANCHOR" "127.0.0.1:$port" "127.0.0.1:$UP" \
    2> "$WORK/valgrind.log" & pid=$!
  wait_port "$port" 600   # valgrind starts slowly
  ab -q -k -c 8 -n "$count" "http://127.0.0.1:$port/public/" > "$WORK/ab.log"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  awk '/^summary:|^totals:/ { print $2; exit }' "$out"*
}

# Instructions per request: the difference of a run of REQUESTS and one of
# 2 x REQUESTS, divided by REQUESTS.
per_request() { # function args... (the count is appended)
  local one two
  one=$("$@" "$REQUESTS")
  two=$("$@" $((2 * REQUESTS)))
  echo $(((two - one) / REQUESTS))
}
ANCHOR_IPR=$(per_request anchor_total_for)

if [ "$MODE" != table ]; then
  declare -A NOW=([anchor]=$ANCHOR_IPR)
  for target in $TARGETS; do NOW[$target]=$(per_request total_for "$BIN" "$target"); done
  if [ "$MODE" = update ]; then
    { echo "# Instructions per request (bench/instructions.sh --update), REQUESTS=$REQUESTS,"
      echo "# $(date +%F), $(valgrind --version), $(rustc --version 2>/dev/null | cut -d' ' -f1-2)."
      echo "# target instructions"
      for target in anchor $TARGETS; do echo "$target ${NOW[$target]}"; done
    } > "$BASELINE"
    echo "instructions: wrote $BASELINE" >&2
  fi
  [ -f "$BASELINE" ] || { echo "instructions: no $BASELINE (run with --update)" >&2; exit 2; }
  printf '| target | baseline | now | change | vs anchor |\n|---|---:|---:|---:|---:|\n'
  grown=()
  for target in anchor $TARGETS; do
    was=$(awk -v t="$target" '$1 == t { print $2 }' "$BASELINE")
    [ -n "$was" ] || { echo "instructions: $target is not in $BASELINE" >&2; exit 2; }
    now=${NOW[$target]}
    change=$(echo "scale=4; ($now - $was) * 100 / $was" | bc)
    printf '| %s | %d | %d | %+.1f%% | %.2fx |\n' "$target" "$was" "$now" "$change" \
      "$(echo "$now / $ANCHOR_IPR" | bc -l)"
    if [ "$target" != anchor ] && [ "$(echo "$change > $THRESHOLD" | bc)" = 1 ]; then
      grown+=("$target")
    fi
  done
  if [ ${#grown[@]} -gt 0 ]; then
    echo "instructions: grew by more than $THRESHOLD% since the baseline: ${grown[*]}" >&2
    exit 1
  fi
  exit 0
fi

ratio() { printf '%.2fx' "$(echo "$1 / $ANCHOR_IPR" | bc -l)"; }
printf '| build | target | instructions per request | vs anchor |\n|---|---|---:|---:|\n'
printf '| anchor (ceiling) | plain proxy | %d | 1.00x |\n' "$ANCHOR_IPR"
for ref in "plain proxy|/public/" "4 KiB static file|/files/4k.html"; do
  ipr=$(per_request nginx_total_for "${ref#*|}")
  printf '| nginx (reference) | %s | %d | %s |\n' "${ref%|*}" "$ipr" "$(ratio "$ipr")"
done
for bin in "$@"; do
  for target in $TARGETS; do
    ipr=$(per_request total_for "$bin" "$target")
    printf '| %s | %s | %d | %s |\n' "$(basename "$bin")" "$target" "$ipr" "$(ratio "$ipr")"
  done
done
