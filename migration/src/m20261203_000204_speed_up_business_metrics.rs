use crate::rls::{tenant_table, USER_ROLES};
use sea_orm_migration::prelude::*;

/// Business metrics under a second on 100,000 customers with 24 months of history
/// (`bench/metrics.sh`; issue 15's target). What the benchmark showed, and the change:
///
/// - `metrics.mrr` counted paying customers per point with `metrics.mrr_at`, one row per
///   customer per point (millions with daily buckets), and read the history twice. The
///   count now comes from the same changes as the movements: each change moves the
///   number of paying customers by `(after > 0) − (before > 0)`, summed per bucket and
///   run through the buckets like the MRR itself (a customer's changes telescope to
///   whether it pays at the point).
/// - `metrics.churn` joined `metrics.mrr_at` at both ends of every bucket. Only the
///   customers whose MRR changed in a bucket can churn, contract or expand in it: their
///   MRR at its start is the `before` of their first change in it and at its end the
///   `after` of their last; everybody else keeps what they had. Customers and MRR at
///   the start are running sums of the changes, as in `metrics.mrr`.
/// - `metrics.cohorts` (REVENUE) took each cohort's MRR from `metrics.mrr_at` too; it is
///   now the running sum of the cohort's changes per month. ACTIVE counted distinct
///   users per cohort and month over every job at once (a sort of all of them, spilled
///   to disk; a second over 1.4 million jobs however written, as the benchmark's
///   variants showed); it now reads `job_activity_months`, one row per customer and
///   month with a job, written by a trigger in the job's own insert (its transaction and
///   role, like the subscription history) and backfilled here: a few hundred thousand
///   narrow rows instead of every job.
/// - `metrics.conversion` and `metrics.activation`: the CTE referenced several times was
///   inlined, so the correlated subquery of each customer's first trial, payment or job
///   ran once per reference (five times a customer for activation). Conversion now
///   takes every customer's first trial and first payment in one pass over the history
///   (far smaller than the customers' jobs) and joins them; activation's CTE is
///   `MATERIALIZED`, and finds each first successful job with one probe of a partial
///   index on the successful jobs.
/// - `usage_totals` sorted every job of the range by day and plan (spilled to disk)
///   because PostgreSQL took each job's day for a distinct value: statistics on the
///   expression (`jobs_day_stats`) tell it there are a few hundred days, so it hashes.
///   Jobs by creation time have a covering index (`created_at` INCLUDE `user_id`,
///   `kind`), in place of `jobs_created_idx`, for ranges that are a small part of them.
///   Neither new index holds a column an update changes but `status` (already in the
///   queue index's predicate), so job updates stay as they were.
///
/// - Every metrics function, and the admin check of their policies, is `PARALLEL SAFE`,
///   so a scan of every job can use the parallel workers (the default, unsafe, kept
///   every metric in one process).
///
/// The results are the same as before (the tests' hand-computed fixtures and the random
/// reconciliation of MRR movements hold unchanged; the benchmark compared every
/// function's rows before and after on its 100,000 customers).
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000204_speed_up_business_metrics"
    }
}

const SQL: &str = r#"
CREATE INDEX jobs_created_cover_idx ON jobs (created_at) INCLUDE (user_id, kind);
DROP INDEX jobs_created_idx;
CREATE INDEX jobs_first_success_idx ON jobs (user_id, finished_at) WHERE status = 'succeeded';
-- The months (UTC) each customer created a job in: what ACTIVE cohorts count, kept by
-- the job's own insert (its transaction, its role: the owner policy admits it).
CREATE TABLE job_activity_months (
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  -- The month's first instant, UTC.
  month   timestamptz NOT NULL,
  PRIMARY KEY (user_id, month)
);
{activity_rls}
GRANT SELECT, INSERT ON job_activity_months TO {USER_ROLES};
CREATE POLICY job_activity_months_metrics ON job_activity_months FOR SELECT TO plinth_metrics
  USING ((SELECT priv.metrics_caller_is_admin()));
GRANT SELECT ON job_activity_months TO plinth_metrics;
CREATE FUNCTION public.jobs_record_activity_month()
  RETURNS trigger LANGUAGE plpgsql
  AS $$
BEGIN
  INSERT INTO job_activity_months (user_id, month)
  VALUES (NEW.user_id, date_trunc('month', NEW.created_at, 'UTC'))
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;
INSERT INTO job_activity_months (user_id, month)
  SELECT DISTINCT user_id, date_trunc('month', created_at, 'UTC') FROM jobs;
CREATE TRIGGER jobs_activity_month AFTER INSERT ON jobs
  FOR EACH ROW EXECUTE FUNCTION public.jobs_record_activity_month();

