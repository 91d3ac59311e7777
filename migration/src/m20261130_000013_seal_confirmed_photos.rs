use crate::rls::USER_ROLES;
use sea_orm_migration::prelude::*;

/// Issue 11, items 9 and 10. A confirmed photo moves to an object key the client never
/// had a URL for (the row's `object_key` changes once, at confirmation); pending
/// reservations whose upload URL has expired are found by the system's sweeper through
/// `priv.expired_uploads` (ids and keys only), which deletes their objects and then the
/// rows, each as its owner.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261130_000013_seal_confirmed_photos"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "GRANT UPDATE (object_key) ON photos TO {USER_ROLES};
                 CREATE INDEX photos_pending_created ON photos (created_at) WHERE status = 'pending';
                 -- Reservations older than `older_than_secs`, oldest first: ids and keys only.
                 CREATE FUNCTION priv.expired_uploads(older_than_secs int, max_rows int)
                   RETURNS TABLE (user_id uuid, id uuid, object_key text)
                   LANGUAGE sql STABLE SECURITY DEFINER
                   SET search_path = pg_catalog, pg_temp
                   AS $$
                     SELECT p.user_id, p.id, p.object_key FROM public.photos p
                      WHERE p.status = 'pending'
                        AND p.created_at < now() - make_interval(secs => older_than_secs)
                      ORDER BY p.created_at
                      LIMIT max_rows
                   $$;
                 REVOKE ALL ON FUNCTION priv.expired_uploads(int, int) FROM PUBLIC;
                 GRANT EXECUTE ON FUNCTION priv.expired_uploads(int, int) TO plinth_system;"
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "DROP FUNCTION IF EXISTS priv.expired_uploads(int, int);
                 DROP INDEX IF EXISTS photos_pending_created;
                 REVOKE UPDATE (object_key) ON photos FROM {USER_ROLES};"
            ))
            .await?;
        Ok(())
    }
}
