use crate::rls::{tenant_table, USER_ROLES};
use sea_orm_migration::prelude::*;

/// GDPR data exports: one row per `exportMyData` request, built by a server task into
/// an archive kept in the object store (outside the user's photo prefix) until it
/// expires. A tenant table: the owner reads and requests its exports; the builder and
/// the sweeper (plinth_system) reach every user's rows only through the two functions
/// below, which hand out ids, and then act as the owner.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000301_create_data_exports"
    }
}

const SQL: &str = r#"
CREATE TABLE data_exports (
  id           uuid NOT NULL,
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  status       text NOT NULL DEFAULT 'pending'
               CHECK (status IN ('pending', 'running', 'ready', 'failed', 'expired')),
  object_key   text,
  byte_size    bigint,
  counts       jsonb NOT NULL DEFAULT '{}'::jsonb,
  error        text,
  attempts     int NOT NULL DEFAULT 0,
  leased_until timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz,
  expires_at   timestamptz,
  PRIMARY KEY (user_id, id)
);
-- One export in progress per user: a second request finds the first.
CREATE UNIQUE INDEX data_exports_one_in_progress ON data_exports (user_id) WHERE status IN ('pending', 'running');
CREATE INDEX data_exports_user_created_idx ON data_exports (user_id, created_at DESC, id DESC);
CREATE INDEX data_exports_due_idx ON data_exports (created_at) WHERE status IN ('pending', 'running');
CREATE INDEX data_exports_expiry_idx ON data_exports (expires_at) WHERE status = 'ready';

-- The builders' claim: pending exports (and running ones whose lease lapsed), leased
-- for `lease_ms`; ids only.
CREATE FUNCTION priv.data_exports_claim(batch int, lease_ms bigint)
  RETURNS TABLE (user_id uuid, id uuid)
  LANGUAGE sql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
    UPDATE public.data_exports e
       SET status = 'running', attempts = e.attempts + 1, updated_at = now(),
           leased_until = now() + make_interval(secs => lease_ms / 1000.0)
      FROM (SELECT q.user_id, q.id FROM public.data_exports q
             WHERE q.status = 'pending' OR (q.status = 'running' AND q.leased_until < now())
             ORDER BY q.created_at
             LIMIT least(greatest(batch, 1), 100)
             FOR UPDATE SKIP LOCKED) due
     WHERE e.user_id = due.user_id AND e.id = due.id
    RETURNING e.user_id, e.id
  $$;
-- The sweeper's list: ready exports past their expiry at `at`, ids only.
CREATE FUNCTION priv.data_exports_expired(at timestamptz, batch int)
  RETURNS TABLE (user_id uuid, id uuid)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
    SELECT e.user_id, e.id FROM public.data_exports e
     WHERE e.status = 'ready' AND e.expires_at <= at
     ORDER BY e.expires_at LIMIT least(greatest(batch, 1), 500)
  $$;
REVOKE ALL ON FUNCTION priv.data_exports_claim(int, bigint), priv.data_exports_expired(timestamptz, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION priv.data_exports_claim(int, bigint), priv.data_exports_expired(timestamptz, int)
  TO plinth_system;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(SQL).await?;
        db.execute_unprepared(&tenant_table("data_exports", "user_id")).await?;
        db.execute_unprepared(&format!(
            "GRANT SELECT, INSERT ON data_exports TO {USER_ROLES};
             GRANT UPDATE (status, object_key, byte_size, counts, error, leased_until, updated_at, completed_at,
                           expires_at) ON data_exports TO {USER_ROLES};"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP FUNCTION IF EXISTS priv.data_exports_claim(int, bigint), priv.data_exports_expired(timestamptz, int);
                 DROP TABLE IF EXISTS data_exports;",
            )
            .await?;
        Ok(())
    }
}
