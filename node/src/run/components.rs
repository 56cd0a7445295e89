//! Builds the node's components once it is bound to its deployment, and hands them to the
//! supervisor as named futures. Every node: archiver (writer + readers + L1 sync), world state,
//! state service with the chain follower, epoch cache, p2p with the all-nodes handlers.
//! Validators also: the slashing-protected signer, the validator (attesting) handler and the
//! publisher and the sequencer. Shutdown runs in stages: sequencer, publisher, stores.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use eyre::{WrapErr, eyre};
use tandem_archiver::{ArchiverActor, ArchiverHandle, ArchiverStore, ArchiverTiming, SyncConfig};
use tandem_l1::L1Reader;
use tandem_p2p::{
    CommitteeSource, HandlersBuilder, Multiaddr, NetworkParams, P2pDeps, P2pHandle, P2pService,
    TxRules,
};
use tandem_proto::{SigningDomain, SigningKey, time::Clock};
use tandem_publisher::{Publisher, PublisherDeps, PublisherHandle, PublisherKeys};
use tandem_sequencer::{ArchiverChain, ProtocolParams, Sequencer, SequencerDeps, SequencerHandle};
use tandem_state::{ChainSpec, WorldState, WorldStateConfig};
use tandem_validator::{
    AllNodesCheckpointProcessor, ArchiverChainProvider, AttestingProcessor, BlockProposalProcessor,
    CheckpointRules, DutySigner, EpochCacheActor, EpochCacheConfig, EpochCacheHandle, L1FeeOracle,
    OpenMode, ProtectedSigner, StateHandle, StateService, StateServiceConfig, TxGossipHandler,
    ValidatorContext,
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Component, RunOptions, component};
use crate::{
    binding::Bound,
    config::{Config, Role},
    datadir::{DataDir, DeploymentBinding},
};

/// Most L1 ranges one archiver fetch reads (bounds a catch-up step).
const MAX_L1_BATCHES_PER_STEP: u32 = 10;
/// How often a node with at least one peer asks its peers for proposed blocks it lacks.
const CATCH_UP_INTERVAL: Duration = Duration::from_secs(5);

/// What this node accepts from other proposers (gossiped blocks, checkpoints). Network
/// constants only: `[sequencer]` shapes what this node builds, and a validator with smaller
/// local budgets or caps must still accept an honest proposer's larger blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AcceptanceLimits {
    /// `⌈S / D⌉`: one block per D over the slot, the most any schedule can produce.
    max_blocks_per_checkpoint: u64,
    /// The txs of a one-block checkpoint that fit the body cap (no block can hold more and
    /// still land), within the wire format's maximum.
    max_txs_per_block: usize,
    /// The deployment's body cap.
    max_body_bytes: usize,
}

fn acceptance_limits(config: &Config) -> AcceptanceLimits {
    let max_body_bytes =
        usize::try_from(config.protocol.max_checkpoint_body_bytes()).unwrap_or(usize::MAX);
    let max_blocks_per_checkpoint = config.windows().map_or_else(
        |_| CheckpointRules::default().max_blocks_per_checkpoint,
        |windows| u64::from(windows.max_blocks_per_checkpoint()),
    );
    AcceptanceLimits {
        max_blocks_per_checkpoint: max_blocks_per_checkpoint
            .min(u64::try_from(tandem_proto::MAX_BLOCKS_PER_CHECKPOINT).unwrap_or(u64::MAX)),
        max_txs_per_block: tandem_proto::max_txs_in_checkpoint_body(max_body_bytes, 1)
            .min(tandem_proto::MAX_TXS_PER_BLOCK),
        max_body_bytes,
    }
}

/// The keys a validator signs with, decrypted at start.
pub(crate) struct NodeKeys {
    /// The validator (attester and proposer) key.
    validator: Option<SigningKey>,
    /// The L1 accounts paying for propose txs.
    publisher: Option<PublisherKeys>,
}

