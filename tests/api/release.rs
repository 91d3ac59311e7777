//! The release/run split: the previous release keeps working on the next schema (its
//! GraphQL documents validate after migrating), and in production `plinth serve` and
//! `plinth mailer` connect as the runtime role only, never migrate, and refuse a schema
//! that lacks one of their migrations, naming it.
use crate::helpers::{sendgrid::FakeSendGrid, stripe::FakeStripe, TestApp};
use serde_json::{json, Value};
use std::time::Duration;

/// The operations of a GraphQL document: `(kind, name)` of each `query Name`,
/// `mutation Name` and `subscription Name` at the start of a line.
fn operations(document: &str) -> Vec<(String, String)> {
    document
        .lines()
        .filter_map(|line| {
            let mut words = line.trim_start().split(|c: char| c.is_whitespace() || c == '(' || c == '{');
            let kind = words.next()?;
            if !matches!(kind, "query" | "mutation" | "subscription") || line.starts_with(' ') {
                return None;
            }
            let name = words.find(|w| !w.is_empty())?;
            Some((kind.to_owned(), name.to_owned()))
        })
        .collect()
}

/// Every fragment definition of `documents`, by name: `fragment Name on Type { ... }`
/// up to its closing brace.
fn fragments(documents: &[String]) -> std::collections::HashMap<String, String> {
    let mut all = std::collections::HashMap::new();
    for document in documents {
        let mut current: Option<(String, String, i32)> = None;
        for line in document.lines() {
            if current.is_none() {
                if let Some(rest) = line.strip_prefix("fragment ") {
                    let name = rest.split_whitespace().next().unwrap_or_default().to_owned();
                    current = Some((name, String::new(), 0));
                }
            }
            if let Some((name, text, depth)) = &mut current {
                text.push_str(line);
                text.push('\n');
                *depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
                if *depth == 0 && text.contains('{') {
                    all.insert(name.clone(), std::mem::take(text));
                    current = None;
                }
            }
        }
    }
    all
}

/// `document` with the fragments it spreads (transitively) but defines in another file,
/// as the web app's code generator resolves them.
fn with_fragments(document: &str, all: &std::collections::HashMap<String, String>) -> String {
    let mut text = document.to_owned();
    loop {
        let spread: Vec<String> = text
            .split("...")
            .skip(1)
            .map(|rest| rest.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect())
            .filter(|name: &String| !name.is_empty() && name != "on")
            .collect();
        let missing: Vec<&String> = spread
            .iter()
            .filter(|name| !text.contains(&format!("fragment {name} ")) && all.contains_key(*name))
            .collect();
        if missing.is_empty() {
            return text;
        }
        let mut added = std::collections::BTreeSet::new();
        for name in missing {
            if added.insert(name.clone()) {
                text = format!("{text}\n{}", all[name]);
            }
        }
    }
}

#[tokio::test]
async fn the_previous_releases_documents_validate_and_run_after_migrating() {
    // The test database is migrated to this binary's schema; the documents are the
    // previous release's web app.
    let app = TestApp::spawn().await;
    let user = app.register("previous-release").await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/fixtures/previous-release");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "graphql"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the fixture holds the web app's documents: {files:?}");
    let documents: Vec<String> = files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect();
    let shared = fragments(&documents);
    let mut ran = 0;
    let mut failures = Vec::new();
    for (file, document) in files.iter().zip(&documents) {
        let document = with_fragments(document, &shared);
        let ops = operations(&document);
        assert!(!ops.is_empty(), "{}: no operation found", file.display());
        for (kind, name) in ops {
            // Subscriptions are served on the socket; over HTTP the document is still
            // validated before the transport is refused.
            let body = json!({ "query": document, "operationName": name, "variables": {} });
            let resp = app.http().post(app.url("/graphql")).bearer_auth(&user.access).json(&body).send().await.unwrap();
            let status = resp.status();
            let answer: Value = resp.json().await.unwrap_or_else(|e| panic!("{name}: {status}: not JSON: {e}"));
            ran += 1;
            for error in answer["errors"].as_array().into_iter().flatten() {
                // async-graphql validates the document before it looks at the transport:
                // this refusal of a subscription over HTTP says it validated.
                if kind == "subscription" && error["message"] == "Subscriptions are not supported on this transport." {
                    continue;
                }
                if error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED" {
                    failures.push(format!("{kind} {name} ({}): {}", file.display(), error["message"]));
                }
            }
        }
    }
    assert!(ran >= 50, "only {ran} operations ran");
    assert!(failures.is_empty(), "the previous release's documents no longer validate:\n{}", failures.join("\n"));
}

