//! A real SMTP server on loopback: aiosmtpd (Python, installed by `scripts/test` into a
//! virtualenv; `PLINTH_TEST_SMTP_PYTHON` names its interpreter), started on a random
//! port, storing each message it accepts in a Maildir the test reads.
use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

/// A running aiosmtpd, stopped when dropped.
pub struct SmtpServer {
    /// `PLINTH_SMTP_URL` for it.
    pub url: String,
    dir: PathBuf,
    _child: tokio::process::Child,
}

impl SmtpServer {
    /// Starts aiosmtpd on a free port and waits until it accepts connections.
    pub async fn start() -> SmtpServer {
        let python = std::env::var("PLINTH_TEST_SMTP_PYTHON")
            .unwrap_or_else(|_| "/var/tmp/plinth-tools/smtp-venv/bin/python".to_owned());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("plinth-smtp-{}", uuid::Uuid::now_v7()));
        // aiosmtpd's Mailbox handler creates the Maildir (and refuses an existing plain dir).
        let child = tokio::process::Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting aiosmtpd with {python} ({e}): run scripts/test, which installs it"));
        let deadline = Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start on port {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        SmtpServer { url: format!("smtp://127.0.0.1:{port}"), dir, _child: child }
    }

    /// Every message received so far, raw.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.dir.join(sub)) {
                for e in entries.flatten() {
                    if let Ok(text) = std::fs::read_to_string(e.path()) {
                        out.push(text);
                    }
                }
            }
        }
        out
    }

    /// Waits up to 15 s until `n` messages arrived.
    pub async fn wait_messages(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "only {} of {n} messages reached the SMTP server", got.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
