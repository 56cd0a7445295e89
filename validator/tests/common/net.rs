//! The test network: constants, keys, committee, users, the shared clock, an empty L1, no
//! peers, and the node's real signer.

use super::*;

pub const CHAIN_ID: u64 = 31_337;
pub const SLOT: Duration = Duration::from_secs(60);
pub const L1_SLOT: Duration = Duration::from_secs(12);
pub const BLOCK: Duration = Duration::from_secs(6);
/// The first slot tests propose for.
pub const TARGET: Slot = Slot(10);
/// The clock at the start: 40 s before slot 10 starts, inside its proposal window
/// (`[T − 72.5 s, T − 17.5 s]`).
pub const START: Timestamp = Timestamp(1_000_000_000);
/// Longest wait for an event before a test fails (tests never sleep to synchronise).
pub const PATIENCE: Duration = Duration::from_secs(30);
pub const USERS: usize = 8;
pub const BALANCE: u128 = 1_000_000_000_000_000_000;
pub const FEE: u128 = 10;

pub struct Net {
    pub domain: SigningDomain,
    pub windows: ConsensusWindows,
    pub clock: ManualClock,
    /// The validators (the committee, in order; the proposer of slot s is `keys[s % 4]`).
    pub keys: Vec<SigningKey>,
    pub committee: Arc<StaticCommittee>,
    pub spec: ChainSpec,
    pub users: Vec<SigningKey>,
    pub params: NetworkParams,
    /// The protocol's `max_checkpoint_body_bytes` (builders and the all-nodes handler).
    pub max_body_bytes: usize,
}

impl Net {
    pub fn new() -> Self {
        let genesis = Timestamp(START.as_millis() + 40_000 - 10 * SLOT.as_millis() as u64);
        let slot_clock = SlotClock::new(genesis, SLOT, L1_SLOT, 32).unwrap();
        let windows = ConsensusWindows::new(slot_clock, BLOCK, PipeliningMode::Pipelined, BLOCK);
        let domain = SigningDomain {
            chain_id: CHAIN_ID,
            rollup: Address::repeat_byte(0xaa),
        };
        let keys: Vec<SigningKey> = (1..=4u8)
            .map(|i| SigningKey::from_bytes(&[i; 32]).unwrap())
            .collect();
        let users: Vec<SigningKey> = (0..USERS as u8)
            .map(|i| SigningKey::from_bytes(&[0x50 + i; 32]).unwrap())
            .collect();
        let spec = ChainSpec {
            chain_id: CHAIN_ID,
            rollup_version: 1,
            genesis_allocation: users.iter().map(|key| (key.address(), BALANCE)).collect(),
        };
        Self {
            committee: Arc::new(StaticCommittee::new(
                keys.iter().map(SigningKey::address).collect::<Vec<_>>(),
            )),
            params: NetworkParams::new(
                domain,
                windows,
                SLOT,
                TxRules {
                    min_mana_limit: tandem_state::TX_MANA,
                },
            ),
            domain,
            windows,
            clock: ManualClock::new(START),
            keys,
            users,
            spec,
            max_body_bytes: DEFAULT_MAX_CHECKPOINT_BODY_BYTES,
        }
    }

    /// Moves the clock to 40 s before `slot` starts (inside its proposal window).
    pub fn enter(&self, slot: Slot) {
        let start = self.windows.slot_clock().slot_start(slot);
        self.clock
            .set(start.saturating_sub(Duration::from_secs(40)));
    }

    pub fn proposer(&self, slot: Slot) -> &SigningKey {
        &self.keys[(slot.0 % self.keys.len() as u64) as usize]
    }

    /// A transfer of `amount` from user `user`.
    pub fn transfer(&self, user: usize, nonce: u64, amount: u128) -> Tx {
        Tx::sign(
            TxPayload {
                chain_id: CHAIN_ID,
                nonce,
                to: Address::repeat_byte(0x77),
                amount,
                max_fee_per_mana: FEE,
                mana_limit: tandem_state::TX_MANA,
            },
            &self.domain,
            &self.users[user],
        )
    }

