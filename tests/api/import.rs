//! `plinth import` and `plinth export` (docs/import.md), run as the binary against the
//! test app's database and store: an export of one account imports into another with
//! every row and object; a killed or interrupted import resumes and a second run imports
//! nothing; each kind of bad record is rejected with its reason while the rest is
//! imported; a gauge stops the import before its first write; the imported rows and their
//! mapping are invisible to other users.

use crate::helpers::{admin_url, png, TestApp, TestUser};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, Row};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// A fresh folder under the app's data dir.
fn folder(app: &TestApp, name: &str) -> PathBuf {
    let dir = app.data_dir.join(format!("import-{name}-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("photos")).unwrap();
    dir
}

/// Writes `lines` (JSON values, or raw strings as they are) as a JSON Lines file.
fn write_lines(dir: &Path, file: &str, lines: &[Value]) {
    let body: String = lines
        .iter()
        .map(|l| match l {
            Value::String(raw) => format!("{raw}\n"),
            v => format!("{v}\n"),
        })
        .collect();
    std::fs::write(dir.join(file), body).unwrap();
}

pub(crate) fn draft(id: &str, title: &str) -> Value {
    json!({ "id": id, "title": title, "status": "READY", "priceCents": 1500, "currency": "EUR",
            "createdAt": "2024-03-01T10:00:00Z", "updatedAt": "2024-03-02T10:00:00Z" })
}

/// Runs `plinth import` with `args`; (success, stdout, stderr).
async fn import(app: &TestApp, user: &TestUser, dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out =
        app.cli(&["import", "--user", &user.email, "--from", dir.to_str().unwrap()]).args(args).output().await.unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// The JSON report of an import run with `args` (plus `--json`); asserts it succeeded.
async fn report(app: &TestApp, user: &TestUser, dir: &Path, args: &[&str]) -> Value {
    let (ok, stdout, stderr) = import(app, user, dir, &[args, &["--json"]].concat()).await;
    assert!(ok, "import failed: {stderr}\n{stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn file<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["files"].as_array().unwrap().iter().find(|f| f["file"] == name).unwrap()
}

pub(crate) async fn count_for(app: &TestApp, table: &str, user: Uuid) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE user_id = $1"))
        .bind(user)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// Rows of `user` in a form two accounts can be compared in: no ids of this database.
pub(crate) async fn comparable(app: &TestApp, user: Uuid) -> Vec<String> {
    let queries = [
        "SELECT jsonb_build_object('t', title, 'd', description, 'p', price_cents, 'c', currency, 'b', brand,
                'st', status, 'del', deleted_at, 'cr', created_at, 'up', updated_at)::text FROM drafts
          WHERE user_id = $1 ORDER BY created_at, title",
        "SELECT jsonb_build_object('draft', d.title, 'pos', p.position, 'ct', p.content_type, 'n', p.byte_size,
                'w', p.width, 'h', p.height, 'sha', encode(p.sha256, 'hex'), 'st', p.status, 'cr', p.created_at)::text
           FROM photos p LEFT JOIN drafts d ON d.user_id = p.user_id AND d.id = p.draft_id
          WHERE p.user_id = $1 ORDER BY p.created_at, p.sha256",
        "SELECT jsonb_build_object('pl', platform, 'n', display_name, 'st', status, 'cr', created_at)::text
           FROM marketplace_accounts WHERE user_id = $1 ORDER BY created_at",
        "SELECT jsonb_build_object('k', j.kind, 'st', j.status, 'pr', j.progress, 'draft', d.title, 'res', j.result,
                'err', j.error, 'att', j.attempts, 'cr', j.created_at, 'fin', j.finished_at)::text
           FROM jobs j LEFT JOIN drafts d ON d.user_id = j.user_id AND d.id = j.draft_id
          WHERE j.user_id = $1 ORDER BY j.created_at",
        "SELECT jsonb_build_object('lv', l.level, 'm', l.message, 'cr', l.created_at, 'job', j.created_at)::text
           FROM job_logs l JOIN jobs j ON j.user_id = l.user_id AND j.id = l.job_id
          WHERE l.user_id = $1 ORDER BY l.created_at, l.message",
    ];
    let mut out = Vec::new();
    for q in queries {
        let rows: Vec<String> = sqlx::query_scalar(q).bind(user).fetch_all(&app.db).await.unwrap();
        out.extend(rows);
    }
    out
}

/// The bytes of every confirmed photo object of `user`, by checksum.
pub(crate) async fn objects(app: &TestApp, user: Uuid) -> Vec<(String, Vec<u8>)> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT encode(sha256, 'hex'), object_key FROM photos WHERE user_id = $1 AND status = 'ready' ORDER BY 1",
    )
    .bind(user)
    .fetch_all(&app.db)
    .await
    .unwrap();
    rows.into_iter().map(|(sha, key)| (sha, std::fs::read(app.data_dir.join("objects").join(key)).unwrap())).collect()
}

