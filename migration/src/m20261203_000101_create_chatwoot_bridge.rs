use crate::rls::{CURRENT_USER_ID, USER_ROLES};
use sea_orm_migration::prelude::*;

/// The Chatwoot bridge (issue 14, item 6): support tickets mirrored as conversations of a
/// Chatwoot API inbox, and Chatwoot agents' replies and private notes brought back into
/// the ticket through a signed webhook.
///
/// - `chatwoot_outbox`: what is still to be sent, written by the request that opened,
///   answered or moved a ticket, in its own transaction (a rolled-back reply sends
///   nothing). The delivery loop claims the oldest pending row of each ticket (one
///   ticket's rows leave in order) through `priv.chatwoot_outbox_claim`, calls Chatwoot
///   holding no transaction, and records the outcome through
///   `priv.chatwoot_outbox_record` (fenced on the attempt, as the mail outbox is).
/// - `chatwoot_contacts`, `chatwoot_conversations`: the Chatwoot ids of a user's contact
///   and of each mirrored ticket (`priv.chatwoot_record_mapping`, recorded as soon as
///   Chatwoot answers, so a retry never creates them twice).
/// - `chatwoot_messages`: every Chatwoot message id the bridge sent or took in, by user:
///   a redelivered webhook, or the webhook's echo of a message Plinth sent, is a no-op.
///
/// The webhook crosses tenants (a conversation id names some user's ticket): it runs as
/// `plinth_system` and may only call `priv.chatwoot_inbound_message` (one staff message
/// into the ticket of one mapped conversation, once per Chatwoot message id) and
/// `priv.chatwoot_notify_reply` (the notification and delayed e-mail of a public message
/// that function just took in). Users read their own rows of these tables, never one about
/// an internal note (the subqueries run under their own policies, which hide notes).
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000101_create_chatwoot_bridge"
    }
}

const TABLES: &str = r#"
CREATE TABLE chatwoot_contacts (
  user_id     uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  contact_id  bigint NOT NULL,
  -- The contact's source id in the inbox (Plinth chooses it: `plinth-<user id>`).
  source_id   text NOT NULL CHECK (length(source_id) BETWEEN 1 AND 255),
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE chatwoot_conversations (
  user_id          uuid NOT NULL,
  ticket_id        uuid NOT NULL,
  -- Chatwoot's conversation id (its `display_id`, the number its API and webhooks use).
  conversation_id  bigint NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, ticket_id),
  FOREIGN KEY (user_id, ticket_id) REFERENCES tickets (user_id, id) ON DELETE CASCADE
);
-- The webhook's lookup. Not unique across users (unique keys carry user_id, for Citus):
-- Chatwoot hands each conversation id out once, and an ambiguous id is refused.
CREATE INDEX chatwoot_conversations_conversation_idx ON chatwoot_conversations (conversation_id);

CREATE TABLE chatwoot_messages (
  user_id              uuid NOT NULL,
  chatwoot_message_id  bigint NOT NULL,
  ticket_id            uuid NOT NULL,
  message_id           uuid,
  direction            text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
  created_at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, chatwoot_message_id),
  FOREIGN KEY (user_id, ticket_id) REFERENCES tickets (user_id, id) ON DELETE CASCADE,
  FOREIGN KEY (user_id, message_id) REFERENCES ticket_messages (user_id, id) ON DELETE CASCADE
);
CREATE INDEX chatwoot_messages_message_idx ON chatwoot_messages (user_id, message_id);

