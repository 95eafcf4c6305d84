#!/usr/bin/env bash
# Profiles sessiongate under load with perf: one target of bench/run.sh, (d)
# a logged-in session by default, with the proxy and a fast nginx upstream
# on one core and wrk on the other. Builds a release binary with frame
# pointers (in target/profiling, so the normal release build is untouched)
# and prints the hottest functions, self and inclusive.
#
# Usage: bench/profile.sh [session|public|new]   (SECONDS_=8 by default;
#        PERF_DATA=file keeps the recording for `perf report -i file`)
# Needs: nginx, wrk, curl, perf (Debian: linux-perf).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=${1:-session}
SECONDS_=${SECONDS_:-8}
for tool in nginx wrk curl perf taskset; do
  command -v "$tool" >/dev/null || { echo "profile: $tool is missing" >&2; exit 1; }
done

RUSTFLAGS="-C force-frame-pointers=yes" CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
  cargo build --release --quiet --target-dir target/profiling
BIN=$PWD/target/profiling/release/sessiongate
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
. bench/common.sh

UP=$(free_port); SG=$(free_port)
upstream_nginx_conf "$WORK/up.conf" "$UP" "$WORK"
KEY=profile-key-0123456789-abcdefghijklmnop
sg_conf "$WORK/sg.toml" "$SG" 'kind = "memory"
max_sessions = 5000000' 1
taskset -c 0 nginx -c "$WORK/up.conf" -g 'daemon off;' & PIDS+=($!)
taskset -c 0 "$BIN" --config "$WORK/sg.toml" > "$WORK/sg.log" & SG_PID=$!; PIDS+=($SG_PID)
wait_port "$UP"; wait_port "$SG"

COOKIE=$(login_cookie "$SG")
case $TARGET in
  session) URL="http://127.0.0.1:$SG/session/"; HDR=(-H "Cookie: $COOKIE") ;;
  public)  URL="http://127.0.0.1:$SG/public/"; HDR=() ;;
  new)     URL="http://127.0.0.1:$SG/new/"; HDR=() ;;
  *) echo "profile: target is session, public or new" >&2; exit 1 ;;
esac

perf record -F 3000 -g -p "$SG_PID" -o "$WORK/perf.data" -- sleep "$SECONDS_" >/dev/null 2>&1 &
taskset -c 1 wrk -t1 -c64 -d"${SECONDS_}s" "${HDR[@]}" "$URL" | grep Requests
wait $! 2>/dev/null || true
sleep 1
[ -n "${PERF_DATA:-}" ] && cp "$WORK/perf.data" "$PERF_DATA"
echo "== by shared object"
perf report -i "$WORK/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -5
echo "== hottest functions (self)"
perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | grep -v '\[k\]' | cut -c1-140 | head -25
echo "== sessiongate functions (inclusive)"
perf report -i "$WORK/perf.data" --children --sort symbol --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | grep 'sessiongate::' | cut -c1-140 | head -20
