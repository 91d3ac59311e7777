//! Ticket attachments through the presigned object store, as photos are: a reservation
//! is uploaded to `u/<owner>/t/<id>` (the only key a URL is signed for), confirmation
//! checks the bytes (declared size and type, the type sniffed from the content, the
//! declared SHA-256) and copies them to `u/<owner>/tc/<id>`, which no URL can write.
//! Images (PNG, JPEG, WebP) and PDF only, at most `PLINTH_SUPPORT_MAX_ATTACHMENT_BYTES`.
//!
//! The owner's uploads count in its storage gauge (photos and attachments, reserved or
//! confirmed: the dashboard's `storageBytes`); staff uploads do not. An attachment
//! uploaded for an internal note is as invisible to the user as the note (RLS). Staff
//! asking for a download URL of another user's file leave an access-log row.
use super::{
    service::{self, Side},
    store::{self, AttachmentRow, NewAttachment},
};
use crate::{
    db::RequestTx,
    error::{AppError, AppResult},
    model::QuotaMetric,
    quotas::service as quotas,
    storage::{PresignedPut, Storage},
};
use anyhow::Context;
use sha2::{Digest, Sha256};
use std::{sync::Arc, time::Duration};
use uuid::Uuid;

/// How long an attachment's upload URL works.
pub const UPLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a download URL works (short: staff and users fetch it when they click).
pub const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(5 * 60);
/// Types accepted.
pub const ALLOWED_TYPES: &[&str] = &["image/png", "image/jpeg", "image/webp", "application/pdf"];
/// Longest file name, in characters.
pub const FILE_NAME_MAX: usize = 200;

/// What a reservation takes.
#[derive(Debug)]
pub struct NewUpload<'a> {
    /// The ticket.
    pub ticket_id: Uuid,
    /// The file's name (shown, and used for downloads).
    pub file_name: &'a str,
    /// One of [`ALLOWED_TYPES`].
    pub content_type: &'a str,
    /// Exact size in bytes.
    pub byte_size: i64,
    /// Hex SHA-256 the bytes must have, when the client gives one.
    pub sha256: Option<&'a str>,
    /// For an internal note (staff only).
    pub internal: bool,
}

/// Ticket attachments and the store they live in.
#[derive(Debug)]
pub struct SupportFiles {
    storage: Arc<Storage>,
    max_bytes: i64,
}

fn not_found() -> AppError {
    AppError::NotFound("attachment not found".into())
}

impl SupportFiles {
    /// Wires the service.
    pub fn new(storage: Arc<Storage>, max_bytes: i64) -> Self {
        SupportFiles { storage, max_bytes }
    }

    /// Reserves an attachment on a ticket the caller may write to and returns a URL to
    /// PUT exactly `byte_size` bytes of `content_type` to (15 minutes).
    ///
    /// Errors: UNAUTHENTICATED; NOT_FOUND (ticket); FORBIDDEN (`internal` by a user);
    /// BAD_USER_INPUT (`input.contentType` not an image or PDF, `input.byteSize` out of
    /// 1..limit, `input.fileName`, `input.sha256` not 64 hex digits, `input.ticketId`
    /// closed); QUOTA_EXCEEDED (`STORAGE_BYTES`, the owner's); INTERNAL.
    pub async fn reserve(&self, tx: &RequestTx, input: NewUpload<'_>) -> AppResult<(AttachmentRow, PresignedPut)> {
        let content_type = input.content_type.trim().to_ascii_lowercase();
        if !ALLOWED_TYPES.contains(&content_type.as_str()) {
            return Err(AppError::bad_input(
                "input.contentType",
                format!("must be one of {} (images and PDF)", ALLOWED_TYPES.join(", ")),
            ));
        }
        if input.byte_size < 1 || input.byte_size > self.max_bytes {
            return Err(AppError::bad_input(
                "input.byteSize",
                format!("must be between 1 and {} bytes", self.max_bytes),
            ));
        }
        let file_name = parse_file_name(input.file_name)?;
        let declared = input.sha256.map(parse_sha256).transpose()?;
        let (ticket, side, me) = service::ticket_for(tx, input.ticket_id).await?;
        if ticket.status == super::domain::TicketStatus::Closed {
            return Err(AppError::bad_input("input.ticketId", "the ticket is closed; reopen it first"));
        }
        let by_staff = matches!(side, Side::Staff);
        if input.internal && !by_staff {
            return Err(AppError::Forbidden("only support staff attach files to internal notes".into()));
        }
        if !by_staff {
            quotas::check_gauge(tx, QuotaMetric::StorageBytes, input.byte_size).await?;
        }
        let id = Uuid::now_v7();
        let key = upload_key(ticket.user_id, id);
        let row = store::insert_attachment(
            tx,
            &NewAttachment {
                id,
                user_id: ticket.user_id,
                ticket_id: ticket.id,
                object_key: &key,
                file_name: &file_name,
                content_type: &content_type,
                byte_size: input.byte_size,
                uploaded_by: me,
                by_staff,
                internal: input.internal,
                declared_sha256: declared,
            },
        )
        .await?;
        if by_staff {
            service::log_access(tx, ticket.user_id, "attachment.upload", Some(ticket.id), None).await?;
        }
        let put = self.storage.presign_put(&key, &content_type, input.byte_size as u64, UPLOAD_URL_TTL).await?;
        Ok((row, put))
    }

