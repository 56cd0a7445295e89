//! The `tandem_*` methods. Each one parses its positional parameters (errors name the
//! parameter), reads one consistent archiver view where it reads the chain, and answers in
//! Ethereum's JSON conventions.

use std::sync::Arc;

use tokio::sync::Semaphore;

use jsonrpsee::{
    RpcModule,
    core::server::{PendingSubscriptionSink, SubscriptionMessage},
    types::{ErrorObjectOwned, Params},
};
use serde::Serialize;
use serde_json::{Value, json};
use tandem_proto::{Tx, WireMessage};
use tandem_validator::ValidatorError;

use super::{
    json::{AccountJson, BlockJson, CheckpointJson, Status, TipsJson, TxJson, TxStatusJson},
    params::{
        BlockRef, INTERNAL, NOT_FOUND, Positional, TX_REJECTED, Tip, UNAVAILABLE, bad_param, error,
        parse_address, parse_block_ref, parse_bool, parse_data, parse_hash, parse_quantity,
        parse_tip, quantity,
    },
};
use crate::{
    config::Role,
    run::{NodeView, Services},
};

type RpcResult<T> = Result<T, ErrorObjectOwned>;

fn services(view: &NodeView) -> RpcResult<&Arc<Services>> {
    view.services.get().ok_or_else(|| {
        error(
            UNAVAILABLE,
            "the node is starting: not bound to the rollup deployment yet",
        )
    })
}

fn internal(err: impl std::fmt::Display) -> ErrorObjectOwned {
    error(INTERNAL, format!("internal error: {err}"))
}

fn to_value(value: impl Serialize) -> RpcResult<Value> {
    serde_json::to_value(value).map_err(internal)
}

/// Registers every method on a module over `view`.
pub(crate) fn module(view: Arc<NodeView>) -> RpcModule<NodeView> {
    let mut module = RpcModule::from_arc(view);
    let reads = Arc::new(Semaphore::new(MAX_CONCURRENT_READS));
    let registered = [
        module
            .register_method("tandem_getL2Tips", |params, view, _| {
                get_l2_tips(&params, view)
            })
            .map(drop),
        module
            .register_async_method("tandem_sendTx", |params, view, _| async move {
                send_tx(&params, &view).await
            })
            .map(drop),
        register_read(&mut module, "tandem_getTx", &reads, get_tx),
        register_read(&mut module, "tandem_getBlock", &reads, get_block),
        register_read(&mut module, "tandem_getCheckpoint", &reads, get_checkpoint),
        register_read(&mut module, "tandem_getAccount", &reads, get_account),
        module
            .register_async_method("tandem_nodeInfo", |params, view, _| async move {
                node_info(&params, &view).await
            })
            .map(drop),
        module
            .register_subscription(
                "tandem_subscribeTips",
                "tandem_tips",
                "tandem_unsubscribeTips",
                |_params, pending, view, _| subscribe_tips(pending, view),
            )
            .map(drop),
    ];
    for result in registered {
        // Names are literals registered once: a clash is a programming error.
        result.expect("RPC method names are unique");
    }
    module
}

/// Store reads (RocksDB, sender recovery, serialisation of up to a whole block) running at
/// once. They run on the blocking pool, off the workers that drive p2p and consensus; the bound
/// keeps a burst of `getBlock(full)` from taking every core.
pub(crate) const MAX_CONCURRENT_READS: usize = 2;

type Read = fn(&Params<'_>, &NodeView) -> RpcResult<Value>;

/// Registers a store read: on the blocking pool, at most [`MAX_CONCURRENT_READS`] at once (the
/// others wait for a permit).
fn register_read(
    module: &mut RpcModule<NodeView>,
    name: &'static str,
    reads: &Arc<Semaphore>,
    read: Read,
) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    let reads = Arc::clone(reads);
    module
        .register_async_method(name, move |params, view, _| {
            let reads = Arc::clone(&reads);
            async move {
                let permit = reads.acquire_owned().await.map_err(internal)?;
                tokio::task::spawn_blocking(move || {
                    // Held until the read ends, even if the caller went away.
                    let _permit = permit;
                    read(&params, &view)
                })
                .await
                .map_err(internal)?
            }
        })
        .map(drop)
}