#[tokio::test]
async fn an_export_imports_into_another_account_with_every_row_and_photo() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    // Ann's history: drafts (one deleted), photos on them and one loose, an account,
    // a finished job with its log lines.
    let d1 = app.create_draft(&ann.access, "Blue jacket").await;
    let d2 = app.create_draft(&ann.access, "Old boots").await;
    app.upload_photo(&ann.access, Some(&d1), "image/png", &png(3, 2)).await;
    app.upload_photo(&ann.access, Some(&d1), "image/png", &png(5, 4)).await;
    app.upload_photo(&ann.access, None, "image/png", &png(1, 1)).await;
    let r = app
        .gql(
            Some(&ann.access),
            "mutation($i: ConnectMarketplaceAccountInput!) { connectMarketplaceAccount(input: $i) { id } }",
            json!({ "i": { "platform": "VINTED", "displayName": "ann's shop", "credentials": { "token": "t" } } }),
        )
        .await;
    assert!(r["data"]["connectMarketplaceAccount"].is_object(), "{r}");
    let r = app.gql(Some(&ann.access), "mutation($id: ID!) { deleteDraft(id: $id) }", json!({ "id": d2 })).await;
    assert_eq!(r["data"]["deleteDraft"], true, "{r}");
    let job = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO jobs (id, user_id, kind, status, draft_id, progress, result, attempts, created_at, updated_at, finished_at)
         VALUES ($1, $2, 'prepare', 'succeeded', $3::uuid, 1, '{\"ok\": true}', 1, now() - interval '2 days',
                 now() - interval '2 days', now() - interval '2 days');
         ",
    )
    .bind(job)
    .bind(ann.id)
    .bind(&d1)
    .execute(&app.db)
    .await
    .unwrap();
    for (i, m) in ["started", "done"].iter().enumerate() {
        sqlx::query(
            "INSERT INTO job_logs (id, user_id, job_id, level, message, created_at)
             VALUES ($1, $2, $3, 'info', $4, now() - interval '2 days' + make_interval(secs => $5))",
        )
        .bind(Uuid::now_v7())
        .bind(ann.id)
        .bind(job)
        .bind(m)
        .bind(i as f64)
        .execute(&app.db)
        .await
        .unwrap();
    }

    let dir = app.data_dir.join("ann-export");
    let out = app.cli(&["export", "--user", &ann.email, "--out", dir.to_str().unwrap()]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.join("README.json").is_file() && dir.join("drafts.jsonl").is_file());
    // Exporting again into the same folder is refused rather than mixed.
    let again = app.cli(&["export", "--user", &ann.email, "--out", dir.to_str().unwrap()]).output().await.unwrap();
    assert!(!again.status.success());

    let first = report(&app, &bob, &dir, &[]).await;
    assert_eq!(first["rejected"], json!([]), "{first}");
    assert_eq!(file(&first, "drafts.jsonl")["imported"], 2);
    assert_eq!(file(&first, "photos.jsonl")["imported"], 3);
    assert_eq!(file(&first, "marketplace_accounts.jsonl")["imported"], 1);
    assert_eq!(file(&first, "jobs.jsonl")["imported"], 1);
    assert_eq!(file(&first, "job_logs.jsonl")["imported"], 2);
    assert_eq!(comparable(&app, bob.id).await, comparable(&app, ann.id).await);
    assert_eq!(objects(&app, bob.id).await, objects(&app, ann.id).await);
    // Bob sees them through the API, each photo served from its own key.
    let r = app.gql(Some(&bob.access), "{ drafts { edges { node { title photos { url } } } } }", json!({})).await;
    let nodes = r["data"]["drafts"]["edges"].as_array().unwrap_or_else(|| panic!("{r}"));
    assert_eq!(nodes.len(), 1, "the deleted draft stays deleted: {r}");
    assert_eq!(nodes[0]["node"]["photos"].as_array().unwrap().len(), 2);
    // Credentials never left Ann's account: Bob's copy has none.
    let sealed: Option<Vec<u8>> = sqlx::query_scalar("SELECT credentials FROM marketplace_accounts WHERE user_id = $1")
        .bind(bob.id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(sealed.is_none());
    // History costs no counter.
    assert_eq!(count_for(&app, "quota_usage", bob.id).await, 0);

    // A second run imports nothing.
    let second = report(&app, &bob, &dir, &[]).await;
    for f in second["files"].as_array().unwrap() {
        assert_eq!(f["imported"], 0, "{second}");
        assert_eq!(f["alreadyImported"], f["valid"], "{second}");
    }
    assert_eq!(comparable(&app, bob.id).await, comparable(&app, ann.id).await);
}

