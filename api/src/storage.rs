//! Object storage for photos: S3 / R2 through rust-s3, or, with nothing configured,
//! files under the data dir served by Plinth itself through signed URLs. Clients never
//! send photo bytes through the API: they PUT to a presigned URL, then confirm.
use anyhow::Context;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use s3::{creds::Credentials, Bucket, Region};
use sha2::Sha256;
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

/// What the store knows of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Bytes stored.
    pub size: u64,
    /// The Content-Type it was stored with.
    pub content_type: Option<String>,
}

/// A URL the client uploads one object to, and the headers it must send.
#[derive(Clone, Debug)]
pub struct PresignedPut {
    /// Where to PUT.
    pub url: String,
    /// Headers the signature covers; the upload must carry exactly these.
    pub headers: Vec<(String, String)>,
    /// When the URL stops working.
    pub expires_at: DateTime<Utc>,
}

/// S3 settings, all from `PLINTH_S3_*`.
#[derive(Clone, Debug)]
pub struct S3Settings {
    /// Endpoint URL (R2, MinIO, a local S3 server...).
    pub endpoint: String,
    /// Bucket name.
    pub bucket: String,
    /// Region name.
    pub region: String,
    /// Access key id.
    pub access_key: String,
    /// Secret key (never logged).
    pub secret_key: secrecy::SecretString,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most non-AWS servers.
    pub path_style: bool,
    /// The longest one call may take (`PLINTH_S3_TIMEOUT_MS`).
    pub timeout: Duration,
}

/// The object store.
pub enum Storage {
    /// An S3-compatible service; every call is bounded by `timeout`.
    S3 {
        /// The bucket.
        bucket: Box<Bucket>,
        /// The longest a call may take (`PLINTH_S3_TIMEOUT_MS`).
        timeout: Duration,
    },
    /// Files under the data dir, served by Plinth's `/storage` routes.
    Local(LocalStore),
}

/// A failed call to the object store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The store did not answer within its timeout, or could not be reached: nothing is
    /// known to have happened; retry later (SERVICE_UNAVAILABLE).
    #[error("the object store is unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// The store answered with a failure, or the local file system failed (INTERNAL).
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

impl From<StorageError> for crate::error::AppError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Unavailable(cause) => {
                tracing::warn!(error = format!("{cause:#}"), "the object store is unavailable");
                crate::error::AppError::ServiceUnavailable(
                    "the photo store is unavailable; nothing was done, retry shortly".into(),
                )
            }
            StorageError::Failed(cause) => crate::error::AppError::Internal(cause),
        }
    }
}

/// Runs an S3 call within `timeout`: a timeout or a transport error is `Unavailable`.
async fn bounded<T>(
    timeout: Duration,
    what: &'static str,
    call: impl std::future::Future<Output = Result<T, s3::error::S3Error>>,
) -> Result<T, StorageError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(StorageError::Unavailable(anyhow::Error::new(e).context(what))),
        Err(_) => {
            Err(StorageError::Unavailable(anyhow::anyhow!("{what}: no answer within {} ms", timeout.as_millis())))
        }
    }
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Storage::S3 { bucket, .. } => write!(f, "Storage::S3({})", bucket.name),
            Storage::Local(l) => write!(f, "Storage::Local({})", l.root.display()),
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

impl Storage {
    /// An S3 store.
    ///
    /// Errors: bad S3 settings (endpoint, credentials).
    pub fn s3(settings: &S3Settings) -> anyhow::Result<Self> {
        use secrecy::ExposeSecret;
        let region = Region::Custom { region: settings.region.clone(), endpoint: settings.endpoint.clone() };
        let creds =
            Credentials::new(Some(&settings.access_key), Some(settings.secret_key.expose_secret()), None, None, None)
                .context("S3 credentials")?;
        let mut bucket = Bucket::new(&settings.bucket, region, creds).context("S3 bucket")?;
        if settings.path_style {
            bucket = bucket.with_path_style();
        }
        bucket.set_request_timeout(Some(settings.timeout));
        Ok(Storage::S3 { bucket, timeout: settings.timeout })
    }

