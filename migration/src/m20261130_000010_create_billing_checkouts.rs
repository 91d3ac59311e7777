use crate::rls::{tenant_table, CURRENT_USER_ID};
use sea_orm_migration::prelude::*;

/// The one pending Checkout of a user (its primary key is the user): two tabs asking
/// for the same plan share its idempotency key, so Stripe answers both with one
/// session; a tab asking for another plan replaces it (the replaced session is expired
/// at Stripe first). Written by billing only; users do not read it.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261130_000010_create_billing_checkouts"
    }
}

const SQL: &str = r#"
CREATE TABLE billing_checkouts (
  user_id          uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  plan             text NOT NULL CHECK (plan IN ('starter', 'pro', 'scale')),
  billing_interval text NOT NULL CHECK (billing_interval IN ('month', 'year')),
  -- Sent with the Checkout Session's creation by every attempt that shares this row.
  idempotency_key  text NOT NULL,
  opened_at        timestamptz NOT NULL,
  -- The session's `expires_at`, fixed when the row is opened so every attempt sends the
  -- same parameters with the same key.
  expires_at       timestamptz NOT NULL,
  session_id       text,
  url              text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(SQL).await?;
        db.execute_unprepared(&tenant_table("billing_checkouts", "user_id")).await?;
        let me = CURRENT_USER_ID;
        db.execute_unprepared(&format!(
            "CREATE POLICY billing_checkouts_billing ON billing_checkouts FOR ALL TO plinth_billing
               USING (user_id = {me}) WITH CHECK (user_id = {me});
             GRANT SELECT, INSERT, UPDATE, DELETE ON billing_checkouts TO plinth_billing;"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP TABLE IF EXISTS billing_checkouts;").await?;
        Ok(())
    }
}