/// A folder of `n` drafts.
fn drafts_folder(app: &TestApp, n: usize) -> PathBuf {
    let dir = folder(app, "many");
    let lines: Vec<Value> = (0..n).map(|i| draft(&format!("d{i}"), &format!("Draft {i}"))).collect();
    write_lines(&dir, "drafts.jsonl", &lines);
    dir
}

/// Starts an import of `dir` by batches of 5 with a pause after each, waits until its
/// first batch is committed, then sends `signal`; returns the exit status and stdout.
async fn import_interrupted(
    app: &TestApp,
    user: &TestUser,
    dir: &Path,
    signal: &str,
) -> (std::process::ExitStatus, String) {
    let child = app
        .cli(&[
            "import",
            "--user",
            &user.email,
            "--from",
            dir.to_str().unwrap(),
            "--batch-size",
            "5",
            "--batch-pause-ms",
            "400",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while count_for(app, "import_records", user.id).await == 0 {
        assert!(std::time::Instant::now() < deadline, "no batch was committed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(std::process::Command::new("kill").args([signal, &pid]).status().unwrap().success());
    let out = child.wait_with_output().await.unwrap();
    (out.status, String::from_utf8(out.stdout).unwrap())
}

#[tokio::test]
async fn a_killed_import_resumes_and_a_second_run_imports_nothing() {
    let app = TestApp::spawn().await;
    let bob = app.register("bob").await;
    let dir = drafts_folder(&app, 60);
    let (status, _) = import_interrupted(&app, &bob, &dir, "-KILL").await;
    assert!(!status.success());
    // Killed between or inside a batch: whole batches only, each with its mapping.
    let drafts = count_for(&app, "drafts", bob.id).await;
    assert_eq!(drafts, count_for(&app, "import_records", bob.id).await);
    assert!(drafts > 0 && drafts < 60 && drafts % 5 == 0, "{drafts} drafts after the kill");
    let resumed = report(&app, &bob, &dir, &[]).await;
    assert_eq!(file(&resumed, "drafts.jsonl")["alreadyImported"], drafts);
    assert_eq!(file(&resumed, "drafts.jsonl")["imported"], 60 - drafts);
    assert_eq!(count_for(&app, "drafts", bob.id).await, 60);
    let again = report(&app, &bob, &dir, &[]).await;
    assert_eq!(file(&again, "drafts.jsonl")["imported"], 0);
    assert_eq!(count_for(&app, "drafts", bob.id).await, 60);
}

#[tokio::test]
async fn ctrl_c_stops_the_import_between_two_batches() {
    let app = TestApp::spawn().await;
    let bob = app.register("bob").await;
    let dir = drafts_folder(&app, 60);
    let (status, stdout) = import_interrupted(&app, &bob, &dir, "-INT").await;
    assert_eq!(status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("interrupted"), "{stdout}");
    let drafts = count_for(&app, "drafts", bob.id).await;
    assert!(drafts > 0 && drafts < 60 && drafts % 5 == 0, "{drafts} drafts after Ctrl-C");
    let resumed = report(&app, &bob, &dir, &[]).await;
    assert_eq!(file(&resumed, "drafts.jsonl")["imported"], 60 - drafts);
}

#[tokio::test]
async fn bad_records_are_rejected_with_their_reasons_and_the_rest_is_imported() {
    let app = TestApp::spawn().await;
    let bob = app.register("bob").await;
    let dir = folder(&app, "bad");
    let future = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    write_lines(
        &dir,
        "drafts.jsonl",
        &[
            draft("a", "Good one"),
            Value::String("{\"id\": \"b\", \"title\": ".into()),
            json!({ "id": "c", "title": "Sold?", "status": "SOLD", "createdAt": "2024-01-01T00:00:00Z" }),
            draft("a", "Same id again"),
            json!({ "id": "e", "title": "From tomorrow", "status": "DRAFT", "createdAt": future }),
            json!({ "id": "f", "title": "Red\u{1b}[31m", "status": "DRAFT", "createdAt": "2024-01-01T00:00:00Z" }),
            draft("g", "Another good one"),
        ],
    );
    std::fs::write(dir.join("photos/ok.png"), png(2, 2)).unwrap();
    std::fs::write(dir.join("photos/text.png"), b"this is not an image").unwrap();
    let photo = |id: &str, draft: &str, file: &str| {
        json!({ "id": id, "draftId": draft, "contentType": "image/png", "status": "READY",
                "createdAt": "2024-03-01T10:00:00Z", "file": file })
    };
    write_lines(
        &dir,
        "photos.jsonl",
        &[
            photo("p1", "a", "photos/ok.png"),
            photo("p2", "a", "photos/missing.png"),
            photo("p3", "a", "photos/text.png"),
            photo("p4", "c", "photos/ok.png"),
            photo("p5", "a", "photos/../drafts.jsonl"),
        ],
    );
    write_lines(
        &dir,
        "job_logs.jsonl",
        &[json!({ "id": "l1", "jobId": "nowhere", "message": "hello", "createdAt": "2024-01-01T00:00:00Z" })],
    );

    let dry = report(&app, &bob, &dir, &["--dry-run"]).await;
    assert_eq!(dry["dryRun"], true);
    let reasons: Vec<(String, u64, String)> = dry["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["file"].as_str().unwrap().to_owned(),
                r["line"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = [
        ("drafts.jsonl", 2, "malformed JSON"),
        ("drafts.jsonl", 3, "SOLD"),
        ("drafts.jsonl", 4, "duplicate id"),
        ("drafts.jsonl", 5, "in the future"),
        ("drafts.jsonl", 6, "control character"),
        ("photos.jsonl", 2, "missing"),
        ("photos.jsonl", 3, "not a readable image/png image"),
        ("photos.jsonl", 4, "draftId \"c\""),
        ("photos.jsonl", 5, "not a path inside photos/"),
        ("job_logs.jsonl", 1, "jobId \"nowhere\""),
    ];
    assert_eq!(reasons.len(), expect.len(), "{reasons:#?}");
    for ((file, line, reason), (f, l, r)) in reasons.iter().zip(expect) {
        assert_eq!((file.as_str(), *line), (f, l), "{reasons:#?}");
        assert!(reason.contains(r), "{file}:{line}: {reason:?} should say {r:?}");
    }
    assert_eq!(file(&dry, "drafts.jsonl")["toImport"], 2);
    assert_eq!(file(&dry, "photos.jsonl")["toImport"], 1);
    // A dry run writes nothing.
    assert_eq!(count_for(&app, "drafts", bob.id).await, 0);
    assert_eq!(count_for(&app, "import_records", bob.id).await, 0);
    // The text report names every rejected record with its file and line.
    let (ok, text, _) = import(&app, &bob, &dir, &["--dry-run"]).await;
    assert!(ok);
    assert!(text.contains("rejected records (10):") && text.contains("drafts.jsonl:3 (id c): /status"), "{text}");

    let done = report(&app, &bob, &dir, &[]).await;
    assert_eq!(file(&done, "drafts.jsonl")["imported"], 2);
    assert_eq!(file(&done, "photos.jsonl")["imported"], 1);
    let titles: Vec<String> = sqlx::query_scalar("SELECT title FROM drafts WHERE user_id = $1 ORDER BY title")
        .bind(bob.id)
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(titles, ["Another good one", "Good one"]);
    assert_eq!(count_for(&app, "photos", bob.id).await, 1);
    assert_eq!(count_for(&app, "job_logs", bob.id).await, 0);
}

#[tokio::test]
async fn the_storage_gauge_stops_the_import_before_anything_is_written() {
    let app =
        TestApp::builder().with_free_plan_edits(&[("storage_bytes = 524288000", "storage_bytes = 100")]).spawn().await;
    let bob = app.register("bob").await;
    let dir = folder(&app, "big");
    write_lines(&dir, "drafts.jsonl", &[draft("a", "Big photos")]);
    let mut lines = Vec::new();
    for i in 0..3 {
        std::fs::write(dir.join(format!("photos/{i}.png")), png(8, 8)).unwrap();
        lines.push(json!({ "id": format!("p{i}"), "draftId": "a", "contentType": "image/png", "status": "READY",
                           "createdAt": "2024-03-01T10:00:00Z", "file": format!("photos/{i}.png") }));
    }
    write_lines(&dir, "photos.jsonl", &lines);
    let (ok, stdout, stderr) = import(&app, &bob, &dir, &[]).await;
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("STORAGE_BYTES") && stderr.contains("nothing was imported"), "{stderr}");
    assert_eq!(count_for(&app, "drafts", bob.id).await, 0);
    assert_eq!(count_for(&app, "photos", bob.id).await, 0);
    // A dry run says so too, and succeeds: it only reports.
    let dry = report(&app, &bob, &dir, &["--dry-run"]).await;
    assert!(dry["stopped"].as_str().unwrap().contains("STORAGE_BYTES"), "{dry}");
}

#[tokio::test]
async fn imported_rows_and_their_mapping_are_invisible_to_other_users() {
    let app = TestApp::spawn().await;
    let bob = app.register("bob").await;
    let eve = app.register("eve").await;
    let dir = drafts_folder(&app, 3);
    report(&app, &bob, &dir, &[]).await;
    assert_eq!(count_for(&app, "import_records", bob.id).await, 3);
    // As the server's runtime role acting for Eve, a bare SELECT sees none of it.
    let url = admin_url(&app.database).replace("postgres@", "plinth_app@");
    let mut conn = PgConnection::connect(&url).await.unwrap();
    for (user, expected) in [(eve.id, 0i64), (bob.id, 3)] {
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("SELECT set_config('role', 'plinth_user', true), set_config('plinth.user_id', $1, true)")
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
        for table in ["import_records", "drafts"] {
            let row = sqlx::query(&format!("SELECT count(*) AS n FROM {table}")).fetch_one(&mut *tx).await.unwrap();
            assert_eq!(row.get::<i64, _>("n"), expected, "{table} as {user}");
        }
        tx.rollback().await.unwrap();
    }
    let r = app.gql(Some(&eve.access), "{ drafts { edges { node { id } } } }", json!({})).await;
    assert_eq!(r["data"]["drafts"]["edges"], json!([]), "{r}");
    // Eve importing the same folder gets her own copies, not Bob's rows.
    report(&app, &eve, &dir, &[]).await;
    assert_eq!(count_for(&app, "drafts", eve.id).await, 3);
    assert_eq!(count_for(&app, "drafts", bob.id).await, 3);
}
