//! The drain that SIGTERM starts: WebSockets close with 1012 ("service restart": a
//! client reconnects, to another instance), and the server waits, within a bound, until
//! they have. HTTP requests in flight are the server's graceful shutdown's (poem's).
use std::{sync::Arc, time::Duration};
use tokio::sync::watch;

/// What sockets watch: whether the drain started, and the count of open sockets.
#[derive(Clone)]
pub struct Drain {
    started: watch::Receiver<bool>,
    open: Arc<watch::Sender<usize>>,
}

/// Starts the drain and waits for the sockets.
pub struct DrainControl {
    start: watch::Sender<bool>,
    open: Arc<watch::Sender<usize>>,
}

/// Held by an open socket; dropping it counts the socket closed.
pub struct OpenSocket(Arc<watch::Sender<usize>>);

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Drain {
    /// A drain not started, and its control.
    pub fn new() -> (Drain, DrainControl) {
        let (start, started) = watch::channel(false);
        let open = Arc::new(watch::channel(0usize).0);
        (Drain { started, open: open.clone() }, DrainControl { start, open })
    }

    /// Counts a socket open until the guard drops.
    pub fn socket(&self) -> OpenSocket {
        self.open.send_modify(|n| *n += 1);
        OpenSocket(self.open.clone())
    }

    /// Whether the drain started.
    pub fn is_started(&self) -> bool {
        *self.started.borrow()
    }

    /// Resolves once the drain starts (never if its control is gone without starting).
    pub async fn started(&self) {
        let mut rx = self.started.clone();
        if rx.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl DrainControl {
    /// Starts the drain: every socket closes.
    pub fn start(&self) {
        self.start.send_replace(true);
    }

    /// Waits until no socket is open, up to `within`; the number still open.
    pub async fn sockets_closed(&self, within: Duration) -> usize {
        let mut rx = self.open.subscribe();
        let _ = tokio::time::timeout(within, rx.wait_for(|n| *n == 0)).await;
        let left = *rx.borrow();
        left
    }
}
