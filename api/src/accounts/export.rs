//! The GDPR export archive: every row and object a user owns, as one zip file.
//!
//! The format is versioned ([`FORMAT_VERSION`]) because `plinth import` will read it
//! into another account: `README.json` (the manifest: format, version, counts, files),
//! `profile.json`, `email_preferences.json`, `billing.json`, one JSON Lines file per kind
//! of row (`drafts.jsonl`, `photos.jsonl`, ...), and the photos' bytes under `photos/`,
//! referenced from `photos.jsonl` by relative path (`file`). Rows have the shapes the
//! GraphQL API gives them (camelCase fields, enum values as the schema spells them).
//! Secrets never leave: no password hash, no marketplace credentials (only whether some
//! are stored), no token, refresh-token or one-time-token hash, no API token revocation
//! id, no sealed mail secret. See `docs/export.md`.
//!
//! [`collect`] reads the rows in one short read-only statement batch (the caller's
//! transaction, acting as the owner: row-level security decides what is the user's),
//! [`fetch_photos`] reads the objects holding no transaction, and [`write_zip`]
//! compresses on a blocking thread.
use crate::storage::Storage;
use anyhow::Context;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{json, Value};
use std::io::Write;
use uuid::Uuid;

/// The archive's format version (README.json `version`).
pub const FORMAT_VERSION: u32 = 1;
/// The archive's format name (README.json `format`).
pub const FORMAT_NAME: &str = "plinth.export";

/// One JSON Lines file of the archive: its name, and the statement producing one JSON
/// object per row (`$1` is the user id), oldest first.
struct Kind {
    file: &'static str,
    sql: &'static str,
}

