//! The storage section: photos on S3/R2 (or files under the data dir) and the key that
//! seals marketplace credentials.
use super::{ConfigError, Vars};
use crate::storage::S3Settings;
use secrecy::SecretString;

/// Objects and sealed secrets.
#[derive(Clone, Debug)]
pub struct StorageConfig {
    /// `PLINTH_S3_*`: the object store; None stores files under the data dir.
    pub s3: Option<S3Settings>,
    /// `PLINTH_MAX_UPLOAD_BYTES`: largest photo accepted (20 MiB).
    pub max_upload_bytes: u64,
    /// `PLINTH_MAX_IMPORT_BYTES`: largest zip the web app's import accepts (512 MiB).
    pub max_import_bytes: u64,
    /// `PLINTH_CREDENTIALS_KEY`: 64 hex digits sealing marketplace credentials; None:
    /// the data dir's, generated on first start (development only).
    pub credentials_key: Option<SecretString>,
    /// `PLINTH_UPLOAD_SWEEP_SECS`: how often expired upload reservations are swept
    /// (60 s).
    pub upload_sweep: std::time::Duration,
}

impl StorageConfig {
    pub(super) fn read(v: &Vars) -> Result<Self, ConfigError> {
        Ok(StorageConfig {
            s3: s3_settings(v)?,
            max_upload_bytes: v.parse("PLINTH_MAX_UPLOAD_BYTES", 20 * 1024 * 1024)?,
            max_import_bytes: v.parse("PLINTH_MAX_IMPORT_BYTES", 512 * 1024 * 1024)?,
            credentials_key: v.secret("PLINTH_CREDENTIALS_KEY"),
            upload_sweep: std::time::Duration::from_secs(v.parse("PLINTH_UPLOAD_SWEEP_SECS", 60)?.max(1)),
        })
    }
}

/// All of `PLINTH_S3_ENDPOINT`, `_BUCKET`, `_ACCESS_KEY`, `_SECRET_KEY` or none.
fn s3_settings(v: &Vars) -> Result<Option<S3Settings>, ConfigError> {
    let Some(endpoint) = v.get("PLINTH_S3_ENDPOINT") else {
        return Ok(None);
    };
    if url::Url::parse(&endpoint).is_err() {
        return Err(ConfigError { var: "PLINTH_S3_ENDPOINT", message: "expected a URL".into() });
    }
    let need = |var: &'static str| {
        v.get(var).ok_or(ConfigError { var, message: "required when PLINTH_S3_ENDPOINT is set".into() })
    };
    Ok(Some(S3Settings {
        endpoint,
        bucket: need("PLINTH_S3_BUCKET")?,
        region: v.get("PLINTH_S3_REGION").unwrap_or_else(|| "auto".into()),
        access_key: need("PLINTH_S3_ACCESS_KEY")?,
        secret_key: SecretString::from(need("PLINTH_S3_SECRET_KEY")?),
        path_style: v.parse("PLINTH_S3_PATH_STYLE", true)?,
        timeout: std::time::Duration::from_millis(v.parse("PLINTH_S3_TIMEOUT_MS", 5_000)?),
    }))
}
