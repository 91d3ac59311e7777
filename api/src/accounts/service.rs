//! Account operations on the request's transaction. No GraphQL or HTTP here.
//!
//! Where the caller's identity is proven inside the request (a new registration, a
//! password, a refresh token, an e-mailed token), the work on that account's rows runs
//! in a scope acting for it (`RequestTx::acting_as_user`), so row-level security
//! applies to it; the scope ends with the operation, and the rest of the request (a
//! later root field of the same document) runs as the caller again. A presented
//! token's user id is only trusted by the one statement that checks the token's hash
//! under that id; when it does not match, the scope ends at once.
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
    db::{RequestMeta, RequestTx, RuntimePool},
    email::{service as outbox, templates},
    error::{AppError, AppResult},
    events::{Event, EventBus},
    model::{DbRole, Locale, PlanCode, Role},
    principal::Principal,
    secretbox::SecretBox,
};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use entity::users;
use rand::{distributions::Alphanumeric, Rng};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};
use secrecy::SecretString;
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

// How long an e-mail verification (or change-of-address) link works.
use crate::email::templates::VERIFY_EMAIL_TTL_HOURS;
/// How long a password-reset link works.
const RESET_PASSWORD_TTL_HOURS: i64 = 1;

/// What `updateProfile` changes; each `Some` field is set.
#[derive(Debug, Default)]
pub struct ProfileChange<'a> {
    /// The language of the account's mail.
    pub locale: Option<Locale>,
    /// A new address (changed once confirmed from the link sent to it).
    pub email: Option<&'a str>,
    /// The current password, required with `email`.
    pub current_password: Option<&'a str>,
}

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
    pub pool: RuntimePool,
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
    /// Seals a refresh's successor pair for the reuse grace interval, and the one-time
    /// tokens of queued mail.
    pub sealer: Arc<SecretBox>,
}

/// Everything account operations need besides the request's transaction.
pub struct AccountService {
    pool: RuntimePool,
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
    /// the outbox. Every call counts against the client's and everyone's sign-up budget
    /// first (aliases of `register` in one document each count), so probing which
    /// addresses have accounts (CONFLICT) is as slow as guessing passwords.
    ///
    /// Errors: RATE_LIMITED; BAD_USER_INPUT (`email`, `password`); CONFLICT (the
    /// address has an account); INTERNAL.
    pub async fn register(&self, tx: &RequestTx, email: &str, password: &str, locale: Locale) -> AppResult<SignedIn> {
        self.throttle_signup(tx.meta()).await?;
        let email = EmailAddress::parse("email", email)?;
        let password = NewPassword::parse("password", password)?;
        let hash = self.passwords.hash(&password.0).await?;
        let id = Uuid::now_v7();
        tx.acting_as_user(Role::User, id, async {
            let user = insert_user(tx, id, &email, hash, Role::User, locale).await?;
            self.send_verification(tx, &user).await?;
            let session = self.open_session(tx, &user).await?;
            let subject = Some(("session", session.0));
            activity::record(tx, Entry::by_user(user.id, "account.register", subject, json!({}))).await?;
            self.signed_in(tx, user, session).await
        })
        .await
    }