/// Every kind of row, in the archive's order.
const KINDS: &[Kind] = &[
    Kind {
        file: "drafts.jsonl",
        sql: "SELECT jsonb_build_object('id', id, 'title', title, 'description', description,
                'priceCents', price_cents, 'currency', currency, 'brand', brand, 'size', size,
                'condition', upper(condition), 'category', category, 'status', upper(status),
                'deletedAt', deleted_at, 'createdAt', created_at, 'updatedAt', updated_at) AS line
              FROM drafts WHERE user_id = $1 ORDER BY created_at, id",
    },
    Kind {
        file: "photos.jsonl",
        sql: "SELECT jsonb_build_object('id', id, 'draftId', draft_id, 'position', position,
                'contentType', content_type, 'byteSize', byte_size, 'width', width, 'height', height,
                'sha256', encode(sha256, 'hex'), 'status', upper(status), 'createdAt', created_at,
                'file', CASE WHEN status = 'ready' THEN 'photos/' || id || '.' || split_part(content_type, '/', 2) END)
                AS line
              FROM photos WHERE user_id = $1 ORDER BY created_at, id",
    },
    Kind {
        file: "tickets.jsonl",
        sql: "SELECT jsonb_build_object('id', id, 'subject', subject, 'category', upper(category),
                'priority', upper(priority), 'status', upper(status), 'jobId', job_id, 'draftId', draft_id,
                'createdAt', created_at, 'updatedAt', updated_at, 'firstResponseAt', first_response_at,
                'resolvedAt', resolved_at, 'closedAt', closed_at) AS line
              FROM tickets WHERE user_id = $1 ORDER BY created_at, id",
    },
    // Internal notes are not the user's to read: the user role's policy hides them,
    // and the filter says so again.
    Kind {
        file: "ticket_messages.jsonl",
        sql: "SELECT jsonb_build_object('id', id, 'ticketId', ticket_id,
                'author', jsonb_build_object('kind', CASE WHEN author_is_staff THEN 'STAFF' ELSE 'USER' END,
                                             'name', author_name),
                'body', body, 'createdAt', created_at) AS line
              FROM ticket_messages WHERE user_id = $1 AND NOT internal ORDER BY created_at, id",
    },
    Kind {
        file: "ticket_attachments.jsonl",
        sql: "SELECT jsonb_build_object('id', id, 'ticketId', ticket_id, 'messageId', message_id,
                'fileName', file_name, 'contentType', content_type, 'byteSize', byte_size,
                'sha256', encode(sha256, 'hex'), 'status', upper(status), 'createdAt', created_at,
                'file', CASE WHEN status = 'ready' THEN 'attachments/' || id || '.' || split_part(content_type, '/', 2) END)
                AS line
              FROM ticket_attachments WHERE user_id = $1 AND NOT internal ORDER BY created_at, id",
    },
    Kind {
        file: "support_access_grants.jsonl",
        sql: "SELECT jsonb_build_object('id', id, 'createdAt', created_at, 'expiresAt', expires_at,
                'revokedAt', revoked_at) AS line
              FROM support_access_grants WHERE user_id = $1 ORDER BY created_at, id",
    },
    Kind {
        file: "support_access_log.jsonl",
        sql: "SELECT jsonb_build_object('id', id, 'staffName', staff_name, 'staffRole', upper(staff_role),
                'action', action, 'ticketId', ticket_id, 'reason', reason, 'createdAt', created_at) AS line
              FROM support_access_log WHERE user_id = $1 ORDER BY created_at, id",
    },
    Kind {
        file: "experiment_assignments.jsonl",
        sql: "SELECT jsonb_build_object('experiment', experiment_key, 'variant', variant, 'assignedAt', assigned_at)
                AS line
              FROM experiment_assignments WHERE user_id = $1 ORDER BY assigned_at, experiment_key",
    },
    Kind {
        file: "experiment_conversions.jsonl",
        sql: "SELECT jsonb_build_object('experiment', experiment_key, 'goal', goal, 'convertedAt', converted_at)
                AS line
              FROM experiment_conversions WHERE user_id = $1 ORDER BY converted_at, experiment_key, goal",
    },
    Kind {
        file: "nps_responses.jsonl",
        sql: "SELECT jsonb_build_object('id', id, 'score', score, 'comment', comment, 'createdAt', created_at) AS line
              FROM nps_responses WHERE user_id = $1 ORDER BY created_at, id",
    },
    Kind {
        file: "ticket_csat.jsonl",
        sql: "SELECT jsonb_build_object('ticketId', ticket_id, 'score', score, 'comment', comment,
                'submittedAt', created_at) AS line
              FROM ticket_csat WHERE user_id = $1 ORDER BY created_at, ticket_id",
    },
    Kind {
        file: "jobs.jsonl",
        sql: "SELECT jsonb_build_object('id', id, 'kind', upper(kind), 'status', upper(status),
                'progress', progress, 'message', message, 'draftId', draft_id, 'input', input, 'result', result,
                'error', error, 'attempts', attempts, 'maxAttempts', max_attempts,
                'cancelRequested', cancel_requested, 'runAfter', run_after, 'createdAt', created_at,
                'updatedAt', updated_at, 'finishedAt', finished_at) AS line
              FROM jobs WHERE user_id = $1 ORDER BY created_at, id",
    },
    Kind {
        file: "job_activity_months.jsonl",
        sql: "SELECT jsonb_build_object('month', month) AS line
              FROM job_activity_months WHERE user_id = $1 ORDER BY month",
    },
    Kind {
        file: "job_logs.jsonl",
        sql: "SELECT jsonb_build_object('id', id, 'jobId', job_id, 'level', level, 'message', message,
                'createdAt', created_at) AS line
              FROM job_logs WHERE user_id = $1 ORDER BY created_at, id",
    },
    Kind {
        file: "marketplace_accounts.jsonl",
        sql: "SELECT jsonb_build_object('id', id, 'platform', upper(platform), 'displayName', display_name,
                'status', upper(status), 'hasCredentials', credentials IS NOT NULL, 'createdAt', created_at,
                'updatedAt', updated_at) AS line
              FROM marketplace_accounts WHERE user_id = $1 ORDER BY created_at, id",
    },
    Kind {
        file: "imports.jsonl",
        sql: "SELECT jsonb_build_object('id', id, 'fileName', file_name, 'byteSize', byte_size,
                'status', upper(status), 'recordsDone', records_done, 'recordsTotal', records_total,
                'files', counts, 'rejected', rejected, 'error', error, 'report', report,
                'createdAt', created_at, 'startedAt', started_at, 'finishedAt', finished_at) AS line
              FROM imports WHERE user_id = $1 ORDER BY created_at, id",
    },
    Kind {
        file: "import_uploads.jsonl",
        sql: "SELECT jsonb_build_object('id', id, 'byteSize', byte_size, 'createdAt', created_at) AS line
              FROM import_uploads WHERE user_id = $1 ORDER BY created_at, id",
    },
    Kind {
        file: "import_records.jsonl",
        sql: "SELECT jsonb_build_object('kind', kind, 'originalId', original_id, 'newId', new_id,
                'createdAt', created_at) AS line
              FROM import_records WHERE user_id = $1 ORDER BY created_at, kind, original_id",
    },
    Kind {
        file: "notifications.jsonl",
        sql: "SELECT jsonb_build_object('id', id, 'kind', kind, 'title', title, 'body', body, 'data', data,
                'readAt', read_at, 'createdAt', created_at) AS line
              FROM notifications WHERE user_id = $1 ORDER BY created_at, id",
    },
    Kind {
        file: "activity.jsonl",
        sql: "SELECT jsonb_build_object('id', id, 'action', action, 'subjectType', subject_type,
                'subjectId', subject_id, 'data', data, 'ip', ip, 'createdAt', created_at) AS line
              FROM activity_log WHERE user_id = $1 ORDER BY created_at, id",
    },
    Kind {
        file: "invoices.jsonl",
        sql: "SELECT jsonb_build_object('id', id, 'number', number, 'status', status, 'currency', currency,
                'subtotalCents', subtotal_cents, 'taxCents', tax_cents, 'totalCents', total_cents,
                'amountPaidCents', amount_paid_cents, 'amountDueCents', amount_due_cents,
                'hostedInvoiceUrl', hosted_invoice_url, 'invoicePdf', invoice_pdf, 'periodStart', period_start,
                'periodEnd', period_end, 'createdAt', stripe_created) AS line
              FROM invoices WHERE user_id = $1 ORDER BY stripe_created, id",
    },
    Kind {
        file: "subscriptions.jsonl",
        sql: "SELECT jsonb_build_object('subscriptionId', subscription_id, 'status', status, 'ended', ended,
                'plan', upper(plan), 'interval', upper(billing_interval),
                'currentPeriodStart', current_period_start, 'currentPeriodEnd', current_period_end,
                'trialEnd', trial_end, 'cancelAtPeriodEnd', cancel_at_period_end, 'cancelAt', cancel_at,
                'createdAt', created_at) AS line
              FROM billing_subscriptions WHERE user_id = $1 ORDER BY created_at, subscription_id",
    },
    Kind {
        file: "tax_ids.jsonl",
        sql: "SELECT jsonb_build_object('type', type, 'value', value, 'country', country,
                'verification', upper(verification_status), 'deleted', deleted) AS line
              FROM billing_tax_ids WHERE user_id = $1 ORDER BY created_at, tax_id",
    },
    Kind {
        file: "api_tokens.jsonl",
        sql: "SELECT jsonb_build_object('id', id, 'name', name, 'scopes', to_jsonb(scopes),
                'createdAt', created_at, 'lastUsedAt', last_used_at, 'expiresAt', expires_at,
                'revokedAt', revoked_at) AS line
              FROM api_tokens WHERE user_id = $1 ORDER BY created_at, id",
    },
    Kind {
        file: "sessions.jsonl",
        sql: "SELECT jsonb_build_object('id', id, 'createdAt', created_at, 'lastUsedAt', last_used_at,
                'expiresAt', expires_at, 'revokedAt', revoked_at, 'revokedReason', revoked_reason,
                'userAgent', user_agent, 'ip', ip) AS line
              FROM sessions WHERE user_id = $1 ORDER BY created_at, id",
    },
    Kind {
        file: "emails.jsonl",
        sql: "SELECT jsonb_build_object('id', id, 'template', template, 'subject', subject, 'to', to_email::text,
                'status', status, 'createdAt', created_at, 'sentAt', sent_at) AS line
              FROM email_outbox
             WHERE user_id = $1
               -- The link of a change of address is queued only when no account has
               -- the address: listing it would tell which addresses have accounts
               -- (the request itself is in activity.jsonl).
               AND NOT (template = 'verify_email' AND data -> 'change' IS NOT NULL)
             ORDER BY created_at, id",
    },
    Kind {
        file: "quota_usage.jsonl",
        sql: "SELECT jsonb_build_object('metric', upper(metric), 'periodStart', period_start, 'used', used,
                'updatedAt', updated_at) AS line
              FROM quota_usage WHERE user_id = $1 ORDER BY period_start, metric",
    },
];

