use sea_orm_migration::prelude::*;

/// SendGrid's event webhook: a bounce, block, drop or spam report marks the address
/// undeliverable (shown to the user as a notification; non-essential mail to it stops);
/// delivered and opened events are recorded on the outbox row they name.
/// `priv.email_provider_events(events)` applies a verified batch (plinth_system only).
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000203_record_mail_events"
    }
}

const SQL: &str = r#"
ALTER TABLE users
  ADD COLUMN email_undeliverable_at     timestamptz,
  ADD COLUMN email_undeliverable_reason text;
ALTER TABLE email_outbox
  ADD COLUMN provider_status   text,
  ADD COLUMN provider_event_at timestamptz;

-- Events as SendGrid posts them: [{email, event, timestamp, outbox_id (our custom arg),
-- reason, ...}]. Returns how many events changed something.
CREATE FUNCTION priv.email_provider_events(events jsonb)
  RETURNS int
  LANGUAGE sql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
    WITH e AS (
      SELECT x.email, x.event, to_timestamp(coalesce(x."timestamp", extract(epoch FROM now()))) AS at,
             CASE WHEN x.outbox_id ~ '^[0-9a-fA-F-]{36}$' THEN x.outbox_id::uuid END AS outbox_id,
             left(coalesce(x.reason, x.event), 300) AS reason
        FROM jsonb_to_recordset(CASE WHEN jsonb_typeof(events) = 'array' THEN events ELSE '[]'::jsonb END)
          AS x(email text, event text, "timestamp" bigint, outbox_id text, reason text)
    ), bad AS (
      -- citext's operators live in public, off this function's search_path: compare lower().
      UPDATE public.users u
         SET email_undeliverable_at = b.at, email_undeliverable_reason = b.event || ': ' || b.reason
        FROM (SELECT DISTINCT ON (lower(email)) email, event, at, reason FROM e
               WHERE event IN ('bounce', 'blocked', 'dropped', 'spamreport') AND email IS NOT NULL
               ORDER BY lower(email), at DESC) b
       WHERE lower(u.email::text) = lower(b.email) AND u.email_undeliverable_at IS NULL
      RETURNING u.id, b.event
    ), told AS (
      INSERT INTO public.notifications (id, user_id, kind, title, body, data)
      SELECT gen_random_uuid(), bad.id, 'address_undeliverable', 'Your e-mail address cannot receive our mail',
             'Mail to your address came back (' || bad.event || '). Check it, or change it in your settings.',
             jsonb_build_object('event', bad.event)
        FROM bad
      RETURNING 1
    ), tracked AS (
      UPDATE public.email_outbox o
         SET provider_status = e.event, provider_event_at = e.at
        FROM e
       WHERE o.id = e.outbox_id AND e.event IN ('processed', 'delivered', 'open', 'click', 'bounce', 'dropped', 'deferred')
         AND (o.provider_event_at IS NULL OR o.provider_event_at <= e.at)
      RETURNING 1
    )
    SELECT ((SELECT count(*) FROM bad) + (SELECT count(*) FROM told) * 0 + (SELECT count(*) FROM tracked))::int
  $$;
REVOKE ALL ON FUNCTION priv.email_provider_events(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION priv.email_provider_events(jsonb) TO plinth_system;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(SQL).await?;
        // Onboarding stops for an undeliverable address.
        let sequences = super::m20261201_000202_create_email_sequences::SEQUENCES_FUNCTION
            .replace("AND u.email_onboarding", "AND u.email_onboarding AND u.email_undeliverable_at IS NULL")
            .replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION");
        db.execute_unprepared(&sequences).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            &super::m20261201_000202_create_email_sequences::SEQUENCES_FUNCTION
                .replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"),
        )
        .await?;
        db.execute_unprepared(
            "DROP FUNCTION IF EXISTS priv.email_provider_events(jsonb);
             ALTER TABLE email_outbox DROP COLUMN provider_status, DROP COLUMN provider_event_at;
             ALTER TABLE users DROP COLUMN email_undeliverable_at, DROP COLUMN email_undeliverable_reason;",
        )
        .await?;
        Ok(())
    }
}
