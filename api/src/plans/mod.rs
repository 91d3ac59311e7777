//! The public plan list of the pricing page, from the catalog (`crate::catalog`).
pub mod graphql;
