//! `billing_accounts`: each user's Stripe customer and subscription state, written by billing only.
use sea_orm::entity::prelude::*;

/// One row.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "billing_accounts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    pub stripe_customer_id: Option<String>,
    pub trial_used: bool,
    pub subscription_id: Option<String>,
    pub subscription_status: Option<String>,
    pub plan: String,
    pub billing_interval: Option<String>,
    pub account_state: String,
    pub grace_until: Option<DateTimeWithTimeZone>,
    pub current_period_start: Option<DateTimeWithTimeZone>,
    pub current_period_end: Option<DateTimeWithTimeZone>,
    pub trial_end: Option<DateTimeWithTimeZone>,
    pub cancel_at_period_end: bool,
    pub state_version: i64,
    pub billing_anchor: Option<DateTimeWithTimeZone>,
    pub cancels_at: Option<DateTimeWithTimeZone>,
    pub previous_customer_id: Option<String>,
    pub address_country: Option<String>,
    pub disputed_at: Option<DateTimeWithTimeZone>,
    pub dispute_id: Option<String>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
