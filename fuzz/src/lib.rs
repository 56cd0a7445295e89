//! Coverage-guided fuzz targets for every decoder of untrusted or stored bytes, and the replay
//! of their corpora as ordinary tests.
//!
//! Each target takes raw bytes (for targets covering several decoders, the first byte picks
//! one) and asserts more than "no panic": what decodes re-encodes to a value that decodes
//! equal (and, for canonical codecs, to the very input bytes), and no decoder allocates beyond
//! its stated limits (see [`alloc`]). The AFL++ harness (`src/bin/afl.rs`, built by
//! `scripts/fuzz.sh`) and the tests (`tests/replay.rs`) run the same [`run`].

pub mod alloc;
mod body;
#[cfg(feature = "p2p")]
mod p2p;
pub mod seeds;
#[cfg(feature = "store")]
mod store;
mod wire;

use std::fmt;

/// One fuzz target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// proto's wire messages: txs, blocks, checkpoints, block and checkpoint proposals,
    /// attestations, tips (first byte picks the type).
    Wire,
    /// Snappy gossip payloads of each topic, decompressed and decoded as stage 1 of gossip
    /// validation does (first byte picks the topic).
    #[cfg(feature = "p2p")]
    Gossip,
    /// Req/resp frames (length prefix, snappy, prost) and their bodies (first byte picks the
    /// frame type and whether the input is a whole stream frame or a body).
    #[cfg(feature = "p2p")]
    ReqResp,
    /// The archiver's RocksDB values (first byte picks the record).
    #[cfg(feature = "store")]
    ArchiverRecords,
    /// The world state's RocksDB values (first byte picks the record).
    #[cfg(feature = "store")]
    StateRecords,
    /// Checkpoint bodies as posted to L1.
    CheckpointBody,
    /// `propose` calldata as read from L1: ABI decode, the match against its event and the body.
    #[cfg(feature = "store")]
    L1Calldata,
}

impl Target {
    /// Every target in this build.
    pub const ALL: &'static [Self] = &[
        Self::Wire,
        #[cfg(feature = "p2p")]
        Self::Gossip,
        #[cfg(feature = "p2p")]
        Self::ReqResp,
        #[cfg(feature = "store")]
        Self::ArchiverRecords,
        #[cfg(feature = "store")]
        Self::StateRecords,
        Self::CheckpointBody,
        #[cfg(feature = "store")]
        Self::L1Calldata,
    ];

    /// Name used on the command line and for corpus directories.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Wire => "wire",
            #[cfg(feature = "p2p")]
            Self::Gossip => "gossip",
            #[cfg(feature = "p2p")]
            Self::ReqResp => "reqresp",
            #[cfg(feature = "store")]
            Self::ArchiverRecords => "archiver_records",
            #[cfg(feature = "store")]
            Self::StateRecords => "state_records",
            Self::CheckpointBody => "checkpoint_body",
            #[cfg(feature = "store")]
            Self::L1Calldata => "l1_calldata",
        }
    }

    /// The target called `name`, if this build has it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|target| target.name() == name)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a target made of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The input decoded, and every round-trip assertion held.
    Decoded,
    /// The input was refused with a typed error, within the allocation limits.
    Refused,
}

impl Outcome {
    const fn of<T, E>(result: &Result<T, E>) -> Self {
        match result {
            Ok(_) => Self::Decoded,
            Err(_) => Self::Refused,
        }
    }
}

/// Runs `target` on `data`.
///
/// # Panics
/// When a decoder breaks one of the target's assertions: that is a finding.
pub fn run(target: Target, data: &[u8]) -> Outcome {
    match target {
        Target::Wire => wire::run(data),
        #[cfg(feature = "p2p")]
        Target::Gossip => p2p::gossip(data),
        #[cfg(feature = "p2p")]
        Target::ReqResp => p2p::reqresp(data),
        #[cfg(feature = "store")]
        Target::ArchiverRecords => store::archiver(data),
        #[cfg(feature = "store")]
        Target::StateRecords => store::state(data),
        Target::CheckpointBody => body::run(data),
        #[cfg(feature = "store")]
        Target::L1Calldata => store::l1_calldata(data),
    }
}

/// Splits the selector byte off: `(index in 0..count, rest)`.
fn select(data: &[u8], count: usize) -> Option<(usize, &[u8])> {
    let (first, rest) = data.split_first()?;
    Some((usize::from(*first) % count, rest))
}
