//! The command line as scripts use it (issue 20): each data-printing command's standard
//! output is one JSON document with `--json`, its logs go to standard error, neither
//! carries terminal escape codes when not on a terminal; without `--json` standard output
//! is the result's values alone (`TOKEN=$(plinth admin worker-token --kinds scan)`); the
//! completion scripts parse in their shells (those installed); the operator's user
//! commands act through the staff tools and leave the staff audit, naming who ran them.
use crate::{
    helpers::{code, TestApp, TestUser},
    support::make_staff,
};
use serde_json::{json, Value};
use std::process::Output;

const ESC: char = '\u{1b}';

/// Runs `args` with the app's configuration, its Redis (the bus that tells the
/// running server) and info logs; the output.
async fn run(app: &TestApp, args: &[&str]) -> Output {
    let mut cmd = app.cli(args);
    cmd.env("RUST_LOG", "info").env("REDIS_URL", crate::helpers::redis_url()).env_remove("NO_COLOR");
    cmd.output().await.unwrap()
}

/// Waits (up to 5 s) until `token`'s request is refused as UNAUTHENTICATED: the
/// command's event reaches the server through Redis after its commit.
async fn until_refused(app: &TestApp, token: &str) {
    let started = std::time::Instant::now();
    loop {
        let r = app.gql(Some(token), "{ drafts { edges { node { id } } } }", json!({})).await;
        if code(&r) == "UNAUTHENTICATED" {
            return;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "the token is still accepted: {r}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Runs `args`, which must succeed; its standard output as JSON. Checks that neither
/// stream has escape codes and that standard output is that one document.
async fn json_of(app: &TestApp, args: &[&str]) -> (Value, String) {
    let out = run(app, args).await;
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{args:?} failed:\n{stderr}");
    assert!(!stdout.contains(ESC), "{args:?}: escape codes on stdout: {stdout:?}");
    assert!(!stderr.contains(ESC), "{args:?}: escape codes on stderr: {stderr:?}");
    let value: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}):\n{stdout}"));
    (value, stderr)
}

/// What the commands record as the operator: `cli:<OS user>@<host>`.
fn operator() -> String {
    let user = std::process::Command::new("id").arg("-un").output().unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    format!("cli:{}@{}", String::from_utf8_lossy(&user.stdout).trim(), host.trim())
}

async fn login(app: &TestApp, user: &TestUser) -> Value {
    app.gql(
        None,
        "mutation($i: LoginInput!) { login(input: $i) { accessToken refreshToken } }",
        json!({ "i": { "email": user.email, "password": user.password } }),
    )
    .await
}

/// The staff audit rows of `user_id` for `action`: (staff id, staff role, operator, reason).
async fn audit(
    app: &TestApp,
    user_id: uuid::Uuid,
    action: &str,
) -> Vec<(uuid::Uuid, String, Option<String>, Option<String>)> {
    sqlx::query_as(
        "SELECT staff_id, staff_role, operator, reason FROM support_access_log
          WHERE user_id = $1 AND action = $2 ORDER BY created_at",
    )
    .bind(user_id)
    .bind(action)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn data_commands_print_one_json_document_and_log_on_stderr() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;

    // The case: a token issued on a fresh data dir logs the new signing key.
    let (issued, logs) = json_of(&app, &["admin", "worker-token", "--kinds", "scan,prepare", "--json"]).await;
    let token = issued["token"].as_str().expect("a token");
    assert!(token.len() > 20 && !token.contains(char::is_whitespace), "{issued}");
    assert_eq!(issued["kinds"], json!(["scan", "prepare"]));
    assert!(issued["expiresAt"].is_string(), "{issued}");
    assert!(logs.contains("INFO"), "the command's logs go to standard error: {logs:?}");
    let (listed, _) = json_of(&app, &["admin", "worker-token", "list", "--json"]).await;
    assert_eq!(listed[0]["id"], issued["id"], "{listed}");
    assert!(listed[0]["revokedAt"].is_null());
    let id = issued["id"].as_str().unwrap();
    let (revoked, _) = json_of(&app, &["admin", "worker-token", "revoke", id, "--json"]).await;
    assert_eq!(revoked, json!({ "id": id, "revoked": true }));

    let (admin, _) = json_of(&app, &["admin", "create", "--email", "root@example.com", "--json"]).await;
    assert_eq!(admin["email"], "root@example.com");
    let r = app
        .gql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { user { role } } }",
            json!({ "i": { "email": "root@example.com", "password": admin["password"] } }),
        )
        .await;
    assert_eq!(r["data"]["login"]["user"]["role"], "ADMIN", "{r}");

    let (sent, _) = json_of(&app, &["mail", "test", "--to", "ops@example.com", "--json"]).await;
    assert!(sent["provider"].is_string(), "{sent}");
    let (reminded, _) = json_of(&app, &["mail", "remind", "--json"]).await;
    assert!(reminded["queued"].is_u64(), "{reminded}");

    let dir = std::env::temp_dir().join(format!("plinth-cli-export-{}", uuid::Uuid::new_v4().simple()));
    let (exported, _) =
        json_of(&app, &["export", "--user", &ann.email, "--out", dir.to_str().unwrap(), "--json"]).await;
    assert_eq!(exported["user"], ann.email.as_str());
    assert!(exported["counts"].is_object(), "{exported}");
    let _ = std::fs::remove_dir_all(&dir);

    // doctor: an array of checks whatever they find (exit 1 when one fails).
    let out = run(&app, &["doctor", "--json"]).await;
    let checks: Value = serde_json::from_slice(&out.stdout).expect("doctor --json prints JSON");
    assert!(checks.as_array().is_some_and(|c| !c.is_empty() && c[0]["check"].is_string()), "{checks}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(ESC));

    for shell in ["bash", "zsh", "fish"] {
        let out = run(&app, &["completions", shell]).await;
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success() && script.contains("grant-credit"), "{shell}: {script:.200}");
        parses_in(shell, &script, &app.data_dir.join(format!("plinth.{shell}")));
    }
}

