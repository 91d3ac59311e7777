use sea_orm_migration::prelude::*;

/// Feedback and experiments over time for administrators (issue 15, items 3 and 4):
///
/// - `metrics.nps_monthly(from, to)`: NPS counts per calendar month (UTC) of the range,
///   clipped to it, each respondent's latest answer in the month counting once (the
///   rule `metrics.nps_summary` applies to the whole range);
/// - `metrics.experiment_goals(key)`: the goals tracked for an experiment (those with at
///   least one conversion), so an export can list the results of each.
///
/// Both read through the `plinth_metrics` policies (administrators only), counts only.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000202_summarise_feedback_by_month"
    }
}

const SQL: &str = r#"
-- One row per month of [from, to) (UTC; the first is the month containing `from`), with
-- the answers given in that month and in the range: respondents (latest answer of each
-- user in the month), promoters (9–10), passives (7–8), detractors (0–6).
CREATE FUNCTION metrics.nps_monthly(from_at timestamptz, to_at timestamptz)
  RETURNS TABLE (month timestamptz, respondents bigint, promoters bigint, passives bigint, detractors bigint)
  LANGUAGE sql STABLE
  AS $$
  WITH p AS (SELECT metrics.points(from_at, to_at, 'month') AS pts),
  latest AS (
    SELECT DISTINCT ON (r.user_id, k) width_bucket(r.created_at, p.pts) AS k, r.score
    FROM p, public.nps_responses r
    WHERE r.created_at >= from_at AND r.created_at < to_at
    ORDER BY r.user_id, k, r.created_at DESC
  )
  SELECT p.pts[g.k], count(l.score), count(l.score) FILTER (WHERE l.score >= 9),
         count(l.score) FILTER (WHERE l.score BETWEEN 7 AND 8), count(l.score) FILTER (WHERE l.score <= 6)
  FROM p CROSS JOIN generate_series(1, array_length(p.pts, 1) - 1) AS g(k)
  LEFT JOIN latest l ON l.k = g.k
  GROUP BY g.k, p.pts[g.k]
  ORDER BY g.k $$;

-- The goals tracked with trackConversion for experiment `$1`, in order.
CREATE FUNCTION metrics.experiment_goals(text)
  RETURNS TABLE (goal text)
  LANGUAGE sql STABLE
  AS $$ SELECT DISTINCT c.goal FROM public.experiment_conversions c WHERE c.experiment_key = $1 ORDER BY 1 $$;

REVOKE ALL ON FUNCTION metrics.nps_monthly(timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION metrics.experiment_goals(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION metrics.nps_monthly(timestamptz, timestamptz) TO plinth_metrics;
GRANT EXECUTE ON FUNCTION metrics.experiment_goals(text) TO plinth_metrics;
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
                "DROP FUNCTION IF EXISTS metrics.nps_monthly(timestamptz, timestamptz);
                 DROP FUNCTION IF EXISTS metrics.experiment_goals(text);",
            )
            .await?;
        Ok(())
    }
}
