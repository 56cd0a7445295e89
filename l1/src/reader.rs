//! Read access to the rollup on L1: tips, archives, fee headers, committees, the deployment's
//! constants, and the `CheckpointProposed` events with their calldata (what the archiver syncs
//! from). Every view takes the L1 block it reads at, so a caller can read several values from
//! one consistent state.

use std::collections::BTreeMap;

use alloy::{
    eips::{BlockId, BlockNumberOrTag},
    primitives::{Address, B256, Bytes, U256, keccak256},
    providers::Provider,
    rpc::types::{Filter, state::StateOverride},
    sol_types::{SolCall, SolEvent, SolValue},
};
use tandem_proto::{CheckpointHeader, MAX_FEE_ASSET_PRICE_MODIFIER_BPS, Signature};

use crate::{
    bindings::Rollup,
    deploy::RollupParams,
    errors::{L1Error, L1Result},
    fees::FeeHeader,
    propose::{header_from_sol, signature_from_sol},
};

/// An L1 block, by number, hash and timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L1BlockRef {
    /// Number.
    pub number: u64,
    /// Hash.
    pub hash: B256,
    /// Timestamp, seconds.
    pub timestamp: u64,
}

impl L1BlockRef {
    /// The block as a [`BlockId`] (by hash), for reads pinned to it.
    pub fn id(&self) -> BlockId {
        BlockId::hash(self.hash)
    }
}

/// What L1 stores for one checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointLog {
    /// Header hash.
    pub header_hash: B256,
    /// Slot.
    pub slot: u64,
    /// Fee header.
    pub fee_header: FeeHeader,
}

/// A checkpoint as published on L1: the facts of its `CheckpointProposed` event (always
/// available) and, separately, what only the `propose` calldata carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L1Checkpoint {
    /// Checkpoint number.
    pub number: u64,
    /// Header (from the event).
    pub header: CheckpointHeader,
    /// Header hash (as emitted; equals `header.hash()`).
    pub header_hash: B256,
    /// Archive root after its last block.
    pub archive: B256,
    /// Fee-asset price modifier.
    pub fee_asset_price_modifier: i64,
    /// The L1 block that included it.
    pub l1_block: L1BlockRef,
    /// The L1 tx.
    pub tx_hash: B256,
    /// Signatures and body from the tx input, or why they could not be taken from it. The
    /// contract only accepts direct calls from externally owned accounts, so `Err` means an L1
    /// node that misbehaves or a contract bug; the checkpoint itself is still a fact.
    pub calldata: Result<ProposeCalldata, MissingCalldata>,
}

/// What a checkpoint's `propose` calldata adds to its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposeCalldata {
    /// Proposer signature.
    pub proposer_signature: Signature,
    /// Attestations with the committee position of each signer.
    pub attestations: Vec<(u32, Signature)>,
    /// The checkpoint body (all blocks and txs).
    pub body: Bytes,
}

/// Why a checkpoint's body and signatures could not be taken from its tx.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MissingCalldata {
    /// The L1 node does not know the tx that emitted the event.
    #[error("the L1 node does not return the tx")]
    TxNotFound,
    /// The tx input is not an ABI-encoded `propose` call.
    #[error("the tx input is not a propose call")]
    NotProposeCall,
    /// The tx input is a `propose` call for another checkpoint than the event's.
    #[error("the propose call in the tx input is for another checkpoint")]
    OtherCheckpoint,
    /// The signer bitmap names more attesters than there are signatures.
    #[error("the signer bitmap names more attesters than signatures")]
    BitmapMismatch,
}

/// The committee of an epoch with the seed its proposers are drawn with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochCommittee {
    /// The epoch.
    pub epoch: u64,
    /// Members in committee order (the order attestations are sent in).
    pub members: Vec<Address>,
    /// The epoch's seed.
    pub seed: U256,
}

