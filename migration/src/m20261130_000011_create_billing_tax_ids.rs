use crate::rls::{tenant_table, CURRENT_USER_ID, USER_ROLES};
use sea_orm_migration::prelude::*;

/// A customer's tax ids (EU VAT numbers and the like), one row per Stripe tax id, from
/// `customer.tax_id.*` events and reconcile (`expand[]=tax_ids`): `customer.updated` has
/// not carried them since Stripe's 2020-08-27 API version. A deleted one stays as a
/// tombstone so an older event cannot bring it back. The billing address's country
/// joins the account. Replaces the never-filled `billing_accounts.tax_ids`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261130_000011_create_billing_tax_ids"
    }
}

const SQL: &str = r#"
CREATE TABLE billing_tax_ids (
  user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  tax_id              text NOT NULL,
  type                text NOT NULL,
  value               text NOT NULL,
  country             text,
  verification_status text NOT NULL
    CHECK (verification_status IN ('pending', 'verified', 'unverified', 'unavailable')),
  deleted             boolean NOT NULL DEFAULT false,
  -- Stripe's `created` of the newest applied event (unix seconds).
  version             bigint NOT NULL,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, tax_id)
);

ALTER TABLE billing_accounts ADD COLUMN address_country text, DROP COLUMN tax_ids;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(SQL).await?;
        db.execute_unprepared(&tenant_table("billing_tax_ids", "user_id")).await?;
        let me = CURRENT_USER_ID;
        db.execute_unprepared(&format!(
            "GRANT SELECT ON billing_tax_ids TO {USER_ROLES};
             CREATE POLICY billing_tax_ids_billing ON billing_tax_ids FOR ALL TO plinth_billing
               USING (user_id = {me}) WITH CHECK (user_id = {me});
             GRANT SELECT, INSERT, UPDATE ON billing_tax_ids TO plinth_billing;"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP TABLE IF EXISTS billing_tax_ids;
                 ALTER TABLE billing_accounts DROP COLUMN IF EXISTS address_country,
                   ADD COLUMN IF NOT EXISTS tax_ids jsonb NOT NULL DEFAULT '[]'::jsonb;",
            )
            .await?;
        Ok(())
    }
}
