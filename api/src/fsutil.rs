//! Small file helpers for keys kept in the data dir.
use anyhow::Context;
use std::{io::Write, os::unix::fs::OpenOptionsExt, path::Path};

/// Creates `path` (and its folder) readable by the owner only; fails if it exists.
///
/// Errors: the file system's.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}
