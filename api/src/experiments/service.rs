//! Experiments without GraphQL: definitions (administrators with a session), the
//! deterministic assignment, conversions, and results compared with the control.
use super::{
    stats::{self, Comparison, Sample},
    store::{self, Experiment, Variant},
};
use crate::{
    db::RequestTx,
    error::{AppError, AppResult},
    model::{DbRole, Role},
    principal::Principal,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Goals derived from the data rather than tracked: verified address, first successful
/// job, paying subscription (each after the exposure).
pub const DERIVED_GOALS: [&str; 3] = ["verified", "first_job", "paid"];
/// Largest weight of one variant.
pub const MAX_WEIGHT: i32 = 10_000;

/// Who may see an experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Every signed-in user.
    All,
    /// Users who signed up after the experiment started; others get the control,
    /// unrecorded.
    NewUsers,
}

impl Audience {
    fn sql(self) -> &'static str {
        match self {
            Audience::All => "all",
            Audience::NewUsers => "new_users",
        }
    }
}

/// What a client gets for an experiment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exposure {
    /// The variant to show.
    pub variant: String,
    /// Whether the user counts in the results (assigned); false outside the audience,
    /// or for a stopped experiment the user never saw.
    pub in_experiment: bool,
    /// The experiment is running.
    pub running: bool,
}

/// One variant's results.
#[derive(Clone, Debug, PartialEq)]
pub struct VariantResult {
    /// Counts from PostgreSQL.
    pub counts: store::VariantCounts,
    /// Against the control (`None` for the control itself, or an empty group).
    pub comparison: Option<Comparison>,
}

impl VariantResult {
    /// converted ÷ exposed (`None` when nobody was exposed).
    pub fn rate(&self) -> Option<f64> {
        Sample { exposed: self.counts.exposed, converted: self.counts.converted }.rate()
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    (1..=64).contains(&s.len())
        && chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'))
}

fn check_name(field: &str, s: &str) -> AppResult<()> {
    if is_name(s) {
        Ok(())
    } else {
        Err(AppError::bad_input(field, "1 to 64 of a-z, 0-9, '_', '-', '.', starting with a letter or digit"))
    }
}

fn admin(tx: &RequestTx) -> AppResult<Uuid> {
    match tx.principal() {
        Principal::User(c) if c.api.is_none() && c.role == Role::Admin => Ok(c.user_id),
        Principal::User(_) => Err(AppError::Forbidden("only administrators may manage experiments".into())),
        _ => Err(AppError::Unauthenticated("sign in to do this".into())),
    }
}

fn user(tx: &RequestTx) -> AppResult<Uuid> {
    match tx.principal() {
        Principal::User(c) if c.api.is_none() => Ok(c.user_id),
        Principal::User(_) => Err(AppError::Forbidden("experiments are for the signed-in app, not API tokens".into())),
        _ => Err(AppError::Unauthenticated("sign in to do this".into())),
    }
}

/// The variant of `user` in `experiment` by weight: the first 8 bytes of
/// SHA-256(key, NUL, user id) as a big-endian integer, modulo the total weight, falls in
/// one variant's cumulative range. The same on every instance and after restarts.
pub fn pick<'v>(key: &str, user: Uuid, variants: &'v [Variant]) -> Option<&'v Variant> {
    let total: u64 = variants.iter().map(|v| u64::try_from(v.weight).unwrap_or(0)).sum();
    if total == 0 {
        return None;
    }
    let digest = Sha256::new().chain_update(key.as_bytes()).chain_update([0]).chain_update(user.as_bytes()).finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    let mut at = u64::from_be_bytes(head) % total;
    variants.iter().find(|v| {
        let w = u64::try_from(v.weight).unwrap_or(0);
        if at < w {
            true
        } else {
            at -= w;
            false
        }
    })
}

