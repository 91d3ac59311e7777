//! The import folder (docs/import.md): reading and checking every record before anything
//! is written. Each JSON Lines file is checked line by line against its JSON Schema
//! (docs/import/*.schema.json, compiled in), then for what a schema cannot say: control
//! characters, times in the future, duplicate ids, references to records that are not
//! there (or were rejected), and each photo's file (inside `photos/`, present, a real
//! image of its type, its size and checksum). A rejected record is reported with its file,
//! line and reason; what depends on it is rejected too; the rest is imported.
use crate::photos::service::inspect;
use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::{
    collections::{HashMap, HashSet},
    io::BufRead,
    path::{Component, Path, PathBuf},
};

/// How far in the future a time may be (clock skew between machines).
pub const FUTURE_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// A kind of record, in the order they are imported (each may refer to those before).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `marketplace_accounts.jsonl`.
    MarketplaceAccount,
    /// `drafts.jsonl`.
    Draft,
    /// `photos.jsonl` and `photos/`.
    Photo,
    /// `jobs.jsonl`.
    Job,
    /// `job_logs.jsonl`.
    JobLog,
}

impl Kind {
    /// Every kind, in import order.
    pub const ALL: [Kind; 5] = [Kind::MarketplaceAccount, Kind::Draft, Kind::Photo, Kind::Job, Kind::JobLog];

    /// Its file in the folder.
    pub fn file(self) -> &'static str {
        match self {
            Kind::MarketplaceAccount => "marketplace_accounts.jsonl",
            Kind::Draft => "drafts.jsonl",
            Kind::Photo => "photos.jsonl",
            Kind::Job => "jobs.jsonl",
            Kind::JobLog => "job_logs.jsonl",
        }
    }

    /// Its name in the mapping table (`import_records.kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::MarketplaceAccount => "marketplace_account",
            Kind::Draft => "draft",
            Kind::Photo => "photo",
            Kind::Job => "job",
            Kind::JobLog => "job_log",
        }
    }

    /// The kind a mapping row names.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Its JSON Schema, as published beside docs/import.md.
    pub fn schema(self) -> &'static str {
        match self {
            Kind::MarketplaceAccount => include_str!("../../../docs/import/marketplace_accounts.schema.json"),
            Kind::Draft => include_str!("../../../docs/import/drafts.schema.json"),
            Kind::Photo => include_str!("../../../docs/import/photos.schema.json"),
            Kind::Job => include_str!("../../../docs/import/jobs.schema.json"),
            Kind::JobLog => include_str!("../../../docs/import/job_logs.schema.json"),
        }
    }
}

/// A record left out, and why.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    /// Its file.
    pub file: String,
    /// Its line (1-based).
    pub line: usize,
    /// Its id, when it could be read.
    pub id: Option<String>,
    /// Why.
    pub reason: String,
}

/// A record that passed every check.
#[derive(Clone, Debug)]
pub struct Record<T> {
    /// Its line.
    pub line: usize,
    /// Its original id.
    pub id: String,
    /// Its fields.
    pub value: T,
}

/// A line of `drafts.jsonl`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct DraftRecord {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub price_cents: Option<i64>,
    pub currency: Option<String>,
    pub brand: Option<String>,
    pub size: Option<String>,
    pub condition: Option<String>,
    pub category: Option<String>,
    pub status: String,
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A line of `photos.jsonl`, with what checking its file found.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct PhotoRecord {
    pub id: String,
    pub draft_id: Option<String>,
    pub position: Option<i32>,
    pub content_type: String,
    pub byte_size: Option<i64>,
    pub sha256: Option<String>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub file: Option<String>,
    /// The file's size, as read.
    #[serde(skip)]
    pub bytes: i64,
    /// The file's SHA-256, as read.
    #[serde(skip)]
    pub checksum: Vec<u8>,
}

/// A line of `jobs.jsonl`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct JobRecord {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub progress: Option<f64>,
    pub message: Option<String>,
    pub draft_id: Option<String>,
    pub input: Option<Value>,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub attempts: Option<i32>,
    pub max_attempts: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A line of `job_logs.jsonl`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct JobLogRecord {
    pub id: String,
    pub job_id: String,
    pub level: Option<String>,
    pub message: String,
    pub created_at: DateTime<Utc>,
}

