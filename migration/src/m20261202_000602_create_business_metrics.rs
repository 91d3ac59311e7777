use crate::rls::app_role;
use sea_orm_migration::prelude::*;

/// Business metrics for administrators, computed in PostgreSQL.
///
/// A role of its own, `plinth_metrics`, reads across tenants: an admin's request
/// switches to it only for the duration of a metric field (`RequestTx::acting_as`), so
/// `plinth_admin` itself gains no cross-tenant read, and every other query of an admin
/// still sees only the admin's rows. Its policies are read-only and fail closed: they
/// match rows only while the request's user is an administrator in `users`
/// (`priv.metrics_caller_is_admin`), so the role switched to without an admin sees
/// nothing.
///
/// The functions in schema `metrics` are SECURITY INVOKER (they read through those
/// policies), executable by `plinth_metrics` only; no rows are loaded into the server,
/// only the aggregates each returns. Definitions (the standard SaaS ones, as ChartMogul,
/// Baremetrics and the KeyBanc SaaS survey use them):
/// - MRR at an instant: the sum over subscriptions of the monthly-normalised amount of
///   their latest history row strictly before it (`billing_subscription_history`).
/// - Movements, per customer (a user), each change of the customer's MRR at one
///   instant: new (0 → > 0, never paid before), reactivation (0 → > 0, paid before),
///   expansion (up, was > 0), contraction (down, stays > 0), churn (> 0 → 0). Their sum
///   over a bucket is exactly closing − opening MRR.
/// - Churn over a bucket, for the customers paying at its start: logo churn = those
///   not paying at its end ÷ those paying at its start; gross revenue churn = (MRR
///   lost to churn + contraction) ÷ opening MRR; net revenue retention = their MRR at
///   the end ÷ their MRR at the start (expansion included, new customers excluded).
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000602_create_business_metrics"
    }
}

const SQL: &str = r#"
GRANT USAGE ON SCHEMA priv TO plinth_metrics;

-- Whether the request's user is an administrator: the condition of every metrics
-- policy (DEFINER: the policy on `users` cannot read `users` through itself).
CREATE FUNCTION priv.metrics_caller_is_admin()
  RETURNS boolean
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$ SELECT EXISTS (SELECT 1 FROM public.users u
                       WHERE u.id = NULLIF(current_setting('plinth.user_id', true), '')::uuid
                         AND u.role = 'admin') $$;
REVOKE ALL ON FUNCTION priv.metrics_caller_is_admin() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION priv.metrics_caller_is_admin() TO plinth_metrics;

CREATE POLICY users_metrics ON users FOR SELECT TO plinth_metrics
  USING ((SELECT priv.metrics_caller_is_admin()));
GRANT SELECT (id, role, created_at, email_verified_at, plan) ON users TO plinth_metrics;
CREATE POLICY jobs_metrics ON jobs FOR SELECT TO plinth_metrics
  USING ((SELECT priv.metrics_caller_is_admin()));
GRANT SELECT (user_id, kind, status, created_at, finished_at) ON jobs TO plinth_metrics;
CREATE POLICY billing_subscription_history_metrics ON billing_subscription_history FOR SELECT TO plinth_metrics
  USING ((SELECT priv.metrics_caller_is_admin()));
GRANT SELECT ON billing_subscription_history TO plinth_metrics;

CREATE INDEX jobs_created_idx ON jobs (created_at);
CREATE INDEX users_created_idx ON users (created_at);

CREATE SCHEMA metrics;
REVOKE ALL ON SCHEMA metrics FROM PUBLIC;
GRANT USAGE ON SCHEMA metrics TO plinth_metrics;

-- The bucket starts of [from, to): calendar days, ISO weeks or months in UTC, the
-- first the one containing `from`, plus the end of the last (n + 1 points).
CREATE FUNCTION metrics.points(from_at timestamptz, to_at timestamptz, step text)
  RETURNS timestamptz[] LANGUAGE sql IMMUTABLE
  AS $$ SELECT array_agg(b ORDER BY b) FROM generate_series(
          date_trunc(step, from_at, 'UTC'),
          date_trunc(step, to_at - interval '1 microsecond', 'UTC') + ('1 ' || step)::interval,
          ('1 ' || step)::interval) b $$;

