//! Feedback without GraphQL: a user's NPS answer and CSAT rating, and the
//! administrators' NPS summary.
use super::store::{self, NpsCounts};
use crate::{
    business::service as business,
    db::RequestTx,
    error::{AppError, AppResult},
    model::{DbRole, Role},
    principal::Principal,
    support::{domain::TicketStatus, service as support},
};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// Days between two answers of one user.
pub const NPS_PERIOD_DAYS: i32 = 90;
/// Longest comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 1_000;
/// Comments a summary lists unless asked otherwise.
pub const RECENT_COMMENTS: i32 = 20;
/// Most comments a summary lists.
pub const MAX_RECENT_COMMENTS: i32 = 100;
/// Longest range of a summary, in days.
pub const MAX_RANGE_DAYS: i64 = 3_660;

impl NpsCounts {
    /// The Net Promoter Score (Reichheld, "The One Number You Need to Grow", Harvard
    /// Business Review, December 2003; Bain & Company's definition): the percentage of
    /// respondents who are promoters (9–10) minus the percentage who are detractors
    /// (0–6), passives (7–8) counting only in the total: 100 × (promoters −
    /// detractors) ÷ respondents, from −100 to 100; `None` without respondents.
    #[allow(clippy::cast_precision_loss)]
    pub fn nps(&self) -> Option<f64> {
        (self.respondents > 0).then(|| 100.0 * (self.promoters - self.detractors) as f64 / self.respondents as f64)
    }
}

impl store::Summary {
    /// respondents ÷ eligible customers (a fraction; `None` when nobody is eligible).
    pub fn response_rate(&self) -> Option<f64> {
        business::ratio(self.counts.respondents, self.eligible)
    }
}

/// What the administrators' NPS summary holds.
#[derive(Clone, Debug)]
pub struct NpsReport {
    /// The whole range.
    pub summary: store::Summary,
    /// Each calendar month of it, oldest first.
    pub months: Vec<store::Month>,
    /// The newest comments, newest first.
    pub comments: Vec<store::Comment>,
}

/// The caller, a signed-in user of the app (not an API token).
fn app_user(tx: &RequestTx) -> AppResult<Uuid> {
    match tx.principal() {
        Principal::User(c) if c.api.is_none() => Ok(c.user_id),
        Principal::User(_) => Err(AppError::Forbidden("feedback is for the signed-in app".into())),
        _ => Err(AppError::Unauthenticated("sign in to do this".into())),
    }
}

/// A comment trimmed (empty: none), at most [`MAX_COMMENT_CHARS`], no control
/// characters but line breaks and tabs.
fn comment<'c>(field: &str, comment: Option<&'c str>) -> AppResult<Option<&'c str>> {
    let comment = comment.map(str::trim).filter(|c| !c.is_empty());
    if let Some(c) = comment {
        if c.chars().count() > MAX_COMMENT_CHARS {
            return Err(AppError::bad_input(field, format!("at most {MAX_COMMENT_CHARS} characters")));
        }
        if c.chars().any(|ch| ch.is_control() && ch != '\n' && ch != '\t') {
            return Err(AppError::bad_input(field, "no control characters"));
        }
    }
    Ok(comment)
}

/// Records the caller's NPS answer; its time.
///
/// Errors: UNAUTHENTICATED, FORBIDDEN (API tokens), BAD_USER_INPUT (score outside 0–10,
/// comment too long or with control characters), RATE_LIMITED (answered within 90 days;
/// `retryAfter` until the next allowed answer), INTERNAL.
pub async fn submit(tx: &RequestTx, score: i32, text: Option<&str>) -> AppResult<DateTime<Utc>> {
    let user = app_user(tx)?;
    let score = i16::try_from(score)
        .ok()
        .filter(|s| (0..=10).contains(s))
        .ok_or_else(|| AppError::bad_input("input.score", "must be between 0 and 10"))?;
    let text = comment("input.comment", text)?;
    match store::insert(tx, user, score, text, NPS_PERIOD_DAYS).await? {
        Ok(at) => Ok(at),
        Err(last) => {
            let wait = (last + Duration::days(NPS_PERIOD_DAYS.into()) - Utc::now()).num_seconds().max(1);
            Err(AppError::RateLimited { retry_after_secs: u64::try_from(wait).unwrap_or(1) })
        }
    }
}

/// Records the caller's CSAT rating (1–5, an optional comment) of one of its tickets
/// once it is resolved or closed; once per ticket, kept if the ticket is reopened.
///
/// Errors: UNAUTHENTICATED, FORBIDDEN (API tokens), NOT_FOUND (no such ticket of the
/// caller's), BAD_USER_INPUT (score outside 1–5, comment), CONFLICT (the ticket is
/// still open or pending, or was rated already), INTERNAL.
pub async fn submit_csat(tx: &RequestTx, ticket_id: Uuid, score: i32, text: Option<&str>) -> AppResult<store::Csat> {
    let user = app_user(tx)?;
    let score = i16::try_from(score)
        .ok()
        .filter(|s| (1..=5).contains(s))
        .ok_or_else(|| AppError::bad_input("input.score", "must be between 1 and 5"))?;
    let text = comment("input.comment", text)?;
    let ticket = support::own_ticket(tx, ticket_id).await?;
    if !matches!(ticket.status, TicketStatus::Resolved | TicketStatus::Closed) {
        return Err(AppError::Conflict("a ticket can be rated once it is resolved or closed".into()));
    }
    store::insert_csat(tx, user, ticket_id, score, text)
        .await?
        .ok_or_else(|| AppError::Conflict("this ticket was rated already".into()))
}

/// The caller's rating of its ticket; `None` when not rated, or not its ticket.
///
/// Errors: UNAUTHENTICATED, FORBIDDEN (API tokens), INTERNAL.
pub async fn csat(tx: &RequestTx, ticket_id: Uuid) -> AppResult<Option<store::Csat>> {
    let user = app_user(tx)?;
    store::find_csat(tx, user, ticket_id).await
}

/// The NPS of [from, to), per month, and its newest `comments` (0 to 100), counted in
/// PostgreSQL as `plinth_metrics` for the administrator.
///
/// Errors: UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT (range, comments), INTERNAL.
pub async fn summary(tx: &RequestTx, from: DateTime<Utc>, to: DateTime<Utc>, comments: i32) -> AppResult<NpsReport> {
    let admin = match tx.principal() {
        Principal::User(c) if c.api.is_none() && c.role == Role::Admin => c.user_id,
        Principal::User(_) => return Err(AppError::Forbidden("only administrators may read feedback".into())),
        _ => return Err(AppError::Unauthenticated("sign in to do this".into())),
    };
    if from >= to {
        return Err(AppError::bad_input("to", "must be after from"));
    }
    if to - from > Duration::days(MAX_RANGE_DAYS) {
        return Err(AppError::bad_input("to", format!("the range may cover at most {MAX_RANGE_DAYS} days")));
    }
    if !(0..=MAX_RECENT_COMMENTS).contains(&comments) {
        return Err(AppError::bad_input("commentsLimit", format!("must be between 0 and {MAX_RECENT_COMMENTS}")));
    }
    tx.acting_as(DbRole::Metrics, Some(admin), async {
        Ok(NpsReport {
            summary: store::summary(tx, from, to).await?,
            months: store::monthly(tx, from, to).await?,
            comments: if comments > 0 { store::comments(tx, from, to, comments).await? } else { Vec::new() },
        })
    })
    .await
}
