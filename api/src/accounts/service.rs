//! Account operations on the request's transaction. No GraphQL or HTTP here.
//!
//! Where the caller's identity is proven inside the request (a new registration, a
//! password, a refresh token, an e-mailed token), the transaction is switched to act
//! for that account with `db::act_as` before it touches any of the account's rows, so
//! row-level security applies to everything that follows.
use super::domain::{EmailAddress, NewPassword};
use crate::{
    activity::service::{self as activity, Entry},
    auth::{
        opaque::{self, Kind},
        password::Passwords,
        tokens::{TokenGrant, TokenService},
    },
    billing::catalog::Catalog,
    config::Config,
    db::{self, RequestMeta, RequestScope},
    email::{service as outbox, templates},
    error::{AppError, AppResult},
    events::{Event, EventBus},
    principal::{Principal, Role},
    ratelimit::{Decision, RateLimiter},
};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use entity::users;
use rand::{distributions::Alphanumeric, Rng};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait, Set, Statement,
};
use secrecy::SecretString;
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

/// How long an e-mail verification link works.
const VERIFY_EMAIL_TTL_HOURS: i64 = 48;
/// How long a password-reset link works.
const RESET_PASSWORD_TTL_HOURS: i64 = 1;

/// The tokens of a signed-in session and its account.
#[derive(Debug)]
pub struct SignedIn {
    /// The biscuit access token.
    pub access_token: String,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
    /// The opaque refresh token (shown once, stored hashed).
    pub refresh_token: String,
    /// The account.
    pub user: users::Model,
}

/// What `AccountService::new` is built from.
pub struct AccountDeps {
    /// The runtime pool (for revocations that must commit on their own).
    pub pool: DatabaseConnection,
    /// Password hashing.
    pub passwords: Passwords,
    /// Access tokens.
    pub tokens: Arc<TokenService>,
    /// Sign-in throttling.
    pub limiter: Arc<RateLimiter>,
    /// Configuration.
    pub config: Arc<Config>,
    /// Base of links in e-mails.
    pub public_url: String,
    /// Live events (session revocations).
    pub bus: Arc<EventBus>,
    /// Plans and their quotas, carried in access tokens.
    pub catalog: Arc<Catalog>,
}

/// Everything account operations need besides the request's transaction.
pub struct AccountService {
    pool: DatabaseConnection,
    passwords: Passwords,
    tokens: Arc<TokenService>,
    limiter: Arc<RateLimiter>,
    config: Arc<Config>,
    public_url: String,
    bus: Arc<EventBus>,
    catalog: Arc<Catalog>,
}

impl AccountService {
    /// Wires the service.
    pub fn new(deps: AccountDeps) -> Self {
        let AccountDeps { pool, passwords, tokens, limiter, config, public_url, bus, catalog } = deps;
        AccountService { pool, passwords, tokens, limiter, config, public_url, bus, catalog }
    }

    /// Creates an account and signs it in; a verification e-mail goes to the outbox.
    pub async fn register(
        &self,
        tx: &DatabaseTransaction,
        meta: &RequestMeta,
        email: &str,
        password: &str,
    ) -> AppResult<SignedIn> {
        let email = EmailAddress::parse("email", email)?;
        let password = NewPassword::parse("password", password)?;
        let user = self.insert_user(tx, &email, &password.0, Role::User).await?;
        self.send_verification(tx, &user).await?;
        let session = self.open_session(tx, &user, meta).await?;
        activity::record(tx, meta, entry(user.id, "account.register", Some(("session", session.0)))).await?;
        self.signed_in(tx, user, session).await
    }

