use crate::rls::{app_role, tenant_table, USER_ROLES};
use sea_orm_migration::prelude::*;

/// Jobs (scan, prepare, publish) with their logs, the worker role's narrow view of
/// them, and the two cross-tenant functions of the queue: claim and requeue.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000004_create_jobs"
    }
}

const SQL: &str = r#"
CREATE TABLE jobs (
  id               uuid NOT NULL,
  user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  kind             text NOT NULL CHECK (kind IN ('scan', 'prepare', 'publish')),
  status           text NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
  draft_id         uuid,
  progress         double precision NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
  message          text,
  input            jsonb NOT NULL DEFAULT '{}'::jsonb,
  result           jsonb,
  error            text,
  attempts         int NOT NULL DEFAULT 0,
  max_attempts     int NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 20),
  run_after        timestamptz NOT NULL DEFAULT now(),
  lease_expires_at timestamptz,
  worker_id        uuid,
  cancel_requested boolean NOT NULL DEFAULT false,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  finished_at      timestamptz,
  PRIMARY KEY (user_id, id),
  FOREIGN KEY (user_id, draft_id) REFERENCES drafts (user_id, id) ON DELETE SET NULL (draft_id)
);
CREATE INDEX jobs_user_created_idx ON jobs (user_id, created_at DESC, id DESC);
CREATE INDEX jobs_queue_idx ON jobs (kind, run_after) WHERE status = 'queued';
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_worker_idx ON jobs (worker_id) WHERE worker_id IS NOT NULL;

CREATE TABLE job_logs (
  id         uuid NOT NULL,
  user_id    uuid NOT NULL,
  job_id     uuid NOT NULL,
  level      text NOT NULL DEFAULT 'info' CHECK (level IN ('debug', 'info', 'warn', 'error')),
  message    text NOT NULL CHECK (length(message) <= 2000),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, id),
  FOREIGN KEY (user_id, job_id) REFERENCES jobs (user_id, id) ON DELETE CASCADE
);
CREATE INDEX job_logs_job_idx ON job_logs (user_id, job_id, created_at);
"#;

/// The worker's id of the request; NULL (matching nothing) when unset.
const CURRENT_WORKER_ID: &str = "(SELECT NULLIF(current_setting('plinth.worker_id', true), '')::uuid)";

fn policies() -> String {
    let w = CURRENT_WORKER_ID;
    format!(
        "GRANT SELECT, INSERT ON jobs, job_logs TO {USER_ROLES};
         GRANT UPDATE (status, cancel_requested, updated_at, finished_at, message) ON jobs TO {USER_ROLES};
         -- A worker sees and updates only the jobs it holds, and logs only to them.
         CREATE POLICY jobs_worker ON jobs FOR ALL TO plinth_worker
           USING (worker_id = {w}) WITH CHECK (worker_id = {w});
         GRANT SELECT ON jobs TO plinth_worker;
         GRANT UPDATE (status, progress, message, result, error, run_after, lease_expires_at, worker_id,
                       updated_at, finished_at) ON jobs TO plinth_worker;
         CREATE POLICY job_logs_worker ON job_logs FOR ALL TO plinth_worker
           USING (EXISTS (SELECT 1 FROM jobs j WHERE j.user_id = job_logs.user_id AND j.id = job_logs.job_id
                          AND j.worker_id = {w}))
           WITH CHECK (EXISTS (SELECT 1 FROM jobs j WHERE j.user_id = job_logs.user_id AND j.id = job_logs.job_id
                               AND j.worker_id = {w}));
         GRANT SELECT, INSERT ON job_logs TO plinth_worker;

         -- Claims one due job of the given kinds for a worker: the only way a worker
         -- reaches a job it does not hold yet. SKIP LOCKED lets workers claim in parallel.
         CREATE FUNCTION priv.claim_job(p_worker uuid, p_kinds text[], p_lease_seconds int)
           RETURNS TABLE (user_id uuid, id uuid)
           LANGUAGE sql VOLATILE SECURITY DEFINER
           SET search_path = pg_catalog, pg_temp
           AS $$
             UPDATE public.jobs j
                SET status = 'running', worker_id = p_worker, attempts = j.attempts + 1,
                    lease_expires_at = now() + make_interval(secs => p_lease_seconds),
                    progress = 0, updated_at = now()
               FROM (SELECT q.user_id, q.id FROM public.jobs q
                      WHERE q.status = 'queued' AND q.kind = ANY (p_kinds) AND q.run_after <= now()
                        AND NOT q.cancel_requested
                      ORDER BY q.run_after, q.created_at
                      LIMIT 1 FOR UPDATE SKIP LOCKED) pick
              WHERE j.user_id = pick.user_id AND j.id = pick.id
             RETURNING j.user_id, j.id
           $$;
         -- Jobs whose worker stopped reporting: back to the queue with backoff, or
         -- failed after their last attempt. Returns what changed, for live events.
         CREATE FUNCTION priv.requeue_expired_jobs()
           RETURNS TABLE (user_id uuid, id uuid)
           LANGUAGE sql VOLATILE SECURITY DEFINER
           SET search_path = pg_catalog, pg_temp
           AS $$
             UPDATE public.jobs j
                SET status = CASE WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'queued' END,
                    error = 'the worker stopped reporting (lease expired)',
                    worker_id = NULL, lease_expires_at = NULL, updated_at = now(),
                    run_after = now() + make_interval(secs => least(300, 5 * power(2, j.attempts))::int),
                    finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END
               FROM (SELECT q.user_id, q.id FROM public.jobs q
                      WHERE q.status = 'running' AND q.lease_expires_at < now()
                      FOR UPDATE SKIP LOCKED) due
              WHERE j.user_id = due.user_id AND j.id = due.id
             RETURNING j.user_id, j.id
           $$;
         REVOKE ALL ON FUNCTION priv.claim_job(uuid, text[], int), priv.requeue_expired_jobs() FROM PUBLIC;
         GRANT USAGE ON SCHEMA priv TO plinth_worker, plinth_system;
         GRANT EXECUTE ON FUNCTION priv.claim_job(uuid, text[], int) TO plinth_worker;
         GRANT EXECUTE ON FUNCTION priv.requeue_expired_jobs() TO plinth_system;"
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(&app_role("plinth_system")).await?;
        db.execute_unprepared(SQL).await?;
        for table in ["jobs", "job_logs"] {
            db.execute_unprepared(&tenant_table(table, "user_id")).await?;
        }
        db.execute_unprepared(&policies()).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP FUNCTION IF EXISTS priv.claim_job(uuid, text[], int), priv.requeue_expired_jobs();
                 DROP TABLE IF EXISTS job_logs, jobs;",
            )
            .await?;
        Ok(())
    }
}