/// A line of `marketplace_accounts.jsonl`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct AccountRecord {
    pub id: String,
    pub platform: String,
    pub display_name: String,
    pub status: String,
    pub credentials: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// What one file held.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileCounts {
    /// Records (non-blank lines).
    pub records: usize,
    /// Records that passed every check.
    pub valid: usize,
    /// Records rejected.
    pub rejected: usize,
    /// Records with nothing to import (a photo whose upload was never confirmed).
    pub skipped: usize,
}

/// The folder, read and checked.
#[derive(Debug, Default)]
pub struct Folder {
    /// Where it is.
    pub root: PathBuf,
    /// Valid marketplace accounts.
    pub accounts: Vec<Record<AccountRecord>>,
    /// Valid drafts.
    pub drafts: Vec<Record<DraftRecord>>,
    /// Valid confirmed photos.
    pub photos: Vec<Record<PhotoRecord>>,
    /// Valid jobs.
    pub jobs: Vec<Record<JobRecord>>,
    /// Valid job log lines.
    pub logs: Vec<Record<JobLogRecord>>,
    /// Every rejection, in file then line order.
    pub rejected: Vec<Rejection>,
    /// Counts per kind.
    pub counts: HashMap<Kind, FileCounts>,
}

/// Reads and checks the folder at `root`. `imported` holds what earlier imports brought
/// (kind, original id): a reference to one of them is valid. `now` bounds every time.
///
/// Errors: the folder is not readable or holds none of the files; a schema does not
/// compile (a bug).
pub fn read(
    root: &Path,
    max_photo_bytes: u64,
    now: DateTime<Utc>,
    imported: &HashSet<(Kind, String)>,
) -> anyhow::Result<Folder> {
    anyhow::ensure!(root.is_dir(), "{} is not a folder", root.display());
    anyhow::ensure!(
        Kind::ALL.iter().any(|k| root.join(k.file()).is_file()),
        "{} holds none of {}",
        root.display(),
        Kind::ALL.map(|k| k.file()).join(", ")
    );
    let mut folder = Folder { root: root.to_owned(), ..Default::default() };
    let latest = now + FUTURE_SKEW;
    let accounts: Vec<Record<AccountRecord>> = read_kind(&mut folder, Kind::MarketplaceAccount, latest)?;
    folder.accounts = accounts;
    folder.drafts = read_kind(&mut folder, Kind::Draft, latest)?;
    let photos: Vec<Record<PhotoRecord>> = read_kind(&mut folder, Kind::Photo, latest)?;
    let jobs: Vec<Record<JobRecord>> = read_kind(&mut folder, Kind::Job, latest)?;
    let logs: Vec<Record<JobLogRecord>> = read_kind(&mut folder, Kind::JobLog, latest)?;

    // References: to a valid record of the folder, or to one an earlier run imported.
    let drafts: HashSet<&str> = folder.drafts.iter().map(|r| r.id.as_str()).collect();
    let draft_ok = |id: &str| drafts.contains(id) || imported.contains(&(Kind::Draft, id.to_owned()));
    let mut out_photos = Vec::new();
    let mut rejected = Vec::new();
    let mut skipped = 0;
    for mut p in photos {
        if p.value.status == "PENDING" {
            // An upload never confirmed: no bytes exist to bring.
            skipped += 1;
            continue;
        }
        let reason = match p.value.draft_id.as_deref() {
            Some(d) if !draft_ok(d) => Some(missing_reference("draftId", d, Kind::Draft)),
            _ => check_photo_file(root, &mut p.value, max_photo_bytes).err(),
        };
        match reason {
            Some(reason) => {
                rejected.push(Rejection { file: Kind::Photo.file().into(), line: p.line, id: Some(p.id), reason })
            }
            None => out_photos.push(p),
        }
    }
    folder.photos = out_photos;
    let mut out_jobs = Vec::new();
    for j in jobs {
        match j.value.draft_id.as_deref() {
            Some(d) if !draft_ok(d) => rejected.push(Rejection {
                file: Kind::Job.file().into(),
                line: j.line,
                id: Some(j.id),
                reason: missing_reference("draftId", d, Kind::Draft),
            }),
            _ => out_jobs.push(j),
        }
    }
    let jobs: HashSet<String> = out_jobs.iter().map(|r| r.id.clone()).collect();
    folder.jobs = out_jobs;
    let mut out_logs = Vec::new();
    for l in logs {
        if jobs.contains(&l.value.job_id) || imported.contains(&(Kind::Job, l.value.job_id.clone())) {
            out_logs.push(l);
        } else {
            rejected.push(Rejection {
                file: Kind::JobLog.file().into(),
                line: l.line,
                id: Some(l.id),
                reason: missing_reference("jobId", &l.value.job_id, Kind::Job),
            });
        }
    }
    folder.logs = out_logs;
    for r in &rejected {
        let kind = Kind::ALL.into_iter().find(|k| k.file() == r.file).expect("a known file");
        let c = folder.counts.entry(kind).or_default();
        c.valid -= 1;
        c.rejected += 1;
    }
    let c = folder.counts.entry(Kind::Photo).or_default();
    c.valid -= skipped;
    c.skipped = skipped;
    folder.rejected.extend(rejected);
    let order = |f: &str| Kind::ALL.iter().position(|k| k.file() == f).unwrap_or(usize::MAX);
    folder.rejected.sort_by_key(|r| (order(&r.file), r.line));
    Ok(folder)
}

