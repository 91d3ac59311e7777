use crate::rls::{CURRENT_USER_ID, USER_ROLES};
use sea_orm_migration::prelude::*;

/// Ticket attachments (issue 14, item 1): who uploaded one (the owner, or staff as
/// themselves), whether it belongs to an internal note, and its checked hash.
///
/// A `plinth_user` never reads, writes or changes an internal attachment nor a staff
/// upload (restrictive policies, whatever the owner policy allows), so an internal
/// note's files are as hidden as the note. Staff insert and update only their own
/// uploads, on a ticket that exists. Reservations that were never confirmed are found
/// and forgotten by two `priv` functions granted to `plinth_system` alone (ids and keys
/// only), after the sweeper deleted their objects.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000502_seal_ticket_attachments"
    }
}

fn up_sql() -> String {
    let me = CURRENT_USER_ID;
    let staff = "plinth_support, plinth_admin";
    format!(
        "ALTER TABLE ticket_attachments
           ADD COLUMN uploaded_by uuid,
           ADD COLUMN by_staff boolean NOT NULL DEFAULT false,
           ADD COLUMN internal boolean NOT NULL DEFAULT false,
           ADD COLUMN declared_sha256 bytea CHECK (length(declared_sha256) = 32),
           ADD COLUMN sha256 bytea CHECK (length(sha256) = 32),
           ADD CONSTRAINT ticket_attachments_internal_by_staff CHECK (NOT internal OR by_staff);
         CREATE INDEX ticket_attachments_pending_created ON ticket_attachments (created_at) WHERE status = 'pending';
         CREATE INDEX ticket_attachments_message_idx ON ticket_attachments (user_id, message_id) WHERE message_id IS NOT NULL;
         GRANT UPDATE (object_key, sha256) ON ticket_attachments TO {USER_ROLES};

         CREATE POLICY ticket_attachments_no_internal_for_users ON ticket_attachments AS RESTRICTIVE
           FOR SELECT TO plinth_user USING (NOT internal);
         CREATE POLICY ticket_attachments_users_insert_their_own ON ticket_attachments AS RESTRICTIVE
           FOR INSERT TO plinth_user WITH CHECK (NOT internal AND NOT by_staff AND uploaded_by = {me});
         CREATE POLICY ticket_attachments_users_update_their_own ON ticket_attachments AS RESTRICTIVE
           FOR UPDATE TO plinth_user USING (NOT by_staff) WITH CHECK (NOT by_staff AND NOT internal);
         CREATE POLICY ticket_attachments_users_delete_their_own ON ticket_attachments AS RESTRICTIVE
           FOR DELETE TO plinth_user USING (NOT by_staff);
         CREATE POLICY ticket_attachments_staff_insert ON ticket_attachments FOR INSERT TO {staff}
           WITH CHECK ({me} IS NOT NULL AND by_staff AND uploaded_by = {me}
                       AND EXISTS (SELECT 1 FROM tickets t
                                   WHERE t.user_id = ticket_attachments.user_id AND t.id = ticket_attachments.ticket_id));
         CREATE POLICY ticket_attachments_staff_update ON ticket_attachments FOR UPDATE TO {staff}
           USING ({me} IS NOT NULL AND by_staff AND uploaded_by = {me})
           WITH CHECK ({me} IS NOT NULL AND by_staff AND uploaded_by = {me});

         -- Reservations older than `older_than_secs`, oldest first: ids and keys only.
         CREATE FUNCTION priv.expired_ticket_attachments(older_than_secs int, max_rows int)
           RETURNS TABLE (user_id uuid, id uuid, object_key text)
           LANGUAGE sql STABLE SECURITY DEFINER
           SET search_path = pg_catalog, pg_temp
           AS $$
             SELECT a.user_id, a.id, a.object_key FROM public.ticket_attachments a
              WHERE a.status = 'pending'
                AND a.created_at < now() - make_interval(secs => older_than_secs)
              ORDER BY a.created_at
              LIMIT max_rows
           $$;
         REVOKE ALL ON FUNCTION priv.expired_ticket_attachments(int, int) FROM PUBLIC;
         GRANT EXECUTE ON FUNCTION priv.expired_ticket_attachments(int, int) TO plinth_system;
         -- Forgets one such reservation (still pending and as old); whether it did.
         CREATE FUNCTION priv.forget_ticket_attachment(owner uuid, attachment uuid, older_than_secs int)
           RETURNS boolean
           LANGUAGE sql VOLATILE SECURITY DEFINER
           SET search_path = pg_catalog, pg_temp
           AS $$
             WITH gone AS (
               DELETE FROM public.ticket_attachments a
                WHERE a.user_id = owner AND a.id = attachment AND a.status = 'pending'
                  AND a.created_at < now() - make_interval(secs => older_than_secs)
               RETURNING 1)
             SELECT EXISTS (SELECT 1 FROM gone)
           $$;
         REVOKE ALL ON FUNCTION priv.forget_ticket_attachment(uuid, uuid, int) FROM PUBLIC;
         GRANT EXECUTE ON FUNCTION priv.forget_ticket_attachment(uuid, uuid, int) TO plinth_system;"
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
            .execute_unprepared(&format!(
                "DROP FUNCTION IF EXISTS priv.forget_ticket_attachment(uuid, uuid, int);
                 DROP FUNCTION IF EXISTS priv.expired_ticket_attachments(int, int);
                 DROP POLICY IF EXISTS ticket_attachments_staff_update ON ticket_attachments;
                 DROP POLICY IF EXISTS ticket_attachments_staff_insert ON ticket_attachments;
                 DROP POLICY IF EXISTS ticket_attachments_users_delete_their_own ON ticket_attachments;
                 DROP POLICY IF EXISTS ticket_attachments_users_update_their_own ON ticket_attachments;
                 DROP POLICY IF EXISTS ticket_attachments_users_insert_their_own ON ticket_attachments;
                 DROP POLICY IF EXISTS ticket_attachments_no_internal_for_users ON ticket_attachments;
                 REVOKE UPDATE (object_key, sha256) ON ticket_attachments FROM {USER_ROLES};
                 DROP INDEX IF EXISTS ticket_attachments_message_idx;
                 DROP INDEX IF EXISTS ticket_attachments_pending_created;
                 ALTER TABLE ticket_attachments DROP CONSTRAINT IF EXISTS ticket_attachments_internal_by_staff,
                   DROP COLUMN IF EXISTS sha256, DROP COLUMN IF EXISTS declared_sha256,
                   DROP COLUMN IF EXISTS internal, DROP COLUMN IF EXISTS by_staff, DROP COLUMN IF EXISTS uploaded_by;"
            ))
            .await?;
        Ok(())
    }
}
