use crate::rls::{tenant_table, CURRENT_USER_ID, USER_ROLES};
use sea_orm_migration::prelude::*;

/// Reminders ("relances"), scheduled from the database, and mail that is checked again
/// when it is about to leave.
///
/// `email_reminders` records each reminder once per occurrence under a unique key
/// (user, kind, occurrence): an unverified address on day 1 and day 3, a past-due
/// subscription on day 3 and day 7 of its spell, a trial 3 days before it ends (the
/// Stripe webhook `trial_will_end` claims the same key, so whichever comes first tells
/// the user, once). `priv.email_reminders_run(at)` records what is due at `at` (the
/// clock is a parameter: tests move it) and queues the mail that needs no secret; the
/// verification reminders it returns get their one-time token from the server in the
/// same transaction. Concurrent runs on several instances meet on the key: the second
/// waits for the first's insert and does nothing.
///
/// `priv.email_claim` now also refuses, at the moment a row would leave, mail nobody
/// wants any more: onboarding for an account that unsubscribed or whose address became
/// undeliverable after the row was queued, a verification reminder for an address
/// verified since, a payment reminder for a subscription paid since. Such a row ends
/// `skipped` with its reason; transactional mail is always sent.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000401_schedule_email_reminders"
    }
}

const SQL: &str = r#"
CREATE TABLE email_reminders (
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  kind       text NOT NULL CHECK (kind IN ('verify_email', 'payment_reminder', 'trial_ending')),
  occurrence text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, kind, occurrence)
);

ALTER TABLE email_outbox DROP CONSTRAINT email_outbox_status_check;
ALTER TABLE email_outbox ADD CONSTRAINT email_outbox_status_check
  CHECK (status IN ('pending', 'sent', 'failed', 'skipped'));
ALTER TABLE email_outbox ADD COLUMN skipped_reason text;

