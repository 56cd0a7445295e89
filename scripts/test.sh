#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy (warnings are errors) and all tests.
# Works on a fresh machine: installs the pinned L1 tools and cargo-nextest when missing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/install-tools.sh
export PATH="$root/.tools/bin:$PATH"
# One target dir outside the clone, so CI on a fresh clone reuses earlier builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tandem/target}"

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test: installing cargo-nextest" >&2
  cargo install cargo-nextest --locked
fi

profile=default
[ "${CI:-}" = "true" ] && profile=ci

cargo fmt --all -- --check
# The committed contract artifact must be exactly what the pinned solc makes of the source.
node scripts/build-contracts.mjs --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Solidity-level fuzz, invariant and fairness tests of the contract (pinned forge, solcjs shim).
# forge's out and cache dirs are per checkout (keyed by its path): two worktrees sharing the
# target dir must not overwrite each other's build.
forge_dir="$CARGO_TARGET_DIR/forge/$(printf %s "$root" | cksum | cut -d' ' -f1)"
FOUNDRY_SOLC="$root/.tools/bin/forge-solc" \
  FOUNDRY_OUT="$forge_dir/out" FOUNDRY_CACHE_PATH="$forge_dir/cache" \
  forge test --root l1
# The workspace run includes tandem-fuzz's replay tests: the committed corpus, crash regressions
# and seed mutations through every fuzz target (fuzz/README.md; `scripts/fuzz.sh` fuzzes).
cargo nextest run --workspace --locked --profile "$profile"
