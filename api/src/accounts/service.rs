//! Account operations on the request's transaction. No GraphQL or HTTP here.
//!
//! Where the caller's identity is proven inside the request (a new registration, a
//! password, a refresh token, an e-mailed token), the transaction is switched to act
//! for that account (`RequestTx::act_as_user`) before it touches any of the account's
//! rows, so row-level security applies to everything that follows.
use super::{
    domain::{EmailAddress, NewPassword},
    store,
};
use crate::{
    activity::service::{self as activity, Entry},
    auth::{
        entitlements,
        opaque::{self, Kind},
        password::Passwords,
        ratelimit::{Decision, RateLimiter},
        tokens::{TokenGrant, TokenService},
    },
    catalog::Catalog,
    config::Config,
    db::{RequestMeta, RequestTx},
    email::{service as outbox, templates},
    error::{AppError, AppResult},
    events::{Event, EventBus},
    model::{Locale, PlanCode, Role},
    principal::Principal,
    secretbox::SecretBox,
};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use entity::users;
use rand::{distributions::Alphanumeric, Rng};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, Set};
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
    /// Seals the one-time tokens of queued mail.
    pub sealer: Arc<SecretBox>,
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
    sealer: Arc<SecretBox>,
}

impl AccountService {
    /// Wires the service.
    pub fn new(deps: AccountDeps) -> Self {
        let AccountDeps { pool, passwords, tokens, limiter, config, public_url, bus, catalog, sealer } = deps;
        AccountService { pool, passwords, tokens, limiter, config, public_url, bus, catalog, sealer }
    }

    /// Creates an account in `locale` and signs it in; a verification e-mail goes to
    /// the outbox.
    ///
    /// Errors: BAD_USER_INPUT (`email`, `password`); CONFLICT (the address has an
    /// account); INTERNAL.
    pub async fn register(&self, tx: &RequestTx, email: &str, password: &str, locale: Locale) -> AppResult<SignedIn> {
        let email = EmailAddress::parse("email", email)?;
        let password = NewPassword::parse("password", password)?;
        let user = self.insert_user(tx, &email, &password.0, Role::User, locale).await?;
        self.send_verification(tx, &user).await?;
        let session = self.open_session(tx, &user).await?;
        activity::record(tx, Entry::by_user(user.id, "account.register", Some(("session", session.0)), json!({})))
            .await?;
        self.signed_in(tx, user, session).await
    }

    /// Signs in with e-mail and password. An unknown e-mail and a wrong password get
    /// the same answer after the same work (a dummy hash is verified).
    ///
    /// Errors: BAD_USER_INPUT (`email`); RATE_LIMITED; UNAUTHENTICATED; INTERNAL.
    pub async fn login(&self, tx: &RequestTx, email: &str, password: &str) -> AppResult<SignedIn> {
        let email = EmailAddress::parse("email", email)?;
        self.throttle("login", &email, tx.meta()).await?;
        tx.act_as_anonymous().await?;
        let found = store::login_lookup(tx, email.as_str()).await?;
        let secret = SecretString::from(password.to_owned());
        let ok = self.passwords.verify(&secret, found.as_ref().map(|f| f.password_hash.as_str())).await?;
        let (Some(found), true) = (found, ok) else {
            tracing::info!("sign-in refused");
            return Err(AppError::Unauthenticated("invalid e-mail or password".into()));
        };
        tx.act_as_user(found.role, found.id).await?;
        let user = load_user(tx, found.id).await?;
        let session = self.open_session(tx, &user).await?;
        activity::record(tx, Entry::by_user(user.id, "session.login", Some(("session", session.0)), json!({}))).await?;
        self.signed_in(tx, user, session).await
    }

    /// Rotates a refresh token: the old one is spent, a new one issued in the same
    /// session. Presenting a spent token again revokes the whole session (it was
    /// stolen, or the client is broken); that revocation commits even though the
    /// request fails.
    ///
    /// Errors: UNAUTHENTICATED (unknown, spent, revoked or expired); INTERNAL.
    pub async fn refresh(&self, tx: &RequestTx, token: &str) -> AppResult<SignedIn> {
        let parsed = opaque::parse(Kind::Refresh, token).ok_or_else(bad_refresh)?;
        tx.act_as_user(Role::User, parsed.user_id).await?;
        let Some(session_id) = store::spend_refresh_token(tx, parsed.user_id, parsed.hash.clone()).await? else {
            if let Some(session_id) = store::refresh_token_session(tx, parsed.user_id, parsed.hash).await? {
                tracing::warn!(user_id = %parsed.user_id, session_id = %session_id, "refresh token reused; revoking its session");
                self.revoke_detached(parsed.user_id, session_id, "refresh_token_reuse").await?;
            }
            return Err(bad_refresh());
        };
        if !store::touch_live_session(tx, parsed.user_id, session_id).await? {
            return Err(bad_refresh());
        }
        let user = load_user(tx, parsed.user_id).await?;
        let refresh_token = self.new_refresh_token(tx, user.id, session_id).await?;
        self.signed_in(tx, user, (session_id, refresh_token)).await
    }