impl NodeKeys {
    /// Decrypts the keys `config` names: a validator needs both kinds, a full node none.
    pub(crate) fn load(config: &Config) -> eyre::Result<Self> {
        if config.node.role == Role::FullNode {
            return Ok(Self {
                validator: None,
                publisher: None,
            });
        }
        let (keystore, password) =
            match (&config.validator.keystore, &config.validator.password_file) {
                (Some(keystore), Some(password)) => (keystore, password),
                _ => eyre::bail!(
                    "validator.keystore and validator.password_file are required for a validator"
                ),
            };
        let key = crate::keys::load_keystore(keystore, password).wrap_err("validator.keystore")?;
        info!(target: "node", address = %key.address(), "validator key loaded");
        let publisher = config.publisher.load_keys(&[key.address()])?;
        info!(target: "node", keys = ?publisher, "publisher keys loaded");
        Ok(Self {
            validator: Some(key),
            publisher: Some(publisher),
        })
    }
}

/// What the RPC methods and the health monitor use.
pub(crate) struct Services {
    /// The deployment.
    pub(crate) bound: Bound,
    /// Signing domain of the deployment.
    pub(crate) domain: SigningDomain,
    /// Chain store.
    pub(crate) archiver: ArchiverHandle,
    /// World state and pool.
    pub(crate) state: StateHandle,
    /// Gossip.
    pub(crate) p2p: P2pHandle,
    /// Committees.
    pub(crate) epochs: EpochCacheHandle,
    /// The publisher (validators); held because the publisher stops once every handle is gone.
    pub(crate) _publisher: Option<PublisherHandle>,
    /// The sequencer (validators with publisher keys).
    pub(crate) sequencer: Option<SequencerHandle>,
    /// The validator address (validators).
    pub(crate) validator: Option<tandem_proto::Address>,
    /// L1 RPC.
    pub(crate) l1: DynProvider,
}