-- How many UTC days the jobs span, so usage totals are hashed by day, not sorted.
CREATE STATISTICS jobs_day_stats ON ((created_at AT TIME ZONE 'UTC')::date) FROM jobs;
ANALYZE jobs;

-- Every change of a customer's MRR before the last of `pts` (metrics.mrr_changes) and
-- the bucket it falls in: 0 before the first point, k in [pts[k], pts[k + 1]).
CREATE FUNCTION metrics.bucketed_changes(pts timestamptz[])
  RETURNS TABLE (user_id uuid, at timestamptz, before_cents bigint, after_cents bigint, paid_before boolean,
                 k integer)
  LANGUAGE sql STABLE
  AS $$ SELECT c.*, width_bucket(c.at, pts) FROM metrics.mrr_changes(pts[array_upper(pts, 1)]) c $$;
REVOKE ALL ON FUNCTION metrics.bucketed_changes(timestamptz[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION metrics.bucketed_changes(timestamptz[]) TO plinth_metrics;

-- MRR per bucket with its movements (cents); closing − opening = the movements' sum.
-- Bucket 0 gathers the changes before the first point (the opening state).
CREATE OR REPLACE FUNCTION metrics.mrr(from_at timestamptz, to_at timestamptz, step text)
  RETURNS TABLE (bucket_start timestamptz, bucket_end timestamptz, opening_cents bigint, closing_cents bigint,
                 new_cents bigint, expansion_cents bigint, contraction_cents bigint, churn_cents bigint,
                 reactivation_cents bigint, customers bigint)
  LANGUAGE sql STABLE
  AS $$
  WITH p AS (SELECT metrics.points(from_at, to_at, step) AS pts),
  changes AS (SELECT c.* FROM p, metrics.bucketed_changes(p.pts) c),
  moves AS (
    SELECT k,
      sum(after_cents) FILTER (WHERE before_cents = 0 AND NOT paid_before) AS new_cents,
      sum(after_cents - before_cents) FILTER (WHERE before_cents > 0 AND after_cents > before_cents) AS expansion_cents,
      sum(before_cents - after_cents) FILTER (WHERE after_cents > 0 AND after_cents < before_cents) AS contraction_cents,
      sum(before_cents) FILTER (WHERE after_cents = 0) AS churn_cents,
      sum(after_cents) FILTER (WHERE before_cents = 0 AND paid_before) AS reactivation_cents,
      sum(after_cents - before_cents) AS net_cents,
      sum((after_cents > 0)::int - (before_cents > 0)::int) AS net_customers
    FROM changes GROUP BY k
  ),
  running AS (
    SELECT g.k, p.pts[g.k] AS s, p.pts[g.k + 1] AS e, m.new_cents, m.expansion_cents, m.contraction_cents,
           m.churn_cents, m.reactivation_cents, m.net_cents,
           sum(coalesce(m.net_cents, 0)) OVER w AS closing,
           sum(coalesce(m.net_customers, 0)) OVER w AS paying
    FROM p CROSS JOIN generate_series(0, array_length(p.pts, 1) - 1) AS g(k)
    LEFT JOIN moves m ON m.k = g.k
    WINDOW w AS (ORDER BY g.k)
  )
  SELECT r.s, r.e, (r.closing - coalesce(r.net_cents, 0))::bigint, r.closing::bigint,
         coalesce(r.new_cents, 0)::bigint, coalesce(r.expansion_cents, 0)::bigint,
         coalesce(r.contraction_cents, 0)::bigint, coalesce(r.churn_cents, 0)::bigint,
         coalesce(r.reactivation_cents, 0)::bigint, r.paying::bigint
  FROM running r WHERE r.k >= 1 ORDER BY r.k $$;

-- Churn per bucket, over the customers paying at its start (rates NULL without any).
CREATE OR REPLACE FUNCTION metrics.churn(from_at timestamptz, to_at timestamptz, step text)
  RETURNS TABLE (bucket_start timestamptz, bucket_end timestamptz, customers_start bigint, customers_churned bigint,
                 opening_cents bigint, churned_cents bigint, contraction_cents bigint, expansion_cents bigint,
                 logo_churn_rate double precision, revenue_churn_rate double precision,
                 net_revenue_retention double precision)
  LANGUAGE sql STABLE
  AS $$
  WITH p AS (SELECT metrics.points(from_at, to_at, step) AS pts),
  changes AS (SELECT c.* FROM p, metrics.bucketed_changes(p.pts) c),
  net AS (
    SELECT k, sum(after_cents - before_cents) AS cents, sum((after_cents > 0)::int - (before_cents > 0)::int) AS paying
    FROM changes GROUP BY k
  ),
  -- Customers and MRR at each bucket's start: the changes of the buckets before it.
  starts AS (
    SELECT g.k, (sum(coalesce(n.cents, 0)) OVER w - coalesce(n.cents, 0))::bigint AS opening,
           (sum(coalesce(n.paying, 0)) OVER w - coalesce(n.paying, 0))::bigint AS paying
    FROM p CROSS JOIN generate_series(0, array_length(p.pts, 1) - 1) AS g(k)
    LEFT JOIN net n ON n.k = g.k
    WINDOW w AS (ORDER BY g.k)
  ),
  -- Each customer whose MRR changed in a bucket: its MRR at the start (s) and end (e).
  spans AS (
    SELECT k, (array_agg(before_cents ORDER BY at))[1] AS s, (array_agg(after_cents ORDER BY at DESC))[1] AS e
    FROM changes WHERE k >= 1 GROUP BY user_id, k
  ),
  moved AS (
    SELECT k, count(*) FILTER (WHERE e = 0) AS churned, sum(s) FILTER (WHERE e = 0) AS churned_cents,
           sum(s - e) FILTER (WHERE e > 0 AND e < s) AS contraction, sum(e - s) FILTER (WHERE e > s) AS expansion,
           sum(e - s) AS retained_change
    FROM spans WHERE s > 0 GROUP BY k
  )
  SELECT p.pts[b.k], p.pts[b.k + 1], b.paying, coalesce(m.churned, 0), b.opening,
         coalesce(m.churned_cents, 0)::bigint, coalesce(m.contraction, 0)::bigint, coalesce(m.expansion, 0)::bigint,
         coalesce(m.churned, 0)::double precision / NULLIF(b.paying, 0),
         (coalesce(m.churned_cents, 0) + coalesce(m.contraction, 0))::double precision / NULLIF(b.opening, 0),
         (b.opening + coalesce(m.retained_change, 0))::double precision / NULLIF(b.opening, 0)
  FROM p CROSS JOIN starts b LEFT JOIN moved m ON m.k = b.k
  WHERE b.k >= 1
  ORDER BY b.k $$;

-- The funnel of the customers (role user) who signed up in [from, to): verified their
-- address, started a trial, ever paid (a history row with MRR), and of those who
-- trialled, how many paid after the trial began.
CREATE OR REPLACE FUNCTION metrics.conversion(from_at timestamptz, to_at timestamptz)
  RETURNS TABLE (signups bigint, verified bigint, trials bigint, paid bigint, trials_paid bigint)
  LANGUAGE sql STABLE
  AS $$
  WITH h AS (
    SELECT h.user_id, min(h.effective_at) FILTER (WHERE h.status = 'trialing') AS trial_at,
           min(h.effective_at) FILTER (WHERE h.mrr_cents > 0) AS paid_at
    FROM public.billing_subscription_history h
    GROUP BY h.user_id
  )
  SELECT count(*), count(*) FILTER (WHERE u.email_verified_at IS NOT NULL), count(h.trial_at), count(h.paid_at),
         count(*) FILTER (WHERE h.paid_at >= h.trial_at)
  FROM public.users u LEFT JOIN h ON h.user_id = u.id
  WHERE u.role = 'user' AND u.created_at >= from_at AND u.created_at < to_at $$;

-- Of the customers who signed up in [from, to): how many had a first successful job
-- within `within_days` of signing up; the time to the first successful job (seconds:
-- median and 90th percentile, continuous) over those who had one at all.
CREATE OR REPLACE FUNCTION metrics.activation(from_at timestamptz, to_at timestamptz, within_days integer)
  RETURNS TABLE (signups bigint, activated bigint, with_first_job bigint,
                 median_seconds double precision, p90_seconds double precision)
  LANGUAGE sql STABLE
  AS $$
  WITH s AS MATERIALIZED (
    SELECT u.created_at,
           (SELECT min(j.finished_at) FROM public.jobs j
             WHERE j.user_id = u.id AND j.status = 'succeeded') AS first_job_at
    FROM public.users u
    WHERE u.role = 'user' AND u.created_at >= from_at AND u.created_at < to_at
  )
  SELECT count(*),
         count(*) FILTER (WHERE first_job_at <= created_at + make_interval(days => within_days)),
         count(first_job_at),
         percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_job_at - created_at))
           FILTER (WHERE first_job_at IS NOT NULL),
         percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM first_job_at - created_at))
           FILTER (WHERE first_job_at IS NOT NULL)
  FROM s $$;

