//! The web app's upload: a zip of an import folder (docs/import.md), unpacked into a
//! working folder before [`super::service::Importer`] reads it as `plinth import` does.
//!
//! Synchronous (the caller runs it on a blocking thread, `spawn_blocking`). A zip is
//! hostile until unpacked, so:
//! - an entry whose path leaves the folder (absolute, `..`, a drive or a backslash path:
//!   what `zip`'s `enclosed_name` refuses), a symbolic link, an entry that repeats an
//!   earlier one's path, or one that cannot be read (encrypted, an unsupported method,
//!   a corrupt stream) is **rejected**: skipped, with its reason in the report;
//! - a zip bomb **refuses the whole archive** before anything is imported: more entries
//!   than [`Limits::max_entries`], more bytes declared or actually unpacked than
//!   [`Limits::max_unpacked_bytes`], an entry that unpacks to more than it declares, or
//!   one that expands more than [`Limits::max_ratio`] times (declared or actual; entries
//!   under [`RATIO_FLOOR`] bytes are exempt: tiny files compress oddly). Sizes are
//!   checked while reading, chunk by chunk, never trusting the headers alone.
use super::format::Rejection;
use std::{
    fs,
    io::{self, Read, Write},
    path::{Path, PathBuf},
};

/// Entries this small are never refused for their ratio.
pub const RATIO_FLOOR: u64 = 1024 * 1024;
/// Chunk read at a time while unpacking.
const CHUNK: usize = 64 * 1024;

/// What an archive may hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Entries (files and folders), at most.
    pub max_entries: usize,
    /// Bytes unpacked, all entries together, at most.
    pub max_unpacked_bytes: u64,
    /// Unpacked bytes per compressed byte of one entry, at most (over [`RATIO_FLOOR`]).
    pub max_ratio: u64,
}

impl Default for Limits {
    /// 100,000 entries, 4 GiB unpacked, a ratio of 200 (deflate's best on real data is
    /// far below; a run of zeros reaches 1,000).
    fn default() -> Self {
        Limits { max_entries: 100_000, max_unpacked_bytes: 4 << 30, max_ratio: 200 }
    }
}

/// Why an archive was refused as a whole (nothing of it is imported).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The archive breaks a limit or is no zip at all: the message says which.
    #[error("{0}")]
    Archive(String),
    /// The working folder could not be written.
    #[error("unpacking the archive: {0}")]
    Io(#[from] io::Error),
}

/// The archive, unpacked.
#[derive(Debug)]
pub struct Unpacked {
    /// The import folder: the working folder, or its only subfolder when the files are
    /// in one (a zip of the folder rather than of its contents).
    pub root: PathBuf,
    /// Entries skipped, with their reasons (`line` 0: an entry, not a line).
    pub rejected: Vec<Rejection>,
    /// Files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// Unpacks the zip `bytes` into `dest` (created; it must not exist), within `limits`.
///
/// Errors: [`Refused::Archive`] (not a zip, a limit broken: nothing is imported; what was
/// written is left for the caller to remove with `dest`), [`Refused::Io`].
pub fn unpack(bytes: &[u8], dest: &Path, limits: Limits) -> Result<Unpacked, Refused> {
    let refuse = |m: String| Err(Refused::Archive(m));
    let mut archive = match zip::ZipArchive::new(io::Cursor::new(bytes)) {
        Ok(a) => a,
        Err(e) => return refuse(format!("the upload is not a readable zip archive ({e})")),
    };
    if archive.len() > limits.max_entries {
        return refuse(format!(
            "the archive has {} entries, more than the {} allowed",
            archive.len(),
            limits.max_entries
        ));
    }
    // What the headers declare, before anything is written.
    let mut declared_total = 0u64;
    for i in 0..archive.len() {
        let Ok(f) = archive.by_index_raw(i) else { continue };
        declared_total = declared_total.saturating_add(f.size());
        if let Some(why) = over_ratio(f.size(), f.compressed_size(), limits.max_ratio) {
            return refuse(format!("entry {} {why} (declared): refused as a zip bomb", shown(f.name())));
        }
    }
    if declared_total > limits.max_unpacked_bytes {
        return refuse(format!(
            "the archive declares {declared_total} bytes unpacked, more than the {} allowed",
            limits.max_unpacked_bytes
        ));
    }
    fs::create_dir_all(dest)?;
    let mut out = Unpacked { root: dest.to_owned(), rejected: Vec::new(), files: 0, bytes: 0 };
    let mut buf = vec![0u8; CHUNK];
    for i in 0..archive.len() {
        let name = archive.name_for_index(i).map(shown).unwrap_or_else(|| format!("entry {}", i + 1));
        let mut f = match archive.by_index(i) {
            Ok(f) => f,
            Err(e) => {
                out.rejected.push(rejection(&name, format!("cannot be read ({e})")));
                continue;
            }
        };
        if f.is_symlink() {
            out.rejected.push(rejection(&name, "is a symbolic link: links are not unpacked".into()));
            continue;
        }
        let Some(rel) = f.enclosed_name().filter(|p| !p.as_os_str().is_empty()) else {
            out.rejected.push(rejection(&name, "its path leaves the folder (absolute, or with ..)".into()));
            continue;
        };
        let path = dest.join(&rel);
        if f.is_dir() {
            fs::create_dir_all(&path)?;
            continue;
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut file = match fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                out.rejected.push(rejection(&name, "repeats the path of an earlier entry".into()));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let (declared, compressed) = (f.size(), f.compressed_size());
        let mut written = 0u64;
        let failed = loop {
            let n = match f.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => n as u64,
                Err(e) => break Some(format!("cannot be read ({e})")),
            };
            written += n;
            if written > declared {
                return refuse(format!(
                    "entry {name} unpacks to more than the {declared} bytes it declares: refused as a zip bomb"
                ));
            }
            if out.bytes + written > limits.max_unpacked_bytes {
                return refuse(format!(
                    "the archive unpacks to more than the {} bytes allowed",
                    limits.max_unpacked_bytes
                ));
            }
            if let Some(why) = over_ratio(written, compressed, limits.max_ratio) {
                return refuse(format!("entry {name} {why}: refused as a zip bomb"));
            }
            file.write_all(&buf[..n as usize])?;
        };
        if let Some(reason) = failed {
            drop(file);
            fs::remove_file(&path)?;
            out.rejected.push(rejection(&name, reason));
            continue;
        }
        out.files += 1;
        out.bytes += written;
    }
    out.root = folder_root(dest)?;
    Ok(out)
}

/// Why `unpacked` bytes from `compressed` ones expand too much, if they do.
fn over_ratio(unpacked: u64, compressed: u64, max_ratio: u64) -> Option<String> {
    (unpacked > RATIO_FLOOR && unpacked / compressed.max(1) > max_ratio)
        .then(|| format!("expands {} times, more than {max_ratio}", unpacked / compressed.max(1)))
}

/// `dest`, or its only subfolder when `dest` holds no file of its own (a zip made of
/// the folder itself).
fn folder_root(dest: &Path) -> io::Result<PathBuf> {
    let mut dirs = Vec::new();
    for entry in fs::read_dir(dest)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            // macOS's Finder adds its own folder beside the files.
            if entry.file_name() != "__MACOSX" {
                dirs.push(entry.path());
            }
        } else {
            return Ok(dest.to_owned());
        }
    }
    match dirs.as_slice() {
        [only] if !only.ends_with("photos") => Ok(only.clone()),
        _ => Ok(dest.to_owned()),
    }
}