/// Opens the stores and builds every component; returns what the RPC needs and the
/// components to supervise. Nothing runs until the supervisor spawns them.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn build(
    config: &Config,
    bound: &Bound,
    data: &DataDir,
    keys: NodeKeys,
    options: RunOptions,
    clock: &Arc<dyn Clock>,
    cancel: &CancellationToken,
) -> eyre::Result<(Services, Vec<Component>)> {
    let mut components = Vec::new();
    // Shutdown in stages: the sequencer stops on `cancel` and interrupts the publisher (whose
    // loop then ends, flushing its store) while it awaits its last pipeline (bounded); the
    // stores close once both have ended. Without a sequencer the stages collapse onto `cancel`.
    let proposes = keys.validator.is_some() && keys.publisher.is_some();
    let (publisher_cancel, stores_cancel) = if proposes {
        (CancellationToken::new(), CancellationToken::new())
    } else {
        (cancel.clone(), cancel.clone())
    };
    let domain = bound.domain();
    let slot_clock = config.slot_clock()?;
    let windows = config.windows()?;
    let l1 = l1_provider(&config.l1.rpc_url)?;
    let reader = L1Reader::new(l1.clone(), bound.rollup);
    let spec = ChainSpec {
        chain_id: bound.params.l2_chain_id,
        rollup_version: bound.params.rollup_version,
        genesis_allocation: config.protocol.allocation(),
    };

    let genesis = spec.genesis_header();
    data.bind(&DeploymentBinding {
        l1_chain_id: bound.l1_chain_id,
        rollup: bound.rollup,
        l2_chain_id: bound.params.l2_chain_id,
        genesis_hash: genesis.hash(),
    })?;

    // Archiver: the single writer of chain data, following L1.
    let store = ArchiverStore::open(&data.archiver(), &genesis, domain)
        .wrap_err_with(|| format!("opening the chain store in {}", data.archiver().display()))?;
    let sync = SyncConfig {
        deployment_block: bound.deployment_block.unwrap_or(0),
        confirmations: config.archiver.l1_confirmations,
        batch_size: config.archiver.l1_batch_size,
        max_batches_per_step: MAX_L1_BATCHES_PER_STEP,
        orphan_prune_tolerance: config.protocol.l1_slot_duration(),
    };
    let timing = ArchiverTiming {
        clock: Arc::clone(clock),
        slot_clock,
        windows,
        poll_interval: config.archiver.l1_poll_interval,
    };
    // Bodies of L1 checkpoints whose calldata cannot be read wait for local data: p2p has no
    // request for a checkpoint body yet.
    let (archiver, archiver_actor) =
        ArchiverActor::new(store, Arc::new(reader.clone()), None, sync, timing);
    components.push(component(
        "archiver",
        archiver_actor.run(stores_cancel.clone()),
    ));

    // World state + pool behind the state service, kept equal to the archiver by the follower.
    let world = WorldState::open(&data.state(), spec.clone(), WorldStateConfig::default())
        .wrap_err_with(|| format!("opening the world state in {}", data.state().display()))?;
    let (state, state_service) = StateService::new(
        world,
        StateServiceConfig::new(domain),
        Arc::new(archiver.clone()),
    );
    components.push(component(
        "state service",
        state_service.run(stores_cancel.clone()),
    ));

    // Committees from L1, for gossip validation, attesting and proposing.
    let epoch_config = EpochCacheConfig {
        poll_interval: config.protocol.l1_slot_duration(),
        ..EpochCacheConfig::default()
    };
    let (epochs, epoch_actor) =
        EpochCacheActor::new(epoch_config, slot_clock, Arc::clone(clock), reader.clone())?;
    let run_epochs = epoch_actor.run(cancel.clone());
    components.push(component("epoch cache", async move {
        run_epochs.await;
        Ok::<(), eyre::Report>(())
    }));
    let committee: Arc<dyn CommitteeSource> = Arc::new(epochs.cache());

    // p2p with the handlers.
    let provider = Arc::new(ArchiverChainProvider::new(
        archiver.reader().clone(),
        state.reader().clone(),
    ));
    let accepted = acceptance_limits(config);
    let mut params = NetworkParams::new(
        domain,
        windows,
        config.protocol.slot_duration(),
        TxRules {
            min_mana_limit: tandem_state::TX_MANA,
        },
    );
    params.max_txs_per_block = accepted.max_txs_per_block;
    let (p2p, p2p_service) = P2pService::new(
        p2p_config(config, data)?,
        params,
        P2pDeps {
            committee: Arc::clone(&committee),
            provider,
            clock: Arc::clone(clock),
        },
    )
    .wrap_err_with(|| format!("p2p.listen_addr {}", config.p2p.listen_addr))?;
    info!(target: "node", peer_id = %p2p.local_peer_id(), "p2p identity");
    let context = ValidatorContext::new(
        Arc::new(archiver.clone()),
        state.clone(),
        Arc::new(p2p.clone()),
        Arc::clone(clock),
        windows,
        domain,
        // Binding read (and checked) the contract's parameters: no second L1 call at start.
        Arc::new(L1FeeOracle::new(reader.clone(), bound.params.fee_params())),
    );
    let rules = CheckpointRules {
        max_blocks_per_checkpoint: accepted.max_blocks_per_checkpoint,
        max_body_bytes: accepted.max_body_bytes,
    };
    let own: Vec<_> = keys.validator.iter().map(SigningKey::address).collect();
    let blocks = BlockProposalProcessor::new(&context);
    let all_nodes = AllNodesCheckpointProcessor::new(&context, rules, own);
    let mut handlers = HandlersBuilder::default()
        .block_proposal(Arc::new(blocks.clone()))
        .all_nodes_checkpoint(Arc::new(all_nodes.clone()))
        .tx(Arc::new(TxGossipHandler::new(state.clone())));

    let mut publisher = None;
    let mut signer = None;
    if let (Some(key), Some(publisher_keys)) = (keys.validator.clone(), keys.publisher) {
        let mode = if options.init_slashing_protection {
            OpenMode::initialize_at(&windows, clock.now())
        } else {
            OpenMode::Existing
        };
        let protected = ProtectedSigner::open(&data.slashing_protection(), domain, [key], mode)
            .wrap_err("opening the slashing-protection record")?;
        let duty_signer: Arc<dyn DutySigner> = Arc::new(protected);
        if config.validator.attest {
            handlers = handlers.validator_checkpoint(Arc::new(AttestingProcessor::new(
                &context,
                &all_nodes,
                Arc::clone(&duty_signer),
                Arc::clone(&committee),
            )));
        } else {
            warn!(target: "node", "validator.attest = false: this validator does not attest to other proposers' checkpoints (its sequencer still signs its own)");
        }
        let settings = config
            .publisher
            .settings()
            .map_err(|problem| eyre!("{problem}"))?;
        // It reads L1 (chain id, nonces) as it opens: an L1 blip right after binding is
        // retried like the binding was, not a failed start.
        let mut backoff = Duration::from_secs(1);
        let (handle, actor) = loop {
            let opened = Publisher::open(PublisherDeps {
                config: settings.clone(),
                keys: publisher_keys.clone(),
                provider: l1.clone(),
                rollup: bound.rollup,
                slot_clock,
                clock: Arc::clone(clock),
                store_path: data.publisher(),
                hooks: None,
            })
            .await;
            match opened {
                Ok(opened) => break opened,
                Err(err) if err.is_transient() && !cancel.is_cancelled() => {
                    warn!(target: "node", error = %err, retry_in = ?backoff, "opening the publisher: L1 did not answer; retrying");
                    tokio::select! {
                        biased;
                        () = cancel.cancelled() => {}
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(config.l1.max_retry_interval);
                }
                Err(err) => return Err(eyre!(err)).wrap_err("opening the publisher"),
            }
        };
        components.push(component(
            "publisher",
            // Stores close once the publisher has flushed and the sequencer has ended.
            then_cancel(
                actor.run(publisher_cancel.clone()),
                publisher_cancel.clone(),
                stores_cancel.clone(),
            ),
        ));
        publisher = Some(handle);
        signer = Some(duty_signer);
    }
    let handlers = handlers.build().wrap_err("registering the p2p handlers")?;
    components.push(component("p2p", p2p_service.run(handlers, cancel.clone())));
    components.push(component(
        "catch-up",
        catch_up_loop(
            context.clone(),
            blocks.clone(),
            all_nodes.clone(),
            p2p.clone(),
            cancel.clone(),
        ),
    ));

    let mut sequencer = None;
    if let (Some(signer), Some(publisher)) = (signer, publisher.clone()) {
        let timetable = config
            .timetable()
            .map_err(|problem| eyre!("{}: {}", problem.key, problem.message))?;
        let (handle, actor) = start_sequencer(SequencerParts {
            config: config.sequencer.clone(),
            max_txs_per_block: config.max_txs_per_block(&timetable),
            timetable,
            params: bound.params.clone(),
            max_body_bytes: usize::try_from(bound.params.max_checkpoint_body_bytes)
                .unwrap_or(usize::MAX),
            archiver: archiver.clone(),
            state: state.clone(),
            p2p: p2p.clone(),
            committee: Arc::clone(&committee),
            signer,
            publisher,
            clock: Arc::clone(clock),
            domain,
        })?;
        components.push(component(
            "sequencer",
            then_cancel(
                actor.run(cancel.clone()),
                cancel.clone(),
                publisher_cancel.clone(),
            ),
        ));
        sequencer = Some(handle);
    }

    let services = Services {
        bound: bound.clone(),
        domain,
        archiver,
        state,
        p2p,
        epochs,
        _publisher: publisher,
        sequencer,
        validator: keys.validator.as_ref().map(SigningKey::address),
        l1,
    };
    Ok((services, components))
}

/// Everything the sequencer is built from, gathered where the node has it.
struct SequencerParts {
    /// `[sequencer]` (poll intervals, block caps, coinbase, fee recipient).
    config: crate::config::SequencerConfig,
    /// Most txs per block: `sequencer.max_txs_per_block`, or what fits the body cap.
    max_txs_per_block: u32,
    /// The schedule for the deployment's constants and `[sequencer]`'s budgets.
    timetable: tandem_proto::time::Timetable,
    /// Fee parameters, mana limit and body cap of the deployment.
    params: tandem_l1::RollupParams,
    max_body_bytes: usize,
    archiver: ArchiverHandle,
    state: StateHandle,
    p2p: P2pHandle,
    committee: Arc<dyn CommitteeSource>,
    /// Slashing-protected signer, shared with the attesting handler.
    signer: Arc<dyn DutySigner>,
    /// Simulation (`simulator()`) and submission (`enqueue`).
    publisher: PublisherHandle,
    clock: Arc<dyn Clock>,
    domain: SigningDomain,
}

/// Builds the sequencer actor from `parts`; a setting the library refuses names its key.
fn start_sequencer(
    parts: SequencerParts,
) -> eyre::Result<(SequencerHandle, tandem_sequencer::Sequencer)> {
    let settings = parts
        .config
        .settings(parts.max_txs_per_block)
        .map_err(|problem| eyre!("{problem}"))?;
    if !parts.config.skip_publishing_slots.is_empty() {
        // A test hook settable from the environment: say so, it keeps checkpoints off L1.
        warn!(
            target: "node",
            slots = ?parts.config.skip_publishing_slots,
            "sequencer.skip_publishing_slots is set: checkpoints for these slots are never submitted to L1"
        );
    }
    let slot_clock = *parts.timetable.slot_clock();
    let deps = SequencerDeps {
        chain: Arc::new(ArchiverChain::new(parts.archiver, slot_clock)),
        world: Arc::new(parts.state),
        l1: Arc::new(parts.publisher.simulator()),
        publisher: Arc::new(parts.publisher),
        gossip: Arc::new(parts.p2p),
        committee: parts.committee,
        signer: parts.signer,
        clock: parts.clock,
    };
    let protocol = ProtocolParams {
        timetable: parts.timetable,
        domain: parts.domain,
        fees: parts.params.fee_params(),
        mana_limit: parts.params.mana_limit,
        max_body_bytes: parts.max_body_bytes,
    };
    info!(
        target: "node",
        max_txs_per_block = parts.max_txs_per_block,
        max_blocks_per_checkpoint = parts.timetable.max_blocks_per_checkpoint(),
        "sequencer configured: this validator proposes when elected"
    );
    Sequencer::new(settings, protocol, deps).wrap_err("starting the sequencer")
}

/// Runs `future`, then, once it has ended however it ended (an error or a panic included)
/// and `after` is cancelled, cancels `next`: the next stage of the shutdown starts when this
/// one is done, never before. A stage that ends while the node runs leaves the next one
/// running until the supervisor has seen its end and started the shutdown, so a store's
/// clean exit cannot be reported before the real error.
async fn then_cancel<F, E>(
    future: F,
    after: CancellationToken,
    next: CancellationToken,
) -> Result<(), E>
where
    F: Future<Output = Result<(), E>>,
{
    let _guard = StageGuard { after, next };
    future.await
}

/// Cancels `next` on drop once `after` is cancelled (at once if it already is).
struct StageGuard {
    after: CancellationToken,
    next: CancellationToken,
}

impl Drop for StageGuard {
    fn drop(&mut self) {
        if self.after.is_cancelled() {
            self.next.cancel();
            return;
        }
        let (after, next) = (self.after.clone(), self.next.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    after.cancelled().await;
                    next.cancel();
                });
            }
            // No runtime left to wait in: nothing else runs either.
            Err(_) => next.cancel(),
        }
    }
}

