//! Support: tickets and live chat per user, the staff inbox across tenants (audited in
//! each user's access log), access grants, canned replies. Isolation is the database's:
//! users see their own tickets and never an internal note, staff see what their role's
//! policies allow.
pub mod attachments;
pub mod chatwoot;
pub mod domain;
pub mod graphql;
pub mod operator;
pub mod service;
pub mod store;
pub mod tasks;
pub mod tools;
pub mod tools_graphql;
