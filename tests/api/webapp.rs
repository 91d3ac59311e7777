//! The web app as the server serves it (web/README.md, "Serving the build"): pages,
//! the SPA shell, caching, precompressed variants, revalidation and security headers.
use crate::helpers::TestApp;
use reqwest::{header, StatusCode};

/// The web app's account operations (`verifyEmail`, `resetPassword` ...), as its pages send them.
pub const ACCOUNT_OPERATIONS: &str = include_str!("../../web/src/lib/features/account/account.graphql");

/// The bytes of a file of the embedded build.
fn built(path: &str) -> Vec<u8> {
    plinth_webapp::file(path).unwrap_or_else(|| panic!("{path} is not in the build")).0.into_owned()
}

/// Asserts that `path` answers the SPA shell (`200.html`), as an HTML page with status 200.
pub async fn assert_serves_the_shell(app: &TestApp, path: &str) {
    let resp = app.http().get(app.url(path)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8", "{path}");
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-cache", "{path}");
    assert_eq!(resp.bytes().await.unwrap(), built("200.html"), "{path} is not the SPA shell");
}

/// The first `/_app/immutable/...` script the landing page loads.
fn an_immutable_asset() -> String {
    let html = String::from_utf8(built("200.html")).unwrap();
    let start = html.find("/_app/immutable/").expect("the shell loads immutable assets");
    let end = start + html[start..].find(['"', '\'']).unwrap();
    html[start..end].to_owned()
}

#[tokio::test]
async fn pages_are_prerendered_files_and_other_paths_boot_the_shell() {
    let app = TestApp::spawn().await;
    for (path, file) in [("/", "index.html"), ("/pricing", "pricing.html"), ("/en/pricing", "en/pricing.html")] {
        let resp = app.http().get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(resp.bytes().await.unwrap(), built(file), "{path} is {file}");
    }
    for path in
        ["/app", "/app/drafts/0190f7a4-0000-7000-8000-000000000000", "/login", "/en/login", "/reset-password?token=x"]
    {
        assert_serves_the_shell(&app, path).await;
    }
    // Client-side navigation to the pricing page reads its data file.
    let data = app.http().get(app.url("/pricing/__data.json")).send().await.unwrap();
    assert_eq!(data.headers()[header::CONTENT_TYPE], "application/json");
    // A trailing slash redirects to the page (trailingSlash 'never'), query kept.
    let client = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let slash = client.get(app.url("/pricing/?interval=year")).send().await.unwrap();
    assert_eq!(slash.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(slash.headers()[header::LOCATION], "/pricing?interval=year");
}

#[tokio::test]
async fn missing_assets_and_api_paths_are_404_never_the_shell() {
    let app = TestApp::spawn().await;
    for path in ["/_app/immutable/chunks/gone.js", "/missing.png", "/webhooks/nope", "/auth/nope", "/storage"] {
        let resp = app.http().get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // The API's own routes keep their methods.
    let get_login = app.http().get(app.url("/auth/login")).send().await.unwrap();
    assert_eq!(get_login.status(), StatusCode::METHOD_NOT_ALLOWED);
    let post_page = app.http().post(app.url("/pricing")).send().await.unwrap();
    assert_eq!(post_page.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(app.http().get(app.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn hashed_assets_are_immutable_and_the_rest_revalidates() {
    let app = TestApp::spawn().await;
    let asset = an_immutable_asset();
    let resp = app.http().get(app.url(&asset)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{asset}");
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
    for path in ["/", "/_app/version.json", "/favicon.svg"] {
        let resp = app.http().get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-cache", "{path}");
    }
    // Revalidation: the ETag answers 304 without a body; another one the file.
    let page = app.http().get(app.url("/pricing")).send().await.unwrap();
    let etag = page.headers()[header::ETAG].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
    let again = app.http().get(app.url("/pricing")).header(header::IF_NONE_MATCH, &etag).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()[header::ETAG], etag.as_str());
    assert!(again.bytes().await.unwrap().is_empty());
    let stale = app.http().get(app.url("/pricing")).header(header::IF_NONE_MATCH, "\"0\"").send().await.unwrap();
    assert_eq!(stale.status(), StatusCode::OK);
}

#[tokio::test]
async fn precompressed_variants_follow_accept_encoding() {
    let app = TestApp::spawn().await;
    let get = |encoding: &'static str| {
        let req = app.http().get(app.url("/"));
        async move {
            let req = if encoding.is_empty() { req } else { req.header(header::ACCEPT_ENCODING, encoding) };
            req.send().await.unwrap()
        }
    };
    let mut etags = Vec::new();
    for (accept, encoding, file) in [
        ("gzip, deflate, br, zstd", Some("br"), "index.html.br"),
        ("gzip", Some("gzip"), "index.html.gz"),
        ("br;q=0, gzip;q=0.8", Some("gzip"), "index.html.gz"),
        ("identity", None, "index.html"),
        ("", None, "index.html"),
    ] {
        let resp = get(accept).await;
        let headers = resp.headers().clone();
        assert_eq!(headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap()), encoding, "{accept:?}");
        assert_eq!(headers[header::VARY], "Accept-Encoding");
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        etags.push(headers[header::ETAG].to_str().unwrap().to_owned());
        assert_eq!(resp.bytes().await.unwrap(), built(file), "{accept:?} answers {file}");
    }
    assert_eq!(&built("index.html.gz")[..2], &[0x1f, 0x8b], "a gzip stream");
    assert_ne!(etags[0], etags[1], "each variant has its own ETag");
    assert_ne!(etags[1], etags[3]);
}

#[tokio::test]
async fn every_answer_of_the_web_app_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    for path in ["/", "/app", "/en/pricing", "/_app/version.json", "/missing.png"] {
        let resp = app.http().get(app.url(path)).send().await.unwrap();
        let h = resp.headers();
        assert_eq!(
            h["content-security-policy"], "frame-ancestors 'none'; base-uri 'self'; object-src 'none'",
            "{path}"
        );
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        assert_eq!(h[header::REFERRER_POLICY], "strict-origin-when-cross-origin", "{path}");
    }
    // Each page's own policy (a meta element) allows its scripts by hash, never inline.
    let shell = String::from_utf8(built("200.html")).unwrap();
    assert!(shell.contains("http-equiv=\"content-security-policy\""), "the shell has its meta policy");
    assert!(shell.contains("script-src 'self' 'sha256-") && !shell.contains("script-src 'self' 'unsafe-inline'"));
}
