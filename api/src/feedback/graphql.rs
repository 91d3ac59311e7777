//! GraphQL adapter for feedback: users answer the NPS question; administrators read
//! the summary.
use super::{service, store};
use crate::{
    auth::guards::{NoApiTokens, SignedIn, Staff},
    db::{data, RequestTx},
    model::Role,
};
use async_graphql::{Context, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

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

/// NPS over [from, to), Bain & Company's Net Promoter Score: each respondent's latest
/// answer in the range counts once; promoters score 9–10, passives 7–8, detractors
/// 0–6; `nps` = % promoters − % detractors (−100 to 100, null without respondents).
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
    /// The newest comments (at most 20).
    pub recent_comments: Vec<NpsComment>,
}

#[allow(clippy::cast_precision_loss)]
fn ratio(a: i64, b: i64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// NPS in percentage points from the counts.
#[allow(clippy::cast_precision_loss)]
pub fn nps(s: &store::Summary) -> Option<f64> {
    (s.respondents > 0).then(|| 100.0 * (s.promoters - s.detractors) as f64 / s.respondents as f64)
}

/// Feedback: the administrators' side.
#[derive(Default)]
pub struct FeedbackQuery;

#[Object]
impl FeedbackQuery {
    /// NPS summary of [from, to). Admin only.
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn nps_summary(&self, ctx: &Context<'_>, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<NpsSummary> {
        let tx = data::<RequestTx>(ctx)?;
        let (s, comments) = service::summary(tx, from, to).await?;
        Ok(NpsSummary {
            respondents: s.respondents,
            promoters: s.promoters,
            passives: s.passives,
            detractors: s.detractors,
            nps: nps(&s),
            eligible: s.eligible,
            response_rate: ratio(s.respondents, s.eligible),
            distribution: (0..)
                .zip(s.distribution.iter())
                .map(|(score, n)| NpsScoreCount { score, respondents: *n })
                .collect(),
            recent_comments: comments
                .into_iter()
                .map(|c| NpsComment { score: c.score, comment: c.comment, submitted_at: c.created_at })
                .collect(),
        })
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
}
