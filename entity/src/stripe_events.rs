//! `stripe_events`: Stripe webhook events already applied, by event id (not a tenant table).
use sea_orm::entity::prelude::*;

/// One row.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "stripe_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(column_name = "type")]
    pub kind: String,
    pub customer_id: Option<String>,
    pub created: i64,
    pub received_at: DateTimeWithTimeZone,
    pub api_version: Option<String>,
    pub note: Option<String>,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
