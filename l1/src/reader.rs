//! Read access to the rollup on L1: tips, archives, fee headers, committees, and the
//! `CheckpointProposed` events with their decoded calldata (what the archiver syncs from).

use std::collections::BTreeMap;

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256, Bytes, U256},
    providers::Provider,
    rpc::types::{Filter, state::StateOverride},
    sol_types::{SolCall, SolEvent},
};
use tandem_proto::{CheckpointHeader, Signature};

use crate::{
    bindings::Rollup,
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

/// A checkpoint as published on L1: the event plus the decoded `propose` calldata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L1Checkpoint {
    /// Checkpoint number.
    pub number: u64,
    /// Header.
    pub header: CheckpointHeader,
    /// Header hash (as emitted).
    pub header_hash: B256,
    /// Archive root after its last block.
    pub archive: B256,
    /// Fee-asset price modifier.
    pub fee_asset_price_modifier: i64,
    /// Proposer signature.
    pub proposer_signature: Signature,
    /// Attestations with the committee position of each signer.
    pub attestations: Vec<(u32, Signature)>,
    /// The checkpoint body (all txs).
    pub body: Bytes,
    /// The L1 block that included it.
    pub l1_block: L1BlockRef,
    /// The L1 tx.
    pub tx_hash: B256,
}

/// Reads the rollup through any alloy provider.
#[derive(Debug, Clone)]
pub struct L1Reader<P> {
    provider: P,
    rollup: Address,
}

type ViewCall<P, C> = alloy::contract::CallBuilder<P, std::marker::PhantomData<C>>;

fn with_overrides<P: Provider, C: SolCall>(
    call: ViewCall<P, C>,
    overrides: Option<StateOverride>,
) -> ViewCall<P, C> {
    match overrides {
        Some(overrides) => call.state(overrides),
        None => call,
    }
}

