use sea_orm_migration::prelude::*;

/// Operator commands (issue 20, item 5): `plinth user ...` acts as an administrator
/// through the staff tools, and its audit names the person at the terminal.
///
/// `support_access_log.operator` holds who ran the command (`cli:<OS user>@<host>`),
/// NULL for steps taken over the API; the column only adds to the row the staff insert
/// policy already checks, and the owner never sees it (`supportAccessLog` shows the
/// staff member's name). `priv.admin_set_role` changes an account's role, the one step
/// with no API: a SECURITY DEFINER function only `plinth_admin` may execute, checking
/// again that the caller is an admin, refusing the caller's own account (an admin does
/// not demote itself, so one always remains), filtering on its arguments alone; the
/// account's sessions end and its access tokens are refused from now, so the new role
/// applies at once (a demoted admin keeps no admin token). The ended sessions' ids.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261205_000100_audit_operator_commands"
    }
}

const UP: &str = "
ALTER TABLE support_access_log ADD COLUMN operator text CHECK (length(operator) BETWEEN 1 AND 200);
CREATE FUNCTION priv.admin_set_role(target uuid, new_role text)
  RETURNS TABLE (session_id uuid)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
  BEGIN
    IF NULLIF(current_setting('plinth.user_id', true), '')::uuid IS NULL
       OR NOT EXISTS (SELECT 1 FROM public.users u
                      WHERE u.id = NULLIF(current_setting('plinth.user_id', true), '')::uuid AND u.role = 'admin') THEN
      RAISE EXCEPTION 'only an admin may do this' USING ERRCODE = '42501';
    END IF;
    IF target = NULLIF(current_setting('plinth.user_id', true), '')::uuid THEN
      RAISE EXCEPTION 'an admin does not change its own role' USING ERRCODE = '42501';
    END IF;
    IF new_role NOT IN ('user', 'support', 'admin') THEN
      RAISE EXCEPTION 'no role %', new_role USING ERRCODE = '22023';
    END IF;
    UPDATE public.users SET role = new_role WHERE id = target AND role <> new_role;
    IF NOT FOUND THEN
      RETURN;
    END IF;
    INSERT INTO public.token_revocations (user_id, revoked_before) VALUES (target, now())
      ON CONFLICT (user_id) DO UPDATE
      SET revoked_before = greatest(public.token_revocations.revoked_before, EXCLUDED.revoked_before);
    RETURN QUERY
      UPDATE public.sessions s SET revoked_at = now(), revoked_reason = 'role_changed'
       WHERE s.user_id = target AND s.revoked_at IS NULL
      RETURNING s.id;
  END
  $$;
REVOKE ALL ON FUNCTION priv.admin_set_role(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION priv.admin_set_role(uuid, text) TO plinth_admin;
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP FUNCTION IF EXISTS priv.admin_set_role(uuid, text);
                 ALTER TABLE support_access_log DROP COLUMN IF EXISTS operator;",
            )
            .await?;
        Ok(())
    }
}
