//! The statements of `import_records`, the mapping of original ids to ids here.
use super::format::Kind;
use crate::error::AppResult;
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use std::collections::HashSet;
use uuid::Uuid;

/// Every (kind, original id) the user imported before.
///
/// Errors: INTERNAL (database).
pub async fn imported(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<HashSet<(Kind, String)>> {
    let rows = db
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT kind, original_id FROM import_records WHERE user_id = $1",
            [user_id.into()],
        ))
        .await?;
    let mut out = HashSet::with_capacity(rows.len());
    for r in rows {
        let kind: String = r.try_get("", "kind")?;
        if let Some(kind) = Kind::parse(&kind) {
            out.insert((kind, r.try_get("", "original_id")?));
        }
    }
    Ok(out)
}

/// Records that `pairs` (original id, new id) of `kind` were imported, in the
/// transaction that inserts their rows. A pair recorded already is a unique violation:
/// two imports of the same folder ran at once, and this one's batch rolls back.
///
/// Errors: INTERNAL (database).
pub async fn record(db: &impl ConnectionTrait, user_id: Uuid, kind: Kind, pairs: &[(String, Uuid)]) -> AppResult<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let mut sql = String::from("INSERT INTO import_records (user_id, kind, original_id, new_id) VALUES ");
    let mut values: Vec<Value> = Vec::with_capacity(pairs.len() * 2 + 2);
    values.push(user_id.into());
    values.push(kind.as_str().into());
    for (i, (original, new)) in pairs.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("($1, $2, ${}, ${})", 3 + 2 * i, 4 + 2 * i));
        values.push(original.clone().into());
        values.push((*new).into());
    }
    db.execute(Statement::from_sql_and_values(DbBackend::Postgres, sql, values)).await?;
    Ok(())
}
