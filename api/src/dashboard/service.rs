//! The caller's dashboard.
use super::store::{self, Summary};
use crate::{db::RequestTx, error::AppResult};

/// Gathers the caller's dashboard in one statement.
///
/// Errors: UNAUTHENTICATED; INTERNAL.
pub async fn summary(tx: &RequestTx) -> AppResult<Summary> {
    store::summary(tx, tx.user_id()?).await
}
