//! The web app (web/README.md, "Serving the build"): every `GET` that is not an API path
//! is answered from the build the binary embeds.
//!
//! - `/x` is the file `x` when the build has it (`/favicon.svg`, `/_app/...`,
//!   `/pricing/__data.json`), else `x.html` (prerendered pages: `/` is `index.html`,
//!   `/en/pricing` is `en/pricing.html`), else the SPA shell `200.html` with status 200
//!   (`/app/...`, `/login`, `/verify-email?token=`), except under `/_app/` or for a last
//!   segment with an extension (a missing chunk or image): 404. `/x/` redirects to `/x`
//!   (the build's `trailingSlash: 'never'`). API paths that no route took (`/auth/x`,
//!   `/webhooks/x`) are 404, never the shell.
//! - `/graphiql/...` (the API explorer's scripts and styles, GET /graphql's page) is 404
//!   when `PLINTH_GRAPHIQL` is off, like the page.
//! - `_app/immutable/**` is content-hashed: `Cache-Control: public, max-age=31536000,
//!   immutable`; everything else `no-cache` (revalidated with its `ETag`, a 304 when
//!   `If-None-Match` names it).
//! - Each file has `.br` and `.gz` siblings: the best one `Accept-Encoding` allows is sent,
//!   with `Content-Encoding` and `Vary: Accept-Encoding`. Each variant has its own ETag
//!   (the first 16 bytes of its SHA-256, in hex).
//! - The headers a `<meta>` policy cannot carry: `Content-Security-Policy: frame-ancestors
//!   'none'; base-uri 'self'; object-src 'none'` (no `script-src`: policies intersect, and
//!   each page's meta policy allows its own hashed bootstrap script), `X-Content-Type-Options:
//!   nosniff`, `Referrer-Policy: strict-origin-when-cross-origin`.
use super::HttpState;
use poem::{
    handler,
    http::{header, StatusCode},
    web::Data,
    Request, Response,
};
use std::{borrow::Cow, sync::Arc};

/// The build's files: the bytes and SHA-256 of the file at a path (relative, no leading
/// slash), None when there is no such file. The binary passes `plinth_webapp::file`.
pub type WebFiles = fn(&str) -> Option<(Cow<'static, [u8]>, [u8; 32])>;

/// Path prefixes of the API: never answered with the SPA shell.
const API_PREFIXES: &[&str] = &["/graphql", "/auth", "/storage", "/webhooks", "/healthz", "/readyz", "/metrics"];

/// The SPA shell (not `index.html`: that name is the prerendered landing page).
const SHELL: &str = "200.html";

/// The policy directives a `<meta>` cannot express (web/README.md, "Content-Security-Policy").
const FRAME_POLICY: &str = "frame-ancestors 'none'; base-uri 'self'; object-src 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// `GET` of any path no other route took.
#[handler]
pub async fn serve(req: &Request, Data(state): Data<&Arc<HttpState>>) -> Response {
    let path = req.uri().path();
    if is_api_path(path) {
        return not_found();
    }
    if path.len() > 1 && path.ends_with('/') {
        let target = match req.uri().query() {
            Some(q) => format!("{}?{q}", path.trim_end_matches('/')),
            None => path.trim_end_matches('/').to_owned(),
        };
        let target = if target.is_empty() || target.starts_with('?') { format!("/{target}") } else { target };
        return with_security_headers(Response::builder().status(StatusCode::PERMANENT_REDIRECT))
            .header(header::LOCATION, target)
            .finish();
    }
    // The API explorer's files (GET /graphql) exist only where the explorer does.
    if path.starts_with("/graphiql/") && !state.config.server.graphiql {
        return not_found();
    }
    let files = state.web;
    let Some(name) = resolve(path.trim_start_matches('/'), files) else { return not_found() };
    let encodings = accepted(req.header(header::ACCEPT_ENCODING).unwrap_or_default());
    let variant = [("br", Encoding::Brotli), ("gz", Encoding::Gzip)]
        .into_iter()
        .filter(|(_, e)| encodings.contains(e))
        .find_map(|(ext, e)| files(&format!("{name}.{ext}")).map(|f| (f, Some(e))));
    let Some(((bytes, hash), encoding)) = variant.or_else(|| files(&name).map(|f| (f, None))) else {
        return not_found();
    };
    let etag = format!("\"{}{}\"", hex::encode(&hash[..16]), encoding.map_or("", Encoding::etag_suffix));
    let cache = if name.starts_with("_app/immutable/") { IMMUTABLE } else { "no-cache" };
    let mut resp = with_security_headers(Response::builder())
        .header(header::CACHE_CONTROL, cache)
        .header(header::VARY, "Accept-Encoding")
        .header(header::ETAG, etag.as_str());
    if matches_etag(req.header(header::IF_NONE_MATCH), &etag) {
        return resp.status(StatusCode::NOT_MODIFIED).finish();
    }
    if let Some(e) = encoding {
        resp = resp.header(header::CONTENT_ENCODING, e.token());
    }
    resp.content_type(content_type(&name)).body(bytes.into_owned())
}

/// Whether `path` belongs to the API (a route of its own, or a prefix of them).
fn is_api_path(path: &str) -> bool {
    API_PREFIXES.iter().any(|p| path.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
}

/// The build's file that answers `rel` (a path without its leading slash).
fn resolve(rel: &str, files: WebFiles) -> Option<String> {
    if rel.is_empty() {
        return Some("index.html".into());
    }
    if files(rel).is_some() {
        return Some(rel.to_owned());
    }
    let page = format!("{rel}.html");
    if files(&page).is_some() {
        return Some(page);
    }
    let last = rel.rsplit('/').next().unwrap_or(rel);
    if rel.starts_with("_app/") || last.contains('.') {
        return None;
    }
    Some(SHELL.into())
}

/// A precompressed variant of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Brotli,
    Gzip,
}

impl Encoding {
    fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        }
    }

    fn etag_suffix(self) -> &'static str {
        match self {
            Encoding::Brotli => "-br",
            Encoding::Gzip => "-gz",
        }
    }
}

