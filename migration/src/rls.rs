//! SQL helpers shared by migrations that create tenant tables.

/// The expression every tenant policy compares `user_id` with. NULL when the request
/// set no user (the setting is unset, or empty after an earlier transaction), so a
/// policy built on it matches nothing: isolation fails closed. The sub-select makes
/// Postgres evaluate it once per statement instead of once per row.
pub const CURRENT_USER_ID: &str = "(SELECT NULLIF(current_setting('plinth.user_id', true), '')::uuid)";

/// Roles that act for one signed-in user.
pub const USER_ROLES: &str = "plinth_user, plinth_support, plinth_admin";

/// Enables and forces row-level security on `table` and adds the owner policy: the
/// caller's roles see and write only rows whose `column` is the request's user.
pub fn tenant_table(table: &str, column: &str) -> String {
    format!(
        "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
         ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
         CREATE POLICY {table}_owner ON {table} FOR ALL TO {USER_ROLES}
           USING ({column} = {CURRENT_USER_ID})
           WITH CHECK ({column} = {CURRENT_USER_ID});"
    )
}

/// Creates a NOLOGIN app role the runtime login role may switch to, idempotently
/// (roles are cluster-wide, shared by every database of the cluster).
pub fn app_role(name: &str) -> String {
    format!(
        "DO $$
         BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN
             CREATE ROLE {name} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
           END IF;
           IF NOT pg_has_role('plinth_app', '{name}', 'MEMBER') THEN
             GRANT {name} TO plinth_app;
           END IF;
         END
         $$;"
    )
}