    /// Signs in with e-mail and password. An unknown e-mail and a wrong password get
    /// the same answer after the same work (a dummy hash is verified).
    pub async fn login(
        &self,
        tx: &DatabaseTransaction,
        meta: &RequestMeta,
        email: &str,
        password: &str,
    ) -> AppResult<SignedIn> {
        let email = EmailAddress::parse("email", email)?;
        self.throttle("login", &email, meta).await?;
        let row = tx
            .query_one(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT id, password_hash, role FROM priv.login_lookup($1::citext)",
                [email.as_str().into()],
            ))
            .await?;
        let found = match &row {
            Some(r) => Some((
                r.try_get::<Uuid>("", "id")?,
                r.try_get::<String>("", "password_hash")?,
                r.try_get::<String>("", "role")?,
            )),
            None => None,
        };
        let secret = SecretString::from(password.to_owned());
        let ok = self.passwords.verify(&secret, found.as_ref().map(|f| f.1.as_str())).await?;
        let (Some((user_id, _, role)), true) = (found, ok) else {
            tracing::info!("sign-in refused");
            return Err(AppError::Unauthenticated("invalid e-mail or password".into()));
        };
        let role = Role::parse(&role).ok_or_else(|| anyhow::anyhow!("unknown role {role:?} in users"))?;
        db::act_as(tx, role, user_id).await?;
        let user = load_user(tx, user_id).await?;
        let session = self.open_session(tx, &user, meta).await?;
        activity::record(tx, meta, entry(user.id, "session.login", Some(("session", session.0)))).await?;
        self.signed_in(tx, user, session).await
    }

    /// Rotates a refresh token: the old one is spent, a new one issued in the same
    /// session. Presenting a spent token again revokes the whole session (it was
    /// stolen, or the client is broken); that revocation commits even though the
    /// request fails.
    pub async fn refresh(&self, tx: &DatabaseTransaction, token: &str) -> AppResult<SignedIn> {
        let parsed = opaque::parse(Kind::Refresh, token).ok_or_else(bad_refresh)?;
        db::act_as(tx, Role::User, parsed.user_id).await?;
        let spent = tx
            .query_one(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "UPDATE refresh_tokens SET used_at = now() \
                 WHERE user_id = $1 AND token_hash = $2 AND used_at IS NULL RETURNING session_id",
                [parsed.user_id.into(), parsed.hash.clone().into()],
            ))
            .await?;
        let session_id = match spent {
            Some(row) => row.try_get::<Uuid>("", "session_id")?,
            None => {
                if let Some(session_id) = token_session(tx, parsed.user_id, &parsed.hash).await? {
                    tracing::warn!(user_id = %parsed.user_id, session_id = %session_id, "refresh token reused; revoking its session");
                    self.revoke_detached(parsed.user_id, session_id, "refresh_token_reuse").await?;
                }
                return Err(bad_refresh());
            }
        };
        let live = tx
            .query_one(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "UPDATE sessions SET last_used_at = now() \
                 WHERE user_id = $1 AND id = $2 AND revoked_at IS NULL AND expires_at > now() RETURNING id",
                [parsed.user_id.into(), session_id.into()],
            ))
            .await?;
        if live.is_none() {
            return Err(bad_refresh());
        }
        let user = load_user(tx, parsed.user_id).await?;
        let refresh_token = self.new_refresh_token(tx, user.id, session_id).await?;
        self.signed_in(tx, user, (session_id, refresh_token)).await
    }

    /// Ends the session of a refresh token. Idempotent for a session already ended.
    pub async fn logout(&self, scope: &RequestScope, token: &str) -> AppResult<bool> {
        let (tx, meta) = (scope.tx.as_ref(), &scope.meta);
        let parsed = opaque::parse(Kind::Refresh, token).ok_or_else(bad_refresh)?;
        db::act_as(tx, Role::User, parsed.user_id).await?;
        let session_id = token_session(tx, parsed.user_id, &parsed.hash).await?.ok_or_else(bad_refresh)?;
        revoke(tx, parsed.user_id, Some(session_id), "logout").await?;
        scope.emit(Event::SessionsRevoked { user_id: parsed.user_id, session_id: Some(session_id) });
        activity::record(tx, meta, entry(parsed.user_id, "session.logout", Some(("session", session_id)))).await?;
        Ok(true)
    }

    /// The caller's account; None when anonymous.
    pub async fn me(&self, scope: &RequestScope) -> AppResult<Option<users::Model>> {
        match scope.principal.user_id() {
            None => Ok(None),
            Some(id) => Ok(users::Entity::find_by_id(id).one(scope.tx.as_ref()).await?),
        }
    }

    /// Sends a new verification link to the caller, unless already verified.
    pub async fn request_email_verification(&self, scope: &RequestScope) -> AppResult<bool> {
        let user_id = scope.require_user()?;
        let user = load_user(scope.tx.as_ref(), user_id).await?;
        if user.email_verified_at.is_none() {
            self.send_verification(&scope.tx, &user).await?;
        }
        Ok(true)
    }

    /// Marks the address of a verification link's account as verified.
    pub async fn verify_email(&self, tx: &DatabaseTransaction, meta: &RequestMeta, token: &str) -> AppResult<bool> {
        let user_id = consume_token(tx, Kind::VerifyEmail, "verify_email", token).await?;
        tx.execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE users SET email_verified_at = coalesce(email_verified_at, now()), updated_at = now() WHERE id = $1",
            [user_id.into()],
        ))
        .await?;
        activity::record(tx, meta, entry(user_id, "account.verify_email", None)).await?;
        Ok(true)
    }

    /// Sends a reset link if the address has an account. Always answers true, so the
    /// answer does not reveal which addresses have accounts.
    pub async fn request_password_reset(
        &self,
        tx: &DatabaseTransaction,
        meta: &RequestMeta,
        email: &str,
    ) -> AppResult<bool> {
        let email = EmailAddress::parse("email", email)?;
        self.throttle("reset", &email, meta).await?;
        let row = tx
            .query_one(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT priv.user_id_for_email($1::citext) AS id",
                [email.as_str().into()],
            ))
            .await?;
        let Some(user_id) = row.map(|r| r.try_get::<Option<Uuid>>("", "id")).transpose()?.flatten() else {
            return Ok(true);
        };
        db::act_as(tx, Role::User, user_id).await?;
        let (token, id) =
            insert_token(tx, Kind::ResetPassword, "reset_password", user_id, RESET_PASSWORD_TTL_HOURS).await?;
        outbox::enqueue(tx, user_id, email.as_str(), templates::reset_password(&self.public_url, &token)).await?;
        activity::record(tx, meta, entry(user_id, "account.request_password_reset", Some(("one_time_token", id))))
            .await?;
        Ok(true)
    }

    /// Sets a new password from a reset link and signs every session out.
    pub async fn reset_password(&self, scope: &RequestScope, token: &str, new_password: &str) -> AppResult<bool> {
        let (tx, meta) = (scope.tx.as_ref(), &scope.meta);
        let password = NewPassword::parse("newPassword", new_password)?;
        let user_id = consume_token(tx, Kind::ResetPassword, "reset_password", token).await?;
        self.set_password(tx, meta, user_id, &password, None).await?;
        scope.emit(Event::SessionsRevoked { user_id, session_id: None });
        Ok(true)
    }

    /// Changes the caller's password after checking the current one; other sessions
    /// are signed out, this one stays.
    pub async fn change_password(&self, scope: &RequestScope, current: &str, new_password: &str) -> AppResult<bool> {
        let claims = scope.principal.claims().ok_or_else(|| AppError::Unauthenticated("sign in to do this".into()))?;
        let password = NewPassword::parse("newPassword", new_password)?;
        let user = load_user(scope.tx.as_ref(), claims.user_id).await?;
        let ok = self.passwords.verify(&SecretString::from(current.to_owned()), Some(&user.password_hash)).await?;
        if !ok {
            return Err(AppError::bad_input("currentPassword", "is not the current password"));
        }
        for session_id in self.set_password(&scope.tx, &scope.meta, user.id, &password, Some(claims.session_id)).await?
        {
            scope.emit(Event::SessionsRevoked { user_id: user.id, session_id: Some(session_id) });
        }
        Ok(true)
    }

    /// Creates an admin account with a generated password (printed once by the CLI).
    pub async fn create_admin(&self, email: &str) -> AppResult<(users::Model, String)> {
        let email = EmailAddress::parse("email", email)?;
        let password: String = rand::thread_rng().sample_iter(&Alphanumeric).take(24).map(char::from).collect();
        let tx = db::begin(&self.pool, &Principal::Anonymous, self.config.statement_timeout_ms).await?;
        let user = self.insert_user(&tx, &email, &SecretString::from(password.clone()), Role::Admin).await?;
        let meta = RequestMeta { request_id: "cli".into(), ..Default::default() };
        activity::record(&tx, &meta, entry(user.id, "account.create_admin", None)).await?;
        tx.commit().await?;
        Ok((user, password))
    }

    async fn insert_user(
        &self,
        tx: &DatabaseTransaction,
        email: &EmailAddress,
        password: &SecretString,
        role: Role,
    ) -> AppResult<users::Model> {
        let hash = self.passwords.hash(password).await?;
        let id = Uuid::now_v7();
        db::act_as(tx, role, id).await?;
        let now = Utc::now();
        let user = users::ActiveModel {
            id: Set(id),
            email: Set(email.as_str().to_owned()),
            password_hash: Set(hash),
            role: Set(role.as_str().to_owned()),
            plan: Set("free".into()),
            email_verified_at: Set((role != Role::User).then(|| now.into())),
            created_at: Set(now.into()),
            updated_at: Set(now.into()),
        }
        .insert(tx)
        .await?;
        Ok(user)
    }

    async fn send_verification(&self, tx: &DatabaseTransaction, user: &users::Model) -> AppResult<()> {
        let (token, _) = insert_token(tx, Kind::VerifyEmail, "verify_email", user.id, VERIFY_EMAIL_TTL_HOURS).await?;
        outbox::enqueue(tx, user.id, &user.email, templates::verify_email(&self.public_url, &token)).await?;
        Ok(())
    }

    async fn set_password(
        &self,
        tx: &DatabaseTransaction,
        meta: &RequestMeta,
        user_id: Uuid,
        password: &NewPassword,
        keep_session: Option<Uuid>,
    ) -> AppResult<Vec<Uuid>> {
        let hash = self.passwords.hash(&password.0).await?;
        tx.execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
            [user_id.into(), hash.into()],
        ))
        .await?;
        let revoked = tx
            .query_all(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "UPDATE sessions SET revoked_at = now(), revoked_reason = 'password_changed' \
                 WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $2 RETURNING id",
                [user_id.into(), keep_session.into()],
            ))
            .await?
            .iter()
            .map(|r| r.try_get::<Uuid>("", "id"))
            .collect::<Result<Vec<_>, _>>()?;
        let user = load_user(tx, user_id).await?;
        outbox::enqueue(tx, user_id, &user.email, templates::password_changed()).await?;
        activity::record(tx, meta, entry(user_id, "account.password_changed", None)).await?;
        Ok(revoked)
    }

    async fn open_session(
        &self,
        tx: &DatabaseTransaction,
        user: &users::Model,
        meta: &RequestMeta,
    ) -> AppResult<(Uuid, String)> {
        let session_id = Uuid::now_v7();
        let ttl = ChronoDuration::from_std(self.config.refresh_token_ttl).map_err(anyhow::Error::from)?;
        tx.execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO sessions (id, user_id, expires_at, user_agent, ip) VALUES ($1, $2, $3, $4, $5)",
            [
                session_id.into(),
                user.id.into(),
                (Utc::now() + ttl).into(),
                meta.user_agent.clone().into(),
                meta.ip.clone().into(),
            ],
        ))
        .await?;
        let refresh = self.new_refresh_token(tx, user.id, session_id).await?;
        Ok((session_id, refresh))
    }

    async fn new_refresh_token(&self, tx: &DatabaseTransaction, user_id: Uuid, session_id: Uuid) -> AppResult<String> {
        let (token, parsed) = opaque::generate(Kind::Refresh, user_id);
        tx.execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO refresh_tokens (user_id, token_hash, session_id) VALUES ($1, $2, $3)",
            [user_id.into(), parsed.hash.into(), session_id.into()],
        ))
        .await?;
        Ok(token)
    }

    async fn signed_in(
        &self,
        tx: &DatabaseTransaction,
        user: users::Model,
        (session_id, refresh_token): (Uuid, String),
    ) -> AppResult<SignedIn> {
        let role = Role::parse(&user.role).ok_or_else(|| anyhow::anyhow!("unknown role {:?}", user.role))?;
        let (plan, account_state) = crate::billing::service::token_state(tx, user.id).await?;
        let plan_quotas = self
            .catalog
            .plan(&plan)
            .or_else(|| self.catalog.plan("free"))
            .map(|p| crate::quotas::service::limits(&p.quotas))
            .ok_or_else(|| anyhow::anyhow!("the catalog has no plan {plan:?}"))?;
        let grant = TokenGrant {
            user_id: user.id,
            role,
            session_id,
            plan: &plan,
            account_state: &account_state,
            quotas: &plan_quotas,
        };
        let (access_token, expires_at) = self.tokens.issue(&grant)?;
        Ok(SignedIn { access_token, expires_at, refresh_token, user })
    }

    /// Counts an attempt for the address and for the client's IP.
    async fn throttle(&self, what: &str, email: &EmailAddress, meta: &RequestMeta) -> AppResult<()> {
        let window = self.config.login_window;
        let mut checks = vec![(format!("{what}:email:{}", email.as_str()), self.config.login_limit_per_email)];
        if let Some(ip) = &meta.ip {
            checks.push((format!("{what}:ip:{ip}"), self.config.login_limit_per_ip));
        }
        for (key, limit) in checks {
            if let Decision::Limited { retry_after } = self.limiter.hit(&key, limit, window).await {
                tracing::info!(what, "throttled");
                return Err(AppError::RateLimited { retry_after_secs: retry_after.as_secs().max(1) });
            }
        }
        Ok(())
    }

    /// Revokes a session in a transaction of its own, which commits even though the
    /// request that found the reason fails.
    async fn revoke_detached(&self, user_id: Uuid, session_id: Uuid, reason: &str) -> AppResult<()> {
        let tx = db::begin(&self.pool, &Principal::Anonymous, self.config.statement_timeout_ms).await?;
        db::act_as(&tx, Role::User, user_id).await?;
        revoke(&tx, user_id, Some(session_id), reason).await?;
        tx.commit().await?;
        self.bus.publish(&[Event::SessionsRevoked { user_id, session_id: Some(session_id) }]).await;
        Ok(())
    }
}

