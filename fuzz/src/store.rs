//! Stored records (archiver and world state RocksDB values) and L1 `propose` calldata.

use alloy_sol_types::SolCall;
use tandem_archiver::fuzzing::{self as archiver_codec, Record as ArchiverRecord};
use tandem_l1::{MissingCalldata, Rollup, header_from_sol, match_calldata};
use tandem_proto::DEFAULT_MAX_CHECKPOINT_BODY_BYTES;
use tandem_state::fuzzing::{self as state_codec, Record as StateRecord};

use crate::{Outcome, alloc, body, select};

/// An archiver value: every record codec is canonical (what decodes re-encodes to exactly the
/// input), allocates within [`alloc::decode_bound`], and the readers' fast header decode agrees
/// with the full one wherever the full one accepts.
pub(crate) fn archiver(data: &[u8]) -> Outcome {
    let Some((index, bytes)) = select(data, ArchiverRecord::ALL.len()) else {
        return Outcome::Refused;
    };
    let record = ArchiverRecord::ALL[index];
    let result = canonical_within_bound(record, bytes, |bytes| {
        archiver_codec::decode_then_encode(record, bytes)
    });
    if record == ArchiverRecord::Header
        && let Ok(full) = archiver_codec::decode_header(bytes)
    {
        assert_eq!(
            archiver_codec::decode_header_view(bytes),
            Ok(full),
            "the fast header decode disagrees with the full one"
        );
    }
    Outcome::of(&result)
}

/// A world-state value: every record codec is canonical and allocates within
/// [`alloc::decode_bound`].
pub(crate) fn state(data: &[u8]) -> Outcome {
    let Some((index, bytes)) = select(data, StateRecord::ALL.len()) else {
        return Outcome::Refused;
    };
    let record = StateRecord::ALL[index];
    let result = canonical_within_bound(record, bytes, |bytes| {
        state_codec::decode_then_encode(record, bytes)
    });
    Outcome::of(&result)
}

/// Runs one record codec's decode-then-encode on `bytes`, asserting it allocates within
/// [`alloc::decode_bound`] and that whatever it accepts re-encodes to exactly the input.
fn canonical_within_bound<R: std::fmt::Debug, E>(
    record: R,
    bytes: &[u8],
    decode_then_encode: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<Vec<u8>, E> {
    let (result, peak) = alloc::measure(|| decode_then_encode(bytes));
    assert!(
        peak <= alloc::decode_bound(bytes.len()),
        "{record:?}: allocated {peak} bytes at once for {} input bytes",
        bytes.len()
    );
    if let Ok(encoded) = &result {
        assert_eq!(
            encoded, bytes,
            "{record:?}: decoded record is not canonical"
        );
    }
    result
}

/// A tx input as read from L1 (decoded: it is a `propose` call). What ABI-decodes as a `propose` call re-encodes to a call that
/// decodes equal; matched against its own event it yields exactly its signers' signatures (or
/// a bitmap mismatch), and its body goes through the checkpoint body target. Input that is not
/// a `propose` call is refused as such.
pub(crate) fn l1_calldata(input: &[u8]) -> Outcome {
    let (call, peak) = alloc::measure(|| Rollup::proposeCall::abi_decode(input));
    assert!(
        peak <= alloc::decode_bound(input.len()),
        "propose calldata: allocated {peak} bytes at once for {} input bytes",
        input.len()
    );
    let Ok(call) = call else {
        assert_eq!(
            match_calldata(0, Default::default(), Default::default(), input),
            Err(MissingCalldata::NotProposeCall)
        );
        return Outcome::Refused;
    };
    let encoded = call.abi_encode();
    assert_eq!(
        Rollup::proposeCall::abi_decode(&encoded).as_ref().ok(),
        Some(&call),
        "propose calldata: re-encoded call decodes differently"
    );
    let Ok(number) = u64::try_from(call.args.checkpointNumber) else {
        return Outcome::Decoded;
    };
    let header_hash = header_from_sol(&call.args.header).hash();
    let matched = match_calldata(number, header_hash, call.args.archive, input);
    let signers = call.signers.count_ones();
    match &matched {
        Ok(calldata) => {
            assert_eq!(signers, call.attestations.len());
            assert_eq!(calldata.attestations.len(), signers);
            for ((position, _), next) in calldata
                .attestations
                .iter()
                .zip(calldata.attestations.iter().skip(1))
            {
                assert!(*position < next.0, "attestation positions out of order");
            }
            for (position, _) in &calldata.attestations {
                assert!(call.signers.bit(*position as usize));
            }
            assert_eq!(calldata.body, call.body);
            body::check(&calldata.body, DEFAULT_MAX_CHECKPOINT_BODY_BYTES);
        }
        Err(MissingCalldata::BitmapMismatch) => {
            assert_ne!(
                signers,
                call.attestations.len(),
                "bitmap mismatch reported wrongly"
            );
        }
        Err(other) => panic!("a decodable propose call matched against itself: {other}"),
    }
    // Another checkpoint number is another checkpoint.
    if let Some(other) = number.checked_add(1) {
        assert_eq!(
            match_calldata(other, header_hash, call.args.archive, input),
            Err(MissingCalldata::OtherCheckpoint)
        );
    }
    Outcome::Decoded
}
