//! The web app's upload: a zip of an import folder (docs/import.md), unpacked into a
//! working folder before [`super::service::Importer`] reads it as `plinth import` does.
//!
//! Synchronous (the caller runs it on a blocking thread, `spawn_blocking`). A zip is
//! hostile until unpacked, so:
//! - only what an import reads is unpacked: the format's files ([`Kind::file`]) and what
//!   is under `photos/`, at the archive's top or in its only top folder (a zip of the
//!   folder rather than of its contents); anything else is never written: the export's
//!   other files (`README.json`, `notifications.jsonl`, ...: any `.json` or `.jsonl` at
//!   the top) and what operating systems add (`__MACOSX/`, `.DS_Store`, `Thumbs.db`)
//!   silently, the rest counted in one report line;
//! - an entry whose path leaves the folder (absolute, `..`, a drive or a backslash path:
//!   what `zip`'s `enclosed_name` refuses), a symbolic link, an entry that repeats an
//!   earlier one's path, one that cannot be read (encrypted, an unsupported method, a
//!   corrupt stream) or cannot be written where it says (a name too long for the file
//!   system, a path through a file) is **rejected**: skipped, with its reason in the
//!   report;
//! - an entry whose path holds a `.` or `..` component, even one that stays inside
//!   (`export/photos/../../x` would leave the folder once its top folder is dropped), is
//!   **rejected** too;
//! - a zip bomb **refuses the whole archive** before anything is imported: more entries
//!   than [`Limits::max_entries`], more bytes declared or actually unpacked than
//!   [`Limits::max_unpacked_bytes`], an entry that unpacks to more than it declares, or
//!   an entry or the unpacked entries together expanding more than
//!   [`Limits::max_ratio`] times (declared or actual) once past [`RATIO_FLOOR`] bytes.
//!   Ratios are taken over the upload's real size (an entry's declared compressed size
//!   is the uploader's word, and entries may share one stream), and sizes are checked
//!   while reading, chunk by chunk; so at most `max(RATIO_FLOOR, max_ratio × the
//!   upload's bytes)` is ever written.
use super::format::{Kind, Rejection};
use std::{
    fs,
    io::{self, Read, Write},
    path::{Component, Path, PathBuf},
};

/// Below this many unpacked bytes (an entry's, or all entries' together) no ratio is
/// refused: tiny files compress oddly.
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
    /// Unpacked bytes per compressed byte, of one entry and of all unpacked entries
    /// together, at most (past [`RATIO_FLOOR`]).
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
    /// The working folder could not be written (the disk, not the archive).
    #[error("unpacking the archive: {0}")]
    Io(#[from] io::Error),
}

