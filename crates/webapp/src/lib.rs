//! The web app's build (`web/`, SvelteKit with the static adapter), embedded in the
//! binary: [`file`] answers the bytes and SHA-256 of one of its files by path
//! (`index.html`, `en/pricing.html`, `_app/immutable/...`, `200.html`, each with its
//! `.br` and `.gz` siblings). Serving them (paths, caching, compression, headers) is
//! `api::http::webapp`'s job.
//!
//! How the built files reach the binary, and why:
//!
//! - **Built by this crate's build script, not committed.** A fresh clone must run with
//!   `cargo run --release` alone. Committed build output would need a CI check that it
//!   matches a fresh build, and would put megabytes of minified, hashed files into every
//!   change of the app; a machine that builds Plinth has Node 20 and the npm registry
//!   anyway (the tests need them). So `build.rs` runs `npm ci` (only when
//!   `web/node_modules` is missing or older than `package-lock.json`) and `npm run build`
//!   (only when a source is newer than the last build: `web/build/200.html`), then copies
//!   `web/build` under `OUT_DIR`. It asks Cargo to run it again when `web/src`,
//!   `web/static`, `web/scripts`, the package and config files, `../schema.graphql` or
//!   `../plans.toml` change. Without npm it stops with a message saying what to install.
//! - **A copy under `OUT_DIR`.** Each target dir embeds its own snapshot, taken under a
//!   lock (`web/.build.lock`) that every build of this checkout takes, so a second build
//!   running beside (another target dir, scripts/test's own `npm run build`) never
//!   embeds a half-written folder.
//! - **Embedded in every profile** (`rust-embed` with `debug-embed`): without it, debug
//!   builds read the files at run time from the path the build machine had, which breaks
//!   as soon as that checkout is gone (target dirs are shared between checkouts here: CI
//!   clones into a temporary folder that it deletes). Nothing in this crate names a
//!   compile-time path that is read at run time; the build script reads
//!   `CARGO_MANIFEST_DIR` when it runs, never through `env!`.
//! - **Its own crate**, a dependency of the binary only (not of `api`): a change of the
//!   web app recompiles this small crate and relinks the binary, never the `api` library.
//!
//! What it costs, measured on the 2-core machine while other builds ran (load 6 to 10):
//! a fresh clone's first build of this crate 57 s with an empty npm cache (`npm ci`,
//! `npm run build`, embedding; 17 s + 11 s for npm on a quiet machine), 69 s with a warm
//! cache under heavier load; after a change to one web source 25 s (`npm run build` and
//! this crate); nothing changed, 0.3 s (Cargo does not run the script). The build is
//! about 2 MB (304 files with their `.br`/`.gz` siblings), embedded as it is, plus
//! about 3 MB for the API explorer at `GET /graphql` (`graphiql/`: GraphiQL's and
//! React's browser files and their siblings, copied by `web/scripts/graphiql.mjs`).
#![forbid(unsafe_code)]

use std::borrow::Cow;

#[derive(rust_embed::RustEmbed)]
#[folder = "$OUT_DIR/web"]
struct Build;

/// The bytes of the build's file at `path` (relative, no leading slash) and their
/// SHA-256; None when the build has no such file.
pub fn file(path: &str) -> Option<(Cow<'static, [u8]>, [u8; 32])> {
    Build::get(path).map(|f| (f.data, f.metadata.sha256_hash()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_has_the_shell_the_landing_page_and_their_compressed_siblings() {
        for path in ["200.html", "index.html", "en.html", "pricing.html", "_app/version.json"] {
            let (bytes, hash) = file(path).unwrap_or_else(|| panic!("{path} is not in the build"));
            assert!(!bytes.is_empty(), "{path} is empty");
            assert_ne!(hash, [0; 32]);
        }
        for sibling in ["200.html.br", "200.html.gz", "index.html.br", "index.html.gz"] {
            assert!(file(sibling).is_some(), "{sibling} is not in the build");
        }
        assert!(file("../Cargo.toml").is_none() && file("nope.html").is_none());
    }
}
