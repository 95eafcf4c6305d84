#!/usr/bin/env bash
# Time to first page: a fresh clone, a build with a cold target directory,
# and the demo's first page, as a newcomer meets them. The cargo registry is
# left as it is (warm when the crates were downloaded before), so this
# measures compiling, not the network.
#
# Usage: bench/first-page.sh [CARGO_BUILD_ARGS...]   (default: nothing, the
#   dev profile of `cargo run`; e.g. `--release`, `--profile dist`)
# REPO=path-or-url to clone (default: this checkout). The demo listens on
# 127.0.0.1:8080, which must be free.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=${REPO:-$PWD}
work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

now() { date +%s.%N; }
t0=$(now)
git clone --quiet "$repo" "$work/sessiongate"
t1=$(now)
cd "$work/sessiongate"
export CARGO_TARGET_DIR="$work/target"
cargo build --locked --quiet "$@"
t2=$(now)
bin=$(find "$CARGO_TARGET_DIR" -maxdepth 2 -type f -name sessiongate -perm -u+x | head -n 1)
"$bin" >"$work/demo.log" 2>&1 &
pid=$!
until curl -fsS -o /dev/null http://127.0.0.1:8080/ 2>/dev/null; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/demo.log" >&2; exit 1; }
  sleep 0.05
done
t3=$(now)
printf 'build args: %s\n' "${*:-(dev profile)}"
printf 'clone %.1fs  build %.1fs  start to first page %.2fs  total %.1fs  binary %s bytes\n' \
  "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$(echo "$t3 - $t2" | bc)" \
  "$(echo "$t3 - $t0" | bc)" "$(stat -c %s "$bin")"