impl EpochCommittee {
    /// The proposer of `slot` (a slot of this epoch), as the contract computes it:
    /// `members[keccak256(abi.encode(epoch, slot, seed)) % len]`; `None` when the committee is
    /// empty (anyone may propose).
    pub fn proposer_of(&self, slot: u64) -> Option<Address> {
        let len = U256::from(self.members.len());
        if len.is_zero() {
            return None;
        }
        let draw = keccak256((U256::from(self.epoch), U256::from(slot), self.seed).abi_encode());
        let index = usize::try_from(U256::from_be_bytes(draw.0) % len).ok()?;
        self.members.get(index).copied()
    }

    /// Position of `member` in the committee.
    pub fn position(&self, member: Address) -> Option<usize> {
        self.members.iter().position(|m| *m == member)
    }
}

/// The L1 state a simulation plan builds on, read at one L1 block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimulationBase {
    /// The L1 block everything was read at.
    pub l1_block: L1BlockRef,
    /// Checkpointed tip.
    pub checkpointed: u64,
    /// Proven tip.
    pub proven: u64,
    /// Archive of the checkpointed tip.
    pub tip_archive: B256,
    /// Fee header of the checkpointed tip.
    pub tip_fee_header: FeeHeader,
}

/// Reads the rollup through any alloy provider.
#[derive(Debug, Clone)]
pub struct L1Reader<P> {
    provider: P,
    rollup: Address,
}

type ViewCall<P, C> = alloy::contract::CallBuilder<P, std::marker::PhantomData<C>>;

fn prepared<P: Provider, C: SolCall>(
    call: ViewCall<P, C>,
    overrides: Option<StateOverride>,
    at: BlockId,
) -> ViewCall<P, C> {
    let call = call.block(at);
    match overrides {
        Some(overrides) => call.state(overrides),
        None => call,
    }
}

fn to_u64(value: U256, what: &'static str) -> L1Result<u64> {
    u64::try_from(value).map_err(|_| L1Error::Unexpected(what))
}

fn block_ref(header: &alloy::rpc::types::Header) -> L1BlockRef {
    L1BlockRef {
        number: header.number,
        hash: header.hash,
        timestamp: header.timestamp,
    }
}

impl<P: Provider + Clone> L1Reader<P> {
    /// A reader of the rollup at `rollup`.
    pub const fn new(provider: P, rollup: Address) -> Self {
        Self { provider, rollup }
    }

    fn contract(&self) -> Rollup::RollupInstance<P> {
        Rollup::new(self.rollup, self.provider.clone())
    }

    /// The rollup's address.
    pub const fn rollup(&self) -> Address {
        self.rollup
    }

    /// The provider.
    pub const fn provider(&self) -> &P {
        &self.provider
    }

    /// The deployment's constants as the contract stores them (what a node checks its
    /// configuration against).
    pub async fn config(&self, at: BlockId) -> L1Result<RollupParams> {
        let config = self.contract().getConfig().block(at).call().await?;
        RollupParams::from_config(&config)
    }

    /// `(checkpointed, proven)`.
    pub async fn tips(&self, at: BlockId) -> L1Result<(u64, u64)> {
        let tips = self.contract().getTips().block(at).call().await?;
        Ok((
            to_u64(tips.checkpointed, "tip above u64")?,
            to_u64(tips.proven, "tip above u64")?,
        ))
    }

    /// Archive root after checkpoint `number` (zero if none).
    pub async fn archive_at(&self, number: u64, at: BlockId) -> L1Result<B256> {
        Ok(self
            .contract()
            .archiveAt(U256::from(number))
            .block(at)
            .call()
            .await?)
    }

    /// The stored log of checkpoint `number`.
    pub async fn checkpoint_log(&self, number: u64, at: BlockId) -> L1Result<CheckpointLog> {
        let log = self
            .contract()
            .getCheckpointLog(U256::from(number))
            .block(at)
            .call()
            .await?;
        Ok(CheckpointLog {
            header_hash: log.headerHash,
            slot: to_u64(log.slot, "slot above u64")?,
            fee_header: FeeHeader::unpack(log.feeHeader),
        })
    }

