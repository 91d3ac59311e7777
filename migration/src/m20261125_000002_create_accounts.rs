use crate::rls::{tenant_table, CURRENT_USER_ID, USER_ROLES};
use sea_orm_migration::prelude::*;

/// Accounts: users, sessions (refresh-token families), one-time tokens, the activity
/// log and the e-mail outbox, each isolated per user by row-level security.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000002_create_accounts"
    }
}

const TABLES: &str = r#"
CREATE TABLE users (
  id                uuid PRIMARY KEY,
  email             citext NOT NULL CONSTRAINT users_email_key UNIQUE,
  password_hash     text NOT NULL,
  role              text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'support', 'admin')),
  plan              text NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'starter', 'pro', 'scale')),
  email_verified_at timestamptz,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  CHECK (length(email) BETWEEN 3 AND 254)
);

-- One row per refresh-token family: a login starts one, every refresh rotates within it.
CREATE TABLE sessions (
  id             uuid NOT NULL,
  user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at     timestamptz NOT NULL DEFAULT now(),
  last_used_at   timestamptz NOT NULL DEFAULT now(),
  expires_at     timestamptz NOT NULL,
  revoked_at     timestamptz,
  revoked_reason text,
  user_agent     text,
  ip             text,
  PRIMARY KEY (user_id, id)
);

-- Every refresh token ever issued, hashed; a used one presented again is reuse.
CREATE TABLE refresh_tokens (
  user_id     uuid NOT NULL,
  token_hash  bytea NOT NULL,
  session_id  uuid NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  used_at     timestamptz,
  PRIMARY KEY (user_id, token_hash),
  FOREIGN KEY (user_id, session_id) REFERENCES sessions (user_id, id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (user_id, session_id);

CREATE TABLE one_time_tokens (
  id          uuid NOT NULL,
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  purpose     text NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
  token_hash  bytea NOT NULL,
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, id),
  CONSTRAINT one_time_tokens_hash_key UNIQUE (user_id, token_hash)
);

-- Append-only: the runtime roles may insert and read, never update or delete.
CREATE TABLE activity_log (
  id           uuid NOT NULL,
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  actor_id     uuid,
  action       text NOT NULL,
  subject_type text,
  subject_id   uuid,
  data         jsonb NOT NULL DEFAULT '{}'::jsonb,
  ip           text,
  request_id   text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, id)
);
CREATE INDEX activity_log_user_created_idx ON activity_log (user_id, created_at DESC, id DESC);

-- Mail to send, written in the same transaction as the change that needs it.
CREATE TABLE email_outbox (
  id          uuid NOT NULL,
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  to_email    citext NOT NULL,
  template    text NOT NULL,
  subject     text NOT NULL,
  body_text   text NOT NULL,
  data        jsonb NOT NULL DEFAULT '{}'::jsonb,
  status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
  attempts    int NOT NULL DEFAULT 0,
  created_at  timestamptz NOT NULL DEFAULT now(),
  sent_at     timestamptz,
  PRIMARY KEY (user_id, id)
);
CREATE INDEX email_outbox_pending_idx ON email_outbox (created_at) WHERE status = 'pending';
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(TABLES).await?;
        for (table, column) in [
            ("sessions", "user_id"),
            ("refresh_tokens", "user_id"),
            ("one_time_tokens", "user_id"),
            ("activity_log", "user_id"),
            ("email_outbox", "user_id"),
        ] {
            db.execute_unprepared(&tenant_table(table, column)).await?;
        }
        db.execute_unprepared(&users_policies()).await?;
        db.execute_unprepared(&grants()).await?;
        db.execute_unprepared(&functions()).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP FUNCTION IF EXISTS priv.login_lookup(citext), priv.user_id_for_email(citext);
                 DROP TABLE IF EXISTS email_outbox, activity_log, one_time_tokens, refresh_tokens, sessions, users;",
            )
            .await?;
        Ok(())
    }
}

/// Users are the tenant: a row's `id` is its user. A user reads and updates only
/// itself, and may create only itself with the plain role (the register path sets the
/// new id first); support and admin may read every account.
fn users_policies() -> String {
    let me = CURRENT_USER_ID;
    format!(
        "ALTER TABLE users ENABLE ROW LEVEL SECURITY;
         ALTER TABLE users FORCE ROW LEVEL SECURITY;
         CREATE POLICY users_self_read ON users FOR SELECT TO {USER_ROLES} USING (id = {me});
         CREATE POLICY users_staff_read ON users FOR SELECT TO plinth_support, plinth_admin USING (true);
         CREATE POLICY users_self_update ON users FOR UPDATE TO {USER_ROLES}
           USING (id = {me}) WITH CHECK (id = {me});
         CREATE POLICY users_self_insert ON users FOR INSERT TO plinth_user
           WITH CHECK (id = {me} AND role = 'user');
         CREATE POLICY users_admin_insert ON users FOR INSERT TO plinth_admin
           WITH CHECK (id = {me});"
    )
}

/// Table privileges: column lists keep a user from promoting itself or rewriting
/// history even where a policy would allow the row.
fn grants() -> String {
    format!(
        "GRANT SELECT, INSERT ON users TO {USER_ROLES};
         GRANT UPDATE (password_hash, email_verified_at, updated_at) ON users TO {USER_ROLES};
         GRANT SELECT, INSERT ON sessions TO {USER_ROLES};
         GRANT UPDATE (last_used_at, revoked_at, revoked_reason) ON sessions TO {USER_ROLES};
         GRANT SELECT, INSERT ON refresh_tokens TO {USER_ROLES};
         GRANT UPDATE (used_at) ON refresh_tokens TO {USER_ROLES};
         GRANT SELECT, INSERT ON one_time_tokens TO {USER_ROLES};
         GRANT UPDATE (used_at) ON one_time_tokens TO {USER_ROLES};
         GRANT SELECT, INSERT ON activity_log TO {USER_ROLES};
         GRANT SELECT, INSERT ON email_outbox TO {USER_ROLES};"
    )
}

/// The two ways an anonymous caller reaches across tenants, both by e-mail: sign-in
/// and the password-reset request. SECURITY DEFINER, so each filters on its argument
/// alone, pins its search_path, and is executable by `plinth_anon` only.
fn functions() -> String {
    "CREATE FUNCTION priv.login_lookup(p_email citext)
       RETURNS TABLE (id uuid, password_hash text, role text)
       LANGUAGE sql STABLE SECURITY DEFINER
       SET search_path = pg_catalog, pg_temp
       AS $$ SELECT u.id, u.password_hash, u.role FROM public.users u WHERE u.email OPERATOR(public.=) p_email $$;
     CREATE FUNCTION priv.user_id_for_email(p_email citext)
       RETURNS uuid
       LANGUAGE sql STABLE SECURITY DEFINER
       SET search_path = pg_catalog, pg_temp
       AS $$ SELECT u.id FROM public.users u WHERE u.email OPERATOR(public.=) p_email $$;
     REVOKE ALL ON FUNCTION priv.login_lookup(citext), priv.user_id_for_email(citext) FROM PUBLIC;
     GRANT USAGE ON SCHEMA priv TO plinth_anon;
     GRANT EXECUTE ON FUNCTION priv.login_lookup(citext), priv.user_id_for_email(citext) TO plinth_anon;"
        .to_string()
}
