#!/usr/bin/env bash
# HTTP Basic on a `basic_auth` route, measured two ways on the same fast
# upstream as bench/run.sh:
#
#   1. Cost per request: (c) a public route, and (h) the same request with
#      `Authorization: Basic` on a basic_auth route, right password, cache
#      warm (what a script calling every second costs between the one
#      argon2 verification a minute it pays).
#   2. No stall: the latency of public requests alone, and while a flood of
#      wrong passwords keeps argon2 busy (every one of them a verification:
#      the throttle is set out of reach, the worst case), side by side.
#
# sessiongate runs with one worker thread, pinned with the upstream to one
# core; wrk has the other. Pinned to one core, the process verifies one
# password at a time (the verification pool is as wide as the cores it may
# use), on a blocking thread that shares the core with the worker: this
# measures whether the worker still gets its turn. Each target runs REPEAT
# times in rounds; the median round is kept.
#
# Usage: bench/basic_auth.sh   (DURATION=10s CONNS=64 FLOOD_CONNS=32 REPEAT=3)
#        Needs: nginx, wrk, curl.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
FLOOD_CONNS=${FLOOD_CONNS:-32}
REPEAT=${REPEAT:-3}
SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
KEY=bench-key-0123456789-abcdefghijklmnopqrstuvwxyz

for tool in nginx wrk taskset curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install -y nginx wrk curl)" >&2; exit 1; }
done

cargo build --release --quiet
BIN=$PWD/target/release/sessiongate
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
. bench/common.sh

UP=$(free_port); SG=$(free_port)
upstream_nginx_conf "$WORK/up.conf" "$UP" "$WORK"
taskset -c "$SERVER_CORE" nginx -c "$WORK/up.conf" -g 'daemon off;' & PIDS+=($!)

sg_basic_conf "$WORK/sg.toml" "$SG" "$WORK/users" 1
taskset -c "$SERVER_CORE" "$BIN" --config "$WORK/sg.toml" > "$WORK/sg.log" 2>&1 & SG_PID=$!; PIDS+=($SG_PID)
wait_port "$UP"; wait_port "$SG"

RIGHT=$BASIC_RIGHT
WRONG=$BASIC_WRONG
code=$(curl -s -o /dev/null -w '%{http_code}' -H "$RIGHT" "http://127.0.0.1:$SG/basic/")
[ "$code" = 200 ] || { echo "bench: the right password got $code" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' -H "$WRONG" "http://127.0.0.1:$SG/basic/")
[ "$code" = 401 ] || { echo "bench: a wrong password got $code" >&2; exit 1; }

# One wrk run: prints "rps p50_ms p99_ms non2xx".
wrk_once() { # conns duration url [header]
  local cmd=(wrk -t1 -c"$1" -d"$2" --latency)
  [ -n "${4:-}" ] && cmd+=(-H "$4")
  taskset -c "$LOAD_CORE" "${cmd[@]}" "$3" | awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    $1=="50%" { p50=ms($2) } $1=="99%" { p99=ms($2) } $1=="Requests/sec:" { rps=$2 }
    /Non-2xx/ { bad=$NF }
    END { printf "%.0f %.3f %.3f %s\n", rps, p50, p99, (bad==""?0:bad) }'
}

# The flood runs a little longer than the measurement it surrounds.
secs=${DURATION%s}
FLOOD_DURATION=$((secs + 2))s
flooded() { # conns url
  wrk_once "$FLOOD_CONNS" "$FLOOD_DURATION" "http://127.0.0.1:$SG/basic/" "$WRONG" > "$WORK/flood.out" &
  local flood=$!
  sleep 1
  wrk_once "$1" "$DURATION" "$2"
  wait "$flood"
  cat "$WORK/flood.out" >&2
}

echo "bench: $(nproc) cores, wrk -c$CONNS -d$DURATION, flood -c$FLOOD_CONNS, $REPEAT rounds, servers on core $SERVER_CORE, wrk on core $LOAD_CORE" >&2
declare -A RUNS
LABELS=(
  "(c) public route"
  "(h) basic_auth route, Basic, cache warm"
  "(p) public, quiet (8 connections)"
  "(p+) public, during a wrong-password flood"
)
for round in $(seq 1 "$REPEAT"); do
  for label in "${LABELS[@]}"; do
    case $label in
      "(c)"*) result=$(wrk_once "$CONNS" "$DURATION" "http://127.0.0.1:$SG/public/") ;;
      "(h)"*) result=$(wrk_once "$CONNS" "$DURATION" "http://127.0.0.1:$SG/basic/" "$RIGHT") ;;
      "(p)"*) result=$(wrk_once 8 "$DURATION" "http://127.0.0.1:$SG/public/") ;;
      "(p+)"*) result=$(flooded 8 "http://127.0.0.1:$SG/public/" 2> "$WORK/flood.round")
               flood=$(cat "$WORK/flood.round"); RUNS[flood]+="$flood"$'\n'
               printf '  round %s %-44s %s\n' "$round" "(flood of wrong passwords)" "$flood" >&2 ;;
    esac
    RUNS[$label]+="$result"$'\n'
    printf '  round %s %-44s %s\n' "$round" "$label" "$result" >&2
  done
done

median() { printf '%s' "$1" | sort -n | awk '{ a[NR]=$0 } END { print a[int((NR+1)/2)] }'; }
printf '\n| target | req/s | p50 ms | p99 ms | non-2xx |\n|---|---:|---:|---:|---:|\n'
for label in "${LABELS[@]}" flood; do
  read -r rps p50 p99 bad <<<"$(median "${RUNS[$label]}")"
  name=$label; [ "$label" = flood ] && name="(flood) wrong passwords, $FLOOD_CONNS connections: each a verification"
  printf '| %s | %s | %s | %s | %s |\n' "$name" "$rps" "$p50" "$p99" "$bad"
done
echo
echo "sessiongate RSS at the end: $(awk '/VmRSS/ { printf "%.1f", $2/1024 }' "/proc/$SG_PID/status") MB"