/// The first migration of this binary the database lacks once its most recent one is
/// forgotten (as a database one release behind looks), and that migration's name.
async fn forget_the_last_migration(app: &TestApp) -> String {
    let (last,): (String,) = sqlx::query_as("SELECT version FROM seaql_migrations ORDER BY version DESC LIMIT 1")
        .fetch_one(&app.db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM seaql_migrations WHERE version = $1").bind(&last).execute(&app.db).await.unwrap();
    last
}

/// Runs `plinth <command>` with exactly `env`; its exit status and standard error, or
/// None when it still runs after 60 s (it did not refuse).
async fn refused(command: &str, env: &std::collections::HashMap<String, String>) -> (bool, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_plinth"))
        .arg(command)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "error")
        .envs(env)
        .env("PLINTH_ADDR", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .unwrap_or_else(|_| panic!("plinth {command} still runs on a schema that is behind"))
        .unwrap();
    let mut text = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await.unwrap();
    (status.success(), text)
}

#[tokio::test]
async fn in_production_serve_and_mailer_refuse_a_schema_behind_naming_the_migration() {
    let (stripe, sendgrid) = (FakeStripe::start().await, FakeSendGrid::start().await);
    // A production instance starts as plinth_app alone (no owner URL given) on a current schema.
    let app = TestApp::builder().in_production(&stripe, &sendgrid).spawn().await;
    assert_eq!(app.http().get(app.url("/readyz")).send().await.unwrap().status(), 200);
    let env = app.env();
    assert!(!env.contains_key("DATABASE_URL") || env["DATABASE_URL"].is_empty(), "no owner URL");

    let last = forget_the_last_migration(&app).await;
    for command in ["serve", "mailer"] {
        let (ok, stderr) = refused(command, &env).await;
        assert!(!ok, "plinth {command} started on a schema that is behind: {stderr}");
        let line = format!("migration {last} is not applied");
        assert!(stderr.contains(&line), "plinth {command} did not name the migration ({line}): {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
    // Neither migrated by itself: the migration is still missing.
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM seaql_migrations WHERE version = $1")
        .bind(&last)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(n, 0, "a runtime process migrated");

    // Before the runtime role may read the history, the migration granting it is the
    // first one missing.
    sqlx::query("REVOKE SELECT (version) ON seaql_migrations FROM plinth_app").execute(&app.db).await.unwrap();
    let (ok, stderr) = refused("serve", &env).await;
    assert!(!ok && stderr.contains("migration m20261204_000201_read_migration_history is not applied"), "{stderr}");
}

/// Runs `plinth doctor` (with `--json` when asked) with exactly `env`: whether it
/// exited 0, and its standard output.
async fn doctor(env: &std::collections::HashMap<String, String>, json: bool) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_plinth"));
    cmd.arg("doctor").env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default()).envs(env);
    if json {
        cmd.arg("--json");
    }
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output()).await.expect("doctor finished").unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap())
}