    /// Ends the session of a refresh token. Idempotent for a session already ended.
    ///
    /// Errors: UNAUTHENTICATED (not a refresh token of a session); INTERNAL.
    pub async fn logout(&self, tx: &RequestTx, token: &str) -> AppResult<bool> {
        let parsed = opaque::parse(Kind::Refresh, token).ok_or_else(bad_refresh)?;
        tx.act_as_user(Role::User, parsed.user_id).await?;
        let session_id =
            store::refresh_token_session(tx, parsed.user_id, parsed.hash).await?.ok_or_else(bad_refresh)?;
        store::revoke_sessions(tx, parsed.user_id, Some(session_id), None, "logout").await?;
        tx.emit(Event::SessionsRevoked { user_id: parsed.user_id, session_id: Some(session_id) });
        let subject = Some(("session", session_id));
        activity::record(tx, Entry::by_user(parsed.user_id, "session.logout", subject, json!({}))).await?;
        Ok(true)
    }

    /// The caller's account; None when anonymous.
    ///
    /// Errors: INTERNAL.
    pub async fn me(&self, tx: &RequestTx) -> AppResult<Option<users::Model>> {
        match tx.principal().user_id() {
            None => Ok(None),
            Some(id) => Ok(users::Entity::find_by_id(id).one(tx).await?),
        }
    }

    /// Sends a new verification link to the caller, unless already verified.
    ///
    /// Errors: UNAUTHENTICATED; INTERNAL.
    pub async fn request_email_verification(&self, tx: &RequestTx) -> AppResult<bool> {
        let user = load_user(tx, tx.user_id()?).await?;
        if user.email_verified_at.is_none() {
            self.send_verification(tx, &user).await?;
        }
        Ok(true)
    }

    /// Marks the address of a verification link's account as verified.
    ///
    /// Errors: BAD_USER_INPUT (`token`: invalid, expired or used); INTERNAL.
    pub async fn verify_email(&self, tx: &RequestTx, token: &str) -> AppResult<bool> {
        let user_id = consume_token(tx, Kind::VerifyEmail, "verify_email", token).await?;
        store::mark_email_verified(tx, user_id).await?;
        activity::record(tx, Entry::by_user(user_id, "account.verify_email", None, json!({}))).await?;
        Ok(true)
    }

    /// Sends a reset link if the address has an account. Always answers true, so the
    /// answer does not reveal which addresses have accounts.
    ///
    /// Errors: BAD_USER_INPUT (`email`); RATE_LIMITED; INTERNAL.
    pub async fn request_password_reset(&self, tx: &RequestTx, email: &str) -> AppResult<bool> {
        let email = EmailAddress::parse("email", email)?;
        self.throttle("reset", &email, tx.meta()).await?;
        tx.act_as_anonymous().await?;
        let Some(user_id) = store::user_id_for_email(tx, email.as_str()).await? else {
            return Ok(true);
        };
        tx.act_as_user(Role::User, user_id).await?;
        let (token, id) =
            insert_token(tx, Kind::ResetPassword, "reset_password", user_id, RESET_PASSWORD_TTL_HOURS).await?;
        let message = templates::reset_password(&self.public_url, &token);
        outbox::enqueue_sealed(tx, &self.sealer, user_id, email.as_str(), message).await?;
        let subject = Some(("one_time_token", id));
        activity::record(tx, Entry::by_user(user_id, "account.request_password_reset", subject, json!({}))).await?;
        Ok(true)
    }

    /// Sets a new password from a reset link and signs every session out.
    ///
    /// Errors: BAD_USER_INPUT (`newPassword`, `token`); INTERNAL.
    pub async fn reset_password(&self, tx: &RequestTx, token: &str, new_password: &str) -> AppResult<bool> {
        let password = NewPassword::parse("newPassword", new_password)?;
        let user_id = consume_token(tx, Kind::ResetPassword, "reset_password", token).await?;
        self.set_password(tx, user_id, &password, None).await?;
        tx.emit(Event::SessionsRevoked { user_id, session_id: None });
        Ok(true)
    }

