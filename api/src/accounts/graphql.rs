//! GraphQL adapters for accounts: parse, call the service, map the result.
use super::{
    privacy::{ExportRow, Privacy},
    service::{AccountService, ProfileChange, SignedIn},
};
use crate::{
    auth::guards::{scope, NoApiTokens, SignedIn as SignedInGuard},
    db::{data, RequestTx},
    error::AppError,
    model::{ApiScope, Locale, PlanCode, Role},
};
use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::users;
use std::sync::Arc;

/// A Plinth account.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct User {
    /// The account's id.
    pub id: ID,
    /// Its e-mail address.
    pub email: String,
    /// Its role.
    pub role: Role,
    /// Its plan.
    pub plan: PlanCode,
    /// Whether the e-mail address was confirmed.
    pub email_verified: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// The language of its e-mail.
    pub locale: Locale,
    /// When the account will be erased (`deleteMyAccount`); null when no deletion is
    /// scheduled. Signing in before then cancels it.
    pub deletion_scheduled_at: Option<DateTime<Utc>>,
}

/// The key of the chat widget's identity-verification hash
/// (`PLINTH_CHAT_IDENTITY_SECRET`), in the schema's data; None when unset.
#[derive(Clone, Default)]
pub struct ChatIdentity(pub Option<secrecy::SecretString>);

impl ChatIdentity {
    /// HMAC-SHA256 of `user_id` (its hyphenated text) under the key, lowercase hex.
    pub fn hash(&self, user_id: &str) -> Option<String> {
        use hmac::{Hmac, Mac};
        use secrecy::ExposeSecret;
        let key = self.0.as_ref()?;
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.expose_secret().as_bytes()).ok()?;
        mac.update(user_id.as_bytes());
        Some(hex::encode(mac.finalize().into_bytes()))
    }
}

#[async_graphql::ComplexObject]
impl User {
    /// The identity-verification hash an embedded chat widget sends with this user's
    /// id (HMAC-SHA256 of the id under the server's chat secret, hex), so a widget
    /// cannot claim another user; null when no secret is configured, and for any
    /// account but the caller's own.
    async fn chat_identity_hash(&self, ctx: &Context<'_>) -> Option<String> {
        let caller = ctx.data_opt::<RequestTx>().and_then(|tx| tx.user_id().ok());
        if caller.is_some_and(|c| c.to_string() != self.id.as_str()) {
            return None;
        }
        ctx.data_opt::<ChatIdentity>()?.hash(self.id.as_str())
    }
}

impl TryFrom<users::Model> for User {
    type Error = AppError;

    fn try_from(m: users::Model) -> std::result::Result<Self, AppError> {
        let role = Role::parse(&m.role).map_err(|e| AppError::Internal(e.into()))?;
        let plan = PlanCode::parse(&m.plan).map_err(|e| AppError::Internal(e.into()))?;
        Ok(User {
            id: ID(m.id.to_string()),
            email: m.email,
            role,
            plan,
            email_verified: m.email_verified_at.is_some(),
            created_at: m.created_at.with_timezone(&Utc),
            locale: Locale::parse(&m.locale).unwrap_or(Locale::Fr),
            deletion_scheduled_at: m.deletion_scheduled_at.map(|t| t.with_timezone(&Utc)),
        })
    }
}

/// The tokens of a new session.
#[derive(SimpleObject, Debug)]
pub struct AuthPayload {
    /// Biscuit access token for `Authorization: Bearer`, valid until `expiresAt`.
    pub access_token: String,
    /// Opaque refresh token for `refreshSession`; single use.
    pub refresh_token: String,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
    /// The signed-in account.
    pub user: User,
}

impl TryFrom<SignedIn> for AuthPayload {
    type Error = AppError;

    fn try_from(s: SignedIn) -> std::result::Result<Self, AppError> {
        Ok(AuthPayload {
            access_token: s.access_token,
            refresh_token: s.refresh_token,
            expires_at: s.expires_at,
            user: s.user.try_into()?,
        })
    }
}

