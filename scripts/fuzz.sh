#!/usr/bin/env bash
# Fuzzing of every decoder (fuzz/README.md). Usage:
#   scripts/fuzz.sh replay             corpus, regressions and seed mutations as tests (CI's part)
#   scripts/fuzz.sh build              the AFL++ harness (installs cargo-afl when missing)
#   scripts/fuzz.sh run [TARGET...]    AFL++ on each target in turn (default: all), until
#                                      FUZZ_EXECS executions (default 10 M) or FUZZ_SECONDS
#   scripts/fuzz.sh smoke [TARGET...]  a few seconds of AFL++ per target (FUZZ_SECONDS=5)
#   scripts/fuzz.sh keep [TARGET...]   a run's queue into fuzz/corpus/*/cov-* (replayed in CI)
#   scripts/fuzz.sh seeds              regenerate fuzz/corpus/*/seed-* from the encoders
# Targets run one at a time under `nice -n ${FUZZ_NICE:-19}`: the machine is shared. Outputs go
# to $FUZZ_OUT (default ~/.cache/tandem/fuzz-out/<target>); figures to $FUZZ_OUT/summary.tsv.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tandem/target}"
# The instrumented build has its own target dir: its RUSTFLAGS differ from every normal build.
afl_target_dir="${FUZZ_TARGET_DIR:-$HOME/.cache/tandem/fuzz-target}"
out_root="${FUZZ_OUT:-$HOME/.cache/tandem/fuzz-out}"
nice_level="${FUZZ_NICE:-19}"
harness="$afl_target_dir/debug/tandem-fuzz-afl"

log() { printf 'fuzz: %s\n' "$*" >&2; }

build() {
  bash scripts/install-fuzz.sh
  # RocksDB's C++ is not instrumented (only Rust is); reuse the normal build's static library
  # when there is one rather than compiling it again (librocksdb-sys honours these variables).
  if [ -z "${ROCKSDB_LIB_DIR:-}" ]; then
    lib="$(ls -t "$CARGO_TARGET_DIR"/debug/build/librocksdb-sys-*/out/librocksdb.a 2>/dev/null | head -n1 || true)"
    if [ -n "$lib" ]; then
      mkdir -p "$afl_target_dir/rocksdb"
      cp -u "$lib" "$afl_target_dir/rocksdb/librocksdb.a"
      export ROCKSDB_LIB_DIR="$afl_target_dir/rocksdb" ROCKSDB_STATIC=1
    fi
  fi
  CARGO_TARGET_DIR="$afl_target_dir" nice -n "$nice_level" \
    cargo afl build --locked -p tandem-fuzz --features afl --bin tandem-fuzz-afl
}

fuzz_one() {
  local target="$1" out="$out_root/$1"
  local -a limit=(-E "${FUZZ_EXECS:-10000000}")
  [ -n "${FUZZ_SECONDS:-}" ] && limit+=(-V "$FUZZ_SECONDS")
  rm -rf "$out"
  mkdir -p "$out"
  log "$target: ${limit[*]}"
  # No UI (logs), no core binding (shared machine), crashes need no core_pattern change.
  AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
    nice -n "$nice_level" cargo afl fuzz "${limit[@]}" -i "fuzz/corpus/$target" -o "$out" \
    -- "$harness" "$target" >"$out/afl.log" 2>&1 || {
    tail -n 30 "$out/afl.log" >&2
    return 1
  }
  local stats="$out/default/fuzzer_stats"
  stat() { awk -F' *: *' -v key="$1" '$1 == key { print $2 }' "$stats"; }
  printf '%s\t%s\t%s\t%s\t%s/%s\t%s\t%s\t%s\n' "$target" "$(stat execs_done)" \
    "$(stat execs_per_sec)" "$(stat run_time)" "$(stat edges_found)" "$(stat total_edges)" \
    "$(stat bitmap_cvg)" "$(stat corpus_count)" "$(stat saved_crashes)" | tee -a "$out_root/summary.tsv"
  if compgen -G "$out/default/crashes/id:*" >/dev/null; then
    log "$target: crashes in $out/default/crashes: reproduce with $harness $target < FILE," \
      "fix, and add the input under fuzz/regressions/$target/"
  fi
}

run() {
  [ -x "$harness" ] || build
  mkdir -p "$out_root"
  [ -f "$out_root/summary.tsv" ] ||
    printf 'target\texecs\texecs/s\tseconds\tedges\tcoverage\tcorpus\tcrashes\n' >"$out_root/summary.tsv"
  local failed=0 target targets=("$@")
  [ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <("$harness" --list)
  for target in "${targets[@]}"; do
    fuzz_one "$target" || failed=1
  done
  return "$failed"
}

# A run's queue (each input added coverage when found), named by content, replaces the corpus's
# cov-* inputs; the replay test then runs them in CI.
keep() {
  local target targets=("$@")
  [ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <("$harness" --list)
  for target in "${targets[@]}"; do
    local queue="$out_root/$target/default/queue"
    [ -d "$queue" ] || { log "$target: no queue in $queue"; continue; }
    rm -f "fuzz/corpus/$target"/cov-*
    local file
    for file in "$queue"/id:*; do
      cp "$file" "fuzz/corpus/$target/cov-$(sha256sum "$file" | cut -c1-16)"
    done
    log "$target: $(ls "fuzz/corpus/$target" | grep -c '^cov-') inputs kept"
  done
}

case "${1:-}" in
  replay)
    cargo nextest run --locked -p tandem-fuzz --profile "${NEXTEST_PROFILE:-default}" ;;
  build) build ;;
  run) shift; run "$@" ;;
  smoke) shift; FUZZ_SECONDS="${FUZZ_SECONDS:-5}" run "$@" ;;
  keep) shift; keep "$@" ;;
  seeds) cargo run --locked -p tandem-fuzz --bin tandem-fuzz-seeds -- fuzz/corpus ;;
  *) sed -n '2,11p' "$0" >&2; exit 2 ;;
esac