fn get_l2_tips(params: &Params<'_>, view: &NodeView) -> RpcResult<Value> {
    Positional::new(params, &[])?;
    let services = services(view)?;
    // The tips the archiver published last (checked as one set before it wrote them): no
    // store read needed.
    to_value(TipsJson::from(services.archiver.tips()))
}

async fn send_tx(params: &Params<'static>, view: &NodeView) -> RpcResult<Value> {
    let args = Positional::new(params, &["rawTx"])?;
    let (name, raw) = args.required(0)?;
    let bytes = parse_data(name, raw)?;
    let tx = Tx::from_wire_bytes(&bytes).map_err(|err| bad_param(name, err))?;
    let services = services(view)?;
    let hash = tx.hash();
    match services.state.submit_tx(tx.clone()).await {
        Ok(outcome) => {
            // Gossip after admission: a tx the pool refused is never relayed. The answer says
            // whether it was (with no peers it stays in this node's pool only).
            let gossiped = match services.p2p.publish_tx(&tx).await {
                Ok(_) => true,
                Err(err) => {
                    tracing::warn!(target: "rpc", %hash, error = %err, "tx admitted but not gossiped");
                    false
                }
            };
            let mut answer = match outcome {
                tandem_state::AddOutcome::Added => json!({"hash": hash, "outcome": "added"}),
                tandem_state::AddOutcome::AlreadyKnown => {
                    json!({"hash": hash, "outcome": "alreadyKnown"})
                }
                tandem_state::AddOutcome::Replaced(replaced) => {
                    json!({"hash": hash, "outcome": "replaced", "replaced": replaced})
                }
            };
            answer["gossiped"] = gossiped.into();
            Ok(answer)
        }
        Err(err @ (ValidatorError::InvalidTx(_) | ValidatorError::Pool(_))) => {
            Err(error(TX_REJECTED, err.to_string()))
        }
        Err(err) => Err(internal(err)),
    }
}

fn get_tx(params: &Params<'_>, view: &NodeView) -> RpcResult<Value> {
    let args = Positional::new(params, &["hash"])?;
    let (name, hash) = args.required(0)?;
    let hash = parse_hash(name, hash)?;
    let services = services(view)?;
    let reader = services.archiver.reader();
    let snapshot = reader.view().map_err(internal)?;
    if let Some(found) = snapshot.tx(&hash).map_err(internal)? {
        let tips = snapshot.tips().map_err(internal)?;
        let status = Status::of_block(found.block.number, &tips);
        return to_value(TxStatusJson::in_block(
            status,
            found.block,
            found.index,
            TxJson::new(&found.tx, &services.domain),
        ));
    }
    match services.state.reader().pooled_tx(&hash) {
        Some(pooled) => to_value(TxStatusJson {
            status: Status::Pending,
            block: None,
            index: None,
            tx: TxJson::new(pooled.tx(), &services.domain),
        }),
        None => Ok(Value::Null),
    }
}

fn get_block(params: &Params<'_>, view: &NodeView) -> RpcResult<Value> {
    let args = Positional::new(params, &["block", "includeTxs"])?;
    let (name, block) = args.required(0)?;
    let block = parse_block_ref(name, block)?;
    let full = args
        .optional(1)
        .map(|(name, value)| parse_bool(name, value))
        .transpose()?
        .unwrap_or(false);
    let services = services(view)?;
    let reader = services.archiver.reader();
    let snapshot = reader.view().map_err(internal)?;
    let tips = snapshot.tips().map_err(internal)?;
    let found = match block {
        BlockRef::Number(number) => snapshot.block(number),
        BlockRef::Hash(hash) => snapshot.block_by_hash(&hash),
        BlockRef::Tip(tip) => snapshot.block(tip.of(&tips).block.number),
    }
    .map_err(internal)?;
    match found {
        Some(stored) => to_value(BlockJson::new(
            &stored,
            &tips,
            full.then_some((&view.senders, &services.domain)),
        )),
        None => Err(error(
            NOT_FOUND,
            match block {
                BlockRef::Number(number) => format!(
                    "block {} not found (the proposed tip is {})",
                    quantity(number),
                    quantity(tips.proposed.block.number)
                ),
                BlockRef::Hash(hash) => format!("block {hash} not found"),
                BlockRef::Tip(_) => "the tip's block is not stored".into(),
            },
        )),
    }
}

