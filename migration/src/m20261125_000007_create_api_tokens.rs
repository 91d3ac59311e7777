use crate::rls::{tenant_table, USER_ROLES};
use sea_orm_migration::prelude::*;

/// API tokens for integrators: the token itself is a biscuit shown once; this row keeps
/// its name, scopes and revocation id so it can be listed and revoked.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000007_create_api_tokens"
    }
}

const SQL: &str = r#"
CREATE TABLE api_tokens (
  id            uuid NOT NULL,
  user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  scopes        text[] NOT NULL,
  revocation_id text NOT NULL CONSTRAINT api_tokens_revocation_key UNIQUE,
  expires_at    timestamptz NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_used_at  timestamptz,
  revoked_at    timestamptz,
  PRIMARY KEY (user_id, id)
);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(SQL).await?;
        db.execute_unprepared(&tenant_table("api_tokens", "user_id")).await?;
        db.execute_unprepared(&format!(
            "GRANT SELECT, INSERT ON api_tokens TO {USER_ROLES};
             GRANT UPDATE (last_used_at, revoked_at) ON api_tokens TO {USER_ROLES};
             -- Every instance loads the revoked tokens that have not expired yet at start.
             CREATE POLICY api_tokens_revoked ON api_tokens FOR SELECT TO plinth_system
               USING (revoked_at IS NOT NULL AND expires_at > now());
             GRANT SELECT (revocation_id, revoked_at, expires_at) ON api_tokens TO plinth_system;"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP TABLE IF EXISTS api_tokens;").await?;
        Ok(())
    }
}
