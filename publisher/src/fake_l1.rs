//! A scripted L1 for unit tests of the publisher's tasks: blocks the test mines by hand, a
//! mempool keyed by tx hash, receipts, and failures injected per call. Real parts stay real
//! (RocksDB, signing, the actor); only L1 is replaced, through [`L1Chain`].

use std::{
    collections::{HashMap, VecDeque},
    pin::Pin,
    sync::{Mutex, MutexGuard},
};

use alloy::{
    consensus::{Transaction, TxEnvelope},
    eips::eip2718::Decodable2718,
    primitives::{Address, B256},
    transports::{RpcError, TransportErrorKind},
};
use tandem_l1::{L1BlockRef, L1Error, ProposeBundle};

use crate::{
    chain::{Broadcast, L1Chain, L1Future, Receipt},
    error::PublisherError,
    fees::FeeEstimate,
    simulator::SimulatedPropose,
};

/// The calls a test can make fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Call {
    Latest,
    Block,
    MinedNonce,
    PendingNonce,
    Balance,
    Fees,
    Knows,
    Receipt,
    Simulate,
}

/// A tx the fake node knows.
#[derive(Debug, Clone)]
pub(crate) struct PooledTx {
    pub(crate) from: Address,
    pub(crate) nonce: u64,
    /// A 0-value transfer to self.
    pub(crate) is_cancel: bool,
}

/// A broadcast the fake node saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sent {
    pub(crate) hash: B256,
    pub(crate) raw: Vec<u8>,
    pub(crate) nonce: u64,
    pub(crate) is_cancel: bool,
    pub(crate) max_fee_per_gas: u128,
    pub(crate) answer: Broadcast,
}

#[derive(Debug)]
pub(crate) struct FakeState {
    pub(crate) number: u64,
    pub(crate) timestamp: u64,
    pub(crate) mined_nonce: HashMap<Address, u64>,
    pub(crate) pool: HashMap<B256, PooledTx>,
    pub(crate) receipts: HashMap<B256, Receipt>,
    /// Receipts of mined txs the node does not serve yet.
    pub(crate) withheld: HashMap<B256, Receipt>,
    pub(crate) fees: FeeEstimate,
    pub(crate) gas_used: u64,
    /// Calls to fail next, and how many times.
    pub(crate) fail: HashMap<Call, u32>,
    /// Calls made so far.
    pub(crate) calls: HashMap<Call, u32>,
    /// Answers to the next broadcasts of a nonce (otherwise: accepted unless the nonce is
    /// used).
    pub(crate) answers: HashMap<u64, VecDeque<Broadcast>>,
    pub(crate) sent: Vec<Sent>,
}

pub(crate) struct FakeL1 {
    rollup: Address,
    state: Mutex<FakeState>,
}

fn transient() -> PublisherError {
    PublisherError::L1(L1Error::Transport(RpcError::Transport(
        TransportErrorKind::BackendGone,
    )))
}

fn decode(raw: &[u8]) -> (B256, PooledTx, u128) {
    let tx = TxEnvelope::decode_2718(&mut &raw[..]).expect("a signed tx");
    let signed = tx.as_eip1559().expect("an EIP-1559 tx");
    let from = signed
        .signature()
        .recover_address_from_prehash(&signed.signature_hash())
        .expect("a valid signature");
    let pooled = PooledTx {
        from,
        nonce: tx.nonce(),
        is_cancel: tx.to() == Some(from) && tx.input().is_empty(),
    };
    (*tx.tx_hash(), pooled, tx.max_fee_per_gas())
}