fn get_checkpoint(params: &Params<'_>, view: &NodeView) -> RpcResult<Value> {
    let args = Positional::new(params, &["checkpoint"])?;
    let (name, value) = args.required(0)?;
    let services = services(view)?;
    let reader = services.archiver.reader();
    let snapshot = reader.view().map_err(internal)?;
    let tips = snapshot.tips().map_err(internal)?;
    let number = match value.as_str() {
        Some(text) if !text.starts_with("0x") => {
            parse_tip(name, value)?.of(&tips).checkpoint.number
        }
        _ => parse_quantity(name, value)?,
    };
    if let Some(record) = snapshot.checkpoint(number).map_err(internal)? {
        return to_value(CheckpointJson::checkpointed(&record, &tips));
    }
    if let Some(proposed) = snapshot.proposed_checkpoint(number).map_err(internal)? {
        return to_value(CheckpointJson::proposed(&proposed));
    }
    Err(error(
        NOT_FOUND,
        format!(
            "checkpoint {} not found (checkpointed tip {}, proposed {})",
            quantity(number),
            quantity(tips.checkpointed.checkpoint.number),
            quantity(tips.proposed_checkpoint.checkpoint.number)
        ),
    ))
}

fn get_account(params: &Params<'_>, view: &NodeView) -> RpcResult<Value> {
    let args = Positional::new(params, &["address", "tip"])?;
    let (name, address) = args.required(0)?;
    let address = parse_address(name, address)?;
    let tip = args
        .optional(1)
        .map(|(name, value)| parse_tip(name, value))
        .transpose()?
        .unwrap_or(Tip::Proposed);
    let services = services(view)?;
    let state = services.state.reader();
    // One read: the account comes from a fork whose block is the one reported (a tip read
    // apart from the account could name a block the account is not from).
    let fork = if tip == Tip::Proposed {
        // The world state's own tip, under one lock.
        state.fork_tip().map_err(internal)?.0
    } else {
        let tips = services.archiver.reader().tips().map_err(internal)?;
        fork_at(tip.of(&tips).block, |number| state.fork(number))?
    };
    let at = tandem_proto::BlockId {
        number: fork.block_number(),
        hash: fork.block_hash(),
    };
    to_value(AccountJson::new(address, fork.account(&address), at))
}

/// A fork on top of block `at`, from `fork` (the world state's fork at a number): the block
/// there must be `at` itself, or the account would be reported at a block it is not from.
fn fork_at(
    at: tandem_proto::BlockId,
    fork: impl FnOnce(u64) -> Result<tandem_state::Fork, tandem_state::StateError>,
) -> RpcResult<tandem_state::Fork> {
    let missing = |why: String| {
        error(
            NOT_FOUND,
            format!(
                "the world state has no state at block {} {} yet ({why})",
                quantity(at.number),
                at.hash
            ),
        )
    };
    let fork = fork(at.number).map_err(|err| missing(err.to_string()))?;
    if fork.block_hash() != at.hash {
        return Err(missing(format!(
            "it holds block {} there",
            fork.block_hash()
        )));
    }
    Ok(fork)
}

