//! A TCP port that stands in for an L1 node that is down and then comes up.

use std::{
    net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

/// A TCP port the test owns from start to end (so no other process can take it), which resets
/// every connection until [`SwitchedProxy::connect_to`] is called and then forwards them there.
/// It stands in for an L1 node that is down, then comes up, without releasing the port.
pub(crate) struct SwitchedProxy {
    port: u16,
    target: Arc<Mutex<Option<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    /// Black hole: accept and hold connections, never answer (an L1 that hangs, not refuses).
    hang: Arc<AtomicBool>,
    /// Client sockets: forwarded ones (cut when the proxy starts hanging) and held ones.
    clients: Arc<Mutex<Vec<TcpStream>>>,
}

impl SwitchedProxy {
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let target: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let hang = Arc::new(AtomicBool::new(false));
        let clients: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (accept_target, accept_stop) = (target.clone(), stop.clone());
        let (accept_hang, accept_clients) = (hang.clone(), clients.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accept_stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                if accept_hang.load(Ordering::SeqCst) {
                    accept_clients.lock().unwrap().push(client);
                    continue;
                }
                if let Ok(clone) = client.try_clone() {
                    accept_clients.lock().unwrap().push(clone);
                }
                let Some(addr) = *accept_target.lock().unwrap() else {
                    // Down: the client sees its connection reset.
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let Ok(upstream) = TcpStream::connect(addr) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                    (upstream, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        Self {
            port,
            target,
            stop,
            hang,
            clients,
        }
    }

    /// From now on connections are accepted and never answered; the open ones are cut, so
    /// clients must reconnect into the black hole.
    pub(crate) fn hang(&self) {
        self.hang.store(true, Ordering::SeqCst);
        for client in self.clients.lock().unwrap().drain(..) {
            let _ = client.shutdown(Shutdown::Both);
        }
    }

    /// Forwards again (after [`Self::hang`]). The held connections are reset, as an L1 node
    /// that restarts would; otherwise a request on one would wait for its client's timeout.
    pub(crate) fn resume(&self) {
        self.hang.store(false, Ordering::SeqCst);
        for client in self.clients.lock().unwrap().drain(..) {
            let _ = client.shutdown(Shutdown::Both);
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Forwards to the local `endpoint` (`http://localhost:PORT`) from now on.
    pub(crate) fn connect_to(&self, endpoint: &str) {
        let port: u16 = endpoint
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("{endpoint} ends in a port"));
        *self.target.lock().unwrap() = Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
}

impl Drop for SwitchedProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}