    /// Signs in with e-mail and password. An unknown e-mail and a wrong password get
    /// the same answer after the same work (a dummy hash is verified).
    ///
    /// Throttling is per (address, client): each earlier failure of this client for
    /// this address delays the answer more, and past `PLINTH_LOGIN_LIMIT_PER_EMAIL`
    /// attempts this client is refused for this address until the window ends. Other
    /// clients' failures never refuse a correct password, until the address's failures
    /// from everyone pass the much higher `PLINTH_LOGIN_CEILING_PER_EMAIL`.
    ///
    /// Errors: BAD_USER_INPUT (`email`); RATE_LIMITED; UNAUTHENTICATED; INTERNAL.
    pub async fn login(&self, tx: &RequestTx, email: &str, password: &str) -> AppResult<SignedIn> {
        let email = EmailAddress::parse("email", email)?;
        let failures = self.throttle_login(&email, tx.meta()).await?;
        let found = tx.acting_as(DbRole::Anon, None, store::login_lookup(tx, email.as_str())).await?;
        let secret = SecretString::from(password.to_owned());
        let ok = self.passwords.verify(&secret, found.as_ref().map(|f| f.password_hash.as_str())).await?;
        let (Some(found), true) = (found, ok) else {
            tracing::info!("sign-in refused");
            failures.record(&self.limiter).await;
            return Err(AppError::Unauthenticated("invalid e-mail or password".into()));
        };
        tx.acting_as_user(found.role, found.id, async {
            let mut user = load_user(tx, found.id).await?;
            if user.erasure_started_at.is_some() {
                // The grace period is over and the erasure has begun (Stripe, objects):
                // the account is as good as gone, and answers like an unknown one.
                tracing::info!("sign-in refused: the account is being erased");
                return Err(AppError::Unauthenticated("invalid e-mail or password".into()));
            }
            if user.deletion_scheduled_at.is_some() {
                // Signing in during the grace period keeps the account.
                user = self.cancel_deletion(tx, user.id).await?;
            }
            let session = self.open_session(tx, &user).await?;
            let subject = Some(("session", session.0));
            activity::record(tx, Entry::by_user(user.id, "session.login", subject, json!({}))).await?;
            self.signed_in(tx, user, session).await
        })
        .await
    }

    /// Rotates a refresh token: the old one is spent, a new one issued in the same
    /// session. Presenting a spent token again within `PLINTH_REFRESH_REUSE_GRACE_SECS`
    /// of its rotation (two tabs, a retry) answers the same successor pair, kept sealed
    /// for that interval; later, it revokes the whole session (it was stolen, or the
    /// client is broken), and that revocation commits even though the request fails.
    ///
    /// Errors: UNAUTHENTICATED (unknown, spent, revoked or expired); INTERNAL.
    pub async fn refresh(&self, tx: &RequestTx, token: &str) -> AppResult<SignedIn> {
        let parsed = opaque::parse(Kind::Refresh, token).ok_or_else(bad_refresh)?;
        let user_id = parsed.user_id;
        tx.acting_as_user(Role::User, user_id, async {
            let grace = self.config.auth.refresh_reuse_grace;
            let Some(session_id) = store::spend_refresh_token(tx, user_id, parsed.hash.clone()).await? else {
                let Some(spent) = store::spent_refresh_token(tx, user_id, parsed.hash.clone(), grace).await? else {
                    return Err(bad_refresh());
                };
                if spent.within_grace {
                    if let Some(again) = self.replay_successor(tx, user_id, &parsed.hash, &spent).await? {
                        tracing::info!(user_id = %user_id, "refresh token presented again within the grace interval");
                        return Ok(again);
                    }
                }
                let session_id = spent.session_id;
                tracing::warn!(user_id = %user_id, session_id = %session_id, "refresh token reused; revoking its session");
                self.revoke_detached(user_id, session_id, "refresh_token_reuse").await?;
                return Err(bad_refresh());
            };
            if !store::touch_live_session(tx, user_id, session_id).await? {
                return Err(bad_refresh());
            }
            let user = load_user(tx, user_id).await?;
            if user.erasure_started_at.is_some() {
                // The grace period is over and the erasure has begun: no new tokens.
                return Err(bad_refresh());
            }
            let refresh_token = self.new_refresh_token(tx, user.id, session_id).await?;
            let signed_in = self.signed_in(tx, user, (session_id, refresh_token)).await?;
            if !grace.is_zero() {
                let pair = Successor {
                    access_token: signed_in.access_token.clone(),
                    expires_at: signed_in.expires_at,
                    refresh_token: signed_in.refresh_token.clone(),
                };
                let sealed = self.sealer.seal(&serde_json::to_vec(&pair).map_err(anyhow::Error::from)?, &successor_aad(user_id, &parsed.hash))?;
                store::seal_refresh_successor(tx, user_id, session_id, parsed.hash.clone(), sealed, grace).await?;
            }
            Ok(signed_in)
        })
        .await
    }

