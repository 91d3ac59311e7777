//! `billing_tax_ids`: a user's tax ids at Stripe (deleted ones kept as tombstones),
//! written by billing only.
use sea_orm::entity::prelude::*;

/// One tax id.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "billing_tax_ids")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub tax_id: String,
    #[sea_orm(column_name = "type")]
    pub kind: String,
    pub value: String,
    pub country: Option<String>,
    pub verification_status: String,
    pub deleted: bool,
    pub version: i64,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