/// The archive, unpacked.
#[derive(Debug)]
pub struct Unpacked {
    /// The import folder (the working folder: a top folder's files are moved up).
    pub root: PathBuf,
    /// Entries skipped, with their reasons (`line` 0: an entry, not a line).
    pub rejected: Vec<Rejection>,
    /// Files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// What the first look at an entry's header found.
struct Header {
    /// The path inside the import folder, when the entry is one an import reads.
    wanted: Option<PathBuf>,
    /// Not an import's file and not worth a report line (another file of an export, OS
    /// litter).
    silent: bool,
    name: String,
}

/// Unpacks the zip `bytes` into `dest` (created; it must not exist), within `limits`.
///
/// Errors: [`Refused::Archive`] (not a zip, a limit broken: nothing is imported; what was
/// written is left for the caller to remove with `dest`), [`Refused::Io`] (writing
/// failed for a reason not the entry's own, such as a full disk).
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
    // The headers, before anything is written: which entries an import reads, and what
    // they declare. What the upload really weighs bounds every ratio: a header's
    // compressed size is the uploader's word, and entries may point at one shared stream.
    let upload = bytes.len() as u64;
    let mut files = Vec::with_capacity(archive.len()); // (path, size, compressed size)
    for i in 0..archive.len() {
        files.push(archive.by_index_raw(i).ok().and_then(|f| {
            let path = f.enclosed_name().filter(|p| !f.is_dir() && !p.as_os_str().is_empty() && plain(p))?;
            Some((path, f.size(), f.compressed_size()))
        }));
    }
    let top = top_folder(files.iter().flatten().map(|(path, ..)| path));
    let mut headers = Vec::with_capacity(archive.len());
    let mut declared_total = 0u64;
    for (i, file) in files.iter().enumerate() {
        let name = archive.name_for_index(i).map(shown).unwrap_or_else(|| format!("entry {}", i + 1));
        let (mut wanted, mut silent) = (None, false);
        if let Some((path, size, compressed)) = file {
            // Inside the import folder (None: outside the top folder).
            let rel = match top.as_deref() {
                Some(top) => path.strip_prefix(top).ok(),
                None => Some(path.as_path()),
            };
            wanted = rel.and_then(wanted_at);
            silent = is_litter(path) || is_export_file(rel.unwrap_or(path));
            if wanted.is_some() {
                declared_total = declared_total.saturating_add(*size);
                if let Some(why) = over_ratio(*size, (*compressed).min(upload), limits.max_ratio) {
                    return refuse(format!("entry {name} {why} (declared): refused as a zip bomb"));
                }
            }
        }
        headers.push(Header { wanted, silent, name });
    }
    if declared_total > limits.max_unpacked_bytes {
        return refuse(format!(
            "the archive declares {declared_total} bytes unpacked, more than the {} allowed",
            limits.max_unpacked_bytes
        ));
    }
    if let Some(why) = over_ratio(declared_total, upload, limits.max_ratio) {
        return refuse(format!("the archive's files together {why} (declared): refused as a zip bomb"));
    }
    fs::create_dir_all(dest)?;
    let mut out = Unpacked { root: dest.to_owned(), rejected: Vec::new(), files: 0, bytes: 0 };
    let (mut ignored, mut first_ignored) = (0usize, None);
    let mut buf = vec![0u8; CHUNK];
    for (i, header) in headers.into_iter().enumerate() {
        let Header { wanted, silent, name } = header;
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
        let Some(enclosed) = f.enclosed_name().filter(|p| !p.as_os_str().is_empty()) else {
            out.rejected.push(rejection(&name, "its path leaves the folder (absolute, or with ..)".into()));
            continue;
        };
        if !plain(&enclosed) {
            out.rejected.push(rejection(&name, "its path holds . or .. components".into()));
            continue;
        }
        if f.is_dir() {
            continue; // folders are made for the files in them
        }
        let Some(rel) = wanted else {
            if !silent {
                ignored += 1;
                first_ignored.get_or_insert(name);
            }
            continue;
        };
        let path = dest.join(&rel);
        let created = match path.parent() {
            Some(parent) => fs::create_dir_all(parent),
            None => Ok(()),
        }
        .and_then(|()| fs::OpenOptions::new().write(true).create_new(true).open(&path));
        let mut file = match created {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_file() => {
                out.rejected.push(rejection(&name, "repeats the path of an earlier entry".into()));
                continue;
            }
            Err(e) if disk_full(&e) => return Err(e.into()),
            Err(e) => {
                out.rejected.push(rejection(&name, format!("cannot be written at its path ({e})")));
                continue;
            }
        };
        let (declared, compressed) = (f.size(), f.compressed_size().min(upload));
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
            if let Some(why) = over_ratio(out.bytes + written, upload, limits.max_ratio) {
                return refuse(format!("the archive's files together {why}: refused as a zip bomb"));
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
    if let Some(first) = first_ignored {
        let more = if ignored > 1 { format!(" and {} more", ignored - 1) } else { String::new() };
        out.rejected.push(rejection(
            &first,
            format!(
                "is not a file of the import format (docs/import.md: {}, photos/){more}: not unpacked",
                Kind::ALL.map(|k| k.file()).join(", ")
            ),
        ));
    }
    Ok(out)
}

/// The archive's only top folder, when its files are all in one and none of the
/// format's is at its top (a zip made of the folder itself).
fn top_folder<'a>(paths: impl Iterator<Item = &'a PathBuf>) -> Option<PathBuf> {
    let mut top: Option<&std::ffi::OsStr> = None;
    for path in paths.filter(|p| !is_litter(p)) {
        let mut parts = path.components();
        let (Some(Component::Normal(first)), Some(_)) = (parts.next(), parts.next()) else {
            return None; // a file at the top
        };
        if first == "photos" || top.is_some_and(|t| t != first) {
            return None;
        }
        top = Some(first);
    }
    top.map(PathBuf::from)
}

/// Whether `path` is made of names only (no root, `.` or `..`).
fn plain(path: &Path) -> bool {
    path.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Where an entry at `rel` (a [`plain`] path inside the import folder) is written, when
/// an import reads it.
fn wanted_at(rel: &Path) -> Option<PathBuf> {
    let parts: Vec<_> = rel.components().collect();
    match parts.as_slice() {
        [Component::Normal(file)] if Kind::ALL.iter().any(|k| *file == k.file()) => Some(rel.to_owned()),
        [Component::Normal(dir), rest @ ..] if *dir == "photos" && !rest.is_empty() => Some(rel.to_owned()),
        _ => None,
    }
}

/// Another file of an export (docs/export.md) at the folder's top (`rel`, inside the
/// import folder): JSON the import does not read.
fn is_export_file(rel: &Path) -> bool {
    rel.components().count() == 1 && rel.extension().is_some_and(|e| e == "json" || e == "jsonl")
}

/// Files operating systems add beside people's own (not worth a report line).
fn is_litter(path: &Path) -> bool {
    path.components().next().is_some_and(|c| c.as_os_str() == "__MACOSX")
        || path.file_name().is_some_and(|n| n == ".DS_Store" || n == "Thumbs.db")
}

/// The disk, not the entry: the import cannot go on.
fn disk_full(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}

/// Why `unpacked` bytes from `compressed` ones expand too much, if they do.
fn over_ratio(unpacked: u64, compressed: u64, max_ratio: u64) -> Option<String> {
    (unpacked > RATIO_FLOOR && unpacked / compressed.max(1) > max_ratio)
        .then(|| format!("expand {} times, more than {max_ratio}", unpacked / compressed.max(1)))
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
    fn a_zip_of_the_folder_itself_is_unpacked_as_the_folder() {
        let bytes = zip_of(&[
            ("export/drafts.jsonl", b"{}\n"),
            ("export/photos/a.png", b"x"),
            ("__MACOSX/export/._drafts.jsonl", b"x"),
        ]);
        let d = dest();
        let u = unpack(&bytes, &d, Limits::default()).unwrap();
        assert_eq!((u.root.as_path(), u.files), (d.as_path(), 2));
        assert!(d.join("drafts.jsonl").is_file() && d.join("photos/a.png").is_file());
        assert!(u.rejected.is_empty(), "OS litter is not reported: {:?}", u.rejected);
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn only_the_formats_files_and_photos_are_unpacked() {
        let bytes = zip_of(&[
            ("drafts.jsonl", b"{}\n"),
            ("photos/a.jpg", b"x"),
            ("notes.txt", b"x"),
            ("big/blob.bin", b"x"),
            ("photos", b"x"),
            (".DS_Store", b"x"),
            ("README.json", b"{}"),
            ("notifications.jsonl", b"{}\n"),
        ]);
        let d = dest();
        let u = unpack(&bytes, &d, Limits::default()).unwrap();
        assert_eq!(u.files, 2);
        assert!(!d.join("notes.txt").exists() && !d.join("big").exists());
        assert_eq!(u.rejected.len(), 1, "one line for the 3 others: {:?}", u.rejected);
        assert!(
            u.rejected[0].reason.contains("not a file of the import format") && u.rejected[0].reason.contains("2 more")
        );
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn an_entry_that_cannot_be_written_is_rejected_and_the_rest_unpacked() {
        let long = format!("photos/{}.jpg", "n".repeat(5000));
        let bytes =
            zip_of(&[("photos/a", b"x"), ("photos/a/b.jpg", b"x"), (long.as_str(), b"x"), ("drafts.jsonl", b"{}\n")]);
        let d = dest();
        let u = unpack(&bytes, &d, Limits::default()).unwrap();
        assert_eq!(u.files, 2, "{:?}", u.rejected);
        assert_eq!(u.rejected.len(), 2, "{:?}", u.rejected);
        assert!(u.rejected.iter().all(|r| r.reason.contains("cannot be written")), "{:?}", u.rejected);
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn many_small_entries_expanding_together_refuse_the_archive() {
        // Each under the floor alone; together far past the ratio.
        let zeros = vec![0u8; 512 << 10];
        let names: Vec<String> = (0..64).map(|i| format!("photos/{i}.jpg")).collect();
        let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), zeros.as_slice())).collect();
        let d = dest();
        let e = unpack(&zip_of(&entries), &d, Limits::default()).unwrap_err();
        assert!(e.to_string().contains("together") && e.to_string().contains("(declared)"), "{e}");
        assert!(!d.exists(), "refused before anything is written");
    }

    /// Patches the compressed size every central directory header declares.
    fn lie_about_compressed_size(zip: &mut [u8], size: u32) {
        let mut at = 0;
        while let Some(i) = zip[at..].windows(4).position(|w| w == b"PK\x01\x02") {
            let h = at + i;
            zip[h + 20..h + 24].copy_from_slice(&size.to_le_bytes());
            at = h + 4;
        }
    }

    #[test]
    fn a_compressed_size_that_lies_does_not_lift_the_bound() {
        // 8 MiB of zeros deflate to ~8 KiB; the header claims 4 GiB of compressed bytes.
        let zeros = vec![0u8; 8 << 20];
        let mut bytes = zip_of(&[("photos/a.jpg", zeros.as_slice())]);
        lie_about_compressed_size(&mut bytes, u32::MAX - 1);
        let d = dest();
        let e = unpack(&bytes, &d, Limits::default()).unwrap_err();
        assert!(e.to_string().contains("zip bomb"), "{e}");
        assert!(!d.join("photos/a.jpg").exists(), "nothing written");
        let _ = fs::remove_dir_all(d);
    }

    #[test]
    fn dot_dot_inside_a_top_folder_is_rejected() {
        let bytes = zip_of(&[("export/drafts.jsonl", b"{}\n"), ("export/photos/../../x", b"x"), ("photos/../y", b"x")]);
        let d = dest();
        let u = unpack(&bytes, &d, Limits::default()).unwrap();
        assert_eq!(u.files, 1, "{:?}", u.rejected);
        assert_eq!(u.rejected.len(), 2, "{:?}", u.rejected);
        assert!(u.rejected.iter().all(|r| r.reason.contains(". or ..")), "{:?}", u.rejected);
        assert!(!d.parent().unwrap().join("x").exists() && !d.join("x").exists() && !d.join("y").exists());
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
        let e = unpack(&zip_of(&many), &d, Limits { max_entries: 4, ..Limits::default() }).unwrap_err();
        assert!(e.to_string().contains("5 entries"), "{e}");
        let _ = fs::remove_dir_all(d);
    }
}
