//! GraphQL adapter for experiments. Clients (signed-in users, not API tokens) ask for
//! their variant and track conversions; administrators define, stop and read results.
use super::{service, store};
use crate::{
    auth::guards::{NoApiTokens, SignedIn, Staff},
    db::{data, RequestTx},
    model::Role,
};
use async_graphql::{ComplexObject, Context, Enum, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

/// Who an experiment applies to.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ExperimentAudience {
    /// Every signed-in user.
    All,
    /// Users who signed up after the experiment started; others get the control and
    /// are not counted.
    NewUsers,
}

/// Whether an experiment still assigns users.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ExperimentStatus {
    /// Assigning and counting conversions.
    Running,
    /// Everybody gets the winner (or the control); results are frozen.
    Stopped,
}

/// One variant and its relative weight.
#[derive(InputObject, SimpleObject, Clone, Debug)]
#[graphql(input_name = "ExperimentVariantInput")]
pub struct ExperimentArm {
    /// Unique in the experiment: 1 to 64 of a-z, 0-9, `_`, `-`, `.`.
    pub name: String,
    /// Share of the audience relative to the other weights, 0 to 10000.
    pub weight: i32,
}

/// A new experiment.
#[derive(InputObject, Debug)]
pub struct CreateExperimentInput {
    /// Its key, the one clients ask for: 1 to 64 of a-z, 0-9, `_`, `-`, `.`.
    pub key: String,
    /// What it tests (at most 500 characters).
    #[graphql(default)]
    pub description: String,
    /// 2 to 10 variants; the first is the control.
    pub variants: Vec<ExperimentArm>,
    /// Who takes part.
    #[graphql(default_with = "ExperimentAudience::All")]
    pub audience: ExperimentAudience,
}

/// An experiment's definition (administrators read it).
#[derive(SimpleObject, Debug)]
#[graphql(complex)]
pub struct Experiment {
    /// Its key.
    pub key: String,
    /// What it tests.
    pub description: String,
    /// Its variants, the control first.
    pub variants: Vec<ExperimentArm>,
    /// Who takes part.
    pub audience: ExperimentAudience,
    /// Running or stopped.
    pub status: ExperimentStatus,
    /// Once stopped, the variant everybody gets (null: the control).
    pub winner: Option<String>,
    /// When it was created, and started (a restart keeps this time).
    pub started_at: DateTime<Utc>,
    /// When it stopped (null while running).
    pub stopped_at: Option<DateTime<Utc>>,
}

#[ComplexObject]
impl Experiment {
    /// Its results as CSV, every goal (derived and tracked) per variant: the path of
    /// the admin export, relative to the API's origin, fetched with the administrator's
    /// bearer token (`GET /admin/metrics/experimentResults.csv?key=...`). The same
    /// numbers as `experimentResults(key, goal)`.
    async fn results_csv_path(&self) -> String {
        format!("/admin/metrics/experimentResults.csv?key={}", self.key)
    }
}

impl From<store::Experiment> for Experiment {
    fn from(e: store::Experiment) -> Self {
        Experiment {
            key: e.key,
            description: e.description,
            variants: e.variants.into_iter().map(|v| ExperimentArm { name: v.name, weight: v.weight }).collect(),
            audience: if e.audience == "new_users" { ExperimentAudience::NewUsers } else { ExperimentAudience::All },
            status: if e.status == "running" { ExperimentStatus::Running } else { ExperimentStatus::Stopped },
            winner: e.winner,
            started_at: e.started_at,
            stopped_at: e.stopped_at,
        }
    }
}

/// The variant a client shows.
#[derive(SimpleObject, Debug)]
pub struct ExperimentExposure {
    /// The experiment's key.
    pub key: String,
    /// The variant to show.
    pub variant: String,
    /// Whether the caller counts in the results (false outside the audience).
    pub in_experiment: bool,
    /// Running or stopped.
    pub status: ExperimentStatus,
}

/// One variant's results on a goal. The comparison fields are null for the control
/// and when either group is empty; `zScore` and `pValue` also when neither group varies.
#[derive(SimpleObject, Debug)]
pub struct VariantResult {
    /// The variant.
    pub variant: String,
    /// Its weight.
    pub weight: i32,
    /// Users assigned to it.
    pub exposed: i64,
    /// Of those, users who reached the goal.
    pub converted: i64,
    /// converted ÷ exposed (null when nobody was exposed).
    pub rate: Option<f64>,
    /// rate − the control's rate.
    pub difference: Option<f64>,
    /// Lower bound of the 95 % confidence interval of the difference (Wald).
    pub ci_low: Option<f64>,
    /// Upper bound of it.
    pub ci_high: Option<f64>,
    /// Two-proportion z statistic (pooled), against the control.
    pub z_score: Option<f64>,
    /// Its two-sided p-value.
    pub p_value: Option<f64>,
}