-- Every change of a customer's MRR strictly before `upto`: its time, the MRR before
-- and after, and whether the customer had paid before it.
CREATE FUNCTION metrics.mrr_changes(upto timestamptz)
  RETURNS TABLE (user_id uuid, at timestamptz, before_cents bigint, after_cents bigint, paid_before boolean)
  LANGUAGE sql STABLE
  AS $$
  WITH sub_deltas AS (
    SELECT h.user_id, h.effective_at AS at,
           h.mrr_cents - coalesce(lag(h.mrr_cents) OVER (PARTITION BY h.user_id, h.subscription_id
                                                         ORDER BY h.effective_at, h.id), 0) AS delta
    FROM public.billing_subscription_history h
    WHERE h.effective_at < upto
  ), user_deltas AS (
    SELECT d.user_id, d.at, sum(d.delta)::bigint AS delta
    FROM sub_deltas d GROUP BY d.user_id, d.at HAVING sum(d.delta) <> 0
  ), running AS (
    SELECT u.user_id, u.at, u.delta, (sum(u.delta) OVER (PARTITION BY u.user_id ORDER BY u.at))::bigint AS after_cents
    FROM user_deltas u
  )
  SELECT r.user_id, r.at, r.after_cents - r.delta, r.after_cents,
         coalesce(bool_or(r.after_cents > 0) OVER (PARTITION BY r.user_id ORDER BY r.at
                                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), false)
  FROM running r $$;

-- Each paying customer's MRR at each of `points` (1-based index), from the changes
-- strictly before it; customers at 0 are left out.
CREATE FUNCTION metrics.mrr_at(points timestamptz[])
  RETURNS TABLE (point integer, user_id uuid, mrr_cents bigint)
  LANGUAGE sql STABLE
  AS $$
  SELECT k, c.user_id, c.after_cents
  FROM (SELECT c.user_id, c.at, c.after_cents, lead(c.at) OVER (PARTITION BY c.user_id ORDER BY c.at) AS next_at
        FROM metrics.mrr_changes(points[array_upper(points, 1)]) c) c
  CROSS JOIN LATERAL generate_series(width_bucket(c.at, points) + 1,
                                     coalesce(width_bucket(c.next_at, points), array_length(points, 1))) k
  WHERE c.after_cents > 0 $$;

-- MRR per bucket with its movements (cents); closing − opening = the movements' sum.
CREATE FUNCTION metrics.mrr(from_at timestamptz, to_at timestamptz, step text)
  RETURNS TABLE (bucket_start timestamptz, bucket_end timestamptz, opening_cents bigint, closing_cents bigint,
                 new_cents bigint, expansion_cents bigint, contraction_cents bigint, churn_cents bigint,
                 reactivation_cents bigint, customers bigint)
  LANGUAGE sql STABLE
  AS $$
  WITH p AS (SELECT metrics.points(from_at, to_at, step) AS pts),
  changes AS (
    SELECT c.*, width_bucket(c.at, p.pts) AS k FROM p, metrics.mrr_changes(p.pts[array_upper(p.pts, 1)]) c
  ),
  opening AS (SELECT coalesce(sum(after_cents - before_cents), 0)::bigint AS cents FROM changes WHERE k = 0),
  moves AS (
    SELECT k,
      coalesce(sum(after_cents) FILTER (WHERE before_cents = 0 AND NOT paid_before), 0)::bigint AS new_cents,
      coalesce(sum(after_cents - before_cents) FILTER (WHERE before_cents > 0 AND after_cents > before_cents), 0)::bigint AS expansion_cents,
      coalesce(sum(before_cents - after_cents) FILTER (WHERE after_cents > 0 AND after_cents < before_cents), 0)::bigint AS contraction_cents,
      coalesce(sum(before_cents) FILTER (WHERE after_cents = 0), 0)::bigint AS churn_cents,
      coalesce(sum(after_cents) FILTER (WHERE before_cents = 0 AND paid_before), 0)::bigint AS reactivation_cents,
      sum(after_cents - before_cents)::bigint AS net_cents
    FROM changes WHERE k > 0 GROUP BY k
  ),
  paying AS (SELECT m.point, count(*) AS n FROM p, metrics.mrr_at(p.pts) m GROUP BY m.point),
  buckets AS (
    SELECT k, p.pts[k] AS s, p.pts[k + 1] AS e FROM p, generate_series(1, array_length(p.pts, 1) - 1) k
  )
  SELECT b.s, b.e,
         (o.cents + coalesce(sum(m.net_cents) OVER w, 0) - coalesce(m.net_cents, 0))::bigint,
         (o.cents + coalesce(sum(m.net_cents) OVER w, 0))::bigint,
         coalesce(m.new_cents, 0), coalesce(m.expansion_cents, 0), coalesce(m.contraction_cents, 0),
         coalesce(m.churn_cents, 0), coalesce(m.reactivation_cents, 0), coalesce(c.n, 0)
  FROM buckets b CROSS JOIN opening o
  LEFT JOIN moves m ON m.k = b.k
  LEFT JOIN paying c ON c.point = b.k + 1
  WINDOW w AS (ORDER BY b.k)
  ORDER BY b.k $$;

