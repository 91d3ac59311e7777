use sea_orm_migration::prelude::*;

/// Background tasks that only one instance may run per interval (the grace sweeper,
/// later reminders and reconciliation) claim each interval by updating their row here;
/// not a tenant table: only the system role reads or writes it, under a policy of its own.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261129_000008_create_scheduled_tasks"
    }
}

const SQL: &str = r#"
CREATE TABLE scheduled_tasks (
  name              text PRIMARY KEY,
  last_started_at   timestamptz NOT NULL,
  last_succeeded_at timestamptz
);
ALTER TABLE scheduled_tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE scheduled_tasks FORCE ROW LEVEL SECURITY;
CREATE POLICY scheduled_tasks_system ON scheduled_tasks FOR ALL TO plinth_system USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE ON scheduled_tasks TO plinth_system;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(SQL).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP TABLE IF EXISTS scheduled_tasks;").await?;
        Ok(())
    }
}
