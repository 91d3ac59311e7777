//! GDPR over the wire (issue 12, item 11): `exportMyData` builds an archive of every row
//! and object the user owns, and nobody else's, downloadable through a signed URL until
//! it expires and is swept; `deleteMyAccount` needs the password, is cancelled by a
//! sign-in during the grace period, and when it ends the sweeper cancels the Stripe
//! subscription, deletes the objects and every row, keeps the invoices in an admin-only
//! archive under a pseudonym, and every token of the account is refused at once.

use crate::helpers::{
    code, png,
    stripe::{event, invoice, FakeStripe},
    TestApp, TestUser,
};
use serde_json::{json, Value};
use std::{
    io::Read,
    time::{Duration, Instant},
};
use uuid::Uuid;

const EXPORT_FIELDS: &str = "{ id status createdAt completedAt expiresAt byteSize downloadUrl }";

/// Gives `user` a draft with a photo, a marketplace account, a job, an API token and the
/// activity and notifications those leave; returns the photo's bytes and the API token.
async fn furnish(app: &TestApp, user: &TestUser, title: &str, side: u32) -> (Vec<u8>, String) {
    let draft = app.create_draft(&user.access, title).await;
    let bytes = png(side, side);
    app.upload_photo(&user.access, Some(&draft), "image/png", &bytes).await;
    let r = app
        .gql(
            Some(&user.access),
            "mutation($n: String!) { connectMarketplaceAccount(input: {platform: VINTED, displayName: $n, credentials: {secret: \"s3cr3t-cred\"}}) { id } }",
            json!({ "n": format!("{title} shop") }),
        )
        .await;
    assert!(r["data"]["connectMarketplaceAccount"]["id"].is_string(), "{r}");
    let j = app
        .gql(
            Some(&user.access),
            "mutation($d: ID!) { createJob(input: {kind: SCAN, draftId: $d}) { id } }",
            json!({ "d": draft }),
        )
        .await;
    assert!(j["data"]["createJob"]["id"].is_string(), "{j}");
    let t = app
        .gql(
            Some(&user.access),
            "mutation($n: String!) { createApiToken(input: {name: $n, scopes: [\"drafts:read\"]}) { token } }",
            json!({ "n": format!("{title} token") }),
        )
        .await;
    let token = t["data"]["createApiToken"]["token"].as_str().unwrap_or_else(|| panic!("{t}")).to_owned();
    (bytes, token)
}

/// `deleteMyAccount` with the user's own password, checked to have scheduled it.
async fn schedule_deletion(app: &TestApp, user: &TestUser) {
    let q = "mutation($p: String!) { deleteMyAccount(input: {currentPassword: $p}) { deletionScheduledAt } }";
    let ok = app.gql(Some(&user.access), q, json!({ "p": user.password })).await;
    assert!(ok["data"]["deleteMyAccount"]["deletionScheduledAt"].is_string(), "{ok}");
}

/// The test's clock: the user's grace period ends (its due date moves to the past).
async fn end_grace_period(app: &TestApp, user: &TestUser) {
    sqlx::query("UPDATE users SET deletion_scheduled_at = now() - interval '1 second' WHERE id = $1")
        .bind(user.id)
        .execute(&app.db)
        .await
        .unwrap();
}

async fn export_now(app: &TestApp, user: &TestUser) -> Value {
    let r = app.gql(Some(&user.access), &format!("mutation {{ exportMyData {EXPORT_FIELDS} }}"), json!({})).await;
    assert!(r["data"]["exportMyData"].is_object(), "exportMyData failed: {r}");
    r["data"]["exportMyData"].clone()
}

/// Waits until `user`'s export `id` is in `status`; returns it.
async fn export_in(app: &TestApp, user: &TestUser, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = app.gql(Some(&user.access), &format!("{{ dataExports {EXPORT_FIELDS} }}"), json!({})).await;
        let found = r["data"]["dataExports"].as_array().and_then(|a| a.iter().find(|e| e["id"] == id).cloned());
        if let Some(e) = found.filter(|e| e["status"] == status) {
            return e;
        }
        assert!(Instant::now() < deadline, "export {id} never became {status}: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The archive's files, by name.
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip archive");
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).unwrap();
        let mut body = Vec::new();
        f.read_to_end(&mut body).unwrap();
        files.push((f.name().to_owned(), body));
    }
    files
}

fn file<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    &files.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name} in the archive")).1
}