-- Churn per bucket, over the customers paying at its start (rates NULL without any).
CREATE FUNCTION metrics.churn(from_at timestamptz, to_at timestamptz, step text)
  RETURNS TABLE (bucket_start timestamptz, bucket_end timestamptz, customers_start bigint, customers_churned bigint,
                 opening_cents bigint, churned_cents bigint, contraction_cents bigint, expansion_cents bigint,
                 logo_churn_rate double precision, revenue_churn_rate double precision,
                 net_revenue_retention double precision)
  LANGUAGE sql STABLE
  AS $$
  WITH p AS (SELECT metrics.points(from_at, to_at, step) AS pts),
  m AS (SELECT x.* FROM p, metrics.mrr_at(p.pts) x),
  agg AS (
    SELECT s.point AS k, count(*) AS customers, count(*) FILTER (WHERE e.user_id IS NULL) AS churned,
           sum(s.mrr_cents)::bigint AS opening,
           coalesce(sum(s.mrr_cents) FILTER (WHERE e.user_id IS NULL), 0)::bigint AS churned_cents,
           coalesce(sum(s.mrr_cents - e.mrr_cents) FILTER (WHERE e.mrr_cents < s.mrr_cents), 0)::bigint AS contraction,
           coalesce(sum(e.mrr_cents - s.mrr_cents) FILTER (WHERE e.mrr_cents > s.mrr_cents), 0)::bigint AS expansion,
           coalesce(sum(e.mrr_cents), 0)::bigint AS retained
    FROM m s LEFT JOIN m e ON e.user_id = s.user_id AND e.point = s.point + 1
    GROUP BY s.point
  )
  SELECT p.pts[g.k], p.pts[g.k + 1], coalesce(a.customers, 0), coalesce(a.churned, 0), coalesce(a.opening, 0),
         coalesce(a.churned_cents, 0), coalesce(a.contraction, 0), coalesce(a.expansion, 0),
         a.churned::double precision / NULLIF(a.customers, 0),
         (a.churned_cents + a.contraction)::double precision / NULLIF(a.opening, 0),
         a.retained::double precision / NULLIF(a.opening, 0)
  FROM p CROSS JOIN generate_series(1, array_length(p.pts, 1) - 1) AS g(k)
  LEFT JOIN agg a ON a.k = g.k
  ORDER BY g.k $$;

