use crate::rls::{tenant_table, USER_ROLES};
use sea_orm_migration::prelude::*;

/// `plinth import`'s memory: one row per imported record, its kind (`draft`, `photo`,
/// `job`, `job_log`, `marketplace_account`), its id in the folder it came from and the
/// id it has here. Written in the same transaction as the row it maps, so a second run
/// (after a crash, or on purpose) skips exactly what is already there. A tenant table:
/// only the account's own roles read and write it.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000301_create_import_records"
    }
}

const SQL: &str = r#"
CREATE TABLE import_records (
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  kind        text NOT NULL CHECK (kind IN ('draft', 'photo', 'job', 'job_log', 'marketplace_account')),
  original_id text NOT NULL CHECK (length(original_id) BETWEEN 1 AND 200),
  new_id      uuid NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, kind, original_id)
);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(SQL).await?;
        db.execute_unprepared(&tenant_table("import_records", "user_id")).await?;
        db.execute_unprepared(&format!("GRANT SELECT, INSERT ON import_records TO {USER_ROLES};")).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP TABLE IF EXISTS import_records;").await?;
        Ok(())
    }
}