CREATE TABLE chatwoot_outbox (
  id               uuid NOT NULL,
  user_id          uuid NOT NULL,
  ticket_id        uuid NOT NULL,
  -- A message to mirror (the ticket's conversation is created first when it has none) ...
  message_id       uuid,
  -- ... or the conversation status to set.
  status           text CHECK (status IN ('open', 'pending', 'resolved')),
  state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
  attempts         int NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  leased_until     timestamptz,
  last_error       text CHECK (length(last_error) <= 1000),
  -- The Chatwoot message created (message rows).
  chatwoot_id      bigint,
  created_at       timestamptz NOT NULL DEFAULT now(),
  sent_at          timestamptz,
  PRIMARY KEY (user_id, id),
  CHECK ((message_id IS NULL) <> (status IS NULL)),
  FOREIGN KEY (user_id, ticket_id) REFERENCES tickets (user_id, id) ON DELETE CASCADE,
  FOREIGN KEY (user_id, message_id) REFERENCES ticket_messages (user_id, id) ON DELETE CASCADE
);
CREATE INDEX chatwoot_outbox_pending_idx ON chatwoot_outbox (user_id, ticket_id, created_at, id)
  WHERE state = 'pending';

-- A committed row wakes the delivery loops (once per transaction).
CREATE FUNCTION chatwoot_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('plinth_chatwoot_outbox', '');
  RETURN NULL;
END $$;
CREATE TRIGGER chatwoot_outbox_notify AFTER INSERT ON chatwoot_outbox
  FOR EACH STATEMENT EXECUTE FUNCTION chatwoot_outbox_notify();
"#;

fn policies() -> String {
    let me = CURRENT_USER_ID;
    let staff = "plinth_support, plinth_admin";
    // A row about a message is the owner's to read only while the owner may read that
    // message: never one about an internal note.
    let visible_message = |table: &str| {
        format!(
            "({table}.message_id IS NULL OR EXISTS (SELECT 1 FROM ticket_messages m
               WHERE m.user_id = {table}.user_id AND m.id = {table}.message_id))"
        )
    };
    let outbox_message = visible_message("chatwoot_outbox");
    let mirrored_message = visible_message("chatwoot_messages");
    let fresh = "chatwoot_outbox.state = 'pending' AND chatwoot_outbox.attempts = 0
                 AND chatwoot_outbox.leased_until IS NULL AND chatwoot_outbox.chatwoot_id IS NULL
                 AND chatwoot_outbox.sent_at IS NULL";
    format!(
        "ALTER TABLE chatwoot_contacts ENABLE ROW LEVEL SECURITY;
         ALTER TABLE chatwoot_contacts FORCE ROW LEVEL SECURITY;
         CREATE POLICY chatwoot_contacts_owner_read ON chatwoot_contacts FOR SELECT TO {USER_ROLES}
           USING (user_id = {me});
         GRANT SELECT ON chatwoot_contacts TO {USER_ROLES};

         ALTER TABLE chatwoot_conversations ENABLE ROW LEVEL SECURITY;
         ALTER TABLE chatwoot_conversations FORCE ROW LEVEL SECURITY;
         CREATE POLICY chatwoot_conversations_owner_read ON chatwoot_conversations FOR SELECT TO {USER_ROLES}
           USING (user_id = {me});
         GRANT SELECT ON chatwoot_conversations TO {USER_ROLES};

         ALTER TABLE chatwoot_messages ENABLE ROW LEVEL SECURITY;
         ALTER TABLE chatwoot_messages FORCE ROW LEVEL SECURITY;
         CREATE POLICY chatwoot_messages_owner_read ON chatwoot_messages FOR SELECT TO {USER_ROLES}
           USING (user_id = {me} AND {mirrored_message});
         GRANT SELECT ON chatwoot_messages TO {USER_ROLES};

         -- The outbox: the owner queues its own messages and status changes; staff queue
         -- their own messages and status changes on any ticket. Nobody updates or deletes.
         ALTER TABLE chatwoot_outbox ENABLE ROW LEVEL SECURITY;
         ALTER TABLE chatwoot_outbox FORCE ROW LEVEL SECURITY;
         CREATE POLICY chatwoot_outbox_owner_read ON chatwoot_outbox FOR SELECT TO {USER_ROLES}
           USING (user_id = {me} AND {outbox_message});
         CREATE POLICY chatwoot_outbox_owner_insert ON chatwoot_outbox FOR INSERT TO {USER_ROLES}
           WITH CHECK (user_id = {me} AND {fresh}
                       AND (message_id IS NULL OR EXISTS (SELECT 1 FROM ticket_messages m
                             WHERE m.user_id = chatwoot_outbox.user_id AND m.id = chatwoot_outbox.message_id
                               AND m.author_id = {me} AND NOT m.author_is_staff)));
         CREATE POLICY chatwoot_outbox_staff_read ON chatwoot_outbox FOR SELECT TO plinth_admin
           USING ({me} IS NOT NULL);
         CREATE POLICY chatwoot_outbox_staff_insert ON chatwoot_outbox FOR INSERT TO {staff}
           WITH CHECK ({me} IS NOT NULL AND {fresh}
                       AND EXISTS (SELECT 1 FROM tickets t
                                    WHERE t.user_id = chatwoot_outbox.user_id AND t.id = chatwoot_outbox.ticket_id)
                       AND (message_id IS NULL OR EXISTS (SELECT 1 FROM ticket_messages m
                             WHERE m.user_id = chatwoot_outbox.user_id AND m.id = chatwoot_outbox.message_id
                               AND m.author_id = {me} AND m.author_is_staff)));
         GRANT SELECT, INSERT ON chatwoot_outbox TO {USER_ROLES};"
    )
}

