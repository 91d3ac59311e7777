use crate::rls::USER_ROLES;
use sea_orm_migration::prelude::*;

/// GDPR account deletion: `deleteMyAccount` sets `deletion_scheduled_at` (the end of the
/// grace period), a sign-in clears it, and the sweeper erases what is due. Invoices are
/// kept as the law requires, in `invoice_archive`: not a tenant table, keyed by a
/// pseudonym (an HMAC of the user id under a server secret; no user id, no address),
/// readable by the admin role only.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000302_schedule_account_deletion"
    }
}

const SQL: &str = r#"
ALTER TABLE users
  ADD COLUMN deletion_requested_at timestamptz,
  ADD COLUMN deletion_scheduled_at timestamptz;
CREATE INDEX users_deletion_due_idx ON users (deletion_scheduled_at) WHERE deletion_scheduled_at IS NOT NULL;

CREATE TABLE invoice_archive (
  id                 uuid PRIMARY KEY,
  subject            text NOT NULL,
  stripe_invoice_id  text NOT NULL,
  number             text,
  status             text NOT NULL,
  currency           text NOT NULL,
  subtotal_cents     bigint NOT NULL,
  tax_cents          bigint NOT NULL,
  total_cents        bigint NOT NULL,
  amount_paid_cents  bigint NOT NULL,
  amount_due_cents   bigint NOT NULL,
  invoice_pdf        text,
  period_start       timestamptz,
  period_end         timestamptz,
  stripe_created     timestamptz NOT NULL,
  archived_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoice_archive_subject_idx ON invoice_archive (subject, stripe_created);
ALTER TABLE invoice_archive ENABLE ROW LEVEL SECURITY;
ALTER TABLE invoice_archive FORCE ROW LEVEL SECURITY;
CREATE POLICY invoice_archive_admin ON invoice_archive FOR SELECT TO plinth_admin USING (true);
GRANT SELECT ON invoice_archive TO plinth_admin;

-- The sweeper's list: accounts whose grace period ended at `at`; ids only.
CREATE FUNCTION priv.accounts_due_for_deletion(at timestamptz, batch int)
  RETURNS TABLE (user_id uuid)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
    SELECT u.id FROM public.users u
     WHERE u.deletion_scheduled_at IS NOT NULL AND u.deletion_scheduled_at <= at
     ORDER BY u.deletion_scheduled_at LIMIT least(greatest(batch, 1), 100)
  $$;

-- Erases one account whose deletion is due at `at` (false, and nothing done, when it
-- is not: a sign-in cancelled it meanwhile): its invoices move to the archive under
-- `subject`, then every row of every table with a `user_id` column goes, then the
-- account. The tables are found in the catalog, so a table added later is erased too.
CREATE FUNCTION priv.erase_account(p_user uuid, p_subject text, at timestamptz)
  RETURNS boolean
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
  DECLARE t text;
  BEGIN
    PERFORM 1 FROM public.users u
      WHERE u.id = p_user AND u.deletion_scheduled_at IS NOT NULL AND u.deletion_scheduled_at <= at
      FOR UPDATE;
    IF NOT FOUND THEN
      RETURN false;
    END IF;
    INSERT INTO public.invoice_archive (id, subject, stripe_invoice_id, number, status, currency, subtotal_cents,
        tax_cents, total_cents, amount_paid_cents, amount_due_cents, invoice_pdf, period_start, period_end,
        stripe_created)
    SELECT i.id, p_subject, i.stripe_invoice_id, i.number, i.status, i.currency, i.subtotal_cents, i.tax_cents,
           i.total_cents, i.amount_paid_cents, i.amount_due_cents, i.invoice_pdf, i.period_start, i.period_end,
           i.stripe_created
      FROM public.invoices i WHERE i.user_id = p_user
    ON CONFLICT (id) DO NOTHING;
    FOR t IN
      SELECT c.relname::text FROM pg_class c
       WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
         AND EXISTS (SELECT 1 FROM pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attname = 'user_id' AND NOT a.attisdropped)
       ORDER BY c.relname
    LOOP
      EXECUTE format('DELETE FROM public.%I WHERE user_id = $1', t) USING p_user;
    END LOOP;
    DELETE FROM public.users WHERE id = p_user;
    RETURN true;
  END
  $$;
REVOKE ALL ON FUNCTION priv.accounts_due_for_deletion(timestamptz, int), priv.erase_account(uuid, text, timestamptz)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION priv.accounts_due_for_deletion(timestamptz, int), priv.erase_account(uuid, text, timestamptz)
  TO plinth_system;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(SQL).await?;
        db.execute_unprepared(&format!(
            "GRANT UPDATE (deletion_requested_at, deletion_scheduled_at) ON users TO {USER_ROLES};"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP FUNCTION IF EXISTS priv.accounts_due_for_deletion(timestamptz, int),
                   priv.erase_account(uuid, text, timestamptz);
                 DROP TABLE IF EXISTS invoice_archive;
                 DROP INDEX IF EXISTS users_deletion_due_idx;
                 ALTER TABLE users DROP COLUMN IF EXISTS deletion_requested_at,
                   DROP COLUMN IF EXISTS deletion_scheduled_at;",
            )
            .await?;
        Ok(())
    }
}