/// An entry's name as the report shows it: control characters replaced, at most 200
/// characters.
fn shown(name: &str) -> String {
    let clean: String = name.chars().map(|c| if c.is_control() { '?' } else { c }).take(200).collect();
    if name.chars().count() > 200 {
        format!("{clean}…")
    } else {
        clean
    }
}

fn rejection(name: &str, reason: String) -> Rejection {
    Rejection { file: name.to_owned(), line: 0, id: None, reason: format!("zip entry: {reason}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        for (name, body) in entries {
            w.start_file(*name, SimpleFileOptions::default()).unwrap();
            w.write_all(body).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn dest() -> PathBuf {
        std::env::temp_dir().join(format!("plinth-unpack-{}", uuid::Uuid::new_v4().simple()))
    }

    #[test]
    fn climbing_paths_are_rejected_and_the_rest_is_unpacked() {
        let bytes = zip_of(&[("drafts.jsonl", b"{}\n"), ("../evil", b"x"), ("/etc/evil", b"x"), ("a/../../b", b"x")]);
        let d = dest();
        let u = unpack(&bytes, &d, Limits::default()).unwrap();
        assert_eq!(u.files, 1);
        assert_eq!(u.rejected.len(), 3, "{:?}", u.rejected);
        assert!(u.rejected.iter().all(|r| r.reason.contains("leaves the folder")));
        assert!(!d.parent().unwrap().join("evil").exists());
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_zip_of_the_folder_itself_is_read_from_its_subfolder() {
        let bytes = zip_of(&[("export/drafts.jsonl", b"{}\n"), ("export/photos/a.png", b"x")]);
        let d = dest();
        let u = unpack(&bytes, &d, Limits::default()).unwrap();
        assert_eq!(u.root, d.join("export"));
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn entries_that_expand_too_much_or_too_many_refuse_the_archive() {
        let zeros = vec![0u8; 4 << 20];
        let d = dest();
        let e = unpack(&zip_of(&[("drafts.jsonl", &zeros)]), &d, Limits::default()).unwrap_err();
        assert!(e.to_string().contains("zip bomb"), "{e}");
        let many: Vec<(String, &[u8])> = (0..5).map(|i| (format!("f{i}"), &b"x"[..])).collect();
        let many: Vec<(&str, &[u8])> = many.iter().map(|(n, b)| (n.as_str(), *b)).collect();
        let e = unpack(&zip_of(&many), &dest(), Limits { max_entries: 4, ..Limits::default() }).unwrap_err();
        assert!(e.to_string().contains("5 entries"), "{e}");
        let _ = fs::remove_dir_all(d);
    }
}
