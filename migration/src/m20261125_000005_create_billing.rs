use crate::rls::{app_role, tenant_table, CURRENT_USER_ID, USER_ROLES};
use sea_orm_migration::prelude::*;

/// Billing: each user's Stripe customer and subscription state, invoices, in-app
/// notifications, the processed-webhook ledger, and access-token revocations.
///
/// Billing state is written only by `plinth_billing`, a role that, like a user's,
/// sees one user at a time (the request's `plinth.user_id`); users may only read it.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000005_create_billing"
    }
}

const SQL: &str = r#"
CREATE TABLE billing_accounts (
  user_id              uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  stripe_customer_id   text CONSTRAINT billing_accounts_customer_key UNIQUE,
  trial_used           boolean NOT NULL DEFAULT false,
  subscription_id      text,
  subscription_status  text,
  plan                 text NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'starter', 'pro', 'scale')),
  billing_interval     text CHECK (billing_interval IN ('month', 'year')),
  account_state        text NOT NULL DEFAULT 'free' CHECK (account_state IN ('free', 'active', 'grace', 'suspended')),
  grace_until          timestamptz,
  current_period_start timestamptz,
  current_period_end   timestamptz,
  trial_end            timestamptz,
  cancel_at_period_end boolean NOT NULL DEFAULT false,
  -- Stripe's `created` of the newest event applied: an older one never overwrites it.
  state_version        bigint NOT NULL DEFAULT 0,
  tax_ids              jsonb NOT NULL DEFAULT '[]'::jsonb,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE invoices (
  id                 uuid NOT NULL,
  user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  stripe_invoice_id  text NOT NULL,
  number             text,
  status             text NOT NULL,
  currency           text NOT NULL,
  subtotal_cents     bigint NOT NULL DEFAULT 0,
  tax_cents          bigint NOT NULL DEFAULT 0,
  total_cents        bigint NOT NULL DEFAULT 0,
  amount_paid_cents  bigint NOT NULL DEFAULT 0,
  amount_due_cents   bigint NOT NULL DEFAULT 0,
  hosted_invoice_url text,
  invoice_pdf        text,
  period_start       timestamptz,
  period_end         timestamptz,
  stripe_created     timestamptz NOT NULL,
  state_version      bigint NOT NULL DEFAULT 0,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, id),
  CONSTRAINT invoices_stripe_key UNIQUE (user_id, stripe_invoice_id)
);
CREATE INDEX invoices_user_created_idx ON invoices (user_id, stripe_created DESC, id DESC);

CREATE TABLE notifications (
  id         uuid NOT NULL,
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  kind       text NOT NULL,
  title      text NOT NULL,
  body       text NOT NULL,
  data       jsonb NOT NULL DEFAULT '{}'::jsonb,
  read_at    timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, id)
);
CREATE INDEX notifications_user_created_idx ON notifications (user_id, created_at DESC, id DESC);

