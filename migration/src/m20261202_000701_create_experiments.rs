use crate::rls::{tenant_table, USER_ROLES};
use sea_orm_migration::prelude::*;

/// A/B experiments and NPS feedback (issue 15, items 3 and 4).
///
/// - `experiments`: the definitions, read by every signed-in role (a client asks for its
///   variant by key), written by administrators only.
/// - `experiment_assignments`, `experiment_conversions`, `nps_responses`: tenant tables
///   keyed by `user_id`, forced RLS with the owner policy; the primary keys make first
///   exposure and a conversion per (experiment, user, goal) idempotent under concurrency.
/// - Aggregates for administrators are functions of the `metrics` schema, read through
///   `plinth_metrics` policies that hold only while the request's user is an
///   administrator (as in `m20261202_000602_create_business_metrics`); no row leaves
///   PostgreSQL, only counts per variant or per score.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000701_create_experiments"
    }
}

const SQL: &str = r#"
CREATE TABLE experiments (
  key text PRIMARY KEY CHECK (key ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
  description text NOT NULL DEFAULT '' CHECK (char_length(description) <= 500),
  -- [{"name": "control", "weight": 50}, ...]: the first is the control.
  variants jsonb NOT NULL CHECK (jsonb_typeof(variants) = 'array' AND jsonb_array_length(variants) BETWEEN 2 AND 10),
  audience text NOT NULL CHECK (audience IN ('all', 'new_users')),
  status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'stopped')),
  winner text,
  started_at timestamptz NOT NULL DEFAULT now(),
  stopped_at timestamptz,
  CHECK ((status = 'stopped') = (stopped_at IS NOT NULL))
);
ALTER TABLE experiments ENABLE ROW LEVEL SECURITY;
ALTER TABLE experiments FORCE ROW LEVEL SECURITY;
CREATE POLICY experiments_read ON experiments FOR SELECT TO {USER_ROLES} USING (true);
CREATE POLICY experiments_admin_insert ON experiments FOR INSERT TO plinth_admin WITH CHECK (true);
CREATE POLICY experiments_admin_update ON experiments FOR UPDATE TO plinth_admin USING (true) WITH CHECK (true);
CREATE POLICY experiments_metrics ON experiments FOR SELECT TO plinth_metrics
  USING ((SELECT priv.metrics_caller_is_admin()));
GRANT SELECT ON experiments TO {USER_ROLES}, plinth_metrics;
GRANT INSERT, UPDATE ON experiments TO plinth_admin;

CREATE TABLE experiment_assignments (
  user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  experiment_key text NOT NULL REFERENCES experiments(key) ON DELETE CASCADE,
  variant text NOT NULL,
  assigned_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, experiment_key)
);
CREATE INDEX experiment_assignments_experiment_idx ON experiment_assignments (experiment_key, variant);
{assignments_rls}
CREATE POLICY experiment_assignments_metrics ON experiment_assignments FOR SELECT TO plinth_metrics
  USING ((SELECT priv.metrics_caller_is_admin()));
GRANT SELECT, INSERT ON experiment_assignments TO {USER_ROLES};
GRANT SELECT ON experiment_assignments TO plinth_metrics;

CREATE TABLE experiment_conversions (
  user_id uuid NOT NULL,
  experiment_key text NOT NULL,
  goal text NOT NULL CHECK (goal ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
  converted_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, experiment_key, goal),
  FOREIGN KEY (user_id, experiment_key) REFERENCES experiment_assignments (user_id, experiment_key) ON DELETE CASCADE
);
CREATE INDEX experiment_conversions_goal_idx ON experiment_conversions (experiment_key, goal);
{conversions_rls}
CREATE POLICY experiment_conversions_metrics ON experiment_conversions FOR SELECT TO plinth_metrics
  USING ((SELECT priv.metrics_caller_is_admin()));
GRANT SELECT, INSERT ON experiment_conversions TO {USER_ROLES};
GRANT SELECT ON experiment_conversions TO plinth_metrics;

