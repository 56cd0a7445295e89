//! The reader: deployment constants, reads pinned to one block, error classification.

use alloy::primitives::U256;
use tandem_l1::{L1Error, L1Reader};

use crate::common::*;

#[tokio::test]
async fn deployment_constants_read_back_from_the_contract() {
    let net = setup(4).await;
    let mut params = net.deployment.params.clone();
    params.pipelining_mode = tandem_proto::time::PipeliningMode::NonPipelined;
    params.last_block_reexecution_budget_ms = 400;
    params.max_checkpoint_body_bytes = 64 * 1024;
    params.rollup_version = 7;
    let deployment = net
        .harness
        .deploy(&params, &[net.keys[0].address()])
        .await
        .unwrap();
    let reader = L1Reader::new(net.harness.provider(), deployment.rollup);
    assert_eq!(reader.config(latest()).await.unwrap(), params);
    assert_eq!(
        net.reader.config(latest()).await.unwrap(),
        net.deployment.params
    );

    // Reads pinned to one block see that block's state, not a later one.
    let base = net
        .reader
        .simulation_base(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .unwrap();
    assert_eq!((base.checkpointed, base.proven), (0, 0));
    assert_eq!(base.tip_archive, net.deployment.params.genesis_archive);
    let slot = net.future_slot().await;
    let (payload, body) = net.payload(slot, base.tip_archive, net.min_fee().await, 100, 0);
    let bundle = net.bundle(1, payload, body, net.quorum()).await;
    net.land(&bundle, net.slot_start(slot)).await;
    assert_eq!(net.reader.tips(base.l1_block.id()).await.unwrap(), (0, 0));
    assert_eq!(net.reader.tips(latest()).await.unwrap(), (1, 0));
}

#[tokio::test]
async fn transport_failures_are_transient_and_rpc_answers_are_not() {
    use alloy::providers::Provider;
    let net = setup(1).await;
    // A definite JSON-RPC error answer: a revert, and an unknown method.
    let revert = net.reader.checkpoint_log(5, latest()).await.unwrap_err();
    assert!(
        revert.revert().is_some() && !revert.is_transient(),
        "{revert}"
    );
    let unknown: Result<U256, _> = net
        .harness
        .provider()
        .raw_request("tandem_noSuchMethod".into(), ())
        .await;
    let unknown = L1Error::from(unknown.unwrap_err());
    assert!(!unknown.is_transient(), "{unknown}");

    // The node goes away: the same calls are now transport failures, worth retrying, both a
    // plain RPC call and one alloy wraps in a contract-call error.
    let reader = net.reader.clone();
    drop(net);
    let gone = reader.tips(latest()).await.unwrap_err();
    assert!(gone.is_transient(), "{gone:?}");
    let gone = reader.latest_block().await.unwrap_err();
    assert!(gone.is_transient(), "{gone:?}");
    let wrapped = L1Error::Contract(alloy::contract::Error::TransportError(
        alloy::transports::TransportErrorKind::custom_str("connection refused"),
    ));
    assert!(wrapped.is_transient());
}

#[test]
fn anvil_is_installed_where_the_harness_looks() {
    let path = tandem_l1::harness::anvil_path();
    assert!(
        path.exists(),
        "{} missing: run scripts/install-tools.sh",
        path.display()
    );
}

/// A provider that reorganises the last L1 block away right after answering `eth_getLogs`, so
/// the reader's next read of a log's block happens on the new chain.
#[derive(Clone)]
struct ReorgAfterLogs {
    inner: alloy::providers::DynProvider,
}

impl alloy::providers::Provider for ReorgAfterLogs {
    fn root(&self) -> &alloy::providers::RootProvider {
        self.inner.root()
    }

    // `Provider` is an `async_trait`; this is the signature the macro expands `async fn` to.
    fn get_logs<'life0, 'life1, 'async_trait>(
        &'life0 self,
        filter: &'life1 alloy::rpc::types::Filter,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = alloy::transports::TransportResult<Vec<alloy::rpc::types::Log>>,
                > + Send
                + 'async_trait,
        >,
    >
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            use alloy::providers::ext::AnvilApi;
            let logs = self.inner.get_logs(filter).await?;
            self.inner
                .anvil_reorg(alloy::rpc::types::anvil::ReorgOptions {
                    depth: 1,
                    tx_block_pairs: Vec::new(),
                })
                .await?;
            Ok(logs)
        })
    }
}

#[tokio::test]
async fn a_reorg_between_the_logs_and_the_block_read_is_never_mispaired() {
    use alloy::providers::Provider;
    let net = setup(4).await;
    let slot = net.future_slot().await;
    let archive = net.reader.archive_at(0, latest()).await.unwrap();
    let (payload, body) = net.payload(slot, archive, net.min_fee().await, 100, 0);
    let bundle = net.bundle(1, payload, body, net.quorum()).await;
    net.land(&bundle, net.slot_start(slot)).await;
    let head = net.reader.latest_block().await.unwrap();
    let landed = net.reader.block(head).await.unwrap().unwrap();

    let reorging = L1Reader::new(
        ReorgAfterLogs {
            inner: net.harness.provider(),
        },
        net.deployment.rollup,
    );
    let result = reorging
        .checkpoints_proposed(net.deployment.deployment_block, head)
        .await;
    // The block at that height is another one now; the log's block is gone. The reader says
    // so (worth re-reading the range) instead of pairing the log with the new block.
    let replaced = net.reader.block(head).await.unwrap().unwrap();
    assert_ne!(replaced.hash, landed.hash, "anvil did not reorg");
    assert!(
        net.harness
            .provider()
            .get_block_by_hash(landed.hash)
            .await
            .unwrap()
            .is_none()
    );
    match result {
        Err(err @ L1Error::BlockGone(hash)) => {
            assert_eq!(hash, landed.hash);
            assert!(err.is_transient());
        }
        other => panic!("expected BlockGone({}), got {other:?}", landed.hash),
    }
}
