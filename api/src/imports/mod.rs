//! Bringing history into an account: the import folder's format (the same files as the
//! GDPR export, docs/import.md), `plinth import` (checked first, then written in batches
//! through the domains' services, as the account, resumable) and `plinth export`
//! (the export's rows and objects, written as such a folder); and the web app's imports
//! (a zip uploaded, unpacked safely and run by the same importer as a task of the
//! server, followed live with `importUpdated`).
pub mod archive;
pub mod format;
pub mod graphql;
pub mod runner;
pub mod runs;
pub mod service;
pub mod store;
pub mod tasks;