/// The single-object files: name, statement (one row or none).
const SINGLES: &[Kind] = &[
    Kind {
        file: "profile.json",
        sql: "SELECT jsonb_build_object('id', id, 'email', email::text, 'role', upper(role), 'plan', upper(plan),
                'emailVerified', email_verified_at IS NOT NULL, 'createdAt', created_at, 'locale', upper(locale),
                'deletionScheduledAt', deletion_scheduled_at) AS line
              FROM users WHERE id = $1",
    },
    Kind {
        file: "email_preferences.json",
        sql: "SELECT jsonb_build_object('onboarding', email_onboarding, 'productNews', email_product_news) AS line
              FROM users WHERE id = $1",
    },
    Kind {
        file: "billing.json",
        sql: "SELECT jsonb_build_object('plan', upper(plan), 'state', upper(account_state),
                'stripeCustomerId', stripe_customer_id, 'subscriptionStatus', subscription_status,
                'interval', upper(billing_interval), 'currentPeriodEnd', current_period_end,
                'trialEnd', trial_end, 'graceUntil', grace_until, 'cancelAtPeriodEnd', cancel_at_period_end,
                'cancelsAt', cancels_at, 'trialUsed', trial_used, 'addressCountry', address_country) AS line
              FROM billing_accounts WHERE user_id = $1",
    },
];

