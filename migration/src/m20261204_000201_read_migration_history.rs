use sea_orm_migration::prelude::*;

/// The runtime role may read which migrations were applied (`seaql_migrations.version`,
/// nothing else of it), so that `plinth serve` and `plinth mailer`, which in production
/// connect only as `plinth_app` and never migrate, can refuse to start on a schema older
/// than their binary and name the first migration it lacks. Until this migration runs,
/// the read is refused: the runtime reports this migration as the missing one.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000201_read_migration_history"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("GRANT SELECT (version) ON seaql_migrations TO plinth_app").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("REVOKE SELECT (version) ON seaql_migrations FROM plinth_app").await?;
        Ok(())
    }
}
