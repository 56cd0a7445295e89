//! alloy bindings generated from the committed artifact (`contracts/out/Rollup.json`), so the
//! Rust side never needs solc.

#![allow(missing_docs, unreachable_pub, clippy::too_many_arguments)]

alloy::sol!(
    #[sol(rpc, all_derives)]
    Rollup,
    "contracts/out/Rollup.json"
);
