use crate::rls::CURRENT_USER_ID;
use sea_orm_migration::prelude::*;

/// A user's reply notifies its ticket's assignee under the kind every client already
/// reads (`support_reply`; the kind `support_ticket_reply` of m20261202_000501 is no
/// notification kind the API knows). Still only for a staff member assigned to one of
/// the caller's own tickets.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000504_notify_ticket_replies"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let me = CURRENT_USER_ID;
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "DROP POLICY notifications_ticket_reply ON notifications;
                 CREATE POLICY notifications_ticket_reply ON notifications FOR INSERT TO plinth_user
                   WITH CHECK (kind = 'support_reply'
                               AND EXISTS (SELECT 1 FROM tickets t WHERE t.user_id = {me}
                                           AND t.assignee_id = notifications.user_id));"
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let me = CURRENT_USER_ID;
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "DROP POLICY notifications_ticket_reply ON notifications;
                 CREATE POLICY notifications_ticket_reply ON notifications FOR INSERT TO plinth_user
                   WITH CHECK (kind = 'support_ticket_reply'
                               AND EXISTS (SELECT 1 FROM tickets t WHERE t.user_id = {me}
                                           AND t.assignee_id = notifications.user_id));"
            ))
            .await?;
        Ok(())
    }
}
