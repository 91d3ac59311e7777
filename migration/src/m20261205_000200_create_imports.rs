use crate::rls::{tenant_table, USER_ROLES};
use sea_orm_migration::prelude::*;

/// Imports started from the web app (issue 19, item 3): one row per run of an uploaded
/// zip of an import folder, its state (`queued`, `running`, `succeeded`, `failed`), its
/// progress, counts per file and report. At most one queued or running import per
/// account (`imports_one_active`, a partial unique index: a second start is a unique
/// violation, CONFLICT). The server running an import holds a lease (`leased_until`)
/// that it extends while it works; an import whose lease lapsed was stopped by a
/// server that went away, and `priv.imports_fail_stale` (the sweeper, as
/// `plinth_system`) marks it failed so it can be started again (the mapping table
/// `import_records` makes that run import only what is missing). A tenant table: only
/// the account's own roles read and write it.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261205_000200_create_imports"
    }
}

const SQL: &str = r#"
CREATE TABLE imports (
  user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  id            uuid NOT NULL,
  upload_id     uuid NOT NULL,
  file_name     text NOT NULL CHECK (length(file_name) BETWEEN 1 AND 255),
  byte_size     bigint NOT NULL CHECK (byte_size >= 0),
  status        text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
  records_done  integer NOT NULL DEFAULT 0,
  records_total integer NOT NULL DEFAULT 0,
  counts        jsonb NOT NULL DEFAULT '[]',
  rejected      integer NOT NULL DEFAULT 0,
  report        jsonb,
  report_text   text,
  error         text CHECK (length(error) <= 2000),
  leased_until  timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  started_at    timestamptz,
  finished_at   timestamptz,
  PRIMARY KEY (user_id, id)
);
CREATE UNIQUE INDEX imports_one_active ON imports (user_id) WHERE status IN ('queued', 'running');
CREATE INDEX imports_stale ON imports (leased_until) WHERE status IN ('queued', 'running');
-- The sweeper: imports whose server went away (lease lapsed) end failed, resumable.
CREATE FUNCTION priv.imports_fail_stale(batch int)
  RETURNS TABLE (user_id uuid, id uuid)
  LANGUAGE sql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
    UPDATE public.imports i
       SET status = 'failed', leased_until = NULL, updated_at = now(), finished_at = now(),
           error = 'the server stopped during the import; start it again to import what is missing'
      FROM (SELECT q.user_id, q.id FROM public.imports q
             WHERE q.status IN ('queued', 'running') AND q.leased_until < now()
             ORDER BY q.leased_until
             LIMIT least(greatest(batch, 1), 500)
             FOR UPDATE SKIP LOCKED) due
     WHERE i.user_id = due.user_id AND i.id = due.id
    RETURNING i.user_id, i.id
  $$;
REVOKE ALL ON FUNCTION priv.imports_fail_stale(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION priv.imports_fail_stale(int) TO plinth_system;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(SQL).await?;
        db.execute_unprepared(&tenant_table("imports", "user_id")).await?;
        db.execute_unprepared(&format!(
            "GRANT SELECT, INSERT ON imports TO {USER_ROLES};
             GRANT UPDATE (status, records_done, records_total, counts, rejected, report, report_text, error,
                           leased_until, updated_at, started_at, finished_at) ON imports TO {USER_ROLES};"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP FUNCTION IF EXISTS priv.imports_fail_stale(int);
                 DROP TABLE IF EXISTS imports;",
            )
            .await?;
        Ok(())
    }
}