    /// Changes the caller's password after checking the current one; other sessions
    /// are signed out, this one stays.
    ///
    /// Errors: UNAUTHENTICATED; BAD_USER_INPUT (`newPassword`, `currentPassword`);
    /// INTERNAL.
    pub async fn change_password(&self, tx: &RequestTx, current: &str, new_password: &str) -> AppResult<bool> {
        let claims = tx.principal().claims().ok_or_else(|| AppError::Unauthenticated("sign in to do this".into()))?;
        let password = NewPassword::parse("newPassword", new_password)?;
        let user = load_user(tx, claims.user_id).await?;
        let ok = self.passwords.verify(&SecretString::from(current.to_owned()), Some(&user.password_hash)).await?;
        if !ok {
            return Err(AppError::bad_input("currentPassword", "is not the current password"));
        }
        for session_id in self.set_password(tx, user.id, &password, Some(claims.session_id)).await? {
            tx.emit(Event::SessionsRevoked { user_id: user.id, session_id: Some(session_id) });
        }
        Ok(true)
    }

    /// Changes the caller's profile: each `Some` field is set.
    ///
    /// Errors: UNAUTHENTICATED; INTERNAL.
    pub async fn update_profile(&self, tx: &RequestTx, locale: Option<Locale>) -> AppResult<users::Model> {
        let user_id = tx.user_id()?;
        if let Some(locale) = locale {
            tx.execute(sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "UPDATE users SET locale = $1, updated_at = now() WHERE id = $2",
                [locale.as_str().into(), user_id.into()],
            ))
            .await?;
            activity::record(tx, Entry::by_user(user_id, "account.update_profile", None, json!({ "locale": locale })))
                .await?;
        }
        load_user(tx, user_id).await
    }

    /// Creates an admin account with a generated password (printed once by the CLI).
    ///
    /// Errors: BAD_USER_INPUT (`email`); CONFLICT; INTERNAL.
    pub async fn create_admin(&self, email: &str) -> AppResult<(users::Model, String)> {
        let email = EmailAddress::parse("email", email)?;
        let password: String = rand::thread_rng().sample_iter(&Alphanumeric).take(24).map(char::from).collect();
        let tx = self.begin(Principal::Anonymous, RequestMeta::internal("cli")).await?;
        let user =
            self.insert_user(&tx, &email, &SecretString::from(password.clone()), Role::Admin, Locale::Fr).await?;
        activity::record(&tx, Entry::by_user(user.id, "account.create_admin", None, json!({}))).await?;
        tx.commit(&self.bus).await?;
        Ok((user, password))
    }

    async fn begin(&self, principal: Principal, meta: RequestMeta) -> AppResult<RequestTx> {
        Ok(RequestTx::begin(&self.pool, principal, meta, self.config.database.statement_timeout_ms).await?)
    }

    async fn insert_user(
        &self,
        tx: &RequestTx,
        email: &EmailAddress,
        password: &SecretString,
        role: Role,
        locale: Locale,
    ) -> AppResult<users::Model> {
        let hash = self.passwords.hash(password).await?;
        let id = Uuid::now_v7();
        tx.act_as_user(role, id).await?;
        let now = Utc::now();
        let user = users::ActiveModel {
            id: Set(id),
            email: Set(email.as_str().to_owned()),
            password_hash: Set(hash),
            role: Set(role.as_str().to_owned()),
            plan: Set(PlanCode::Free.as_str().to_owned()),
            email_verified_at: Set((role != Role::User).then(|| now.into())),
            locale: Set(locale.as_str().to_owned()),
            email_onboarding: Set(true),
            email_product_news: Set(true),
            created_at: Set(now.into()),
            updated_at: Set(now.into()),
        }
        .insert(tx)
        .await?;
        Ok(user)
    }

    async fn send_verification(&self, tx: &RequestTx, user: &users::Model) -> AppResult<()> {
        let (token, _) = insert_token(tx, Kind::VerifyEmail, "verify_email", user.id, VERIFY_EMAIL_TTL_HOURS).await?;
        let message = templates::verify_email(&self.public_url, &token);
        outbox::enqueue_sealed(tx, &self.sealer, user.id, &user.email, message).await?;
        Ok(())
    }

    async fn set_password(
        &self,
        tx: &RequestTx,
        user_id: Uuid,
        password: &NewPassword,
        keep_session: Option<Uuid>,
    ) -> AppResult<Vec<Uuid>> {
        let hash = self.passwords.hash(&password.0).await?;
        store::set_password_hash(tx, user_id, &hash).await?;
        let revoked = store::revoke_sessions(tx, user_id, None, keep_session, "password_changed").await?;
        let user = load_user(tx, user_id).await?;
        outbox::enqueue(tx, user_id, &user.email, templates::password_changed()).await?;
        activity::record(tx, Entry::by_user(user_id, "account.password_changed", None, json!({}))).await?;
        Ok(revoked)
    }

    async fn open_session(&self, tx: &RequestTx, user: &users::Model) -> AppResult<(Uuid, String)> {
        let session_id = Uuid::now_v7();
        let ttl = ChronoDuration::from_std(self.config.auth.refresh_token_ttl).map_err(anyhow::Error::from)?;
        let meta = tx.meta();
        store::insert_session(tx, session_id, user.id, Utc::now() + ttl, meta.user_agent.clone(), meta.ip.clone())
            .await?;
        let refresh = self.new_refresh_token(tx, user.id, session_id).await?;
        Ok((session_id, refresh))
    }

    async fn new_refresh_token(&self, tx: &RequestTx, user_id: Uuid, session_id: Uuid) -> AppResult<String> {
        let (token, parsed) = opaque::generate(Kind::Refresh, user_id);
        store::insert_refresh_token(tx, user_id, parsed.hash, session_id).await?;
        Ok(token)
    }

    async fn signed_in(
        &self,
        tx: &RequestTx,
        user: users::Model,
        (session_id, refresh_token): (Uuid, String),
    ) -> AppResult<SignedIn> {
        let role = Role::parse(&user.role).map_err(|e| AppError::Internal(e.into()))?;
        let e = entitlements::current(tx, &self.catalog, user.id).await?;
        let grant =
            TokenGrant { user_id: user.id, role, session_id, plan: e.plan, account_state: e.state, quotas: &e.limits };
        let (access_token, expires_at) = self.tokens.issue(&grant)?;
        Ok(SignedIn { access_token, expires_at, refresh_token, user })
    }

    /// Counts an attempt for the address and for the client's IP.
    async fn throttle(&self, what: &str, email: &EmailAddress, meta: &RequestMeta) -> AppResult<()> {
        let window = self.config.auth.login_window;
        let mut checks = vec![(format!("{what}:email:{}", email.as_str()), self.config.auth.login_limit_per_email)];
        if let Some(ip) = &meta.ip {
            checks.push((format!("{what}:ip:{ip}"), self.config.auth.login_limit_per_ip));
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
        let tx = self.begin(Principal::Anonymous, RequestMeta::internal("refresh-reuse")).await?;
        tx.act_as_user(Role::User, user_id).await?;
        store::revoke_sessions(&tx, user_id, Some(session_id), None, reason).await?;
        tx.emit(Event::SessionsRevoked { user_id, session_id: Some(session_id) });
        tx.commit(&self.bus).await?;
        Ok(())
    }
}