    /// A local store under `root`, whose URLs start with `base_url`.
    pub fn local(root: PathBuf, signing_key: Vec<u8>, base_url: String) -> Self {
        Storage::Local(LocalStore { root, signing_key, base_url })
    }

    /// A URL to upload `key` with exactly this type and size, valid for `ttl`.
    ///
    /// Errors: INTERNAL (signing failed).
    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        ttl: Duration,
    ) -> anyhow::Result<PresignedPut> {
        let expires_at = Utc::now() + ttl;
        let headers = vec![("Content-Type".to_owned(), content_type.to_owned())];
        let url = match self {
            Storage::S3 { bucket, .. } => {
                let mut signed = http02::HeaderMap::new();
                signed.insert(http02::header::CONTENT_TYPE, content_type.parse().context("content type header")?);
                signed.insert(http02::header::CONTENT_LENGTH, size.into());
                bucket.presign_put(key, ttl.as_secs() as u32, Some(signed), None).await.context("presigning a PUT")?
            }
            Storage::Local(local) => local.url("put", key, expires_at.timestamp(), content_type, size),
        };
        let mut headers = headers;
        headers.push(("Content-Length".to_owned(), size.to_string()));
        Ok(PresignedPut { url, headers, expires_at })
    }

    /// A URL to download `key`, valid for `ttl`, whose answer declares `content_type`
    /// (the checked one, whatever the object's metadata says) and
    /// `Content-Disposition: inline; filename="<name>"`: S3 through its
    /// `response-content-type` / `response-content-disposition` parameters (signed into
    /// the URL), the local store by its GET route, which also sends
    /// `X-Content-Type-Options: nosniff`.
    ///
    /// Errors: INTERNAL (signing failed).
    pub async fn presign_get(
        &self,
        key: &str,
        ttl: Duration,
        content_type: &str,
        name: &str,
    ) -> anyhow::Result<String> {
        match self {
            Storage::S3 { bucket, .. } => {
                let queries = std::collections::HashMap::from([
                    ("response-content-type".to_owned(), content_type.to_owned()),
                    ("response-content-disposition".to_owned(), inline_disposition(name)),
                ]);
                bucket.presign_get(key, ttl.as_secs() as u32, Some(queries)).await.context("presigning a GET")
            }
            Storage::Local(local) => Ok(local.url("get", key, (Utc::now() + ttl).timestamp(), content_type, 0)),
        }
    }

    /// A URL to download `key` as a file, valid for `ttl`: like [`Storage::presign_get`],
    /// with `Content-Disposition: attachment; filename="<name>"` (the name reduced to
    /// characters that need no quoting), so a browser saves it rather than rendering it.
    ///
    /// Errors: INTERNAL (signing failed).
    pub async fn presign_download(
        &self,
        key: &str,
        ttl: Duration,
        content_type: &str,
        name: &str,
    ) -> anyhow::Result<String> {
        let name = safe_file_name(name);
        match self {
            Storage::S3 { bucket, .. } => {
                let queries = std::collections::HashMap::from([
                    ("response-content-type".to_owned(), content_type.to_owned()),
                    ("response-content-disposition".to_owned(), attachment_disposition(&name)),
                ]);
                bucket.presign_get(key, ttl.as_secs() as u32, Some(queries)).await.context("presigning a GET")
            }
            Storage::Local(local) => {
                Ok(local.url_named("get", key, (Utc::now() + ttl).timestamp(), content_type, 0, &name))
            }
        }
    }

    /// Stores `bytes` under `key` with `content_type` (a server-side write: the
    /// confirmed copy of an upload).
    ///
    /// Errors: `Unavailable` (no answer in time, unreachable), `Failed` (an unexpected
    /// status, the local file system).
    pub async fn put(&self, key: &str, content_type: &str, bytes: &[u8]) -> Result<(), StorageError> {
        match self {
            Storage::S3 { bucket, timeout } => {
                let data =
                    bounded(*timeout, "PUT object", bucket.put_object_with_content_type(key, bytes, content_type))
                        .await?;
                if data.status_code() != 200 {
                    return Err(anyhow::anyhow!("PUT object answered {}", data.status_code()).into());
                }
                Ok(())
            }
            Storage::Local(local) => Ok(local.put(key, content_type, bytes).await?),
        }
    }

    /// Size and type of `key`, or None when absent.
    ///
    /// Errors: `Unavailable` (no answer in time, unreachable), `Failed` (an unexpected
    /// status, the local file system).
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        match self {
            Storage::S3 { bucket, timeout } => {
                let (head, status) = bounded(*timeout, "HEAD object", bucket.head_object(key)).await?;
                match status {
                    200 => Ok(Some(ObjectInfo {
                        size: head.content_length.unwrap_or_default().max(0) as u64,
                        content_type: head.content_type,
                    })),
                    404 => Ok(None),
                    other => Err(anyhow::anyhow!("HEAD object answered {other}").into()),
                }
            }
            Storage::Local(local) => Ok(local.head(key).await?),
        }
    }

    /// The bytes of `key`.
    ///
    /// Errors: `Unavailable` (no answer in time, unreachable), `Failed` (no object, the
    /// local file system).
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        match self {
            Storage::S3 { bucket, timeout } => {
                let data = bounded(*timeout, "GET object", bucket.get_object(key)).await?;
                if data.status_code() != 200 {
                    return Err(anyhow::anyhow!("GET object answered {}", data.status_code()).into());
                }
                Ok(data.to_vec())
            }
            Storage::Local(local) => Ok(tokio::fs::read(local.path(key)?).await.context("reading an object")?),
        }
    }

    /// Deletes `key`; deleting an absent key succeeds.
    ///
    /// Errors: `Unavailable` (no answer in time, unreachable), `Failed` (an unexpected
    /// status, the local file system).
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self {
            Storage::S3 { bucket, timeout } => {
                let data = bounded(*timeout, "DELETE object", bucket.delete_object(key)).await?;
                if !matches!(data.status_code(), 200 | 204 | 404) {
                    return Err(anyhow::anyhow!("DELETE object answered {}", data.status_code()).into());
                }
                Ok(())
            }
            Storage::Local(local) => Ok(local.delete(key).await?),
        }
    }

    /// Deletes every object whose key starts with the folder `prefix` (a valid key; the
    /// objects under `prefix/`): an erased account's whole footprint, whatever kind of
    /// object put it there, including uploads that landed after its rows were listed.
    /// How many objects went.
    ///
    /// Errors: an invalid prefix; the store's (listing or deleting).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, StorageError> {
        if !valid_key(prefix) {
            return Err(StorageError::Failed(anyhow::anyhow!("invalid object key prefix")));
        }
        match self {
            Storage::S3 { bucket, timeout } => {
                // ListObjectsV2, every page (rust-s3 follows the continuation tokens).
                let pages = bounded(*timeout, "LIST objects", bucket.list(format!("{prefix}/"), None)).await?;
                let keys: Vec<String> = pages.into_iter().flat_map(|p| p.contents.into_iter().map(|o| o.key)).collect();
                for key in &keys {
                    self.delete(key).await?;
                }
                Ok(keys.len())
            }
            Storage::Local(local) => Ok(local.delete_prefix(prefix).await?),
        }
    }

    /// The local store, when this is one.
    pub fn as_local(&self) -> Option<&LocalStore> {
        match self {
            Storage::Local(l) => Some(l),
            Storage::S3 { .. } => None,
        }
    }
}

