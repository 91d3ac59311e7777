//! `jobs`: scan, prepare and publish work, queued for workers.
use sea_orm::entity::prelude::*;

/// One job.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub kind: String,
    pub status: String,
    pub draft_id: Option<Uuid>,
    pub progress: f64,
    pub message: Option<String>,
    pub input: Json,
    pub result: Option<Json>,
    pub error: Option<String>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_after: DateTimeWithTimeZone,
    pub lease_expires_at: Option<DateTimeWithTimeZone>,
    pub worker_id: Option<Uuid>,
    pub cancel_requested: bool,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
    pub finished_at: Option<DateTimeWithTimeZone>,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
