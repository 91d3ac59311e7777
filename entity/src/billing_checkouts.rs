//! `billing_checkouts`: a user's one pending Stripe Checkout, written by billing only.
use sea_orm::entity::prelude::*;

/// The pending checkout.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "billing_checkouts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    pub plan: String,
    pub billing_interval: String,
    pub idempotency_key: String,
    pub opened_at: DateTimeWithTimeZone,
    pub expires_at: DateTimeWithTimeZone,
    pub session_id: Option<String>,
    pub url: Option<String>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