    /// Ends the session of a refresh token. Idempotent for a session already ended.
    ///
    /// Errors: UNAUTHENTICATED (not a refresh token of a session); INTERNAL.
    pub async fn logout(&self, tx: &RequestTx, token: &str) -> AppResult<bool> {
        let parsed = opaque::parse(Kind::Refresh, token).ok_or_else(bad_refresh)?;
        let user_id = parsed.user_id;
        tx.acting_as_user(Role::User, user_id, async {
            let session_id = store::refresh_token_session(tx, user_id, parsed.hash).await?.ok_or_else(bad_refresh)?;
            store::revoke_sessions(tx, user_id, Some(session_id), None, "logout").await?;
            tx.emit(Event::SessionsRevoked { user_id, session_id: Some(session_id) });
            let subject = Some(("session", session_id));
            activity::record(tx, Entry::by_user(user_id, "session.logout", subject, json!({}))).await?;
            Ok(true)
        })
        .await
    }

    /// The caller's live sessions (sign-ins not ended nor expired), most recently used
    /// first (at most 100): `last_used_at` is the sign-in or the latest refresh.
    ///
    /// Errors: UNAUTHENTICATED; INTERNAL.
    pub async fn sessions(&self, tx: &RequestTx) -> AppResult<Vec<entity::sessions::Model>> {
        let user_id = tx.user_id()?;
        store::live_sessions(tx, user_id, 100).await
    }

