#!/usr/bin/env bash
# Counts what one request to the static route costs the kernel: voluntary
# context switches per request (a thread giving up its core: every hand-off
# to tokio's blocking pool and back is some), and the threads the process
# ends with. sessiongate serves bench/common.sh's 4 KiB file from a static:
# route on one worker, pinned to one core; `ab -k -c 8` loads it from the
# other. The counts are read from /proc/PID/task/*/status before and after.
#
# Usage: bench/switches.sh                 (target/release/sessiongate)
#        BIN=path COMPARE_BIN=path bench/switches.sh   (two builds, one after the other)
#        REQUESTS=50000 bench/switches.sh
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-50000}
SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
KEY=bench-key-0123456789-abcdefghijklmnopqrstuvwxyz
command -v ab >/dev/null || { echo "bench: ab is missing (apt-get install -y apache2-utils)" >&2; exit 1; }
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=$PWD/target/release/sessiongate
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
. bench/common.sh
FILES=$WORK/files
make_files "$FILES"
# The static route keeps a small file in memory once it has been unchanged
# for 2 s: let it settle, so that the counts are of the steady state.
sleep 3
UP=$(free_port)   # no upstream runs: only the static route is loaded

switches() { # pid: voluntary context switches of all its threads
  cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ { s += $2 } END { print s }'
}

measure() { # label binary
  local port pid before after threads
  port=$(free_port)
  sg_conf "$WORK/$1.toml" "$port" 'kind = "memory"' 1
  taskset -c "$SERVER_CORE" "$2" --config "$WORK/$1.toml" > "$WORK/$1.log" & pid=$!; PIDS+=($pid)
  wait_port "$port"
  cmp -s "$FILES/4k.html" <(curl -s "http://127.0.0.1:$port/files/4k.html") \
    || { echo "bench: /files/4k.html is not served by $1" >&2; exit 1; }
  taskset -c "$LOAD_CORE" ab -q -k -c 8 -n 2000 "http://127.0.0.1:$port/files/4k.html" >/dev/null   # warm up
  before=$(switches "$pid")
  local rps
  rps=$(taskset -c "$LOAD_CORE" ab -q -k -c 8 -n "$REQUESTS" "http://127.0.0.1:$port/files/4k.html" | awk '/^Requests per second/ { print $4 }')
  after=$(switches "$pid")
  threads=$(ls /proc/"$pid"/task | wc -l)
  printf '| %s | %s | %.2f | %s |\n' "$1" "$rps" "$(echo "($after - $before) / $REQUESTS" | bc -l)" "$threads"
  kill "$pid"
}

printf '| build | req/s (ab -k -c 8) | voluntary switches / request | threads at the end |\n|---|---:|---:|---:|\n'
measure this "$BIN"
[ -n "${COMPARE_BIN:-}" ] && measure compared "$COMPARE_BIN"
exit 0
