use sea_orm_migration::prelude::*;

/// The job queue as the metrics see it (`plinth_jobs_queued`, `plinth_jobs_running`,
/// `plinth_jobs_oldest_queued_seconds`): per kind, counts and the wait of the oldest due
/// job, across every tenant. A narrow `SECURITY DEFINER` function for the system role
/// (what the scrape runs as), like `priv.email_backlog`: it returns numbers, never rows.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000101_observe_job_queue"
    }
}

const SQL: &str = r#"
CREATE FUNCTION priv.job_queue_stats()
  RETURNS TABLE (kind text, queued bigint, running bigint, oldest_due_seconds bigint)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
    SELECT j.kind,
           count(*) FILTER (WHERE j.status = 'queued'),
           count(*) FILTER (WHERE j.status = 'running'),
           coalesce(extract(epoch FROM now() - min(j.run_after)
                      FILTER (WHERE j.status = 'queued' AND j.run_after <= now())), 0)::bigint
      FROM public.jobs j
     WHERE j.status IN ('queued', 'running')
     GROUP BY j.kind
  $$;
REVOKE ALL ON FUNCTION priv.job_queue_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION priv.job_queue_stats() TO plinth_system;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(SQL).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP FUNCTION IF EXISTS priv.job_queue_stats();").await?;
        Ok(())
    }
}