/// Checks that `script` parses in `shell` (written to `path`, checked without running
/// it: `bash -n`, `zsh -n`, `fish --no-execute`), when that shell is installed; says so
/// and skips when it is not.
fn parses_in(shell: &str, script: &str, path: &std::path::Path) {
    std::fs::write(path, script).unwrap();
    let check = if shell == "fish" { "--no-execute" } else { "-n" };
    match std::process::Command::new(shell).arg(check).arg(path).output() {
        Ok(out) => assert!(
            out.status.success(),
            "{shell} {check}: the completion script does not parse:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert_ne!(shell, "bash", "bash is needed to check the bash completions");
            println!("skipped: {shell} is not installed, so its completion script's syntax is not checked");
        }
        Err(e) => panic!("running {shell}: {e}"),
    }
}

#[tokio::test]
async fn colours_never_reach_a_pipe_even_with_pretty_logs() {
    let app = TestApp::spawn().await;
    let out = app
        .cli(&["admin", "worker-token", "--kinds", "scan"])
        .env("RUST_LOG", "info")
        .env("PLINTH_LOG_FORMAT", "pretty")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(!stdout.contains(ESC) && !stderr.contains(ESC), "{stdout:?} {stderr:?}");
    assert!(!stdout.contains("INFO"), "no log on stdout: {stdout:?}");
    // `TOKEN=$(plinth admin worker-token --kinds scan)`: standard output is one line, the
    // token; the sentence that explains it is on standard error.
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout:?}");
    let token = lines[0];
    assert!(token.len() > 20 && !token.contains(char::is_whitespace), "{stdout:?}");
    assert!(stderr.contains("may claim scan") && !stderr.contains(token), "{stderr:?}");
    // The token works: a worker claims with it (nothing queued, no error).
    let claimed = app.gql(Some(token), "mutation { claimJob(kinds: [SCAN]) { id } }", json!({})).await;
    assert!(claimed.get("errors").is_none() && claimed["data"]["claimJob"].is_null(), "{claimed}");
}