    /// Ends one of the caller's live sessions (its own included): its refresh token stops
    /// working and its access tokens are refused on every instance once this commits;
    /// its sockets close.
    ///
    /// Errors: UNAUTHENTICATED; NOT_FOUND (not a live session of the caller's); INTERNAL.
    pub async fn revoke_session(&self, tx: &RequestTx, session_id: Uuid) -> AppResult<()> {
        let user_id = tx.user_id()?;
        if store::revoke_sessions(tx, user_id, Some(session_id), None, "revoked_by_user").await?.is_empty() {
            return Err(AppError::NotFound("no such session".into()));
        }
        tx.emit(Event::SessionsRevoked { user_id, session_id: Some(session_id) });
        let subject = Some(("session", session_id));
        activity::record(tx, Entry::by_user(user_id, "session.revoke", subject, json!({}))).await?;
        Ok(())
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

    /// Sends a new verification link to another account, for support staff (the
    /// staff's own policies decide whether the account is visible and the token and
    /// e-mail may be written); false when it is already verified.
    ///
    /// Errors: NOT_FOUND (not visible to the caller); INTERNAL.
    pub async fn send_verification_for(&self, tx: &RequestTx, user_id: Uuid) -> AppResult<bool> {
        let user = users::Entity::find_by_id(user_id)
            .one(tx)
            .await?
            .ok_or_else(|| AppError::NotFound("user not found".into()))?;
        if user.email_verified_at.is_some() {
            return Ok(false);
        }
        self.send_verification(tx, &user).await?;
        Ok(true)
    }

    /// Marks the address of a verification link's account as verified; a link that
    /// confirms a new address (see [`Self::update_profile`]) moves the account to it.
    ///
    /// Errors: BAD_USER_INPUT (`token`: invalid, expired or used); CONFLICT (the new
    /// address got an account since); INTERNAL.
    pub async fn verify_email(&self, tx: &RequestTx, token: &str) -> AppResult<bool> {
        if opaque::parse(Kind::ChangeEmail, token).is_some() {
            return self.confirm_email_change(tx, token).await;
        }
        consume_token(tx, Kind::VerifyEmail, "verify_email", token, |user_id| async move {
            store::mark_email_verified(tx, user_id).await?;
            activity::record(tx, Entry::by_user(user_id, "account.verify_email", None, json!({}))).await?;
            Ok(true)
        })
        .await
    }

    /// Sends a reset link if the address has an account. Always answers true, so the
    /// answer does not reveal which addresses have accounts.
    ///
    /// Errors: BAD_USER_INPUT (`email`); RATE_LIMITED; INTERNAL.
    pub async fn request_password_reset(&self, tx: &RequestTx, email: &str) -> AppResult<bool> {
        let email = EmailAddress::parse("email", email)?;
        self.throttle("reset", &email, tx.meta()).await?;
        let found = tx.acting_as(DbRole::Anon, None, store::user_id_for_email(tx, email.as_str())).await?;
        let Some(user_id) = found else {
            return Ok(true);
        };
        tx.acting_as_user(Role::User, user_id, async {
            let (token, id) =
                insert_token(tx, Kind::ResetPassword, "reset_password", user_id, RESET_PASSWORD_TTL_HOURS).await?;
            let message = templates::reset_password(&self.public_url, &token);
            outbox::enqueue_sealed(tx, &self.sealer, user_id, email.as_str(), message).await?;
            let subject = Some(("one_time_token", id));
            activity::record(tx, Entry::by_user(user_id, "account.request_password_reset", subject, json!({}))).await?;
            Ok(true)
        })
        .await
    }

    /// Sets a new password from a reset link and signs every session out.
    ///
    /// Errors: BAD_USER_INPUT (`newPassword`, `token`); INTERNAL.
    pub async fn reset_password(&self, tx: &RequestTx, token: &str, new_password: &str) -> AppResult<bool> {
        let password = NewPassword::parse("newPassword", new_password)?;
        consume_token(tx, Kind::ResetPassword, "reset_password", token, |user_id| async move {
            let hash = self.passwords.hash(&password.0).await?;
            // Every session ends, and with it its access tokens on every instance.
            for session_id in self.set_password(tx, user_id, hash, None).await? {
                tx.emit(Event::SessionsRevoked { user_id, session_id: Some(session_id) });
            }
            Ok(true)
        })
        .await
    }

    /// Changes the caller's password after checking the current one; other sessions
    /// are signed out, this one stays.
    ///
    /// Errors: UNAUTHENTICATED; BAD_USER_INPUT (`newPassword`, `currentPassword`);
    /// RATE_LIMITED (too many wrong passwords, see [`Self::reauthenticate`]); INTERNAL.
    pub async fn change_password(&self, tx: &RequestTx, current: &str, new_password: &str) -> AppResult<bool> {
        let claims = tx.principal().claims().ok_or_else(|| AppError::Unauthenticated("sign in to do this".into()))?;
        let password = NewPassword::parse("newPassword", new_password)?;
        let user = load_user(tx, claims.user_id).await?;
        self.reauthenticate(&user, current).await?;
        let hash = self.passwords.hash(&password.0).await?;
        for session_id in self.set_password(tx, user.id, hash, Some(claims.session_id)).await? {
            tx.emit(Event::SessionsRevoked { user_id: user.id, session_id: Some(session_id) });
        }
        Ok(true)
    }

    /// Schedules the erasure of the caller's account after the grace period
    /// (`PLINTH_ACCOUNT_DELETION_GRACE_DAYS`), once the current password is proven; the
    /// owner is told by mail and notification, with the date. Signing in before the date
    /// cancels it. Asking again keeps the first date.
    ///
    /// Errors: UNAUTHENTICATED; BAD_USER_INPUT (`currentPassword`: not the current
    /// password); RATE_LIMITED (too many wrong passwords); INTERNAL.
    pub async fn schedule_deletion(&self, tx: &RequestTx, current: &str) -> AppResult<users::Model> {
        let user_id = tx.user_id()?;
        let user = load_user(tx, user_id).await?;
        self.reauthenticate(&user, current).await?;
        if user.deletion_scheduled_at.is_some() {
            return Ok(user);
        }
        let due = Utc::now() + ChronoDuration::days(self.config.accounts.deletion_grace_days);
        tx.execute(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "UPDATE users SET deletion_requested_at = now(), deletion_scheduled_at = $2, updated_at = now()
              WHERE id = $1",
            [user_id.into(), due.into()],
        ))
        .await?;
        let on = due.format("%Y-%m-%d").to_string();
        crate::notifications::service::notify(tx, user_id, templates::account_deletion_scheduled(&on)).await?;
        activity::record(tx, Entry::by_user(user_id, "account.deletion_scheduled", None, json!({ "at": due }))).await?;
        load_user(tx, user_id).await
    }