    /// Checks an uploaded attachment (present; the declared size; the declared type,
    /// also sniffed from the bytes; the declared SHA-256) and seals it. Only its
    /// uploader confirms it; confirming a ready one returns it.
    ///
    /// Errors: UNAUTHENTICATED; NOT_FOUND; BAD_USER_INPUT (`id`: nothing uploaded, wrong
    /// size, wrong type, bytes that are not the declared type, checksum mismatch: the
    /// upload is deleted and may be sent again); SERVICE_UNAVAILABLE (store); INTERNAL.
    pub async fn confirm(&self, tx: &RequestTx, id: Uuid) -> AppResult<AttachmentRow> {
        let me = service::claims(tx)?.user_id;
        let row = store::get_attachment(tx, id).await?.filter(|a| a.uploaded_by == Some(me)).ok_or_else(not_found)?;
        if row.status == "ready" {
            return Ok(row);
        }
        // As for photos: a confirmation rolled back after the move finds the bytes at
        // the sealed key and checks them there.
        let sealed = sealed_key(row.user_id, row.id);
        let moved = self.storage.head(&row.object_key).await?.is_none() && self.storage.head(&sealed).await?.is_some();
        let source = if moved { sealed.clone() } else { row.object_key.clone() };
        let (bytes, sha) = self.check(&row, &source).await?;
        if !moved {
            self.storage.put(&sealed, &row.content_type, &bytes).await?;
            self.storage.delete(&row.object_key).await?;
        }
        store::seal_attachment(tx, &row, &sealed, &sha).await?.ok_or_else(not_found)
    }

    async fn check(&self, row: &AttachmentRow, key: &str) -> AppResult<(Vec<u8>, Vec<u8>)> {
        let refuse = |message: String| AppError::bad_input("id", message);
        let info = self.storage.head(key).await?.ok_or_else(|| {
            refuse("nothing has been uploaded for this attachment yet; PUT it to its upload URL".into())
        })?;
        if info.size != row.byte_size as u64 {
            self.storage.delete(key).await?;
            return Err(refuse(format!(
                "the upload has {} bytes, {} were declared; upload it again",
                info.size, row.byte_size
            )));
        }
        let declared_type =
            info.content_type.as_deref().map(|t| t.split(';').next().unwrap_or("").trim().to_lowercase());
        if declared_type.as_deref() != Some(row.content_type.as_str()) {
            self.storage.delete(key).await?;
            return Err(refuse("the upload's Content-Type is not the declared one".into()));
        }
        let bytes = self.storage.get(key).await?;
        let expected = row.content_type.clone();
        let (sniffed, bytes) = tokio::task::spawn_blocking(move || (sniff(&bytes) == Some(expected.as_str()), bytes))
            .await
            .context("attachment inspection task")?;
        if !sniffed {
            self.storage.delete(key).await?;
            return Err(refuse(format!("the upload is not a {} file; upload it again", row.content_type)));
        }
        let sha = Sha256::digest(&bytes).to_vec();
        if row.declared_sha256.as_ref().is_some_and(|d| *d != sha) {
            self.storage.delete(key).await?;
            return Err(refuse("the upload's SHA-256 is not the declared one; upload it again".into()));
        }
        Ok((bytes, sha))
    }

