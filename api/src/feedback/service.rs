//! NPS without GraphQL: a user's answer, and the administrators' summary.
use super::store;
use crate::{
    db::RequestTx,
    error::{AppError, AppResult},
    model::{DbRole, Role},
    principal::Principal,
};
use chrono::{DateTime, Duration, Utc};

/// Days between two answers of one user.
pub const NPS_PERIOD_DAYS: i32 = 90;
/// Longest comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 1_000;
/// Comments a summary lists.
pub const RECENT_COMMENTS: i32 = 20;

/// Records the caller's NPS answer; its time.
///
/// Errors: UNAUTHENTICATED, FORBIDDEN (API tokens), BAD_USER_INPUT (score outside 0–10,
/// comment too long or with control characters), RATE_LIMITED (answered within 90 days;
/// `retryAfter` until the next allowed answer), INTERNAL.
pub async fn submit(tx: &RequestTx, score: i32, comment: Option<&str>) -> AppResult<DateTime<Utc>> {
    let user = match tx.principal() {
        Principal::User(c) if c.api.is_none() => c.user_id,
        Principal::User(_) => return Err(AppError::Forbidden("feedback is for the signed-in app".into())),
        _ => return Err(AppError::Unauthenticated("sign in to do this".into())),
    };
    let score = i16::try_from(score)
        .ok()
        .filter(|s| (0..=10).contains(s))
        .ok_or_else(|| AppError::bad_input("input.score", "must be between 0 and 10"))?;
    let comment = comment.map(str::trim).filter(|c| !c.is_empty());
    if let Some(c) = comment {
        if c.chars().count() > MAX_COMMENT_CHARS {
            return Err(AppError::bad_input("input.comment", format!("at most {MAX_COMMENT_CHARS} characters")));
        }
        if c.chars().any(|ch| ch.is_control() && ch != '\n' && ch != '\t') {
            return Err(AppError::bad_input("input.comment", "no control characters"));
        }
    }
    match store::insert(tx, user, score, comment, NPS_PERIOD_DAYS).await? {
        Ok(at) => Ok(at),
        Err(last) => {
            let wait = (last + Duration::days(NPS_PERIOD_DAYS.into()) - Utc::now()).num_seconds().max(1);
            Err(AppError::RateLimited { retry_after_secs: u64::try_from(wait).unwrap_or(1) })
        }
    }
}

/// The NPS summary of [from, to) and its newest comments, counted in PostgreSQL as
/// `plinth_metrics` for the administrator.
///
/// Errors: UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT (range), INTERNAL.
pub async fn summary(
    tx: &RequestTx,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<(store::Summary, Vec<store::Comment>)> {
    let admin = match tx.principal() {
        Principal::User(c) if c.api.is_none() && c.role == Role::Admin => c.user_id,
        Principal::User(_) => return Err(AppError::Forbidden("only administrators may read feedback".into())),
        _ => return Err(AppError::Unauthenticated("sign in to do this".into())),
    };
    if from >= to {
        return Err(AppError::bad_input("to", "must be after from"));
    }
    if to - from > Duration::days(3_660) {
        return Err(AppError::bad_input("to", "the range may cover at most 3660 days"));
    }
    tx.acting_as(DbRole::Metrics, Some(admin), async {
        Ok((store::summary(tx, from, to).await?, store::comments(tx, from, to, RECENT_COMMENTS).await?))
    })
    .await
}