    /// L1's fee model on a chain with only genesis on L1 ([`GenesisFees`]).
    pub fn fees(&self) -> Arc<dyn FeeOracle> {
        Arc::new(GenesisFees {
            genesis_archive: self.spec.genesis_archive_root(),
        })
    }

    pub fn checkpoint_rules(&self) -> CheckpointRules {
        CheckpointRules {
            max_body_bytes: self.max_body_bytes,
            ..CheckpointRules::default()
        }
    }
}

/// An L1 that never has anything: the archiver follows it without events, so nothing is ever
/// checkpointed and the uncheckpointed-slot prune never fires.
pub struct EmptyL1 {
    pub genesis_secs: u64,
}

impl L1Source for EmptyL1 {
    fn latest_block(&self) -> L1Future<'_, u64> {
        async { Ok(0) }.boxed()
    }

    fn finalized_block(&self) -> L1Future<'_, Option<L1Block>> {
        async { Ok(None) }.boxed()
    }

    fn block(&self, number: u64) -> L1Future<'_, Option<L1Block>> {
        let genesis = self.genesis_secs;
        async move {
            Ok((number == 0).then_some(L1Block {
                number: 0,
                hash: B256::repeat_byte(0x11),
                parent_hash: B256::ZERO,
                timestamp: genesis,
            }))
        }
        .boxed()
    }

    fn checkpoint_events(&self, _from: u64, _to: u64) -> L1Future<'_, Vec<L1CheckpointEvent>> {
        async { Ok(Vec::new()) }.boxed()
    }
}

/// The fee side of [`EmptyL1`]: L1 holds genesis only, with the contract's fee parameters
/// set so that the fee never moves from [`FEE`] (a mana target nobody reaches, price 1.0), so
/// the tests' proposals carry [`FEE`] in every checkpoint. The fee rule itself is tested on a
/// real contract (`tests/fees.rs`).
pub struct GenesisFees {
    pub genesis_archive: B256,
}

impl FeeOracle for GenesisFees {
    fn params(&self) -> FeeParams {
        FeeParams {
            mana_target: u64::MAX,
            min_fee_per_mana: FEE as u64,
            fee_update_fraction: 1,
        }
    }

    fn l1_fee_header(
        &self,
        number: u64,
        archive: B256,
        _header_hash: B256,
    ) -> BoxFuture<'_, ValidatorResult<Option<FeeHeader>>> {
        let genesis = number == 0 && archive == self.genesis_archive;
        async move {
            Ok(genesis.then_some(FeeHeader {
                mana_used: 0,
                excess_mana: 0,
                eth_per_fee_asset: tandem_l1::PRICE_PRECISION,
            }))
        }
        .boxed()
    }
}

/// A network without peers (for processors driven directly).
pub struct NoPeers;

impl PeerNetwork for NoPeers {
    fn report_peer(&self, _peer: PeerId, _action: PeerAction) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }

    fn request_txs(
        &self,
        _peer: Option<PeerId>,
        _hashes: Vec<B256>,
    ) -> BoxFuture<'_, Result<Vec<Tx>, RequestError>> {
        async { Err(RequestError::Stopped) }.boxed()
    }

    fn request_proposed_chain(
        &self,
        _after: ChainPoint,
        _max_blocks: u32,
    ) -> BoxFuture<'_, Result<(PeerId, Vec<ChainBlock>), RequestError>> {
        async { Err(RequestError::Stopped) }.boxed()
    }
}

/// The node's slashing-protected signer holding `keys`, over a new record in `dir`
/// (created in init mode from slot 0, so every duty of the tests is its to sign).
pub fn protected_signer(net: &Net, keys: Vec<SigningKey>, dir: &Path) -> ProtectedSigner {
    ProtectedSigner::open(
        &dir.join("slashing-protection"),
        net.domain,
        keys,
        OpenMode::Initialize {
            first_slot: Slot(0),
        },
    )
    .unwrap()
}
