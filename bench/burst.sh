#!/usr/bin/env bash
# Memory after a burst of connections: sessiongate's RSS at rest, during a
# burst of CONNS (10,000 by default) keep-alive connections that each make
# requests to the public route for SECONDS (5), and then after the
# connections have closed (at once, and again after SETTLE seconds, 10),
# with nginx (one worker, a plain proxy) beside it for reference. The
# public route makes no sessions, so what stays is what the connections
# themselves left behind.
#
# Usage: bench/burst.sh [BIN]   (default target/release/sessiongate, built first)
#        CONNS=10000 SECONDS_=5 SETTLE=10 WORKERS=1
#        Needs: nginx, wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh

CONNS=${CONNS:-10000}
DURATION=${SECONDS_:-5}
SETTLE=${SETTLE:-10}
WORKERS=${WORKERS:-1}
if [ $# -ge 1 ]; then BIN=$1; else cargo build --release --locked --quiet; BIN=target/release/sessiongate; fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

KEY=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
UP=$(free_port); SG=$(free_port); NGX=$(free_port)
upstream_nginx_conf "$WORK/up.conf" "$UP" "$WORK"
nginx -c "$WORK/up.conf" -g 'daemon off;' & pids+=($!)
cat > "$WORK/px.conf" <<NGINX
worker_processes 1; pid $WORK/px.pid; error_log $WORK/px.err warn; worker_rlimit_nofile 65536;
events { worker_connections 20000; }
http { access_log off;
  upstream backend { server 127.0.0.1:$UP; keepalive 128; }
  server { listen 127.0.0.1:$NGX backlog=16384;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ''; } } }
NGINX
nginx -c "$WORK/px.conf" -g 'daemon off;' & ngx=$!; pids+=($ngx)
sg_conf "$WORK/sg.toml" "$SG" 'kind = "memory"' "$WORKERS"
sed -i 's/^level = "info"/level = "warn"/' "$WORK/sg.toml"
"$BIN" --config "$WORK/sg.toml" > "$WORK/sg.log" 2>&1 & sg=$!; pids+=($sg)
wait_port "$UP"; wait_port "$SG"; wait_port "$NGX"

rss() { # pid... : the sum of their RSS in MB
  local kb=0 p
  for p in "$@"; do kb=$((kb + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status"))); done
  echo $((kb / 1024))
}
nginx_pids() { echo "$ngx $(pgrep -P "$ngx" | tr '\n' ' ')"; }

measure() { # name port pids...
  local name=$1 port=$2; shift 2
  curl -s -o /dev/null "http://127.0.0.1:$port/public/"
  local rest during after settled
  rest=$(rss "$@")
  wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$port/public/" > "$WORK/wrk.$name" 2>&1 &
  local w=$!
  sleep $((DURATION - 1))
  during=$(rss "$@")
  wait "$w" || true
  sleep 1; after=$(rss "$@")
  sleep "$SETTLE"; settled=$(rss "$@")
  local reqs; reqs=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.$name")
  printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$rest" "$during" "$after" "$settled" "$reqs"
}

echo "RSS in MB; $CONNS connections for ${DURATION}s; settled = ${SETTLE}s after they closed"
echo
echo "| server | at rest | during the burst | just after | settled | req/s |"
echo "|---|---:|---:|---:|---:|---:|"
measure "sessiongate (workers = $WORKERS)" "$SG" "$sg"
# shellcheck disable=SC2046
measure "nginx, 1 worker" "$NGX" $(nginx_pids)