/// Defines an experiment, running from now.
///
/// Errors: UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT (key, names, weights,
/// description), CONFLICT (key taken), INTERNAL.
pub async fn create(
    tx: &RequestTx,
    key: &str,
    description: &str,
    variants: Vec<Variant>,
    audience: Audience,
) -> AppResult<Experiment> {
    admin(tx)?;
    check_name("input.key", key)?;
    if description.chars().count() > 500 || description.chars().any(char::is_control) {
        return Err(AppError::bad_input("input.description", "at most 500 characters, no control characters"));
    }
    if !(2..=10).contains(&variants.len()) {
        return Err(AppError::bad_input("input.variants", "2 to 10 variants, the control first"));
    }
    for (i, v) in variants.iter().enumerate() {
        check_name(&format!("input.variants.{i}.name"), &v.name)?;
        if !(0..=MAX_WEIGHT).contains(&v.weight) {
            return Err(AppError::bad_input(&format!("input.variants.{i}.weight"), "between 0 and 10000"));
        }
        if variants[..i].iter().any(|w| w.name == v.name) {
            return Err(AppError::bad_input(&format!("input.variants.{i}.name"), "names must be unique"));
        }
    }
    if variants.iter().all(|v| v.weight == 0) {
        return Err(AppError::bad_input("input.variants", "at least one weight must be above 0"));
    }
    store::insert(tx, key, description, &variants, audience.sql())
        .await?
        .ok_or_else(|| AppError::Conflict("an experiment with this key exists".into()))
}

/// Stops a running experiment; from then on everybody gets `winner` (the control when
/// none). Assignments and conversions are kept for the results.
///
/// Errors: UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, BAD_USER_INPUT (winner), CONFLICT
/// (already stopped), INTERNAL.
pub async fn stop(tx: &RequestTx, key: &str, winner: Option<&str>) -> AppResult<Experiment> {
    admin(tx)?;
    let e = store::find(tx, key).await?.ok_or_else(|| AppError::NotFound("no such experiment".into()))?;
    if let Some(w) = winner {
        if !e.variants.iter().any(|v| v.name == w) {
            return Err(AppError::bad_input("winner", "not a variant of this experiment"));
        }
    }
    store::stop(tx, key, winner).await?.ok_or_else(|| AppError::Conflict("the experiment is already stopped".into()))
}

/// Every experiment, the newest first.
///
/// Errors: UNAUTHENTICATED, FORBIDDEN, INTERNAL.
pub async fn list(tx: &RequestTx) -> AppResult<Vec<Experiment>> {
    admin(tx)?;
    store::list(tx).await
}

/// Starts a stopped experiment again: it assigns and counts conversions as before,
/// with the assignments it kept (a user keeps its variant), no winner. Its start time
/// stays, so its results count derived goals (verified, first job, paid) reached while
/// it was stopped too.
///
/// Errors: UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, CONFLICT (running), INTERNAL.
pub async fn start(tx: &RequestTx, key: &str) -> AppResult<Experiment> {
    admin(tx)?;
    store::find(tx, key).await?.ok_or_else(|| AppError::NotFound("no such experiment".into()))?;
    store::restart(tx, key).await?.ok_or_else(|| AppError::Conflict("the experiment is running".into()))
}

/// The goals an experiment's results can be read on: the derived ones, then those
/// tracked for it (with at least one conversion), counted as `plinth_metrics`.
///
/// Errors: UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, INTERNAL.
pub async fn goals(tx: &RequestTx, key: &str) -> AppResult<Vec<String>> {
    let admin = admin(tx)?;
    store::find(tx, key).await?.ok_or_else(|| AppError::NotFound("no such experiment".into()))?;
    let tracked = tx.acting_as(DbRole::Metrics, Some(admin), store::tracked_goals(tx, key)).await?;
    Ok(DERIVED_GOALS.iter().map(|g| (*g).to_owned()).chain(tracked).collect())
}