-- Due reminders at `at`: each recorded once; payment and trial reminders are queued
-- (mail and in-app notice) here, verification reminders are returned with
-- queued = false for the server to queue with a fresh token. A reminder is due from its
-- moment for two days (an outage shorter than that skips nothing; a backlog of old
-- accounts is never sent).
CREATE FUNCTION priv.email_reminders_run(at timestamptz)
  RETURNS TABLE (user_id uuid, kind text, occurrence text, to_email text, queued boolean)
  LANGUAGE sql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
    WITH verify AS (
      SELECT u.id AS user_id, 'verify_email'::text AS kind, 'day' || d.day AS occurrence, '{}'::jsonb AS data
        FROM public.users u
        CROSS JOIN (VALUES (1), (3)) AS d (day)
       WHERE u.role = 'user' AND u.email_verified_at IS NULL AND u.email_undeliverable_at IS NULL
         AND u.created_at + make_interval(days => d.day) <= at
         AND u.created_at + make_interval(days => d.day + 2) > at
    ), payment AS (
      SELECT s.user_id, 'payment_reminder'::text AS kind,
             s.subscription_id || ':' || to_char(s.past_due_since AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24MISS')
               || ':day' || d.day AS occurrence,
             jsonb_build_object(
               'plan', initcap(coalesce(s.plan, '')), 'day', d.day,
               'since', to_char(s.past_due_since AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
               'invoice_url', (SELECT i.hosted_invoice_url FROM public.invoices i
                                WHERE i.user_id = s.user_id AND i.status = 'open'
                                ORDER BY i.stripe_created DESC LIMIT 1)) AS data
        FROM public.billing_subscriptions s
        CROSS JOIN (VALUES (3), (7)) AS d (day)
       WHERE s.status IN ('past_due', 'unpaid') AND NOT s.ended AND s.past_due_since IS NOT NULL
         AND s.past_due_since + make_interval(days => d.day) <= at
         AND s.past_due_since + make_interval(days => d.day + 2) > at
    ), trial AS (
      SELECT s.user_id, 'trial_ending'::text AS kind,
             s.subscription_id || ':' || to_char(s.trial_end AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS occurrence,
             jsonb_build_object('plan', initcap(coalesce(s.plan, '')), 'detail', '',
                                'ends_on', to_char(s.trial_end AT TIME ZONE 'UTC', 'YYYY-MM-DD')) AS data
        FROM public.billing_subscriptions s
       WHERE s.status = 'trialing' AND NOT s.ended AND s.trial_end > at
         AND s.trial_end - interval '3 days' <= at
    ), due AS (
      SELECT * FROM (SELECT * FROM verify UNION ALL SELECT * FROM payment UNION ALL SELECT * FROM trial) a
       WHERE NOT EXISTS (SELECT 1 FROM public.email_reminders r
                          WHERE r.user_id = a.user_id AND r.kind = a.kind AND r.occurrence = a.occurrence)
       LIMIT 1000
    ), recorded AS (
      INSERT INTO public.email_reminders (user_id, kind, occurrence)
      SELECT d.user_id, d.kind, d.occurrence FROM due d
      ON CONFLICT DO NOTHING
      RETURNING email_reminders.user_id, email_reminders.kind, email_reminders.occurrence
    ), mailed AS (
      SELECT r.user_id, r.kind, r.occurrence, d.data, u.email::text AS to_email, u.locale,
             CASE r.kind WHEN 'payment_reminder' THEN 'Your Plinth payment is due'
                         ELSE 'Your Plinth trial ends soon' END AS title,
             CASE r.kind WHEN 'payment_reminder'
                         THEN 'The payment for your plan has been due since ' || (d.data ->> 'since')
                              || '. Pay the open invoice or change your payment method in billing.'
                         ELSE 'Your trial ends on ' || (d.data ->> 'ends_on')
                              || '. Add a payment method in billing to keep your plan.' END AS body
        FROM recorded r
        JOIN due d ON d.user_id = r.user_id AND d.kind = r.kind AND d.occurrence = r.occurrence
        JOIN public.users u ON u.id = r.user_id
       WHERE r.kind <> 'verify_email'
    ), told AS (
      INSERT INTO public.notifications (id, user_id, kind, title, body, data)
      SELECT gen_random_uuid(), m.user_id, m.kind, m.title, m.body, m.data FROM mailed m
      RETURNING 1
    ), queued AS (
      INSERT INTO public.email_outbox (id, user_id, to_email, template, subject, body_text, data, locale)
      SELECT gen_random_uuid(), m.user_id, m.to_email, m.kind, m.title, m.body, m.data, m.locale FROM mailed m
      RETURNING user_id
    )
    -- `told` and `queued` run whether or not this reads them.
    SELECT r.user_id, r.kind, r.occurrence, u.email::text, r.kind <> 'verify_email'
      FROM recorded r JOIN public.users u ON u.id = r.user_id
  $$;
REVOKE ALL ON FUNCTION priv.email_reminders_run(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION priv.email_reminders_run(timestamptz) TO plinth_system;

-- Claiming now sorts out the mail nobody wants any more (see the migration's comment):
-- `onboarding` names the templates the onboarding preference stops. A row it refuses
-- is returned with its `skip_reason`, already marked skipped, never leased or counted
-- as an attempt.
DROP FUNCTION priv.email_claim(int, bigint);
CREATE FUNCTION priv.email_claim(batch int, lease_ms bigint, onboarding text[])
  RETURNS TABLE (id uuid, user_id uuid, to_email text, template text, data jsonb, locale text,
                 sealed_secret bytea, attempts int, skip_reason text)
  LANGUAGE sql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
    UPDATE public.email_outbox o
       SET leased_until = CASE WHEN due.reason IS NULL THEN now() + make_interval(secs => lease_ms / 1000.0) END,
           attempts = o.attempts + CASE WHEN due.reason IS NULL THEN 1 ELSE 0 END,
           status = CASE WHEN due.reason IS NULL THEN o.status ELSE 'skipped' END,
           skipped_reason = due.reason,
           sealed_secret = CASE WHEN due.reason IS NULL THEN o.sealed_secret END
      FROM (SELECT q.user_id, q.id,
                   CASE
                     WHEN q.template = ANY (onboarding) AND u.email_undeliverable_at IS NOT NULL
                       THEN 'address undeliverable'
                     WHEN q.template = ANY (onboarding) AND NOT u.email_onboarding
                       THEN 'unsubscribed from onboarding'
                     WHEN q.template = 'verify_email' AND q.data ? 'reminder' AND u.email_verified_at IS NOT NULL
                       THEN 'address verified'
                     WHEN q.template = 'payment_reminder' AND NOT EXISTS (
                            SELECT 1 FROM public.billing_subscriptions s
                             WHERE s.user_id = q.user_id AND s.status IN ('past_due', 'unpaid') AND NOT s.ended)
                       THEN 'paid'
                   END AS reason
              FROM public.email_outbox q
              JOIN public.users u ON u.id = q.user_id
             WHERE q.status = 'pending' AND q.next_attempt_at <= now()
               AND (q.leased_until IS NULL OR q.leased_until < now())
             ORDER BY q.next_attempt_at
             LIMIT least(greatest(batch, 1), 500)
             FOR UPDATE OF q SKIP LOCKED) due
     WHERE o.user_id = due.user_id AND o.id = due.id
    RETURNING o.id, o.user_id, o.to_email::text, o.template, o.data, o.locale, o.sealed_secret, o.attempts,
              due.reason
  $$;
REVOKE ALL ON FUNCTION priv.email_claim(int, bigint, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION priv.email_claim(int, bigint, text[]) TO plinth_system;

-- Pending rows per template and the age of each one's oldest (the metrics).
CREATE FUNCTION priv.email_backlog_by_template()
  RETURNS TABLE (template text, pending bigint, oldest_seconds bigint)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
    SELECT template, count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::bigint
      FROM public.email_outbox WHERE status = 'pending' GROUP BY template
  $$;
REVOKE ALL ON FUNCTION priv.email_backlog_by_template() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION priv.email_backlog_by_template() TO plinth_system;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(SQL).await?;
        db.execute_unprepared(&tenant_table("email_reminders", "user_id")).await?;
        // Users read their reminders; billing (the trial_will_end webhook, acting for
        // the account) records one.
        db.execute_unprepared(&format!(
            "GRANT SELECT ON email_reminders TO {USER_ROLES};
             CREATE POLICY email_reminders_billing ON email_reminders FOR ALL TO plinth_billing
               USING (user_id = {CURRENT_USER_ID}) WITH CHECK (user_id = {CURRENT_USER_ID});
             GRANT SELECT, INSERT ON email_reminders TO plinth_billing;"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                r#"DROP FUNCTION IF EXISTS priv.email_backlog_by_template();
                DROP FUNCTION IF EXISTS priv.email_claim(int, bigint, text[]);
                CREATE FUNCTION priv.email_claim(batch int, lease_ms bigint)
                  RETURNS TABLE (id uuid, user_id uuid, to_email text, template text, data jsonb, locale text,
                                 sealed_secret bytea, attempts int)
                  LANGUAGE sql VOLATILE SECURITY DEFINER
                  SET search_path = pg_catalog, pg_temp
                  AS $$
                    UPDATE public.email_outbox o
                       SET leased_until = now() + make_interval(secs => lease_ms / 1000.0), attempts = o.attempts + 1
                      FROM (SELECT q.user_id, q.id FROM public.email_outbox q
                             WHERE q.status = 'pending' AND q.next_attempt_at <= now()
                               AND (q.leased_until IS NULL OR q.leased_until < now())
                             ORDER BY q.next_attempt_at
                             LIMIT least(greatest(batch, 1), 500)
                             FOR UPDATE SKIP LOCKED) due
                     WHERE o.user_id = due.user_id AND o.id = due.id
                    RETURNING o.id, o.user_id, o.to_email::text, o.template, o.data, o.locale, o.sealed_secret, o.attempts
                  $$;
                REVOKE ALL ON FUNCTION priv.email_claim(int, bigint) FROM PUBLIC;
                GRANT EXECUTE ON FUNCTION priv.email_claim(int, bigint) TO plinth_system;
                DROP FUNCTION IF EXISTS priv.email_reminders_run(timestamptz);
                DROP TABLE IF EXISTS email_reminders;
                UPDATE email_outbox SET status = 'failed' WHERE status = 'skipped';
                ALTER TABLE email_outbox DROP COLUMN skipped_reason;
                ALTER TABLE email_outbox DROP CONSTRAINT email_outbox_status_check;
                ALTER TABLE email_outbox ADD CONSTRAINT email_outbox_status_check
                  CHECK (status IN ('pending', 'sent', 'failed'));"#,
            )
            .await?;
        Ok(())
    }
}
