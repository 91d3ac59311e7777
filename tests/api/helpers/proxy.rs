//! A TCP proxy between the server and a dependency, that can pass traffic, blackhole it
//! (accept, and never answer) or refuse it (nothing listens): the faults of a network
//! or a dependency that is down, restarting or stuck. Leaving a fault closes the
//! connections it held, as a restarted dependency would.
use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forwards both ways.
    Pass,
    /// Accepts connections and never answers; held connections stop forwarding.
    Blackhole,
    /// Closes every connection and stops listening: connecting is refused.
    Refuse,
}

/// A running proxy to one target.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy on a free loopback port to `target`, passing traffic.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, _) = watch::channel(Mode::Pass);
        let accepted = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(serve(listener, addr, target, mode.clone(), accepted.clone()));
        Proxy { addr, mode, accepted, task }
    }

    /// Connections accepted so far, whatever the mode (a blackholed one is held silent).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Switches what the proxy does, at once, for new and held connections.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// `scheme://user@proxy/rest`: `url` with its host and port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).unwrap();
        u.set_host(Some("127.0.0.1")).unwrap();
        u.set_port(Some(self.addr.port())).unwrap();
        u.to_string()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut listener: TcpListener,
    addr: SocketAddr,
    target: SocketAddr,
    mode: watch::Sender<Mode>,
    accepted: Arc<AtomicUsize>,
) {
    let mut rx = mode.subscribe();
    loop {
        if *rx.borrow_and_update() == Mode::Refuse {
            drop(listener);
            // Nothing listens until the fault ends; then the same port again.
            while *rx.borrow_and_update() == Mode::Refuse {
                if rx.changed().await.is_err() {
                    return;
                }
            }
            listener = loop {
                match TcpListener::bind(addr).await {
                    Ok(l) => break l,
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                }
            };
            continue;
        }
        tokio::select! {
            conn = listener.accept() => if let Ok((client, _)) = conn {
                accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(connection(client, target, mode.subscribe()));
            },
            changed = rx.changed() => if changed.is_err() { return },
        }
    }
}

/// Forwards one connection while the mode is Pass; holds it silent in a blackhole and
/// closes it when that fault ends; closes it at once when refused.
async fn connection(mut client: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Mode>) {
    if *mode.borrow_and_update() == Mode::Pass {
        let Ok(mut server) = TcpStream::connect(target).await else { return };
        let fault = async {
            loop {
                if mode.changed().await.is_err() || *mode.borrow_and_update() != Mode::Pass {
                    return;
                }
            }
        };
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
            _ = fault => {}
        }
        if *mode.borrow() == Mode::Refuse {
            return;
        }
        // Blackholed: keep both ends open, silent, until the fault ends.
        let _held = server;
    }
    let _ = mode.changed().await;
}

/// A proxy whose target is set after it starts (a server whose address is known only
/// once it runs, while its configuration must name the proxy first), and which holds
/// each new connection for a delay before forwarding it: a slow network path.
pub struct SlowProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    state: Arc<SlowState>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct SlowState {
    target: std::sync::Mutex<Option<SocketAddr>>,
    delay: std::sync::Mutex<std::time::Duration>,
    /// Connections accepted while a delay was set.
    delayed: AtomicUsize,
}

impl SlowProxy {
    /// A proxy on a free loopback port, with no target yet and no delay.
    pub async fn start() -> SlowProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(SlowState::default());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let delay = *state.delay.lock().unwrap();
                    if !delay.is_zero() {
                        state.delayed.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                    }
                    let Some(target) = *state.target.lock().unwrap() else { return };
                    if let Ok(mut upstream) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        SlowProxy { addr, state, task }
    }

    /// Forwards to `target` from now on.
    pub fn set_target(&self, target: SocketAddr) {
        *self.state.target.lock().unwrap() = Some(target);
    }

    /// Holds each new connection `delay` before forwarding it (zero: at once).
    pub fn set_delay(&self, delay: std::time::Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    /// Connections held for a delay so far.
    pub fn delayed(&self) -> usize {
        self.state.delayed.load(Ordering::SeqCst)
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