/// Results of an experiment on one goal.
#[derive(SimpleObject, Debug)]
pub struct ExperimentResults {
    /// The experiment.
    pub experiment: Experiment,
    /// The goal counted.
    pub goal: String,
    /// Per variant, the control first.
    pub variants: Vec<VariantResult>,
}

/// Experiments: the client's side.
#[derive(Default)]
pub struct ExperimentsQuery;

#[Object]
impl ExperimentsQuery {
    /// The caller's variant of experiment `key`, recorded at the first call (sticky);
    /// null when there is no such experiment (show the default experience).
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn experiment_variant(&self, ctx: &Context<'_>, key: String) -> Result<Option<ExperimentExposure>> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(service::variant(tx, &key).await?.map(|x| ExperimentExposure {
            key,
            variant: x.variant,
            in_experiment: x.in_experiment,
            status: if x.running { ExperimentStatus::Running } else { ExperimentStatus::Stopped },
        }))
    }

    /// Every experiment, the newest first, running and stopped, with its variants and
    /// status. Admin only.
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn experiments(&self, ctx: &Context<'_>) -> Result<Vec<Experiment>> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(service::list(tx).await?.into_iter().map(Into::into).collect())
    }

    /// Results of experiment `key` on `goal`: a goal tracked with `trackConversion`, or
    /// `verified`, `first_job`, `paid` (derived from the data, after the exposure).
    /// Admin only.
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn experiment_results(&self, ctx: &Context<'_>, key: String, goal: String) -> Result<ExperimentResults> {
        let tx = data::<RequestTx>(ctx)?;
        let (e, rows) = service::results(tx, &key, &goal).await?;
        let variants = rows
            .into_iter()
            .map(|r| {
                let rate = r.rate();
                let c = r.comparison;
                VariantResult {
                    variant: r.counts.variant,
                    weight: r.counts.weight,
                    exposed: r.counts.exposed,
                    converted: r.counts.converted,
                    rate,
                    difference: c.map(|c| c.difference),
                    ci_low: c.map(|c| c.ci_low),
                    ci_high: c.map(|c| c.ci_high),
                    z_score: c.and_then(|c| c.z),
                    p_value: c.and_then(|c| c.p_value),
                }
            })
            .collect();
        Ok(ExperimentResults { experiment: e.into(), goal, variants })
    }
}

/// Experiments: definitions (admin) and conversions (users).
#[derive(Default)]
pub struct ExperimentsMutation;

#[Object]
impl ExperimentsMutation {
    /// Defines an experiment, running from now. Admin only.
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn create_experiment(&self, ctx: &Context<'_>, input: CreateExperimentInput) -> Result<Experiment> {
        let tx = data::<RequestTx>(ctx)?;
        let audience = match input.audience {
            ExperimentAudience::All => service::Audience::All,
            ExperimentAudience::NewUsers => service::Audience::NewUsers,
        };
        let variants = input.variants.into_iter().map(|v| store::Variant { name: v.name, weight: v.weight }).collect();
        Ok(service::create(tx, &input.key, &input.description, variants, audience).await?.into())
    }

    /// Stops a running experiment: everybody gets `winner` (the control when null);
    /// assignments and conversions are kept. Admin only.
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn stop_experiment(&self, ctx: &Context<'_>, key: String, winner: Option<String>) -> Result<Experiment> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(service::stop(tx, &key, winner.as_deref()).await?.into())
    }

    /// Starts a stopped experiment again, with no winner: users keep the variants they
    /// were assigned; new users are assigned as before. Admin only.
    ///
    /// Errors: NOT_FOUND, CONFLICT (it is running), FORBIDDEN.
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn start_experiment(&self, ctx: &Context<'_>, key: String) -> Result<Experiment> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(service::start(tx, &key).await?.into())
    }

    /// Records that the caller reached `goal` in experiment `experiment`, at most once
    /// per goal (repeats are no-ops). True when the caller is in the experiment, false
    /// when never exposed to it or when it is stopped.
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn track_conversion(&self, ctx: &Context<'_>, experiment: String, goal: String) -> Result<bool> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(service::track(tx, &experiment, &goal).await?)
    }
}
