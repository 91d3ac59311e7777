-- The quota check of one createJob, as the request runs it (pgbench script; :uid set by
-- bench/quota.sh): the period lookup, then the conditional upsert.
BEGIN;
SELECT set_config('role', 'plinth_user', true), set_config('plinth.user_id', ':uid', true);
SELECT current_period_start, current_period_end FROM billing_accounts
 WHERE user_id = ':uid' AND account_state IN ('active', 'grace') AND current_period_start <= now() AND current_period_end > now();
INSERT INTO quota_usage AS q (user_id, metric, period_start, used)
SELECT ':uid', 'scans', date_trunc('month', now()), 1 WHERE 1 <= 1000000000
ON CONFLICT (user_id, metric, period_start)
  DO UPDATE SET used = q.used + EXCLUDED.used, updated_at = now() WHERE q.used + EXCLUDED.used <= 1000000000
RETURNING used;
COMMIT;
