//! The L1 side of tandem: the Rollup contract (Solidity source and its compiled artifact), alloy
//! bindings, deployment, typed decoding of the contract's custom errors, the builders of the
//! state overrides a pipelined simulation needs (tips word, parent archive, parent fee header),
//! and the anvil test harness shared by the other crates' tests.
