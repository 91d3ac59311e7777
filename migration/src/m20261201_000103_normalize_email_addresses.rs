use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

/// One address, one account (issue 12): addresses stored before every entry point
/// normalized them (`crate::normalize::email_address`: NFC, IDNA domain, lower case)
/// are normalized in place. When two accounts normalize to one address, the older keeps
/// it and the newer is left as it was (and logged): merging accounts is a person's call.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000103_normalize_email_addresses"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let rows = db
            .query_all(Statement::from_string(
                DbBackend::Postgres,
                "SELECT id::text AS id, email::text AS email FROM users ORDER BY created_at, id",
            ))
            .await?;
        for row in rows {
            let id: String = row.try_get("", "id")?;
            let email: String = row.try_get("", "email")?;
            let Some(normal) = crate::normalize::email_address(&email) else { continue };
            if normal == email {
                continue;
            }
            let changed = db
                .execute(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "UPDATE users SET email = $2 WHERE id = $1::uuid AND NOT EXISTS (SELECT 1 FROM users WHERE email = $2)",
                    [id.clone().into(), normal.into()],
                ))
                .await?;
            if changed.rows_affected() == 0 {
                println!("m20261201_000103: user {id} keeps its address: another account has its normal form");
            }
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // The original spellings are not kept: normalized addresses stay.
        Ok(())
    }
}