    /// Fee header of checkpoint `number`, optionally under `overrides`.
    pub async fn fee_header_at(
        &self,
        number: u64,
        overrides: Option<StateOverride>,
        at: BlockId,
    ) -> L1Result<FeeHeader> {
        let contract = self.contract();
        let header = prepared(contract.getFeeHeader(U256::from(number)), overrides, at)
            .call()
            .await?;
        Ok(FeeHeader {
            mana_used: to_u64(header.manaUsed, "mana used above u64")?,
            excess_mana: to_u64(header.excessMana, "excess above u64")?,
            eth_per_fee_asset: to_u64(header.ethPerFeeAsset, "price above u64")?,
        })
    }

    /// What a simulation plan needs, all read at the same L1 block: `at` is resolved to a block
    /// hash first, so a new block arriving between the reads cannot mix two states.
    pub async fn simulation_base(&self, at: BlockNumberOrTag) -> L1Result<SimulationBase> {
        let block = self
            .provider
            .get_block_by_number(at)
            .await?
            .ok_or(L1Error::Unexpected(
                "the L1 block to simulate on is missing",
            ))?;
        let l1_block = block_ref(&block.header);
        let pinned = l1_block.id();
        let (checkpointed, proven) = self.tips(pinned).await?;
        let tip_archive = self.archive_at(checkpointed, pinned).await?;
        let tip_fee_header = self.fee_header_at(checkpointed, None, pinned).await?;
        Ok(SimulationBase {
            l1_block,
            checkpointed,
            proven,
            tip_archive,
            tip_fee_header,
        })
    }

    /// Min fee per mana the next checkpoint must carry, optionally under `overrides`.
    pub async fn mana_min_fee(
        &self,
        overrides: Option<StateOverride>,
        at: BlockId,
    ) -> L1Result<u128> {
        let contract = self.contract();
        let fee = prepared(contract.getManaMinFee(), overrides, at)
            .call()
            .await?;
        u128::try_from(fee).map_err(|_| L1Error::Unexpected("fee above u128"))
    }

    /// Committee of `epoch` with its seed, in one call.
    pub async fn committee(&self, epoch: u64, at: BlockId) -> L1Result<EpochCommittee> {
        let result = self
            .contract()
            .getEpochCommitteeAndSeed(U256::from(epoch))
            .block(at)
            .call()
            .await?;
        Ok(EpochCommittee {
            epoch,
            members: result.committee,
            seed: result.seed,
        })
    }

    /// Proposer of `slot`; `None` when anyone may propose.
    pub async fn proposer_of_slot(&self, slot: u64, at: BlockId) -> L1Result<Option<Address>> {
        let proposer = self
            .contract()
            .getProposerForSlot(U256::from(slot))
            .block(at)
            .call()
            .await?;
        Ok((proposer != Address::ZERO).then_some(proposer))
    }

    /// Proposer of the slot containing `timestamp`; `None` when anyone may propose.
    pub async fn proposer_at(&self, timestamp: u64, at: BlockId) -> L1Result<Option<Address>> {
        let proposer = self
            .contract()
            .getProposerAt(U256::from(timestamp))
            .block(at)
            .call()
            .await?;
        Ok((proposer != Address::ZERO).then_some(proposer))
    }

    /// `canProposeAtTime`: `(slot, next checkpoint number)` or the revert explaining why not.
    pub async fn can_propose_at(
        &self,
        timestamp: u64,
        archive: B256,
        proposer: Address,
        overrides: Option<StateOverride>,
        at: BlockId,
    ) -> L1Result<(u64, u64)> {
        let contract = self.contract();
        let call = contract.canProposeAtTime(U256::from(timestamp), archive, proposer);
        let result = prepared(call, overrides, at).call().await?;
        Ok((
            to_u64(result.slot, "slot above u64")?,
            to_u64(result.nextCheckpointNumber, "number above u64")?,
        ))
    }

    /// `validateHeader`: every check `propose` makes except the caller and the signatures, as
    /// if mined at `timestamp` (the target slot's start), optionally under the simulation
    /// plan's `overrides`. Returns the header hash and the fee header `propose` would store, or
    /// the revert explaining why it would fail.
    pub async fn validate_header(
        &self,
        args: &Rollup::ProposeArgs,
        body: &Bytes,
        timestamp: u64,
        overrides: Option<StateOverride>,
        at: BlockId,
    ) -> L1Result<(B256, FeeHeader)> {
        let contract = self.contract();
        let call = contract.validateHeader(args.clone(), body.clone(), U256::from(timestamp));
        let result = prepared(call, overrides, at).call().await?;
        Ok((result.headerHash, FeeHeader::unpack(result.feeHeader)))
    }