-- Retention by sign-up month (UTC) × months since sign-up, for the cohorts of
-- [from, to), up to the month containing `until`. ACTIVE: customers of the cohort who
-- created a job in that month; REVENUE: the cohort's MRR at the end of that month
-- (cents). Share: of the cohort's size (ACTIVE) or of its month-0 MRR (REVENUE).
CREATE OR REPLACE FUNCTION metrics.cohorts(from_at timestamptz, to_at timestamptz, metric text, until timestamptz)
  RETURNS TABLE (cohort timestamptz, months_since integer, size bigint, value bigint, share double precision)
  LANGUAGE sql STABLE
  AS $$
  WITH c AS (
    SELECT u.id, date_trunc('month', u.created_at, 'UTC') AS cohort
    FROM public.users u WHERE u.role = 'user' AND u.created_at >= from_at AND u.created_at < to_at
  ),
  sizes AS (SELECT cohort, count(*) AS size FROM c GROUP BY cohort),
  p AS (SELECT metrics.points(date_trunc('month', from_at, 'UTC'), greatest(until, to_at), 'month') AS pts),
  cells AS (
    SELECT s.cohort, k AS months_since, s.size,
           (s.cohort + make_interval(months => k)) AS month_start
    FROM sizes s, p CROSS JOIN LATERAL generate_series(0, array_length(p.pts, 1) - 1) k
    WHERE s.cohort + make_interval(months => k) < p.pts[array_upper(p.pts, 1)]
  ),
  active AS (
    SELECT c.cohort, a.month AS month_start, count(*) AS n
    FROM c JOIN public.job_activity_months a ON a.user_id = c.id
    WHERE metric = 'active'
    GROUP BY 1, 2
  ),
  -- Each cohort's MRR change per month (bucket 0: before the first month), run through
  -- the months: its MRR at each month's end.
  revenue_changes AS (
    SELECT c.cohort, ch.k, sum(ch.after_cents - ch.before_cents) AS cents
    FROM p, metrics.bucketed_changes(p.pts) ch JOIN c ON c.id = ch.user_id
    WHERE metric = 'revenue'
    GROUP BY 1, 2
  ),
  revenue AS (
    SELECT s.cohort, p.pts[g.k] AS month_start,
           sum(coalesce(r.cents, 0)) OVER (PARTITION BY s.cohort ORDER BY g.k) AS n
    FROM sizes s CROSS JOIN p CROSS JOIN generate_series(0, array_length(p.pts, 1) - 1) AS g(k)
    LEFT JOIN revenue_changes r ON r.cohort = s.cohort AND r.k = g.k
    WHERE metric = 'revenue'
  ),
  v AS (
    SELECT x.cohort, x.months_since, x.size,
           coalesce(a.n, r.n, 0)::bigint AS value
    FROM cells x
    LEFT JOIN active a ON a.cohort = x.cohort AND a.month_start = x.month_start
    LEFT JOIN revenue r ON r.cohort = x.cohort AND r.month_start = x.month_start
  )
  SELECT v.cohort, v.months_since, v.size, v.value,
         CASE WHEN metric = 'active' THEN v.value::double precision / NULLIF(v.size, 0)
              ELSE v.value::double precision
                   / NULLIF(first_value(v.value) OVER (PARTITION BY v.cohort ORDER BY v.months_since), 0) END
  FROM v ORDER BY v.cohort, v.months_since $$;

