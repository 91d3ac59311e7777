use sea_orm_migration::prelude::*;

/// Changing the account's address (`updateProfile` with `email` and `currentPassword`):
/// the request stores a one-time `change_email` token carrying the new address and the
/// session that asked; nothing changes until the link sent to the new address comes
/// back. `priv.confirm_email_change(user, hash)` spends that token and moves the
/// address in one step, for the account the transaction acts for only: the runtime
/// roles are not granted UPDATE on `users.email`, so this function is the one way an
/// address changes.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000402_change_email_address"
    }
}

const SQL: &str = r#"
ALTER TABLE one_time_tokens DROP CONSTRAINT one_time_tokens_purpose_check;
ALTER TABLE one_time_tokens
  ADD CONSTRAINT one_time_tokens_purpose_check CHECK (purpose IN ('verify_email', 'reset_password', 'change_email')),
  ADD COLUMN new_email citext,
  ADD COLUMN session_id uuid,
  ADD CONSTRAINT one_time_tokens_new_email_check CHECK ((purpose = 'change_email') = (new_email IS NOT NULL));

-- Spends the change link `p_hash` of `p_user` (who must be the transaction's user) and
-- moves the account to its address, verified, deliverable again; every other pending
-- change link of the account dies with it. No row: the link is not valid. An address
-- taken since the request raises the unique violation of users_email_key.
CREATE FUNCTION priv.confirm_email_change(p_user uuid, p_hash bytea)
  RETURNS TABLE (old_email text, new_email text, session_id uuid)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
#variable_conflict use_column
DECLARE
  spent record;
  previous text;
BEGIN
  IF p_user IS DISTINCT FROM NULLIF(current_setting('plinth.user_id', true), '')::uuid THEN
    RETURN;
  END IF;
  UPDATE public.one_time_tokens t SET used_at = now()
   WHERE t.user_id = p_user AND t.token_hash = p_hash AND t.purpose = 'change_email'
     AND t.used_at IS NULL AND t.expires_at > now()
  RETURNING t.new_email::text AS address, t.session_id AS asked_by INTO spent;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  SELECT u.email::text INTO previous FROM public.users u WHERE u.id = p_user FOR UPDATE;
  UPDATE public.users u
     SET email = spent.address, email_verified_at = now(), email_undeliverable_at = NULL,
         email_undeliverable_reason = NULL, updated_at = now()
   WHERE u.id = p_user;
  UPDATE public.one_time_tokens t SET used_at = now()
   WHERE t.user_id = p_user AND t.purpose = 'change_email' AND t.used_at IS NULL;
  old_email := previous;
  new_email := spent.address;
  session_id := spent.asked_by;
  RETURN NEXT;
END $$;
REVOKE ALL ON FUNCTION priv.confirm_email_change(uuid, bytea) FROM PUBLIC;
GRANT USAGE ON SCHEMA priv TO plinth_user;
GRANT EXECUTE ON FUNCTION priv.confirm_email_change(uuid, bytea) TO plinth_user;
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
                "DROP FUNCTION IF EXISTS priv.confirm_email_change(uuid, bytea);
                 DELETE FROM one_time_tokens WHERE purpose = 'change_email';
                 ALTER TABLE one_time_tokens DROP CONSTRAINT one_time_tokens_new_email_check,
                   DROP COLUMN new_email, DROP COLUMN session_id,
                   DROP CONSTRAINT one_time_tokens_purpose_check,
                   ADD CONSTRAINT one_time_tokens_purpose_check CHECK (purpose IN ('verify_email', 'reset_password'));",
            )
            .await?;
        Ok(())
    }
}
