//! All SQL of `nps_responses` and the calls to the `metrics` schema's NPS functions
//! (migration `m20261202_000701_create_experiments`).
use crate::error::AppResult;
use chrono::{DateTime, FixedOffset, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

fn stmt(sql: &str, values: impl IntoIterator<Item = sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
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
    Ok(Ok(row.try_get::<DateTime<FixedOffset>>("", "created_at")?.with_timezone(&Utc)))
}

/// NPS counts over a range.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Users who answered (latest answer each).
    pub respondents: i64,
    /// Scores 9–10.
    pub promoters: i64,
    /// Scores 7–8.
    pub passives: i64,
    /// Scores 0–6.
    pub detractors: i64,
    /// Customers signed up before the range's end.
    pub eligible: i64,
    /// Respondents per score 0..=10.
    pub distribution: Vec<i64>,
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
        s.respondents = r.try_get("", "respondents")?;
        s.promoters = r.try_get("", "promoters")?;
        s.passives = r.try_get("", "passives")?;
        s.detractors = r.try_get("", "detractors")?;
        s.eligible = r.try_get("", "eligible")?;
    }
    let rows = db.query_all(stmt("SELECT * FROM metrics.nps_distribution($1, $2)", [from.into(), to.into()])).await?;
    s.distribution = rows.iter().map(|r| r.try_get("", "responses")).collect::<Result<_, _>>()?;
    Ok(s)
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
                created_at: r.try_get::<DateTime<FixedOffset>>("", "created_at")?.with_timezone(&Utc),
            })
        })
        .collect()
}
