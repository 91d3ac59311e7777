//! The vocabulary of photos.
use crate::model::vocabulary;
use async_graphql::Enum;

vocabulary! {
    /// Whether a photo's upload was confirmed.
    #[derive(Enum)]
    pub enum PhotoStatus as "photo status" {
        /// Reserved; waiting for the upload and its confirmation.
        Pending = "pending",
        /// Uploaded and checked.
        Ready = "ready",
    }
}

/// Image types accepted, as clients declare them.
pub const ALLOWED_TYPES: &[&str] = &["image/jpeg", "image/png", "image/webp", "image/heic"];
