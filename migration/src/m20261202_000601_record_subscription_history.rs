use crate::rls::CURRENT_USER_ID;
use sea_orm_migration::prelude::*;

/// The subscription history business metrics are computed from: one row each time a
/// subscription's plan, interval, status, quantity or price changes, with its
/// monthly-normalised amount (MRR) and Stripe's time of the event.
///
/// Written by a trigger on `billing_subscriptions`, so every path that changes a
/// subscription (a webhook, reconcile, a deleted customer) records it in its own
/// transaction, under the customer's lock, and a rolled-back webhook records nothing.
/// Rows come in the order the state machine applies snapshots (never backwards), so
/// within one subscription `(effective_at, id)` orders them.
///
/// Existing subscriptions are backfilled from their current state at their last
/// event's time (what happened before is not known); their price is the built-in
/// catalog's (plans.toml when this migration was written), quantity 1.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000601_record_subscription_history"
    }
}

const SQL: &str = r#"
ALTER TABLE billing_subscriptions
  ADD COLUMN quantity          integer NOT NULL DEFAULT 1 CHECK (quantity >= 0),
  -- The catalog's price of the plan and interval, cents, tax excluded.
  ADD COLUMN unit_amount_cents bigint CHECK (unit_amount_cents >= 0),
  ADD COLUMN currency          text;

CREATE TABLE billing_subscription_history (
  id                bigint GENERATED ALWAYS AS IDENTITY,
  user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  subscription_id   text NOT NULL,
  -- Stripe's time of the event the change came with (the row's `version`).
  effective_at      timestamptz NOT NULL,
  plan              text,
  billing_interval  text,
  status            text NOT NULL,
  ended             boolean NOT NULL,
  quantity          integer NOT NULL,
  unit_amount_cents bigint,
  currency          text,
  -- Monthly recurring revenue of the subscription from `effective_at` on, in cents of
  -- `currency`, tax excluded: price × quantity, a yearly price ÷ 12 (rounded to the
  -- cent), while it is active or past due (Stripe still collects); 0 otherwise
  -- (trialing, incomplete, unpaid, paused, canceled, ended).
  mrr_cents         bigint NOT NULL CHECK (mrr_cents >= 0),
  created_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, id)
);
CREATE INDEX billing_subscription_history_time_idx ON billing_subscription_history (effective_at);
CREATE INDEX billing_subscription_history_sub_idx
  ON billing_subscription_history (user_id, subscription_id, effective_at, id);

-- The monthly-normalised amount of a subscription state (see the column above).
CREATE FUNCTION public.subscription_mrr_cents(status text, ended boolean, billing_interval text,
                                              quantity integer, unit_amount_cents bigint)
  RETURNS bigint LANGUAGE sql IMMUTABLE
  AS $$ SELECT CASE
          WHEN ended OR status NOT IN ('active', 'past_due') OR unit_amount_cents IS NULL THEN 0
          WHEN billing_interval = 'year' THEN round(unit_amount_cents * quantity / 12.0)::bigint
          ELSE unit_amount_cents * quantity
        END $$;

-- Runs as the writer (billing, acting for the subscription's user): the history
-- policy lets it add rows of that user only.
CREATE FUNCTION public.billing_subscriptions_record_history()
  RETURNS trigger LANGUAGE plpgsql
  AS $$
BEGIN
  IF TG_OP = 'UPDATE'
     AND (NEW.plan, NEW.billing_interval, NEW.status, NEW.ended, NEW.quantity, NEW.unit_amount_cents)
         IS NOT DISTINCT FROM
         (OLD.plan, OLD.billing_interval, OLD.status, OLD.ended, OLD.quantity, OLD.unit_amount_cents) THEN
    RETURN NULL;
  END IF;
  INSERT INTO billing_subscription_history (user_id, subscription_id, effective_at, plan, billing_interval,
    status, ended, quantity, unit_amount_cents, currency, mrr_cents)
  VALUES (NEW.user_id, NEW.subscription_id, to_timestamp(NEW.version), NEW.plan, NEW.billing_interval,
    NEW.status, NEW.ended, NEW.quantity, NEW.unit_amount_cents, NEW.currency,
    public.subscription_mrr_cents(NEW.status, NEW.ended, NEW.billing_interval, NEW.quantity, NEW.unit_amount_cents));
  RETURN NULL;
END $$;

-- Existing subscriptions: the built-in catalog's prices.
UPDATE billing_subscriptions SET currency = 'eur', unit_amount_cents = CASE plan || '/' || billing_interval
    WHEN 'starter/month' THEN 1900 WHEN 'starter/year' THEN 19000
    WHEN 'pro/month' THEN 4900 WHEN 'pro/year' THEN 49000
    WHEN 'scale/month' THEN 14900 WHEN 'scale/year' THEN 149000 END
  WHERE plan IS NOT NULL;
INSERT INTO billing_subscription_history (user_id, subscription_id, effective_at, plan, billing_interval,
    status, ended, quantity, unit_amount_cents, currency, mrr_cents)
  SELECT user_id, subscription_id, to_timestamp(version), plan, billing_interval, status, ended, quantity,
         unit_amount_cents, currency,
         public.subscription_mrr_cents(status, ended, billing_interval, quantity, unit_amount_cents)
  FROM billing_subscriptions;

CREATE TRIGGER billing_subscriptions_history AFTER INSERT OR UPDATE ON billing_subscriptions
  FOR EACH ROW EXECUTE FUNCTION public.billing_subscriptions_record_history();
"#;

fn policies() -> String {
    let me = CURRENT_USER_ID;
    format!(
        "ALTER TABLE billing_subscription_history ENABLE ROW LEVEL SECURITY;
         ALTER TABLE billing_subscription_history FORCE ROW LEVEL SECURITY;
         -- Append-only, and only by billing for the user it acts for.
         CREATE POLICY billing_subscription_history_billing ON billing_subscription_history
           FOR INSERT TO plinth_billing WITH CHECK (user_id = {me});
         CREATE POLICY billing_subscription_history_billing_read ON billing_subscription_history
           FOR SELECT TO plinth_billing USING (user_id = {me});
         GRANT SELECT, INSERT ON billing_subscription_history TO plinth_billing;"
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(SQL).await?;
        db.execute_unprepared(&policies()).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP TRIGGER IF EXISTS billing_subscriptions_history ON billing_subscriptions;
                 DROP FUNCTION IF EXISTS public.billing_subscriptions_record_history();
                 DROP TABLE IF EXISTS billing_subscription_history;
                 DROP FUNCTION IF EXISTS public.subscription_mrr_cents(text, boolean, text, integer, bigint);
                 ALTER TABLE billing_subscriptions DROP COLUMN IF EXISTS quantity,
                   DROP COLUMN IF EXISTS unit_amount_cents, DROP COLUMN IF EXISTS currency;",
            )
            .await?;
        Ok(())
    }
}