const FUNCTIONS: &str = r#"
-- Claims the oldest pending row of up to `max_rows` tickets whose turn has come, leases
-- it for `lease_ms` and counts the attempt; returns what its delivery needs.
CREATE FUNCTION priv.chatwoot_outbox_claim(max_rows int, lease_ms bigint)
  RETURNS TABLE (id uuid, user_id uuid, ticket_id uuid, attempts int, status text, message_id uuid,
                 body text, internal boolean, author_is_staff boolean, author_name text,
                 subject text, category text, priority text, email text,
                 contact_id bigint, source_id text, conversation_id bigint)
  LANGUAGE sql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
    WITH heads AS (
      SELECT DISTINCT ON (o.user_id, o.ticket_id) o.user_id, o.id
        FROM public.chatwoot_outbox o
       WHERE o.state = 'pending'
       ORDER BY o.user_id, o.ticket_id, o.created_at, o.id),
    due AS (
      SELECT o.user_id, o.id FROM public.chatwoot_outbox o
        JOIN heads h ON h.user_id = o.user_id AND h.id = o.id
       WHERE o.next_attempt_at <= now() AND (o.leased_until IS NULL OR o.leased_until <= now())
       ORDER BY o.next_attempt_at
       LIMIT max_rows
       FOR UPDATE OF o SKIP LOCKED),
    taken AS (
      UPDATE public.chatwoot_outbox o
         SET attempts = o.attempts + 1,
             leased_until = now() + make_interval(secs => lease_ms / 1000.0)
        FROM due
       WHERE o.user_id = due.user_id AND o.id = due.id
      RETURNING o.id, o.user_id, o.ticket_id, o.attempts, o.status, o.message_id)
    SELECT t.id, t.user_id, t.ticket_id, t.attempts, t.status, t.message_id,
           m.body, m.internal, m.author_is_staff, m.author_name,
           k.subject, k.category, k.priority, u.email::text,
           c.contact_id, c.source_id, v.conversation_id
      FROM taken t
      JOIN public.tickets k ON k.user_id = t.user_id AND k.id = t.ticket_id
      JOIN public.users u ON u.id = t.user_id
      LEFT JOIN public.ticket_messages m ON m.user_id = t.user_id AND m.id = t.message_id
      LEFT JOIN public.chatwoot_contacts c ON c.user_id = t.user_id
      LEFT JOIN public.chatwoot_conversations v ON v.user_id = t.user_id AND v.ticket_id = t.ticket_id
  $$;

-- Records what became of an attempt, if the row is still the one that attempt claimed:
-- `sent` (with the Chatwoot message created), `retry` after `delay_ms`, or `failed`.
CREATE FUNCTION priv.chatwoot_outbox_record(p_user uuid, p_id uuid, p_attempts int, p_outcome text,
                                            p_chatwoot_id bigint, p_reason text, p_delay_ms bigint)
  RETURNS boolean
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
  DECLARE v_ticket uuid; v_message uuid;
  BEGIN
    IF p_outcome = 'sent' THEN
      UPDATE public.chatwoot_outbox o
         SET state = 'sent', sent_at = now(), leased_until = NULL, chatwoot_id = p_chatwoot_id, last_error = NULL
       WHERE o.user_id = p_user AND o.id = p_id AND o.attempts = p_attempts AND o.state = 'pending'
      RETURNING o.ticket_id, o.message_id INTO v_ticket, v_message;
      IF NOT FOUND THEN
        RETURN false;
      END IF;
      IF v_message IS NOT NULL AND p_chatwoot_id IS NOT NULL THEN
        INSERT INTO public.chatwoot_messages (user_id, chatwoot_message_id, ticket_id, message_id, direction)
        VALUES (p_user, p_chatwoot_id, v_ticket, v_message, 'outbound')
        ON CONFLICT DO NOTHING;
      END IF;
      RETURN true;
    ELSIF p_outcome = 'retry' THEN
      UPDATE public.chatwoot_outbox o
         SET leased_until = NULL, last_error = left(p_reason, 1000),
             next_attempt_at = now() + make_interval(secs => greatest(p_delay_ms, 0) / 1000.0)
       WHERE o.user_id = p_user AND o.id = p_id AND o.attempts = p_attempts AND o.state = 'pending';
    ELSIF p_outcome = 'failed' THEN
      UPDATE public.chatwoot_outbox o
         SET state = 'failed', leased_until = NULL, last_error = left(p_reason, 1000)
       WHERE o.user_id = p_user AND o.id = p_id AND o.attempts = p_attempts AND o.state = 'pending';
    ELSE
      RAISE EXCEPTION 'unknown outcome %', p_outcome USING ERRCODE = '22023';
    END IF;
    RETURN FOUND;
  END
  $$;

