//! The activity log: every mutation appends who did what to which object.
pub mod graphql;
pub mod service;
