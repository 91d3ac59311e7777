use crate::rls::CURRENT_USER_ID;
use sea_orm_migration::prelude::*;

/// Staff read a ticket's CSAT rating (issue 16): support and admins see the ratings, as
/// they see tickets and their messages (`tickets_staff_read`), a signed-in staff member
/// only (an unset user id fails closed). They reach a rating through a ticket they were
/// shown, which support logs as read in the owner's access log. Writes stay the
/// owner's: no policy for staff inserts, updates or deletes.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000401_staff_read_ticket_csat"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = format!(
            "CREATE POLICY ticket_csat_staff_read ON ticket_csat FOR SELECT TO plinth_support, plinth_admin
               USING ({CURRENT_USER_ID} IS NOT NULL);"
        );
        manager.get_connection().execute_unprepared(&sql).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP POLICY IF EXISTS ticket_csat_staff_read ON ticket_csat;")
            .await?;
        Ok(())
    }
}