fn bad_refresh() -> AppError {
    AppError::Unauthenticated("the refresh token is not valid; sign in again".into())
}

fn entry<'a>(user_id: Uuid, action: &'a str, subject: Option<(&'a str, Uuid)>) -> Entry<'a> {
    Entry {
        user_id,
        actor_id: Some(user_id),
        action,
        subject_type: subject.map(|s| s.0),
        subject_id: subject.map(|s| s.1),
        data: json!({}),
    }
}

async fn load_user(db: &impl ConnectionTrait, id: Uuid) -> AppResult<users::Model> {
    users::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| AppError::Unauthenticated("the account no longer exists".into()))
}

async fn token_session(db: &impl ConnectionTrait, user_id: Uuid, hash: &[u8]) -> AppResult<Option<Uuid>> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT session_id FROM refresh_tokens WHERE user_id = $1 AND token_hash = $2",
            [user_id.into(), hash.to_vec().into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get::<Uuid>("", "session_id")).transpose()?)
}

async fn revoke(db: &impl ConnectionTrait, user_id: Uuid, session_id: Option<Uuid>, reason: &str) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $3 \
         WHERE user_id = $1 AND ($2::uuid IS NULL OR id = $2) AND revoked_at IS NULL",
        [user_id.into(), session_id.into(), reason.into()],
    ))
    .await?;
    Ok(())
}

