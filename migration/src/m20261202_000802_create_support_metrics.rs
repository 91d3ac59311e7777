use sea_orm_migration::prelude::*;

/// `metrics.support(from, to)`: the support figures of the business metrics, over the
/// tickets through a metrics-role policy (administrators only, like every metric;
/// the role reads the timestamps, never a subject or a message).
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000802_create_support_metrics"
    }
}

const SQL: &str = r#"
CREATE POLICY tickets_metrics ON tickets FOR SELECT TO plinth_metrics
  USING ((SELECT priv.metrics_caller_is_admin()));
GRANT SELECT (id, user_id, created_at, first_response_at, resolved_at, closed_at) ON tickets TO plinth_metrics;
CREATE INDEX tickets_created_idx ON tickets (created_at);

-- Tickets opened in [from, to); of them, those with a first staff response before `to`
-- (seconds from opening: median and 90th percentile, continuous) and those resolved
-- before `to` (median seconds from opening); the backlog: tickets opened before `to`
-- and neither resolved nor closed by then.
CREATE FUNCTION metrics.support(from_at timestamptz, to_at timestamptz)
  RETURNS TABLE (opened bigint, responded bigint, first_response_median_seconds double precision,
                 first_response_p90_seconds double precision, resolved bigint,
                 resolution_median_seconds double precision, backlog bigint)
  LANGUAGE sql STABLE
  AS $$
  WITH t AS (
    SELECT t.created_at,
           CASE WHEN t.first_response_at < to_at THEN extract(epoch FROM t.first_response_at - t.created_at) END
             AS response,
           CASE WHEN t.resolved_at < to_at THEN extract(epoch FROM t.resolved_at - t.created_at) END AS resolution
    FROM public.tickets t
    WHERE t.created_at >= from_at AND t.created_at < to_at
  )
  SELECT count(*), count(response),
         percentile_cont(0.5) WITHIN GROUP (ORDER BY response) FILTER (WHERE response IS NOT NULL),
         percentile_cont(0.9) WITHIN GROUP (ORDER BY response) FILTER (WHERE response IS NOT NULL),
         count(resolution),
         percentile_cont(0.5) WITHIN GROUP (ORDER BY resolution) FILTER (WHERE resolution IS NOT NULL),
         (SELECT count(*) FROM public.tickets b
           WHERE b.created_at < to_at
             AND (b.resolved_at IS NULL OR b.resolved_at >= to_at)
             AND (b.closed_at IS NULL OR b.closed_at >= to_at))
  FROM t $$;
REVOKE ALL ON FUNCTION metrics.support(timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION metrics.support(timestamptz, timestamptz) TO plinth_metrics;
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
                "DROP FUNCTION IF EXISTS metrics.support(timestamptz, timestamptz);
                 DROP INDEX IF EXISTS tickets_created_idx;
                 DROP POLICY IF EXISTS tickets_metrics ON tickets;
                 REVOKE ALL ON tickets FROM plinth_metrics;",
            )
            .await?;
        Ok(())
    }
}
