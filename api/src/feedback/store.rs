//! All SQL of `nps_responses` and `ticket_csat` (but support's read of ratings with
//! their tickets, `support::store::csat_of`), and the calls to the `metrics`
//! schema's NPS functions (migrations `m20261202_000701_create_experiments`,
//! `m20261203_000201_create_ticket_csat`, `m20261203_000202_summarise_feedback_by_month`).
use crate::error::AppResult;
use chrono::{DateTime, FixedOffset, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement};
use uuid::Uuid;

fn stmt(sql: &str, values: impl IntoIterator<Item = sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

fn utc(r: &QueryResult, column: &str) -> AppResult<DateTime<Utc>> {
    Ok(r.try_get::<DateTime<FixedOffset>>("", column)?.with_timezone(&Utc))
}

/// Inserts a response unless the user answered within `days`: `Ok(Ok(at))` when
/// recorded, `Ok(Err(last))` with the previous answer's time otherwise. A transaction
/// advisory lock per user serialises concurrent submissions, so two cannot both pass.
///
/// Errors: INTERNAL.
pub async fn insert(
    db: &impl ConnectionTrait,
    user: Uuid,
    score: i16,
    comment: Option<&str>,
    days: i32,
) -> AppResult<Result<DateTime<Utc>, DateTime<Utc>>> {
    db.execute(stmt("SELECT pg_advisory_xact_lock(hashtextextended('nps:' || $1::text, 0))", [user.into()])).await?;
    let last = db
        .query_one(stmt(
            "SELECT max(created_at) AS last FROM nps_responses
             WHERE user_id = $1 AND created_at > now() - make_interval(days => $2)",
            [user.into(), days.into()],
        ))
        .await?
        .and_then(|r| r.try_get::<Option<DateTime<FixedOffset>>>("", "last").ok().flatten());
    if let Some(last) = last {
        return Ok(Err(last.with_timezone(&Utc)));
    }
    let row = db
        .query_one(stmt(
            "INSERT INTO nps_responses (id, user_id, score, comment) VALUES ($1, $2, $3, $4) RETURNING created_at",
            [Uuid::now_v7().into(), user.into(), score.into(), comment.map(str::to_owned).into()],
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("INSERT ... RETURNING gave no row"))?;
    Ok(Ok(utc(&row, "created_at")?))
}

/// NPS counts of a set of answers (each respondent's latest counting once).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NpsCounts {
    /// Users who answered.
    pub respondents: i64,
    /// Scores 9–10.
    pub promoters: i64,
    /// Scores 7–8.
    pub passives: i64,
    /// Scores 0–6.
    pub detractors: i64,
}

fn counts(r: &QueryResult) -> AppResult<NpsCounts> {
    Ok(NpsCounts {
        respondents: r.try_get("", "respondents")?,
        promoters: r.try_get("", "promoters")?,
        passives: r.try_get("", "passives")?,
        detractors: r.try_get("", "detractors")?,
    })
}

/// NPS counts over a range.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// The range's counts (latest answer of each user in it).
    pub counts: NpsCounts,
    /// Customers signed up before the range's end.
    pub eligible: i64,
    /// Respondents per score 0..=10.
    pub distribution: Vec<i64>,
}

/// NPS counts of one calendar month (UTC) of a range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Month {
    /// The month's first instant.
    pub start: DateTime<Utc>,
    /// Its counts (latest answer of each user in the month and the range).
    pub counts: NpsCounts,
}

/// A comment, without its author.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    /// The score given with it.
    pub score: i32,
    /// The text.
    pub comment: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Counts and distribution over [from, to) (as `plinth_metrics`).
///
/// Errors: INTERNAL.
pub async fn summary(db: &impl ConnectionTrait, from: DateTime<Utc>, to: DateTime<Utc>) -> AppResult<Summary> {
    let mut s = Summary::default();
    if let Some(r) = db.query_one(stmt("SELECT * FROM metrics.nps_summary($1, $2)", [from.into(), to.into()])).await? {
        s.counts = counts(&r)?;
        s.eligible = r.try_get("", "eligible")?;
    }
    let rows = db.query_all(stmt("SELECT * FROM metrics.nps_distribution($1, $2)", [from.into(), to.into()])).await?;
    s.distribution = rows.iter().map(|r| r.try_get("", "responses")).collect::<Result<_, _>>()?;
    Ok(s)
}

/// Counts per month of [from, to), oldest first (as `plinth_metrics`).
///
/// Errors: INTERNAL.
pub async fn monthly(db: &impl ConnectionTrait, from: DateTime<Utc>, to: DateTime<Utc>) -> AppResult<Vec<Month>> {
    let rows = db.query_all(stmt("SELECT * FROM metrics.nps_monthly($1, $2)", [from.into(), to.into()])).await?;
    rows.iter().map(|r| Ok(Month { start: utc(r, "month")?, counts: counts(r)? })).collect()
}

/// The newest `n` comments of [from, to) (as `plinth_metrics`).
///
/// Errors: INTERNAL.
pub async fn comments(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    n: i32,
) -> AppResult<Vec<Comment>> {
    let rows = db
        .query_all(stmt("SELECT * FROM metrics.nps_comments($1, $2, $3)", [from.into(), to.into(), n.into()]))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Comment {
                score: r.try_get("", "score")?,
                comment: r.try_get("", "comment")?,
                created_at: utc(r, "created_at")?,
            })
        })
        .collect()
}

/// A CSAT rating of a ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Csat {
    /// The rated ticket.
    pub ticket_id: Uuid,
    /// 1 to 5.
    pub score: i16,
    /// Why, if said.
    pub comment: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

fn csat(r: &QueryResult) -> AppResult<Csat> {
    Ok(Csat {
        ticket_id: r.try_get("", "ticket_id")?,
        score: r.try_get("", "score")?,
        comment: r.try_get("", "comment")?,
        created_at: utc(r, "created_at")?,
    })
}

/// Records the user's rating of its ticket; `None` when the ticket was rated before
/// (the primary key keeps one). The database refuses a ticket that is not the user's
/// or not resolved or closed.
///
/// Errors: INTERNAL.
pub async fn insert_csat(
    db: &impl ConnectionTrait,
    user: Uuid,
    ticket: Uuid,
    score: i16,
    comment: Option<&str>,
) -> AppResult<Option<Csat>> {
    let row = db
        .query_one(stmt(
            "INSERT INTO ticket_csat (user_id, ticket_id, score, comment) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, ticket_id) DO NOTHING
             RETURNING ticket_id, score, comment, created_at",
            [user.into(), ticket.into(), score.into(), comment.map(str::to_owned).into()],
        ))
        .await?;
    row.as_ref().map(csat).transpose()
}

/// The user's rating of its ticket, if any.
///
/// Errors: INTERNAL.
pub async fn find_csat(db: &impl ConnectionTrait, user: Uuid, ticket: Uuid) -> AppResult<Option<Csat>> {
    let row = db
        .query_one(stmt(
            "SELECT ticket_id, score, comment, created_at FROM ticket_csat WHERE user_id = $1 AND ticket_id = $2",
            [user.into(), ticket.into()],
        ))
        .await?;
    row.as_ref().map(csat).transpose()
}