/// Input of `register`.
#[derive(InputObject)]
pub struct RegisterInput {
    /// E-mail address; it becomes the sign-in name.
    pub email: String,
    /// At least 8 and at most 128 characters.
    pub password: String,
    /// The language of its e-mail; from `Accept-Language` when absent, else French.
    pub locale: Option<Locale>,
}

/// Input of `updateProfile`: each field present is changed.
#[derive(InputObject)]
pub struct UpdateProfileInput {
    /// The language of the account's e-mail.
    pub locale: Option<Locale>,
    /// A new e-mail address: a link goes to it, and it replaces the current one once
    /// that link is opened (the answer still shows the current address). Requires
    /// `currentPassword`.
    pub email: Option<String>,
    /// The account's password, required to change `email`.
    pub current_password: Option<String>,
}

/// Input of `deleteMyAccount`.
#[derive(InputObject)]
pub struct DeleteMyAccountInput {
    /// The account's current password (re-authentication).
    pub current_password: String,
}

/// Where a data export is in its life.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataExportStatus {
    /// Queued.
    Pending,
    /// Being built.
    Running,
    /// Downloadable until `expiresAt`.
    Ready,
    /// Could not be built; ask again.
    Failed,
    /// Its archive was deleted.
    Expired,
}

/// An archive of every row and object of the account (GDPR), built by the server.
#[derive(SimpleObject, Clone, Debug)]
pub struct DataExport {
    /// Its id.
    pub id: ID,
    /// Where it is.
    pub status: DataExportStatus,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When its archive was ready.
    pub completed_at: Option<DateTime<Utc>>,
    /// When its archive is deleted.
    pub expires_at: Option<DateTime<Utc>>,
    /// The archive's size in bytes, once ready.
    pub byte_size: Option<i64>,
    /// A download URL of the zip archive, valid for 15 minutes, while ready.
    pub download_url: Option<String>,
}

async fn data_export(privacy: &Privacy, row: ExportRow) -> Result<DataExport> {
    let status = match row.status.as_str() {
        "pending" => DataExportStatus::Pending,
        "running" => DataExportStatus::Running,
        "ready" => DataExportStatus::Ready,
        "failed" => DataExportStatus::Failed,
        _ => DataExportStatus::Expired,
    };
    let download_url = privacy.download_url(&row).await?;
    Ok(DataExport {
        id: ID(row.id.to_string()),
        status,
        created_at: row.created_at,
        completed_at: row.completed_at,
        expires_at: row.expires_at,
        byte_size: row.byte_size,
        download_url,
    })
}

/// One of the signed-in account's sessions: a sign-in and the refreshes that kept it.
#[derive(SimpleObject, Clone, Debug)]
pub struct Session {
    /// Its id (for `revokeSession`).
    pub id: ID,
    /// When it signed in.
    pub created_at: DateTime<Utc>,
    /// When it last got tokens: the sign-in or the latest refresh.
    pub last_used_at: DateTime<Utc>,
    /// When it ends unless refreshed again (the refresh token's lifetime).
    pub expires_at: DateTime<Utc>,
    /// The `User-Agent` it signed in with (at most 256 characters); null when none was sent.
    pub user_agent: Option<String>,
    /// The client address it signed in from; null when unknown.
    pub ip: Option<String>,
    /// Whether this is the session of the token asking.
    pub current: bool,
}

impl Session {
    fn of(m: entity::sessions::Model, current: Option<uuid::Uuid>) -> Self {
        Session {
            id: ID(m.id.to_string()),
            created_at: m.created_at.with_timezone(&Utc),
            last_used_at: m.last_used_at.with_timezone(&Utc),
            expires_at: m.expires_at.with_timezone(&Utc),
            user_agent: m.user_agent,
            ip: m.ip,
            current: current == Some(m.id),
        }
    }
}

