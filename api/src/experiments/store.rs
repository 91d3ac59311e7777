//! All SQL of `experiments`, `experiment_assignments` and `experiment_conversions`, and
//! the call to `metrics.experiment_results` (migration
//! `m20261202_000701_create_experiments`).
use crate::error::AppResult;
use chrono::{DateTime, FixedOffset, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

fn stmt(sql: &str, values: impl IntoIterator<Item = sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// One variant of a definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    /// Its name, unique in the experiment.
    pub name: String,
    /// Its share of the audience, relative to the others' weights.
    pub weight: i32,
}

/// An experiment's definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Experiment {
    /// Its key.
    pub key: String,
    /// What it tests.
    pub description: String,
    /// Its variants, the control first.
    pub variants: Vec<Variant>,
    /// `all` or `new_users`.
    pub audience: String,
    /// `running` or `stopped`.
    pub status: String,
    /// The variant everybody gets once stopped (the control when none).
    pub winner: Option<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it stopped.
    pub stopped_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "key, description, variants, audience, status, winner, started_at, stopped_at";

fn experiment(r: &QueryResult) -> AppResult<Experiment> {
    let variants: serde_json::Value = r.try_get("", "variants")?;
    Ok(Experiment {
        key: r.try_get("", "key")?,
        description: r.try_get("", "description")?,
        variants: serde_json::from_value(variants).map_err(anyhow::Error::new)?,
        audience: r.try_get("", "audience")?,
        status: r.try_get("", "status")?,
        winner: r.try_get("", "winner")?,
        started_at: r.try_get::<DateTime<FixedOffset>>("", "started_at")?.with_timezone(&Utc),
        stopped_at: r.try_get::<Option<DateTime<FixedOffset>>>("", "stopped_at")?.map(|t| t.with_timezone(&Utc)),
    })
}

/// Inserts a definition; `None` when the key is taken.
///
/// Errors: INTERNAL.
pub async fn insert(
    db: &impl ConnectionTrait,
    key: &str,
    description: &str,
    variants: &[Variant],
    audience: &str,
) -> AppResult<Option<Experiment>> {
    let variants = serde_json::to_value(variants).map_err(anyhow::Error::new)?;
    let row = db
        .query_one(stmt(
            &format!(
                "INSERT INTO experiments (key, description, variants, audience) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (key) DO NOTHING RETURNING {COLUMNS}"
            ),
            [key.into(), description.into(), variants.into(), audience.into()],
        ))
        .await?;
    row.as_ref().map(experiment).transpose()
}

/// The definition of `key`.
///
/// Errors: INTERNAL.
pub async fn find(db: &impl ConnectionTrait, key: &str) -> AppResult<Option<Experiment>> {
    let row = db.query_one(stmt(&format!("SELECT {COLUMNS} FROM experiments WHERE key = $1"), [key.into()])).await?;
    row.as_ref().map(experiment).transpose()
}

/// Stops a running experiment with an optional winner; `None` when absent or stopped.
///
/// Errors: INTERNAL.
pub async fn stop(db: &impl ConnectionTrait, key: &str, winner: Option<&str>) -> AppResult<Option<Experiment>> {
    let row = db
        .query_one(stmt(
            &format!(
                "UPDATE experiments SET status = 'stopped', stopped_at = now(), winner = $2
                 WHERE key = $1 AND status = 'running' RETURNING {COLUMNS}"
            ),
            [key.into(), winner.map(str::to_owned).into()],
        ))
        .await?;
    row.as_ref().map(experiment).transpose()
}

/// Every definition, the newest first.
///
/// Errors: INTERNAL.
pub async fn list(db: &impl ConnectionTrait) -> AppResult<Vec<Experiment>> {
    let rows =
        db.query_all(stmt(&format!("SELECT {COLUMNS} FROM experiments ORDER BY started_at DESC, key"), [])).await?;
    rows.iter().map(experiment).collect()
}

/// Starts a stopped experiment again (no winner); `None` when absent or running.
///
/// Errors: INTERNAL.
pub async fn restart(db: &impl ConnectionTrait, key: &str) -> AppResult<Option<Experiment>> {
    let row = db
        .query_one(stmt(
            &format!(
                "UPDATE experiments SET status = 'running', stopped_at = NULL, winner = NULL
                 WHERE key = $1 AND status = 'stopped' RETURNING {COLUMNS}"
            ),
            [key.into()],
        ))
        .await?;
    row.as_ref().map(experiment).transpose()
}

/// When the user signed up (its own row, through RLS).
///
/// Errors: INTERNAL.
pub async fn signed_up_at(db: &impl ConnectionTrait, user: Uuid) -> AppResult<Option<DateTime<Utc>>> {
    let row = db.query_one(stmt("SELECT created_at FROM users WHERE id = $1", [user.into()])).await?;
    row.map(|r| Ok(r.try_get::<DateTime<FixedOffset>>("", "created_at")?.with_timezone(&Utc))).transpose()
}

/// The user's recorded variant, if exposed.
///
/// Errors: INTERNAL.
pub async fn assignment(db: &impl ConnectionTrait, user: Uuid, key: &str) -> AppResult<Option<String>> {
    let row = db
        .query_one(stmt(
            "SELECT variant FROM experiment_assignments WHERE user_id = $1 AND experiment_key = $2",
            [user.into(), key.into()],
        ))
        .await?;
    row.map(|r| Ok(r.try_get("", "variant")?)).transpose()
}

/// Records the first exposure, or keeps the one recorded (concurrent first exposures
/// meet on the primary key); the variant recorded.
///
/// Errors: INTERNAL.
pub async fn assign(db: &impl ConnectionTrait, user: Uuid, key: &str, variant: &str) -> AppResult<String> {
    db.execute(stmt(
        "INSERT INTO experiment_assignments (user_id, experiment_key, variant) VALUES ($1, $2, $3)
         ON CONFLICT (user_id, experiment_key) DO NOTHING",
        [user.into(), key.into(), variant.into()],
    ))
    .await?;
    // Read committed: a concurrent first exposure that won is visible to this statement.
    Ok(assignment(db, user, key).await?.unwrap_or_else(|| variant.to_owned()))
}

/// Records a conversion of an exposed user, once per goal; whether the user is exposed.
///
/// Errors: INTERNAL.
pub async fn convert(db: &impl ConnectionTrait, user: Uuid, key: &str, goal: &str) -> AppResult<bool> {
    if assignment(db, user, key).await?.is_none() {
        return Ok(false);
    }
    db.execute(stmt(
        "INSERT INTO experiment_conversions (user_id, experiment_key, goal) VALUES ($1, $2, $3)
         ON CONFLICT (user_id, experiment_key, goal) DO NOTHING",
        [user.into(), key.into(), goal.into()],
    ))
    .await?;
    Ok(true)
}

/// Counts of one variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariantCounts {
    /// The variant.
    pub variant: String,
    /// Its weight.
    pub weight: i32,
    /// Users exposed to it.
    pub exposed: i64,
    /// Of those, converted on the goal.
    pub converted: i64,
}

/// Exposed and converted users per variant, the control first (as `plinth_metrics`).
///
/// Errors: INTERNAL.
pub async fn results(db: &impl ConnectionTrait, key: &str, goal: &str) -> AppResult<Vec<VariantCounts>> {
    let rows =
        db.query_all(stmt("SELECT * FROM metrics.experiment_results($1, $2)", [key.into(), goal.into()])).await?;
    rows.iter()
        .map(|r| {
            Ok(VariantCounts {
                variant: r.try_get("", "variant")?,
                weight: r.try_get("", "weight")?,
                exposed: r.try_get("", "exposed")?,
                converted: r.try_get("", "converted")?,
            })
        })
        .collect()
}

/// The goals tracked for `key` (with a conversion), in order (as `plinth_metrics`).
///
/// Errors: INTERNAL.
pub async fn tracked_goals(db: &impl ConnectionTrait, key: &str) -> AppResult<Vec<String>> {
    let rows = db.query_all(stmt("SELECT goal FROM metrics.experiment_goals($1)", [key.into()])).await?;
    rows.iter().map(|r| Ok(r.try_get("", "goal")?)).collect()
}