-- Every metrics function is read-only and touches no temporary table, and the policies'
-- admin check runs once in the leader (an InitPlan whose value workers receive): all may
-- run in parallel workers. A function created or replaced later must say so again.
ALTER FUNCTION priv.metrics_caller_is_admin() PARALLEL SAFE;
DO $$
DECLARE f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'metrics'::regnamespace LOOP
    EXECUTE format('ALTER FUNCTION %s PARALLEL SAFE', f);
  END LOOP;
END $$;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = SQL
            .replace("{activity_rls}", &tenant_table("job_activity_months", "user_id"))
            .replace("{USER_ROLES}", USER_ROLES);
        manager.get_connection().execute_unprepared(&sql).await?;
        Ok(())
    }

    /// The indexes, statistics and the activity table go back; the functions keep their
    /// new bodies (ACTIVE cohorts then fail: bring back the previous bodies too, or go
    /// down one more step) (the previous ones are in `m20261202_000602_create_business_metrics`).
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP TRIGGER IF EXISTS jobs_activity_month ON jobs;
                 DROP FUNCTION IF EXISTS public.jobs_record_activity_month();
                 DROP TABLE IF EXISTS job_activity_months;
                 CREATE INDEX IF NOT EXISTS jobs_created_idx ON jobs (created_at);
                 DROP INDEX IF EXISTS jobs_created_cover_idx;
                 DROP INDEX IF EXISTS jobs_first_success_idx;
                 DROP STATISTICS IF EXISTS jobs_day_stats;",
            )
            .await?;
        Ok(())
    }
}
