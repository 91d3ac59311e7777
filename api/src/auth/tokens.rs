//! Access tokens: biscuits signed by the Ed25519 root key, verified against the root
//! public key and the Datalog policies in `policies/`. A verified token's claims are
//! cached by the token's hash until it expires, because signature checks and the
//! Datalog run cost far more than the rest of a cheap request.
use crate::{
    error::AppError,
    model::{AccountState, ApiScope, JobKind, PlanCode, QuotaMetric, Role},
    principal::{ApiAuth, Limits, Principal, UserClaims, WorkerClaims},
};
use anyhow::Context;
use biscuit_auth::{
    builder::{date, fact, int, string},
    builder_ext::BuilderExt,
    AuthorizerBuilder, AuthorizerLimits, Biscuit, KeyPair, PrivateKey, PublicKey,
};
use chrono::{DateTime, Utc};
use lru::LruCache;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use std::{
    num::NonZeroUsize,
    path::Path,
    str::FromStr,
    sync::Mutex,
    time::{Duration, SystemTime},
};
use uuid::Uuid;

/// The policy files shipped with the binary, compiled in from `policies/` so the
/// server needs no files beside it; `PLINTH_POLICIES_DIR` loads them from disk instead.
const BUILTIN_POLICIES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/policies.rs"));

/// How many verified tokens to remember.
const CACHE_SIZE: usize = 50_000;

/// Limits of one authorization run, set explicitly. Facts and iterations bound the
/// work an attenuated token can ask for; the time limit is only a backstop, generous
/// because it is wall-clock time: the library's 1 ms default (and, measured here, even
/// 50 ms) denies valid tokens at random on a loaded machine, where the thread can be
/// preempted mid-run.
fn limits() -> AuthorizerLimits {
    AuthorizerLimits { max_facts: 1_000, max_iterations: 100, max_time: Duration::from_millis(500) }
}

/// What an access token is issued for.
#[derive(Clone, Copy, Debug)]
pub struct TokenGrant<'a> {
    /// The account.
    pub user_id: Uuid,
    /// Its role.
    pub role: Role,
    /// The session (refresh-token family).
    pub session_id: Uuid,
    /// Its plan now.
    pub plan: PlanCode,
    /// Its account state now.
    pub account_state: AccountState,
    /// Its plan's limits, by metric.
    pub quotas: &'a Limits,
}

/// Where the token service's key and policies come from.
#[derive(Clone, Debug)]
pub struct TokenSettings {
    /// `PLINTH_TOKEN_KEY` (`ed25519-private/<hex>`); None: the data dir's key file.
    pub key: Option<secrecy::SecretString>,
    /// Where a development key is kept (generated on first start).
    pub key_file: std::path::PathBuf,
    /// Whether a missing key is an error (production).
    pub require_key: bool,
    /// `PLINTH_POLICIES_DIR`: load `*.datalog` from here instead of the built-in ones.
    pub policies_dir: Option<std::path::PathBuf>,
    /// Access-token lifetime.
    pub ttl: Duration,
    /// `PLINTH_TOKEN_KEY_ID`: the id of `key`, written in every token it signs.
    pub key_id: u32,
    /// `PLINTH_TOKEN_PREVIOUS_KEYS`: `<id>:ed25519/<hex>,...`, still accepted for
    /// verification during a rotation.
    pub previous_keys: Option<String>,
}

/// Issues and verifies access tokens.
pub struct TokenService {
    root: KeyPair,
    public: PublicKey,
    /// The root key id of `root`, written in every token it signs.
    key_id: u32,
    /// Earlier root keys by id, accepted for verification during a rotation.
    previous: std::collections::HashMap<u32, PublicKey>,
    /// `policies/access.datalog`: session and worker tokens, once per request.
    policies: AuthorizerBuilder,
    /// `policies/api_tokens.datalog`: API tokens, once per root field.
    api_policies: AuthorizerBuilder,
    /// Revocation ids of revoked API tokens.
    revoked_api: std::sync::RwLock<std::collections::HashSet<String>>,
    ttl: Duration,
    cache: Mutex<LruCache<[u8; 32], Principal>>,
    /// Per user: tokens issued before this instant are refused.
    revoked: std::sync::RwLock<std::collections::HashMap<Uuid, DateTime<Utc>>>,
    /// Ended sessions (logout, password change or reset, refresh-token reuse), with when
    /// they were learnt: their access tokens are refused.
    revoked_sessions: std::sync::RwLock<std::collections::HashMap<Uuid, DateTime<Utc>>>,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService").field("public", &self.public.to_string()).finish_non_exhaustive()
    }
}

