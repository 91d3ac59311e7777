//! `plinth demo` (issue 20, item 4): on a fresh database and data dir it makes an
//! account whose user signs in with the printed credentials and finds every section of
//! the web app's `/app` filled (the GraphQL fields each page of web/src/routes/app reads);
//! a second run refuses (the address has an account) and says what to do; production
//! refuses it before connecting anywhere. Without `--json`, standard output is the
//! password alone.
use crate::helpers::TestApp;
use serde_json::{json, Value};

const ESC: char = '\u{1b}';

#[tokio::test]
async fn demo_account_signs_in_and_every_section_is_filled() {
    let app = TestApp::spawn().await;
    let out = app.cli(&["demo", "--json"]).env("RUST_LOG", "info").output().await.unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "plinth demo failed:\n{stderr}");
    assert!(!stdout.contains(ESC) && !stderr.contains(ESC));
    let made: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}"));
    let password = made["password"].as_str().expect("a password");
    assert!(password.len() >= 16, "{made}");
    assert!(!stderr.contains(password), "the password never reaches the logs");
    assert!(made["url"].as_str().is_some_and(|u| u.starts_with("http")), "{made}");

    let login = app
        .gql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
            json!({ "i": { "email": made["email"], "password": password } }),
        )
        .await;
    let token = login["data"]["login"]["accessToken"].as_str().unwrap_or_else(|| panic!("{login}")).to_owned();
    // Every page of /app a user sees (the staff and admin pages are not theirs), by the
    // fields it reads: overview (dashboard), onboarding (me, marketplaceAccounts, drafts,
    // jobs), drafts, jobs, marketplaces, usage, activity, notifications, invoices, billing
    // (billing, plans), tokens (apiTokens), support (tickets), sessions, settings (me,
    // emailPreferences). Left empty on purpose: imports (a demo has imported nothing),
    // settings' data exports (none asked for) and support's access log (no ticket
    // granted staff access).
    let r = app
        .gql(
            Some(&token),
            "{ me { email emailVerified }
               dashboard { drafts { total } jobs { queued running succeeded failed canceled }
                           photoCount storageBytes connectedAccounts recentActivity { action } }
               drafts(first: 50) { nodes { title description priceCents photos { url contentType width } } }
               jobs(first: 50) { nodes { status logs { message } } }
               notifications { id }
               invoices(first: 50) { nodes { number status } }
               marketplaceAccounts { id }
               tickets(first: 10) { nodes { subject messages { body } } }
               usage { metric used limit }
               activity(first: 50) { edges { node { action } } }
               billing { plan state }
               plans { code }
               sessions { id current }
               apiTokens { name scopes revokedAt }
               emailPreferences { onboarding }
               imports { id }
               dataExports { id }
               supportAccessLog(first: 10) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let d = &r["data"];

    let drafts = d["drafts"]["nodes"].as_array().unwrap();
    assert!(drafts.len() >= 3, "{r}");
    for draft in drafts {
        assert!(!draft["description"].as_str().unwrap().is_empty() && draft["priceCents"].is_i64(), "{draft}");
        let photos = draft["photos"].as_array().unwrap();
        assert!(!photos.is_empty(), "a draft without photos: {draft}");
        for p in photos {
            let url = p["url"].as_str().expect("a photo URL");
            let url = if url.starts_with('/') { app.url(url) } else { url.to_owned() };
            let got = reqwest::get(&url).await.unwrap();
            assert_eq!(got.status(), 200, "{url}");
            let ct = got.headers()["content-type"].to_str().unwrap().to_owned();
            assert!(ct.starts_with("image/"), "{url}: {ct}");
            let bytes = got.bytes().await.unwrap();
            assert!(bytes.starts_with(b"\x89PNG"), "{url}: not a PNG");
        }
    }

    let jobs = d["jobs"]["nodes"].as_array().unwrap();
    for status in ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED"] {
        let job = jobs.iter().find(|j| j["status"] == status).unwrap_or_else(|| panic!("no {status} job: {r}"));
        assert!(!job["logs"].as_array().unwrap().is_empty() || status == "QUEUED", "{job}");
    }
    assert!(!d["notifications"].as_array().unwrap().is_empty(), "{r}");
    let invoices = d["invoices"]["nodes"].as_array().unwrap();
    assert!(!invoices.is_empty() && invoices.iter().all(|i| i["status"] == "paid"), "{r}");
    assert!(!d["marketplaceAccounts"].as_array().unwrap().is_empty(), "{r}");
    let tickets = d["tickets"]["nodes"].as_array().unwrap();
    assert!(tickets.len() == 1 && tickets[0]["messages"].as_array().unwrap().len() >= 2, "{r}");

    // The overview: every count and the recent activity.
    let dash = &d["dashboard"];
    assert!(dash["drafts"]["total"].as_i64() >= Some(3), "{dash}");
    for status in ["queued", "running", "succeeded", "failed", "canceled"] {
        assert!(dash["jobs"][status].as_i64() >= Some(1), "no {status} job on the dashboard: {dash}");
    }
    assert!(dash["photoCount"].as_i64() >= Some(1) && dash["storageBytes"].as_i64() > Some(0), "{dash}");
    assert!(dash["connectedAccounts"].as_i64() >= Some(1), "{dash}");
    assert!(!dash["recentActivity"].as_array().unwrap().is_empty(), "{dash}");
    // Usage: the connected account and the photos' bytes count against the plan.
    let usage = d["usage"].as_array().unwrap();
    let used = |metric: &str| usage.iter().find(|u| u["metric"] == metric).and_then(|u| u["used"].as_i64());
    assert!(used("CONNECTED_ACCOUNTS") >= Some(1) && used("STORAGE_BYTES") > Some(0), "{r}");
    // The activity log holds the demo's steps, the API token's creation among them.
    let actions: Vec<&str> =
        d["activity"]["edges"].as_array().unwrap().iter().filter_map(|e| e["node"]["action"].as_str()).collect();
    assert!(actions.contains(&"api_token.create"), "{actions:?}");
    // Billing: a plan and a state, and the plans to choose from.
    assert!(d["billing"]["plan"].is_string() && d["billing"]["state"].is_string(), "{r}");
    assert!(!d["plans"].as_array().unwrap().is_empty(), "{r}");
    // Sessions: the demo's registration and this sign-in.
    let sessions = d["sessions"].as_array().unwrap();
    assert!(sessions.len() >= 2 && sessions.iter().any(|s| s["current"] == true), "{r}");
    // API tokens: the demo's integration, live.
    let tokens = d["apiTokens"].as_array().unwrap();
    assert!(
        tokens.len() == 1
            && tokens[0]["name"] == "Demo integration"
            && !tokens[0]["scopes"].as_array().unwrap().is_empty()
            && tokens[0]["revokedAt"].is_null(),
        "{r}"
    );
    assert!(made["apiTokenId"].is_string(), "{made}");
    // Settings: the profile and the e-mail preferences.
    assert_eq!(d["me"]["email"], made["email"], "{r}");
    assert!(d["emailPreferences"]["onboarding"].is_boolean(), "{r}");
    // Empty on purpose (see above).
    assert_eq!(d["imports"], json!([]), "{r}");
    assert_eq!(d["dataExports"], json!([]), "{r}");
    assert_eq!(d["supportAccessLog"]["edges"], json!([]), "{r}");

    // Run again: refused, nothing on stdout, the message says what to do.
    let again = app.cli(&["demo", "--json"]).output().await.unwrap();
    let err = String::from_utf8(again.stderr).unwrap();
    assert_eq!(again.status.code(), Some(1), "{err}");
    assert!(again.stdout.is_empty());
    assert!(err.contains("has an account already") && err.contains("--email"), "{err}");
    // Another address makes another demo account; without --json, standard output is
    // its password alone (how to sign in on standard error), and it signs in.
    let other = app.cli(&["demo", "--email", "demo2@example.com"]).output().await.unwrap();
    let err = String::from_utf8(other.stderr).unwrap();
    assert!(other.status.success(), "{err}");
    let stdout = String::from_utf8(other.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout:?}");
    assert!(err.contains("demo2@example.com") && err.contains("sign in at"), "{err}");
    let login = app
        .gql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
            json!({ "i": { "email": "demo2@example.com", "password": lines[0] } }),
        )
        .await;
    assert!(login["data"]["login"]["accessToken"].is_string(), "{login}");
}

#[tokio::test]
async fn demo_is_refused_in_production() {
    let app = TestApp::spawn().await;
    let out = app.cli(&["demo", "--json"]).env("PLINTH_ENV", "production").output().await.unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "{err}");
    assert!(out.stdout.is_empty());
    assert!(err.contains("development only") || err.contains("PLINTH_"), "{err}");
    let users: (i64,) =
        sqlx::query_as("SELECT count(*) FROM users WHERE email = 'demo@example.com'").fetch_one(&app.db).await.unwrap();
    assert_eq!(users.0, 0);
}