/// Longest wait for one L1 request (a `getLogs` batch included). Without it a connection that
/// black-holes (a dead provider behind a load balancer, a dropped route) would hang its caller
/// for good: the archiver, the epoch cache and the publisher would stop without an error.
pub(crate) const L1_REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The node's L1 provider: HTTP with [`L1_REQUEST_TIMEOUT`] on every request.
pub(crate) fn l1_provider(url: &str) -> eyre::Result<DynProvider> {
    let url: alloy::transports::http::reqwest::Url = url
        .parse()
        .map_err(|_| eyre!("l1.rpc_url: {url:?} is not a URL"))?;
    let client = alloy::transports::http::reqwest::Client::builder()
        .timeout(L1_REQUEST_TIMEOUT)
        .build()
        .wrap_err("building the L1 HTTP client")?;
    let is_local = alloy::transports::utils::guess_local_url(url.as_str());
    let transport = alloy::transports::http::Http::with_client(client, url);
    Ok(ProviderBuilder::new()
        .connect_client(alloy::rpc::client::RpcClient::new(transport, is_local))
        .erased())
}

fn multiaddr_of(addr: SocketAddr) -> Multiaddr {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) => tandem_p2p::Protocol::Ip4(ip),
        std::net::IpAddr::V6(ip) => tandem_p2p::Protocol::Ip6(ip),
    };
    Multiaddr::empty()
        .with(ip)
        .with(tandem_p2p::Protocol::Tcp(addr.port()))
}