fn missing_reference(field: &str, id: &str, kind: Kind) -> String {
    format!("{field} {id:?} is not a valid record of {} (missing or rejected) nor imported before", kind.file())
}

/// Reads one JSON Lines file: every line parsed, checked against the schema and the
/// rules, and deserialized; duplicates of an id rejected after its first valid line.
fn read_kind<T: DeserializeOwned + HasId>(
    folder: &mut Folder,
    kind: Kind,
    latest: DateTime<Utc>,
) -> anyhow::Result<Vec<Record<T>>> {
    let path = folder.root.join(kind.file());
    let counts = folder.counts.entry(kind).or_default();
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let schema: Value = serde_json::from_str(kind.schema())?;
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| anyhow::anyhow!("the schema of {}: {e}", kind.file()))?;
    let file = std::fs::File::open(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut out: Vec<Record<T>> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut reader = std::io::BufReader::new(file);
    let mut buf = Vec::new();
    let mut line = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))? == 0 {
            break;
        }
        line += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        counts.records += 1;
        let mut reject = |id: Option<String>, reason: String| {
            folder.rejected.push(Rejection { file: kind.file().into(), line, id, reason });
        };
        let value: Value = match serde_json::from_slice(&buf) {
            Ok(v) => v,
            Err(e) => {
                reject(None, format!("malformed JSON: {e}"));
                continue;
            }
        };
        let id = value.get("id").and_then(Value::as_str).map(str::to_owned);
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .take(3)
            .map(|e| {
                let at = e.instance_path().to_string();
                format!("{}: {e}", if at.is_empty() { "record" } else { at.as_str() })
            })
            .collect();
        if !errors.is_empty() {
            reject(id, errors.join("; "));
            continue;
        }
        if let Some(reason) = control_characters(&value, "") {
            reject(id, reason);
            continue;
        }
        let record: T = match serde_json::from_value(value.clone()) {
            Ok(r) => r,
            Err(e) => {
                reject(id, format!("unreadable: {e}"));
                continue;
            }
        };
        if let Some((field, at)) = record.times().into_iter().find(|(_, t)| t.is_some_and(|t| t > latest)) {
            reject(id, format!("{field} {} is in the future", at.map(|t| t.to_rfc3339()).unwrap_or_default()));
            continue;
        }
        let id = record.id().to_owned();
        if let Some(first) = seen.get(&id) {
            reject(Some(id.clone()), format!("duplicate id {id:?}: already on line {first}"));
            continue;
        }
        seen.insert(id.clone(), line);
        out.push(Record { line, id, value: record });
    }
    counts.valid = out.len();
    counts.rejected = counts.records - counts.valid;
    Ok(out)
}

/// The first string of `value` holding a control character (other than a line break or
/// a tab), named by its JSON pointer. Credentials are opaque and left alone.
fn control_characters(value: &Value, at: &str) -> Option<String> {
    match value {
        Value::String(s) => s.chars().find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')).map(|c| {
            format!("{}: holds the control character U+{:04X}", if at.is_empty() { "record" } else { at }, c as u32)
        }),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| control_characters(v, &format!("{at}/{i}"))),
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| !(at.is_empty() && k.as_str() == "credentials"))
            .find_map(|(k, v)| control_characters(v, &format!("{at}/{k}"))),
        _ => None,
    }
}

