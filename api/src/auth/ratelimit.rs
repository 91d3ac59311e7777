//! Fixed-window rate limits, shared by every instance through Redis, with an
//! in-process fallback (no Redis configured, or Redis unreachable right now): sign-in
//! throttling, and each signed-in session's requests per minute from its plan.
use crate::{error::AppError, model::QuotaMetric, principal::Principal, shared_redis::SharedRedis};
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// The outcome of one counted attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Within the limit.
    Allowed,
    /// Over it; a retry may succeed after this long.
    Limited {
        /// Time until the window ends.
        retry_after: Duration,
    },
}

/// Counts attempts per key and window.
pub struct RateLimiter {
    redis: Option<std::sync::Arc<SharedRedis>>,
    local: Mutex<LocalWindows>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").field("redis", &self.redis.is_some()).finish_non_exhaustive()
    }
}

/// INCRBY with the window's expiry set on the first hit, and the time left: atomic, so
/// concurrent instances never lose a count or leave a key without expiry.
const SCRIPT: &str = r"
local c = redis.call('INCRBY', KEYS[1], ARGV[2])
if c == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {c, ttl}
";

impl RateLimiter {
    /// A limiter on Redis when a link is given, in-process otherwise.
    pub fn new(redis: Option<std::sync::Arc<SharedRedis>>) -> Self {
        RateLimiter { redis, local: Mutex::new(LocalWindows::default()) }
    }

    /// Counts one attempt under `key` against `limit` per `window`: in Redis, shared by
    /// every instance, while it answers within its timeout; in this process otherwise
    /// (each instance then counts alone).
    pub async fn hit(&self, key: &str, limit: u32, window: Duration) -> Decision {
        self.hit_n(key, 1, limit, window).await
    }

    /// Counts `n` attempts at once (a document's root fields): all allowed, or the
    /// whole lot refused.
    pub async fn hit_n(&self, key: &str, n: u64, limit: u32, window: Duration) -> Decision {
        let (count, left) = self.add(key, n, window).await;
        let decision = decide(count, limit, left);
        if matches!(decision, Decision::Limited { .. }) {
            let label = crate::metrics::rate_limit_label(key);
            crate::metrics::shared().rate_limit_refusals.with_label_values(&[label]).inc();
        }
        decision
    }

    /// Adds `n` (0: only reads) to `key`'s count in its window, which starts with the
    /// first addition and lasts `window`; returns the count and the time left in the
    /// window. Shared through Redis when it answers within its timeout, else counted
    /// in this process.
    pub async fn add(&self, key: &str, n: u64, window: Duration) -> (u64, Duration) {
        if let Some(redis) = &self.redis {
            let counted = redis
                .run(|mut conn| async move {
                    redis::Script::new(SCRIPT)
                        .key(format!("plinth:rl:{key}"))
                        .arg(window.as_millis() as u64)
                        .arg(n)
                        .invoke_async::<(u64, u64)>(&mut conn)
                        .await
                })
                .await;
            if let Some((count, ttl_ms)) = counted {
                return (count, Duration::from_millis(ttl_ms));
            }
        }
        self.local.lock().expect("rate limiter").add(key, n, window, Instant::now())
    }
}

/// Counts a request of a signed-in session against its plan's requests per minute, as
/// `fields` (its root fields: aliases multiply what it does); the limit travels in its
/// token (an API token's is read per request). Anonymous callers and workers are not
/// counted here.
///
/// Errors: RATE_LIMITED with the seconds until the window ends.
pub async fn check_request_rate(limiter: &RateLimiter, principal: &Principal, fields: u64) -> Result<(), AppError> {
    let Some(claims) = principal.claims() else { return Ok(()) };
    let Some(limit) = claims.quota(QuotaMetric::ApiRequestsPerMinute).filter(|l| *l > 0) else { return Ok(()) };
    let key = format!("api:{}:{}", claims.user_id, claims.session_id);
    let limit = u32::try_from(limit).unwrap_or(u32::MAX);
    match limiter.hit_n(&key, fields.max(1), limit, Duration::from_secs(60)).await {
        Decision::Allowed => Ok(()),
        Decision::Limited { retry_after } => {
            Err(AppError::RateLimited { retry_after_secs: retry_after.as_secs().max(1) })
        }
    }
}

fn decide(count: u64, limit: u32, left: Duration) -> Decision {
    if count <= u64::from(limit) {
        Decision::Allowed
    } else {
        Decision::Limited { retry_after: left.max(Duration::from_secs(1)) }
    }
}

/// In-process windows: key → (window start, count). Expired windows are swept when
/// the map grows, so memory stays bounded by the keys active in one window.
#[derive(Default)]
struct LocalWindows {
    windows: HashMap<String, (Instant, u64)>,
    next_sweep: usize,
}

impl LocalWindows {
    #[cfg(test)]
    fn hit(&mut self, key: &str, n: u64, limit: u32, window: Duration, now: Instant) -> Decision {
        let (count, left) = self.add(key, n, window, now);
        decide(count, limit, left)
    }

    fn add(&mut self, key: &str, n: u64, window: Duration, now: Instant) -> (u64, Duration) {
        if self.windows.len() >= self.next_sweep {
            self.windows.retain(|_, (start, _)| now.duration_since(*start) < window);
            self.next_sweep = (self.windows.len() * 2).max(1024);
        }
        let entry = self.windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 += n;
        (entry.1, window.saturating_sub(now.duration_since(entry.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_windows_limit_and_reset() {
        let mut w = LocalWindows::default();
        let t0 = Instant::now();
        let win = Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(w.hit("k", 1, 3, win, t0), Decision::Allowed);
        }
        assert!(matches!(w.hit("k", 1, 3, win, t0), Decision::Limited { .. }));
        assert_eq!(w.hit("other", 1, 3, win, t0), Decision::Allowed);
        assert_eq!(w.hit("k", 1, 3, win, t0 + win), Decision::Allowed);
        assert!(matches!(w.hit("n", 4, 3, win, t0), Decision::Limited { .. }), "four at once over three");
    }
}
