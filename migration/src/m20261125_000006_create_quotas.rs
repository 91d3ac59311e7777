use crate::rls::{tenant_table, USER_ROLES};
use sea_orm_migration::prelude::*;

/// Quota usage per user, metric and billing period, and the threshold notices already
/// sent for a period (80% and 100%, once each).
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000006_create_quotas"
    }
}

const SQL: &str = r#"
CREATE TABLE quota_usage (
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  metric       text NOT NULL CHECK (metric IN ('scans', 'preparations')),
  period_start timestamptz NOT NULL,
  used         bigint NOT NULL CHECK (used >= 0),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, metric, period_start)
);

CREATE TABLE quota_notices (
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  metric       text NOT NULL,
  period_start timestamptz NOT NULL,
  threshold    int NOT NULL CHECK (threshold IN (80, 100)),
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, metric, period_start, threshold)
);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(SQL).await?;
        for table in ["quota_usage", "quota_notices"] {
            db.execute_unprepared(&tenant_table(table, "user_id")).await?;
        }
        db.execute_unprepared(&format!(
            "GRANT SELECT, INSERT ON quota_usage, quota_notices TO {USER_ROLES};
             GRANT UPDATE (used, updated_at) ON quota_usage TO {USER_ROLES};"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP TABLE IF EXISTS quota_notices, quota_usage;").await?;
        Ok(())
    }
}