fn jsonl(files: &[(String, Vec<u8>)], name: &str) -> Vec<Value> {
    String::from_utf8(file(files, name).to_vec()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test]
async fn an_export_holds_every_kind_of_the_users_data_and_nobody_elses_then_expires() {
    let app = TestApp::builder().with_s3().with_env("PLINTH_ACCOUNT_SWEEP_SECS", "1").spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let (ann_photo, ann_token) = furnish(&app, &ann, "Ann's jacket", 3).await;
    furnish(&app, &bob, "Bob's boots", 5).await;
    // An invoice, as the billing webhook would have stored it.
    for (user, n) in [(&ann, "INV-ANN"), (&bob, "INV-BOB")] {
        sqlx::query(
            "INSERT INTO invoices (id, user_id, stripe_invoice_id, number, status, currency, total_cents, stripe_created)
             VALUES (gen_random_uuid(), $1, $2, $2, 'paid', 'eur', 4900, now())",
        )
        .bind(user.id)
        .bind(n)
        .execute(&app.db)
        .await
        .unwrap();
    }

    let started = Instant::now();
    let queued = export_now(&app, &ann).await;
    assert_eq!(queued["status"], "PENDING");
    assert!(queued["downloadUrl"].is_null());
    let ready = export_in(&app, &ann, queued["id"].as_str().unwrap(), "READY").await;
    let built_in = started.elapsed();
    let url = ready["downloadUrl"].as_str().expect("a download URL while ready").to_owned();
    let resp = app.http().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().await.unwrap().to_vec();
    assert_eq!(ready["byteSize"].as_i64(), Some(bytes.len() as i64));
    let files = unzip(&bytes);
    println!("export of one furnished user built and announced in {built_in:.1?}: {} bytes", bytes.len());

    // The manifest names the format and counts each file.
    let manifest: Value = serde_json::from_slice(file(&files, "README.json")).unwrap();
    assert_eq!((manifest["format"].as_str(), manifest["version"].as_u64()), (Some("plinth.export"), Some(1)));
    for (name, n) in [
        ("profile.json", 1),
        ("email_preferences.json", 1),
        ("drafts.jsonl", 1),
        ("photos.jsonl", 1),
        ("jobs.jsonl", 1),
        ("marketplace_accounts.jsonl", 1),
        ("api_tokens.jsonl", 1),
        ("sessions.jsonl", 1),
        ("invoices.jsonl", 1),
    ] {
        assert_eq!(manifest["counts"][name], n, "{name} in {manifest}");
    }
    for name in ["job_logs.jsonl", "notifications.jsonl", "activity.jsonl", "subscriptions.jsonl", "emails.jsonl"] {
        assert!(manifest["counts"][name].is_u64(), "{name} in {manifest}");
    }
    assert!(manifest["counts"]["activity.jsonl"].as_u64().unwrap() >= 4, "{manifest}");
    let profile: Value = serde_json::from_slice(file(&files, "profile.json")).unwrap();
    assert_eq!(
        (profile["id"].as_str(), profile["email"].as_str()),
        (Some(ann.id.to_string().as_str()), Some(ann.email.as_str()))
    );
    assert_eq!(jsonl(&files, "drafts.jsonl")[0]["title"], "Ann's jacket");
    assert_eq!(jsonl(&files, "drafts.jsonl")[0]["status"], "DRAFT");
    assert_eq!(jsonl(&files, "marketplace_accounts.jsonl")[0]["hasCredentials"], true);
    assert_eq!(jsonl(&files, "invoices.jsonl")[0]["number"], "INV-ANN");
    assert_eq!(jsonl(&files, "api_tokens.jsonl")[0]["name"], "Ann's jacket token");
    // The photo's bytes, under the path its row names.
    let photo = &jsonl(&files, "photos.jsonl")[0];
    assert_eq!(file(&files, photo["file"].as_str().unwrap()), ann_photo.as_slice());

    // Nothing of the other user, and no secret of the owner.
    let everything: String = files.iter().map(|(n, b)| format!("{n}\n{}\n", String::from_utf8_lossy(b))).collect();
    for absent in [
        bob.id.to_string(),
        bob.email.clone(),
        "Bob's boots".into(),
        "INV-BOB".into(),
        "s3cr3t-cred".into(),
        ann_token.clone(),
        "$argon2".into(),
        ann.refresh.clone(),
        ann.access.clone(),
    ] {
        assert!(!everything.contains(&absent), "the archive contains {absent:?}");
    }
    let bob_photo = png(5, 5);
    assert!(!files.iter().any(|(_, b)| b == &bob_photo), "the other user's photo is in the archive");

    // Announced by a notification and an e-mail.
    let n = app.gql(Some(&ann.access), "{ notifications { kind } }", json!({})).await;
    assert!(n["data"]["notifications"].as_array().unwrap().iter().any(|k| k["kind"] == "data_export_ready"), "{n}");
    let mail = app.last_mail(&ann.email, "data_export_ready").await.expect("a data_export_ready mail");
    assert!(mail["expires_on"].is_string(), "{mail}");
    // The other user sees none of it.
    let theirs = app.gql(Some(&bob.access), "{ dataExports { id } }", json!({})).await;
    assert_eq!(theirs["data"]["dataExports"], json!([]), "{theirs}");
    // The archive is not counted in the storage gauge: only the photo is.
    let usage = app.gql(Some(&ann.access), "{ usage { metric used } }", json!({})).await;
    let storage = usage["data"]["usage"].as_array().unwrap().iter().find(|u| u["metric"] == "STORAGE_BYTES").cloned();
    assert_eq!(storage.map(|s| s["used"].clone()), Some(json!(ann_photo.len())), "{usage}");

    // Expiry: the sweeper deletes the object and the link stops working.
    sqlx::query("UPDATE data_exports SET expires_at = now() - interval '1 second' WHERE user_id = $1")
        .bind(ann.id)
        .execute(&app.db)
        .await
        .unwrap();
    let expired = export_in(&app, &ann, queued["id"].as_str().unwrap(), "EXPIRED").await;
    assert!(expired["downloadUrl"].is_null(), "{expired}");
    let gone = app.http().get(&url).send().await.unwrap().status();
    assert_eq!(gone, 404, "the archive's object is deleted");
}

#[tokio::test]
async fn concurrent_export_requests_make_one_export() {
    let app = TestApp::builder().with_env("PLINTH_ACCOUNT_SWEEP_SECS", "3600").spawn().await;
    let ann = app.register("ann").await;
    let answers = futures::future::join_all((0..6).map(|_| export_now(&app, &ann))).await;
    let ids: std::collections::HashSet<String> = answers.iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    assert_eq!(app.count(&format!("data_exports WHERE user_id = '{}'", ann.id)).await, 1);
    // Anonymous callers and API tokens may not export.
    let anon = app.gql(None, "mutation { exportMyData { id } }", json!({})).await;
    assert_eq!(code(&anon), "UNAUTHENTICATED", "{anon}");
}

#[tokio::test]
async fn deletion_needs_the_password_and_a_sign_in_during_the_grace_period_cancels_it() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let q = "mutation($p: String!) { deleteMyAccount(input: {currentPassword: $p}) { id deletionScheduledAt } }";
    let wrong = app.gql(Some(&ann.access), q, json!({ "p": "not my password" })).await;
    assert_eq!(code(&wrong), "BAD_USER_INPUT", "{wrong}");
    assert_eq!(wrong["errors"][0]["extensions"]["field"], "currentPassword");
    let me = app.gql(Some(&ann.access), "{ me { deletionScheduledAt } }", json!({})).await;
    assert!(me["data"]["me"]["deletionScheduledAt"].is_null(), "{me}");

    let ok = app.gql(Some(&ann.access), q, json!({ "p": ann.password })).await;
    let at = ok["data"]["deleteMyAccount"]["deletionScheduledAt"].as_str().unwrap_or_else(|| panic!("{ok}"));
    let at: chrono::DateTime<chrono::Utc> = at.parse().unwrap();
    let days = (at - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((13.9..=14.1).contains(&days), "the default grace is 14 days, got {days}");
    let mail = app.last_mail(&ann.email, "account_deletion_scheduled").await.expect("a deletion mail");
    assert_eq!(mail["deletion_on"], at.format("%Y-%m-%d").to_string());

    // Signing in keeps the account, and says so.
    let login = app
        .gql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { accessToken user { deletionScheduledAt } } }",
            json!({ "i": { "email": ann.email, "password": ann.password } }),
        )
        .await;
    assert!(login["data"]["login"]["user"]["deletionScheduledAt"].is_null(), "{login}");
    let token = login["data"]["login"]["accessToken"].as_str().unwrap();
    let n = app.gql(Some(token), "{ notifications { kind } }", json!({})).await;
    assert!(
        n["data"]["notifications"].as_array().unwrap().iter().any(|k| k["kind"] == "account_deletion_canceled"),
        "{n}"
    );
    let scheduled: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT deletion_scheduled_at FROM users WHERE id = $1")
            .bind(ann.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(scheduled.is_none());
}

