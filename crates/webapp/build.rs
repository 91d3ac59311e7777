//! Builds the web app (`web/`) with npm when its sources changed, then copies the build
//! under `OUT_DIR`, where `src/lib.rs` embeds it. Why it works this way: the crate's
//! documentation.
use std::{
    env, fs,
    io::ErrorKind,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Instant, SystemTime},
};

/// What `npm run build` reads, relative to `web/`.
const INPUTS: &[&str] = &[
    "src",
    "static",
    "scripts",
    "package.json",
    "package-lock.json",
    ".npmrc",
    "svelte.config.js",
    "vite.config.ts",
    "tsconfig.json",
    "../schema.graphql",
    "../plans.toml",
];

/// A file `npm run build` writes last (the SPA shell); its age says whether the build
/// is current.
const BUILT_MARKER: &str = "build/200.html";

fn main() {
    if let Err(message) = run() {
        eprintln!("\nplinth-webapp: {message}\n");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    // Read when the script runs, never with env!: the script's binary may be reused by
    // another checkout sharing the target dir.
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?);
    let out = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?).join("web");
    let web = manifest.join("../../web");
    for input in INPUTS {
        let path = web.join(input);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }

    // One build at a time in this checkout, whatever the target dir (a `cargo build`
    // beside a `cargo clippy`, or scripts/test's own npm run).
    let lock = fs::File::create(web.join(".build.lock")).map_err(|e| format!("creating web/.build.lock: {e}"))?;
    lock.lock().map_err(|e| format!("locking web/.build.lock: {e}"))?;

    // The Dockerfile builds the web app in its own node stage and copies web/build in:
    // then npm must not run (the Rust stage has no Node), and the build must be there.
    println!("cargo:rerun-if-env-changed=PLINTH_WEB_PREBUILT");
    let prebuilt = env::var_os("PLINTH_WEB_PREBUILT").is_some_and(|v| v == "1");
    if prebuilt && !web.join(BUILT_MARKER).exists() {
        return Err(format!("PLINTH_WEB_PREBUILT=1 but web/{BUILT_MARKER} is missing: build the web app first"));
    }
    if !prebuilt && !is_current(&web) {
        let node_modules = web.join("node_modules/.package-lock.json");
        if older(&node_modules, &web.join("package-lock.json")) {
            npm(&web, &["ci", "--no-audit", "--no-fund"])?;
        }
        if let Err(e) = npm(&web, &["run", "build"]) {
            // A failed build must not pass for a current one next time.
            let _ = fs::remove_file(web.join(BUILT_MARKER));
            return Err(e);
        }
        if !web.join(BUILT_MARKER).exists() {
            return Err(format!("npm run build finished without writing web/{BUILT_MARKER}"));
        }
    }

    if out.exists() {
        fs::remove_dir_all(&out).map_err(|e| format!("clearing {}: {e}", out.display()))?;
    }
    copy_dir(&web.join("build"), &out).map_err(|e| format!("copying web/build to {}: {e}", out.display()))?;
    Ok(())
}

/// Whether `web/build` is newer than every input.
fn is_current(web: &Path) -> bool {
    let Some(built) = modified(&web.join(BUILT_MARKER)) else { return false };
    INPUTS.iter().filter_map(|i| newest(&web.join(i))).all(|m| m <= built)
}

/// Whether `path` is missing or older than `than`.
fn older(path: &Path, than: &Path) -> bool {
    match (modified(path), modified(than)) {
        (Some(a), Some(b)) => a < b,
        _ => true,
    }
}

/// Runs `npm args` in `web/`, its output on stderr (cargo shows it when the build fails).
fn npm(web: &Path, args: &[&str]) -> Result<(), String> {
    let what = format!("npm {}", args.join(" "));
    let started = Instant::now();
    let status = Command::new("npm")
        .args(args)
        .current_dir(web)
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => "building the web app needs Node.js 20.19 or later and npm on PATH, \
                 and none was found: install Node 20 (https://nodejs.org, or your system's packages), \
                 then run cargo again (web/README.md tells more)"
                .to_owned(),
            _ => format!("starting {what}: {e}"),
        })?;
    if !status.success() {
        return Err(format!("{what} failed in web/ ({status}); its output is above"));
    }
    println!("cargo:warning=web app: {what} took {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time under `path` (a file, or a folder walked whole).
fn newest(path: &Path) -> Option<SystemTime> {
    let meta = fs::metadata(path).ok()?;
    let own = meta.modified().ok();
    if !meta.is_dir() {
        return own;
    }
    let children = fs::read_dir(path).ok()?.flatten().filter_map(|e| newest(&e.path()));
    children.chain(own).max()
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
