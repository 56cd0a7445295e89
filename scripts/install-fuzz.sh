#!/usr/bin/env bash
# Installs the fuzzer for scripts/fuzz.sh: cargo-afl (crates.io, pinned) and the AFL++ it builds
# from its bundled source (`cargo afl config --build`: afl-fuzz and the LLVM runtime, on the
# stable toolchain). Idempotent: a second run finds both in place and touches no network.
set -euo pipefail

CARGO_AFL_VERSION="0.18.2" # also the `afl` crate version in fuzz/Cargo.toml

log() { printf 'install-fuzz: %s\n' "$*" >&2; }

if [ "$(cargo afl --version 2>/dev/null | awk '{print $2}')" != "$CARGO_AFL_VERSION" ]; then
  log "installing cargo-afl $CARGO_AFL_VERSION"
  cargo install cargo-afl --version "$CARGO_AFL_VERSION" --locked
fi
# `config --build` refuses when AFL++ is already built for this rustc; that is the state we want.
if ! out="$(cargo afl config --build 2>&1)"; then
  if ! grep -q "already built" <<<"$out"; then
    printf '%s\n' "$out" >&2
    exit 1
  fi
fi
