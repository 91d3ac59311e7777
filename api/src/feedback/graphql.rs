//! GraphQL adapter for feedback: users answer the NPS question and rate their resolved
//! tickets (CSAT); administrators read the NPS summary (CSAT figures are in
//! `supportMetrics`).
use super::{service, store};
use crate::{
    auth::guards::{NoApiTokens, SignedIn, Staff},
    db::{data, RequestTx},
    error::parse_id,
    model::Role,
    support::graphql::CsatRating,
};
use async_graphql::{Context, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// An answer to "How likely are you to recommend Plinth to a friend or colleague?"
#[derive(InputObject, Debug)]
pub struct SubmitNpsInput {
    /// 0 (not at all likely) to 10 (extremely likely).
    pub score: i32,
    /// Why, optionally (at most 1000 characters).
    pub comment: Option<String>,
}

/// A recorded answer.
#[derive(SimpleObject, Debug)]
pub struct NpsSubmission {
    /// The score.
    pub score: i32,
    /// When it was recorded.
    pub submitted_at: DateTime<Utc>,
    /// The earliest time the next answer is accepted.
    pub next_allowed_at: DateTime<Utc>,
}

/// Respondents who gave one score.
#[derive(SimpleObject, Debug)]
pub struct NpsScoreCount {
    /// The score, 0 to 10.
    pub score: i32,
    /// Respondents.
    pub respondents: i64,
}

/// A comment, without its author.
#[derive(SimpleObject, Debug)]
pub struct NpsComment {
    /// The score given with it.
    pub score: i32,
    /// The text.
    pub comment: String,
    /// When.
    pub submitted_at: DateTime<Utc>,
}

/// NPS counts and score of one calendar month (UTC) of the range: the answers given in
/// that month (and in the range), each respondent's latest counting once.
#[derive(SimpleObject, Debug)]
pub struct NpsMonth {
    /// The month's first instant.
    pub start: DateTime<Utc>,
    /// Users who answered in the month.
    pub respondents: i64,
    /// Scores 9–10.
    pub promoters: i64,
    /// Scores 7–8.
    pub passives: i64,
    /// Scores 0–6.
    pub detractors: i64,
    /// The month's Net Promoter Score (see `NpsSummary.nps`; null without respondents).
    pub nps: Option<f64>,
}

impl From<store::Month> for NpsMonth {
    fn from(m: store::Month) -> Self {
        let c = m.counts;
        NpsMonth {
            start: m.start,
            respondents: c.respondents,
            promoters: c.promoters,
            passives: c.passives,
            detractors: c.detractors,
            nps: c.nps(),
        }
    }
}

/// NPS over [from, to), the Net Promoter Score (Reichheld, Harvard Business Review
/// 2003; Bain & Company): each respondent's latest answer in the range counts once;
/// promoters score 9–10, passives 7–8, detractors 0–6;
/// `nps` = 100 × (promoters − detractors) ÷ respondents, i.e. % promoters − %
/// detractors, from −100 to 100 (null without respondents).
#[derive(SimpleObject, Debug)]
pub struct NpsSummary {
    /// Users who answered.
    pub respondents: i64,
    /// Scores 9–10.
    pub promoters: i64,
    /// Scores 7–8.
    pub passives: i64,
    /// Scores 0–6.
    pub detractors: i64,
    /// The Net Promoter Score.
    pub nps: Option<f64>,
    /// Customers (role user) signed up before `to`.
    pub eligible: i64,
    /// respondents ÷ eligible (fraction; null when nobody is eligible).
    pub response_rate: Option<f64>,
    /// Respondents per score, 0 to 10.
    pub distribution: Vec<NpsScoreCount>,
    /// NPS per calendar month (UTC), oldest first: every month of the range, the first
    /// the one containing `from`, counting only answers inside [from, to).
    pub months: Vec<NpsMonth>,
    /// The newest comments, newest first (`commentsLimit` of them at most).
    pub recent_comments: Vec<NpsComment>,
}

/// Feedback: the administrators' side, and the users' own CSAT.
#[derive(Default)]
pub struct FeedbackQuery;

impl From<store::Csat> for CsatRating {
    fn from(c: store::Csat) -> Self {
        CsatRating {
            ticket_id: ID(c.ticket_id.to_string()),
            score: c.score.into(),
            comment: c.comment,
            submitted_at: c.created_at,
        }
    }
}

/// A rating of a resolved or closed ticket: "How satisfied are you with the support
/// you received?"
#[derive(InputObject, Debug)]
pub struct SubmitCsatInput {
    /// One of the caller's tickets, resolved or closed.
    pub ticket_id: ID,
    /// 1 (very unsatisfied) to 5 (very satisfied).
    pub score: i32,
    /// Why, optionally (at most 1000 characters).
    pub comment: Option<String>,
}

#[Object]
impl FeedbackQuery {
    /// NPS summary of [from, to): totals, distribution, NPS per month, the newest
    /// `commentsLimit` comments (0 to 100). Admin only.
    ///
    /// Errors: FORBIDDEN, UNAUTHENTICATED, BAD_USER_INPUT (`to` not after `from`, a
    /// range over 3660 days, `commentsLimit`).
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn nps_summary(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        #[graphql(default = 20)] comments_limit: i32,
    ) -> Result<NpsSummary> {
        let tx = data::<RequestTx>(ctx)?;
        let report = service::summary(tx, from, to, comments_limit).await?;
        let (s, c) = (&report.summary, report.summary.counts);
        Ok(NpsSummary {
            respondents: c.respondents,
            promoters: c.promoters,
            passives: c.passives,
            detractors: c.detractors,
            nps: c.nps(),
            eligible: s.eligible,
            response_rate: s.response_rate(),
            distribution: (0..)
                .zip(s.distribution.iter())
                .map(|(score, n)| NpsScoreCount { score, respondents: *n })
                .collect(),
            months: report.months.into_iter().map(Into::into).collect(),
            recent_comments: report
                .comments
                .into_iter()
                .map(|c| NpsComment { score: c.score, comment: c.comment, submitted_at: c.created_at })
                .collect(),
        })
    }

    /// The caller's CSAT rating of its ticket `ticketId`; null when not rated yet (or
    /// no such ticket of the caller's).
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn ticket_csat(&self, ctx: &Context<'_>, ticket_id: ID) -> Result<Option<CsatRating>> {
        let tx = data::<RequestTx>(ctx)?;
        let Ok(id) = Uuid::parse_str(&ticket_id) else { return Ok(None) };
        Ok(service::csat(tx, id).await?.map(Into::into))
    }
}

/// Feedback: the users' side.
#[derive(Default)]
pub struct FeedbackMutation;

#[Object]
impl FeedbackMutation {
    /// Records the caller's NPS answer: at most one per 90 days (RATE_LIMITED with
    /// `retryAfter` otherwise).
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn submit_nps(&self, ctx: &Context<'_>, input: SubmitNpsInput) -> Result<NpsSubmission> {
        let tx = data::<RequestTx>(ctx)?;
        let at = service::submit(tx, input.score, input.comment.as_deref()).await?;
        Ok(NpsSubmission {
            score: input.score,
            submitted_at: at,
            next_allowed_at: at + chrono::Duration::days(service::NPS_PERIOD_DAYS.into()),
        })
    }

    /// Rates one of the caller's tickets once it is resolved or closed: 1 to 5 with an
    /// optional comment, once per ticket (kept if the ticket is reopened).
    ///
    /// Errors: UNAUTHENTICATED, FORBIDDEN (API tokens), NOT_FOUND (no such ticket of
    /// the caller's), BAD_USER_INPUT (`input.score`, `input.comment`, `input.ticketId`
    /// malformed), CONFLICT (not resolved or closed yet, or rated already).
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn submit_csat(&self, ctx: &Context<'_>, input: SubmitCsatInput) -> Result<CsatRating> {
        let tx = data::<RequestTx>(ctx)?;
        let ticket = parse_id("input.ticketId", &input.ticket_id)?;
        Ok(service::submit_csat(tx, ticket, input.score, input.comment.as_deref()).await?.into())
    }
}
