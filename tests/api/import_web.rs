//! Imports from the web app (docs/import.md, "From the web app"), over the wire: a zip of
//! an export uploaded through its presigned URL, started with `startImport`, followed
//! over the WebSocket with `importUpdated` until it succeeds, with the same rows as the
//! source account; a second import of it brings nothing; a second start while one runs
//! is CONFLICT; climbing paths are rejected with their reasons and a zip bomb refuses
//! the archive with nothing written; an import whose server went away ends FAILED and
//! can be started again; another user can neither see nor follow an import; the GDPR
//! export carries the imports and their mapping.

use crate::{
    helpers::{code, png, TestApp, TestUser, WsClient, WsEvent},
    import::{comparable, count_for, draft, objects},
};
use serde_json::{json, Value};
use std::{
    io::Write,
    path::Path,
    time::{Duration, Instant},
};
use uuid::Uuid;

const IMPORT_FIELDS: &str = "{ id status fileName byteSize recordsDone recordsTotal progress rejected error
    files { file records valid rejected alreadyImported toImport imported } report reportText }";

/// A zip of every file under `dir`, named relative to it.
fn zip_folder(dir: &Path) -> Vec<u8> {
    fn add(w: &mut zip::ZipWriter<std::io::Cursor<Vec<u8>>>, root: &Path, dir: &Path) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                add(w, root, &path);
            } else {
                let name = path.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
                w.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
                w.write_all(&std::fs::read(&path).unwrap()).unwrap();
            }
        }
    }
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    add(&mut w, dir, dir);
    w.finish().unwrap().into_inner()
}

/// A zip of `(name, bytes)` entries.
fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in entries {
        w.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        w.write_all(body).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A raw deflate stream of `1 + 258 × matches` zero bytes: one fixed-Huffman block, a
/// literal 0 then back-references of 258 bytes at distance 1 (13 bits each).
fn deflated_zeros(matches: usize) -> Vec<u8> {
    let (mut out, mut acc, mut n) = (Vec::with_capacity(matches * 13 / 8 + 8), 0u64, 0u32);
    let mut put = |v: u64, len: u32, out: &mut Vec<u8>| {
        acc |= v << n;
        n += len;
        while n >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            n -= 8;
        }
    };
    // Huffman codes go most significant bit first.
    let rev = |code: u64, len: u32| (0..len).fold(0u64, |r, i| r | (((code >> i) & 1) << (len - 1 - i)));
    put(1, 1, &mut out); // the last block
    put(1, 2, &mut out); // fixed codes
    put(rev(0x30, 8), 8, &mut out); // literal 0
    for _ in 0..matches {
        put(rev(0xC5, 8), 8, &mut out); // length 258 (code 285)
        put(0, 5, &mut out); // distance 1 (code 0)
    }
    put(0, 7, &mut out); // end of block
    put(0, 7, &mut out); // flush the last byte
    out
}

