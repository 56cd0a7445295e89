//! A TCP proxy on every ordered pair of nodes: node `i` reaches node `j` only through the
//! listener of link `(i, j)`, so the harness can slow, stall, cut and refuse each link.
//!
//! Bytes sent by the dialer travel under the faults of `(i, j)`, the answers under those of
//! `(j, i)`. A TCP proxy cannot drop bytes without breaking the stream, so loss is modelled as
//! what TCP makes of it: a chunk that is "lost" stalls its direction for one retransmission
//! timeout (the 200 ms Linux minimum), in order.

use std::{
    collections::{HashMap, HashSet},
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rand::Rng;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
    time::Instant,
};

/// What TCP does with a lost segment: resend after the retransmission timeout.
pub const LOSS_STALL: Duration = Duration::from_millis(200);

/// The faults of one direction of a link.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// One-way delay added to every chunk.
    pub delay: Duration,
    /// Uniform extra delay in `[-jitter, +jitter]` (order is kept: a chunk never overtakes).
    pub jitter: Duration,
    /// Share of chunks that stall the direction for [`LOSS_STALL`] (0..=1).
    pub loss: f64,
    /// Cut: existing connections are reset, new ones refused.
    pub cut: bool,
}

struct Link {
    faults: Mutex<Faults>,
    /// Bumped on every cut: open connections over the link end.
    generation: watch::Sender<u64>,
    bytes: AtomicU64,
    connections: AtomicU64,
    refused: AtomicU64,
}

impl Link {
    fn faults(&self) -> Faults {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Every link's proxy, on its own tokio runtime.
pub struct Mesh {
    /// Runs every listener and relay; dropping the mesh stops them.
    _runtime: tokio::runtime::Runtime,
    links: HashMap<(usize, usize), Arc<Link>>,
    ports: HashMap<(usize, usize), u16>,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh").field("ports", &self.ports).finish()
    }
}

impl Mesh {
    /// Proxies for every ordered pair of `targets` (node `j` listens on `targets[j]`).
    /// No proxy listens on a port of `reserved` (ports planned for processes not started yet).
    pub fn start(targets: &[u16], reserved: &HashSet<u16>) -> eyre::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("e2e-proxy")
            .enable_all()
            .build()?;
        let mut links = HashMap::new();
        let mut ports = HashMap::new();
        let mut listeners = Vec::new();
        for from in 0..targets.len() {
            for (to, &target) in targets.iter().enumerate() {
                if from == to {
                    continue;
                }
                let listener = bind_outside(reserved)?;
                listener.set_nonblocking(true)?;
                ports.insert((from, to), listener.local_addr()?.port());
                let (generation, _) = watch::channel(0);
                links.insert(
                    (from, to),
                    Arc::new(Link {
                        faults: Mutex::new(Faults::default()),
                        generation,
                        bytes: AtomicU64::new(0),
                        connections: AtomicU64::new(0),
                        refused: AtomicU64::new(0),
                    }),
                );
                listeners.push(((from, to), listener, target));
            }
        }
        for ((from, to), listener, target) in listeners {
            let _guard = runtime.enter();
            let listener = TcpListener::from_std(listener)?;
            let forward = Arc::clone(&links[&(from, to)]);
            let back = Arc::clone(&links[&(to, from)]);
            let target = SocketAddr::from((Ipv4Addr::LOCALHOST, target));
            runtime.spawn(accept_loop(listener, target, forward, back));
        }
        Ok(Self {
            _runtime: runtime,
            links,
            ports,
        })
    }

    /// The port node `from` dials to reach node `to`.
    pub fn port(&self, from: usize, to: usize) -> u16 {
        self.ports[&(from, to)]
    }

    /// Sets the faults of one direction; a cut resets the link's open connections.
    pub fn set(&self, from: usize, to: usize, faults: Faults) {
        let link = &self.links[&(from, to)];
        *link.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
        if faults.cut {
            link.generation.send_modify(|g| *g += 1);
        }
    }

    /// The faults of one direction now.
    pub fn faults(&self, from: usize, to: usize) -> Faults {
        self.links[&(from, to)].faults()
    }

    /// Every ordered pair.
    pub fn pairs(&self) -> Vec<(usize, usize)> {
        let mut pairs: Vec<_> = self.links.keys().copied().collect();
        pairs.sort_unstable();
        pairs
    }

    /// Bytes forwarded over `(from, to)` so far, connections accepted and refused.
    pub fn traffic(&self, from: usize, to: usize) -> (u64, u64, u64) {
        let link = &self.links[&(from, to)];
        (
            link.bytes.load(Ordering::Relaxed),
            link.connections.load(Ordering::Relaxed),
            link.refused.load(Ordering::Relaxed),
        )
    }
}

