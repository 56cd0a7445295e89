//! The persisted state of one L1 tx (one nonce of one key): what it is for, its inclusion window,
//! its fee ladder (every signed attempt, propose or cancel) and where it stands.
//!
//! Encoding: one version byte ([`RECORD_VERSION`]), the message's length (varint), then the
//! prost message; the length makes a cut-off record an error rather than a shorter valid one.
//! The signed raw txs live in their own table keyed by hash, so a state change rewrites a few
//! hundred bytes, not the ~120 KiB calldata of every attempt.

use alloy::primitives::{Address, B256};
use prost::Message;
use tandem_proto::time::Slot;

/// Version byte of the record encoding.
pub const RECORD_VERSION: u8 = 1;

/// A stored record does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Zero bytes.
    #[error("empty tx record")]
    Empty,
    /// Written by a newer (or unknown) version of the publisher.
    #[error("tx record version {0} is unknown (this build reads version {RECORD_VERSION})")]
    UnknownVersion(u8),
    /// The bytes are not a record.
    #[error("tx record does not decode: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// The message is not as long as its length prefix says (cut off, or followed by garbage).
    #[error("tx record declares {declared} bytes but holds {actual}")]
    LengthMismatch {
        /// The length prefix.
        declared: u64,
        /// Bytes after the prefix.
        actual: usize,
    },
    /// A field holds a value no record can have.
    #[error("tx record field {field} is invalid")]
    Invalid {
        /// The field.
        field: &'static str,
    },
    /// An attempt's raw tx is missing from the store.
    #[error("raw tx {0} of a record is missing")]
    MissingRawTx(B256),
}

/// What a record's latest attempts are doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    /// Propose attempts in flight (signed, maybe sent, maybe sped up).
    Pending,
    /// A propose attempt was mined with our `CheckpointProposed` event; watched for reorgs until
    /// the inclusion window closes.
    Mined,
    /// The window closed unmined (or the mined propose was reorged out after it): cancel
    /// attempts (same-nonce no-ops) in flight.
    Cancelling,
    /// Nothing more will happen.
    Final(FinalState),
}

/// How a record ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FinalState {
    /// Mined with our event and still canonical when the window closed.
    Landed,
    /// Mined without our event (the propose reverted on chain).
    Reverted,
    /// Not mined in its window; a cancel took the nonce.
    Cancelled,
    /// Neither the propose nor a cancel was mined; the nonce was given back.
    NotMined,
    /// Mined, then reorged out after its window closed.
    Lost,
    /// The L1 node refused the first attempt: nothing reached the mempool.
    NotSent,
    /// The nonce was taken by a tx this record does not know.
    NonceTaken,
}

impl FinalState {
    /// Label for metrics and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Landed => "landed",
            Self::Reverted => "reverted",
            Self::Cancelled => "cancelled",
            Self::NotMined => "not_mined",
            Self::Lost => "lost",
            Self::NotSent => "not_sent",
            Self::NonceTaken => "nonce_taken",
        }
    }

    /// Whether the record's nonce was consumed on chain.
    pub const fn consumed_nonce(self) -> bool {
        !matches!(self, Self::NotMined | Self::NotSent)
    }
}

impl TxState {
    /// Whether the record still needs watching.
    pub const fn is_live(self) -> bool {
        !matches!(self, Self::Final(_))
    }

    fn code(self) -> u32 {
        match self {
            Self::Pending => 1,
            Self::Mined => 2,
            Self::Cancelling => 3,
            Self::Final(FinalState::Landed) => 10,
            Self::Final(FinalState::Reverted) => 11,
            Self::Final(FinalState::Cancelled) => 12,
            Self::Final(FinalState::NotMined) => 13,
            Self::Final(FinalState::Lost) => 14,
            Self::Final(FinalState::NotSent) => 15,
            Self::Final(FinalState::NonceTaken) => 16,
        }
    }

    fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            1 => Self::Pending,
            2 => Self::Mined,
            3 => Self::Cancelling,
            10 => Self::Final(FinalState::Landed),
            11 => Self::Final(FinalState::Reverted),
            12 => Self::Final(FinalState::Cancelled),
            13 => Self::Final(FinalState::NotMined),
            14 => Self::Final(FinalState::Lost),
            15 => Self::Final(FinalState::NotSent),
            16 => Self::Final(FinalState::NonceTaken),
            _ => return None,
        })
    }
}

/// What an attempt does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    /// The `propose` call.
    Propose,
    /// A 0-value transfer to self at the same nonce.
    Cancel,
}

