//! World state and execution: the forkable, RocksDB-backed Merkle state over accounts, stateless and
//! stateful tx validation, the tx pool, the block builder the sequencer uses and the re-executor
//! validators use to check proposals.
