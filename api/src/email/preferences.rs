//! What mail a user wants besides transactional mail (always sent): onboarding and
//! product news; the signed one-click unsubscribe links (RFC 8058) that turn one off
//! without signing in.
use crate::{
    db::RequestTx,
    error::{AppError, AppResult},
    model::Role,
    secretbox::SecretBox,
};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

/// The preferences of one user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preferences {
    /// The onboarding sequence.
    pub onboarding: bool,
    /// Product news.
    pub product_news: bool,
}

/// The caller's preferences.
///
/// Errors: UNAUTHENTICATED; INTERNAL.
pub async fn read(tx: &RequestTx) -> AppResult<Preferences> {
    let user_id = tx.user_id()?;
    let row = tx
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT email_onboarding, email_product_news FROM users WHERE id = $1",
            [user_id.into()],
        ))
        .await?
        .ok_or_else(|| AppError::Unauthenticated("the account no longer exists".into()))?;
    Ok(Preferences {
        onboarding: row.try_get("", "email_onboarding")?,
        product_news: row.try_get("", "email_product_news")?,
    })
}

/// Sets the caller's preferences given (None: unchanged); returns them all.
///
/// Errors: UNAUTHENTICATED; INTERNAL.
pub async fn update(tx: &RequestTx, onboarding: Option<bool>, product_news: Option<bool>) -> AppResult<Preferences> {
    let user_id = tx.user_id()?;
    set(tx, user_id, onboarding, product_news).await?;
    read(tx).await
}

async fn set(tx: &RequestTx, user_id: Uuid, onboarding: Option<bool>, product_news: Option<bool>) -> AppResult<u64> {
    let done = tx
        .execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE users SET email_onboarding = COALESCE($2, email_onboarding),
                              email_product_news = COALESCE($3, email_product_news), updated_at = now()
              WHERE id = $1",
            [user_id.into(), onboarding.into(), product_news.into()],
        ))
        .await?;
    Ok(done.rows_affected())
}

fn signed_message(user_id: Uuid, category: &str) -> Vec<u8> {
    format!("unsubscribe:{user_id}:{category}").into_bytes()
}

/// The one-click unsubscribe link of `user_id` from `category` (`onboarding`,
/// `product_news`), signed so that it works without a session.
pub fn unsubscribe_link(sealer: &SecretBox, public_url: &str, user_id: Uuid, category: &str) -> String {
    let sig = sealer.sign(&signed_message(user_id, category));
    format!("{}/unsubscribe?u={user_id}&c={category}&s={sig}", public_url.trim_end_matches('/'))
}

/// Turns `category` off for `user_id` when `signature` is the link's.
///
/// Errors: BAD_USER_INPUT (`c`: unknown category, `s`: bad signature); NOT_FOUND (the
/// account is gone); INTERNAL.
pub async fn unsubscribe(
    tx: &RequestTx,
    sealer: &SecretBox,
    user_id: Uuid,
    category: &str,
    signature: &str,
) -> AppResult<()> {
    let (onboarding, product_news) = match category {
        "onboarding" => (Some(false), None),
        "product_news" => (None, Some(false)),
        _ => return Err(AppError::bad_input("c", "unknown mail category")),
    };
    if !sealer.verify(&signed_message(user_id, category), signature) {
        return Err(AppError::bad_input("s", "this unsubscribe link is not valid"));
    }
    // The signature proves the link came from a mail to this account.
    let changed = tx.acting_as_user(Role::User, user_id, set(tx, user_id, onboarding, product_news)).await?;
    if changed == 0 {
        return Err(AppError::NotFound("account not found".into()));
    }
    Ok(())
}