impl TokenService {
    /// Loads the root key (configured, else the data dir's, generated on first start in
    /// development) and the policies.
    ///
    /// Errors: a malformed key, an unreadable key file or policies directory, or a policy that does not compile.
    pub fn from_settings(settings: &TokenSettings) -> anyhow::Result<Self> {
        let root = match &settings.key {
            Some(key) => parse_key(key.expose_secret()).context("PLINTH_TOKEN_KEY")?,
            None if settings.require_key => anyhow::bail!("PLINTH_TOKEN_KEY is required in production"),
            None => load_or_create_key(&settings.key_file)?,
        };
        let policies = match &settings.policies_dir {
            Some(dir) => load_policies_dir(dir).context("PLINTH_POLICIES_DIR")?,
            None => BUILTIN_POLICIES.iter().map(|(n, s)| (n.to_string(), s.to_string())).collect(),
        };
        let previous = match &settings.previous_keys {
            Some(list) => parse_previous_keys(list).context("PLINTH_TOKEN_PREVIOUS_KEYS")?,
            None => Default::default(),
        };
        anyhow::ensure!(
            !previous.contains_key(&settings.key_id),
            "PLINTH_TOKEN_PREVIOUS_KEYS: key id {} is the current key's (PLINTH_TOKEN_KEY_ID)",
            settings.key_id
        );
        let mut service = Self::new(root, &policies, settings.ttl)?;
        service.key_id = settings.key_id;
        service.previous = previous;
        Ok(service)
    }

    /// Builds the service from a key and policy sources (name, Datalog).
    ///
    /// Errors: a policy file missing or not compiling.
    pub fn new(root: KeyPair, policies: &[(String, String)], ttl: Duration) -> anyhow::Result<Self> {
        // Each policy file is its own ordered policy set, named by its file name.
        let set = |file: &str| -> anyhow::Result<AuthorizerBuilder> {
            let (name, source) =
                policies.iter().find(|(n, _)| n == file).with_context(|| format!("policies/{file} is missing"))?;
            AuthorizerBuilder::new().set_limits(limits()).code(source).with_context(|| format!("policy {name}"))
        };
        Ok(TokenService {
            public: root.public(),
            key_id: 0,
            previous: Default::default(),
            policies: set("access.datalog")?,
            api_policies: set("api_tokens.datalog")?,
            revoked_api: Default::default(),
            root,
            ttl,
            cache: Mutex::new(LruCache::new(NonZeroUsize::new(CACHE_SIZE).expect("non-zero"))),
            revoked: Default::default(),
            revoked_sessions: Default::default(),
        })
    }

    /// The root public key, for verifying tokens elsewhere.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// Signs an access token for a signed-in account.
    ///
    /// Errors: a biscuit that cannot be built (a bug).
    pub fn issue(&self, claims: &TokenGrant<'_>) -> anyhow::Result<(String, DateTime<Utc>)> {
        let now = Utc::now();
        let expires = SystemTime::now() + self.ttl;
        let mut builder = Biscuit::builder()
            .root_key_id(self.key_id)
            .fact(fact("user", &[string(&claims.user_id.to_string())]))?
            .fact(fact("role", &[string(claims.role.as_str())]))?
            .fact(fact("session", &[string(&claims.session_id.to_string())]))?
            .fact(fact("plan", &[string(claims.plan.as_str())]))?
            .fact(fact("state", &[string(claims.account_state.as_str())]))?
            .fact(fact("issued_ms", &[int(now.timestamp_millis())]))?
            .fact(fact("expires", &[date(&expires)]))?;
        for (metric, limit) in &claims.quotas.0 {
            builder = builder.fact(fact("quota", &[string(metric.as_str()), int(*limit)]))?;
        }
        builder = builder.check_expiration_date(expires);
        let token = builder.build(&self.root)?.to_base64()?;
        Ok((token, DateTime::<Utc>::from(expires)))
    }

