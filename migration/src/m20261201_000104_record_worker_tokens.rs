use sea_orm_migration::prelude::*;

/// Worker tokens can be listed and revoked (issue 12): each one issued by
/// `plinth admin worker-token` is recorded with its kinds, expiry, root key id and the
/// revocation id every instance refuses once it is revoked. Not a tenant table: only the
/// server's own role (the command line, the revocation loader) reaches it.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000104_record_worker_tokens"
    }
}

const SQL: &str = r#"
CREATE TABLE worker_tokens (
  id            uuid PRIMARY KEY,
  kinds         text[] NOT NULL,
  revocation_id text NOT NULL CONSTRAINT worker_tokens_revocation_id_key UNIQUE,
  key_id        integer NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  revoked_at    timestamptz
);
ALTER TABLE worker_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE worker_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY worker_tokens_system ON worker_tokens FOR ALL TO plinth_system USING (true) WITH CHECK (true);
GRANT SELECT, INSERT ON worker_tokens TO plinth_system;
GRANT UPDATE (revoked_at) ON worker_tokens TO plinth_system;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(SQL).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP TABLE IF EXISTS worker_tokens;").await?;
        Ok(())
    }
}