/// Input of `login`.
#[derive(InputObject)]
pub struct LoginInput {
    /// The account's e-mail address.
    pub email: String,
    /// Its password.
    pub password: String,
}

/// Account queries.
#[derive(Default)]
pub struct AccountsQuery;

#[Object]
impl AccountsQuery {
    /// The signed-in account; null when anonymous.
    #[graphql(guard = "scope(ApiScope::UsageRead)")]
    async fn me(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let tx = data::<RequestTx>(ctx)?;
        let user = data::<Arc<AccountService>>(ctx)?.me(tx).await?;
        Ok(user.map(User::try_from).transpose()?)
    }

    /// The signed-in account's live sessions (not ended, not expired), most recently used
    /// first (at most 100); `current` marks the caller's own.
    ///
    /// Errors: UNAUTHENTICATED.
    #[graphql(guard = "NoApiTokens.and(SignedInGuard)")]
    async fn sessions(&self, ctx: &Context<'_>) -> Result<Vec<Session>> {
        let tx = data::<RequestTx>(ctx)?;
        let current = tx.principal().claims().map(|c| c.session_id);
        let rows = data::<Arc<AccountService>>(ctx)?.sessions(tx).await?;
        Ok(rows.into_iter().map(|m| Session::of(m, current)).collect())
    }

    /// The signed-in account's data exports, newest first (at most 20).
    #[graphql(guard = "NoApiTokens.and(SignedInGuard)")]
    async fn data_exports(&self, ctx: &Context<'_>) -> Result<Vec<DataExport>> {
        let tx = data::<RequestTx>(ctx)?;
        let privacy = data::<Arc<Privacy>>(ctx)?;
        let mut out = Vec::new();
        for row in privacy.exports(tx).await? {
            out.push(data_export(privacy, row).await?);
        }
        Ok(out)
    }
}

/// Account mutations.
#[derive(Default)]
pub struct AccountsMutation;

#[Object]
impl AccountsMutation {
    /// Changes the signed-in account's profile: the language of its e-mail, or its
    /// address (confirmed from a link sent to the new one).
    #[graphql(guard = "NoApiTokens")]
    async fn update_profile(&self, ctx: &Context<'_>, input: UpdateProfileInput) -> Result<User> {
        let tx = data::<RequestTx>(ctx)?;
        let change = ProfileChange {
            locale: input.locale,
            email: input.email.as_deref(),
            current_password: input.current_password.as_deref(),
        };
        let user = data::<Arc<AccountService>>(ctx)?.update_profile(tx, change).await?;
        Ok(User::try_from(user)?)
    }

    /// Creates an account and signs it in; a verification e-mail is sent.
    #[graphql(guard = "NoApiTokens")]
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> Result<AuthPayload> {
        let tx = data::<RequestTx>(ctx)?;
        let svc = data::<Arc<AccountService>>(ctx)?;
        let locale = input
            .locale
            .or_else(|| tx.meta().accept_language.as_deref().and_then(Locale::from_accept_language))
            .unwrap_or(Locale::Fr);
        let signed_in = svc.register(tx, &input.email, &input.password, locale).await?;
        Ok(signed_in.try_into()?)
    }

    /// Signs in with e-mail and password.
    #[graphql(guard = "NoApiTokens")]
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<AuthPayload> {
        let tx = data::<RequestTx>(ctx)?;
        let svc = data::<Arc<AccountService>>(ctx)?;
        let signed_in = svc.login(tx, &input.email, &input.password).await?;
        Ok(signed_in.try_into()?)
    }

    /// Exchanges a refresh token for a new access token and a new refresh token.
    #[graphql(guard = "NoApiTokens")]
    async fn refresh_session(&self, ctx: &Context<'_>, refresh_token: String) -> Result<AuthPayload> {
        let tx = data::<RequestTx>(ctx)?;
        let svc = data::<Arc<AccountService>>(ctx)?;
        let signed_in = svc.refresh(tx, &refresh_token).await?;
        Ok(signed_in.try_into()?)
    }

