//! What a signed-in account may use now: its plan, its account state and the plan's
//! limits. Session tokens carry them (issued at sign-in and refresh); API tokens live
//! for months, so theirs are read for each request.
use super::store;
use crate::{
    catalog::Catalog,
    db::RequestTx,
    error::{AppError, AppResult},
    model::{AccountState, PlanCode},
    principal::{Limits, Principal},
};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

/// A plan, an account state and the plan's limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entitlements {
    /// The plan.
    pub plan: PlanCode,
    /// The account state.
    pub state: AccountState,
    /// The plan's limits.
    pub limits: Limits,
}

/// The account's entitlements now.
///
/// Errors: UNAUTHENTICATED when the account no longer exists; INTERNAL otherwise.
pub async fn current(db: &impl ConnectionTrait, catalog: &Catalog, user_id: Uuid) -> AppResult<Entitlements> {
    let (plan, state) = store::plan_and_state(db, user_id).await?;
    Ok(Entitlements { plan, state, limits: catalog.plan(plan).quotas.limits() })
}

/// Completes an API token's principal with its account's entitlements, read in the
/// request's own transaction; other principals are left as they are. Call it right
/// after `RequestTx::begin`, before the handle is shared.
///
/// Errors: UNAUTHENTICATED when the account no longer exists; INTERNAL otherwise.
pub async fn complete(tx: &mut RequestTx, catalog: &Catalog) -> AppResult<()> {
    let Some(user_id) = tx.principal().api().and(tx.principal().user_id()) else { return Ok(()) };
    let e = current(&*tx, catalog, user_id).await?;
    tx.update_principal(|p| {
        if let Principal::User(c) = p {
            c.plan = e.plan;
            c.account_state = e.state;
            c.quotas = e.limits;
        }
    })
    .map_err(AppError::Internal)
}