-- Records the Chatwoot contact of a user and, when given, the conversation of one of its
-- tickets (the first record wins; a mirrored ticket is noted in the user's access log).
CREATE FUNCTION priv.chatwoot_record_mapping(p_user uuid, p_ticket uuid, p_contact bigint, p_source text,
                                             p_conversation bigint)
  RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
  BEGIN
    INSERT INTO public.chatwoot_contacts (user_id, contact_id, source_id)
    SELECT u.id, p_contact, p_source FROM public.users u WHERE u.id = p_user
    ON CONFLICT (user_id) DO NOTHING;
    IF p_conversation IS NULL THEN
      RETURN;
    END IF;
    INSERT INTO public.chatwoot_conversations (user_id, ticket_id, conversation_id)
    SELECT t.user_id, t.id, p_conversation FROM public.tickets t WHERE t.user_id = p_user AND t.id = p_ticket
    ON CONFLICT (user_id, ticket_id) DO NOTHING;
    IF FOUND THEN
      INSERT INTO public.support_access_log (id, user_id, staff_id, staff_name, staff_role, action, ticket_id)
      VALUES (gen_random_uuid(), p_user, '00000000-0000-0000-0000-000000000000', 'Chatwoot', 'support',
              'chatwoot.mirror', p_ticket);
    END IF;
  END
  $$;

-- A Chatwoot agent's message in the conversation `p_conversation`: recorded once per
-- Chatwoot message id, as a staff message (`p_private`: an internal note) of the ticket
-- that conversation mirrors, by `p_author`. A public one moves an open ticket to pending
-- and stamps the first response. Nothing for an unknown or ambiguous conversation; a
-- known message id answers `fresh = false` and changes nothing.
CREATE FUNCTION priv.chatwoot_inbound_message(p_conversation bigint, p_chatwoot_message bigint, p_message uuid,
                                              p_author text, p_body text, p_private boolean)
  RETURNS TABLE (user_id uuid, ticket_id uuid, message_id uuid, subject text, fresh boolean)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
  DECLARE v_user uuid; v_ticket uuid; v_subject text; v_found int;
  BEGIN
    SELECT count(*) INTO v_found FROM public.chatwoot_conversations c WHERE c.conversation_id = p_conversation;
    IF v_found <> 1 THEN
      RETURN;
    END IF;
    SELECT c.user_id, c.ticket_id INTO v_user, v_ticket
      FROM public.chatwoot_conversations c WHERE c.conversation_id = p_conversation;
    INSERT INTO public.chatwoot_messages (user_id, chatwoot_message_id, ticket_id, message_id, direction)
    VALUES (v_user, p_chatwoot_message, v_ticket, NULL, 'inbound')
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      RETURN QUERY SELECT v_user, v_ticket, NULL::uuid, NULL::text, false;
      RETURN;
    END IF;
    INSERT INTO public.ticket_messages (id, user_id, ticket_id, author_id, author_is_staff, author_name, internal, body)
    VALUES (p_message, v_user, v_ticket, NULL, true, left(p_author, 80), p_private, p_body);
    UPDATE public.chatwoot_messages cm SET message_id = p_message
     WHERE cm.user_id = v_user AND cm.chatwoot_message_id = p_chatwoot_message;
    UPDATE public.tickets t
       SET status = CASE WHEN NOT p_private AND t.status = 'open' THEN 'pending' ELSE t.status END,
           first_response_at = CASE WHEN p_private THEN t.first_response_at
                                    ELSE coalesce(t.first_response_at, now()) END,
           updated_at = now()
     WHERE t.user_id = v_user AND t.id = v_ticket
    RETURNING t.subject INTO v_subject;
    INSERT INTO public.support_access_log (id, user_id, staff_id, staff_name, staff_role, action, ticket_id)
    VALUES (gen_random_uuid(), v_user, '00000000-0000-0000-0000-000000000000',
            left(p_author || ' (Chatwoot)', 80), 'support',
            CASE WHEN p_private THEN 'chatwoot.note' ELSE 'chatwoot.reply' END, v_ticket);
    RETURN QUERY SELECT v_user, v_ticket, p_message, v_subject, true;
  END
  $$;

-- The in-app notification of a public message `priv.chatwoot_inbound_message` took in,
-- and its e-mail due in `p_delay_secs` unless the notification is read by then (the
-- sweeper of `priv.support_reply_mails_due` sends it). Once per message.
CREATE FUNCTION priv.chatwoot_notify_reply(p_user uuid, p_message uuid, p_notification uuid, p_title text,
                                           p_body text, p_data jsonb, p_delay_secs double precision)
  RETURNS boolean
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
  DECLARE v_ticket uuid;
  BEGIN
    SELECT m.ticket_id INTO v_ticket
      FROM public.chatwoot_messages cm
      JOIN public.ticket_messages m ON m.user_id = cm.user_id AND m.id = cm.message_id
     WHERE cm.user_id = p_user AND cm.message_id = p_message AND cm.direction = 'inbound' AND NOT m.internal
       AND NOT EXISTS (SELECT 1 FROM public.support_reply_mails r WHERE r.user_id = p_user AND r.message_id = p_message);
    IF NOT FOUND THEN
      RETURN false;
    END IF;
    INSERT INTO public.notifications (id, user_id, kind, title, body, data)
    VALUES (p_notification, p_user, 'support_reply', p_title, p_body, p_data);
    INSERT INTO public.support_reply_mails (user_id, message_id, ticket_id, notification_id, due_at)
    VALUES (p_user, p_message, v_ticket, p_notification, now() + make_interval(secs => p_delay_secs));
    RETURN true;
  END
  $$;

REVOKE ALL ON FUNCTION priv.chatwoot_outbox_claim(int, bigint),
  priv.chatwoot_outbox_record(uuid, uuid, int, text, bigint, text, bigint),
  priv.chatwoot_record_mapping(uuid, uuid, bigint, text, bigint),
  priv.chatwoot_inbound_message(bigint, bigint, uuid, text, text, boolean),
  priv.chatwoot_notify_reply(uuid, uuid, uuid, text, text, jsonb, double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION priv.chatwoot_outbox_claim(int, bigint),
  priv.chatwoot_outbox_record(uuid, uuid, int, text, bigint, text, bigint),
  priv.chatwoot_record_mapping(uuid, uuid, bigint, text, bigint),
  priv.chatwoot_inbound_message(bigint, bigint, uuid, text, text, boolean),
  priv.chatwoot_notify_reply(uuid, uuid, uuid, text, text, jsonb, double precision) TO plinth_system;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(TABLES).await?;
        db.execute_unprepared(&policies()).await?;
        db.execute_unprepared(FUNCTIONS).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP FUNCTION IF EXISTS priv.chatwoot_notify_reply(uuid, uuid, uuid, text, text, jsonb, double precision);
                 DROP FUNCTION IF EXISTS priv.chatwoot_inbound_message(bigint, bigint, uuid, text, text, boolean);
                 DROP FUNCTION IF EXISTS priv.chatwoot_record_mapping(uuid, uuid, bigint, text, bigint);
                 DROP FUNCTION IF EXISTS priv.chatwoot_outbox_record(uuid, uuid, int, text, bigint, text, bigint);
                 DROP FUNCTION IF EXISTS priv.chatwoot_outbox_claim(int, bigint);
                 DROP TABLE IF EXISTS chatwoot_outbox, chatwoot_messages, chatwoot_conversations, chatwoot_contacts;
                 DROP FUNCTION IF EXISTS chatwoot_outbox_notify();",
            )
            .await?;
        Ok(())
    }
}