/// Runs `args`, which must succeed; (standard output, standard error).
async fn plain(app: &TestApp, args: &[&str]) -> (String, String) {
    let out = run(app, args).await;
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{args:?}: {stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

/// Without `--json`, standard output holds the result's values alone (a password, a
/// count, rows), never a sentence: those go to standard error.
#[tokio::test]
async fn plain_output_is_the_result_alone() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let (password, err) = plain(&app, &["admin", "create", "--email", "root@example.com"]).await;
    assert_eq!(password.lines().count(), 1, "{password:?}");
    assert!(err.contains("root@example.com") && !err.contains(password.trim()), "{err}");
    let r = app
        .gql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { user { role } } }",
            json!({ "i": { "email": "root@example.com", "password": password.trim() } }),
        )
        .await;
    assert_eq!(r["data"]["login"]["user"]["role"], "ADMIN", "{r}");
    let (queued, err) = plain(&app, &["mail", "remind"]).await;
    assert!(queued.trim().parse::<u64>().is_ok() && err.contains("reminders queued"), "{queued:?} {err}");
    let out = run(&app, &["user", "revoke-sessions", &ann.email]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim().parse::<u64>().ok(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("session(s) ended"));
}

#[tokio::test]
async fn operator_user_commands_act_through_the_staff_tools_and_are_audited() {
    let app = TestApp::builder().with_redis().spawn().await;
    let ann = app.register("ann").await;
    let mut bob = app.register("bob").await;
    let me = operator();

    // Without an administrator there is no one to act as.
    let out = run(&app, &["user", "find", &ann.email, "--json"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("plinth admin create"), "{out:?}");

    let (admin, _) = json_of(&app, &["admin", "create", "--email", "root@example.com", "--json"]).await;
    let admin_id: uuid::Uuid = admin["id"].as_str().unwrap().parse().unwrap();

    let (found, _) = json_of(&app, &["user", "find", &ann.email, "--json"]).await;
    assert_eq!(found["id"], ann.id.to_string());
    assert_eq!(found["role"], "user");
    assert!(found["suspendedAt"].is_null());
    let finds = audit(&app, ann.id, "account.find").await;
    assert_eq!(finds.len(), 1);
    assert_eq!(finds[0].0, admin_id, "the staff id is the administrator acted as");
    assert_eq!(finds[0].2.as_deref(), Some(me.as_str()), "the operator is who ran the command");

    let (shown, _) = json_of(&app, &["user", "show", &ann.id.to_string(), "--json"]).await;
    assert_eq!(shown["user"]["email"], ann.email.as_str(), "{shown}");
    assert_eq!(shown["plan"], "free");
    assert!(shown["usage"].is_array() && shown["jobs"].is_array(), "{shown}");
    let out = run(&app, &["user", "show", &ann.email]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success() && text.starts_with(&format!("{}\t{}\tuser\n", ann.id, ann.email)), "{text}");

    // Unknown accounts: a clear message, a non-zero exit, nothing on stdout.
    for args in [
        vec!["user", "show", "nobody@example.com", "--json"],
        vec!["user", "suspend", "0190aaaa-0000-7000-8000-000000000000", "--reason", "x", "--json"],
    ] {
        let out = run(&app, &args).await;
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("no user has the"), "{args:?}: {stderr}");
    }

    let (credit, _) = json_of(
        &app,
        &["user", "grant-credit", &ann.email, "--metric", "scans", "--amount", "5", "--reason", "goodwill", "--json"],
    )
    .await;
    assert_eq!(credit["creditThisPeriod"], 5, "{credit}");
    assert_eq!(credit["metric"], "scans");
    let credits = audit(&app, ann.id, "support.quota_credit").await;
    assert_eq!(credits.len(), 1);
    assert_eq!((credits[0].2.as_deref(), credits[0].3.as_deref()), (Some(me.as_str()), Some("goodwill")));
    let (used, limit): (i64, i64) = {
        let r = app.gql(Some(&ann.access), "{ usage { metric used limit } }", json!({})).await;
        let scans = r["data"]["usage"].as_array().unwrap().iter().find(|u| u["metric"] == "SCANS").cloned().unwrap();
        (scans["used"].as_i64().unwrap(), scans["limit"].as_i64().unwrap())
    };
    assert_eq!(used, 0);
    assert!(limit >= 5, "the credit raised the limit: {limit}");

    // Suspension: the open session ends, sign-in is refused with the reason.
    let (suspended, _) =
        json_of(&app, &["user", "suspend", &ann.email, "--reason", "chargeback review", "--json"]).await;
    assert!(suspended["suspendedAt"].is_string(), "{suspended}");
    assert_eq!(suspended["suspensionReason"], "chargeback review");
    until_refused(&app, &ann.access).await;
    let r = login(&app, &ann).await;
    assert_eq!(code(&r), "ACCOUNT_SUSPENDED", "{r}");
    let audited = audit(&app, ann.id, "support.suspend").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].1, "admin");
    assert_eq!(audited[0].2.as_deref(), Some(me.as_str()));
    let (actor, request_id): (Option<uuid::Uuid>, Option<String>) = sqlx::query_as(
        "SELECT actor_id, request_id FROM activity_log WHERE user_id = $1 AND action = 'support.suspend'",
    )
    .bind(ann.id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!((actor, request_id.as_deref()), (Some(admin_id), Some(me.as_str())));

    let (lifted, _) = json_of(&app, &["user", "unsuspend", &ann.email, "--reason", "resolved", "--json"]).await;
    assert!(lifted["suspendedAt"].is_null(), "{lifted}");
    let r = login(&app, &ann).await;
    let refresh = r["data"]["login"]["refreshToken"].as_str().unwrap_or_else(|| panic!("{r}")).to_owned();

    let (ended, _) = json_of(&app, &["user", "revoke-sessions", &ann.email, "--json"]).await;
    assert!(ended["sessionsEnded"].as_u64().unwrap() >= 1, "{ended}");
    let r = app
        .gql(
            None,
            "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }",
            json!({ "t": refresh }),
        )
        .await;
    assert_eq!(code(&r), "UNAUTHENTICATED", "{r}");
    assert_eq!(audit(&app, ann.id, "support.revoke_sessions").await.len(), 1);

    // A support agent, made from the command line, may use the staff inbox.
    let inbox = "{ supportInbox { edges { node { id } } } }";
    assert_eq!(code(&app.gql(Some(&bob.access), inbox, json!({})).await), "FORBIDDEN");
    let (promoted, _) =
        json_of(&app, &["user", "set-role", &bob.email, "support", "--reason", "joined the team", "--json"]).await;
    assert_eq!((promoted["role"].as_str(), promoted["changed"].as_bool()), (Some("support"), Some(true)));
    until_refused(&app, &bob.access).await;
    let r = login(&app, &bob).await;
    bob.access = r["data"]["login"]["accessToken"].as_str().unwrap_or_else(|| panic!("{r}")).to_owned();
    let r = app.gql(Some(&bob.access), inbox, json!({})).await;
    assert!(r["data"]["supportInbox"]["edges"].is_array(), "support reads the inbox: {r}");
    let roles = audit(&app, bob.id, "support.set_role").await;
    assert_eq!(roles.len(), 1);
    assert_eq!((roles[0].2.as_deref(), roles[0].3.as_deref()), (Some(me.as_str()), Some("joined the team")));
    let (again, _) =
        json_of(&app, &["user", "set-role", &bob.id.to_string(), "support", "--reason", "again", "--json"]).await;
    assert_eq!(again["changed"], false);

    // The admin acted as does not change itself.
    let out = run(&app, &["user", "set-role", "root@example.com", "user", "--reason", "oops"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not change its own role"), "{out:?}");
    // Nor does a support agent act as an admin.
    make_staff(&app, &mut bob, "support", "Bob").await;
    let out = run(&app, &["user", "find", &ann.email, "--admin", &bob.email]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no administrator has the address"), "{out:?}");
}
