use sea_orm_migration::prelude::*;

/// What the events issue 10 adds need: a disputed account is flagged (the newest
/// dispute and when it was opened) and every admin is told (`priv.billing_admins`);
/// an event records the API version of its payload and a note (prices not in the
/// catalog); an invoice's mirrored status carries its rank, which decides between two
/// events of one second.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261130_000012_record_billing_disputes"
    }
}

const SQL: &str = r#"
ALTER TABLE billing_accounts
  ADD COLUMN disputed_at timestamptz,
  ADD COLUMN dispute_id  text;

ALTER TABLE stripe_events
  ADD COLUMN api_version text,
  ADD COLUMN note        text;

ALTER TABLE invoices ADD COLUMN status_rank smallint NOT NULL DEFAULT 0;
UPDATE invoices SET status_rank = CASE status WHEN 'open' THEN 1 WHEN 'uncollectible' THEN 2
  WHEN 'paid' THEN 3 WHEN 'void' THEN 3 ELSE 0 END;

-- The admins a dispute is reported to: ids only.
CREATE FUNCTION priv.billing_admins()
  RETURNS TABLE (user_id uuid)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$ SELECT u.id FROM public.users u WHERE u.role = 'admin' ORDER BY u.id $$;
REVOKE ALL ON FUNCTION priv.billing_admins() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION priv.billing_admins() TO plinth_system;
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
                "DROP FUNCTION IF EXISTS priv.billing_admins();
                 ALTER TABLE invoices DROP COLUMN IF EXISTS status_rank;
                 ALTER TABLE stripe_events DROP COLUMN IF EXISTS api_version, DROP COLUMN IF EXISTS note;
                 ALTER TABLE billing_accounts DROP COLUMN IF EXISTS disputed_at, DROP COLUMN IF EXISTS dispute_id;",
            )
            .await?;
        Ok(())
    }
}