fn to_u64(value: U256, what: &'static str) -> L1Result<u64> {
    u64::try_from(value).map_err(|_| L1Error::Unexpected(what))
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

    /// `(checkpointed, proven)`.
    pub async fn tips(&self) -> L1Result<(u64, u64)> {
        let tips = self.contract().getTips().call().await?;
        Ok((
            to_u64(tips.checkpointed, "tip above u64")?,
            to_u64(tips.proven, "tip above u64")?,
        ))
    }

    /// Archive root after checkpoint `number` (zero if none).
    pub async fn archive_at(&self, number: u64) -> L1Result<B256> {
        Ok(self.contract().archiveAt(U256::from(number)).call().await?)
    }

    /// The stored log of checkpoint `number`.
    pub async fn checkpoint_log(&self, number: u64) -> L1Result<CheckpointLog> {
        let log = self
            .contract()
            .getCheckpointLog(U256::from(number))
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
    ) -> L1Result<FeeHeader> {
        let contract = self.contract();
        let header = with_overrides(contract.getFeeHeader(U256::from(number)), overrides)
            .call()
            .await?;
        Ok(FeeHeader {
            mana_used: to_u64(header.manaUsed, "mana used above u64")?,
            excess_mana: to_u64(header.excessMana, "excess above u64")?,
            eth_per_fee_asset: to_u64(header.ethPerFeeAsset, "price above u64")?,
        })
    }

    /// Min fee per mana the next checkpoint must carry, optionally under `overrides`.
    pub async fn mana_min_fee(&self, overrides: Option<StateOverride>) -> L1Result<u128> {
        let contract = self.contract();
        let fee = with_overrides(contract.getManaMinFee(), overrides)
            .call()
            .await?;
        u128::try_from(fee).map_err(|_| L1Error::Unexpected("fee above u128"))
    }

    /// Committee of `epoch`, in committee order.
    pub async fn committee(&self, epoch: u64) -> L1Result<Vec<Address>> {
        Ok(self
            .contract()
            .getEpochCommittee(U256::from(epoch))
            .call()
            .await?)
    }

    /// Proposer of the slot containing `timestamp`; `None` when anyone may propose.
    pub async fn proposer_at(&self, timestamp: u64) -> L1Result<Option<Address>> {
        let proposer = self
            .contract()
            .getProposerAt(U256::from(timestamp))
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
    ) -> L1Result<(u64, u64)> {
        let contract = self.contract();
        let call = contract.canProposeAtTime(U256::from(timestamp), archive, proposer);
        let result = with_overrides(call, overrides).call().await?;
        Ok((
            to_u64(result.slot, "slot above u64")?,
            to_u64(result.nextCheckpointNumber, "number above u64")?,
        ))
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
        Ok(block.map(|block| L1BlockRef {
            number: block.header.number,
            hash: block.header.hash,
            timestamp: block.header.timestamp,
        }))
    }

    /// Latest finalized L1 block.
    pub async fn finalized_block(&self) -> L1Result<Option<L1BlockRef>> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Finalized)
            .await?;
        Ok(block.map(|block| L1BlockRef {
            number: block.header.number,
            hash: block.header.hash,
            timestamp: block.header.timestamp,
        }))
    }

    /// Checkpoints published in L1 blocks `from..=to`, in order, with their calldata decoded.
    pub async fn checkpoints_proposed(&self, from: u64, to: u64) -> L1Result<Vec<L1Checkpoint>> {
        let filter = Filter::new()
            .address(self.rollup)
            .event_signature(Rollup::CheckpointProposed::SIGNATURE_HASH)
            .from_block(from)
            .to_block(to);
        let logs = self.provider.get_logs(&filter).await?;
        let mut blocks: BTreeMap<u64, L1BlockRef> = BTreeMap::new();
        let mut checkpoints = Vec::with_capacity(logs.len());
        for log in logs {
            let event = Rollup::CheckpointProposed::decode_log(&log.inner)
                .map_err(|_| L1Error::Unexpected("undecodable CheckpointProposed log"))?;
            let number = to_u64(event.checkpointNumber, "checkpoint number above u64")?;
            let tx_hash = log
                .transaction_hash
                .ok_or(L1Error::Unexpected("log without tx hash"))?;
            let block_number = log
                .block_number
                .ok_or(L1Error::Unexpected("log without block number"))?;
            let l1_block = match blocks.get(&block_number) {
                Some(block) => *block,
                None => {
                    let block = self
                        .block(block_number)
                        .await?
                        .ok_or(L1Error::Unexpected("block of a log is missing"))?;
                    blocks.insert(block_number, block);
                    block
                }
            };
            let tx = self
                .provider
                .get_transaction_by_hash(tx_hash)
                .await?
                .ok_or(L1Error::Unexpected("tx of a log is missing"))?;
            let input = alloy::consensus::Transaction::input(&tx);
            let call = Rollup::proposeCall::abi_decode(input).map_err(|_| {
                L1Error::NotProposeCalldata {
                    tx: tx_hash,
                    checkpoint: number,
                }
            })?;
            let header = header_from_sol(&call.args.header);
            if header.hash() != event.headerHash || call.args.archive != event.archive {
                return Err(L1Error::NotProposeCalldata {
                    tx: tx_hash,
                    checkpoint: number,
                });
            }
            let mut attestations = Vec::with_capacity(call.attestations.len());
            let mut next = call.attestations.iter();
            for position in 0..256u32 {
                if call.signers.bit(position as usize) {
                    let signature = next
                        .next()
                        .ok_or(L1Error::Unexpected("bitmap longer than attestations"))?;
                    attestations.push((position, signature_from_sol(signature)));
                }
            }
            checkpoints.push(L1Checkpoint {
                number,
                header,
                header_hash: event.headerHash,
                archive: event.archive,
                fee_asset_price_modifier: i64::try_from(call.args.feeAssetPriceModifier)
                    .map_err(|_| L1Error::Unexpected("fee modifier above i64"))?,
                proposer_signature: signature_from_sol(&call.proposerSignature),
                attestations,
                body: call.body,
                l1_block,
                tx_hash,
            });
        }
        Ok(checkpoints)
    }
}
