use sea_orm_migration::prelude::*;

/// SendGrid's bounce lookup finds the account through `users_email_key` (citext's own
/// equality, named with its schema) instead of comparing `lower(email)`, which scanned
/// every user for each event batch (found by the attacker review of issue 13).
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000901_bounce_lookup_by_index"
    }
}

const UP: &str = r#"
CREATE OR REPLACE FUNCTION priv.email_provider_events(events jsonb)
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
      -- citext's equality, named with its schema (public is off this function's
      -- search_path), so the lookup uses users_email_key instead of scanning users.
      UPDATE public.users u
         SET email_undeliverable_at = b.at, email_undeliverable_reason = b.event || ': ' || b.reason
        FROM (SELECT DISTINCT ON (lower(email)) email, event, at, reason FROM e
               WHERE event IN ('bounce', 'blocked', 'dropped', 'spamreport') AND email IS NOT NULL
               ORDER BY lower(email), at DESC) b
       WHERE u.email OPERATOR(public.=) b.email::public.citext AND u.email_undeliverable_at IS NULL
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
"#;

const DOWN: &str = r#"
CREATE OR REPLACE FUNCTION priv.email_provider_events(events jsonb)
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
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(DOWN).await?;
        Ok(())
    }
}