/// Checks a confirmed photo's file: a relative path inside `photos/`, a regular file,
/// at most `max` bytes, a readable image of its content type, and the size and checksum
/// the record declares. Records what it read (size, checksum).
fn check_photo_file(root: &Path, photo: &mut PhotoRecord, max: u64) -> Result<(), String> {
    let Some(file) = photo.file.as_deref() else {
        return Err("a READY photo needs its file".into());
    };
    let rel = Path::new(file);
    let inside = rel.components().all(|c| matches!(c, Component::Normal(_)))
        && rel.components().next() == Some(Component::Normal(std::ffi::OsStr::new("photos")));
    if !inside {
        return Err(format!("file {file:?} is not a path inside photos/"));
    }
    let path = root.join(rel);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(_) => return Err(format!("file {file} is missing")),
    };
    if !meta.is_file() {
        return Err(format!("file {file} is not a regular file"));
    }
    if meta.len() == 0 || meta.len() > max {
        return Err(format!("file {file} has {} bytes: a photo has 1 to {max}", meta.len()));
    }
    let bytes = std::fs::read(&path).map_err(|e| format!("file {file} cannot be read: {e}"))?;
    let Some((_, _, sha)) = inspect(&bytes, &photo.content_type) else {
        return Err(format!("file {file} is not a readable {} image", photo.content_type));
    };
    if photo.byte_size.is_some_and(|n| n != bytes.len() as i64) {
        return Err(format!("file {file} has {} bytes, byteSize says {}", bytes.len(), photo.byte_size.unwrap_or(0)));
    }
    if photo.sha256.as_deref().is_some_and(|s| s != hex::encode(&sha)) {
        return Err(format!("file {file}: its SHA-256 is not the record's sha256"));
    }
    debug_assert_eq!(sha, Sha256::digest(&bytes).to_vec());
    photo.bytes = bytes.len() as i64;
    photo.checksum = sha;
    Ok(())
}

/// What every record has: an id and some times.
pub trait HasId {
    /// Its original id.
    fn id(&self) -> &str;
    /// Its times, named as in the file.
    fn times(&self) -> Vec<(&'static str, Option<DateTime<Utc>>)>;
}

impl HasId for DraftRecord {
    fn id(&self) -> &str {
        &self.id
    }
    fn times(&self) -> Vec<(&'static str, Option<DateTime<Utc>>)> {
        vec![("createdAt", Some(self.created_at)), ("updatedAt", self.updated_at), ("deletedAt", self.deleted_at)]
    }
}

impl HasId for PhotoRecord {
    fn id(&self) -> &str {
        &self.id
    }
    fn times(&self) -> Vec<(&'static str, Option<DateTime<Utc>>)> {
        vec![("createdAt", Some(self.created_at))]
    }
}

impl HasId for JobRecord {
    fn id(&self) -> &str {
        &self.id
    }
    fn times(&self) -> Vec<(&'static str, Option<DateTime<Utc>>)> {
        vec![("createdAt", Some(self.created_at)), ("updatedAt", self.updated_at), ("finishedAt", self.finished_at)]
    }
}

impl HasId for JobLogRecord {
    fn id(&self) -> &str {
        &self.id
    }
    fn times(&self) -> Vec<(&'static str, Option<DateTime<Utc>>)> {
        vec![("createdAt", Some(self.created_at))]
    }
}

impl HasId for AccountRecord {
    fn id(&self) -> &str {
        &self.id
    }
    fn times(&self) -> Vec<(&'static str, Option<DateTime<Utc>>)> {
        vec![("createdAt", Some(self.created_at)), ("updatedAt", self.updated_at)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles_and_refuses_an_unknown_status() {
        for kind in Kind::ALL {
            let schema: Value = serde_json::from_str(kind.schema()).unwrap();
            let v = jsonschema::options().should_validate_formats(true).build(&schema).unwrap();
            assert!(!v.is_valid(&serde_json::json!({ "id": "x", "status": "SOLD" })), "{}", kind.file());
        }
    }

    #[test]
    fn control_characters_are_found_but_not_in_credentials_or_line_breaks() {
        let ok = serde_json::json!({ "title": "a\tb\nc", "credentials": { "k": "\u{7}" } });
        assert_eq!(control_characters(&ok, ""), None);
        let bad = serde_json::json!({ "title": "a\u{1b}[31m" });
        assert_eq!(control_characters(&bad, "").unwrap(), "/title: holds the control character U+001B");
    }
}