/// A zip whose entries are `(name, method, crc, compressed bytes, declared size)`,
/// written by hand so a header can lie.
fn raw_zip(entries: &[(&str, u16, u32, Vec<u8>, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, method, crc, data, declared) in entries {
        let offset = out.len() as u32;
        let header = |sig: u32, central: bool| {
            let mut h = Vec::new();
            h.extend(sig.to_le_bytes());
            if central {
                h.extend(20u16.to_le_bytes());
            }
            for v in [20u16, 0, *method, 0, 0x21] {
                h.extend(v.to_le_bytes());
            }
            h.extend(crc.to_le_bytes());
            h.extend((data.len() as u32).to_le_bytes());
            h.extend(declared.to_le_bytes());
            h.extend((name.len() as u16).to_le_bytes());
            h.extend(0u16.to_le_bytes());
            if central {
                h.extend([0u8; 6]); // comment length, disk, internal attributes
                h.extend(0u32.to_le_bytes()); // external attributes
                h.extend(offset.to_le_bytes());
            }
            h.extend(name.as_bytes());
            h
        };
        out.extend(header(0x0403_4b50, false));
        out.extend(data);
        central.extend(header(0x0201_4b50, true));
    }
    let at = out.len() as u32;
    let size = central.len() as u32;
    out.extend(central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend(size.to_le_bytes());
    out.extend(at.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// Uploads `zip` for `user`; the upload's id.
async fn upload(app: &TestApp, user: &TestUser, zip: &[u8]) -> String {
    let r = app
        .gql(
            Some(&user.access),
            "mutation($n: Int!) { createImportUpload(byteSize: $n) { uploadId uploadUrl method headers { name value } } }",
            json!({ "n": zip.len() }),
        )
        .await;
    let up = &r["data"]["createImportUpload"];
    assert!(up.is_object(), "createImportUpload failed: {r}");
    let status = app.put_upload(up, zip.to_vec()).await.status();
    assert!(status.is_success(), "the upload answered {status}");
    up["uploadId"].as_str().unwrap().to_owned()
}

/// `startImport`'s whole answer.
async fn start(app: &TestApp, user: &TestUser, upload_id: &str) -> Value {
    app.gql(
        Some(&user.access),
        &format!("mutation($u: ID!) {{ startImport(uploadId: $u, fileName: \"history.zip\") {IMPORT_FIELDS} }}"),
        json!({ "u": upload_id }),
    )
    .await
}

/// Uploads and starts `zip`; the import's id.
async fn upload_and_start(app: &TestApp, user: &TestUser, zip: &[u8]) -> String {
    let id = upload(app, user, zip).await;
    let r = start(app, user, &id).await;
    assert!(r["data"]["startImport"]["id"].is_string(), "startImport failed: {r}");
    r["data"]["startImport"]["id"].as_str().unwrap().to_owned()
}

/// Follows import `id` over the WebSocket until it ends; every state seen, the last one
/// ended.
async fn follow(app: &TestApp, user: &TestUser, id: &str) -> Vec<Value> {
    let mut ws = WsClient::connect(app, Some(&user.access)).await;
    ws.subscribe(
        "1",
        &format!("subscription($id: ID!) {{ importUpdated(id: $id) {IMPORT_FIELDS} }}"),
        json!({ "id": id }),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        match ws.next(Duration::from_secs(10)).await {
            WsEvent::Next(p) => {
                let i = p["data"]["importUpdated"].clone();
                assert!(i.is_object(), "{p}");
                let ended = matches!(i["status"].as_str(), Some("SUCCEEDED" | "FAILED"));
                seen.push(i);
                if ended {
                    return seen;
                }
            }
            other => panic!("importUpdated sent {other:?} after {seen:?}"),
        }
        assert!(Instant::now() < deadline, "import {id} did not end: {seen:?}");
    }
}

fn file<'a>(import: &'a Value, name: &str) -> &'a Value {
    import["files"].as_array().unwrap().iter().find(|f| f["file"] == name).unwrap_or_else(|| panic!("{import}"))
}

/// Ann's history, exported as an import folder and zipped.
async fn exported_history(app: &TestApp) -> (TestUser, Vec<u8>) {
    let ann = app.register("ann").await;
    let d1 = app.create_draft(&ann.access, "Blue jacket").await;
    app.create_draft(&ann.access, "Old boots").await;
    app.upload_photo(&ann.access, Some(&d1), "image/png", &png(3, 2)).await;
    app.upload_photo(&ann.access, None, "image/png", &png(1, 1)).await;
    let dir = app.data_dir.join(format!("ann-export-{}", Uuid::new_v4().simple()));
    let out = app.cli(&["export", "--user", &ann.email, "--out", dir.to_str().unwrap()]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (ann, zip_folder(&dir))
}

#[tokio::test]
async fn an_uploaded_zip_imports_followed_live_and_a_second_import_brings_nothing() {
    let app = TestApp::spawn().await;
    let (ann, zip) = exported_history(&app).await;
    let bob = app.register("bob").await;

    let id = upload_and_start(&app, &bob, &zip).await;
    let seen = follow(&app, &bob, &id).await;
    // The current state comes first, then each change until the end.
    assert!(matches!(seen[0]["status"].as_str(), Some("QUEUED" | "RUNNING" | "SUCCEEDED")), "{seen:?}");
    let done = seen.last().unwrap();
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["progress"], 1.0);
    // The last progress is recorded even when the import ends before any progress write.
    assert!(done["recordsTotal"].as_i64().unwrap() >= 4, "{done}");
    assert_eq!(done["recordsDone"], done["recordsTotal"], "{done}");
    assert_eq!(done["fileName"], "history.zip");
    assert_eq!(done["byteSize"], zip.len());
    assert_eq!(done["rejected"], 0, "{done}");
    assert_eq!(file(done, "drafts.jsonl")["imported"], 2);
    assert_eq!(file(done, "photos.jsonl")["imported"], 2);
    assert!(done["reportText"].as_str().unwrap().contains("drafts.jsonl"), "{done}");
    assert_eq!(done["report"]["files"].as_array().unwrap().len(), 5, "{done}");
    assert_eq!(comparable(&app, bob.id).await, comparable(&app, ann.id).await);
    assert_eq!(objects(&app, bob.id).await, objects(&app, ann.id).await);
    // The upload is gone once imported; the working folder too.
    let left: i64 = count_for(&app, "imports", bob.id).await;
    assert_eq!(left, 1);
    assert!(std::fs::read_dir(app.data_dir.join("imports")).map(|d| d.count() == 0).unwrap_or(true));

    // The same zip again: everything is already there.
    let again = upload_and_start(&app, &bob, &zip).await;
    let done = follow(&app, &bob, &again).await.pop().unwrap();
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    for f in done["files"].as_array().unwrap() {
        assert_eq!(f["imported"], 0, "{done}");
        assert_eq!(f["alreadyImported"], f["valid"], "{done}");
    }
    assert_eq!(comparable(&app, bob.id).await, comparable(&app, ann.id).await);
    let r = app.gql(Some(&bob.access), &format!("{{ imports {IMPORT_FIELDS} }}"), json!({})).await;
    assert_eq!(r["data"]["imports"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["data"]["imports"][0]["id"], again.as_str(), "newest first: {r}");

    // The GDPR export's code carries the imports and their mapping.
    let dir = app.data_dir.join(format!("bob-export-{}", Uuid::new_v4().simple()));
    let out = app.cli(&["export", "--user", &bob.email, "--out", dir.to_str().unwrap()]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = |f: &str| -> Vec<Value> {
        std::fs::read_to_string(dir.join(f)).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let imports = lines("imports.jsonl");
    assert_eq!(imports.len(), 2);
    assert!(imports.iter().all(|i| i["status"] == "SUCCEEDED" && i["fileName"] == "history.zip"), "{imports:?}");
    assert_eq!(lines("import_records.jsonl").len() as i64, count_for(&app, "import_records", bob.id).await);
}

#[tokio::test]
async fn a_second_start_while_an_import_runs_is_refused_with_conflict() {
    let app = TestApp::spawn().await;
    let bob = app.register("bob").await;
    let lines: String = (0..3000).map(|i| format!("{}\n", draft(&format!("d{i}"), &format!("Draft {i}")))).collect();
    let zip = zip_of(&[("drafts.jsonl", lines.as_bytes())]);
    let (a, b) = (upload(&app, &bob, &zip).await, upload(&app, &bob, &zip).await);
    let (ra, rb) = tokio::join!(start(&app, &bob, &a), start(&app, &bob, &b));
    let (won, lost) = if ra["data"]["startImport"].is_object() { (ra, rb) } else { (rb, ra) };
    assert!(won["data"]["startImport"]["id"].is_string(), "{won}");
    assert_eq!(code(&lost), "CONFLICT", "{lost}");
    assert!(lost["errors"][0]["message"].as_str().unwrap().contains("already queued or running"), "{lost}");
    let id = won["data"]["startImport"]["id"].as_str().unwrap().to_owned();
    let done = follow(&app, &bob, &id).await.pop().unwrap();
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(count_for(&app, "drafts", bob.id).await, 3000);
    // Once it ended, the other upload may start: it finds everything there.
    let loser = if upload_of(&app, &bob, &id).await == a { &b } else { &a };
    let r = start(&app, &bob, loser).await;
    let id = r["data"]["startImport"]["id"].as_str().unwrap_or_else(|| panic!("{r}")).to_owned();
    let done = follow(&app, &bob, &id).await.pop().unwrap();
    assert_eq!(file(&done, "drafts.jsonl")["alreadyImported"], 3000, "{done}");
    assert_eq!(count_for(&app, "drafts", bob.id).await, 3000);
}

/// The upload import `id` reads.
async fn upload_of(app: &TestApp, user: &TestUser, id: &str) -> String {
    let upload: Uuid = sqlx::query_scalar("SELECT upload_id FROM imports WHERE user_id = $1 AND id = $2::uuid")
        .bind(user.id)
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    upload.to_string()
}

#[tokio::test]
async fn climbing_paths_are_rejected_and_a_zip_bomb_refuses_the_archive_with_nothing_written() {
    let app = TestApp::spawn().await;
    let bob = app.register("bob").await;
    let drafts = format!("{}\n{}\n", draft("d1", "Kept"), draft("d2", "Kept too"));

    // Entries that climb out are skipped with their reasons; the rest is imported.
    let zip = zip_of(&[
        ("drafts.jsonl", drafts.as_bytes()),
        ("../evil", b"climbs out"),
        ("photos/../../../evil2", b"climbs out"),
        ("/etc/evil3", b"absolute"),
    ]);
    let id = upload_and_start(&app, &bob, &zip).await;
    let done = follow(&app, &bob, &id).await.pop().unwrap();
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["rejected"], 3, "{done}");
    let rejected = done["report"]["rejected"].as_array().unwrap();
    for name in ["../evil", "photos/../../../evil2", "/etc/evil3"] {
        let r = rejected.iter().find(|r| r["file"] == name).unwrap_or_else(|| panic!("{name} not in {done}"));
        assert!(r["reason"].as_str().unwrap().contains("leaves the folder"), "{r}");
        assert_eq!(r["line"], 0);
    }
    assert!(done["reportText"].as_str().unwrap().contains("../evil"), "{done}");
    assert_eq!(count_for(&app, "drafts", bob.id).await, 2);
    for climbed in ["evil", "evil2", "imports/evil", "../evil"] {
        assert!(!app.data_dir.join(climbed).exists(), "{climbed} was written");
    }

    // A 1 GiB run of zeros declared as 1,000 bytes, beside valid drafts: refused whole.
    let carol = app.register("carol").await;
    let drafts = format!("{}\n", draft("c1", "Never imported"));
    let bomb = deflated_zeros(4_161_663); // 1 + 258 × 4,161,663 bytes ≈ 1 GiB
    let zip = raw_zip(&[
        ("drafts.jsonl", 0, crc32(drafts.as_bytes()), drafts.as_bytes().to_vec(), drafts.len() as u32),
        ("photos/bomb.png", 8, 0, bomb, 1_000),
    ]);
    let started = Instant::now();
    let id = upload_and_start(&app, &carol, &zip).await;
    let done = follow(&app, &carol, &id).await.pop().unwrap();
    assert_eq!(done["status"], "FAILED", "{done}");
    let error = done["error"].as_str().unwrap();
    assert!(error.contains("photos/bomb.png") && error.contains("zip bomb"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(30), "the bomb was unpacked for {:?}", started.elapsed());
    assert!(done["reportText"].as_str().unwrap().contains("zip bomb"), "{done}");
    assert_eq!(count_for(&app, "drafts", carol.id).await, 0, "nothing half-written");
    assert_eq!(count_for(&app, "import_records", carol.id).await, 0);
    assert!(std::fs::read_dir(app.data_dir.join("imports")).map(|d| d.count() == 0).unwrap_or(true));

    // A bomb honest about its size is refused by its ratio, before a byte is written.
    let zeros = vec![0u8; 8 << 20];
    let id = upload_and_start(&app, &carol, &zip_of(&[("drafts.jsonl", &zeros)])).await;
    let done = follow(&app, &carol, &id).await.pop().unwrap();
    assert_eq!(done["status"], "FAILED", "{done}");
    assert!(done["error"].as_str().unwrap().contains("(declared): refused as a zip bomb"), "{done}");

    // Not a zip at all.
    let id = upload_and_start(&app, &carol, b"plain text, not a zip").await;
    let done = follow(&app, &carol, &id).await.pop().unwrap();
    assert_eq!(done["status"], "FAILED", "{done}");
    assert!(done["error"].as_str().unwrap().contains("not a readable zip"), "{done}");
}

#[tokio::test]
async fn an_import_whose_server_went_away_ends_failed_and_can_be_started_again() {
    let app = TestApp::spawn().await;
    let bob = app.register("bob").await;
    let lines: String = (0..10).map(|i| format!("{}\n", draft(&format!("d{i}"), &format!("Draft {i}")))).collect();
    let upload_id = upload(&app, &bob, &zip_of(&[("drafts.jsonl", lines.as_bytes())])).await;
    // What a server that stopped mid-import leaves: a running import, its lease lapsed.
    let stale = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO imports (user_id, id, upload_id, file_name, byte_size, status, started_at, leased_until)
         VALUES ($1, $2, $3::uuid, 'history.zip', 100, 'running', now() - interval '5 minutes',
                 now() - interval '1 minute')",
    )
    .bind(bob.id)
    .bind(stale)
    .bind(&upload_id)
    .execute(&app.db)
    .await
    .unwrap();
    // The sweeper marks it failed, and its subscribers hear it.
    let seen = follow(&app, &bob, &stale.to_string()).await;
    let failed = seen.last().unwrap();
    assert_eq!(failed["status"], "FAILED", "{seen:?}");
    assert!(failed["error"].as_str().unwrap().contains("start it again"), "{failed}");
    // Started again from the same upload, it imports what is missing.
    let id = upload_and_start_again(&app, &bob, &upload_id).await;
    let done = follow(&app, &bob, &id).await.pop().unwrap();
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(count_for(&app, "drafts", bob.id).await, 10);
}

async fn upload_and_start_again(app: &TestApp, user: &TestUser, upload_id: &str) -> String {
    let r = start(app, user, upload_id).await;
    r["data"]["startImport"]["id"].as_str().unwrap_or_else(|| panic!("{r}")).to_owned()
}

#[tokio::test]
async fn another_user_can_neither_see_nor_follow_nor_start_an_import() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let eve = app.register("eve").await;
    let zip = zip_of(&[("drafts.jsonl", format!("{}\n", draft("d1", "Ann's")).as_bytes())]);
    let upload_id = upload(&app, &ann, &zip).await;
    let r = start(&app, &ann, &upload_id).await;
    let id = r["data"]["startImport"]["id"].as_str().unwrap_or_else(|| panic!("{r}")).to_owned();
    let done = follow(&app, &ann, &id).await.pop().unwrap();
    assert_eq!(done["status"], "SUCCEEDED", "{done}");

    let r = app
        .gql(Some(&eve.access), "query($id: ID!) { import(id: $id) { id } imports { id } }", json!({ "id": id }))
        .await;
    assert_eq!(r["data"]["import"], Value::Null, "{r}");
    assert_eq!(r["data"]["imports"], json!([]), "{r}");
    // Eve's subscription to Ann's import sends nothing, not even its current state.
    let mut ws = WsClient::connect(&app, Some(&eve.access)).await;
    ws.subscribe("1", "subscription($id: ID!) { importUpdated(id: $id) { id status } }", json!({ "id": id })).await;
    match ws.next(Duration::from_secs(2)).await {
        WsEvent::Timeout => {}
        other => panic!("eve heard {other:?}"),
    }
    // Ann's upload is not Eve's to start: her uploads live under her own id.
    let r = start(&app, &eve, &upload_id).await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");
    // Anonymous callers and API tokens are refused.
    let r = app.gql(None, "{ imports { id } }", json!({})).await;
    assert_eq!(code(&r), "UNAUTHENTICATED", "{r}");
    assert_eq!(count_for(&app, "imports", eve.id).await, 0);
}

/// An account holds at most 3 uploads. An imported upload's zip goes at once and the
/// upload once its URL expired (a PUT meanwhile brings no zip nothing knows of); the
/// sweeper removes, objects first, uploads nothing happened to for a day: never
/// started, or whose import failed a day ago (one that failed just now stays, to be
/// started again).
#[tokio::test]
async fn uploads_are_bounded_removed_once_imported_and_swept_when_left() {
    let app = &TestApp::builder().with_env("PLINTH_UPLOAD_SWEEP_SECS", "1").spawn().await;
    let bob = &app.register("bob").await;
    let zip = zip_of(&[("drafts.jsonl", format!("{}\n", draft("d1", "Blue jacket")).as_bytes())]);
    let imported = upload(app, bob, &zip).await;
    let left = upload(app, bob, &zip).await;
    let broken = upload(app, bob, b"not a zip").await;
    let fourth = || app.gql(Some(&bob.access), "mutation { createImportUpload(byteSize: 10) { uploadId } }", json!({}));
    let r = fourth().await;
    assert_eq!(code(&r), "CONFLICT", "a fourth upload: {r}");
    let object = |id: &str| app.data_dir.join("objects").join(format!("i/{}/{id}", bob.id));
    assert!(object(&imported).exists() && object(&left).exists() && object(&broken).exists());
    let uploads = || count_for(app, "import_uploads", bob.id);
    let until = |n: i64| async move {
        let deadline = Instant::now() + Duration::from_secs(20);
        while uploads().await != n {
            assert!(Instant::now() < deadline, "uploads did not come down to {n}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let backdate = |sql: &'static str| async move {
        sqlx::query(sql).bind(bob.id).execute(&app.db).await.unwrap();
    };

    let id = start(app, bob, &imported).await["data"]["startImport"]["id"].as_str().unwrap().to_owned();
    assert_eq!(follow(app, bob, &id).await.pop().unwrap()["status"], "SUCCEEDED");
    let id = start(app, bob, &broken).await["data"]["startImport"]["id"].as_str().unwrap().to_owned();
    assert_eq!(follow(app, bob, &id).await.pop().unwrap()["status"], "FAILED");
    let deadline = Instant::now() + Duration::from_secs(20);
    while object(&imported).exists() {
        assert!(Instant::now() < deadline, "an imported upload's zip is removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = start(app, bob, &imported).await;
    assert_eq!(code(&r), "NOT_FOUND", "an imported upload cannot be started again: {r}");
    assert_eq!(uploads().await, 3, "its row stays while its URL works");
    assert_eq!(code(&fourth().await), "CONFLICT");

    // Its URL expired (30 minutes, and a grace): the imported upload goes; the others
    // are younger than a day.
    backdate("UPDATE import_uploads SET created_at = now() - interval '46 minutes' WHERE user_id = $1").await;
    until(2).await;
    assert!(fourth().await["errors"].is_null(), "room for one more");
    backdate("DELETE FROM import_uploads WHERE user_id = $1 AND created_at > now() - interval '1 minute'").await;

    // A day later: the never-started upload goes; the one whose import failed just now stays.
    backdate("UPDATE import_uploads SET created_at = now() - interval '25 hours' WHERE user_id = $1").await;
    until(1).await;
    assert!(!object(&left).exists(), "its object went first");
    assert!(object(&broken).exists(), "a failed import's upload stays a day after it failed");
    let r = start(app, bob, &left).await;
    assert_eq!(code(&r), "NOT_FOUND", "a swept upload cannot be started: {r}");
    backdate("UPDATE imports SET finished_at = now() - interval '25 hours' WHERE user_id = $1").await;
    until(0).await;
    assert!(!object(&broken).exists());
}