fn bad_refresh() -> AppError {
    AppError::Unauthenticated("the refresh token is not valid; sign in again".into())
}

async fn load_user(db: &impl ConnectionTrait, id: Uuid) -> AppResult<users::Model> {
    users::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| AppError::Unauthenticated("the account no longer exists".into()))
}

async fn insert_token(
    tx: &RequestTx,
    kind: Kind,
    purpose: &str,
    user_id: Uuid,
    ttl_hours: i64,
) -> AppResult<(String, Uuid)> {
    let (token, parsed) = opaque::generate(kind, user_id);
    let id = Uuid::now_v7();
    let expires_at = Utc::now() + ChronoDuration::hours(ttl_hours);
    store::insert_one_time_token(tx, id, user_id, purpose, parsed.hash, expires_at).await?;
    Ok((token, id))
}

/// Spends a one-time token: switches the transaction to its account and marks it used,
/// atomically, so two concurrent uses cannot both succeed.
async fn consume_token(tx: &RequestTx, kind: Kind, purpose: &str, token: &str) -> AppResult<Uuid> {
    let invalid = || AppError::bad_input("token", "is invalid, expired or already used");
    let parsed = opaque::parse(kind, token).ok_or_else(invalid)?;
    tx.act_as_user(Role::User, parsed.user_id).await?;
    if store::spend_one_time_token(tx, parsed.user_id, parsed.hash, purpose).await? {
        Ok(parsed.user_id)
    } else {
        Err(invalid())
    }
}