CREATE TABLE nps_responses (
  id uuid PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  score smallint NOT NULL CHECK (score BETWEEN 0 AND 10),
  comment text CHECK (char_length(comment) <= 1000),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nps_responses_user_idx ON nps_responses (user_id, created_at);
CREATE INDEX nps_responses_created_idx ON nps_responses (created_at);
{nps_rls}
CREATE POLICY nps_responses_metrics ON nps_responses FOR SELECT TO plinth_metrics
  USING ((SELECT priv.metrics_caller_is_admin()));
GRANT SELECT, INSERT ON nps_responses TO {USER_ROLES};
GRANT SELECT ON nps_responses TO plinth_metrics;

-- Per variant of `$1` (in the definition's order, the control first): users exposed
-- and, of those, converted on goal `$2` after their exposure and before the experiment
-- stopped. Goals `verified`, `first_job` (the user's first successful job) and `paid`
-- (a paying subscription state) are derived from the data; any other goal is what
-- `trackConversion` recorded.
CREATE FUNCTION metrics.experiment_results(text, text)
  RETURNS TABLE (variant text, "position" integer, weight integer, exposed bigint, converted bigint)
  LANGUAGE sql STABLE
  AS $$
  WITH e AS (SELECT x.key, x.variants, coalesce(x.stopped_at, 'infinity') AS until
             FROM public.experiments x WHERE x.key = $1),
  v AS (
    SELECT o.value->>'name' AS variant, o.ord::integer AS pos, (o.value->>'weight')::integer AS weight
    FROM e CROSS JOIN LATERAL jsonb_array_elements(e.variants) WITH ORDINALITY o(value, ord)
  ),
  a AS (
    SELECT a.variant, a.user_id,
      CASE $2
        WHEN 'verified' THEN EXISTS (SELECT 1 FROM public.users u WHERE u.id = a.user_id
                                     AND u.email_verified_at >= a.assigned_at AND u.email_verified_at < e.until)
        WHEN 'first_job' THEN (SELECT min(j.finished_at) FROM public.jobs j
                               WHERE j.user_id = a.user_id AND j.status = 'succeeded')
                              BETWEEN a.assigned_at AND e.until
        WHEN 'paid' THEN EXISTS (SELECT 1 FROM public.billing_subscription_history h WHERE h.user_id = a.user_id
                                 AND h.mrr_cents > 0 AND h.effective_at >= a.assigned_at AND h.effective_at < e.until)
        ELSE EXISTS (SELECT 1 FROM public.experiment_conversions k WHERE k.user_id = a.user_id
                     AND k.experiment_key = a.experiment_key AND k.goal = $2)
      END AS converted
    FROM e JOIN public.experiment_assignments a ON a.experiment_key = e.key
  )
  SELECT v.variant, v.pos, v.weight, count(a.user_id), count(a.user_id) FILTER (WHERE a.converted)
  FROM v LEFT JOIN a ON a.variant = v.variant
  GROUP BY v.variant, v.pos, v.weight ORDER BY v.pos $$;

-- NPS over [from, to): each respondent's latest response in the range counts once.
-- Eligible: customers (role user) who had signed up before `to`.
CREATE FUNCTION metrics.nps_summary(from_at timestamptz, to_at timestamptz)
  RETURNS TABLE (respondents bigint, promoters bigint, passives bigint, detractors bigint, eligible bigint)
  LANGUAGE sql STABLE
  AS $$
  WITH latest AS (
    SELECT DISTINCT ON (r.user_id) r.score FROM public.nps_responses r
    WHERE r.created_at >= from_at AND r.created_at < to_at
    ORDER BY r.user_id, r.created_at DESC
  )
  SELECT count(*), count(*) FILTER (WHERE score >= 9), count(*) FILTER (WHERE score BETWEEN 7 AND 8),
         count(*) FILTER (WHERE score <= 6),
         (SELECT count(*) FROM public.users u WHERE u.role = 'user' AND u.created_at < to_at)
  FROM latest $$;

-- The same respondents by score, 0 to 10 (every score present, 0 when none).
CREATE FUNCTION metrics.nps_distribution(from_at timestamptz, to_at timestamptz)
  RETURNS TABLE (score integer, responses bigint)
  LANGUAGE sql STABLE
  AS $$
  WITH latest AS (
    SELECT DISTINCT ON (r.user_id) r.score FROM public.nps_responses r
    WHERE r.created_at >= from_at AND r.created_at < to_at
    ORDER BY r.user_id, r.created_at DESC
  )
  SELECT s, count(l.score) FROM generate_series(0, 10) s LEFT JOIN latest l ON l.score = s
  GROUP BY s ORDER BY s $$;

-- The newest `n` comments of [from, to), without who wrote them.
CREATE FUNCTION metrics.nps_comments(from_at timestamptz, to_at timestamptz, n integer)
  RETURNS TABLE (score integer, comment text, created_at timestamptz)
  LANGUAGE sql STABLE
  AS $$
  SELECT r.score, r.comment, r.created_at FROM public.nps_responses r
  WHERE r.created_at >= from_at AND r.created_at < to_at AND r.comment IS NOT NULL
  ORDER BY r.created_at DESC LIMIT n $$;

REVOKE ALL ON FUNCTION metrics.experiment_results(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION metrics.nps_summary(timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION metrics.nps_distribution(timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION metrics.nps_comments(timestamptz, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION metrics.experiment_results(text, text) TO plinth_metrics;
GRANT EXECUTE ON FUNCTION metrics.nps_summary(timestamptz, timestamptz) TO plinth_metrics;
GRANT EXECUTE ON FUNCTION metrics.nps_distribution(timestamptz, timestamptz) TO plinth_metrics;
GRANT EXECUTE ON FUNCTION metrics.nps_comments(timestamptz, timestamptz, integer) TO plinth_metrics;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = SQL
            .replace("{USER_ROLES}", USER_ROLES)
            .replace("{assignments_rls}", &tenant_table("experiment_assignments", "user_id"))
            .replace("{conversions_rls}", &tenant_table("experiment_conversions", "user_id"))
            .replace("{nps_rls}", &tenant_table("nps_responses", "user_id"));
        manager.get_connection().execute_unprepared(&sql).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP FUNCTION IF EXISTS metrics.experiment_results(text, text);
                 DROP FUNCTION IF EXISTS metrics.nps_summary(timestamptz, timestamptz);
                 DROP FUNCTION IF EXISTS metrics.nps_distribution(timestamptz, timestamptz);
                 DROP FUNCTION IF EXISTS metrics.nps_comments(timestamptz, timestamptz, integer);
                 DROP TABLE IF EXISTS nps_responses, experiment_conversions, experiment_assignments, experiments;",
            )
            .await?;
        Ok(())
    }
}