    /// Signs a worker token for the given job kinds.
    ///
    /// Errors: a biscuit that cannot be built (a bug).
    pub fn issue_worker(&self, worker_id: Uuid, kinds: &[JobKind], ttl: Duration) -> anyhow::Result<String> {
        let expires = SystemTime::now() + ttl;
        let mut builder = Biscuit::builder()
            .root_key_id(self.key_id)
            .fact(fact("worker", &[string(&worker_id.to_string())]))?
            .fact(fact("expires", &[date(&expires)]))?;
        for kind in kinds {
            builder = builder.fact(fact("kind", &[string(kind.as_str())]))?;
        }
        Ok(builder.check_expiration_date(expires).build(&self.root)?.to_base64()?)
    }

    /// Verifies a token and returns who it speaks for. The revocation set is checked on
    /// every call, cached or not.
    ///
    /// Errors: UNAUTHENTICATED (bad signature, expired, revoked, malformed).
    pub fn verify(&self, token: &str) -> Result<Principal, AppError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Utc::now();
        let cached = self.cache.lock().expect("token cache").get(&key).cloned();
        let hit = if cached.is_some() { "hit" } else { "miss" };
        crate::metrics::shared().token_cache.with_label_values(&[hit]).inc();
        let principal = match cached {
            Some(p) => p,
            None => {
                let p = self.verify_uncached(token)?;
                self.cache.lock().expect("token cache").put(key, p.clone());
                p
            }
        };
        self.check_current(&principal, now)?;
        Ok(principal)
    }

    fn check_current(&self, principal: &Principal, now: DateTime<Utc>) -> Result<(), AppError> {
        if principal.expires_at().is_none_or(|e| e <= now) {
            return Err(expired());
        }
        self.not_revoked(principal)
    }

    /// Whether nothing revoked `principal`'s token since it was verified (its session,
    /// its API or worker token, its user's tokens up to a plan change), expiry aside: a
    /// socket keeps its own expiry, which a fresh token sent in band moves.
    ///
    /// Errors: UNAUTHENTICATED.
    pub fn not_revoked(&self, principal: &Principal) -> Result<(), AppError> {
        if let Some(api) = principal.claims().and_then(|c| c.api.as_ref()) {
            if self.revoked_api.read().expect("revocations").contains(&api.revocation_id) {
                return Err(AppError::Unauthenticated("this API token was revoked".into()));
            }
            // API tokens carry no plan: it is read per request, so plan changes do not
            // revoke them.
            return Ok(());
        }
        if let Some(w) = principal.worker() {
            if self.revoked_api.read().expect("revocations").contains(&w.revocation_id) {
                return Err(AppError::Unauthenticated("this worker token was revoked".into()));
            }
            return Ok(());
        }
        if let Some(c) = principal.claims() {
            if self.revoked_sessions.read().expect("revocations").contains_key(&c.session_id) {
                return Err(AppError::Unauthenticated("the session was ended; sign in again".into()));
            }
            let revoked = self.revoked.read().expect("revocations").get(&c.user_id).copied();
            if revoked.is_some_and(|before| c.issued_at < before) {
                return Err(AppError::Unauthenticated(
                    "the access token was revoked (plan or account change); refresh the session".into(),
                ));
            }
        }
        Ok(())
    }

    /// Refuses the access tokens of an ended session from now on, on this instance (kept
    /// as long as a token can live).
    pub fn revoke_session(&self, session_id: Uuid) {
        let mut map = self.revoked_sessions.write().expect("revocations");
        let now = Utc::now();
        let horizon = now - chrono::Duration::from_std(self.ttl).unwrap_or_default();
        if map.len() > 1024 {
            map.retain(|_, at| *at > horizon);
        }
        map.insert(session_id, now);
    }

    /// Refuses the user's tokens issued before `before` (kept only as long as a token
    /// can live).
    pub fn revoke(&self, user_id: Uuid, before: DateTime<Utc>) {
        let mut map = self.revoked.write().expect("revocations");
        let horizon = Utc::now() - chrono::Duration::from_std(self.ttl).unwrap_or_default();
        map.retain(|_, b| *b > horizon);
        let entry = map.entry(user_id).or_insert(before);
        *entry = (*entry).max(before);
    }

    /// Refuses an API token or a worker token (by the revocation id of its authority
    /// block) from now on, on this instance.
    pub fn revoke_api(&self, revocation_id: &str) {
        self.revoked_api.write().expect("revocations").insert(revocation_id.to_owned());
    }

    /// Signs an API token for `user_id` with `scopes`, valid until `expires`; returns the
    /// token and its revocation id.
    ///
    /// Errors: a biscuit that cannot be built (a bug).
    pub fn issue_api(
        &self,
        user_id: Uuid,
        token_id: Uuid,
        scopes: &[ApiScope],
        expires: DateTime<Utc>,
    ) -> anyhow::Result<(String, String)> {
        let expires: SystemTime = expires.into();
        let authority = Biscuit::builder()
            .root_key_id(self.key_id)
            .fact(fact("user", &[string(&user_id.to_string())]))?
            .fact(fact("api_token", &[string(&token_id.to_string())]))?
            .fact(fact("expires", &[date(&expires)]))?
            .check_expiration_date(expires);
        let biscuit = authority.build(&self.root)?;
        let mut grant = biscuit_auth::builder::BlockBuilder::new();
        for scope in scopes {
            grant = grant.fact(fact("scope", &[string(scope.as_str())]))?;
        }
        grant = grant.code("check if operation($op), scope($op);")?;
        let biscuit = biscuit.append(grant)?;
        let revocation = hex::encode(biscuit.revocation_identifiers().first().context("no revocation id")?);
        Ok((biscuit.to_base64()?, revocation))
    }

    /// Authorizes one field for an API token: the scope it needs, the field and its `id`
    /// argument are facts; every block's checks (the integrator's attenuations too) and
    /// `policies/api_tokens.datalog` decide.
    ///
    /// Errors: FORBIDDEN.
    pub fn authorize_api(
        &self,
        api: &ApiAuth,
        operation: ApiScope,
        field: &str,
        resource: Option<&str>,
    ) -> Result<(), AppError> {
        let operation = operation.as_str();
        let refused = |e: biscuit_auth::error::Token| {
            tracing::debug!(error = %e, operation, field, "API token refused for a field");
            AppError::Forbidden(format!("this API token may not call {field} ({operation})"))
        };
        let mut builder = self
            .api_policies
            .clone()
            .time()
            .fact(fact("operation", &[string(operation)]))
            .map_err(refused)?
            .fact(fact("field", &[string(field)]))
            .map_err(refused)?;
        if let Some(r) = resource {
            builder = builder.fact(fact("resource", &[string(r)])).map_err(refused)?;
        }
        let mut authorizer = builder.build(&api.biscuit).map_err(refused)?;
        authorizer.authorize().map_err(refused)?;
        Ok(())
    }

    /// The public key a token naming root key `id` is verified with: the current key,
    /// or an earlier one during a rotation. A token without an id counts as id 0.
    ///
    /// Errors: an id no configured key has.
    fn root_key(&self, id: Option<u32>) -> Result<PublicKey, biscuit_auth::error::Format> {
        let id = id.unwrap_or(0);
        if id == self.key_id {
            return Ok(self.public);
        }
        self.previous.get(&id).copied().ok_or(biscuit_auth::error::Format::UnknownPublicKey)
    }

    /// The root key id new tokens carry.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// How long access tokens live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn verify_uncached(&self, token: &str) -> Result<Principal, AppError> {
        let invalid = |e: biscuit_auth::error::Token| {
            tracing::debug!(error = %e, "access token refused");
            match e {
                biscuit_auth::error::Token::FailedLogic(_) => {
                    AppError::Unauthenticated("the access token is expired or not valid for this request".into())
                }
                // Our limits, not the token's fault: the client may retry.
                biscuit_auth::error::Token::RunLimit(limit) => {
                    AppError::Internal(anyhow::anyhow!("checking an access token hit a limit: {limit}"))
                }
                _ => AppError::Unauthenticated("the access token is not valid".into()),
            }
        };
        let biscuit = Biscuit::from_base64(token.trim(), |id| self.root_key(id)).map_err(invalid)?;
        let mut authorizer = self.policies.clone().time().build(&biscuit).map_err(invalid)?;
        let bad = || AppError::Unauthenticated("the access token is not valid".into());
        // An API token's checks need the field being called: they run per field
        // (authorize_api); here only its signature and authority facts are read.
        let api: Vec<(String, String, SystemTime)> =
            authorizer.query("api($t, $u, $e) <- api_token($t), user($u), expires($e)").map_err(invalid)?;
        if let Ok([(token_id, user, expires)]) = <[_; 1]>::try_from(api) {
            let revocation_id = hex::encode(biscuit.revocation_identifiers().first().ok_or_else(bad)?);
            let token_id = Uuid::parse_str(&token_id).map_err(|_| bad())?;
            return Ok(Principal::User(UserClaims {
                user_id: Uuid::parse_str(&user).map_err(|_| bad())?,
                role: Role::User,
                session_id: token_id,
                expires_at: DateTime::<Utc>::from(expires),
                issued_at: DateTime::<Utc>::UNIX_EPOCH,
                // Read from the database for each request (auth::entitlements).
                plan: PlanCode::Free,
                account_state: AccountState::Free,
                quotas: Limits::default(),
                api: Some(ApiAuth { token_id, revocation_id, biscuit: std::sync::Arc::new(biscuit) }),
            }));
        }
        authorizer.authorize().map_err(invalid)?;
        let users: Vec<(String, String, String, SystemTime)> = authorizer
            .query("claims($u, $r, $s, $e) <- user($u), role($r), session($s), expires($e)")
            .map_err(invalid)?;
        if let Ok([(user, role, session, expires)]) = <[_; 1]>::try_from(users) {
            let billing: Vec<(String, String, i64)> =
                authorizer.query("billing($p, $st, $i) <- plan($p), state($st), issued_ms($i)").map_err(invalid)?;
            let [(plan, account_state, issued_ms)] = <[_; 1]>::try_from(billing).map_err(|_| bad())?;
            let quotas: Vec<(String, i64)> = authorizer.query("quotas($m, $l) <- quota($m, $l)").map_err(invalid)?;
            let quotas = quotas
                .into_iter()
                .map(|(m, l)| Ok((QuotaMetric::parse(&m).map_err(|_| bad())?, l)))
                .collect::<Result<Vec<_>, AppError>>()?;
            return Ok(Principal::User(UserClaims {
                user_id: Uuid::parse_str(&user).map_err(|_| bad())?,
                role: Role::parse(&role).map_err(|_| bad())?,
                session_id: Uuid::parse_str(&session).map_err(|_| bad())?,
                expires_at: DateTime::<Utc>::from(expires),
                issued_at: DateTime::from_timestamp_millis(issued_ms).ok_or_else(bad)?,
                plan: PlanCode::parse(&plan).map_err(|_| bad())?,
                account_state: AccountState::parse(&account_state).map_err(|_| bad())?,
                quotas: Limits(quotas),
                api: None,
            }));
        }
        let workers: Vec<(String, SystemTime)> =
            authorizer.query("claims($w, $e) <- worker($w), expires($e)").map_err(invalid)?;
        let [(worker, expires)] = <[_; 1]>::try_from(workers).map_err(|_| bad())?;
        let kinds: Vec<(String,)> = authorizer.query("kinds($k) <- kind($k)").map_err(invalid)?;
        Ok(Principal::Worker(WorkerClaims {
            revocation_id: hex::encode(biscuit.revocation_identifiers().first().ok_or_else(bad)?),
            worker_id: Uuid::parse_str(&worker).map_err(|_| bad())?,
            kinds: kinds.into_iter().map(|k| JobKind::parse(&k.0).map_err(|_| bad())).collect::<Result<_, _>>()?,
            expires_at: DateTime::<Utc>::from(expires),
        }))
    }
}