/// The encodings an `Accept-Encoding` value allows (RFC 9110 §12.5.3): listed with a
/// non-zero weight, or covered by `*`.
fn accepted(value: &str) -> Vec<Encoding> {
    let mut star = false;
    let mut named: Vec<(String, bool)> = Vec::new();
    for item in value.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        if coding.is_empty() {
            continue;
        }
        let allowed = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .all(|q| q.trim().parse::<f32>().map_or(true, |q| q > 0.0));
        if coding == "*" {
            star = allowed;
        } else {
            named.push((coding, allowed));
        }
    }
    [(Encoding::Brotli, "br"), (Encoding::Gzip, "gzip")]
        .into_iter()
        .filter(|(_, token)| match named.iter().find(|(c, _)| c == token || (*token == "gzip" && c == "x-gzip")) {
            Some((_, allowed)) => *allowed,
            None => star,
        })
        .map(|(e, _)| e)
        .collect()
}

/// Whether an `If-None-Match` value names `etag` (weak comparison, RFC 9110 §13.1.2).
fn matches_etag(if_none_match: Option<&str>, etag: &str) -> bool {
    if_none_match.is_some_and(|v| v.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == etag))
}

/// The media type of a build file, by extension.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("txt") => "text/plain; charset=utf-8",
        Some("xml") => "application/xml",
        Some("webmanifest") => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

fn with_security_headers(builder: poem::ResponseBuilder) -> poem::ResponseBuilder {
    builder
        .header("content-security-policy", FRAME_POLICY)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "strict-origin-when-cross-origin")
}

fn not_found() -> Response {
    with_security_headers(Response::builder().status(StatusCode::NOT_FOUND))
        .content_type("text/plain; charset=utf-8")
        .body("Not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(path: &str) -> Option<(Cow<'static, [u8]>, [u8; 32])> {
        const FILES: &[&str] = &["index.html", "pricing.html", "en/pricing.html", "pricing/__data.json", "200.html"];
        FILES.contains(&path).then(|| (Cow::Borrowed(b"x".as_slice()), [1; 32]))
    }

    #[test]
    fn paths_resolve_to_files_pages_or_the_shell() {
        let cases = [
            ("", Some("index.html")),
            ("pricing", Some("pricing.html")),
            ("en/pricing", Some("en/pricing.html")),
            ("pricing/__data.json", Some("pricing/__data.json")),
            ("app/drafts/0190", Some("200.html")),
            ("verify-email", Some("200.html")),
            ("_app/immutable/chunks/gone", None),
            ("missing.js", None),
        ];
        for (rel, want) in cases {
            assert_eq!(resolve(rel, fake).as_deref(), want, "{rel}");
        }
    }

    #[test]
    fn api_paths_are_never_the_shell() {
        for p in ["/graphql", "/graphql/x", "/auth/login", "/auth", "/webhooks/nope", "/storage/a", "/metrics"] {
            assert!(is_api_path(p), "{p}");
        }
        for p in ["/", "/authors", "/app", "/graphqlx", "/en/login"] {
            assert!(!is_api_path(p), "{p}");
        }
    }

    #[test]
    fn accept_encoding_is_read_with_weights_and_wildcards() {
        use Encoding::{Brotli, Gzip};
        assert_eq!(accepted("gzip, deflate, br, zstd"), vec![Brotli, Gzip]);
        assert_eq!(accepted("gzip"), vec![Gzip]);
        assert_eq!(accepted("br;q=0, gzip;q=0.5"), vec![Gzip]);
        assert_eq!(accepted("*"), vec![Brotli, Gzip]);
        assert_eq!(accepted("*;q=0.1, br;q=0"), vec![Gzip]);
        assert_eq!(accepted("identity"), vec![]);
        assert_eq!(accepted(""), vec![]);
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists() {
        assert!(matches_etag(Some("\"a\""), "\"a\""));
        assert!(matches_etag(Some("W/\"a\""), "\"a\""));
        assert!(matches_etag(Some("\"b\", \"a\""), "\"a\""));
        assert!(matches_etag(Some("*"), "\"a\""));
        assert!(!matches_etag(Some("\"a-br\""), "\"a\""));
        assert!(!matches_etag(None, "\"a\""));
    }
}