/// The caller's variant; `None` when there is no such experiment. Running: the
/// recorded variant, else (inside the audience) the hashed one, recorded now; outside
/// the audience the control, unrecorded. Stopped: the winner (the control when none).
///
/// Errors: UNAUTHENTICATED, FORBIDDEN (API tokens), INTERNAL.
pub async fn variant(tx: &RequestTx, key: &str) -> AppResult<Option<Exposure>> {
    let user = user(tx)?;
    if !is_name(key) {
        return Ok(None);
    }
    let Some(e) = store::find(tx, key).await? else { return Ok(None) };
    let control = e.variants.first().map(|v| v.name.clone()).unwrap_or_default();
    let assigned = store::assignment(tx, user, key).await?;
    if e.status != "running" {
        let variant = e.winner.clone().unwrap_or(control);
        return Ok(Some(Exposure { variant, in_experiment: assigned.is_some(), running: false }));
    }
    if let Some(variant) = assigned {
        return Ok(Some(Exposure { variant, in_experiment: true, running: true }));
    }
    if e.audience == "new_users" {
        let signed_up = store::signed_up_at(tx, user).await?;
        if signed_up.is_none_or(|t| t < e.started_at) {
            return Ok(Some(Exposure { variant: control, in_experiment: false, running: true }));
        }
    }
    let picked = pick(key, user, &e.variants).map_or(control, |v| v.name.clone());
    let variant = store::assign(tx, user, key, &picked).await?;
    Ok(Some(Exposure { variant, in_experiment: true, running: true }))
}

/// Records that the caller reached `goal` in a running experiment, once per
/// (experiment, user, goal); true when the caller is in the experiment (recorded now or
/// before), false when never exposed or the experiment is stopped.
///
/// Errors: UNAUTHENTICATED, FORBIDDEN (API tokens), NOT_FOUND, BAD_USER_INPUT (goal
/// malformed or derived), INTERNAL.
pub async fn track(tx: &RequestTx, key: &str, goal: &str) -> AppResult<bool> {
    let user = user(tx)?;
    check_name("goal", goal)?;
    if DERIVED_GOALS.contains(&goal) {
        return Err(AppError::bad_input("goal", "verified, first_job and paid are derived from the data"));
    }
    let e = store::find(tx, key).await?.ok_or_else(|| AppError::NotFound("no such experiment".into()))?;
    if e.status != "running" {
        return Ok(false);
    }
    store::convert(tx, user, key, goal).await
}

/// Each variant's counts on `goal` and its comparison with the control (the first),
/// counted in PostgreSQL as `plinth_metrics` for the administrator.
///
/// Errors: UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, BAD_USER_INPUT (goal), INTERNAL.
pub async fn results(tx: &RequestTx, key: &str, goal: &str) -> AppResult<(Experiment, Vec<VariantResult>)> {
    let admin = admin(tx)?;
    check_name("goal", goal)?;
    let e = store::find(tx, key).await?.ok_or_else(|| AppError::NotFound("no such experiment".into()))?;
    let counts = tx.acting_as(DbRole::Metrics, Some(admin), store::results(tx, key, goal)).await?;
    let control = counts.first().map(|c| Sample { exposed: c.exposed, converted: c.converted });
    let rows = counts
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let sample = Sample { exposed: c.exposed, converted: c.converted };
            let comparison = if i == 0 { None } else { control.and_then(|k| stats::compare(k, sample)) };
            VariantResult { counts: c, comparison }
        })
        .collect();
    Ok((e, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_is_stable_and_follows_weights() {
        let variants = vec![Variant { name: "a".into(), weight: 1 }, Variant { name: "b".into(), weight: 3 }];
        let user = Uuid::from_u128(42);
        assert_eq!(pick("k", user, &variants), pick("k", user, &variants));
        let b = (0..4000u128).filter(|i| pick("k", Uuid::from_u128(*i), &variants).unwrap().name == "b").count();
        assert!((2800..3200).contains(&b), "{b}");
        let none = vec![Variant { name: "a".into(), weight: 0 }, Variant { name: "b".into(), weight: 0 }];
        assert!(pick("k", user, &none).is_none());
    }

    #[test]
    fn names_are_checked() {
        assert!(is_name("checkout-v2.button_color"));
        for bad in ["", "-x", "X", "a b", &"a".repeat(65)] {
            assert!(!is_name(bad), "{bad}");
        }
    }
}
