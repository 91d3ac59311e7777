//! The house's floors, checked: every `crate::` and `super::` path in `api/src` (in
//! `use` lines and inline alike) is resolved to the file it names, and the test fails
//! when a file reaches a floor above its own, when a domain reaches a domain declared
//! after it, or when two files reach each other. The table below is the one place the
//! floors are written down.
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// Floors from the ground up; a module may use its own floor and those below.
/// Domains are one floor, ordered by `DOMAINS`.
const FLOORS: &[(&str, &[&str])] = &[
    (
        "ground",
        &[
            "config",
            "telemetry",
            "error",
            "principal",
            "events",
            "storage",
            "model",
            "catalog",
            "metrics",
            "pagination",
            "secretbox",
            "fsutil",
            "shared_redis",
        ],
    ),
    ("db", &["db"]),
    ("auth", &["auth"]),
    ("tasks", &["tasks"]),
    ("domains", DOMAINS),
    ("graphql", &["graphql"]),
    ("http", &["http"]),
    ("startup", &["startup"]),
    ("doctor", &["doctor"]),
    // `plinth demo` builds on the whole server's services.
    ("demo", &["demo"]),
];

/// Domains in the order references may run: each may use those before it, never after.
const DOMAINS: &[&str] = &[
    "activity",
    "email",
    "notifications",
    "plans",
    "quotas",
    "photos",
    "drafts",
    "marketplace",
    "jobs",
    "dashboard",
    "api_tokens",
    "accounts",
    "billing",
    "business",
    "support",
    "experiments",
    "feedback",
    "reports",
    "imports",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// (floor index, position within the domains, or 0) of a top-level module.
fn rank(top: &str) -> Option<(usize, usize)> {
    FLOORS.iter().enumerate().find_map(|(i, (_, mods))| {
        mods.iter().position(|m| *m == top).map(|p| (i, if mods == &DOMAINS { p } else { 0 }))
    })
}

/// The module path of a source file (`billing/store.rs` → [billing, store]).
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    parts
}

/// The file a module path names: the longest prefix that exists on disk.
fn file_of(path: &[String]) -> Option<PathBuf> {
    for n in (1..=path.len()).rev() {
        let base = path[..n].iter().fold(src(), |p, s| p.join(s));
        for candidate in [base.with_extension("rs"), base.join("mod.rs")] {
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Source without comments and string literals (so prose and SQL never count).
fn code_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' || (b[i] == b'r' && i + 1 < b.len() && (b[i + 1] == b'"' || b[i + 1] == b'#')) {
            // A string (raw or not): skip to its end.
            let mut hashes = 0;
            if b[i] == b'r' {
                i += 1;
                while b[i] == b'#' {
                    hashes += 1;
                    i += 1;
                }
            }
            i += 1;
            while i < b.len() {
                if b[i] == b'\\' && hashes == 0 {
                    i += 2;
                    continue;
                }
                if b[i] == b'"' && b[i + 1..].iter().take(hashes).all(|c| *c == b'#') {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
            out.push(' ');
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal.
            i += if b[i + 1] == b'\\' { 4 } else { 3 };
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Expands a `use` tree (`a::{b, c::{d, e}}`) into its paths.
fn expand(tree: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head: Vec<String> =
            tree[..open].split("::").map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        let inner = &tree[open + 1..tree.rfind('}').unwrap()];
        let mut depth = 0;
        let mut start = 0;
        let mut items = Vec::new();
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&inner[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        items.push(&inner[start..]);
        let base: Vec<String> = prefix.into_iter().chain(head).collect();
        for item in items.into_iter().filter(|s| !s.trim().is_empty()) {
            expand(item, base.clone(), out);
        }
    } else {
        let path = tree.split(" as ").next().unwrap();
        let mut p = prefix;
        p.extend(
            path.split("::").map(str::trim).filter(|s| !s.is_empty() && *s != "self" && *s != "*").map(str::to_owned),
        );
        out.push(p);
    }
}

/// Every `crate::`/`super::` path in `code`, resolved against `module` (absolute,
/// without the leading `crate`).
fn paths_in(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut raw = Vec::new();
    // `use` statements, whole trees.
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before_ok = at == 0 || !rest.as_bytes()[at - 1].is_ascii_alphanumeric() && rest.as_bytes()[at - 1] != b'_';
        let end = rest[at..].find(';').map(|e| at + e).unwrap_or(rest.len());
        if before_ok {
            expand(&rest[at + 4..end], Vec::new(), &mut raw);
        }
        rest = &rest[(at + 4).min(end)..];
    }
    // Inline paths.
    let bytes = code.as_bytes();
    for key in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(key).map(|a| a + from) {
            from = at + key.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_' || bytes[at - 1] == b':') {
                continue;
            }
            let mut end = at;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_' || bytes[end] == b':')
            {
                end += 1;
            }
            // `crate::{...}` is a use tree, expanded above.
            if !code[at..end].ends_with("::") {
                raw.push(code[at..end].split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect());
            }
        }
    }
    // `super` is the parent of the file's module (for `a/mod.rs`, module `a`: the root).
    let own: Vec<String> = module.to_vec();
    raw.into_iter()
        .filter_map(|p| {
            let first = p.first()?.clone();
            let mut base: Vec<String> = match first.as_str() {
                "crate" => Vec::new(),
                "super" => {
                    let mut b = own.clone();
                    b.pop();
                    b
                }
                _ => return None,
            };
            let mut segs = p.into_iter().skip(1).peekable();
            while segs.peek().is_some_and(|s| s == "super") {
                segs.next();
                base.pop();
            }
            base.extend(segs);
            Some(base)
        })
        .collect()
}

fn files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&src(), &mut out);
    out.sort();
    out
}

