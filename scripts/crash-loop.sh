#!/usr/bin/env bash
# Whole-node crash loop (issue 18 item 3): over `tandem devnet --profile ci`, SIGKILLs one
# validator at a random instant of the slot N times and restarts it each time with
# `tandem run --config <its node.toml>`. After every restart it checks, and fails loudly naming
# what was wrong:
#   - its stores open and it becomes ready (/ready 200) within CRASH_READY_SECS (restart→ready
#     time recorded);
#   - no checkpointed data is lost: its checkpointed tip is not lower than before the kill and
#     every checkpoint it reported before the kill (tandem_getCheckpoint) has the same header hash;
#   - the slashing record holds: no other node counted an equivocation
#     (tandem_p2p_equivocations_total stays 0);
#   - its publisher loses no nonce: eth_getTransactionCount latest catches up with pending.
# At the end it scans L1 for the rollup's txs: at most one successful propose per L2 slot, no
# reverted propose from the victim, and the victim's publisher lands a propose again after its
# last restart. Not part of CI (~20 s per kill on a quiet machine).
#
#   scripts/crash-loop.sh [--kills N] [--victim validator-1] [--seed S]
#     CRASH_KEEP=1 keeps the work dir (logs, devnet); CRASH_TANDEM=BIN skips the build;
#     CRASH_READY_SECS (90) bounds restart→ready; touching CRASH_STOP_FILE ends the loop early
#     (the final checks and the summary still run).
set -euo pipefail

kills=100 victim=validator-1 seed="$RANDOM"
while [ $# -gt 0 ]; do
  case "$1" in
  --kills) kills="$2"; shift 2 ;;
  --victim) victim="$2"; shift 2 ;;
  --seed) seed="$2"; shift 2 ;;
  *) echo "crash-loop: unknown argument $1 (expected --kills N, --victim NAME, --seed S)" >&2; exit 2 ;;
  esac
done
case "$kills" in '' | *[!0-9]*) echo "crash-loop: --kills wants a number, got '$kills'" >&2; exit 2 ;; esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PATH="$root/.tools/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tandem/target}"
ready_secs="${CRASH_READY_SECS:-90}"

log() { printf 'crash-loop %s: %s\n' "$(date -u +%T)" "$*" >&2; }

work="$(mktemp -d -t tandem-crash.XXXXXX)"
devnet_pid="" victim_pid=""
cleanup() {
  for pid in $victim_pid $devnet_pid; do kill "$pid" 2>/dev/null || true; done
  for pid in $victim_pid $devnet_pid; do wait "$pid" 2>/dev/null || true; done
  if [ -n "${CRASH_KEEP:-}" ]; then log "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Polls `$1` (a shell condition) every 0.2 s until it holds or `$2` seconds pass.
wait_for() {
  local condition="$1" deadline=$((SECONDS + $2))
  until eval "$condition"; do
    [ "$SECONDS" -lt "$deadline" ] || { log "timed out waiting for: $condition"; return 1; }
    sleep 0.2
  done
}

mkdir -p "$work/bin"
if [ -z "${CRASH_TANDEM:-}" ]; then
  log "building tandem"
  # --workspace: the same feature set as the warm target (-p alone rebuilds RocksDB).
  cargo build -q --workspace --bins
fi
# A private copy: other checkouts sharing the target dir may rebuild the shared binary.
cp "${CRASH_TANDEM:-$CARGO_TARGET_DIR/debug/tandem}" "$work/bin/tandem"
tandem="$work/bin/tandem"

data="$work/devnet"
log "starting the devnet in $data (victim $victim, $kills kills, seed $seed)"
"$tandem" devnet --profile ci --data-dir "$data" --tx-rate 5 >"$work/devnet.log" 2>&1 &
devnet_pid=$!

check() { python3 "$root/scripts/crash-loop.py" "$data" "$victim" "$work/state.json" "$@"; }
wait_for "check pid >/dev/null 2>&1" 120
config="$data/$victim/node.toml"
[ -f "$config" ] || { log "FAIL: no config $config"; exit 1; }
log "waiting for every node to be ready and for a checkpoint on L1"
wait_for "check all-ready >/dev/null 2>&1" 180
wait_for "check checkpointed-at-least 2 >/dev/null 2>&1" 300
check init "$seed"

pid="$(check pid)"
restart_log="$data/$victim/logs/restarted.log"
for i in $(seq 1 "$kills"); do
  if [ -n "${CRASH_STOP_FILE:-}" ] && [ -e "$CRASH_STOP_FILE" ]; then
    log "stop file $CRASH_STOP_FILE: ending after $((i - 1)) kills"
    break
  fi
  # A random instant of the slot, at least 2 s after the last ready.
  delay="$(check next-kill-delay "$i")"
  sleep "$delay"
  check snapshot "$i"
  kill -9 "$pid"
  if [ "$pid" = "$victim_pid" ]; then wait "$pid" 2>/dev/null || true; fi
  wait_for "! kill -0 $pid 2>/dev/null" 30
  echo "=== crash-loop restart $i $(date -u +%FT%T.%NZ)" >>"$restart_log"
  t0="$(date +%s.%N)"
  "$tandem" run --config "$config" >>"$restart_log" 2>&1 &
  victim_pid=$!
  pid="$victim_pid"
  if ! wait_for "check ready >/dev/null 2>&1 || ! kill -0 $pid 2>/dev/null" "$ready_secs" || ! kill -0 "$pid" 2>/dev/null; then
    check violation "$i" "restart: not ready within ${ready_secs}s or exited; last log lines: $(tail -n 20 "$restart_log" | tr '\n' '|')"
    log "FAIL kill $i: the victim did not come back (see $restart_log)"
    tail -n 40 "$restart_log" >&2
    check summary || true
    exit 1
  fi
  t1="$(date +%s.%N)"
  check verify "$i" "$t0" "$t1" || { check summary || true; exit 1; }
done

log "last restart done; final L1 checks (the victim must land a propose again)"
# `final` also prints the summary; its status says whether any violation was recorded.
check final
