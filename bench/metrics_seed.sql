-- Seeds a migrated database with 100,000 customers and 24 months of history for
-- bench/metrics.sh, in set-based SQL (generate_series, INSERT ... SELECT): sign-ups over
-- 24 months (growing), verification, trials, subscriptions (monthly and yearly) with
-- upgrades, downgrades, cancellations, reactivations under a new subscription, past-due
-- spells; jobs (scans, preparations, publishes; succeeded, failed, canceled); support
-- tickets with responses, resolutions and CSAT; NPS answers; two A/B experiments with
-- assignments and conversions. Deterministic (setseed). Run as the owner.
\set ON_ERROR_STOP on
SELECT setseed(0.15);
SET synchronous_commit = off;

-- Customers: sign-ups grow over the 24 months (the square root of a uniform draw puts
-- more of them late); 70 % verify their address within two days.
CREATE TEMP TABLE bench_users AS
SELECT gen_random_uuid() AS id, g,
       now() - interval '730 days' * (1 - sqrt(random())) AS created_at,
       random() AS r, random() AS r2, random() AS r3
FROM generate_series(1, 100000) g;
INSERT INTO users (id, email, password_hash, created_at, updated_at, email_verified_at)
SELECT id, 'bench' || g || '@example.com', 'x', created_at, created_at,
       CASE WHEN r < 0.7 THEN created_at + interval '2 days' * random() END
FROM bench_users;

-- Subscribers (40 %): a trial (half of them), the first payment, then changes at
-- fractions of the time between the first payment and now (so every customer's story
-- fits in its life): a past-due spell, an upgrade, a downgrade, a cancellation, a
-- reactivation on a new subscription.
CREATE TEMP TABLE bench_subs AS
SELECT u.id AS user_id, u.created_at, 'sub_' || u.g AS sub, x.trial,
       u.created_at + CASE WHEN x.trial THEN interval '14 days' ELSE interval '30 days' * random() END AS paid_at,
       1 + floor(random() * 3)::int AS plan0,                      -- 1 starter, 2 pro, 3 scale
       CASE WHEN random() < 0.2 THEN 'year' ELSE 'month' END AS interval0,
       1 + floor(random() * 3)::int AS seats,
       random() AS r_up, random() AS r_down, random() AS r_due, random() AS r_cancel, random() AS r_back,
       random() AS t1, random() AS t2, random() AS t3, random() AS t4, random() AS t5
FROM bench_users u CROSS JOIN LATERAL (SELECT random() < 0.5 AS trial, u.g) x
WHERE u.r3 < 0.4;

-- The time at fraction `f` of the way from the first payment to now.
CREATE FUNCTION pg_temp.at(s bench_subs, f double precision) RETURNS timestamptz
  LANGUAGE sql STABLE AS $$ SELECT s.paid_at + (now() - s.paid_at) * f $$;

CREATE TEMP TABLE bench_events (user_id uuid, sub text, at timestamptz, plan int, billing_interval text,
                                status text, quantity int);
INSERT INTO bench_events
SELECT user_id, sub, created_at + interval '1 hour', plan0, interval0, 'trialing', seats FROM bench_subs WHERE trial;
INSERT INTO bench_events
SELECT user_id, sub, paid_at, plan0, interval0, 'active', seats FROM bench_subs;
-- 10 % cancel early (5 to 10 % of the way) and change nothing else.
INSERT INTO bench_events
SELECT user_id, sub, pg_temp.at(s, 0.05 + 0.05 * t3), plan0, interval0, 'canceled', seats
FROM bench_subs s WHERE r_cancel >= 0.9;
-- A past-due spell (10 %), paid again; a third of them unpaid (no MRR) in between.
INSERT INTO bench_events
SELECT user_id, sub, pg_temp.at(s, 0.15 + 0.03 * t4), plan0, interval0, 'past_due', seats
FROM bench_subs s WHERE r_due < 0.1 AND r_cancel < 0.9;
INSERT INTO bench_events
SELECT user_id, sub, pg_temp.at(s, 0.19 + 0.03 * t4), plan0, interval0,
       CASE WHEN r_due < 0.03 THEN 'unpaid' ELSE 'active' END, seats
