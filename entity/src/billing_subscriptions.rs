//! `billing_subscriptions`: one row per Stripe subscription of a user, written by billing
//! only; the account state is derived from all of a user's rows.
use sea_orm::entity::prelude::*;

/// One subscription, as last applied.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "billing_subscriptions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub subscription_id: String,
    pub customer_id: String,
    pub status: String,
    pub ended: bool,
    pub plan: Option<String>,
    pub billing_interval: Option<String>,
    pub unknown_prices: Json,
    pub current_period_start: Option<DateTimeWithTimeZone>,
    pub current_period_end: Option<DateTimeWithTimeZone>,
    pub billing_anchor: Option<DateTimeWithTimeZone>,
    pub trial_end: Option<DateTimeWithTimeZone>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<DateTimeWithTimeZone>,
    pub past_due_since: Option<DateTimeWithTimeZone>,
    pub version: i64,
    pub status_rank: i16,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
