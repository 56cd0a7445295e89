#!/usr/bin/env bash
# Runs the long scenarios of the e2e harness (issue 18): real anvil and node processes, 12 s
# slots, a fault proxy on every p2p link. Each takes 2–8 minutes; they run one at a time.
#
#   scripts/scenarios.sh                 # every long scenario
#   scripts/scenarios.sh partition       # those whose name contains "partition"
#
# The CI scenario (ci_devnet_steady_state_then_a_silent_publisher) runs in scripts/test.sh.
# A failing scenario prints the temp dir holding every node's log and anvil's.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PATH="$root/.tools/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tandem/target}"

# The harness runs the `tandem` binary next to its test executable (or $TANDEM_BIN).
cargo build --workspace --bins --locked
# `--workspace` with a filter, not `-p tandem-e2e`: `-p` unifies features differently and
# rebuilds RocksDB's C++ in a target shared with workspace builds.
cargo nextest run --workspace -E 'package(tandem-e2e)' --locked --profile scenarios \
  --run-ignored only --no-capture ${1:+"$1"}
