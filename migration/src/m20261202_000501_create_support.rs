use crate::rls::{tenant_table, CURRENT_USER_ID, USER_ROLES};
use sea_orm_migration::prelude::*;

/// Support (issue 14): tickets and their messages and attachments, the access grants a
/// user gives support, the log of every staff read of a user's data, canned replies.
///
/// Staff reach other users' rows only through policies written for their role, never a
/// bypass: support and admin read every ticket and its messages (the inbox); support
/// reads a user's account only through a ticket that user opened or an unexpired grant,
/// admins read every account. Internal notes are messages a `plinth_user` can never read:
/// a restrictive policy hides them whatever else a policy allows. Every staff policy
/// needs a signed-in staff member (`plinth.user_id` set), so an unset id fails closed.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000501_create_support"
    }
}

const TABLES: &str = r#"
-- Staff are shown to users by this name, never by their e-mail.
ALTER TABLE users ADD COLUMN display_name text CHECK (length(display_name) BETWEEN 1 AND 80);

CREATE TABLE tickets (
  id                uuid NOT NULL,
  user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  subject           text NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
  category          text NOT NULL CHECK (category IN ('billing', 'jobs', 'account', 'marketplace', 'other')),
  priority          text NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
  status            text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'pending', 'resolved', 'closed')),
  job_id            uuid,
  draft_id          uuid,
  assignee_id       uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  first_response_at timestamptz,
  resolved_at       timestamptz,
  closed_at         timestamptz,
  PRIMARY KEY (user_id, id),
  -- A linked job or draft is the ticket owner's own: the keys include user_id.
  FOREIGN KEY (user_id, job_id) REFERENCES jobs (user_id, id) ON DELETE SET NULL (job_id),
  FOREIGN KEY (user_id, draft_id) REFERENCES drafts (user_id, id) ON DELETE SET NULL (draft_id)
);
CREATE INDEX tickets_user_created_idx ON tickets (user_id, created_at DESC, id DESC);
CREATE INDEX tickets_inbox_idx ON tickets (created_at DESC, id DESC);
CREATE INDEX tickets_assignee_idx ON tickets (assignee_id) WHERE assignee_id IS NOT NULL;

CREATE TABLE ticket_messages (
  id             uuid NOT NULL,
  user_id        uuid NOT NULL,
  ticket_id      uuid NOT NULL,
  author_id      uuid REFERENCES users (id) ON DELETE SET NULL,
  author_is_staff boolean NOT NULL DEFAULT false,
  -- A staff author's display name when written (users see it, never the address).
  author_name    text CHECK (length(author_name) <= 80),
  internal       boolean NOT NULL DEFAULT false,
  -- Markdown as written; rendered and sanitized on the way out.
  body           text NOT NULL CHECK (length(body) BETWEEN 1 AND 10000),
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, id),
  FOREIGN KEY (user_id, ticket_id) REFERENCES tickets (user_id, id) ON DELETE CASCADE,
  CHECK (NOT internal OR author_is_staff)
);
CREATE INDEX ticket_messages_ticket_idx ON ticket_messages (user_id, ticket_id, created_at, id);
CREATE INDEX ticket_messages_author_idx ON ticket_messages (author_id, created_at);

CREATE TABLE ticket_attachments (
  id           uuid NOT NULL,
  user_id      uuid NOT NULL,
  ticket_id    uuid NOT NULL,
  message_id   uuid,
  object_key   text NOT NULL,
  file_name    text NOT NULL CHECK (length(file_name) BETWEEN 1 AND 200),
  content_type text NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png', 'image/webp', 'application/pdf')),
  byte_size    bigint NOT NULL CHECK (byte_size BETWEEN 1 AND 26214400),
  status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready')),
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, id),
  CONSTRAINT ticket_attachments_object_key_key UNIQUE (user_id, object_key),
  FOREIGN KEY (user_id, ticket_id) REFERENCES tickets (user_id, id) ON DELETE CASCADE,
  FOREIGN KEY (user_id, message_id) REFERENCES ticket_messages (user_id, id) ON DELETE SET NULL (message_id)
);
CREATE INDEX ticket_attachments_ticket_idx ON ticket_attachments (user_id, ticket_id);

-- A user's permission for support to read its account, for a while.
CREATE TABLE support_access_grants (
  id          uuid NOT NULL,
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  revoked_at  timestamptz,
  PRIMARY KEY (user_id, id),
  CHECK (expires_at > created_at)
);
CREATE INDEX support_access_grants_live_idx ON support_access_grants (user_id, expires_at) WHERE revoked_at IS NULL;

