use sea_orm_migration::prelude::*;

/// What delivering the outbox needs (issue 13): a row carries its one-time secret
/// sealed (erased once sent or failed), a lease and a next attempt time for the
/// delivery worker, the provider's message id and the last error; a user has a locale
/// every mail is written in; new rows wake the workers with NOTIFY. The workers run as
/// `plinth_system` and reach the outbox only through three narrow functions (claim,
/// record, backlog): no policy lets that role read a tenant's rows.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000201_deliver_email"
    }
}

const SQL: &str = r#"
ALTER TABLE users ADD COLUMN locale text NOT NULL DEFAULT 'fr' CHECK (locale IN ('fr', 'en'));
GRANT UPDATE (locale) ON users TO plinth_user, plinth_support, plinth_admin;

ALTER TABLE email_outbox
  ADD COLUMN locale              text NOT NULL DEFAULT 'fr' CHECK (locale IN ('fr', 'en')),
  ADD COLUMN sealed_secret       bytea,
  ADD COLUMN next_attempt_at     timestamptz NOT NULL DEFAULT now(),
  ADD COLUMN leased_until        timestamptz,
  ADD COLUMN provider_message_id text,
  ADD COLUMN last_error          text,
  ADD COLUMN failed_at           timestamptz;

DROP INDEX IF EXISTS email_outbox_pending_idx;
CREATE INDEX email_outbox_due_idx ON email_outbox (next_attempt_at) WHERE status = 'pending';

-- The delivery workers (plinth_system) reach every user's mail through these three
-- functions only: claim due rows, record outcomes, read the backlog's size.
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
-- Outcomes, as [{user_id, id, attempts, outcome: sent|retry|failed, provider_id, reason,
-- delay_ms}]; a row whose attempt number moved on (taken again) is left alone. A sent
-- or failed row loses its sealed secret. Returns how many rows changed.
CREATE FUNCTION priv.email_record(outcomes jsonb)
  RETURNS int
  LANGUAGE sql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
    WITH r AS (
      SELECT * FROM jsonb_to_recordset(outcomes)
        AS x(user_id uuid, id uuid, attempts int, outcome text, provider_id text, reason text, delay_ms bigint)
    ), done AS (
      UPDATE public.email_outbox o
         SET status = CASE r.outcome WHEN 'sent' THEN 'sent' WHEN 'failed' THEN 'failed' ELSE 'pending' END,
             sent_at = CASE WHEN r.outcome = 'sent' THEN now() ELSE o.sent_at END,
             failed_at = CASE WHEN r.outcome = 'failed' THEN now() ELSE o.failed_at END,
             provider_message_id = CASE WHEN r.outcome = 'sent' THEN r.provider_id ELSE o.provider_message_id END,
             last_error = CASE WHEN r.outcome = 'sent' THEN NULL ELSE left(r.reason, 500) END,
             sealed_secret = CASE WHEN r.outcome IN ('sent', 'failed') THEN NULL ELSE o.sealed_secret END,
             leased_until = NULL,
             next_attempt_at = CASE WHEN r.outcome = 'retry'
                                    THEN now() + make_interval(secs => coalesce(r.delay_ms, 0) / 1000.0)
                                    ELSE o.next_attempt_at END
        FROM r
       WHERE o.user_id = r.user_id AND o.id = r.id AND o.attempts = r.attempts AND o.status = 'pending'
      RETURNING 1
    )
    SELECT count(*)::int FROM done
  $$;
CREATE FUNCTION priv.email_backlog()
  RETURNS TABLE (pending bigint, oldest_seconds bigint)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
    SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::bigint
      FROM public.email_outbox WHERE status = 'pending'
  $$;
REVOKE ALL ON FUNCTION priv.email_claim(int, bigint), priv.email_record(jsonb), priv.email_backlog() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION priv.email_claim(int, bigint), priv.email_record(jsonb), priv.email_backlog()
  TO plinth_system;

-- New mail wakes the delivery workers at commit (NOTIFY is delivered then, and once per
-- transaction for a repeated payload).
CREATE FUNCTION email_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('plinth_email_outbox', '');
  RETURN NULL;
END $$;
CREATE TRIGGER email_outbox_notify AFTER INSERT ON email_outbox
  FOR EACH STATEMENT EXECUTE FUNCTION email_outbox_notify();
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
                "DROP TRIGGER IF EXISTS email_outbox_notify ON email_outbox;
                 DROP FUNCTION IF EXISTS email_outbox_notify();
                 DROP FUNCTION IF EXISTS priv.email_claim(int, bigint), priv.email_record(jsonb),
                   priv.email_backlog();
                 DROP INDEX IF EXISTS email_outbox_due_idx;
                 CREATE INDEX email_outbox_pending_idx ON email_outbox (created_at) WHERE status = 'pending';
                 ALTER TABLE email_outbox DROP COLUMN locale, DROP COLUMN sealed_secret,
                   DROP COLUMN next_attempt_at, DROP COLUMN leased_until, DROP COLUMN provider_message_id,
                   DROP COLUMN last_error, DROP COLUMN failed_at;
                 ALTER TABLE users DROP COLUMN locale;",
            )
            .await?;
        Ok(())
    }
}
