//! The node's own small HTTP surface: `/health` (the process answers), `/ready` (200 or 503
//! with the readiness report as JSON) on the RPC port through [`ProbeLayer`], and the same plus
//! `/metrics` on the metrics port through [`MetricsServer`]. The Prometheus exporter's listener
//! is not used: it answers every path with the metrics.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, header::CONTENT_TYPE};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::run::NodeView;

/// Most simultaneous connections to the metrics port (scrapers and probes).
const MAX_METRICS_CONNECTIONS: usize = 64;
/// A client that has not sent its request headers by then is dropped (idle sockets must not
/// hold the permits that scrapes and probes need).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest life of one connection, keep-alive included (a scraper simply reconnects).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Pause after a failed accept (out of file descriptors): the next one would fail at once too.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A probe's answer: status, content type and body.
struct Answer {
    status: StatusCode,
    content_type: &'static str,
    body: String,
}

/// `/health`: the process is alive and serving.
fn health() -> Answer {
    Answer {
        status: StatusCode::OK,
        content_type: "application/json",
        body: r#"{"status":"ok"}"#.into(),
    }
}

/// `/ready`: 200 when ready, 503 with the reasons otherwise.
fn ready(view: &NodeView) -> Answer {
    let report = view.ready.borrow().clone();
    Answer {
        status: if report.ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        content_type: "application/json",
        body: serde_json::to_string(&report).unwrap_or_else(|_| "{}".into()),
    }
}

fn not_found(path: &str) -> Answer {
    Answer {
        status: StatusCode::NOT_FOUND,
        content_type: "text/plain",
        body: format!("no such path {path:?}: try /metrics, /health or /ready\n"),
    }
}

/// Answers `/health` and `/ready` on GET; everything else goes to the RPC server.
#[derive(Clone)]
pub(crate) struct ProbeLayer {
    view: Arc<NodeView>,
}

impl ProbeLayer {
    pub(crate) const fn new(view: Arc<NodeView>) -> Self {
        Self { view }
    }
}

impl<S> tower::Layer<S> for ProbeLayer {
    type Service = Probe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Probe {
            inner,
            view: Arc::clone(&self.view),
        }
    }
}

/// The service [`ProbeLayer`] makes.
#[derive(Clone)]
pub(crate) struct Probe<S> {
    inner: S,
    view: Arc<NodeView>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, B> tower::Service<Request<B>> for Probe<S>
where
    S: tower::Service<Request<B>, Response = jsonrpsee::server::HttpResponse>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = jsonrpsee::server::HttpResponse;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let answer = match (request.method(), request.uri().path()) {
            (&Method::GET, "/health") => Some(health()),
            (&Method::GET, "/ready") => Some(ready(&self.view)),
            _ => None,
        };
        match answer {
            Some(answer) => {
                let response = Response::builder()
                    .status(answer.status)
                    .header(CONTENT_TYPE, answer.content_type)
                    .body(jsonrpsee::server::HttpBody::from(answer.body))
                    .expect("a static status and header make a valid response");
                Box::pin(async move { Ok(response) })
            }
            None => Box::pin(self.inner.call(request)),
        }
    }
}

/// `/metrics`, `/health` and `/ready` on the metrics port.
pub(crate) struct MetricsServer {
    listener: TcpListener,
    view: Arc<NodeView>,
}

impl MetricsServer {
    /// Binds `addr`.
    pub(crate) async fn bind(addr: SocketAddr, view: &Arc<NodeView>) -> std::io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
            view: Arc::clone(view),
        })
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `cancel` fires.
    pub(crate) async fn run(self, cancel: CancellationToken) -> eyre::Result<()> {
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_METRICS_CONNECTIONS));
        loop {
            let (stream, _) = tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    // Out of file descriptors and the like: the next accept may work.
                    Err(err) => {
                        tracing::warn!(target: "node", error = %err, "metrics server: accept failed");
                        tokio::select! {
                            biased;
                            () = cancel.cancelled() => return Ok(()),
                            () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                        }
                        continue;
                    }
                },
            };
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                // Over the limit: close at once rather than queue scrapers.
                continue;
            };
            let view = Arc::clone(&self.view);
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let view = Arc::clone(&view);
                        async move { Ok::<_, Infallible>(respond(&request, &view)) }
                    });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    _ = tokio::time::timeout(CONNECTION_LIFETIME, connection) => {}
                    () = cancel.cancelled() => {}
                }
                drop(permit);
            });
        }
    }
}

fn respond<B>(request: &Request<B>, view: &NodeView) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let answer = match (request.method(), path) {
        (&Method::GET, "/metrics") => match crate::metrics::render() {
            Some(body) => Answer {
                status: StatusCode::OK,
                content_type: "text/plain; version=0.0.4",
                body,
            },
            None => not_found(path),
        },
        (&Method::GET, "/health") => health(),
        (&Method::GET, "/ready") => ready(view),
        _ => not_found(path),
    };
    Response::builder()
        .status(answer.status)
        .header(CONTENT_TYPE, answer.content_type)
        .body(Full::new(Bytes::from(answer.body)))
        .expect("a static status and header make a valid response")
}