-- Every staff read of, or action on, a user's data. Append-only.
CREATE TABLE support_access_log (
  id          uuid NOT NULL,
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  staff_id    uuid NOT NULL,
  staff_name  text NOT NULL CHECK (length(staff_name) BETWEEN 1 AND 80),
  staff_role  text NOT NULL CHECK (staff_role IN ('support', 'admin')),
  action      text NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
  ticket_id   uuid,
  reason      text CHECK (length(reason) <= 500),
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, id)
);
CREATE INDEX support_access_log_user_created_idx ON support_access_log (user_id, created_at DESC, id DESC);

-- Staff-wide, no tenant: answers staff paste into replies.
CREATE TABLE canned_replies (
  id          uuid PRIMARY KEY,
  title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
  body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 10000),
  created_by  uuid,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
"#;

fn policies() -> String {
    let me = CURRENT_USER_ID;
    let staff = "plinth_support, plinth_admin";
    // Support may read the account of `col` (a user id) only while that user has a
    // ticket or an unexpired grant; staff accounts are visible to staff (assignees).
    let support_may_read = |col: &str| {
        format!(
            "(EXISTS (SELECT 1 FROM tickets t WHERE t.user_id = {col})
              OR EXISTS (SELECT 1 FROM support_access_grants g WHERE g.user_id = {col}
                         AND g.revoked_at IS NULL AND g.expires_at > now()))"
        )
    };
    let users_rule = support_may_read("users.id");
    format!(
        "-- tickets: owners read and update theirs (columns limited below); staff all.
         ALTER TABLE tickets ENABLE ROW LEVEL SECURITY;
         ALTER TABLE tickets FORCE ROW LEVEL SECURITY;
         CREATE POLICY tickets_owner_read ON tickets FOR SELECT TO {USER_ROLES} USING (user_id = {me});
         CREATE POLICY tickets_owner_insert ON tickets FOR INSERT TO {USER_ROLES}
           WITH CHECK (user_id = {me} AND assignee_id IS NULL AND first_response_at IS NULL);
         CREATE POLICY tickets_owner_update ON tickets FOR UPDATE TO {USER_ROLES}
           USING (user_id = {me}) WITH CHECK (user_id = {me});
         CREATE POLICY tickets_staff_read ON tickets FOR SELECT TO {staff} USING ({me} IS NOT NULL);
         CREATE POLICY tickets_staff_update ON tickets FOR UPDATE TO {staff}
           USING ({me} IS NOT NULL) WITH CHECK ({me} IS NOT NULL);
         GRANT SELECT, INSERT ON tickets TO {USER_ROLES};
         GRANT UPDATE (status, updated_at, resolved_at, closed_at) ON tickets TO plinth_user;
         GRANT UPDATE (status, priority, assignee_id, updated_at, first_response_at, resolved_at, closed_at)
           ON tickets TO {staff};

         -- messages: owners read their tickets' public messages and write as themselves;
         -- staff read all and write as staff. No update, no delete.
         ALTER TABLE ticket_messages ENABLE ROW LEVEL SECURITY;
         ALTER TABLE ticket_messages FORCE ROW LEVEL SECURITY;
         CREATE POLICY ticket_messages_owner_read ON ticket_messages FOR SELECT TO {USER_ROLES}
           USING (user_id = {me} AND NOT internal);
         CREATE POLICY ticket_messages_owner_insert ON ticket_messages FOR INSERT TO {USER_ROLES}
           WITH CHECK (user_id = {me} AND author_id = {me} AND NOT author_is_staff AND NOT internal);
         CREATE POLICY ticket_messages_staff_read ON ticket_messages FOR SELECT TO {staff} USING ({me} IS NOT NULL);
         CREATE POLICY ticket_messages_staff_insert ON ticket_messages FOR INSERT TO {staff}
           WITH CHECK (author_id = {me} AND author_is_staff);
         -- Whatever another policy says, the user role never reads an internal note.
         CREATE POLICY ticket_messages_no_internal_for_users ON ticket_messages AS RESTRICTIVE
           FOR SELECT TO plinth_user USING (NOT internal);
         GRANT SELECT, INSERT ON ticket_messages TO {USER_ROLES};

         -- attachments: the owner's; staff read them (they belong to public messages).
         GRANT SELECT, INSERT, DELETE ON ticket_attachments TO {USER_ROLES};
         GRANT UPDATE (message_id, status) ON ticket_attachments TO {USER_ROLES};
         CREATE POLICY ticket_attachments_staff_read ON ticket_attachments FOR SELECT TO {staff}
           USING ({me} IS NOT NULL);

         -- grants: the user's; staff see the live ones (the policies below consult them).
         GRANT SELECT, INSERT ON support_access_grants TO {USER_ROLES};
         GRANT UPDATE (revoked_at) ON support_access_grants TO {USER_ROLES};
         CREATE POLICY support_access_grants_staff_read ON support_access_grants FOR SELECT TO {staff}
           USING ({me} IS NOT NULL AND revoked_at IS NULL AND expires_at > now());

         -- access log: the user reads its own; staff append as themselves; admins read all.
         ALTER TABLE support_access_log ENABLE ROW LEVEL SECURITY;
         ALTER TABLE support_access_log FORCE ROW LEVEL SECURITY;
         CREATE POLICY support_access_log_owner_read ON support_access_log FOR SELECT TO {USER_ROLES}
           USING (user_id = {me});
         CREATE POLICY support_access_log_staff_insert ON support_access_log FOR INSERT TO {staff}
           WITH CHECK (staff_id = {me} AND EXISTS (SELECT 1 FROM users u WHERE u.id = support_access_log.user_id));
         CREATE POLICY support_access_log_admin_read ON support_access_log FOR SELECT TO plinth_admin
           USING ({me} IS NOT NULL);
         GRANT SELECT, INSERT ON support_access_log TO {USER_ROLES};

         -- canned replies: staff read, admins write.
         ALTER TABLE canned_replies ENABLE ROW LEVEL SECURITY;
         ALTER TABLE canned_replies FORCE ROW LEVEL SECURITY;
         CREATE POLICY canned_replies_staff_read ON canned_replies FOR SELECT TO {staff} USING ({me} IS NOT NULL);
         CREATE POLICY canned_replies_admin_insert ON canned_replies FOR INSERT TO plinth_admin
           WITH CHECK ({me} IS NOT NULL AND created_by = {me});
         CREATE POLICY canned_replies_admin_update ON canned_replies FOR UPDATE TO plinth_admin
           USING ({me} IS NOT NULL) WITH CHECK ({me} IS NOT NULL);
         GRANT SELECT ON canned_replies TO {staff};
         GRANT INSERT, UPDATE (title, body, updated_at) ON canned_replies TO plinth_admin;

         -- users: support no longer reads every account (m20261125_000002); admins do.
         DROP POLICY users_staff_read ON users;
         CREATE POLICY users_admin_read ON users FOR SELECT TO plinth_admin USING ({me} IS NOT NULL);
         CREATE POLICY users_support_read ON users FOR SELECT TO plinth_support
           USING ({me} IS NOT NULL AND (role IN ('support', 'admin') OR {users_rule}));
         GRANT UPDATE (display_name) ON users TO {USER_ROLES};

         -- Staff notify a ticket's owner of a reply; a user notifies its ticket's assignee.
         CREATE POLICY notifications_support_reply ON notifications FOR INSERT TO {staff}
           WITH CHECK ({me} IS NOT NULL AND kind = 'support_reply'
                       AND EXISTS (SELECT 1 FROM tickets t WHERE t.user_id = notifications.user_id));
         CREATE POLICY notifications_ticket_reply ON notifications FOR INSERT TO plinth_user
           WITH CHECK (kind = 'support_ticket_reply'
                       AND EXISTS (SELECT 1 FROM tickets t WHERE t.user_id = {me}
                                   AND t.assignee_id = notifications.user_id));

         -- Staff tools leave their trace in the user's own activity log.
         CREATE POLICY activity_log_support ON activity_log FOR INSERT TO {staff}
           WITH CHECK (actor_id = {me} AND action LIKE 'support.%'
                       AND EXISTS (SELECT 1 FROM users u WHERE u.id = activity_log.user_id));"
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(TABLES).await?;
        for table in ["ticket_attachments", "support_access_grants"] {
            db.execute_unprepared(&tenant_table(table, "user_id")).await?;
        }
        db.execute_unprepared(&policies()).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP POLICY IF EXISTS activity_log_support ON activity_log;
                 DROP POLICY IF EXISTS notifications_support_reply ON notifications;
                 DROP POLICY IF EXISTS notifications_ticket_reply ON notifications;
                 DROP POLICY IF EXISTS users_admin_read ON users;
                 DROP POLICY IF EXISTS users_support_read ON users;
                 CREATE POLICY users_staff_read ON users FOR SELECT TO plinth_support, plinth_admin USING (true);
                 DROP TABLE IF EXISTS canned_replies, support_access_log, support_access_grants, ticket_attachments,
                   ticket_messages, tickets;
                 ALTER TABLE users DROP COLUMN IF EXISTS display_name;",
            )
            .await?;
        Ok(())
    }
}
