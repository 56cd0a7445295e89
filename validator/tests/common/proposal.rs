//! Proposals as a proposer builds them (real blocks executed on its own world state, signed),
//! and tampering helpers.

use super::*;

/// A proposal as a proposer builds it: blocks executed on its own world state, signed.
#[derive(Clone)]
pub struct Proposal {
    pub blocks: Vec<BlockProposal>,
    pub executed: Vec<(ExecutedBlock, Vec<RecoveredTx>)>,
    pub checkpoint: CheckpointProposal,
    /// The archive before each block.
    pub archives: Vec<ArchiveTree>,
    pub key: SigningKey,
}

/// The archive tree after block `number` of `reader`'s chain.
pub fn archive_at(reader: &ArchiverReader, number: u64) -> ArchiveTree {
    let view = reader.view().unwrap();
    let mut archive = ArchiveTree::new();
    for n in 0..=number {
        archive
            .append(view.block_hash(n).unwrap().unwrap())
            .unwrap();
    }
    archive
}

/// Builds a checkpoint for `slot` on top of the tip of `stores` (`per_block[i]` are block
/// `i`'s txs), signed by the slot's proposer.
pub fn build(net: &Net, stores: &Stores, slot: Slot, per_block: Vec<Vec<Tx>>) -> Proposal {
    build_on(net, stores, slot, per_block, net.proposer(slot).clone())
}

pub fn build_on(
    net: &Net,
    stores: &Stores,
    slot: Slot,
    per_block: Vec<Vec<Tx>>,
    key: SigningKey,
) -> Proposal {
    let (mut fork, tip) = stores.state.reader().fork_tip().unwrap();
    let parent = stores
        .archiver
        .reader()
        .view()
        .unwrap()
        .header(tip.number)
        .unwrap()
        .unwrap();
    assert_eq!(parent.hash, tip.hash, "world state and archiver differ");
    let mut archive = archive_at(stores.archiver.reader(), tip.number);
    let timestamp = net.windows.slot_clock().slot_start(slot).as_secs();
    let mut budget = CheckpointBodyBudget::new(net.max_body_bytes);
    let mut blocks = Vec::new();
    let mut executed = Vec::new();
    let mut archives = Vec::new();
    for (index, txs) in per_block.into_iter().enumerate() {
        let globals = BlockGlobals {
            checkpoint_number: parent.header.checkpoint_number + 1,
            index_within_checkpoint: index as u32,
            slot: slot.0,
            timestamp,
            coinbase: key.address(),
            fee_recipient: Address::repeat_byte(0xfe),
            fee_per_mana: FEE,
        };
        let mut pool = TxPool::new(PoolConfig {
            max_txs: 1_000_000,
            max_bytes: usize::MAX,
            max_txs_per_sender: 100_000,
            max_nonce_gap: 0,
            ..PoolConfig::default()
        });
        for tx in txs {
            let tx = validate_stateless(tx, &net.domain).unwrap();
            let account = fork.account(&tx.sender());
            pool.add(tx, &account).unwrap();
        }
        let limits = BuildLimits {
            max_txs: usize::MAX,
            max_mana: u64::MAX,
            max_body_bytes: budget.remaining(),
            deadline: Timestamp(u64::MAX),
        };
        let built = {
            let mut best = pool.best(|address| fork.account(address).nonce);
            build_block(&fork, &globals, &mut best, &limits, &net.clock).unwrap()
        };
        assert!(built.failed.is_empty(), "a tx failed: {:?}", built.failed);
        budget.add_block(built.txs.len());
        let (block, txs) = fork.commit(built).unwrap();
        archives.push(archive.clone());
        archive.append(block.block().hash()).unwrap();
        let proposal = BlockProposal::sign(
            block.block().header.clone(),
            block.archive_root(),
            txs.iter().map(|tx| tx.tx().clone()).collect(),
            &net.domain,
            &key,
        );
        blocks.push(proposal);
        executed.push((block, txs));
    }
    let headers: Vec<tandem_proto::Block> =
        executed.iter().map(|(e, _)| e.block().clone()).collect();
    let (header, _) =
        tandem_proto::checkpoint_header_of(headers[0].header.last_archive_root, &headers).unwrap();
    let payload = ConsensusPayload {
        header,
        archive: archive.root(),
        fee_asset_price_modifier: 0,
    };
    let checkpoint = CheckpointProposal::sign(payload, None, &net.domain, &key);
    Proposal {
        blocks,
        executed,
        checkpoint,
        archives,
        key,
    }
}

impl Proposal {
    /// Block `index` as the archiver stores it (its header as it is now, txs with senders).
    pub fn stored_block(&self, index: usize) -> ProposedBlock {
        ProposedBlock {
            header: self.blocks[index].header.clone(),
            txs: self.executed[index].1.clone(),
            proposer_signature: self.blocks[index].signature,
        }
    }

    /// Re-signs block `index` after a change to its header (its archive root recomputed).
    pub fn resign_block(&mut self, net: &Net, index: usize) {
        let block = &mut self.blocks[index];
        let mut archive = self.archives[index].clone();
        block.archive_root = archive.append(block.header.hash()).unwrap();
        block.tx_hashes = block.txs.iter().map(Tx::hash).collect();
        block.signature = self.key.sign(
            &net.domain,
            SignatureKind::BlockProposal,
            block.payload_hash(),
        );
    }

    /// Rebuilds the checkpoint header from the (possibly changed) blocks and re-signs it.
    pub fn rebuild_checkpoint(&mut self, net: &Net) {
        let blocks: Vec<tandem_proto::Block> = self
            .blocks
            .iter()
            .map(|b| tandem_proto::Block {
                header: b.header.clone(),
                txs: b.txs.clone(),
            })
            .collect();
        let (header, _) =
            tandem_proto::checkpoint_header_of(blocks[0].header.last_archive_root, &blocks)
                .unwrap();
        self.checkpoint.payload.header = header;
        self.checkpoint.payload.archive = self.blocks.last().unwrap().archive_root;
        self.resign_checkpoint(net);
    }

    pub fn resign_checkpoint(&mut self, net: &Net) {
        self.checkpoint.signature = self.key.sign(
            &net.domain,
            SignatureKind::CheckpointProposal,
            self.checkpoint.payload.payload_hash(),
        );
    }

    pub fn last_archive(&self) -> B256 {
        self.checkpoint.payload.archive
    }
}