/// Whether an attempt reached the L1 node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptStatus {
    /// Signed and persisted; the broadcast's result is unknown (crash or unreachable node).
    Signed,
    /// The L1 node accepted it.
    Broadcast,
    /// The L1 node refused it (underpriced, fee cap below the base fee, …).
    Refused,
}

/// One signed tx of the fee ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// Propose or cancel.
    pub kind: AttemptKind,
    /// Tx hash.
    pub hash: B256,
    /// EIP-1559 fee cap, wei.
    pub max_fee_per_gas: u64,
    /// EIP-1559 priority fee, wei.
    pub max_priority_fee_per_gas: u64,
    /// Gas limit.
    pub gas_limit: u64,
    /// L1 time (latest block timestamp) when it was signed.
    pub signed_at_l1: u64,
    /// Broadcast result.
    pub status: AttemptStatus,
}

/// Where an attempt was mined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinedAt {
    /// Index of the attempt in the ladder.
    pub attempt: u32,
    /// L1 block number.
    pub block_number: u64,
    /// L1 block hash.
    pub block_hash: B256,
    /// L1 block timestamp.
    pub block_timestamp: u64,
    /// Gas used.
    pub gas_used: u64,
    /// Effective gas price, wei.
    pub effective_gas_price: u128,
}

/// The persisted state of one tx (one nonce of one key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRecord {
    /// Unique, increasing id (the store's key).
    pub id: u64,
    /// The sending key.
    pub key: Address,
    /// Its nonce.
    pub nonce: u64,
    /// Checkpoint number proposed.
    pub checkpoint_number: u64,
    /// The slot the propose is for.
    pub target_slot: Slot,
    /// The last slot the request may land in.
    pub last_valid_slot: Slot,
    /// L1 timestamp from which the propose can land (target slot start).
    pub window_start: u64,
    /// L1 timestamp from which it can no longer land (end of the last valid slot).
    pub window_end: u64,
    /// Where it stands.
    pub state: TxState,
    /// Every signed attempt, oldest first.
    pub attempts: Vec<Attempt>,
    /// Gas the send-time simulation reported.
    pub simulated_gas: u64,
    /// Times a mined propose was reorged out.
    pub reorgs: u32,
    /// Where an attempt was mined: the propose (kept after a reorg for the audit), or the
    /// cancel that took the nonce.
    pub mined: Option<MinedAt>,
}

impl TxRecord {
    /// The newest attempt.
    pub fn latest(&self) -> Option<&Attempt> {
        self.attempts.last()
    }

    /// Index of the attempt that should be in a mempool, i.e. the one to look for there and to
    /// send again: the newest one the L1 node did not refuse (or the newest, when it refused
    /// all). Once no propose may be sent any more (`proposes_allowed` false: the window closed,
    /// or the record is cancelling), only cancels count — a stale propose must never go out
    /// again — and `None` when there is no cancel yet.
    pub fn resend_candidate(&self, proposes_allowed: bool) -> Option<usize> {
        let eligible = |a: &Attempt| proposes_allowed || a.kind == AttemptKind::Cancel;
        self.attempts
            .iter()
            .rposition(|a| eligible(a) && a.status != AttemptStatus::Refused)
            .or_else(|| self.attempts.iter().rposition(eligible))
    }

    /// The newest attempt of `kind`.
    pub fn latest_of(&self, kind: AttemptKind) -> Option<&Attempt> {
        self.attempts.iter().rev().find(|a| a.kind == kind)
    }

