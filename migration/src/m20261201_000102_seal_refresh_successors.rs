use sea_orm_migration::prelude::*;

/// Two refreshes in flight (two tabs, a retry) must not sign the user out (issue 12): a
/// spent refresh token keeps, for a short grace interval, the successor pair it was
/// exchanged for, sealed with the server's secret box (refresh tokens themselves are
/// stored only hashed), so a second presentation within the interval gets the same pair.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000102_seal_refresh_successors"
    }
}

const SQL: &str = r#"
ALTER TABLE refresh_tokens ADD COLUMN successor_sealed bytea;
GRANT UPDATE (successor_sealed) ON refresh_tokens TO plinth_user, plinth_support, plinth_admin;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(SQL).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE refresh_tokens DROP COLUMN IF EXISTS successor_sealed;")
            .await?;
        Ok(())
    }
}
