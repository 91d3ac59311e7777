use crate::rls::{tenant_table, USER_ROLES};
use sea_orm_migration::prelude::*;

/// The web app's import uploads (issue 19): one row per upload URL handed out, so the
/// zips waiting under `i/<user>/<upload>` are known, bounded and swept. An account holds
/// at most a few at once (the service refuses more). The sweeper
/// (`priv.expired_import_uploads`, as `plinth_system`) removes an upload whose import
/// succeeded once its upload URL expired (its zip was deleted at the import's end; a PUT
/// meanwhile would bring it back), and one nothing happened to for a day: never started,
/// or its last import failed a day ago. A tenant table: only the account's own roles
/// read and write it.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000100_create_import_uploads"
    }
}

const SQL: &str = r#"
CREATE TABLE import_uploads (
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  id         uuid NOT NULL,
  byte_size  bigint NOT NULL CHECK (byte_size > 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, id)
);
CREATE INDEX import_uploads_created ON import_uploads (created_at);
CREATE INDEX imports_upload ON imports (user_id, upload_id);
-- Uploads with no queued or running import that are done with, oldest first: imported
-- and handed out more than `url_expired_secs` ago (the upload URL's 30 minutes and a
-- grace: no PUT can land any more), or whose last event (handed out, or its newest
-- import's end) is older than `older_than_secs`.
CREATE FUNCTION priv.expired_import_uploads(older_than_secs int, max_rows int, url_expired_secs int DEFAULT 2700)
  RETURNS TABLE (user_id uuid, id uuid, object_key text)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
    SELECT u.user_id, u.id, 'i/' || u.user_id || '/' || u.id FROM public.import_uploads u
     WHERE NOT EXISTS (SELECT 1 FROM public.imports i
                        WHERE i.user_id = u.user_id AND i.upload_id = u.id AND i.status IN ('queued', 'running'))
       AND ((u.created_at < now() - make_interval(secs => url_expired_secs)
             AND EXISTS (SELECT 1 FROM public.imports i
                          WHERE i.user_id = u.user_id AND i.upload_id = u.id AND i.status = 'succeeded'))
            OR (u.created_at < now() - make_interval(secs => older_than_secs)
                AND NOT EXISTS (SELECT 1 FROM public.imports i
                                 WHERE i.user_id = u.user_id AND i.upload_id = u.id
                                   AND i.finished_at >= now() - make_interval(secs => older_than_secs))))
     ORDER BY u.created_at
     LIMIT least(greatest(max_rows, 1), 500)
  $$;
REVOKE ALL ON FUNCTION priv.expired_import_uploads(int, int, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION priv.expired_import_uploads(int, int, int) TO plinth_system;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(SQL).await?;
        db.execute_unprepared(&tenant_table("import_uploads", "user_id")).await?;
        db.execute_unprepared(&format!("GRANT SELECT, INSERT, DELETE ON import_uploads TO {USER_ROLES};")).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP FUNCTION IF EXISTS priv.expired_import_uploads(int, int, int);
                 DROP INDEX IF EXISTS imports_upload;
                 DROP TABLE IF EXISTS import_uploads;",
            )
            .await?;
        Ok(())
    }
}