/// Files under a folder, addressed by key, with HMAC-signed URLs.
pub struct LocalStore {
    root: PathBuf,
    signing_key: Vec<u8>,
    base_url: String,
}

/// What a verified local URL allows.
#[derive(Debug, PartialEq, Eq)]
pub struct LocalGrant {
    /// `put` or `get`.
    pub op: String,
    /// The object key.
    pub key: String,
    /// For `put`: the type the upload must declare.
    pub content_type: String,
    /// For `put`: the exact size the upload must have.
    pub size: u64,
    /// For `get`: serve as a download (`Content-Disposition: attachment`) under this name.
    pub download_name: Option<String>,
}

impl LocalStore {
    /// What a URL's signature covers: the operation, key, expiry, type and size, and
    /// for a download under a file name (`attachment` disposition) that name too.
    fn signed_text(op: &str, key: &str, expires: i64, content_type: &str, size: u64, name: &str) -> String {
        let mut text = format!("{op}\n{key}\n{expires}\n{content_type}\n{size}");
        if !name.is_empty() {
            text.push('\n');
            text.push_str(name);
        }
        text
    }

    fn signature(&self, op: &str, key: &str, expires: i64, content_type: &str, size: u64, name: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.signing_key).expect("HMAC takes any key size");
        mac.update(Self::signed_text(op, key, expires, content_type, size, name).as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn url(&self, op: &str, key: &str, expires: i64, content_type: &str, size: u64) -> String {
        self.url_named(op, key, expires, content_type, size, "")
    }

    fn url_named(&self, op: &str, key: &str, expires: i64, content_type: &str, size: u64, name: &str) -> String {
        let sig = self.signature(op, key, expires, content_type, size, name);
        let mut url = url::Url::parse(&format!("{}/storage/{key}", self.base_url)).expect("base URL");
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("op", op)
                .append_pair("exp", &expires.to_string())
                .append_pair("ct", content_type)
                .append_pair("len", &size.to_string());
            if !name.is_empty() {
                q.append_pair("dl", name);
            }
            q.append_pair("sig", &sig);
        }
        url.to_string()
    }