impl FakeL1 {
    /// A chain at block 1 with timestamp `timestamp`.
    pub(crate) fn new(rollup: Address, timestamp: u64) -> Self {
        Self {
            rollup,
            state: Mutex::new(FakeState {
                number: 1,
                timestamp,
                mined_nonce: HashMap::new(),
                pool: HashMap::new(),
                receipts: HashMap::new(),
                withheld: HashMap::new(),
                fees: FeeEstimate {
                    next_base_fee: 1_000_000_000,
                    priority_fee: 100_000_000,
                },
                gas_used: 400_000,
                fail: HashMap::new(),
                calls: HashMap::new(),
                answers: HashMap::new(),
                sent: Vec::new(),
            }),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().expect("not poisoned")
    }

    /// Fails the next `times` calls of `call` with a transient transport error.
    pub(crate) fn fail_next(&self, call: Call, times: u32) {
        *self.state().fail.entry(call).or_default() += times;
    }

    pub(crate) fn calls(&self, call: Call) -> u32 {
        self.state().calls.get(&call).copied().unwrap_or(0)
    }

    /// Answers the next broadcast of a tx with `nonce` with `answer`.
    pub(crate) fn answer_next(&self, nonce: u64, answer: Broadcast) {
        self.state()
            .answers
            .entry(nonce)
            .or_default()
            .push_back(answer);
    }

    /// A new empty block `secs` after the latest.
    pub(crate) fn advance(&self, secs: u64) {
        let mut state = self.state();
        state.number += 1;
        state.timestamp += secs;
    }

    /// Puts `raw` in the mempool (as if sent before).
    pub(crate) fn pool(&self, raw: &[u8]) -> B256 {
        let (hash, pooled, _) = decode(raw);
        self.state().pool.insert(hash, pooled);
        hash
    }

    /// The node forgets an unmined tx (dropped from its mempool).
    pub(crate) fn forget(&self, hash: B256) {
        self.state().pool.remove(&hash);
    }

    /// Mines `raw` in a new block `secs` after the latest; `proposed`: the receipt carries our
    /// `CheckpointProposed` event. Other txs of the same nonce leave the pool.
    pub(crate) fn mine(&self, raw: &[u8], secs: u64, proposed: bool) -> Receipt {
        let (hash, receipt) = self.mine_unindexed(raw, secs, proposed);
        self.state().receipts.insert(hash, receipt);
        receipt
    }

    /// [`FakeL1::mine`], but the node serves the receipt only after [`FakeL1::index_receipts`]
    /// (the sender's nonce has moved at once, as on anvil between mining and indexing).
    pub(crate) fn mine_withholding_receipt(&self, raw: &[u8], secs: u64, proposed: bool) {
        let (hash, receipt) = self.mine_unindexed(raw, secs, proposed);
        self.state().withheld.insert(hash, receipt);
    }

    /// Serves every withheld receipt.
    pub(crate) fn index_receipts(&self) {
        let mut state = self.state();
        let withheld = std::mem::take(&mut state.withheld);
        state.receipts.extend(withheld);
    }

    fn mine_unindexed(&self, raw: &[u8], secs: u64, proposed: bool) -> (B256, Receipt) {
        let (hash, pooled, fee) = decode(raw);
        let mut state = self.state();
        state.number += 1;
        state.timestamp += secs;
        state
            .pool
            .retain(|_, tx| !(tx.from == pooled.from && tx.nonce == pooled.nonce));
        state.mined_nonce.insert(
            pooled.from,
            pooled.nonce.checked_add(1).expect("small nonce"),
        );
        let receipt = Receipt {
            block_number: state.number,
            block_hash: B256::with_last_byte(u8::try_from(state.number % 256).unwrap_or(0)),
            proposed,
            gas_used: if pooled.is_cancel {
                21_000
            } else {
                state.gas_used
            },
            effective_gas_price: fee,
        };
        (hash, receipt)
    }

    /// The broadcasts so far.
    pub(crate) fn sent(&self) -> Vec<Sent> {
        self.state().sent.clone()
    }

    fn call(&self, call: Call) -> Result<(), PublisherError> {
        let mut state = self.state();
        *state.calls.entry(call).or_default() += 1;
        match state.fail.get_mut(&call) {
            Some(left) if *left > 0 => {
                *left -= 1;
                Err(transient())
            }
            _ => Ok(()),
        }
    }

    fn pending_nonce_of(state: &FakeState, address: Address) -> u64 {
        let mut nonce = state.mined_nonce.get(&address).copied().unwrap_or(0);
        while state
            .pool
            .values()
            .any(|tx| tx.from == address && tx.nonce == nonce)
        {
            nonce += 1;
        }
        nonce
    }
}

fn ready<'a, T: Send + 'a>(value: Result<T, PublisherError>) -> L1Future<'a, T> {
    Box::pin(std::future::ready(value))
}

