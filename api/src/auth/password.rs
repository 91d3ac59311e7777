//! Password hashing with argon2id, always off the async runtime: one hash costs tens
//! of milliseconds of CPU, which would stall every other request on that worker.
use anyhow::Context;
use argon2::{
    password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString},
    Algorithm, Argon2, Params, Version,
};
use secrecy::{ExposeSecret, SecretString};

/// Shortest and longest accepted password, in characters. The upper bound keeps one
/// request from buying an arbitrarily long hash.
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=128;

/// Hashes and verifies passwords with fixed argon2id parameters.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    /// A hash of a random password, verified when an e-mail is unknown so a failed
    /// sign-in takes the same time whether or not the account exists.
    dummy_hash: String,
    /// Hashes computed at once: each takes the argon2 memory cost (19 MiB by default),
    /// so a burst of sign-ups or sign-ins waits here instead of exhausting memory.
    permits: std::sync::Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords").field("params", &self.params).finish_non_exhaustive()
    }
}

impl Passwords {
    /// Builds the hasher with `memory_kib` of argon2id memory (OWASP: 19 MiB, t=2, p=1),
    /// computing at most `concurrency` hashes at once.
    ///
    /// Errors: invalid argon2 parameters (a configuration mistake).
    pub fn new(memory_kib: u32, concurrency: usize) -> anyhow::Result<Self> {
        let params = Params::new(memory_kib, 2, 1, None).map_err(|e| anyhow::anyhow!("argon2 params: {e}"))?;
        let dummy_hash = hash_with(&params, uuid::Uuid::new_v4().to_string().as_bytes())?;
        let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        Ok(Passwords { params, dummy_hash, permits })
    }

    /// A permit to compute one hash (waits while `concurrency` are running).
    async fn permit(&self) -> anyhow::Result<tokio::sync::OwnedSemaphorePermit> {
        self.permits.clone().acquire_owned().await.context("the password hashing semaphore closed")
    }

    /// Hashes a password (PHC string), on the blocking pool.
    ///
    /// Errors: INTERNAL (the hashing task failed).
    pub async fn hash(&self, password: &SecretString) -> anyhow::Result<String> {
        let params = self.params.clone();
        let password = password.clone();
        let permit = self.permit().await?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            hash_with(&params, password.expose_secret().as_bytes())
        })
        .await
        .context("password hashing task")?
    }

    /// Verifies a password against a stored hash, or against the dummy hash when there
    /// is none, on the blocking pool. Returns false for a malformed stored hash.
    ///
    /// Errors: INTERNAL (the hashing task failed); a wrong password is Ok(false).
    pub async fn verify(&self, password: &SecretString, stored: Option<&str>) -> anyhow::Result<bool> {
        let known = stored.is_some();
        let hash = stored.unwrap_or(&self.dummy_hash).to_owned();
        let password = password.clone();
        let permit = self.permit().await?;
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            PasswordHash::new(&hash)
                .map(|parsed| Argon2::default().verify_password(password.expose_secret().as_bytes(), &parsed).is_ok())
                .unwrap_or(false)
        })
        .await
        .context("password verification task")?;
        Ok(ok && known)
    }
}

fn hash_with(params: &Params, password: &[u8]) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_the_dummy_never_matches() {
        let p = Passwords::new(1024, 2).unwrap();
        let pw = SecretString::from("correct horse");
        let h = p.hash(&pw).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(p.verify(&pw, Some(&h)).await.unwrap());
        assert!(!p.verify(&SecretString::from("wrong"), Some(&h)).await.unwrap());
        assert!(!p.verify(&pw, None).await.unwrap());
        assert!(!p.verify(&pw, Some("not a hash")).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_hashes_than_permits_run_at_once() {
        let p = Passwords::new(1024, 1).unwrap();
        let running = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let burst = (0..6).map(|_| {
            let (p, running) = (p.clone(), running.clone());
            tokio::spawn(async move {
                let _permit = p.permit().await.unwrap();
                let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                assert_eq!(now, 1, "two hashes at once");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            })
        });
        for t in futures_util::future::join_all(burst).await {
            t.unwrap();
        }
        let pw = SecretString::from("correct horse");
        let hashes = futures_util::future::join_all((0..4).map(|_| p.hash(&pw))).await;
        assert!(hashes.iter().all(|h| h.is_ok()));
    }
}