    /// Checks a request's key and query against its signature and expiry.
    pub fn verify(&self, key: &str, query: &[(String, String)]) -> Option<LocalGrant> {
        let get = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let op = get("op")?;
        let expires: i64 = get("exp")?.parse().ok()?;
        let content_type = get("ct").unwrap_or("");
        let size: u64 = get("len").unwrap_or("0").parse().ok()?;
        let download_name = get("dl").unwrap_or("");
        let given = hex::decode(get("sig")?).ok()?;
        let mut mac = HmacSha256::new_from_slice(&self.signing_key).ok()?;
        mac.update(Self::signed_text(op, key, expires, content_type, size, download_name).as_bytes());
        // Constant-time comparison, then expiry.
        mac.verify_slice(&given).ok()?;
        if expires < Utc::now().timestamp() || !valid_key(key) {
            return None;
        }
        Some(LocalGrant {
            op: op.to_owned(),
            key: key.to_owned(),
            content_type: content_type.to_owned(),
            size,
            download_name: (!download_name.is_empty()).then(|| download_name.to_owned()),
        })
    }

    /// The file of `key`; refuses keys that could leave the root.
    ///
    /// Errors: a key that would leave the store's directory.
    pub fn path(&self, key: &str) -> anyhow::Result<PathBuf> {
        anyhow::ensure!(valid_key(key), "invalid object key");
        Ok(self.root.join(key))
    }

    fn meta_path(path: &Path) -> PathBuf {
        let mut p = path.as_os_str().to_owned();
        p.push(".meta");
        PathBuf::from(p)
    }

    /// Stores `bytes` under `key` atomically, with its type.
    ///
    /// Errors: the file system's.
    pub async fn put(&self, key: &str, content_type: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.path(key)?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        tokio::fs::write(&tmp, bytes).await?;
        tokio::fs::write(Self::meta_path(&path), content_type).await?;
        tokio::fs::rename(&tmp, &path).await?;
        Ok(())
    }