FROM bench_subs s WHERE r_due < 0.1 AND r_cancel < 0.9;
INSERT INTO bench_events
SELECT user_id, sub, pg_temp.at(s, 0.23 + 0.01 * t4), plan0, interval0, 'active', seats
FROM bench_subs s WHERE r_due < 0.03 AND r_cancel < 0.9;
-- Upgrades (30 %: a dearer plan, or yearly on the dearest).
INSERT INTO bench_events
SELECT user_id, sub, pg_temp.at(s, 0.25 + 0.2 * t2),
       least(plan0 + 1, 3), CASE WHEN plan0 = 3 THEN 'year' ELSE interval0 END, 'active', seats
FROM bench_subs s WHERE r_up < 0.3 AND r_cancel < 0.9;
-- Downgrades (15 %: a cheaper plan, fewer seats).
INSERT INTO bench_events
SELECT user_id, sub, pg_temp.at(s, 0.5 + 0.1 * t3),
       greatest(plan0 - 1, 1), interval0, 'active', greatest(seats - 1, 1)
FROM bench_subs s WHERE r_down < 0.15 AND r_cancel < 0.9;
-- Cancellations (40 %), and half of them come back later on a new monthly subscription.
INSERT INTO bench_events
SELECT user_id, sub, pg_temp.at(s, 0.62 + 0.2 * t5), plan0, interval0, 'canceled', seats
FROM bench_subs s WHERE r_cancel < 0.4;
INSERT INTO bench_events
SELECT user_id, sub || '_b', pg_temp.at(s, 0.85 + 0.1 * t1), plan0, 'month', 'active', 1
FROM bench_subs s WHERE r_cancel < 0.4 AND r_back < 0.5;
DELETE FROM bench_events WHERE at >= now();

INSERT INTO billing_subscription_history (user_id, subscription_id, effective_at, plan, billing_interval, status,
    ended, quantity, unit_amount_cents, currency, mrr_cents, created_at)
SELECT e.user_id, e.sub, e.at, p.plan, e.billing_interval, e.status, e.status = 'canceled', e.quantity, p.price, 'eur',
       subscription_mrr_cents(e.status, e.status = 'canceled', e.billing_interval, e.quantity, p.price), e.at
FROM bench_events e
CROSS JOIN LATERAL (SELECT (ARRAY['starter', 'pro', 'scale'])[e.plan] AS plan,
                           (CASE e.billing_interval WHEN 'year' THEN ARRAY[19000, 49000, 149000]
                                                    ELSE ARRAY[1900, 4900, 14900] END)[e.plan]::bigint AS price) p
ORDER BY e.at;
-- Each customer's plan now: its paying subscription's, else free.
UPDATE users u SET plan = l.plan
FROM (SELECT DISTINCT ON (h.user_id) h.user_id, h.plan, h.mrr_cents FROM billing_subscription_history h
      ORDER BY h.user_id, h.effective_at DESC, h.id DESC) l
WHERE l.user_id = u.id AND l.mrr_cents > 0;

-- Jobs: 70 % of customers create 1 to 40 over their life (about 1.5 million): kind by
-- share (scan 50 %, prepare 35 %, publish 15 %), 88 % succeed, 9 % fail, 3 % canceled.
INSERT INTO jobs (id, user_id, kind, status, created_at, updated_at, finished_at)
SELECT gen_random_uuid(), j.id, j.kind, j.status, j.at, j.at,
       CASE WHEN j.status IN ('succeeded', 'failed') THEN j.at + interval '40 seconds' END
FROM (
  SELECT u.id, u.created_at + (now() - u.created_at) * power(random(), 2) AS at,
         CASE WHEN k < 0.5 THEN 'scan' WHEN k < 0.85 THEN 'prepare' ELSE 'publish' END AS kind,
         CASE WHEN s < 0.88 THEN 'succeeded' WHEN s < 0.97 THEN 'failed' ELSE 'canceled' END AS status
  FROM bench_users u
  -- The count from the user's own draw: a lateral call that does not refer to the
  -- user would be computed once for all of them.
  CROSS JOIN LATERAL generate_series(1, 1 + floor(u.r2 * 40)::int) n
  CROSS JOIN LATERAL (SELECT random() AS k, random() AS s, n) x
  WHERE u.r < 0.7
) j;

