#!/usr/bin/env bash
# Runs the fuzz targets one after the other, SECONDS each (default 60):
#
#     bash fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs a nightly toolchain and cargo-fuzz (cargo install cargo-fuzz --locked).
# What a run adds to fuzz/corpus/TARGET/ stays local (only the seed-* files
# are committed); a failing input is saved in fuzz/artifacts/TARGET/, and
# `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...` replays it.
# Ends with one line per target (executions, coverage) and fails when any
# target found something.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift $(($# > 0 ? 1 : 0))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

cargo +nightly fuzz build
logs=fuzz/artifacts/logs
mkdir -p "$logs"
failed=()
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  # -timeout: one input taking seconds is a finding too (a hang), not a slow run.
  options=("-max_total_time=$seconds" -timeout=10 -print_final_stats=1)
  [ -f "fuzz/dicts/$target.dict" ] && options+=("-dict=fuzz/dicts/$target.dict")
  echo "== $target: ${seconds}s"
  if ! cargo +nightly fuzz run "$target" -- "${options[@]}" >"$logs/$target.log" 2>&1; then
    failed+=("$target")
    tail -n 40 "$logs/$target.log"
  fi
done

echo "== summary (logs in $logs/)"
for target in "${targets[@]}"; do
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$target.log" | tail -n 1)
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$logs/$target.log" | tail -n 1 || true)
  printf '%-16s %12s runs  %s\n' "$target" "${runs:-?}" "${done_line#*DONE}"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "found something: ${failed[*]}" >&2
  exit 1
fi