/// The checks `plinth doctor --json` printed, by name: (ok, detail).
pub(crate) async fn doctor_checks(
    env: &std::collections::HashMap<String, String>,
) -> (bool, Vec<(String, bool, String)>) {
    let (ok, stdout) = doctor(env, true).await;
    let checks: Vec<Value> =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not a JSON array ({e}): {stdout}"));
    let checks = checks
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_owned(),
                c["ok"].as_bool().unwrap(),
                c["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (ok, checks)
}

/// The names of the failed checks.
fn failed(checks: &[(String, bool, String)]) -> Vec<&str> {
    checks.iter().filter(|c| !c.1).map(|c| c.0.as_str()).collect()
}

#[tokio::test]
async fn doctor_passes_a_sound_production_configuration_and_names_each_broken_setting() {
    let (stripe, sendgrid) = (FakeStripe::start().await, FakeSendGrid::start().await);
    let app = TestApp::builder().in_production(&stripe, &sendgrid).spawn().await;
    let mut env = app.env();
    // The account's own prices instead of the built-in catalog's placeholders.
    let placeholders = env["PLINTH_PLANS_FILE"].clone();
    let plans = std::fs::read_to_string(&placeholders).unwrap().replace("\"price_", "\"price_1Qx7Test");
    let priced = app.data_dir.join("priced-plans.toml");
    std::fs::write(&priced, plans).unwrap();
    env.insert("PLINTH_PLANS_FILE".into(), priced.display().to_string());

    let (ok, checks) = doctor_checks(&env).await;
    assert!(failed(&checks).is_empty(), "failed checks: {checks:?}");
    assert!(ok, "exit status");
    for name in [
        "env.PLINTH_ENV",
        "env.REDIS_URL",
        "config",
        "keys.token",
        "keys.credentials",
        "stripe.prices",
        "database",
        "database.role",
        "database.schema",
        "redis",
        "s3",
        "mail",
    ] {
        assert!(checks.iter().any(|c| c.0 == name), "no {name} check: {checks:?}");
    }
    // One line per check without --json, and nothing secret in them.
    let (ok, text) = doctor(&env, false).await;
    assert!(ok);
    assert_eq!(text.lines().count(), checks.len(), "{text}");
    assert!(text.lines().all(|l| l.starts_with("ok ")), "{text}");
    for secret in ["PLINTH_TOKEN_KEY", "PLINTH_CREDENTIALS_KEY", "PLINTH_S3_SECRET_KEY"] {
        let value = &env[secret];
        let tail = &value[value.len() - 12..];
        assert!(!text.contains(tail), "{secret}'s value was printed");
    }

    // Each broken setting fails its own check, and the exit status.
    let bad_token_key = format!("ed25519-private/{}", "zz".repeat(32));
    let bad_credentials_key = format!("{}g{}", "0a".repeat(20), "b".repeat(23));
    let broken: [(&str, &str, &str); 7] = [
        ("PLINTH_SENDGRID_API_KEY", "SG.revoked-key", "mail"),
        // Keys present but malformed: not an Ed25519 key, not 64 hex digits.
        ("PLINTH_TOKEN_KEY", &bad_token_key, "keys.token"),
        ("PLINTH_CREDENTIALS_KEY", &bad_credentials_key, "keys.credentials"),
        ("PLINTH_PLANS_FILE", &placeholders, "stripe.prices"),
        // The superuser as the runtime role: row-level security would not apply.
        ("PLINTH_APP_DATABASE_URL", &crate::helpers::admin_url(&app.database), "database.role"),
        ("PLINTH_S3_SECRET_KEY", "not-the-secret", "s3"),
        ("REDIS_URL", "redis://127.0.0.1:1", "redis"),
    ];
    for (var, value, check) in broken {
        let mut env = env.clone();
        env.insert(var.into(), value.into());
        let (ok, checks) = doctor_checks(&env).await;
        assert!(!ok, "{var} broken, yet doctor exited 0: {checks:?}");
        assert_eq!(failed(&checks), vec![check], "{var} broken: {checks:?}");
        if check.starts_with("keys.") {
            // A clear line: the variable named, and nothing of its value.
            let detail = &checks.iter().find(|c| c.0 == check).unwrap().2;
            assert!(detail.contains(var), "{check}: {detail}");
            assert!(!detail.contains(&value[value.len() - 12..]) && !detail.contains("'g'"), "{check}: {detail}");
            let (_, text) = doctor(&env, false).await;
            let line = text.lines().find(|l| l.contains(check)).unwrap_or_else(|| panic!("no {check} line: {text}"));
            assert!(!line.starts_with("ok ") && line.contains(var), "{line}");
        }
    }
    // A missing variable is named, and stops the checks that need the configuration.
    let mut env_missing = env.clone();
    env_missing.remove("PLINTH_TOKEN_KEY");
    let (ok, checks) = doctor_checks(&env_missing).await;
    assert!(!ok);
    assert_eq!(failed(&checks), vec!["env.PLINTH_TOKEN_KEY", "config"], "{checks:?}");
    // A schema behind this release.
    let last = forget_the_last_migration(&app).await;
    let (ok, checks) = doctor_checks(&env).await;
    assert!(!ok);
    assert_eq!(failed(&checks), vec!["database.schema"], "{checks:?}");
    let schema = checks.iter().find(|c| c.0 == "database.schema").unwrap();
    assert!(schema.2.contains(&last), "{schema:?}");
}

#[tokio::test]
async fn sigterm_drains_a_request_in_flight_closes_sockets_to_reconnect_and_exits_0() {
    use crate::helpers::{WsClient, WsEvent};
    let stripe = FakeStripe::start().await;
    let mut app = TestApp::builder().with_stripe(&stripe).in_its_own_process().spawn().await;
    let user = app.register("drain").await;
    let mut socket = WsClient::connect(&app, Some(&user.access)).await;
    socket.subscribe("1", "subscription { notificationAdded { id } }", json!({})).await;

    // A request in flight: the checkout waits on Stripe until released.
    let mut hold = stripe.hold("POST /v1/checkout/sessions");
    let request = app
        .http()
        .post(app.url("/graphql"))
        .bearer_auth(&user.access)
        .json(&json!({
            "query": "mutation($i: StartCheckoutInput!) { startCheckout(input: $i) { url } }",
            "variables": { "i": { "plan": "PRO", "interval": "MONTH" } }
        }))
        .send();
    let in_flight = tokio::spawn(request);
    hold.arrived().await;

    // A new connection (a client without a pooled one) is answered before SIGTERM...
    let fresh = || async {
        let client =
            reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(2)).build().unwrap();
        client.get(app.url("/healthz")).send().await
    };
    assert_eq!(fresh().await.expect("a new connection before SIGTERM").status(), 200);

    let pid = app.pid().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    // The socket is told to reconnect (1012, service restart), while the request waits.
    match socket.next(Duration::from_secs(20)).await {
        WsEvent::Closed(code) => assert_eq!(code, 1012, "close code"),
        other => panic!("the socket got {other:?} instead of its close"),
    }
    // ...and refused once the drain started (the listener is closed), while the request
    // in flight still waits: the server stopped accepting.
    // (A connection made just as the listener closes may be reset instead: tried again.)
    let mut answered = Vec::new();
    let refused = loop {
        match fresh().await {
            Err(e) if e.is_connect() => break true,
            _ if answered.len() >= 50 => break false,
            other => {
                answered.push(other.map(|r| r.status().to_string()).unwrap_or_else(|e| format!("{e}")));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert!(refused, "new connections still accepted during the drain: {answered:?}");
    assert!(!in_flight.is_finished(), "the request in flight ended before Stripe answered");
    assert!(app.wait_exit(Duration::from_millis(1)).await.is_none(), "the process left a request in flight");
    hold.release();
    let resp = in_flight.await.unwrap().expect("the request in flight got its answer");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body["data"]["startCheckout"]["url"].is_string(), "{body}");
    let status = app.wait_exit(Duration::from_secs(30)).await.expect("the process exited after draining");
    assert!(status.success(), "exit status {status}");
}