    /// Latest L1 block number.
    pub async fn latest_block(&self) -> L1Result<u64> {
        Ok(self.provider.get_block_number().await?)
    }

    /// The L1 block `number`, if it exists.
    pub async fn block(&self, number: u64) -> L1Result<Option<L1BlockRef>> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await?;
        Ok(block.map(|block| block_ref(&block.header)))
    }

    /// The L1 block with hash `hash`, if the node knows it.
    pub async fn block_by_hash(&self, hash: B256) -> L1Result<Option<L1BlockRef>> {
        let block = self.provider.get_block_by_hash(hash).await?;
        Ok(block.map(|block| block_ref(&block.header)))
    }

    /// Latest finalized L1 block.
    pub async fn finalized_block(&self) -> L1Result<Option<L1BlockRef>> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Finalized)
            .await?;
        Ok(block.map(|block| block_ref(&block.header)))
    }

    /// Checkpoints published in L1 blocks `from..=to`, in order: one entry per
    /// `CheckpointProposed` event, with its calldata decoded where possible. A tx whose input
    /// does not yield the calldata gives `Err` in that entry's `calldata`, never an error for
    /// the whole range. Fails only on RPC errors and on events the contract cannot emit.
    pub async fn checkpoints_proposed(&self, from: u64, to: u64) -> L1Result<Vec<L1Checkpoint>> {
        let filter = Filter::new()
            .address(self.rollup)
            .event_signature(Rollup::CheckpointProposed::SIGNATURE_HASH)
            .from_block(from)
            .to_block(to);
        let logs = self.provider.get_logs(&filter).await?;
        // By hash, never by number: a reorg between `get_logs` and the block read would pair a
        // log with another block at the same height.
        let mut blocks: BTreeMap<B256, L1BlockRef> = BTreeMap::new();
        let mut checkpoints = Vec::with_capacity(logs.len());
        for log in logs {
            let event = Rollup::CheckpointProposed::decode_log(&log.inner)
                .map_err(|_| L1Error::Unexpected("undecodable CheckpointProposed log"))?;
            let number = to_u64(event.checkpointNumber, "checkpoint number above u64")?;
            let tx_hash = log
                .transaction_hash
                .ok_or(L1Error::Unexpected("log without tx hash"))?;
            let block_hash = log
                .block_hash
                .ok_or(L1Error::Unexpected("log without block hash"))?;
            let l1_block = match blocks.get(&block_hash) {
                Some(block) => *block,
                None => {
                    let block = self
                        .block_by_hash(block_hash)
                        .await?
                        .ok_or(L1Error::BlockGone(block_hash))?;
                    if log.block_number.is_some_and(|n| n != block.number) {
                        return Err(L1Error::Unexpected(
                            "the block of a log has another number than the log",
                        ));
                    }
                    blocks.insert(block_hash, block);
                    block
                }
            };
            let header = header_from_sol(&event.header);
            if header.hash() != event.headerHash {
                return Err(L1Error::Unexpected(
                    "event header does not hash to its header hash",
                ));
            }
            let fee_asset_price_modifier = i64::try_from(event.feeAssetPriceModifier)
                .ok()
                .filter(|m| m.unsigned_abs() <= MAX_FEE_ASSET_PRICE_MODIFIER_BPS.unsigned_abs())
                .ok_or(L1Error::Unexpected("event fee modifier out of bounds"))?;
            let calldata = match self.provider.get_transaction_by_hash(tx_hash).await? {
                Some(tx) => match_calldata(
                    number,
                    event.headerHash,
                    event.archive,
                    alloy::consensus::Transaction::input(&tx),
                ),
                None => Err(MissingCalldata::TxNotFound),
            };
            checkpoints.push(L1Checkpoint {
                number,
                header,
                header_hash: event.headerHash,
                archive: event.archive,
                fee_asset_price_modifier,
                l1_block,
                tx_hash,
                calldata,
            });
        }
        Ok(checkpoints)
    }
}

