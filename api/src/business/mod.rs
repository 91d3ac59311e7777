//! Business metrics for administrators (MRR and its movements, churn, conversion,
//! activation, cohorts, usage), computed by the functions of the `metrics` schema in
//! PostgreSQL: the server only passes the range and maps the aggregates back.
//! (Named `business` because `crate::metrics` is the process's Prometheus registry.)
pub mod graphql;
pub mod service;
pub mod store;
