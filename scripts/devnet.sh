#!/usr/bin/env bash
# The README's first command: a local pipelined-rollup network on the embedded defaults.
# Installs what it needs (the same installer the tests use: libclang, anvil), builds the node
# in release mode, and runs `tandem devnet` with the arguments given (e.g. --validators 4
# --fullnodes 1 --tx-rate 20 --profile devnet --data-dir ./devnet-data). Ctrl-C stops it;
# running it again resumes the same chain.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/install-tools.sh
export PATH="$root/.tools/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tandem/target}"
cargo build --release --locked -p tandem-node
exec "$CARGO_TARGET_DIR/release/tandem" devnet --anvil "$root/.tools/bin/anvil" "$@"