fn expired() -> AppError {
    AppError::Unauthenticated("the access token has expired".into())
}

/// `<id>:ed25519/<hex>,...` into keys by id.
fn parse_previous_keys(list: &str) -> anyhow::Result<std::collections::HashMap<u32, PublicKey>> {
    let mut keys = std::collections::HashMap::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (id, key) = item.split_once(':').context("expected <id>:ed25519/<public key hex>")?;
        let id: u32 = id.trim().parse().with_context(|| format!("key id {id:?} is not a number"))?;
        let key = PublicKey::from_str(key.trim())
            .map_err(|_| anyhow::anyhow!("key {id}: expected ed25519/<64 hex digits>"))?;
        anyhow::ensure!(keys.insert(id, key).is_none(), "key id {id} is listed twice");
    }
    Ok(keys)
}

fn parse_key(s: &str) -> anyhow::Result<KeyPair> {
    let key = PrivateKey::from_str(s.trim())
        .map_err(|_| anyhow::anyhow!("expected an Ed25519 private key as ed25519-private/<64 hex digits>"))?;
    Ok(KeyPair::from(&key))
}

fn load_or_create_key(path: &Path) -> anyhow::Result<KeyPair> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        return parse_key(&existing).with_context(|| format!("reading {}", path.display()));
    }
    let root = KeyPair::new();
    crate::fsutil::write_private(path, root.private().to_prefixed_string().as_bytes())?;
    tracing::info!(path = %path.display(), "generated a new token signing key");
    Ok(root)
}

