//! JSON-RPC over HTTP and WebSocket (jsonrpsee, one port), with `/health` and `/ready` answered
//! on the same port by a small HTTP layer in front of it. Limits come from `[rpc]`.

pub(crate) mod http;
mod json;
mod methods;
mod params;
mod senders;

use std::{net::SocketAddr, sync::Arc};

use jsonrpsee::server::{BatchRequestConfig, ServerConfig, ServerHandle};
use tokio_util::sync::CancellationToken;

pub(crate) use senders::SenderCache;

use crate::{config::RpcConfig, run::NodeView};

/// A bound, running RPC server.
pub(crate) struct RpcServer {
    handle: ServerHandle,
    addr: SocketAddr,
}

impl RpcServer {
    /// Binds `config.listen_addr` and starts serving the methods over `view`.
    pub(crate) async fn start(config: &RpcConfig, view: Arc<NodeView>) -> eyre::Result<Self> {
        let settings = ServerConfig::builder()
            .max_request_body_size(config.max_request_bytes)
            .max_response_body_size(config.max_response_bytes)
            .max_connections(config.max_connections)
            .max_subscriptions_per_connection(config.max_subscriptions_per_connection)
            .set_batch_request_config(BatchRequestConfig::Limit(config.max_batch_size))
            .build();
        let server = jsonrpsee::server::Server::builder()
            .set_config(settings)
            .set_http_middleware(
                tower::ServiceBuilder::new().layer(http::ProbeLayer::new(Arc::clone(&view))),
            )
            .build(config.listen_addr)
            .await?;
        let addr = server.local_addr()?;
        let handle = server.start(methods::module(view));
        Ok(Self { handle, addr })
    }

    /// The bound address.
    pub(crate) const fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `cancel` fires, then stops accepting and closes connections.
    pub(crate) async fn run(self, cancel: CancellationToken) -> eyre::Result<()> {
        tokio::select! {
            () = cancel.cancelled() => {
                // Already stopped is fine: stopping is all we want.
                let _ = self.handle.stop();
                self.handle.stopped().await;
                Ok(())
            }
            () = self.handle.clone().stopped() => Err(eyre::eyre!("the RPC server stopped")),
        }
    }
}