/// A photo or a ticket attachment whose bytes go into the archive.
#[derive(Clone, Debug)]
pub struct PhotoObject {
    /// Its path in the archive (`photos/<id>.<ext>`, `attachments/<id>.<ext>`).
    pub file: String,
    /// Its object key.
    pub key: String,
}

/// The rows of one user, read.
#[derive(Debug, Default)]
pub struct Collected {
    /// `(file, content)`: the single-object files and the JSON Lines files.
    pub files: Vec<(String, String)>,
    /// Rows per file (`profile.json`: 1).
    pub counts: serde_json::Map<String, Value>,
    /// The confirmed photos' and ticket attachments' objects.
    pub photos: Vec<PhotoObject>,
}

/// Reads every row `user_id` owns through `db` (a transaction acting as that user).
///
/// Errors: the database's.
pub async fn collect(db: &impl ConnectionTrait, user_id: Uuid) -> anyhow::Result<Collected> {
    let mut out = Collected::default();
    for kind in SINGLES {
        let rows = lines(db, kind.sql, user_id).await.with_context(|| format!("reading {}", kind.file))?;
        let value: Value = match rows.first() {
            Some(line) => serde_json::from_str(line)?,
            None => Value::Null,
        };
        out.counts.insert(kind.file.into(), json!(rows.len()));
        out.files.push((kind.file.into(), serde_json::to_string_pretty(&value)?));
    }
    for kind in KINDS {
        let rows = lines(db, kind.sql, user_id).await.with_context(|| format!("reading {}", kind.file))?;
        if kind.file == "photos.jsonl" {
            let keys = db
                .query_all(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT object_key, 'photos/' || id || '.' || split_part(content_type, '/', 2) AS file
                       FROM photos WHERE user_id = $1 AND status = 'ready' ORDER BY created_at, id",
                    [user_id.into()],
                ))
                .await?;
            for r in keys {
                out.photos.push(PhotoObject { file: r.try_get("", "file")?, key: r.try_get("", "object_key")? });
            }
        }
        if kind.file == "ticket_attachments.jsonl" {
            let keys = db
                .query_all(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT object_key, 'attachments/' || id || '.' || split_part(content_type, '/', 2) AS file
                       FROM ticket_attachments WHERE user_id = $1 AND status = 'ready' AND NOT internal
                      ORDER BY created_at, id",
                    [user_id.into()],
                ))
                .await?;
            for r in keys {
                out.photos.push(PhotoObject { file: r.try_get("", "file")?, key: r.try_get("", "object_key")? });
            }
        }
        out.counts.insert(kind.file.into(), json!(rows.len()));
        let mut body = String::with_capacity(rows.iter().map(|l| l.len() + 1).sum());
        for line in rows {
            body.push_str(&line);
            body.push('\n');
        }
        out.files.push((kind.file.into(), body));
    }
    Ok(out)
}

async fn lines(db: &impl ConnectionTrait, sql: &str, user_id: Uuid) -> anyhow::Result<Vec<String>> {
    let rows = db.query_all(Statement::from_sql_and_values(DbBackend::Postgres, sql, [user_id.into()])).await?;
    rows.iter().map(|r| Ok(r.try_get::<Value>("", "line")?.to_string())).collect()
}

/// The photos' bytes, read from the store holding no transaction: `(file, bytes)`, and
/// the files whose object is missing (listed in the manifest, not fatal).
///
/// Errors: the store's (unavailable: the export is tried again later).
pub async fn fetch_photos(
    storage: &Storage,
    photos: &[PhotoObject],
) -> anyhow::Result<(Vec<(String, Vec<u8>)>, Vec<String>)> {
    let mut found = Vec::with_capacity(photos.len());
    let mut missing = Vec::new();
    for p in photos {
        match storage.head(&p.key).await? {
            Some(_) => found.push((p.file.clone(), storage.get(&p.key).await?)),
            None => missing.push(p.file.clone()),
        }
    }
    Ok((found, missing))
}