    /// Cancels the scheduled erasure of `user_id` (the transaction acts for it) and
    /// tells the owner in the app.
    async fn cancel_deletion(&self, tx: &RequestTx, user_id: Uuid) -> AppResult<users::Model> {
        tx.execute(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "UPDATE users SET deletion_requested_at = NULL, deletion_scheduled_at = NULL, updated_at = now()
              WHERE id = $1 AND erasure_started_at IS NULL",
            [user_id.into()],
        ))
        .await?;
        let message = templates::account_deletion_canceled();
        let id = Uuid::now_v7();
        crate::notifications::store::insert(
            tx,
            id,
            user_id,
            message.template,
            &message.subject,
            &message.body,
            &message.data,
        )
        .await?;
        tx.emit(Event::NotificationAdded { user_id, notification_id: id });
        activity::record(tx, Entry::by_user(user_id, "account.deletion_canceled", None, json!({}))).await?;
        tracing::info!(user_id = %user_id, "a sign-in cancelled the account's deletion");
        load_user(tx, user_id).await
    }

    /// Changes the caller's profile: each `Some` field is set.
    ///
    /// A new address (`email`, with `current_password` to prove it is the owner asking)
    /// does not replace the current one yet: a link sealed in the outbox goes to it, and
    /// the change happens when that link comes back ([`Self::verify_email`]). One address
    /// is one account, and the answer does not tell whether another account has the new
    /// address: then no link is sent, and the caller sees the same result.
    ///
    /// Errors: UNAUTHENTICATED; BAD_USER_INPUT (`email`; `currentPassword`: missing or
    /// not the current password); RATE_LIMITED; INTERNAL.
    pub async fn update_profile(&self, tx: &RequestTx, change: ProfileChange<'_>) -> AppResult<users::Model> {
        let user_id = tx.user_id()?;
        if let Some(email) = change.email {
            self.request_email_change(tx, email, change.current_password).await?;
        }
        if let Some(locale) = change.locale {
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

    async fn request_email_change(&self, tx: &RequestTx, email: &str, current_password: Option<&str>) -> AppResult<()> {
        let claims = tx.principal().claims().ok_or_else(|| AppError::Unauthenticated("sign in to do this".into()))?;
        let email = EmailAddress::parse("email", email)?;
        let current = current_password
            .ok_or_else(|| AppError::bad_input("currentPassword", "is required to change the e-mail address"))?;
        self.throttle("change_email", &email, tx.meta()).await?;
        let user = load_user(tx, claims.user_id).await?;
        self.reauthenticate(&user, current).await?;
        if user.email == email.as_str() {
            return Ok(());
        }
        // A newer request replaces an older one: only the last link works.
        store::drop_email_change_tokens(tx, user.id).await?;
        let taken = tx.acting_as(DbRole::Anon, None, store::user_id_for_email(tx, email.as_str())).await?.is_some();
        if taken {
            // Nothing tells the caller: the same answer, and no mail to the other account.
            tracing::info!(user_id = %user.id, "e-mail change to an address that has an account; no link sent");
        } else {
            let (token, parsed) = opaque::generate(Kind::ChangeEmail, user.id);
            let expires_at = Utc::now() + ChronoDuration::hours(VERIFY_EMAIL_TTL_HOURS);
            store::insert_email_change_token(
                tx,
                Uuid::now_v7(),
                user.id,
                parsed.hash,
                email.as_str(),
                claims.session_id,
                expires_at,
            )
            .await?;
            let message = templates::confirm_new_email(&self.public_url, &token);
            outbox::enqueue_sealed(tx, &self.sealer, user.id, email.as_str(), message).await?;
        }
        activity::record(
            tx,
            Entry::by_user(user.id, "account.request_email_change", None, json!({ "email": email.as_str() })),
        )
        .await?;
        Ok(())
    }

    /// Confirms a change of address from the link sent to the new one: the account
    /// moves to it (verified), every session but the one that asked is signed out, and
    /// the old address is told, with the way to reach support.
    async fn confirm_email_change(&self, tx: &RequestTx, token: &str) -> AppResult<bool> {
        let invalid = || AppError::bad_input("token", "is invalid, expired or already used");
        let parsed = opaque::parse(Kind::ChangeEmail, token).ok_or_else(invalid)?;
        let user_id = parsed.user_id;
        tx.acting_as_user(Role::User, user_id, async {
            let Some(changed) = store::confirm_email_change(tx, user_id, parsed.hash).await? else {
                return Err(invalid());
            };
            // The links mailed to the old address stop working: whoever reads that
            // mailbox must not reset the password of an account that moved away from it.
            store::spend_pending_tokens(tx, user_id, &["reset_password", "verify_email"]).await?;
            for session_id in store::revoke_sessions(tx, user_id, None, changed.session_id, "email_changed").await? {
                tx.emit(Event::SessionsRevoked { user_id, session_id: Some(session_id) });
            }
            let message = templates::email_changed(&changed.old_email, &changed.new_email);
            outbox::enqueue(tx, user_id, &changed.old_email, message).await?;
            let data = json!({ "from": changed.old_email, "to": changed.new_email });
            activity::record(tx, Entry::by_user(user_id, "account.email_changed", None, data)).await?;
            Ok(true)
        })
        .await
    }

    /// Creates an admin account with a generated password (printed once by the CLI).
    ///
    /// Errors: BAD_USER_INPUT (`email`); CONFLICT; INTERNAL.
    pub async fn create_admin(&self, email: &str) -> AppResult<(users::Model, String)> {
        let email = EmailAddress::parse("email", email)?;
        let password: String = rand::thread_rng().sample_iter(&Alphanumeric).take(24).map(char::from).collect();
        let hash = self.passwords.hash(&SecretString::from(password.clone())).await?;
        let tx = self.begin(Principal::Anonymous, RequestMeta::internal("cli")).await?;
        let id = Uuid::now_v7();
        let user = tx
            .acting_as_user(Role::Admin, id, async {
                let user = insert_user(&tx, id, &email, hash, Role::Admin, Locale::Fr).await?;
                activity::record(&tx, Entry::by_user(user.id, "account.create_admin", None, json!({}))).await?;
                AppResult::Ok(user)
            })
            .await?;
        tx.commit(&self.bus).await?;
        Ok((user, password))
    }

    async fn begin(&self, principal: Principal, meta: RequestMeta) -> AppResult<RequestTx> {
        Ok(RequestTx::begin(&self.pool, principal, meta, self.config.database.statement_timeout_ms).await?)
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
        hash: String,
        keep_session: Option<Uuid>,
    ) -> AppResult<Vec<Uuid>> {
        store::set_password_hash(tx, user_id, &hash).await?;
        // A new password is how an owner takes the account back: a change of address
        // asked meanwhile (by whoever held the session and the old password) and any
        // other reset link die with the old password.
        store::spend_pending_tokens(tx, user_id, &["change_email", "reset_password"]).await?;
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
        // A suspended account gets no token: sign-in and refresh stop here (rolled back).
        if let Some(reason) = store::suspension(tx, user.id).await? {
            return Err(AppError::AccountSuspended(reason));
        }
        let role = Role::parse(&user.role).map_err(|e| AppError::Internal(e.into()))?;
        let e = entitlements::current(tx, &self.catalog, user.id).await?;
        let grant =
            TokenGrant { user_id: user.id, role, session_id, plan: e.plan, account_state: e.state, quotas: &e.limits };
        let (access_token, expires_at) = self.tokens.issue(&grant)?;
        Ok(SignedIn { access_token, expires_at, refresh_token, user })
    }

    /// Checks the current password of a signed-in caller (`changePassword`,
    /// `deleteMyAccount`, `updateProfile`'s change of address). Wrong passwords count
    /// per account, whichever field and client sent them (aliases of one document
    /// included): past `PLINTH_LOGIN_LIMIT_PER_EMAIL` of them in the sign-in window the
    /// answer is RATE_LIMITED, so a stolen access token is no oracle for guessing the
    /// password it would need to keep the account.
    ///
    /// Errors: RATE_LIMITED; BAD_USER_INPUT (`currentPassword`); INTERNAL.
    async fn reauthenticate(&self, user: &users::Model, current: &str) -> AppResult<()> {
        let key = format!("reauth:fail:{}", user.id);
        let window = self.config.auth.login_window;
        let (failures, left) = self.limiter.add(&key, 0, window).await;
        if failures >= u64::from(self.config.auth.login_limit_per_email) {
            tracing::info!(user_id = %user.id, "re-authentication throttled");
            return Err(AppError::RateLimited { retry_after_secs: left.as_secs().max(1) });
        }
        let ok = self.passwords.verify(&SecretString::from(current.to_owned()), Some(&user.password_hash)).await?;
        if !ok {
            self.limiter.add(&key, 1, window).await;
            return Err(AppError::bad_input("currentPassword", "is not the current password"));
        }
        Ok(())
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

    /// The successor pair of a refresh token spent within the grace interval, if it was
    /// kept and its session is still live.
    async fn replay_successor(
        &self,
        tx: &RequestTx,
        user_id: Uuid,
        hash: &[u8],
        spent: &store::SpentRefresh,
    ) -> AppResult<Option<SignedIn>> {
        let Some(sealed) = &spent.successor_sealed else { return Ok(None) };
        let pair: Successor = match self.sealer.open(sealed, &successor_aad(user_id, hash)) {
            Ok(plain) => serde_json::from_slice(&plain).map_err(anyhow::Error::from)?,
            Err(e) => {
                tracing::warn!(error = %e, "a sealed refresh successor does not open");
                return Ok(None);
            }
        };
        if !store::touch_live_session(tx, user_id, spent.session_id).await? {
            return Ok(None);
        }
        let user = load_user(tx, user_id).await?;
        Ok(Some(SignedIn {
            access_token: pair.access_token,
            expires_at: pair.expires_at,
            refresh_token: pair.refresh_token,
            user,
        }))
    }

    /// Counts a registration for the client's IP and for everyone.
    async fn throttle_signup(&self, meta: &RequestMeta) -> AppResult<()> {
        let auth = &self.config.auth;
        let mut checks = vec![("signup:all".to_owned(), auth.signup_limit_global)];
        if let Some(ip) = &meta.ip {
            checks.push((format!("signup:ip:{ip}"), auth.signup_limit_per_ip));
        }
        for (key, limit) in checks {
            if let Decision::Limited { retry_after } = self.limiter.hit(&key, limit, auth.signup_window).await {
                tracing::info!(scope = key.split(':').nth(1).unwrap_or_default(), "sign-up throttled");
                return Err(AppError::RateLimited { retry_after_secs: retry_after.as_secs().max(1) });
            }
        }
        Ok(())
    }

    /// The sign-in throttle (see [`AccountService::login`]): counts the attempt for the
    /// client's IP and for (address, client), refuses past the limits or the address's
    /// ceiling, and waits the progressive delay this client earned for this address.
    async fn throttle_login(&self, email: &EmailAddress, meta: &RequestMeta) -> AppResult<LoginFailures> {
        let auth = &self.config.auth;
        let window = auth.login_window;
        let client = meta.ip.as_deref().unwrap_or("unknown");
        let limited = |left: std::time::Duration| {
            tracing::info!("sign-in throttled");
            AppError::RateLimited { retry_after_secs: left.as_secs().max(1) }
        };
        if meta.ip.is_some() {
            if let Decision::Limited { retry_after } =
                self.limiter.hit(&format!("login:ip:{client}"), auth.login_limit_per_ip, window).await
            {
                return Err(limited(retry_after));
            }
        }
        let failures = LoginFailures {
            pair: format!("login:fail:{}:{client}", email.as_str()),
            address: format!("login:fail:{}", email.as_str()),
            window,
        };
        let (everyone, left) = self.limiter.add(&failures.address, 0, window).await;
        if everyone >= u64::from(auth.login_ceiling_per_email) {
            return Err(limited(left));
        }
        let pair_key = format!("login:try:{}:{client}", email.as_str());
        if let Decision::Limited { retry_after } = self.limiter.hit(&pair_key, auth.login_limit_per_email, window).await
        {
            return Err(limited(retry_after));
        }
        let (mine, _) = self.limiter.add(&failures.pair, 0, window).await;
        if mine > 0 {
            tokio::time::sleep(login_delay(mine)).await;
        }
        Ok(failures)
    }

    /// Revokes a session in a transaction of its own, which commits even though the
    /// request that found the reason fails.
    async fn revoke_detached(&self, user_id: Uuid, session_id: Uuid, reason: &str) -> AppResult<()> {
        let tx = self.begin(Principal::Anonymous, RequestMeta::internal("refresh-reuse")).await?;
        tx.acting_as_user(Role::User, user_id, store::revoke_sessions(&tx, user_id, Some(session_id), None, reason))
            .await?;
        tx.emit(Event::SessionsRevoked { user_id, session_id: Some(session_id) });
        tx.commit(&self.bus).await?;
        Ok(())
    }
}

/// The pair a refresh token was exchanged for, sealed for the reuse grace interval.
#[derive(serde::Serialize, serde::Deserialize)]
struct Successor {
    access_token: String,
    expires_at: DateTime<Utc>,
    refresh_token: String,
}

/// Binds a sealed successor to the spent token's row.
fn successor_aad(user_id: Uuid, hash: &[u8]) -> Vec<u8> {
    [b"refresh-successor:".as_slice(), user_id.as_bytes(), hash].concat()
}

/// The failure counters of one sign-in attempt, bumped when the password is wrong.
struct LoginFailures {
    /// Failures of this client for this address.
    pair: String,
    /// Failures for this address from everyone.
    address: String,
    window: std::time::Duration,
}

impl LoginFailures {
    async fn record(&self, limiter: &RateLimiter) {
        limiter.add(&self.pair, 1, self.window).await;
        limiter.add(&self.address, 1, self.window).await;
    }
}

/// The wait before answering a client that already failed `failures` times for an
/// address: 50 ms, doubling with each failure, at most 2 s.
fn login_delay(failures: u64) -> std::time::Duration {
    let exp = failures.saturating_sub(1).min(6) as u32;
    std::time::Duration::from_millis(50 * 2u64.pow(exp)).min(std::time::Duration::from_secs(2))
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

/// Spends a one-time token and runs `then` for its account, in one scope acting for
/// it: the token is marked used atomically (two concurrent uses cannot both succeed),
/// and nothing runs for the account when it is not a live token of it.
async fn consume_token<T, F, Fut>(tx: &RequestTx, kind: Kind, purpose: &str, token: &str, then: F) -> AppResult<T>
where
    F: FnOnce(Uuid) -> Fut,
    Fut: std::future::Future<Output = AppResult<T>>,
{
    let invalid = || AppError::bad_input("token", "is invalid, expired or already used");
    let parsed = opaque::parse(kind, token).ok_or_else(invalid)?;
    let user_id = parsed.user_id;
    tx.acting_as_user(Role::User, user_id, async {
        if !store::spend_one_time_token(tx, user_id, parsed.hash, purpose).await? {
            return Err(invalid());
        }
        then(user_id).await
    })
    .await
}

/// Inserts an account (the transaction acts for `id`).
async fn insert_user(
    tx: &RequestTx,
    id: Uuid,
    email: &EmailAddress,
    hash: String,
    role: Role,
    locale: Locale,
) -> AppResult<users::Model> {
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
        deletion_requested_at: Set(None),
        deletion_scheduled_at: Set(None),
        erasure_started_at: Set(None),
        created_at: Set(now.into()),
        updated_at: Set(now.into()),
    }
    .insert(tx)
    .await?;
    Ok(user)
}
