//! The chain store: blocks, checkpoints, proposed checkpoints and chain tips on RocksDB, kept in step
//! with L1 (sync, promotion and eviction of proposed checkpoints, pruning, reorgs).
