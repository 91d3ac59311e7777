//! `plinth serve` as an operator runs it: nothing configured, the embedded database,
//! another command beside it on the same cluster, a real signal to stop. Its logs, on
//! standard error (its standard output stays empty), never carry the secrets that
//! passed through it.
use serde_json::{json, Value};
use std::{process::Stdio, time::Duration};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn serve_with_nothing_configured_then_stop_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("plinth-serve-{}", uuid::Uuid::new_v4().simple()));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_plinth"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PLINTH_DATA_DIR", &dir)
        .env("PLINTH_ADDR", "127.0.0.1:0")
        .env("PLINTH_LOG_FORMAT", "json")
        .env("RUST_LOG", "debug,sqlx=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut logs = String::new();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            logs.push_str(&line);
            logs.push('\n');
            let v: Value = serde_json::from_str(&line).unwrap_or_default();
            if let Some(addr) = v["fields"]["addr"].as_str() {
                return addr.to_owned();
            }
        }
        panic!("the server exited before listening:\n{logs}");
    })
    .await
    .expect("the server did not start within 60 s");

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{addr}/graphql");
    assert_eq!(http.get(format!("http://{addr}/readyz")).send().await.unwrap().status(), 200);
    // The web app comes with the binary: the landing page, prerendered.
    let landing = http.get(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(landing.status(), 200);
    assert!(landing.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = landing.text().await.unwrap();
    assert!(html.contains("<h1") && html.contains("/pricing"), "the landing page: {html:.300}");
    assert!(http.get(&url).send().await.unwrap().text().await.unwrap().contains("graphiql"));
    let password = "a very secret passphrase";
    let r: Value = http
        .post(&url)
        .json(&json!({
            "query": "mutation($i: RegisterInput!) { register(input: $i) { accessToken refreshToken } }",
            "variables": { "i": { "email": "op@example.com", "password": password } }
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = r["data"]["register"]["accessToken"].as_str().expect("registered").to_owned();
    let refresh = r["data"]["register"]["refreshToken"].as_str().unwrap().to_owned();
    let me: Value = http
        .post(&url)
        .bearer_auth(&access)
        .json(&json!({ "query": "{ me { email } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["data"]["me"]["email"], "op@example.com");

    // Another command, run beside the server, uses the cluster the server runs.
    let admin = tokio::process::Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(["admin", "create", "--email", "boss@example.com"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PLINTH_DATA_DIR", &dir)
        .env("RUST_LOG", "error")
        .output()
        .await
        .unwrap();
    assert!(admin.status.success(), "admin create beside serve: {}", String::from_utf8_lossy(&admin.stderr));
    let admin_password = String::from_utf8(admin.stdout).unwrap().trim().to_owned();
    let login: Value = http
        .post(&url)
        .json(&json!({
            "query": "mutation($i: LoginInput!) { login(input: $i) { user { role } } }",
            "variables": { "i": { "email": "boss@example.com", "password": admin_password } }
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(login["data"]["login"]["user"]["role"], "ADMIN", "{login}");
    assert!(dir.join("postgres/data/postmaster.pid").exists(), "the server's cluster outlives the command");

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
    while let Ok(Some(line)) = lines.next_line().await {
        logs.push_str(&line);
        logs.push('\n');
    }
    assert!(status.success(), "exit {status}:\n{logs}");
    let mut printed = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut printed).await.unwrap();
    assert_eq!(printed, "", "the server prints nothing on standard output");
    // The embedded cluster stopped with the server.
    assert!(!dir.join("postgres/data/postmaster.pid").exists(), "postgres still running");
    for secret in [password, access.as_str(), refresh.as_str(), admin_password.as_str()] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
    assert!(logs.contains("request_id"), "log lines carry the request id");
    let _ = std::fs::remove_dir_all(&dir);
}