-- The funnel of the customers (role user) who signed up in [from, to): verified their
-- address, started a trial, ever paid (a history row with MRR), and of those who
-- trialled, how many paid after the trial began.
CREATE FUNCTION metrics.conversion(from_at timestamptz, to_at timestamptz)
  RETURNS TABLE (signups bigint, verified bigint, trials bigint, paid bigint, trials_paid bigint)
  LANGUAGE sql STABLE
  AS $$
  WITH s AS (
    SELECT u.id, u.email_verified_at IS NOT NULL AS verified,
           (SELECT min(h.effective_at) FROM public.billing_subscription_history h
             WHERE h.user_id = u.id AND h.status = 'trialing') AS trial_at,
           (SELECT min(h.effective_at) FROM public.billing_subscription_history h
             WHERE h.user_id = u.id AND h.mrr_cents > 0) AS paid_at
    FROM public.users u
    WHERE u.role = 'user' AND u.created_at >= from_at AND u.created_at < to_at
  )
  SELECT count(*), count(*) FILTER (WHERE verified), count(trial_at), count(paid_at),
         count(*) FILTER (WHERE paid_at >= trial_at)
  FROM s $$;

-- Of the customers who signed up in [from, to): how many had a first successful job
-- within `within_days` of signing up; the time to the first successful job (seconds:
-- median and 90th percentile, continuous) over those who had one at all.
CREATE FUNCTION metrics.activation(from_at timestamptz, to_at timestamptz, within_days integer)
  RETURNS TABLE (signups bigint, activated bigint, with_first_job bigint,
                 median_seconds double precision, p90_seconds double precision)
  LANGUAGE sql STABLE
  AS $$
  WITH s AS (
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
CREATE FUNCTION metrics.cohorts(from_at timestamptz, to_at timestamptz, metric text, until timestamptz)
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
    SELECT c.cohort, date_trunc('month', j.created_at, 'UTC') AS month_start, count(DISTINCT j.user_id) AS n
    FROM c JOIN public.jobs j ON j.user_id = c.id
    WHERE metric = 'active'
    GROUP BY 1, 2
  ),
  revenue AS (
    SELECT c.cohort, p.pts[m.point - 1] AS month_start, sum(m.mrr_cents) AS n
    FROM p, metrics.mrr_at(p.pts) m JOIN c ON c.id = m.user_id
    WHERE metric = 'revenue' AND m.point > 1
    GROUP BY 1, 2
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

-- Jobs created per UTC day of [from, to) and plan (the customer's plan now), by kind.
CREATE FUNCTION metrics.usage_totals(from_at timestamptz, to_at timestamptz)
  RETURNS TABLE (day date, plan text, scans bigint, preparations bigint, publishes bigint)
  LANGUAGE sql STABLE
  AS $$
  SELECT (j.created_at AT TIME ZONE 'UTC')::date, u.plan,
         count(*) FILTER (WHERE j.kind = 'scan'), count(*) FILTER (WHERE j.kind = 'prepare'),
         count(*) FILTER (WHERE j.kind = 'publish')
  FROM public.jobs j JOIN public.users u ON u.id = j.user_id
  WHERE j.created_at >= from_at AND j.created_at < to_at
  GROUP BY 1, 2 ORDER BY 1, 2 $$;

DO $$
DECLARE f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'metrics'::regnamespace LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO plinth_metrics', f);
  END LOOP;
END $$;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(&app_role("plinth_metrics")).await?;
        db.execute_unprepared(SQL).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP SCHEMA IF EXISTS metrics CASCADE;
                 DROP INDEX IF EXISTS jobs_created_idx; DROP INDEX IF EXISTS users_created_idx;
                 DROP POLICY IF EXISTS users_metrics ON users; DROP POLICY IF EXISTS jobs_metrics ON jobs;
                 DROP POLICY IF EXISTS billing_subscription_history_metrics ON billing_subscription_history;
                 REVOKE ALL ON users, jobs, billing_subscription_history FROM plinth_metrics;
                 DROP FUNCTION IF EXISTS priv.metrics_caller_is_admin();
                 REVOKE USAGE ON SCHEMA priv FROM plinth_metrics;",
            )
            .await?;
        Ok(())
    }
}
