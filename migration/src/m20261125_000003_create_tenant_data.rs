use crate::rls::{tenant_table, USER_ROLES};
use sea_orm_migration::prelude::*;

/// Tenant data: listing drafts, their photos, and connected marketplace accounts.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000003_create_tenant_data"
    }
}

const TABLES: &str = r#"
CREATE TABLE drafts (
  id          uuid NOT NULL,
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
  description text NOT NULL DEFAULT '' CHECK (length(description) <= 5000),
  price_cents bigint CHECK (price_cents BETWEEN 0 AND 100000000),
  currency    text NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$'),
  brand       text CHECK (length(brand) <= 100),
  size        text CHECK (length(size) <= 50),
  condition   text CHECK (condition IN ('new_with_tags', 'new_without_tags', 'very_good', 'good', 'satisfactory')),
  category    text CHECK (length(category) <= 100),
  status      text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'ready', 'published', 'archived')),
  deleted_at  timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, id)
);
-- The list order (newest first) and its cursor.
CREATE INDEX drafts_user_created_idx ON drafts (user_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE photos (
  id           uuid NOT NULL,
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  draft_id     uuid,
  position     int NOT NULL DEFAULT 0,
  object_key   text NOT NULL,
  content_type text NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png', 'image/webp', 'image/heic')),
  byte_size    bigint NOT NULL CHECK (byte_size > 0),
  width        int,
  height       int,
  sha256       bytea,
  status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready')),
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, id),
  CONSTRAINT photos_object_key_key UNIQUE (user_id, object_key),
  -- Only the draft column is cleared when a draft goes: the owner stays.
  FOREIGN KEY (user_id, draft_id) REFERENCES drafts (user_id, id) ON DELETE SET NULL (draft_id)
);
CREATE INDEX photos_draft_idx ON photos (user_id, draft_id, position);

CREATE TABLE marketplace_accounts (
  id           uuid NOT NULL,
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  platform     text NOT NULL CHECK (platform IN ('vinted', 'ebay', 'leboncoin', 'etsy', 'depop')),
  display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
  -- AES-256-GCM: 12-byte nonce then ciphertext; the row's ids are the associated data.
  credentials  bytea,
  status       text NOT NULL DEFAULT 'connected' CHECK (status IN ('connected', 'disconnected', 'error')),
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, id)
);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(TABLES).await?;
        for table in ["drafts", "photos", "marketplace_accounts"] {
            db.execute_unprepared(&tenant_table(table, "user_id")).await?;
            db.execute_unprepared(&format!("GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {USER_ROLES};")).await?;
        }
        // The owner column never moves between tenants.
        db.execute_unprepared(&format!(
            "REVOKE UPDATE ON drafts, photos, marketplace_accounts FROM {USER_ROLES};
             GRANT UPDATE (title, description, price_cents, currency, brand, size, condition, category, status,
                           deleted_at, updated_at) ON drafts TO {USER_ROLES};
             GRANT UPDATE (draft_id, position, width, height, sha256, status, updated_at) ON photos TO {USER_ROLES};
             GRANT UPDATE (display_name, credentials, status, updated_at) ON marketplace_accounts TO {USER_ROLES};"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE IF EXISTS marketplace_accounts, photos, drafts;")
            .await?;
        Ok(())
    }
}