async fn node_info(params: &Params<'static>, view: &NodeView) -> RpcResult<Value> {
    Positional::new(params, &[])?;
    let role = match view.role {
        Role::Validator => "validator",
        Role::FullNode => "full_node",
    };
    let ready = sync_json(&view.ready.borrow());
    let Some(services) = view.services.get() else {
        return Ok(json!({
            "version": env!("CARGO_PKG_VERSION"),
            "role": role,
            "sync": ready,
        }));
    };
    let listen = services.p2p.listen_addrs().await.unwrap_or_default();
    let bound = &services.bound;
    Ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "role": role,
        "peerId": services.p2p.local_peer_id().to_string(),
        "p2pAddrs": listen.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "validator": services.validator,
        "proposing": services.sequencer.is_some(),
        "sequencerState": services.sequencer.as_ref().map(|sequencer| sequencer.state().as_str()),
        "deployment": {
            "rollup": bound.rollup,
            "l1ChainId": quantity(bound.l1_chain_id),
            "l2ChainId": quantity(bound.params.l2_chain_id),
            "deploymentBlock": bound.deployment_block.map(quantity),
            "pipeliningMode": bound.params.pipelining_mode.to_string(),
            "slotDuration": quantity(bound.params.slot_duration),
            "l1SlotDuration": quantity(bound.params.l1_slot_duration),
            "genesisTime": quantity(bound.params.genesis_time),
        },
        "sync": ready,
    }))
}

/// The readiness report in the RPC's conventions (0x-hex quantities); `/ready` keeps decimals.
fn sync_json(report: &crate::run::health::ReadyReport) -> Value {
    json!({
        "ready": report.ready,
        "reasons": report.reasons,
        "l1Head": report.l1_head.map(quantity),
        "l1Synced": report.l1_synced.map(quantity),
        "archiverTip": report.archiver_tip.map(quantity),
        "worldStateTip": report.world_state_tip.map(quantity),
        "peers": report.peers.map(|p| quantity(p as u64)),
        "minPeers": quantity(u64::from(report.min_peers)),
        "clockOffsetMs": report.clock_offset_ms,
    })
}

async fn subscribe_tips(
    pending: PendingSubscriptionSink,
    view: Arc<NodeView>,
) -> jsonrpsee::core::SubscriptionResult {
    let services = match services(&view) {
        Ok(services) => Arc::clone(services),
        Err(err) => {
            pending.reject(err).await;
            return Ok(());
        }
    };
    let mut tips = services.archiver.watch_tips();
    let sink = pending.accept().await?;
    loop {
        let current = TipsJson::from(*tips.borrow_and_update());
        let message = SubscriptionMessage::from(serde_json::value::to_raw_value(&current)?);
        if sink.send(message).await.is_err() {
            return Ok(());
        }
        tokio::select! {
            () = sink.closed() => return Ok(()),
            changed = tips.changed() => if changed.is_err() { return Ok(()) },
        }
    }
}

#[cfg(test)]
mod tests {
    use tandem_proto::{B256, BlockId};
    use tandem_state::{ChainSpec, WorldState, WorldStateConfig};

    use super::*;

    /// `getAccount` at a tip: the world state's block at the tip's number must be the tip's
    /// block; another block there (the state followed another fork) is −32001 naming both.
    #[test]
    fn an_account_is_read_only_at_the_tips_own_block() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ChainSpec {
            chain_id: 1,
            rollup_version: 1,
            genesis_allocation: vec![(tandem_proto::Address::repeat_byte(1), 5)],
        };
        let world = WorldState::open(dir.path(), spec, WorldStateConfig::default()).unwrap();
        let genesis = world.fork(0).unwrap().block_hash();

        let fork = fork_at(
            BlockId {
                number: 0,
                hash: genesis,
            },
            |n| world.fork(n),
        )
        .unwrap();
        assert_eq!(fork.block_hash(), genesis);

        let other = B256::repeat_byte(7);
        let err = fork_at(
            BlockId {
                number: 0,
                hash: other,
            },
            |n| world.fork(n),
        )
        .unwrap_err();
        assert_eq!(err.code(), NOT_FOUND);
        assert_eq!(
            err.message(),
            format!(
                "the world state has no state at block 0x0 {other} yet (it holds block {genesis} there)"
            )
        );

        let err = fork_at(
            BlockId {
                number: 3,
                hash: other,
            },
            |n| world.fork(n),
        )
        .unwrap_err();
        assert_eq!(err.code(), NOT_FOUND);
        assert!(
            err.message().starts_with(&format!(
                "the world state has no state at block 0x3 {other} yet ("
            )),
            "{}",
            err.message()
        );
    }
}