fn parse_addrs(key: &str, addrs: &[String]) -> eyre::Result<Vec<Multiaddr>> {
    addrs
        .iter()
        .map(|addr| {
            addr.parse()
                .map_err(|err| eyre!("{key}: {addr:?} is not a multiaddr: {err}"))
        })
        .collect()
}

/// The p2p library's settings from `[p2p]`.
fn p2p_config(config: &Config, data: &DataDir) -> eyre::Result<tandem_p2p::P2pConfig> {
    let p2p = &config.p2p;
    let defaults = tandem_p2p::P2pConfig::default();
    let mut whitelist = std::collections::HashSet::new();
    if p2p.listen_addr.ip().is_loopback() {
        // Every peer of a local devnet shares this host.
        whitelist.insert(p2p.listen_addr.ip());
    }
    Ok(tandem_p2p::P2pConfig {
        listen_addrs: vec![multiaddr_of(p2p.listen_addr)],
        announce_addrs: parse_addrs("p2p.announce_addrs", &p2p.announce_addrs)?,
        bootnodes: parse_addrs("p2p.bootnodes", &p2p.bootnodes)?,
        max_peers: p2p.max_peers,
        min_peers: p2p.min_peers,
        node_key_path: Some(data.p2p_key()),
        ban_duration: p2p.ban_duration,
        discovery: p2p.discovery,
        ip_colocation_whitelist: whitelist,
        ..defaults
    })
}