fn load_policies_dir(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "datalog") {
            let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            files.push((name, std::fs::read_to_string(&path)?));
        }
    }
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no *.datalog policies in {}", dir.display());
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(ttl: Duration) -> TokenService {
        let policies: Vec<_> = BUILTIN_POLICIES.iter().map(|(n, s)| (n.to_string(), s.to_string())).collect();
        TokenService::new(KeyPair::new(), &policies, ttl).unwrap()
    }

    fn grant(user_id: Uuid, role: Role, session_id: Uuid, quotas: &Limits) -> TokenGrant<'_> {
        TokenGrant { user_id, role, session_id, plan: PlanCode::Pro, account_state: AccountState::Active, quotas }
    }

    fn ten_scans() -> Limits {
        Limits(vec![(QuotaMetric::Scans, 10)])
    }

    #[test]
    fn revoked_tokens_are_refused_and_later_ones_accepted() {
        let s = service(Duration::from_secs(60));
        let u = Uuid::new_v4();
        let (old, _) = s.issue(&grant(u, Role::User, Uuid::new_v4(), &ten_scans())).unwrap();
        assert!(s.verify(&old).is_ok());
        std::thread::sleep(Duration::from_millis(5));
        s.revoke(u, Utc::now());
        assert_eq!(s.verify(&old).unwrap_err().code(), "UNAUTHENTICATED", "cached tokens are checked too");
        std::thread::sleep(Duration::from_millis(5));
        let (new, _) = s.issue(&grant(u, Role::User, Uuid::new_v4(), &ten_scans())).unwrap();
        let p = s.verify(&new).unwrap();
        assert_eq!(p.claims().unwrap().quota(QuotaMetric::Scans), Some(10));
        assert_eq!(
            (p.claims().unwrap().plan, p.claims().unwrap().account_state),
            (PlanCode::Pro, AccountState::Active)
        );
    }

    #[test]
    fn issued_tokens_verify_with_their_claims() {
        let s = service(Duration::from_secs(60));
        let (u, sid) = (Uuid::new_v4(), Uuid::new_v4());
        let (token, exp) = s.issue(&grant(u, Role::Admin, sid, &ten_scans())).unwrap();
        let p = s.verify(&token).unwrap();
        let c = p.claims().unwrap();
        assert_eq!((c.user_id, c.role, c.session_id), (u, Role::Admin, sid));
        assert!((c.expires_at - exp).num_seconds().abs() <= 1);
    }

    #[test]
    fn other_keys_garbage_and_expired_tokens_are_refused() {
        let s = service(Duration::from_secs(60));
        let other = service(Duration::from_secs(60));
        let (token, _) = other.issue(&grant(Uuid::new_v4(), Role::User, Uuid::new_v4(), &ten_scans())).unwrap();
        assert_eq!(s.verify(&token).unwrap_err().code(), "UNAUTHENTICATED");
        assert_eq!(s.verify("garbage").unwrap_err().code(), "UNAUTHENTICATED");
        let short = service(Duration::from_secs(1));
        let (token, _) = short.issue(&grant(Uuid::new_v4(), Role::User, Uuid::new_v4(), &ten_scans())).unwrap();
        std::thread::sleep(Duration::from_millis(2100));
        assert_eq!(short.verify(&token).unwrap_err().code(), "UNAUTHENTICATED");
    }

    #[test]
    fn an_attenuated_block_cannot_claim_another_user() {
        let s = service(Duration::from_secs(60));
        let (token, _) = s.issue(&grant(Uuid::new_v4(), Role::User, Uuid::new_v4(), &ten_scans())).unwrap();
        let b = Biscuit::from_base64(&token, s.public_key()).unwrap();
        let forged = b
            .append(biscuit_auth::builder::BlockBuilder::new().fact(fact("role", &[string("admin")])).unwrap())
            .unwrap()
            .to_base64()
            .unwrap();
        assert_eq!(s.verify(&forged).unwrap().claims().unwrap().role, Role::User);
    }

    /// policies/api_tokens.datalog, table-driven: (granted scopes, operation asked,
    /// attenuation appended by the holder, expected).
    #[test]
    fn api_token_policy_allows_exactly_the_granted_and_not_attenuated_operations() {
        let s = service(Duration::from_secs(60));
        let user = Uuid::new_v4();
        let expires = Utc::now() + chrono::Duration::days(1);
        /// Granted scopes, operation, resource fact, holder's attenuation, allowed.
        type Case<'a> = (&'a [&'a str], &'a str, Option<&'a str>, Option<&'a str>, bool);
        let cases: &[Case] = &[
            (&["drafts:read"], "drafts:read", None, None, true),
            (&["drafts:read"], "drafts:write", None, None, false),
            (&["drafts:read", "jobs:write"], "jobs:write", None, None, true),
            (&["jobs:read"], "billing:read", None, None, false),
            (
                &["drafts:read", "drafts:write"],
                "drafts:write",
                None,
                Some("check if operation(\"drafts:read\");"),
                false,
            ),
            (&["drafts:read", "drafts:write"], "drafts:read", None, Some("check if operation(\"drafts:read\");"), true),
            (&["drafts:read"], "drafts:read", Some("d1"), Some("check if resource(\"d1\");"), true),
            (&["drafts:read"], "drafts:read", Some("d2"), Some("check if resource(\"d1\");"), false),
            (&["drafts:read"], "drafts:read", None, Some("check if resource(\"d1\");"), false),
            (&["drafts:read"], "drafts:read", None, Some("check if time($t), $t <= 2020-01-01T00:00:00Z;"), false),
            (&["jobs:read"], "drafts:write", None, Some("scope(\"drafts:write\");"), false),
        ];
        for (i, (scopes, operation, resource, attenuation, expected)) in cases.iter().enumerate() {
            let scopes: Vec<ApiScope> = scopes.iter().map(|s| s.parse().unwrap()).collect();
            let (token, _) = s.issue_api(user, Uuid::new_v4(), &scopes, expires).unwrap();
            let token = match attenuation {
                Some(code) => Biscuit::from_base64(&token, s.public_key())
                    .unwrap()
                    .append(biscuit_auth::builder::BlockBuilder::new().code(*code).unwrap())
                    .unwrap()
                    .to_base64()
                    .unwrap(),
                None => token,
            };
            let principal = s.verify(&token).unwrap();
            let api = principal.claims().and_then(|c| c.api.clone()).expect("an API token");
            let allowed = s.authorize_api(&api, operation.parse().unwrap(), "field", *resource).is_ok();
            assert_eq!(allowed, *expected, "case {i}: {scopes:?} {operation} {resource:?} {attenuation:?}");
        }
    }

    /// policies/access.datalog, table-driven: the authority facts a token carries, and
    /// whether a request with it is allowed.
    #[test]
    fn access_policy_allows_named_sessions_and_workers_only() {
        let s = service(Duration::from_secs(60));
        let later = SystemTime::now() + Duration::from_secs(60);
        let u = Uuid::new_v4().to_string();
        let cases: &[(&str, bool)] = &[
            ("user(\"U\"); role(\"user\"); session(\"S\"); plan(\"free\"); state(\"free\"); issued_ms(0);", true),
            ("user(\"U\"); role(\"user\");", false),
            ("worker(\"U\"); kind(\"scan\");", true),
            ("worker(\"U\");", false),
            ("role(\"admin\");", false),
            ("", false),
        ];
        for (facts, expected) in cases {
            let code = facts.replace(['U', 'S'], &u);
            let mut builder = Biscuit::builder().fact(fact("expires", &[date(&later)])).unwrap();
            if !code.is_empty() {
                builder = builder.code(code.as_str()).unwrap();
            }
            let token = builder.build(&s.root).unwrap().to_base64().unwrap();
            assert_eq!(s.verify(&token).is_ok(), *expected, "{facts}");
        }
    }

    #[test]
    fn worker_tokens_carry_their_kinds() {
        let s = service(Duration::from_secs(60));
        let w = Uuid::new_v4();
        let token = s.issue_worker(w, &[JobKind::Scan, JobKind::Prepare], Duration::from_secs(60)).unwrap();
        let p = s.verify(&token).unwrap();
        let claims = p.worker().unwrap();
        assert_eq!(claims.worker_id, w);
        let mut kinds = claims.kinds.clone();
        kinds.sort();
        assert_eq!(kinds, [JobKind::Scan, JobKind::Prepare]);
        assert!(p.claims().is_none());
        s.revoke_api(&claims.revocation_id);
        assert!(s.verify(&token).is_err(), "a revoked worker token is refused");
    }

    #[test]
    fn tokens_name_their_root_key_and_a_rotation_keeps_the_old_one_for_verification() {
        let dir = std::env::temp_dir().join(format!("plinth-keys-{}", Uuid::new_v4().simple()));
        let settings = |key: &KeyPair, id: u32, previous: Option<String>| TokenSettings {
            key: Some(key.private().to_prefixed_string().into()),
            key_file: dir.join("unused"),
            require_key: true,
            policies_dir: None,
            ttl: Duration::from_secs(60),
            key_id: id,
            previous_keys: previous,
        };
        let (old, new) = (KeyPair::new(), KeyPair::new());
        let before = TokenService::from_settings(&settings(&old, 0, None)).unwrap();
        let limits = ten_scans();
        let (token, _) = before.issue(&grant(Uuid::new_v4(), Role::User, Uuid::new_v4(), &limits)).unwrap();
        assert_eq!(biscuit_auth::UnverifiedBiscuit::from_base64(&token).unwrap().root_key_id(), Some(0));

        let rotated = TokenService::from_settings(&settings(&new, 1, Some(format!("0:{}", old.public())))).unwrap();
        assert!(rotated.verify(&token).is_ok(), "old tokens verify during the rotation window");
        let (fresh, _) = rotated.issue(&grant(Uuid::new_v4(), Role::User, Uuid::new_v4(), &limits)).unwrap();
        assert_eq!(biscuit_auth::UnverifiedBiscuit::from_base64(&fresh).unwrap().root_key_id(), Some(1));
        assert!(before.verify(&fresh).is_err(), "an instance without the new key refuses its tokens");

        let after = TokenService::from_settings(&settings(&new, 1, None)).unwrap();
        assert!(after.verify(&token).is_err(), "after the window the old key's tokens are refused");
        assert!(after.verify(&fresh).is_ok());
        for bad in ["0", "x:ed25519/00", "1:ed25519/zz"] {
            assert!(TokenService::from_settings(&settings(&new, 1, Some(bad.into()))).is_err(), "{bad}");
        }
        assert!(TokenService::from_settings(&settings(&new, 1, Some(format!("1:{}", old.public())))).is_err());
    }
}