    /// A short-lived download URL of a ready attachment (None while pending), served as
    /// its checked type with `Content-Disposition: attachment` under its file name.
    /// Staff fetching another user's file leave an access-log row (`attachment.download`).
    ///
    /// Errors: INTERNAL (database, signing).
    pub async fn url(&self, tx: &RequestTx, row: &AttachmentRow) -> AppResult<Option<String>> {
        if row.status != "ready" {
            return Ok(None);
        }
        let me = service::claims(tx)?;
        if me.user_id != row.user_id {
            service::log_access(tx, row.user_id, "attachment.download", Some(row.ticket_id), None).await?;
        }
        let url = self.storage.presign_download(&row.object_key, DOWNLOAD_URL_TTL, &row.content_type, &row.file_name);
        Ok(Some(url.await?))
    }

    /// The object store.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }
}

/// The attachments of a ticket's messages the caller can see (internal ones for staff
/// only), or of some of them.
///
/// Errors: INTERNAL.
pub async fn of_messages(
    tx: &RequestTx,
    owner: Uuid,
    ticket_id: Uuid,
    message_ids: Option<&[Uuid]>,
) -> AppResult<Vec<AttachmentRow>> {
    store::list_attachments(tx, owner, ticket_id, message_ids).await
}

/// Where a reservation is uploaded: the only key an attachment's URL is signed for.
pub fn upload_key(owner: Uuid, id: Uuid) -> String {
    format!("u/{owner}/t/{id}")
}

/// Where a confirmed attachment lives: written by the server alone.
pub fn sealed_key(owner: Uuid, id: Uuid) -> String {
    format!("u/{owner}/tc/{id}")
}

/// The type the bytes are, by their magic numbers, among the accepted ones.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") {
        return Some("application/pdf");
    }
    match imagesize::image_type(bytes).ok()? {
        imagesize::ImageType::Png => Some("image/png"),
        imagesize::ImageType::Jpeg => Some("image/jpeg"),
        imagesize::ImageType::Webp => Some("image/webp"),
        _ => None,
    }
}

fn parse_file_name(raw: &str) -> AppResult<String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > FILE_NAME_MAX {
        return Err(AppError::bad_input("input.fileName", format!("must be 1 to {FILE_NAME_MAX} characters")));
    }
    if name.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
        return Err(AppError::bad_input("input.fileName", "must not contain control characters or slashes"));
    }
    Ok(name.to_owned())
}

fn parse_sha256(raw: &str) -> AppResult<Vec<u8>> {
    hex::decode(raw.trim())
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or_else(|| AppError::bad_input("input.sha256", "must be 64 hexadecimal digits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_sniffed() {
        assert_eq!(sniff(b"%PDF-1.7\n..."), Some("application/pdf"));
        let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D, b'I', b'H', b'D', b'R'];
        assert_eq!(sniff(&png), Some("image/png"));
        assert_eq!(sniff(b"GIF89a......"), None);
        assert_eq!(sniff(b"<html><script>"), None);
    }

    #[test]
    fn names_and_checksums_are_checked() {
        assert!(parse_file_name("../etc/passwd").is_err());
        assert!(parse_file_name(" ").is_err());
        assert_eq!(parse_file_name(" invoice.pdf ").unwrap(), "invoice.pdf");
        assert!(parse_sha256("abc").is_err());
        assert_eq!(parse_sha256(&"ab".repeat(32)).unwrap().len(), 32);
    }
}