/// The manifest (`README.json`).
pub fn manifest(
    user_id: Uuid,
    export_id: Uuid,
    created_at: chrono::DateTime<chrono::Utc>,
    collected: &Collected,
    photo_files: usize,
    attachment_files: usize,
    missing: &[String],
) -> Value {
    json!({
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "userId": user_id,
        "exportId": export_id,
        "createdAt": created_at,
        "counts": collected.counts,
        "photoFiles": photo_files,
        "attachmentFiles": attachment_files,
        "missingPhotoFiles": missing,
        "files": collected.files.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
    })
}

/// Writes the archive: the manifest, the row files (deflated) and the photos (stored:
/// images are compressed already). CPU-bound: run it on a blocking thread.
///
/// Errors: the zip writer's (out of memory, a bug).
pub fn write_zip(
    manifest: &Value,
    files: &[(String, String)],
    photos: &[(String, Vec<u8>)],
) -> anyhow::Result<Vec<u8>> {
    use zip::{write::SimpleFileOptions, CompressionMethod, ZipWriter};
    let mut zip = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let deflated = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    zip.start_file("README.json", deflated)?;
    zip.write_all(serde_json::to_string_pretty(manifest)?.as_bytes())?;
    for (name, body) in files {
        zip.start_file(name.as_str(), deflated)?;
        zip.write_all(body.as_bytes())?;
    }
    for (name, bytes) in photos {
        zip.start_file(name.as_str(), stored)?;
        zip.write_all(bytes)?;
    }
    Ok(zip.finish()?.into_inner())
}

/// Builds the whole archive of `user_id` for export `export_id`: rows through `db` (a
/// transaction acting as the user, finished by the caller right after), objects from
/// `storage`, compression on a blocking thread. Returns the zip's bytes and the counts.
///
/// Errors: the database's, the store's, the zip writer's.
pub async fn build_archive(
    collected: Collected,
    storage: &Storage,
    user_id: Uuid,
    export_id: Uuid,
) -> anyhow::Result<(Vec<u8>, Value)> {
    let (photos, missing) = fetch_photos(storage, &collected.photos).await?;
    let attachments = photos.iter().filter(|(f, _)| f.starts_with("attachments/")).count();
    let manifest =
        manifest(user_id, export_id, chrono::Utc::now(), &collected, photos.len() - attachments, attachments, &missing);
    let counts = Value::Object(collected.counts.clone());
    let files = collected.files;
    let bytes = tokio::task::spawn_blocking(move || write_zip(&manifest, &files, &photos))
        .await
        .context("the archive's compression task")??;
    Ok((bytes, counts))
}

/// Writes the export of `user_id` as a folder at `out` (created) instead of a zip: the
/// same manifest, row files and objects, each object fetched and written in turn so the
/// photos are never all in memory. This is the folder `plinth import` reads. Returns the
/// manifest.
///
/// Errors: the store's, the file system's.
pub async fn write_folder(
    collected: Collected,
    storage: &Storage,
    user_id: Uuid,
    export_id: Uuid,
    out: &std::path::Path,
) -> anyhow::Result<Value> {
    let write = |path: std::path::PathBuf, bytes: Vec<u8>| async move {
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::write(&path, bytes).await.with_context(|| format!("writing {}", path.display()))
    };
    tokio::fs::create_dir_all(out).await.with_context(|| format!("creating {}", out.display()))?;
    let mut missing = Vec::new();
    let (mut photo_files, mut attachment_files) = (0, 0);
    for p in &collected.photos {
        match storage.head(&p.key).await? {
            Some(_) => {
                write(out.join(&p.file), storage.get(&p.key).await?).await?;
                if p.file.starts_with("attachments/") {
                    attachment_files += 1;
                } else {
                    photo_files += 1;
                }
            }
            None => missing.push(p.file.clone()),
        }
    }
    for (name, body) in &collected.files {
        write(out.join(name), body.clone().into_bytes()).await?;
    }
    let manifest =
        manifest(user_id, export_id, chrono::Utc::now(), &collected, photo_files, attachment_files, &missing);
    write(out.join("README.json"), serde_json::to_string_pretty(&manifest)?.into_bytes()).await?;
    Ok(manifest)
}
