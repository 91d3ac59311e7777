//! Exports of the business metrics as CSV, for a spreadsheet: every admin metric
//! (MRR, churn, conversion, activation, cohorts, support figures, usage totals,
//! experiment results, NPS), from the same service functions the GraphQL fields call,
//! so the numbers are the same. The admin HTTP route (`GET /admin/metrics/<metric>.csv`)
//! and the command line (`plinth metrics export <metric>`) both go through
//! [`service::export`]. No GraphQL or HTTP here.
pub mod service;