    /// Ends the session a refresh token belongs to.
    #[graphql(guard = "NoApiTokens")]
    async fn logout(&self, ctx: &Context<'_>, refresh_token: String) -> Result<bool> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(data::<Arc<AccountService>>(ctx)?.logout(tx, &refresh_token).await?)
    }

    /// Ends one of the signed-in account's sessions (its own included): its refresh
    /// token stops working, its access tokens are refused at once on every instance and
    /// its sockets close. True when ended.
    ///
    /// Errors: NOT_FOUND (not a live session of the caller's, another account's
    /// included); BAD_USER_INPUT (`id`); UNAUTHENTICATED.
    #[graphql(guard = "NoApiTokens.and(SignedInGuard)")]
    async fn revoke_session(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let tx = data::<RequestTx>(ctx)?;
        let id = crate::error::parse_id("id", &id)?;
        data::<Arc<AccountService>>(ctx)?.revoke_session(tx, id).await?;
        Ok(true)
    }

    /// Sends a new e-mail verification link to the signed-in account.
    #[graphql(guard = "NoApiTokens.and(SignedInGuard)")]
    async fn request_email_verification(&self, ctx: &Context<'_>) -> Result<bool> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(data::<Arc<AccountService>>(ctx)?.request_email_verification(tx).await?)
    }

    /// Confirms an e-mail address with the token from the verification link.
    #[graphql(guard = "NoApiTokens")]
    async fn verify_email(&self, ctx: &Context<'_>, token: String) -> Result<bool> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(data::<Arc<AccountService>>(ctx)?.verify_email(tx, &token).await?)
    }

    /// Sends a password-reset link if the address has an account; always true.
    #[graphql(guard = "NoApiTokens")]
    async fn request_password_reset(&self, ctx: &Context<'_>, email: String) -> Result<bool> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(data::<Arc<AccountService>>(ctx)?.request_password_reset(tx, &email).await?)
    }

    /// Sets a new password with the token from a reset link; every session ends.
    #[graphql(guard = "NoApiTokens")]
    async fn reset_password(&self, ctx: &Context<'_>, token: String, new_password: String) -> Result<bool> {
        let tx = data::<RequestTx>(ctx)?;
        let svc = data::<Arc<AccountService>>(ctx)?;
        Ok(svc.reset_password(tx, &token, &new_password).await?)
    }

    /// Queues an archive of every row and object of the signed-in account (GDPR); a
    /// notification and an e-mail announce it. While one is in progress, asking again
    /// answers it.
    #[graphql(guard = "NoApiTokens.and(SignedInGuard)")]
    async fn export_my_data(&self, ctx: &Context<'_>) -> Result<DataExport> {
        let tx = data::<RequestTx>(ctx)?;
        let privacy = data::<Arc<Privacy>>(ctx)?;
        let (row, _) = privacy.request_export(tx).await?;
        data_export(privacy, row).await
    }

    /// Schedules the erasure of the signed-in account after a grace period (its
    /// password proves it is the owner); signing in before `deletionScheduledAt`
    /// cancels it.
    #[graphql(guard = "NoApiTokens.and(SignedInGuard)")]
    async fn delete_my_account(&self, ctx: &Context<'_>, input: DeleteMyAccountInput) -> Result<User> {
        let tx = data::<RequestTx>(ctx)?;
        let svc = data::<Arc<AccountService>>(ctx)?;
        Ok(User::try_from(svc.schedule_deletion(tx, &input.current_password).await?)?)
    }

    /// Changes the signed-in account's password; its other sessions end.
    #[graphql(guard = "NoApiTokens.and(SignedInGuard)")]
    async fn change_password(&self, ctx: &Context<'_>, current_password: String, new_password: String) -> Result<bool> {
        let tx = data::<RequestTx>(ctx)?;
        let svc = data::<Arc<AccountService>>(ctx)?;
        Ok(svc.change_password(tx, &current_password, &new_password).await?)
    }
}