impl L1Chain for FakeL1 {
    fn rollup(&self) -> Address {
        self.rollup
    }

    fn chain_id(&self) -> L1Future<'_, u64> {
        ready(Ok(31_337))
    }

    fn latest_block(&self) -> L1Future<'_, L1BlockRef> {
        let result = self.call(Call::Latest).map(|()| {
            let state = self.state();
            L1BlockRef {
                number: state.number,
                hash: B256::with_last_byte(u8::try_from(state.number % 256).unwrap_or(0)),
                timestamp: state.timestamp,
            }
        });
        ready(result)
    }

    fn block(&self, number: u64) -> L1Future<'_, Option<L1BlockRef>> {
        let result = self.call(Call::Block).map(|()| {
            let state = self.state();
            (number <= state.number).then_some(L1BlockRef {
                number,
                hash: B256::with_last_byte(u8::try_from(number % 256).unwrap_or(0)),
                timestamp: state.timestamp,
            })
        });
        ready(result)
    }

    fn mined_nonce(&self, address: Address) -> L1Future<'_, u64> {
        let result = self
            .call(Call::MinedNonce)
            .map(|()| self.state().mined_nonce.get(&address).copied().unwrap_or(0));
        ready(result)
    }

    fn pending_nonce(&self, address: Address) -> L1Future<'_, u64> {
        let result = self
            .call(Call::PendingNonce)
            .map(|()| Self::pending_nonce_of(&self.state(), address));
        ready(result)
    }

    fn balance(&self, _address: Address) -> L1Future<'_, u128> {
        ready(self.call(Call::Balance).map(|()| 10u128.pow(20)))
    }

    fn fee_estimate(&self) -> L1Future<'_, FeeEstimate> {
        ready(self.call(Call::Fees).map(|()| self.state().fees))
    }

    fn broadcast<'a>(
        &'a self,
        raw: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Broadcast> + Send + 'a>> {
        let (hash, pooled, max_fee_per_gas) = decode(raw);
        let mut state = self.state();
        let used = state.mined_nonce.get(&pooled.from).copied().unwrap_or(0) > pooled.nonce;
        let scripted = state
            .answers
            .get_mut(&pooled.nonce)
            .and_then(VecDeque::pop_front);
        let answer = match scripted {
            Some(answer) => answer,
            None if used => Broadcast::Refused(crate::chain::Refusal::NonceTooLow),
            None => Broadcast::Accepted,
        };
        if answer == Broadcast::Accepted && !state.receipts.contains_key(&hash) {
            state.pool.insert(hash, pooled.clone());
        }
        state.sent.push(Sent {
            hash,
            raw: raw.to_vec(),
            nonce: pooled.nonce,
            is_cancel: pooled.is_cancel,
            max_fee_per_gas,
            answer: answer.clone(),
        });
        Box::pin(std::future::ready(answer))
    }

    fn knows(&self, hash: B256) -> L1Future<'_, bool> {
        let result = self.call(Call::Knows).map(|()| {
            let state = self.state();
            state.pool.contains_key(&hash) || state.receipts.contains_key(&hash)
        });
        ready(result)
    }

    fn receipt(&self, hash: B256, _checkpoint_number: u64) -> L1Future<'_, Option<Receipt>> {
        let result = self
            .call(Call::Receipt)
            .map(|()| self.state().receipts.get(&hash).copied());
        ready(result)
    }

    fn simulate_propose<'a>(
        &'a self,
        _bundle: &'a ProposeBundle,
        _time: u64,
        _block: L1BlockRef,
    ) -> L1Future<'a, SimulatedPropose> {
        let result = self.call(Call::Simulate).map(|()| SimulatedPropose {
            gas_used: self.state().gas_used,
        });
        ready(result)
    }
}