    /// Attempts of `kind` after the first one of that kind (speed-ups).
    pub fn speed_ups(&self, kind: AttemptKind) -> u32 {
        let count = self.attempts.iter().filter(|a| a.kind == kind).count();
        u32::try_from(count.saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// Encodes with the version byte.
    pub fn encode(&self) -> Vec<u8> {
        let message = RecordV1 {
            id: self.id,
            key: self.key.to_vec(),
            nonce: self.nonce,
            purpose: PURPOSE_PROPOSE,
            checkpoint_number: self.checkpoint_number,
            target_slot: self.target_slot.0,
            last_valid_slot: self.last_valid_slot.0,
            window_start: self.window_start,
            window_end: self.window_end,
            state: self.state.code(),
            attempts: self.attempts.iter().map(AttemptV1::from).collect(),
            simulated_gas: self.simulated_gas,
            reorgs: self.reorgs,
            mined: self.mined.map(|mined| MinedV1 {
                attempt: mined.attempt,
                block_number: mined.block_number,
                block_hash: mined.block_hash.to_vec(),
                block_timestamp: mined.block_timestamp,
                gas_used: mined.gas_used,
                effective_gas_price: mined.effective_gas_price.to_be_bytes().to_vec(),
            }),
        };
        let mut bytes = Vec::with_capacity(1 + 10 + message.encoded_len());
        bytes.push(RECORD_VERSION);
        message
            .encode_length_delimited(&mut bytes)
            .expect("a Vec grows to fit the message");
        bytes
    }

    /// Decodes what [`TxRecord::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let (&version, rest) = bytes.split_first().ok_or(RecordError::Empty)?;
        if version != RECORD_VERSION {
            return Err(RecordError::UnknownVersion(version));
        }
        let mut body = rest;
        let declared = prost::encoding::decode_varint(&mut body)?;
        if declared != body.len() as u64 {
            return Err(RecordError::LengthMismatch {
                declared,
                actual: body.len(),
            });
        }
        let message = RecordV1::decode(body)?;
        if message.purpose != PURPOSE_PROPOSE {
            return Err(RecordError::Invalid { field: "purpose" });
        }
        let invalid = |field| RecordError::Invalid { field };
        let attempts = message
            .attempts
            .iter()
            .map(Attempt::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let mined = match message.mined {
            None => None,
            Some(mined) => Some(MinedAt {
                attempt: mined.attempt,
                block_number: mined.block_number,
                block_hash: b256(&mined.block_hash, "mined.block_hash")?,
                block_timestamp: mined.block_timestamp,
                gas_used: mined.gas_used,
                effective_gas_price: u128::from_be_bytes(
                    mined
                        .effective_gas_price
                        .as_slice()
                        .try_into()
                        .map_err(|_| invalid("mined.effective_gas_price"))?,
                ),
            }),
        };
        if let Some(mined) = &mined
            && mined.attempt as usize >= attempts.len()
        {
            return Err(invalid("mined.attempt"));
        }
        if message.last_valid_slot < message.target_slot
            || message.window_end <= message.window_start
        {
            return Err(invalid("window"));
        }
        Ok(Self {
            id: message.id,
            key: Address::try_from(message.key.as_slice()).map_err(|_| invalid("key"))?,
            nonce: message.nonce,
            checkpoint_number: message.checkpoint_number,
            target_slot: Slot(message.target_slot),
            last_valid_slot: Slot(message.last_valid_slot),
            window_start: message.window_start,
            window_end: message.window_end,
            state: TxState::from_code(message.state).ok_or(invalid("state"))?,
            attempts,
            simulated_gas: message.simulated_gas,
            reorgs: message.reorgs,
            mined,
        })
    }
}

fn b256(bytes: &[u8], field: &'static str) -> Result<B256, RecordError> {
    B256::try_from(bytes).map_err(|_| RecordError::Invalid { field })
}

const PURPOSE_PROPOSE: u32 = 1;

#[derive(Clone, PartialEq, prost::Message)]
struct RecordV1 {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(bytes = "vec", tag = "2")]
    key: Vec<u8>,
    #[prost(uint64, tag = "3")]
    nonce: u64,
    #[prost(uint32, tag = "4")]
    purpose: u32,
    #[prost(uint64, tag = "5")]
    checkpoint_number: u64,
    #[prost(uint64, tag = "6")]
    target_slot: u64,
    #[prost(uint64, tag = "7")]
    last_valid_slot: u64,
    #[prost(uint64, tag = "8")]
    window_start: u64,
    #[prost(uint64, tag = "9")]
    window_end: u64,
    #[prost(uint32, tag = "10")]
    state: u32,
    #[prost(message, repeated, tag = "11")]
    attempts: Vec<AttemptV1>,
    #[prost(uint64, tag = "12")]
    simulated_gas: u64,
    #[prost(uint32, tag = "13")]
    reorgs: u32,
    #[prost(message, optional, tag = "14")]
    mined: Option<MinedV1>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AttemptV1 {
    #[prost(uint32, tag = "1")]
    kind: u32,
    #[prost(bytes = "vec", tag = "2")]
    hash: Vec<u8>,
    #[prost(uint64, tag = "3")]
    max_fee_per_gas: u64,
    #[prost(uint64, tag = "4")]
    max_priority_fee_per_gas: u64,
    #[prost(uint64, tag = "5")]
    gas_limit: u64,
    #[prost(uint64, tag = "6")]
    signed_at_l1: u64,
    #[prost(uint32, tag = "7")]
    status: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct MinedV1 {
    #[prost(uint32, tag = "1")]
    attempt: u32,
    #[prost(uint64, tag = "2")]
    block_number: u64,
    #[prost(bytes = "vec", tag = "3")]
    block_hash: Vec<u8>,
    #[prost(uint64, tag = "4")]
    block_timestamp: u64,
    #[prost(uint64, tag = "5")]
    gas_used: u64,
    #[prost(bytes = "vec", tag = "6")]
    effective_gas_price: Vec<u8>,
}

impl From<&Attempt> for AttemptV1 {
    fn from(attempt: &Attempt) -> Self {
        Self {
            kind: match attempt.kind {
                AttemptKind::Propose => 1,
                AttemptKind::Cancel => 2,
            },
            hash: attempt.hash.to_vec(),
            max_fee_per_gas: attempt.max_fee_per_gas,
            max_priority_fee_per_gas: attempt.max_priority_fee_per_gas,
            gas_limit: attempt.gas_limit,
            signed_at_l1: attempt.signed_at_l1,
            status: match attempt.status {
                AttemptStatus::Signed => 1,
                AttemptStatus::Broadcast => 2,
                AttemptStatus::Refused => 3,
            },
        }
    }
}

impl TryFrom<&AttemptV1> for Attempt {
    type Error = RecordError;

    fn try_from(attempt: &AttemptV1) -> Result<Self, RecordError> {
        let invalid = |field| RecordError::Invalid { field };
        Ok(Self {
            kind: match attempt.kind {
                1 => AttemptKind::Propose,
                2 => AttemptKind::Cancel,
                _ => return Err(invalid("attempt.kind")),
            },
            hash: b256(&attempt.hash, "attempt.hash")?,
            max_fee_per_gas: attempt.max_fee_per_gas,
            max_priority_fee_per_gas: attempt.max_priority_fee_per_gas,
            gas_limit: attempt.gas_limit,
            signed_at_l1: attempt.signed_at_l1,
            status: match attempt.status {
                1 => AttemptStatus::Signed,
                2 => AttemptStatus::Broadcast,
                3 => AttemptStatus::Refused,
                _ => return Err(invalid("attempt.status")),
            },
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn sample() -> TxRecord {
        TxRecord {
            id: 7,
            key: Address::repeat_byte(0xab),
            nonce: 12,
            checkpoint_number: 4,
            target_slot: Slot(9),
            last_valid_slot: Slot(9),
            window_start: 1_000,
            window_end: 1_012,
            state: TxState::Mined,
            attempts: vec![
                Attempt {
                    kind: AttemptKind::Propose,
                    hash: B256::repeat_byte(1),
                    max_fee_per_gas: 2_000_000_000,
                    max_priority_fee_per_gas: 1_000_000,
                    gas_limit: 500_000,
                    signed_at_l1: 999,
                    status: AttemptStatus::Broadcast,
                },
                Attempt {
                    kind: AttemptKind::Cancel,
                    hash: B256::repeat_byte(2),
                    max_fee_per_gas: 3_000_000_000,
                    max_priority_fee_per_gas: 1_500_000,
                    gas_limit: 21_000,
                    signed_at_l1: 1_011,
                    status: AttemptStatus::Refused,
                },
            ],
            simulated_gas: 400_000,
            reorgs: 1,
            mined: Some(MinedAt {
                attempt: 0,
                block_number: 55,
                block_hash: B256::repeat_byte(3),
                block_timestamp: 1_000,
                gas_used: 401_000,
                effective_gas_price: 1_500_000_000,
            }),
        }
    }

    #[test]
    fn the_attempt_to_resend_skips_refused_bumps_and_stale_proposes() {
        let mut record = sample();
        // Attempt 0: a broadcast propose; attempt 1: a refused cancel.
        assert_eq!(record.resend_candidate(true), Some(0));
        // The window closed: the propose is never sent again, even when every cancel was
        // refused.
        assert_eq!(record.resend_candidate(false), Some(1));
        record.attempts[0].status = AttemptStatus::Refused;
        assert_eq!(record.resend_candidate(true), Some(1));
        record.attempts.truncate(1);
        assert_eq!(record.resend_candidate(true), Some(0));
        assert_eq!(record.resend_candidate(false), None);
        record.attempts.clear();
        assert_eq!(record.resend_candidate(true), None);
    }

    #[test]
    fn round_trips() {
        let record = sample();
        assert_eq!(TxRecord::decode(&record.encode()).unwrap(), record);
        let mut finished = record;
        finished.state = TxState::Final(FinalState::Lost);
        finished.mined = None;
        assert_eq!(TxRecord::decode(&finished.encode()).unwrap(), finished);
    }

    #[test]
    fn bad_bytes_get_typed_errors() {
        assert_eq!(TxRecord::decode(&[]), Err(RecordError::Empty));
        let mut bytes = sample().encode();
        bytes[0] = 2;
        assert_eq!(
            TxRecord::decode(&bytes),
            Err(RecordError::UnknownVersion(2))
        );
        assert!(matches!(
            TxRecord::decode(&[RECORD_VERSION, 0xff, 0xff]),
            Err(RecordError::Malformed(_))
        ));
        let mut padded = sample().encode();
        padded.push(0);
        assert!(matches!(
            TxRecord::decode(&padded),
            Err(RecordError::LengthMismatch { .. })
        ));
        let bytes = sample().encode();
        let mut message = RecordV1::decode_length_delimited(&bytes[1..]).unwrap();
        message.state = 99;
        let reencode = |message: &RecordV1| {
            let mut bytes = vec![RECORD_VERSION];
            message.encode_length_delimited(&mut bytes).unwrap();
            bytes
        };
        assert_eq!(
            TxRecord::decode(&reencode(&message)),
            Err(RecordError::Invalid { field: "state" })
        );
        message.state = 1;
        message.key = vec![1; 19];
        assert_eq!(
            TxRecord::decode(&reencode(&message)),
            Err(RecordError::Invalid { field: "key" })
        );
    }

    proptest! {
        /// Arbitrary bytes (with and without the version byte) never panic the decoder.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = TxRecord::decode(&bytes);
            let mut versioned = vec![RECORD_VERSION];
            versioned.extend_from_slice(&bytes);
            let _ = TxRecord::decode(&versioned);
        }

        /// Model of what decoding accepts: a message with its checked fields drawn around their
        /// edges decodes exactly when every rule holds (20-byte key, known state, last valid
        /// slot not before the target, a non-empty window, known attempt kinds and statuses, the
        /// mined attempt inside the ladder), and what decodes encodes back to itself.
        #[test]
        fn decoding_accepts_exactly_the_valid_messages(
            key_len in 19usize..=21,
            state in 0u32..18,
            target in 0u64..3,
            last_valid in 0u64..3,
            start in 0u64..3,
            end in 0u64..3,
            attempts in proptest::collection::vec((0u32..=3, 0u32..=4), 0..3),
            mined_attempt in proptest::option::of(0u32..3),
        ) {
            let encoded = sample().encode();
            let mut message = RecordV1::decode_length_delimited(&encoded[1..]).unwrap();
            let template = message.attempts[0].clone();
            let mined_template = message.mined.clone().unwrap();
            message.key = vec![7; key_len];
            message.state = state;
            message.target_slot = target;
            message.last_valid_slot = last_valid;
            message.window_start = start;
            message.window_end = end;
            message.attempts = attempts
                .iter()
                .map(|&(kind, status)| AttemptV1 { kind, status, ..template.clone() })
                .collect();
            message.mined = mined_attempt.map(|attempt| MinedV1 { attempt, ..mined_template.clone() });
            let mut bytes = vec![RECORD_VERSION];
            message.encode_length_delimited(&mut bytes).unwrap();
            let valid = key_len == 20
                && TxState::from_code(state).is_some()
                && last_valid >= target
                && end > start
                && attempts
                    .iter()
                    .all(|&(kind, status)| (1..=2).contains(&kind) && (1..=3).contains(&status))
                && mined_attempt.is_none_or(|attempt| (attempt as usize) < attempts.len());
            match TxRecord::decode(&bytes) {
                Ok(record) => {
                    prop_assert!(valid, "accepted {message:?}");
                    prop_assert_eq!(record.attempts.len(), attempts.len());
                    prop_assert_eq!(TxRecord::decode(&record.encode()), Ok(record));
                }
                Err(error) => prop_assert!(!valid, "refused a valid record: {error}"),
            }
        }
    }

    /// Every cut-off prefix of a record is refused with the error its length implies: nothing
    /// (empty), a cut length prefix (malformed), or a message shorter than its prefix says.
    #[test]
    fn every_truncation_of_a_record_is_refused() {
        let bytes = sample().encode();
        let mut body = &bytes[1..];
        let declared = prost::encoding::decode_varint(&mut body).unwrap();
        let prefix = bytes.len() - body.len();
        assert_eq!(declared as usize, body.len());
        for cut in 0..bytes.len() {
            let decoded = TxRecord::decode(&bytes[..cut]);
            let expected = if cut == 0 {
                RecordError::Empty
            } else if cut < prefix {
                match decoded {
                    Err(RecordError::Malformed(_)) => continue,
                    other => panic!("cut {cut}: {other:?}"),
                }
            } else {
                RecordError::LengthMismatch {
                    declared,
                    actual: cut - prefix,
                }
            };
            assert_eq!(decoded, Err(expected), "cut {cut}");
        }
        assert_eq!(TxRecord::decode(&bytes), Ok(sample()));
    }
}