/// A listener on 127.0.0.1 whose port is not in `reserved` (a reserved one the OS offers is
/// held until the pick is done, so it is not offered again).
fn bind_outside(reserved: &HashSet<u16>) -> std::io::Result<std::net::TcpListener> {
    let mut skipped = Vec::new();
    loop {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        if !reserved.contains(&listener.local_addr()?.port()) {
            return Ok(listener);
        }
        skipped.push(listener);
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    link: Arc<Link>,
    reverse: Arc<Link>,
) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            continue;
        };
        if link.faults().cut || reverse.faults().cut {
            link.refused.fetch_add(1, Ordering::Relaxed);
            // A reset, not a clean close: what a partitioned peer's dial meets. (Deprecated
            // because a non-zero linger blocks on drop; zero resets at once.)
            #[allow(deprecated)]
            let _ = inbound.set_linger(Some(Duration::ZERO));
            drop(inbound);
            continue;
        }
        link.connections.fetch_add(1, Ordering::Relaxed);
        let link = Arc::clone(&link);
        let reverse = Arc::clone(&reverse);
        tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(target).await else {
                return;
            };
            relay(inbound, outbound, link, reverse).await;
        });
    }
}

/// Forwards both directions until either side closes or the link is cut.
async fn relay(inbound: TcpStream, outbound: TcpStream, forward: Arc<Link>, back: Arc<Link>) {
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let mut cut_forward = forward.generation.subscribe();
    let mut cut_back = back.generation.subscribe();
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    let there = pump(in_read, out_write, Arc::clone(&forward));
    let here = pump(out_read, in_write, back);
    tokio::select! {
        () = there => {}
        () = here => {}
        _ = cut_forward.changed() => {}
        _ = cut_back.changed() => {}
    }
    // Dropping both halves closes the sockets; the nodes see the connection gone.
}

/// One direction: read, stamp with a due time under the link's faults, deliver in order.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    link: Arc<Link>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let faults_of = Arc::clone(&link);
    // The reader owns the sender: at EOF the writer still delivers what is queued, then ends.
    let reader = async move {
        let mut last_due = Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let faults = faults_of.faults();
            let mut due = Instant::now() + faults.delay;
            if !faults.jitter.is_zero() {
                let jitter = faults.jitter.as_micros() as i64;
                let offset = rand::thread_rng().gen_range(-jitter..=jitter);
                due = if offset >= 0 {
                    due + Duration::from_micros(offset as u64)
                } else {
                    due.checked_sub(Duration::from_micros(offset.unsigned_abs()))
                        .unwrap_or(due)
                };
            }
            if faults.loss > 0.0 && rand::thread_rng().gen_bool(faults.loss.clamp(0.0, 1.0)) {
                due += LOSS_STALL;
            }
            // In order, as TCP delivers: a chunk waits for the one before it.
            due = due.max(last_due);
            last_due = due;
            if tx.send((due, buf[..n].to_vec())).is_err() {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            // Counted before the write: a reader that has the bytes sees them counted.
            link.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read, Write},
        net::TcpStream as StdStream,
        time::Instant,
    };

    use super::*;

    /// An echo server on 127.0.0.1 (one thread per connection).
    fn echo() -> u16 {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 || stream.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        port
    }

    fn round_trip(port: u16) -> std::io::Result<Duration> {
        let mut stream = StdStream::connect((Ipv4Addr::LOCALHOST, port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let started = Instant::now();
        stream.write_all(b"ping")?;
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf)?;
        assert_eq!(&buf, b"ping");
        Ok(started.elapsed())
    }

    #[test]
    fn relays_delays_each_direction_and_cuts() {
        // Node 1 is the echo server; node 0 dials it through link (0, 1).
        let mesh = Mesh::start(&[1, echo()], &HashSet::new()).unwrap();
        let port = mesh.port(0, 1);
        let plain = round_trip(port).unwrap();
        // Only a loose bound: lib tests share 2 loaded cores, and the first round trip also
        // pays for the proxy's accept, its dial and a thread spawn.
        assert!(plain < Duration::from_secs(2), "{plain:?}");
        assert_eq!(mesh.traffic(0, 1).0, 4);
        assert_eq!(mesh.traffic(1, 0).0, 4);

        // 150 ms there, 50 ms back.
        let slow = |delay| Faults {
            delay: Duration::from_millis(delay),
            ..Faults::default()
        };
        mesh.set(0, 1, slow(150));
        mesh.set(1, 0, slow(50));
        let delayed = round_trip(port).unwrap();
        assert!(delayed >= Duration::from_millis(200), "{delayed:?}");

        // A cut resets the open connection and refuses new ones; a heal lets them in again.
        let mut open = StdStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        open.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        open.write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        open.read_exact(&mut one).unwrap();
        mesh.set(
            1,
            0,
            Faults {
                cut: true,
                ..slow(50)
            },
        );
        // EOF or a reset; a read timeout means the connection survived the cut.
        let mut rest = [0u8; 1];
        let read = open.read(&mut rest);
        assert!(
            matches!(&read, Ok(0))
                || matches!(&read, Err(e) if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                )),
            "the open connection survived the cut: {read:?}"
        );
        assert!(
            round_trip(port).is_err(),
            "a new connection got through the cut"
        );
        assert_eq!(mesh.traffic(0, 1).2, 1);
        mesh.set(1, 0, slow(0));
        mesh.set(0, 1, slow(0));
        round_trip(port).unwrap();
    }

    #[test]
    fn loss_stalls_in_order() {
        let mesh = Mesh::start(&[1, echo()], &HashSet::new()).unwrap();
        mesh.set(
            0,
            1,
            Faults {
                loss: 1.0,
                ..Faults::default()
            },
        );
        let stalled = round_trip(mesh.port(0, 1)).unwrap();
        assert!(stalled >= LOSS_STALL, "{stalled:?}");
    }
}