#[test]
fn references_run_down_the_floors_and_never_both_ways() {
    let mut problems = BTreeSet::new();
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for file in files() {
        let module = module_of(&file);
        let Some(top) = module.first() else { continue }; // lib.rs
        let Some(own) = rank(top) else {
            problems.insert(format!("{}: module `{top}` is not in the floor table", file.display()));
            continue;
        };
        let code = code_of(&fs::read_to_string(&file).unwrap());
        for path in paths_in(&code, &module) {
            let Some(target_top) = path.first() else { continue };
            let Some(target) = rank(target_top) else { continue }; // an item of lib.rs (re-exports)
            if target.0 > own.0 || (target.0 == own.0 && target.1 > own.1) {
                problems.insert(format!(
                    "{}: `{top}` ({}) reaches up to `{target_top}` ({}) through crate::{}",
                    file.strip_prefix(src()).unwrap().display(),
                    FLOORS[own.0].0,
                    FLOORS[target.0].0,
                    path.join("::")
                ));
            }
            if let Some(target_file) = file_of(&path) {
                if target_file != file {
                    edges.entry(file.clone()).or_default().insert(target_file);
                }
            }
        }
    }
    for (a, targets) in &edges {
        for b in targets {
            if a < b && edges.get(b).is_some_and(|t| t.contains(a)) {
                problems.insert(format!(
                    "{} and {} reach each other",
                    a.strip_prefix(src()).unwrap().display(),
                    b.strip_prefix(src()).unwrap().display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "the floors are crossed:\n{}", problems.into_iter().collect::<Vec<_>>().join("\n"));
}

#[test]
fn the_checker_sees_use_trees_inline_paths_and_super() {
    let code = code_of(
        "use crate::{a::{b, c::d}, e as f};\nfn g() { crate::h::i(); let s = \"crate::nope\"; } // crate::no\nuse super::{store, x::y};",
    );
    let mut got = paths_in(&code, &["billing".to_owned(), "webhook".to_owned()]);
    got.sort();
    let want: Vec<Vec<String>> = [
        vec!["a", "b"],
        vec!["a", "c", "d"],
        vec!["billing", "store"],
        vec!["billing", "x", "y"],
        vec!["e"],
        vec!["h", "i"],
    ]
    .iter()
    .map(|v| v.iter().map(|s| s.to_string()).collect())
    .collect();
    assert_eq!(got, want);
}
