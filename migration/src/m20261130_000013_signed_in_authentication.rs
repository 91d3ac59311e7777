use crate::rls::USER_ROLES;
use sea_orm_migration::prelude::*;

/// A signed-in caller may sign in as someone else (`login`) or ask for a password reset
/// like an anonymous one: the two lookups by e-mail that those mutations run before
/// knowing the account become executable by the user roles too. They reveal nothing an
/// anonymous caller cannot learn (anyone may call them by sending no token), and each
/// stays behind the sign-in throttle.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261130_000013_signed_in_authentication"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "GRANT USAGE ON SCHEMA priv TO {USER_ROLES};
                 GRANT EXECUTE ON FUNCTION priv.login_lookup(citext), priv.user_id_for_email(citext) TO {USER_ROLES};"
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "REVOKE EXECUTE ON FUNCTION priv.login_lookup(citext), priv.user_id_for_email(citext) FROM {USER_ROLES};"
            ))
            .await?;
        Ok(())
    }
}