    async fn head(&self, key: &str) -> anyhow::Result<Option<ObjectInfo>> {
        let path = self.path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(Some(ObjectInfo {
                size: m.len(),
                content_type: tokio::fs::read_to_string(Self::meta_path(&path)).await.ok(),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The stored type of `key`.
    pub async fn content_type(&self, key: &str) -> Option<String> {
        tokio::fs::read_to_string(Self::meta_path(&self.path(key).ok()?)).await.ok()
    }

    async fn delete_prefix(&self, prefix: &str) -> anyhow::Result<usize> {
        let dir = self.path(prefix)?;
        let mut n = 0;
        let mut pending = vec![dir.clone()];
        while let Some(d) = pending.pop() {
            let mut entries = match tokio::fs::read_dir(&d).await {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            while let Some(entry) = entries.next_entry().await? {
                if entry.file_type().await?.is_dir() {
                    pending.push(entry.path());
                } else if entry.path().extension().is_none_or(|x| x != "meta") {
                    n += 1;
                }
            }
        }
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let path = self.path(key)?;
        for p in [Self::meta_path(&path), path] {
            match tokio::fs::remove_file(&p).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// A file name reduced to characters that need no quoting (at most 100; `file` when
/// nothing is left).
pub fn safe_file_name(name: &str) -> String {
    let safe: String =
        name.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')).take(100).collect();
    if safe.trim_matches('.').is_empty() {
        "file".to_owned()
    } else {
        safe
    }
}

/// `inline; filename="<name>"`, the name reduced to characters that need no quoting.
pub fn inline_disposition(name: &str) -> String {
    format!("inline; filename=\"{}\"", safe_file_name(name))
}

/// `attachment; filename="<name>"`, the name reduced to characters that need no quoting.
pub fn attachment_disposition(name: &str) -> String {
    format!("attachment; filename=\"{}\"", safe_file_name(name))
}

/// Object keys are ours (`u/<uuid>/p/<uuid>`): lower-case hex, digits, dashes and
/// slashes, no empty or dot segments.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 200
        && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'/')
        && key.split('/').all(|seg| !seg.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_local_prefix_goes_whole_and_nothing_beside_it() {
        let root = std::env::temp_dir().join(format!("plinth-prefix-{}", uuid::Uuid::new_v4()));
        let store = Storage::local(root.clone(), b"k".to_vec(), "http://h".into());
        for key in ["u/aa/p/1", "u/aa/tc/2", "u/ab/p/3"] {
            store.put(key, "image/png", b"x").await.unwrap();
        }
        assert_eq!(store.delete_prefix("u/aa").await.unwrap(), 2);
        assert!(store.head("u/aa/p/1").await.unwrap().is_none());
        assert!(store.head("u/aa/tc/2").await.unwrap().is_none());
        assert!(store.head("u/ab/p/3").await.unwrap().is_some(), "a sibling folder went");
        assert_eq!(store.delete_prefix("u/aa").await.unwrap(), 0, "again: nothing, no error");
        assert!(store.delete_prefix("../etc").await.is_err());
        assert!(store.delete_prefix("u/aa/").await.is_err(), "an empty segment");
        std::fs::remove_dir_all(root).ok();
    }

    fn store() -> LocalStore {
        LocalStore { root: "/tmp/x".into(), signing_key: b"k".to_vec(), base_url: "http://h".into() }
    }

    fn query(url: &str) -> (String, Vec<(String, String)>) {
        let u = url::Url::parse(url).unwrap();
        let key = u.path().trim_start_matches("/storage/").to_owned();
        (key, u.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
    }

    #[test]
    fn signed_urls_verify_only_unchanged() {
        let s = store();
        let url = s.url("put", "u/a/p/b", Utc::now().timestamp() + 60, "image/png", 10);
        let (key, q) = query(&url);
        assert_eq!(s.verify(&key, &q).unwrap().size, 10);
        assert!(s.verify("u/c/p/b", &q).is_none(), "another key");
        let bigger: Vec<_> =
            q.iter().map(|(k, v)| (k.clone(), if k == "len" { "99".into() } else { v.clone() })).collect();
        assert!(s.verify(&key, &bigger).is_none(), "another size");
        let expired = s.url("get", "u/a/p/b", Utc::now().timestamp() - 1, "", 0);
        let (key, q) = query(&expired);
        assert!(s.verify(&key, &q).is_none(), "expired");
    }

    #[test]
    fn keys_cannot_escape() {
        for bad in ["", "../etc/passwd", "u//p", "u/A/p", "u/a/p/b.jpg", "/abs"] {
            assert!(!valid_key(bad), "{bad}");
        }
        assert!(valid_key("u/0123-abcd/p/ef"));
    }
}
