//! Bringing history into an account: the import folder's format (the same files as the
//! GDPR export, docs/import.md), `plinth import` (checked first, then written in batches
//! through the domains' services, as the account, resumable) and `plinth export`
//! (the export's rows and objects, written as such a folder).
pub mod format;
pub mod service;
pub mod store;