async fn insert_token(
    tx: &DatabaseTransaction,
    kind: Kind,
    purpose: &str,
    user_id: Uuid,
    ttl_hours: i64,
) -> AppResult<(String, Uuid)> {
    let (token, parsed) = opaque::generate(kind, user_id);
    let id = Uuid::now_v7();
    tx.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO one_time_tokens (id, user_id, purpose, token_hash, expires_at) VALUES ($1, $2, $3, $4, $5)",
        [
            id.into(),
            user_id.into(),
            purpose.into(),
            parsed.hash.into(),
            (Utc::now() + ChronoDuration::hours(ttl_hours)).into(),
        ],
    ))
    .await?;
    Ok((token, id))
}

/// Spends a one-time token: switches the transaction to its account and marks it used,
/// atomically, so two concurrent uses cannot both succeed.
async fn consume_token(tx: &DatabaseTransaction, kind: Kind, purpose: &str, token: &str) -> AppResult<Uuid> {
    let invalid = || AppError::bad_input("token", "is invalid, expired or already used");
    let parsed = opaque::parse(kind, token).ok_or_else(invalid)?;
    db::act_as(tx, Role::User, parsed.user_id).await?;
    let row = tx
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE one_time_tokens SET used_at = now() \
             WHERE user_id = $1 AND token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > now() \
             RETURNING id",
            [parsed.user_id.into(), parsed.hash.into(), purpose.into()],
        ))
        .await?;
    row.map(|_| parsed.user_id).ok_or_else(invalid)
}