-- Webhook events already applied, by Stripe's event id: a redelivery is a no-op.
-- Not a tenant table: only the webhook path (plinth_system) reaches it.
CREATE TABLE stripe_events (
  id           text PRIMARY KEY,
  type         text NOT NULL,
  customer_id  text,
  created      bigint NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE stripe_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE stripe_events FORCE ROW LEVEL SECURITY;
CREATE POLICY stripe_events_system ON stripe_events FOR ALL TO plinth_system USING (true) WITH CHECK (true);
GRANT SELECT, INSERT ON stripe_events TO plinth_system;

-- Access tokens of a user issued before `revoked_before` are refused (plan changes,
-- suspension). Read by every instance at start; changes travel on the event bus.
CREATE TABLE token_revocations (
  user_id        uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  revoked_before timestamptz NOT NULL
);
ALTER TABLE token_revocations ENABLE ROW LEVEL SECURITY;
ALTER TABLE token_revocations FORCE ROW LEVEL SECURITY;
CREATE POLICY token_revocations_system ON token_revocations FOR SELECT TO plinth_system USING (true);
GRANT SELECT ON token_revocations TO plinth_system;

-- The webhook's way from a Stripe customer to its user: one id in, one id out.
CREATE FUNCTION priv.user_for_stripe_customer(p_customer text)
  RETURNS uuid
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$ SELECT b.user_id FROM public.billing_accounts b WHERE b.stripe_customer_id = p_customer $$;
REVOKE ALL ON FUNCTION priv.user_for_stripe_customer(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION priv.user_for_stripe_customer(text) TO plinth_system;

-- Users whose grace period ended: the sweeper suspends them one by one.
CREATE FUNCTION priv.grace_expired()
  RETURNS TABLE (user_id uuid)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$ SELECT b.user_id FROM public.billing_accounts b WHERE b.account_state = 'grace' AND b.grace_until < now() $$;
REVOKE ALL ON FUNCTION priv.grace_expired() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION priv.grace_expired() TO plinth_system;
"#;

fn policies() -> String {
    let me = CURRENT_USER_ID;
    format!(
        "-- Users read their billing; the billing role writes it, one user at a time.
         GRANT SELECT ON billing_accounts, invoices TO {USER_ROLES};
         CREATE POLICY billing_accounts_billing ON billing_accounts FOR ALL TO plinth_billing
           USING (user_id = {me}) WITH CHECK (user_id = {me});
         CREATE POLICY invoices_billing ON invoices FOR ALL TO plinth_billing
           USING (user_id = {me}) WITH CHECK (user_id = {me});
         GRANT SELECT, INSERT, UPDATE ON billing_accounts, invoices TO plinth_billing;
         GRANT SELECT, INSERT ON notifications TO {USER_ROLES};
         GRANT UPDATE (read_at) ON notifications TO {USER_ROLES};
         CREATE POLICY notifications_billing ON notifications FOR ALL TO plinth_billing
           USING (user_id = {me}) WITH CHECK (user_id = {me});
         GRANT SELECT, INSERT ON notifications TO plinth_billing;
         -- What a billing change touches besides billing: the user's plan, its activity,
         -- its mail, its token revocations.
         CREATE POLICY users_billing ON users FOR ALL TO plinth_billing USING (id = {me}) WITH CHECK (id = {me});
         GRANT SELECT ON users TO plinth_billing;
         GRANT UPDATE (plan, updated_at) ON users TO plinth_billing;
         CREATE POLICY activity_billing ON activity_log FOR ALL TO plinth_billing
           USING (user_id = {me}) WITH CHECK (user_id = {me});
         GRANT SELECT, INSERT ON activity_log TO plinth_billing;
         CREATE POLICY outbox_billing ON email_outbox FOR ALL TO plinth_billing
           USING (user_id = {me}) WITH CHECK (user_id = {me});
         GRANT SELECT, INSERT ON email_outbox TO plinth_billing;
         CREATE POLICY token_revocations_billing ON token_revocations FOR ALL TO plinth_billing
           USING (user_id = {me}) WITH CHECK (user_id = {me});
         GRANT SELECT, INSERT, UPDATE ON token_revocations TO plinth_billing;"
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(&app_role("plinth_billing")).await?;
        db.execute_unprepared(SQL).await?;
        for table in ["billing_accounts", "invoices", "notifications"] {
            db.execute_unprepared(&tenant_table(table, "user_id")).await?;
        }
        // The owner policy tenant_table adds lets users write; billing is read-only to
        // them, which the grants (SELECT only) already enforce.
        db.execute_unprepared(&policies()).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP FUNCTION IF EXISTS priv.user_for_stripe_customer(text), priv.grace_expired();
                 DROP TABLE IF EXISTS token_revocations, stripe_events, notifications, invoices, billing_accounts;",
            )
            .await?;
        Ok(())
    }
}
