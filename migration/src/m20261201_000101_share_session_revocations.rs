use sea_orm_migration::prelude::*;

/// Ended sessions are revocations every instance applies (issue 12): the system role
/// reads which sessions ended and when, and nothing else of them, to refuse their
/// access tokens after a start or a Redis outage.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000101_share_session_revocations"
    }
}

const SQL: &str = r#"
CREATE POLICY sessions_revoked ON sessions FOR SELECT TO plinth_system USING (revoked_at IS NOT NULL);
GRANT SELECT (id, revoked_at) ON sessions TO plinth_system;
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
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
            .execute_unprepared(
                "DROP INDEX IF EXISTS sessions_revoked_at_idx;
                 REVOKE SELECT (id, revoked_at) ON sessions FROM plinth_system;
                 DROP POLICY IF EXISTS sessions_revoked ON sessions;",
            )
            .await?;
        Ok(())
    }
}
