use sea_orm_migration::prelude::*;

/// Erasure in two steps, so that neither a sign-in nor a restart can undo half of it.
///
/// 1. `priv.begin_erasure` marks a due account (`erasure_started_at`) in its own
///    committed transaction. From then on a sign-in no longer cancels the deletion (it
///    is refused: the grace period is over), so the sweeper's work outside the database
///    (Stripe's cancellation, the objects) never happens to an account that is kept.
/// 2. `priv.erase_account` erases only a marked account, and records its id in
///    `erased_accounts` (not a tenant table: no `user_id` column, read by the system
///    role only) so that an instance started after the erasure refuses the account's
///    leftover access tokens, whose revocation row went with the account. Entries are
///    kept one day (far longer than an access token lives) and pruned by the next erasure.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000303_begin_erasure"
    }
}

const SQL: &str = r#"
ALTER TABLE users ADD COLUMN erasure_started_at timestamptz;

CREATE TABLE erased_accounts (
  account_id uuid PRIMARY KEY,
  erased_at  timestamptz NOT NULL
);
ALTER TABLE erased_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE erased_accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY erased_accounts_system ON erased_accounts FOR SELECT TO plinth_system USING (true);
GRANT SELECT ON erased_accounts TO plinth_system;

-- Step 1: marks `p_user` as being erased when its deletion is due at `at` (true), or
-- already marked (true: a run that stopped half-way resumes); false when a sign-in
-- cancelled it.
CREATE FUNCTION priv.begin_erasure(p_user uuid, at timestamptz)
  RETURNS boolean
  LANGUAGE sql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
    WITH marked AS (
      UPDATE public.users u SET erasure_started_at = coalesce(u.erasure_started_at, at)
       WHERE u.id = p_user AND u.deletion_scheduled_at IS NOT NULL AND u.deletion_scheduled_at <= at
      RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM marked)
  $$;

-- Step 2: as before, but only for an account step 1 marked; its id is remembered for
-- the token check of instances that start later.
CREATE OR REPLACE FUNCTION priv.erase_account(p_user uuid, p_subject text, at timestamptz)
  RETURNS boolean
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
  DECLARE t text;
  BEGIN
    PERFORM 1 FROM public.users u
      WHERE u.id = p_user AND u.erasure_started_at IS NOT NULL
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
    DELETE FROM public.erased_accounts WHERE erased_at < now() - interval '1 day';
    INSERT INTO public.erased_accounts (account_id, erased_at) VALUES (p_user, now())
      ON CONFLICT (account_id) DO UPDATE SET erased_at = EXCLUDED.erased_at;
    RETURN true;
  END
  $$;

REVOKE ALL ON FUNCTION priv.begin_erasure(uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION priv.begin_erasure(uuid, timestamptz) TO plinth_system;
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
                "DROP FUNCTION IF EXISTS priv.begin_erasure(uuid, timestamptz);
                 DROP TABLE IF EXISTS erased_accounts;
                 ALTER TABLE users DROP COLUMN IF EXISTS erasure_started_at;",
            )
            .await?;
        Ok(())
    }
}