-- Tickets: 8 % of customers open 1 to 3; 90 % answered within 1 to 30 hours, 70 %
-- resolved within 1 to 10 days, some closed after; a third of the resolved are rated.
CREATE TEMP TABLE bench_tickets AS
SELECT gen_random_uuid() AS id, u.id AS user_id,
       u.created_at + (now() - u.created_at) * random() AS at, random() AS a, random() AS b, random() AS c
FROM bench_users u CROSS JOIN LATERAL generate_series(1, 1 + floor(u.r2 * 3)::int) n
WHERE u.r BETWEEN 0.5 AND 0.58;
INSERT INTO tickets (id, user_id, subject, category, status, created_at, updated_at, first_response_at,
                     resolved_at, closed_at)
SELECT id, user_id, 'Help', 'other',
       CASE WHEN b < 0.7 AND c < 0.5 THEN 'closed' WHEN b < 0.7 THEN 'resolved' WHEN a < 0.9 THEN 'pending' ELSE 'open' END,
       at, at,
       CASE WHEN a < 0.9 THEN at + interval '1 hour' + interval '29 hours' * random() END,
       CASE WHEN b < 0.7 THEN at + interval '1 day' + interval '9 days' * random() END,
       CASE WHEN b < 0.7 AND c < 0.5 THEN at + interval '12 days' END
FROM bench_tickets;
INSERT INTO ticket_csat (user_id, ticket_id, score, created_at)
SELECT user_id, id, 1 + floor(random() * 5)::int, resolved_at + interval '1 hour'
FROM tickets WHERE resolved_at IS NOT NULL AND random() < 0.33;

-- NPS: a quarter of the customers answer, once to three times 90+ days apart.
INSERT INTO nps_responses (id, user_id, score, comment, created_at)
SELECT gen_random_uuid(), u.id, floor(random() * 11)::int,
       CASE WHEN random() < 0.2 THEN 'comment ' || u.g END,
       least(u.created_at + interval '30 days' + interval '120 days' * (n - 1) + interval '30 days' * random(),
             now() - interval '1 minute')
FROM bench_users u CROSS JOIN LATERAL generate_series(1, 1 + floor(u.r2 * 3)::int) n
WHERE u.r BETWEEN 0.2 AND 0.45;

-- Experiments: one for everybody (a third of the customers exposed), one for new users.
INSERT INTO experiments (key, variants, audience, started_at) VALUES
  ('pricing.page', '[{"name": "control", "weight": 50}, {"name": "annual-first", "weight": 50}]', 'all',
   now() - interval '300 days'),
  ('onboarding', '[{"name": "control", "weight": 34}, {"name": "video", "weight": 33}, {"name": "checklist", "weight": 33}]',
   'new_users', now() - interval '120 days');
INSERT INTO experiment_assignments (user_id, experiment_key, variant, assigned_at)
SELECT id, 'pricing.page', CASE WHEN random() < 0.5 THEN 'control' ELSE 'annual-first' END,
       greatest(created_at, now() - interval '300 days') + interval '1 hour'
FROM bench_users WHERE random() < 0.33;
INSERT INTO experiment_assignments (user_id, experiment_key, variant, assigned_at)
SELECT id, 'onboarding', (ARRAY['control', 'video', 'checklist'])[1 + floor(random() * 3)::int],
       created_at + interval '1 minute'
FROM bench_users WHERE created_at > now() - interval '120 days';
INSERT INTO experiment_conversions (user_id, experiment_key, goal, converted_at)
SELECT user_id, experiment_key, 'clicked_buy', assigned_at + interval '1 day'
FROM experiment_assignments WHERE random() < CASE WHEN variant = 'control' THEN 0.10 ELSE 0.12 END;

-- The administrator the metrics run for.
INSERT INTO users (id, email, password_hash, role) VALUES (gen_random_uuid(), 'bench-admin@example.com', 'x', 'admin');
VACUUM ANALYZE;