/// Takes the signatures and body of checkpoint `number` from a tx `input`, checking that it is
/// the `propose` call that emitted the event (same number, header hash and archive).
pub fn match_calldata(
    number: u64,
    header_hash: B256,
    archive: B256,
    input: &[u8],
) -> Result<ProposeCalldata, MissingCalldata> {
    let call =
        Rollup::proposeCall::abi_decode(input).map_err(|_| MissingCalldata::NotProposeCall)?;
    if call.args.checkpointNumber != U256::from(number)
        || header_from_sol(&call.args.header).hash() != header_hash
        || call.args.archive != archive
    {
        return Err(MissingCalldata::OtherCheckpoint);
    }
    let mut attestations = Vec::with_capacity(call.attestations.len());
    let mut next = call.attestations.iter();
    for position in 0..256u32 {
        if call.signers.bit(position as usize) {
            let signature = next.next().ok_or(MissingCalldata::BitmapMismatch)?;
            attestations.push((position, signature_from_sol(signature)));
        }
    }
    if next.next().is_some() {
        return Err(MissingCalldata::BitmapMismatch);
    }
    Ok(ProposeCalldata {
        proposer_signature: signature_from_sol(&call.proposerSignature),
        attestations,
        body: call.body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propose::propose_args;
    use tandem_proto::ConsensusPayload;

    fn propose_input(number: u64, payload: &ConsensusPayload, signers: U256, sigs: usize) -> Bytes {
        let signature = Rollup::Signature {
            v: 27,
            r: B256::repeat_byte(1),
            s: B256::repeat_byte(2),
        };
        Rollup::proposeCall {
            args: propose_args(number, payload),
            proposerSignature: signature.clone(),
            attestations: vec![signature; sigs],
            signers,
            body: Bytes::from_static(b"body"),
        }
        .abi_encode()
        .into()
    }

    #[test]
    fn calldata_is_matched_to_its_event_or_a_reason_is_given() {
        let payload = ConsensusPayload {
            archive: B256::repeat_byte(7),
            ..Default::default()
        };
        let hash = payload.header.hash();
        let input = propose_input(3, &payload, U256::from(0b101), 2);
        let decoded = match_calldata(3, hash, payload.archive, &input).unwrap();
        assert_eq!(
            decoded
                .attestations
                .iter()
                .map(|(p, _)| *p)
                .collect::<Vec<_>>(),
            [0, 2]
        );
        assert_eq!(decoded.body, Bytes::from_static(b"body"));

        // A relay contract's own call, or any other input: typed reason, nothing fails.
        assert_eq!(
            match_calldata(3, hash, payload.archive, b"\x12\x34\x56\x78"),
            Err(MissingCalldata::NotProposeCall)
        );
        assert_eq!(
            match_calldata(4, hash, payload.archive, &input),
            Err(MissingCalldata::OtherCheckpoint)
        );
        assert_eq!(
            match_calldata(3, hash, B256::ZERO, &input),
            Err(MissingCalldata::OtherCheckpoint)
        );
        let short = propose_input(3, &payload, U256::from(0b111), 2);
        assert_eq!(
            match_calldata(3, hash, payload.archive, &short),
            Err(MissingCalldata::BitmapMismatch)
        );
        let long = propose_input(3, &payload, U256::from(0b1), 2);
        assert_eq!(
            match_calldata(3, hash, payload.archive, &long),
            Err(MissingCalldata::BitmapMismatch)
        );
    }

    #[test]
    fn proposer_of_matches_the_contract_formula() {
        let committee = EpochCommittee {
            epoch: 3,
            members: (1..=5u8).map(Address::repeat_byte).collect(),
            seed: U256::from(0xdead_beefu64),
        };
        let draw =
            keccak256((U256::from(3), U256::from(25), U256::from(0xdead_beefu64)).abi_encode());
        let index = (U256::from_be_bytes(draw.0) % U256::from(5)).to::<usize>();
        assert_eq!(committee.proposer_of(25), Some(committee.members[index]));
        let empty = EpochCommittee {
            members: Vec::new(),
            ..committee
        };
        assert_eq!(empty.proposer_of(25), None);
    }
}
