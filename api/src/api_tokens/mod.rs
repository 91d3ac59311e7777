//! API tokens for integrators: biscuits scoped to what they may call, listed and
//! revocable by their owner, attenuable further offline by the integrator.
pub mod graphql;
pub mod service;
pub mod store;
