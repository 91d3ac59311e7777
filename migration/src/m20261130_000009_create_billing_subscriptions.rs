use crate::rls::{tenant_table, CURRENT_USER_ID, USER_ROLES};
use sea_orm_migration::prelude::*;

/// One row per Stripe subscription of a user: the account state is derived from the set
/// of them (the best one wins), so a second subscription, or one of several ending,
/// never decides the account alone. `billing_accounts` keeps the derived account and
/// gains what the derivation needs: the billing anchor quota periods follow, the
/// moment a cancellation takes effect, the customer that was forgotten (the next one's
/// idempotency key names it).
///
/// The grace sweeper's `priv.grace_expired` becomes `priv.billing_due`: grace ended or
/// a cancellation came due, both without any webhook.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261130_000009_create_billing_subscriptions"
    }
}

const SQL: &str = r#"
CREATE TABLE billing_subscriptions (
  user_id              uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  subscription_id      text NOT NULL,
  customer_id          text NOT NULL,
  -- As Stripe spelled it (a status it adds later is kept, and grants nothing).
  status               text NOT NULL,
  -- A `customer.subscription.deleted` event, or its customer was deleted.
  ended                boolean NOT NULL DEFAULT false,
  -- The catalog plan of its items; NULL while none of its prices was ever in the catalog.
  plan                 text CHECK (plan IN ('starter', 'pro', 'scale')),
  billing_interval     text CHECK (billing_interval IN ('month', 'year')),
  unknown_prices       jsonb NOT NULL DEFAULT '[]'::jsonb,
  current_period_start timestamptz,
  current_period_end   timestamptz,
  billing_anchor       timestamptz,
  trial_end            timestamptz,
  cancel_at_period_end boolean NOT NULL DEFAULT false,
  cancel_at            timestamptz,
  -- Stripe's time of the first past_due snapshot of this spell: grace runs from it.
  past_due_since       timestamptz,
  -- The newest applied snapshot: Stripe's `created` of its event (unix seconds) and the
  -- rank of its status, which decides between snapshots of one second.
  version              bigint NOT NULL,
  status_rank          smallint NOT NULL,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, subscription_id)
);

ALTER TABLE billing_accounts
  ADD COLUMN billing_anchor       timestamptz,
  ADD COLUMN cancels_at           timestamptz,
  ADD COLUMN previous_customer_id text;

DROP FUNCTION priv.grace_expired();

-- Accounts whose derived state changes with time alone: a grace period ended, or a
-- cancellation came due. The sweeper derives them again one by one.
CREATE FUNCTION priv.billing_due()
  RETURNS TABLE (user_id uuid)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$ SELECT b.user_id FROM public.billing_accounts b
        WHERE (b.account_state = 'grace' AND b.grace_until < now())
           OR (b.account_state <> 'free' AND b.cancels_at <= now()) $$;
REVOKE ALL ON FUNCTION priv.billing_due() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION priv.billing_due() TO plinth_system;

-- Reconcile's list of the customers Plinth knows: one (user, customer) per account.
CREATE FUNCTION priv.billing_customers()
  RETURNS TABLE (user_id uuid, customer_id text)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$ SELECT b.user_id, b.stripe_customer_id FROM public.billing_accounts b
        WHERE b.stripe_customer_id IS NOT NULL ORDER BY b.user_id $$;
REVOKE ALL ON FUNCTION priv.billing_customers() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION priv.billing_customers() TO plinth_system;
"#;

fn policies() -> String {
    let me = CURRENT_USER_ID;
    format!(
        "GRANT SELECT ON billing_subscriptions TO {USER_ROLES};
         CREATE POLICY billing_subscriptions_billing ON billing_subscriptions FOR ALL TO plinth_billing
           USING (user_id = {me}) WITH CHECK (user_id = {me});
         GRANT SELECT, INSERT, UPDATE ON billing_subscriptions TO plinth_billing;"
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(SQL).await?;
        db.execute_unprepared(&tenant_table("billing_subscriptions", "user_id")).await?;
        db.execute_unprepared(&policies()).await?;
        // Accounts subscribed before this table existed: their one subscription, as stored.
        db.execute_unprepared(
            "INSERT INTO billing_subscriptions (user_id, subscription_id, customer_id, status, plan, billing_interval,
               current_period_start, current_period_end, billing_anchor, trial_end, cancel_at_period_end,
               past_due_since, version, status_rank)
             SELECT user_id, subscription_id, stripe_customer_id, subscription_status,
                    CASE WHEN plan = 'free' THEN NULL ELSE plan END, billing_interval,
                    current_period_start, current_period_end, current_period_start, trial_end, cancel_at_period_end,
                    CASE WHEN account_state = 'grace' THEN grace_until - interval '7 days' END,
                    state_version, 0
             FROM billing_accounts
             WHERE subscription_id IS NOT NULL AND subscription_status IS NOT NULL AND stripe_customer_id IS NOT NULL;
             UPDATE billing_accounts SET billing_anchor = current_period_start WHERE subscription_id IS NOT NULL;",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP FUNCTION IF EXISTS priv.billing_due(), priv.billing_customers();
                 CREATE FUNCTION priv.grace_expired()
                   RETURNS TABLE (user_id uuid)
                   LANGUAGE sql STABLE SECURITY DEFINER
                   SET search_path = pg_catalog, pg_temp
                   AS $$ SELECT b.user_id FROM public.billing_accounts b
                         WHERE b.account_state = 'grace' AND b.grace_until < now() $$;
                 REVOKE ALL ON FUNCTION priv.grace_expired() FROM PUBLIC;
                 GRANT EXECUTE ON FUNCTION priv.grace_expired() TO plinth_system;
                 ALTER TABLE billing_accounts DROP COLUMN IF EXISTS billing_anchor,
                   DROP COLUMN IF EXISTS cancels_at, DROP COLUMN IF EXISTS previous_customer_id;
                 DROP TABLE IF EXISTS billing_subscriptions;",
            )
            .await?;
        Ok(())
    }
}
