use sea_orm_migration::prelude::*;

/// Database roles. Roles are cluster-wide, so every statement is idempotent: many
/// databases (one per test, or per environment) share them.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000001_create_roles"
    }
}

const SQL: &str = r#"
DO $$
DECLARE r text;
BEGIN
  -- NOLOGIN roles the runtime switches to with SET LOCAL ROLE, one per kind of caller.
  FOREACH r IN ARRAY ARRAY['plinth_anon', 'plinth_user', 'plinth_support', 'plinth_admin', 'plinth_worker'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE', r);
    END IF;
  END LOOP;
  -- The login role of the runtime pool: owns nothing, bypasses nothing, and inherits
  -- nothing, so a connection that has not switched role can read no table at all.
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'plinth_app') THEN
    CREATE ROLE plinth_app LOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
  FOREACH r IN ARRAY ARRAY['plinth_anon', 'plinth_user', 'plinth_support', 'plinth_admin', 'plinth_worker'] LOOP
    IF NOT pg_has_role('plinth_app', r, 'MEMBER') THEN
      EXECUTE format('GRANT %I TO plinth_app', r);
    END IF;
  END LOOP;
END
$$;

-- Narrow cross-tenant functions live here; only the roles granted USAGE reach them.
CREATE SCHEMA IF NOT EXISTS priv;
REVOKE ALL ON SCHEMA priv FROM PUBLIC;
CREATE EXTENSION IF NOT EXISTS citext;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(SQL).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Roles are shared by every database of the cluster: dropping them here would
        // break the others. Only this database's schema goes.
        manager.get_connection().execute_unprepared("DROP SCHEMA IF EXISTS priv CASCADE;").await?;
        Ok(())
    }
}