/// Asks peers for the proposed chain after our tip whenever the archiver has nothing newer
/// than L1 to offer (at start, and after a gap); the block handler validates what comes back.
async fn catch_up_loop(
    context: ValidatorContext,
    blocks: BlockProposalProcessor,
    checkpoints: AllNodesCheckpointProcessor,
    p2p: P2pHandle,
    cancel: CancellationToken,
) -> eyre::Result<()> {
    let mut interval = super::every(CATCH_UP_INTERVAL);
    while super::tick(&mut interval, &cancel).await {
        let connected = match p2p.status().await {
            Ok(status) => status.connected.len(),
            Err(_) => continue,
        };
        if connected == 0 {
            continue;
        }
        let run = tandem_validator::catch_up(&context, &blocks, &checkpoints);
        let report = tokio::select! {
            biased;
            () = cancel.cancelled() => return Ok(()),
            report = run => report,
        };
        match report {
            Ok(report) => tracing::debug!(target: "node", ?report, "catch-up from peers"),
            Err(err) if err.is_fatal() => return Err(err.into()),
            Err(err) => {
                tracing::debug!(target: "node", error = %err, "catch-up failed; retrying later")
            }
        }
    }
    Ok(())
}

/// Reads the L1 head, for the health monitor (number, timestamp in seconds).
pub(crate) async fn l1_head(l1: &DynProvider) -> Option<(u64, u64)> {
    let block = l1
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .ok()??;
    Some((block.header.number, block.header.timestamp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CliOverrides;

    fn config_with(env: &[(&str, &str)]) -> Config {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()));
        Config::load(None, env, &CliOverrides::default()).unwrap()
    }

    /// A validator whose own sequencer builds small checkpoints of small blocks still accepts
    /// what an honest proposer on the network's defaults builds.
    #[test]
    fn what_a_node_accepts_ignores_its_own_sequencer_settings() {
        let defaults = config_with(&[]);
        let small = config_with(&[
            ("TANDEM__SEQUENCER__MAX_TXS_PER_BLOCK", "10"),
            ("TANDEM__SEQUENCER__MAX_BLOCKS_PER_CHECKPOINT", "2"),
        ]);
        assert_eq!(acceptance_limits(&small), acceptance_limits(&defaults));

        let accepted = acceptance_limits(&small);
        let windows = defaults.windows().unwrap();
        assert_eq!(
            accepted.max_blocks_per_checkpoint,
            u64::from(windows.max_blocks_per_checkpoint())
        );
        // An honest block on the defaults: what fits the body cap with the default schedule.
        let honest = defaults.max_txs_per_block(&defaults.timetable().unwrap());
        assert!(
            accepted.max_txs_per_block >= usize::try_from(honest).unwrap()
                && accepted.max_txs_per_block > 10,
            "accepts {accepted:?}, an honest block holds {honest}"
        );
        assert!(
            accepted.max_blocks_per_checkpoint
                >= u64::from(defaults.timetable().unwrap().max_blocks_per_checkpoint())
        );
        assert_eq!(
            accepted.max_txs_per_block,
            tandem_proto::max_txs_in_checkpoint_body(accepted.max_body_bytes, 1)
        );
    }

    /// The stages of the shutdown: once the shutdown has begun, the next one starts when this
    /// one ended, however it ended (an error, a panic), and not before.
    #[tokio::test]
    async fn the_next_stage_is_cancelled_once_this_one_ends_however_it_ends() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let next = CancellationToken::new();
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        let stage = tokio::spawn(then_cancel(
            async move {
                let _ = finished.await;
                Err::<(), _>(eyre!("disk full"))
            },
            shutdown.clone(),
            next.clone(),
        ));
        tokio::task::yield_now().await;
        assert!(!next.is_cancelled(), "cancelled while the stage still ran");
        finish.send(()).unwrap();
        let ended = stage.await.unwrap().unwrap_err();
        assert_eq!(ended.to_string(), "disk full");
        assert!(next.is_cancelled());

        let next = CancellationToken::new();
        let panicked = tokio::spawn(then_cancel(
            async {
                panic!("index out of bounds");
                #[allow(unreachable_code)]
                Ok::<(), eyre::Report>(())
            },
            shutdown.clone(),
            next.clone(),
        ))
        .await;
        assert!(panicked.unwrap_err().is_panic());
        assert!(
            next.is_cancelled(),
            "a panicked stage held the next one back"
        );
    }

    /// A stage that fails while the node runs does not stop the next one: the supervisor sees
    /// the failure first (the stores' clean exit would otherwise hide it) and starts the
    /// shutdown, which then reaches the next stage.
    #[tokio::test]
    async fn a_stage_failing_while_running_leaves_the_next_running_until_the_shutdown() {
        let shutdown = CancellationToken::new();
        let next = CancellationToken::new();
        let ended = then_cancel(
            async { Err::<(), _>(eyre!("L1 refused the key")) },
            shutdown.clone(),
            next.clone(),
        )
        .await;
        assert_eq!(ended.unwrap_err().to_string(), "L1 refused the key");
        tokio::task::yield_now().await;
        assert!(
            !next.is_cancelled(),
            "the next stage stopped before the shutdown"
        );
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), next.cancelled())
            .await
            .expect("the shutdown never reached the next stage");
    }
}
