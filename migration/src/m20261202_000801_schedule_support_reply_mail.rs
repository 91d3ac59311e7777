use crate::rls::{CURRENT_USER_ID, USER_ROLES};
use sea_orm_migration::prelude::*;

/// A staff reply is mailed to its user only when the user has not read the reply's
/// in-app notification within a delay. The staff request writes one row per reply in
/// its own transaction (`support_reply_mails`, due at the reply's time plus the delay);
/// a sweeper running as the system role claims the due rows through
/// `priv.support_reply_mails_due`, which stamps each row done in the claiming
/// transaction (`FOR UPDATE SKIP LOCKED`): any number of instances and restarts mail
/// each reply at most once, and a rolled-back sweep leaves its rows for the next one.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000801_schedule_support_reply_mail"
    }
}

fn up_sql() -> String {
    let me = CURRENT_USER_ID;
    format!(
        "CREATE TABLE support_reply_mails (
           user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
           message_id      uuid NOT NULL,
           ticket_id       uuid NOT NULL,
           notification_id uuid NOT NULL,
           due_at          timestamptz NOT NULL,
           done_at         timestamptz,
           mailed          boolean,
           PRIMARY KEY (user_id, message_id),
           FOREIGN KEY (user_id, message_id) REFERENCES ticket_messages (user_id, id) ON DELETE CASCADE
         );
         CREATE INDEX support_reply_mails_due_idx ON support_reply_mails (due_at) WHERE done_at IS NULL;
         ALTER TABLE support_reply_mails ENABLE ROW LEVEL SECURITY;
         ALTER TABLE support_reply_mails FORCE ROW LEVEL SECURITY;
         CREATE POLICY support_reply_mails_owner_read ON support_reply_mails FOR SELECT TO {USER_ROLES}
           USING (user_id = {me});
         -- Staff schedule the mail of their own, non-internal reply, in its transaction.
         CREATE POLICY support_reply_mails_staff_insert ON support_reply_mails FOR INSERT
           TO plinth_support, plinth_admin
           WITH CHECK ({me} IS NOT NULL AND done_at IS NULL AND mailed IS NULL
                       AND EXISTS (SELECT 1 FROM ticket_messages m
                                    WHERE m.user_id = support_reply_mails.user_id
                                      AND m.id = support_reply_mails.message_id
                                      AND m.ticket_id = support_reply_mails.ticket_id
                                      AND m.author_id = {me} AND m.author_is_staff AND NOT m.internal));
         GRANT SELECT ON support_reply_mails TO {USER_ROLES};
         GRANT INSERT ON support_reply_mails TO plinth_support, plinth_admin;

         -- Claims the replies due at `at` (at most `max_rows`), marks them done, and
         -- returns those whose notification is still unread: what the mail needs only.
         CREATE FUNCTION priv.support_reply_mails_due(at timestamptz, max_rows int)
           RETURNS TABLE (user_id uuid, ticket_id uuid, to_email text, subject text, body text)
           LANGUAGE sql VOLATILE SECURITY DEFINER
           SET search_path = pg_catalog, pg_temp
           AS $$
             WITH due AS (
               SELECT r.user_id, r.message_id FROM public.support_reply_mails r
                WHERE r.done_at IS NULL AND r.due_at <= at
                ORDER BY r.due_at
                LIMIT max_rows
                FOR UPDATE SKIP LOCKED),
             done AS (
               UPDATE public.support_reply_mails r
                  SET done_at = now(),
                      mailed = NOT EXISTS (SELECT 1 FROM public.notifications n
                                            WHERE n.user_id = r.user_id AND n.id = r.notification_id
                                              AND n.read_at IS NOT NULL)
                 FROM due
                WHERE r.user_id = due.user_id AND r.message_id = due.message_id
               RETURNING r.user_id, r.ticket_id, r.message_id, r.mailed)
             SELECT d.user_id, d.ticket_id, u.email::text, t.subject, m.body
               FROM done d
               JOIN public.users u ON u.id = d.user_id
               JOIN public.tickets t ON t.user_id = d.user_id AND t.id = d.ticket_id
               JOIN public.ticket_messages m ON m.user_id = d.user_id AND m.id = d.message_id
              WHERE d.mailed
           $$;
         REVOKE ALL ON FUNCTION priv.support_reply_mails_due(timestamptz, int) FROM PUBLIC;
         GRANT EXECUTE ON FUNCTION priv.support_reply_mails_due(timestamptz, int) TO plinth_system;"
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(&up_sql()).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP FUNCTION IF EXISTS priv.support_reply_mails_due(timestamptz, int);
                 DROP TABLE IF EXISTS support_reply_mails;",
            )
            .await?;
        Ok(())
    }
}