#[tokio::test]
async fn the_end_of_the_grace_period_erases_rows_objects_tokens_and_archives_invoices() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder()
        .with_stripe(&stripe)
        .with_s3()
        .with_redis()
        .with_env("PLINTH_ACCOUNT_SWEEP_SECS", "1")
        .spawn()
        .await;
    let other = app.another_instance().await;
    let mut ann = app.register("ann").await;
    let bob = app.register("bob").await;
    // A paying customer with an invoice.
    let t = chrono::Utc::now().timestamp();
    let customer = app.subscribe_to_pro(&stripe, &mut ann, "sub_ann", "active", t).await;
    let paid = invoice("in_ann", &customer, "paid", 4900, t);
    assert_eq!(app.deliver_webhook(&event("evt_i", "invoice.paid", t, paid)).await.0, 200);
    app.refresh_session(&mut ann).await;
    let invoice_ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM invoices WHERE user_id = $1").bind(ann.id).fetch_all(&app.db).await.unwrap();
    assert_eq!(invoice_ids.len(), 1);
    furnish(&app, &ann, "Ann's jacket", 3).await;
    let (_, bob_token) = furnish(&app, &bob, "Bob's boots", 5).await;
    let api_token = app
        .gql(
            Some(&ann.access),
            "mutation { createApiToken(input: {name: \"cli\", scopes: [\"drafts:read\"]}) { token } }",
            json!({}),
        )
        .await["data"]["createApiToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let photo_url = app
        .gql(Some(&ann.access), "{ drafts(first: 1) { edges { node { photos { url } } } } }", json!({}))
        .await["data"]["drafts"]["edges"][0]["node"]["photos"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.http().get(&photo_url).send().await.unwrap().status(), 200);
    let export = export_now(&app, &ann).await;
    let ready = export_in(&app, &ann, export["id"].as_str().unwrap(), "READY").await;
    let export_url = ready["downloadUrl"].as_str().unwrap().to_owned();

    schedule_deletion(&app, &ann).await;
    // During the grace period the account works.
    assert_eq!(
        app.gql(Some(&api_token), "{ drafts(first: 1) { edges { node { id } } } }", json!({})).await["errors"],
        Value::Null
    );

    // The grace period ends (the clock of the test: the due date moves to the past).
    end_grace_period(&app, &ann).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.count(&format!("users WHERE id = '{}'", ann.id)).await > 0 {
        assert!(Instant::now() < deadline, "the account was not erased");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Every table with a user_id column has no row of hers; the other user keeps his.
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.columns
          WHERE table_schema = 'public' AND column_name = 'user_id' ORDER BY 1",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(tables.len() >= 20, "{tables:?}");
    for table in &tables {
        let n = app.count(&format!("\"{table}\" WHERE user_id = '{}'", ann.id)).await;
        assert_eq!(n, 0, "{table} keeps {n} rows of the erased account");
    }
    for table in ["drafts", "photos", "jobs", "api_tokens", "sessions", "marketplace_accounts"] {
        assert!(
            app.count(&format!("{table} WHERE user_id = '{}'", bob.id)).await > 0,
            "{table} lost the other user's rows"
        );
    }
    // The objects are gone.
    assert_eq!(app.http().get(&photo_url).send().await.unwrap().status(), 404, "the photo's object");
    assert_eq!(app.http().get(&export_url).send().await.unwrap().status(), 404, "the export's object");
    // Stripe was told.
    assert_eq!(stripe.requests_to("DELETE /v1/subscriptions/sub_ann").len(), 1);
    // The invoice is archived under the pseudonym, with neither id nor address.
    let sealer = api::secretbox::SecretBox::load_or_create(&app.data_dir.join("credentials_key")).unwrap();
    let subject = api::accounts::privacy::Privacy::pseudonym(&sealer, ann.id);
    let archived: Vec<(Uuid, String, String)> =
        sqlx::query_as("SELECT id, subject, to_jsonb(a)::text FROM invoice_archive a")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(archived.iter().map(|a| a.0).collect::<Vec<_>>(), invoice_ids);
    assert_eq!(archived[0].1, subject);
    assert!(!archived[0].2.contains(&ann.id.to_string()) && !archived[0].2.contains(&ann.email), "{}", archived[0].2);
    // Only the admin role reads the archive.
    let url = crate::helpers::admin_url(&app.database).replace("postgres@", "plinth_app@");
    let mut conn: sqlx::PgConnection = sqlx::Connection::connect(&url).await.unwrap();
    for (role, rows) in
        [("plinth_admin", Some(1i64)), ("plinth_user", None), ("plinth_support", None), ("plinth_system", None)]
    {
        let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
        sqlx::query("SELECT set_config('role', $1, true), set_config('plinth.user_id', $2, true)")
            .bind(role)
            .bind(bob.id.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
        let n: Result<i64, _> = sqlx::query_scalar("SELECT count(*) FROM invoice_archive").fetch_one(&mut *tx).await;
        assert_eq!(n.ok(), rows, "{role} reading the invoice archive");
        tx.rollback().await.ok();
    }
    // Her tokens are refused on every instance: the access token, the API token.
    for instance in [&app, &other] {
        let old = instance.gql(Some(&ann.access), "{ me { id } }", json!({})).await;
        assert_eq!(code(&old), "UNAUTHENTICATED", "{old}");
        let api = instance.gql(Some(&api_token), "{ drafts(first: 1) { edges { node { id } } } }", json!({})).await;
        assert_eq!(code(&api), "UNAUTHENTICATED", "{api}");
    }
    let refresh = app
        .gql(
            None,
            "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }",
            json!({ "t": ann.refresh }),
        )
        .await;
    assert_eq!(code(&refresh), "UNAUTHENTICATED", "{refresh}");
    // An instance started after the erasure (it heard no event; the account's own
    // revocation row went with it) refuses the leftover access token too.
    let later = app.another_instance().await;
    let old = later.gql(Some(&ann.access), "{ me { id } }", json!({})).await;
    assert_eq!(code(&old), "UNAUTHENTICATED", "{old}");
    // The other user's tokens still work.
    assert_eq!(
        app.gql(Some(&bob_token), "{ drafts(first: 1) { edges { node { id } } } }", json!({})).await["errors"],
        Value::Null
    );
    assert_eq!(later.gql(Some(&bob.access), "{ me { id } }", json!({})).await["errors"], Value::Null);
}

/// Once the sweeper has begun an erasure (the mark is committed before Stripe and the
/// objects are touched), a sign-in no longer keeps the account: it is refused like an
/// unknown address and the deletion stays scheduled; before the mark, it cancels.
#[tokio::test]
async fn a_sign_in_after_the_erasure_began_is_refused_and_cancels_nothing() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    schedule_deletion(&app, &ann).await;
    // The grace period ends and the sweeper marks the account (its first step), as
    // the system role through the same function.
    end_grace_period(&app, &ann).await;
    let begun: bool =
        sqlx::query_scalar("SELECT priv.begin_erasure($1, now())").bind(ann.id).fetch_one(&app.db).await.unwrap();
    assert!(begun);
    let login = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { accessToken } }";
    let r = app.gql(None, login, json!({ "e": ann.email, "p": ann.password })).await;
    assert_eq!(code(&r), "UNAUTHENTICATED", "{r}");
    let still: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT deletion_scheduled_at FROM users WHERE id = $1")
            .bind(ann.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(still.is_some(), "a refused sign-in cancelled the erasure");
    // Marking again is harmless (a run that stopped half-way resumes).
    let again: bool =
        sqlx::query_scalar("SELECT priv.begin_erasure($1, now())").bind(ann.id).fetch_one(&app.db).await.unwrap();
    assert!(again);
}

/// A measurement, not a check: how long an export of a user with many drafts and
/// photos takes from the request to READY (`cargo nextest run --run-ignored all
/// export_timing`, output with `--no-capture`).
#[tokio::test]
#[ignore = "a measurement"]
async fn export_timing() {
    let app = TestApp::builder()
        .with_s3()
        .with_unlimited_free_plan()
        .with_env("PLINTH_ACCOUNT_SWEEP_SECS", "1")
        .spawn()
        .await;
    let ann = app.register("ann").await;
    let (drafts, photos) = (500, 50);
    for i in 0..drafts {
        let d = app.create_draft(&ann.access, &format!("draft {i}")).await;
        if i < photos {
            app.upload_photo(&ann.access, Some(&d), "image/png", &png(64, 64)).await;
        }
    }
    let started = Instant::now();
    let e = export_now(&app, &ann).await;
    let ready = export_in(&app, &ann, e["id"].as_str().unwrap(), "READY").await;
    println!(
        "export of {drafts} drafts and {photos} photos: READY after {:.2?} (polled every 100 ms, builder every 1 s), {} bytes",
        started.elapsed(),
        ready["byteSize"]
    );
}

#[tokio::test]
async fn wrong_current_passwords_are_throttled_per_account_across_fields_and_aliases() {
    // A stolen access token is no oracle for the password: one document of aliased
    // deleteMyAccount (or changePassword, or updateProfile's change of address) guesses
    // used to tell the right one from the wrong ones without any limit.
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let mut doc = String::from("mutation {");
    for i in 0..6 {
        doc.push_str(&format!(" g{i}: deleteMyAccount(input: {{currentPassword: \"guess {i}\"}}) {{ id }}"));
    }
    doc.push('}');
    let r = app.gql(Some(&ann.access), &doc, json!({})).await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");
    let r = app
        .gql(
            Some(&ann.access),
            "mutation { a: changePassword(currentPassword: \"guess a\", newPassword: \"whatever 12345\")
                        b: changePassword(currentPassword: \"guess b\", newPassword: \"whatever 12345\") }",
            json!({}),
        )
        .await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");
    for i in 0..2 {
        let r = app
            .gql(
                Some(&ann.access),
                "mutation($i: UpdateProfileInput!) { updateProfile(input: $i) { id } }",
                json!({ "i": { "email": format!("elsewhere{i}@example.org"), "currentPassword": format!("guess u{i}") } }),
            )
            .await;
        assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");
    }
    // Ten wrong passwords: the right one is refused too, and nothing is scheduled.
    let q = "mutation($p: String!) { deleteMyAccount(input: {currentPassword: $p}) { deletionScheduledAt } }";
    let r = app.gql(Some(&ann.access), q, json!({ "p": ann.password })).await;
    assert_eq!(code(&r), "RATE_LIMITED", "{r}");
    let me = app.gql(Some(&ann.access), "{ me { deletionScheduledAt } }", json!({})).await;
    assert!(me["data"]["me"]["deletionScheduledAt"].is_null(), "{me}");
    // Another account is not affected.
    let bob = app.register("bob").await;
    let r = app.gql(Some(&bob.access), q, json!({ "p": bob.password })).await;
    assert!(r["data"]["deleteMyAccount"]["deletionScheduledAt"].is_string(), "{r}");
}

#[tokio::test]
async fn the_export_does_not_tell_which_addresses_have_accounts() {
    // updateProfile answers the same for a taken and a free address and mails only the
    // free one: the export's mail list must not show the difference.
    let app = TestApp::builder().with_env("PLINTH_ACCOUNT_SWEEP_SECS", "1").spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let update = "mutation($i: UpdateProfileInput!) { updateProfile(input: $i) { email } }";
    let free = format!("free-{}@example.org", &Uuid::new_v4().simple().to_string()[..8]);
    for to in [bob.email.as_str(), free.as_str()] {
        let r =
            app.gql(Some(&ann.access), update, json!({ "i": { "email": to, "currentPassword": ann.password } })).await;
        assert!(r["data"]["updateProfile"].is_object(), "{r}");
    }
    let export = export_now(&app, &ann).await;
    let ready = export_in(&app, &ann, export["id"].as_str().unwrap(), "READY").await;
    let url = ready["downloadUrl"].as_str().unwrap();
    let bytes = app.http().get(url).send().await.unwrap().bytes().await.unwrap();
    let files = unzip(&bytes);
    let mails = jsonl(&files, "emails.jsonl");
    assert!(mails.iter().any(|m| m["to"] == ann.email.as_str()), "the account's own mail is listed: {mails:?}");
    for to in [bob.email.as_str(), free.as_str()] {
        assert!(!mails.iter().any(|m| m["to"] == to), "mail to {to} is listed: {mails:?}");
    }
    // The requests themselves are the user's data.
    let activity = jsonl(&files, "activity.jsonl");
    for to in [bob.email.as_str(), free.as_str()] {
        assert!(activity.iter().any(|a| a["data"]["email"] == to), "{activity:?}");
    }
}

#[tokio::test]
async fn an_account_may_ask_for_three_exports_a_day() {
    // Each export copies every photo into an archive kept a week outside the storage
    // quota: asked for again as soon as one is ready, exports used to pile up without
    // limit (and keep the builders busy).
    let app = TestApp::builder().with_env("PLINTH_ACCOUNT_SWEEP_SECS", "1").spawn().await;
    let ann = app.register("ann").await;
    for _ in 0..3 {
        let e = export_now(&app, &ann).await;
        export_in(&app, &ann, e["id"].as_str().unwrap(), "READY").await;
    }
    let r = app.gql(Some(&ann.access), "mutation { exportMyData { id } }", json!({})).await;
    assert_eq!(code(&r), "RATE_LIMITED", "{r}");
    let wait = r["errors"][0]["extensions"]["retryAfter"].as_u64().unwrap_or_else(|| panic!("{r}"));
    assert!((86_000..=86_400).contains(&wait), "{wait}");
    assert_eq!(app.count(&format!("data_exports WHERE user_id = '{}'", ann.id)).await, 3);
    // A day later, one more.
    sqlx::query("UPDATE data_exports SET created_at = created_at - interval '25 hours' WHERE user_id = $1")
        .bind(ann.id)
        .execute(&app.db)
        .await
        .unwrap();
    let e = export_now(&app, &ann).await;
    assert_eq!(e["status"], "PENDING", "{e}");
    // Another account is not affected.
    let bob = app.register("bob").await;
    export_now(&app, &bob).await;
}

/// While an erasure is under way (here: Stripe's cancellation held), the account is
/// locked, not half-alive: its access token is refused, its refresh token gets nothing,
/// sign-in is refused, and its rows still exist until the erasure finishes.
#[tokio::test]
async fn an_account_being_erased_is_locked_until_the_erasure_finishes() {
    let stripe = FakeStripe::start().await;
    let app =
        TestApp::builder().with_stripe(&stripe).with_redis().with_env("PLINTH_ACCOUNT_SWEEP_SECS", "1").spawn().await;
    let mut ann = app.register("ann").await;
    app.subscribe_to_pro(&stripe, &mut ann, "sub_ann", "active", chrono::Utc::now().timestamp()).await;
    schedule_deletion(&app, &ann).await;

    let mut held = stripe.hold("DELETE /v1/subscriptions/sub_ann");
    end_grace_period(&app, &ann).await;
    tokio::time::timeout(Duration::from_secs(30), held.arrived()).await.expect("the sweeper never called Stripe");
    // The mark is committed and announced before Stripe is called.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let me = app.gql(Some(&ann.access), "{ me { id } }", json!({})).await;
        if code(&me) == "UNAUTHENTICATED" {
            break;
        }
        assert!(Instant::now() < deadline, "the access token still works during the erasure: {me}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refresh = app
        .gql(
            None,
            "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }",
            json!({ "t": ann.refresh }),
        )
        .await;
    assert_eq!(code(&refresh), "UNAUTHENTICATED", "{refresh}");
    let login = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { accessToken } }";
    let r = app.gql(None, login, json!({ "e": ann.email, "p": ann.password })).await;
    assert_eq!(code(&r), "UNAUTHENTICATED", "{r}");
    assert_eq!(app.count(&format!("users WHERE id = '{}'", ann.id)).await, 1, "erased before Stripe answered");

    held.release();
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.count(&format!("users WHERE id = '{}'", ann.id)).await > 0 {
        assert!(Instant::now() < deadline, "the account was not erased once Stripe answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The erasure deletes the account's folders whole, so objects no row of the user's
/// lists go too (a staff attachment hidden from the user's role, an upload that landed
/// after the rows were read, an import zip), on S3; another account's objects stay.
#[tokio::test]
async fn the_erasure_deletes_objects_no_row_lists_and_nobody_elses() {
    let app = TestApp::builder().with_s3().with_env("PLINTH_ACCOUNT_SWEEP_SECS", "1").spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let store = api::storage::Storage::s3(app.config.storage.s3.as_ref().unwrap()).unwrap();
    let strays = [
        format!("u/{}/tc/{}", ann.id, Uuid::new_v4()),
        format!("u/{}/p/{}", ann.id, Uuid::new_v4()),
        format!("x/{}/{}", ann.id, Uuid::new_v4()),
        // An import zip (never started, or failed): it may hold marketplace credentials.
        format!("i/{}/{}", ann.id, Uuid::new_v4()),
    ];
    let kept = format!("i/{}/{}", bob.id, Uuid::new_v4());
    for key in strays.iter().chain([&kept]) {
        store.put(key, "image/png", &png(8, 8)).await.unwrap();
    }
    schedule_deletion(&app, &ann).await;
    end_grace_period(&app, &ann).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.count(&format!("users WHERE id = '{}'", ann.id)).await > 0 {
        assert!(Instant::now() < deadline, "the account was not erased");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for key in &strays {
        assert!(store.head(key).await.unwrap().is_none(), "{key} outlived the erasure");
    }
    assert!(store.head(&kept).await.unwrap().is_some(), "the other account's object went");
}

/// The export carries the user's support tickets, their messages (never an internal
/// note) and attachments (metadata and bytes), who at support looked at the account and
/// the grants the user gave, experiment assignments and conversions, and NPS answers;
/// nothing of another user.
#[tokio::test]
async fn an_export_holds_support_experiments_and_feedback_without_internal_notes() {
    let app = TestApp::builder().with_s3().with_env("PLINTH_ACCOUNT_SWEEP_SECS", "1").spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let mut sam = app.register("sam").await;
    sqlx::query("UPDATE users SET role = 'support', display_name = 'Sam' WHERE id = $1")
        .bind(sam.id)
        .execute(&app.db)
        .await
        .unwrap();
    app.refresh_session(&mut sam).await;
    let open = "mutation($i: OpenTicketInput!) { openTicket(input: $i) { id } }";
    let mut tickets = Vec::new();
    for (user, subject) in [(&ann, "Ann's scan"), (&bob, "Bob's invoice")] {
        let r = app
            .gql(Some(&user.access), open, json!({ "i": { "subject": subject, "category": "JOBS", "body": "Help" } }))
            .await;
        tickets.push(r["data"]["openTicket"]["id"].as_str().unwrap_or_else(|| panic!("{r}")).to_owned());
    }
    let reply = "mutation($t: ID!, $b: String!) { replyTicket(ticketId: $t, body: $b) { id } }";
    let note = "mutation($t: ID!, $b: String!) { addInternalNote(ticketId: $t, body: $b) { id } }";
    for (q, b) in [(reply, "Staff says restart"), (note, "SECRET internal remark")] {
        let r = app.gql(Some(&sam.access), q, json!({ "t": tickets[0], "b": b })).await;
        assert!(r["errors"].is_null(), "{r}");
    }
    // A PDF Ann attaches.
    let pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n".to_vec();
    let r = app
        .gql(
            Some(&ann.access),
            "mutation($i: TicketAttachmentInput!) { createTicketAttachmentUpload(input: $i) { attachment { id status } uploadUrl headers { name value } } }",
            json!({ "i": { "ticketId": tickets[0], "fileName": "log.pdf", "contentType": "application/pdf",
                           "byteSize": pdf.len(), "sha256": sha256_hex(&pdf), "internal": false } }),
        )
        .await;
    let up = r["data"]["createTicketAttachmentUpload"].clone();
    assert!(up.is_object(), "{r}");
    assert!(app.put_upload(&up, pdf.clone()).await.status().is_success());
    let c = app
        .gql(
            Some(&ann.access),
            "mutation($id: ID!) { confirmTicketAttachment(id: $id) { status } }",
            json!({ "id": up["attachment"]["id"] }),
        )
        .await;
    assert_eq!(c["data"]["confirmTicketAttachment"]["status"], "READY", "{c}");
    // A grant, an experiment and an NPS answer, each for both users.
    sqlx::query("INSERT INTO experiments (key, variants, audience) VALUES ('pricing-page', '[{\"name\": \"a\", \"weight\": 50}, {\"name\": \"b\", \"weight\": 50}]', 'all')")
        .execute(&app.db)
        .await
        .unwrap();
    for (user, comment) in [(&ann, "Ann likes it"), (&bob, "Bob does not")] {
        for sql in [
            "INSERT INTO support_access_grants (id, user_id, expires_at) VALUES (gen_random_uuid(), $1, now() + interval '2 hours')",
            "INSERT INTO experiment_assignments (user_id, experiment_key, variant) VALUES ($1, 'pricing-page', 'b')",
            "INSERT INTO experiment_conversions (user_id, experiment_key, goal) VALUES ($1, 'pricing-page', 'paid')",
        ] {
            sqlx::query(sql).bind(user.id).execute(&app.db).await.unwrap();
        }
        sqlx::query("INSERT INTO nps_responses (id, user_id, score, comment) VALUES (gen_random_uuid(), $1, 9, $2)")
            .bind(user.id)
            .bind(comment)
            .execute(&app.db)
            .await
            .unwrap();
    }

    let queued = export_now(&app, &ann).await;
    let ready = export_in(&app, &ann, queued["id"].as_str().unwrap(), "READY").await;
    let bytes = app.http().get(ready["downloadUrl"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    let files = unzip(&bytes);
    let manifest: Value = serde_json::from_slice(file(&files, "README.json")).unwrap();
    for (name, n) in [
        ("tickets.jsonl", 1),
        ("ticket_messages.jsonl", 2),
        ("ticket_attachments.jsonl", 1),
        ("support_access_grants.jsonl", 1),
        ("experiment_assignments.jsonl", 1),
        ("experiment_conversions.jsonl", 1),
        ("nps_responses.jsonl", 1),
    ] {
        assert_eq!(manifest["counts"][name], n, "{name} in {manifest}");
    }
    assert_eq!(manifest["attachmentFiles"], 1, "{manifest}");
    assert_eq!(jsonl(&files, "tickets.jsonl")[0]["subject"], "Ann's scan");
    let messages = jsonl(&files, "ticket_messages.jsonl");
    assert_eq!(messages[1]["body"], "Staff says restart");
    assert_eq!(messages[1]["author"], json!({ "kind": "STAFF", "name": "Sam" }));
    let attachment = &jsonl(&files, "ticket_attachments.jsonl")[0];
    assert_eq!(attachment["fileName"], "log.pdf");
    assert_eq!(file(&files, attachment["file"].as_str().unwrap()), pdf.as_slice());
    let log = jsonl(&files, "support_access_log.jsonl");
    assert!(log.iter().any(|l| l["action"] == "ticket.reply" && l["staffName"] == "Sam"), "{log:?}");
    assert_eq!(
        jsonl(&files, "experiment_assignments.jsonl")[0],
        json!({ "experiment": "pricing-page", "variant": "b", "assignedAt": jsonl(&files, "experiment_assignments.jsonl")[0]["assignedAt"] })
    );
    assert_eq!(jsonl(&files, "experiment_conversions.jsonl")[0]["goal"], "paid");
    assert_eq!(jsonl(&files, "nps_responses.jsonl")[0]["comment"], "Ann likes it");

    let everything: String = files.iter().map(|(n, b)| format!("{n}\n{}\n", String::from_utf8_lossy(b))).collect();
    for absent in ["SECRET internal remark", "Bob's invoice", "Bob does not", tickets[1].as_str(), &bob.id.to_string()]
    {
        assert!(!everything.contains(absent), "the archive contains {absent:?}");
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}
