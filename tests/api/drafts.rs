//! Drafts over the wire: fields, validation that writes nothing, keyset pagination,
//! filters, soft delete and restore, the dashboard, and a constant number of queries
//! for a page of drafts with their photos.

use crate::helpers::{code, TestApp};
use serde_json::{json, Value};

const CREATE: &str = "mutation($i: CreateDraftInput!) { createDraft(input: $i) {
    id title description priceCents currency brand size condition category status photos { id } } }";
const UPDATE: &str = "mutation($id: ID!, $i: UpdateDraftInput!) { updateDraft(id: $id, input: $i) {
    id title description priceCents currency brand size condition category status } }";
const LIST: &str = "query($f: Int, $a: String, $s: DraftStatus, $q: String) {
    drafts(first: $f, after: $a, status: $s, search: $q) { edges { cursor node { id title } } pageInfo { hasNextPage endCursor } } }";

#[tokio::test]
async fn a_draft_is_created_updated_and_cleared_field_by_field() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let input = json!({ "title": " Wool coat ", "description": "Warm", "priceCents": 4500, "currency": "eur",
        "brand": "Acme", "size": "M", "condition": "VERY_GOOD", "category": "Coats", "status": "READY" });
    let r = app.gql(Some(&ann.access), CREATE, json!({ "i": input })).await;
    let d = &r["data"]["createDraft"];
    assert_eq!(d["title"], "Wool coat");
    assert_eq!(d["currency"], "EUR");
    assert_eq!(d["condition"], "VERY_GOOD");
    assert_eq!(d["status"], "READY");
    assert_eq!(d["photos"], json!([]));
    let id = d["id"].as_str().unwrap();

    let r = app
        .gql(
            Some(&ann.access),
            UPDATE,
            json!({ "id": id, "i": { "priceCents": null, "brand": null, "title": "Coat" } }),
        )
        .await;
    let u = &r["data"]["updateDraft"];
    assert_eq!(
        (u["title"].as_str(), u["priceCents"].clone(), u["brand"].clone()),
        (Some("Coat"), Value::Null, Value::Null)
    );
    assert_eq!(u["size"], "M", "absent fields stay");
    let read = app.gql(Some(&ann.access), "query($id: ID!) { draft(id: $id) { title } }", json!({ "id": id })).await;
    assert_eq!(read["data"]["draft"]["title"], "Coat");
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM activity_log WHERE subject_id = $1::uuid ORDER BY id")
            .bind(id)
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(actions, ["draft.create", "draft.update"]);
}

#[tokio::test]
async fn invalid_fields_name_themselves_and_write_nothing() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let before = app.count("activity_log").await;
    let cases = [
        (json!({ "title": "" }), "input.title"),
        (json!({ "title": "x".repeat(201) }), "input.title"),
        (json!({ "title": "ok", "description": "x".repeat(5001) }), "input.description"),
        (json!({ "title": "ok", "priceCents": -1 }), "input.priceCents"),
        (json!({ "title": "ok", "priceCents": 100_000_001 }), "input.priceCents"),
        (json!({ "title": "ok", "currency": "XYZ" }), "input.currency"),
        (json!({ "title": "ok", "brand": "x".repeat(101) }), "input.brand"),
        (json!({ "title": "ok", "size": "  " }), "input.size"),
    ];
    for (input, field) in cases {
        let r = app.gql(Some(&ann.access), CREATE, json!({ "i": input })).await;
        assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");
        assert_eq!(r["errors"][0]["extensions"]["field"], field, "{r}");
    }
    let enum_bad = app.gql(Some(&ann.access), CREATE, json!({ "i": { "title": "ok", "status": "SOLD" } })).await;
    assert!(enum_bad["errors"].is_array());
    assert_eq!(app.count("drafts").await, 0);
    assert_eq!(app.count("activity_log").await, before);

    let id = app.create_draft(&ann.access, "Kept").await;
    let r = app.gql(Some(&ann.access), UPDATE, json!({ "id": id, "i": { "title": "New", "priceCents": -5 } })).await;
    assert_eq!(code(&r), "BAD_USER_INPUT");
    let read = app.gql(Some(&ann.access), "query($id: ID!) { draft(id: $id) { title } }", json!({ "id": id })).await;
    assert_eq!(read["data"]["draft"]["title"], "Kept", "a refused update changes nothing");
    let bad_id = app.gql(Some(&ann.access), "{ draft(id: \"nope\") { id } }", json!({})).await;
    assert_eq!(code(&bad_id), "BAD_USER_INPUT");
    let anon = app.gql(None, LIST, json!({})).await;
    assert_eq!(code(&anon), "UNAUTHENTICATED");
}

async fn page(app: &TestApp, token: &str, vars: Value) -> (Vec<String>, bool, Option<String>) {
    let r = app.gql(Some(token), LIST, vars).await;
    let c = &r["data"]["drafts"];
    assert!(c.is_object(), "{r}");
    let titles =
        c["edges"].as_array().unwrap().iter().map(|e| e["node"]["title"].as_str().unwrap().to_owned()).collect();
    (titles, c["pageInfo"]["hasNextPage"].as_bool().unwrap(), c["pageInfo"]["endCursor"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn pages_are_stable_newest_first_and_capped() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    for i in 0..25 {
        app.create_draft(&ann.access, &format!("d{i:02}")).await;
    }
    let (p1, more, cursor) = page(&app, &ann.access, json!({ "f": 10 })).await;
    assert_eq!(p1.first().map(String::as_str), Some("d24"));
    assert!(more);
    // A draft created between two pages does not shift the next page.
    app.create_draft(&ann.access, "late").await;
    let (p2, more, cursor) = page(&app, &ann.access, json!({ "f": 10, "a": cursor })).await;
    assert_eq!(p2.first().map(String::as_str), Some("d14"));
    assert!(more);
    let (p3, more, _) = page(&app, &ann.access, json!({ "f": 10, "a": cursor })).await;
    assert_eq!(p3.len(), 5);
    assert!(!more);

    for i in 0..80 {
        app.create_draft(&ann.access, &format!("e{i:02}")).await;
    }
    let (all, more, _) = page(&app, &ann.access, json!({ "f": 1000 })).await;
    assert_eq!(all.len(), 100, "first is capped at 100");
    assert!(more);
    let (default, _, _) = page(&app, &ann.access, json!({})).await;
    assert_eq!(default.len(), 20);
    for (vars, field) in
        [(json!({ "f": 0 }), "first"), (json!({ "f": -1 }), "first"), (json!({ "a": "garbage" }), "after")]
    {
        let r = app.gql(Some(&ann.access), LIST, vars).await;
        assert_eq!(code(&r), "BAD_USER_INPUT");
        assert_eq!(r["errors"][0]["extensions"]["field"], field);
    }
}

#[tokio::test]
async fn filters_by_status_and_search() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let jacket = app.create_draft(&ann.access, "Blue Jacket").await;
    app.create_draft(&ann.access, "Red shoes").await;
    app.create_draft(&ann.access, "100% wool_scarf").await;
    app.gql(Some(&ann.access), UPDATE, json!({ "id": jacket, "i": { "status": "READY" } })).await;
    assert_eq!(page(&app, &ann.access, json!({ "s": "READY" })).await.0, ["Blue Jacket"]);
    assert_eq!(page(&app, &ann.access, json!({ "q": "jACKet" })).await.0, ["Blue Jacket"]);
    assert_eq!(page(&app, &ann.access, json!({ "q": "%" })).await.0, ["100% wool_scarf"], "LIKE wildcards are literal");
    assert_eq!(page(&app, &ann.access, json!({ "q": "_" })).await.0, ["100% wool_scarf"]);
    assert!(page(&app, &ann.access, json!({ "q": "shoes", "s": "READY" })).await.0.is_empty());
}

#[tokio::test]
async fn deleted_drafts_vanish_and_can_be_restored() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let id = app.create_draft(&ann.access, "Lamp").await;
    let del = app.gql(Some(&ann.access), "mutation($id: ID!) { deleteDraft(id: $id) }", json!({ "id": id })).await;
    assert_eq!(del["data"]["deleteDraft"], true);
    assert!(page(&app, &ann.access, json!({})).await.0.is_empty());
    let read = app.gql(Some(&ann.access), "query($id: ID!) { draft(id: $id) { id } }", json!({ "id": id })).await;
    assert_eq!(read["data"]["draft"], Value::Null);
    let again = app.gql(Some(&ann.access), "mutation($id: ID!) { deleteDraft(id: $id) }", json!({ "id": id })).await;
    assert_eq!(code(&again), "NOT_FOUND");
    let restored =
        app.gql(Some(&ann.access), "mutation($id: ID!) { restoreDraft(id: $id) { title } }", json!({ "id": id })).await;
    assert_eq!(restored["data"]["restoreDraft"]["title"], "Lamp");
    assert_eq!(page(&app, &ann.access, json!({})).await.0, ["Lamp"]);
    // Past the window, nothing to restore.
    app.gql(Some(&ann.access), "mutation($id: ID!) { deleteDraft(id: $id) }", json!({ "id": id })).await;
    sqlx::query("UPDATE drafts SET deleted_at = now() - interval '31 days' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&app.db)
        .await
        .unwrap();
    let late =
        app.gql(Some(&ann.access), "mutation($id: ID!) { restoreDraft(id: $id) { id } }", json!({ "id": id })).await;
    assert_eq!(code(&late), "NOT_FOUND");
}

#[tokio::test]
async fn the_dashboard_counts_the_callers_data_only() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let a = app.create_draft(&ann.access, "a").await;
    app.create_draft(&ann.access, "b").await;
    app.create_draft(&bob.access, "bob's").await;
    app.gql(Some(&ann.access), UPDATE, json!({ "id": a, "i": { "status": "PUBLISHED" } })).await;
    app.gql(
        Some(&ann.access),
        "mutation { connectMarketplaceAccount(input: {platform: VINTED, displayName: \"shop\", credentials: {token: \"t\"}}) { id } }",
        json!({}),
    )
    .await;
    let r = app
        .gql(
            Some(&ann.access),
            "{ dashboard { drafts { draft ready published archived total } photoCount storageBytes connectedAccounts
               recentActivity { action subjectType } } }",
            json!({}),
        )
        .await;
    let d = &r["data"]["dashboard"];
    assert_eq!(d["drafts"], json!({ "draft": 1, "ready": 0, "published": 1, "archived": 0, "total": 2 }));
    assert_eq!(d["connectedAccounts"], 1);
    assert_eq!(d["storageBytes"], 0);
    let actions: Vec<_> =
        d["recentActivity"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions[0], "marketplace_account.connect");
    assert!(actions.contains(&"draft.update") && actions.contains(&"account.register"));
    assert!(!actions.is_empty() && actions.len() <= 10);
    let act = app
        .gql(
            Some(&ann.access),
            "{ activity(first: 2) { edges { node { action } } pageInfo { hasNextPage } } }",
            json!({}),
        )
        .await;
    assert_eq!(act["data"]["activity"]["edges"].as_array().unwrap().len(), 2);
    assert_eq!(act["data"]["activity"]["pageInfo"]["hasNextPage"], true);
}

async fn statements(app: &TestApp) -> i64 {
    let text = app.http().get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("plinth_db_statements_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("plinth_db_statements_total")
}

/// Seeds `n` drafts with two ready photos each, directly in the database.
async fn seed(app: &TestApp, user: uuid::Uuid, n: i32) {
    sqlx::query(
        "WITH d AS (
           INSERT INTO drafts (id, user_id, title, created_at)
           SELECT gen_random_uuid(), $1, 'seeded ' || g, now() - g * interval '1 second' FROM generate_series(1, $2) g
           RETURNING id)
         INSERT INTO photos (id, user_id, draft_id, position, object_key, content_type, byte_size, status)
         SELECT gen_random_uuid(), $1, d.id, p, 'u/' || $1 || '/p/' || gen_random_uuid(), 'image/png', 10, 'ready'
         FROM d CROSS JOIN generate_series(0, 1) p",
    )
    .bind(user)
    .bind(n)
    .execute(&app.db)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_page_with_photos_costs_a_constant_number_of_queries() {
    // Background tasks send statements too: they run once at start, then not for an hour;
    // mail delivery (which polls) is off.
    let setup =
        TestApp::builder().with_env("PLINTH_JOB_SWEEP_SECS", "3600").with_env("PLINTH_MAIL_WORKERS", "0").spawn().await;
    let ann = setup.register("ann").await;
    seed(&setup, ann.id, 100).await;
    // The statement counter is process-wide: measured where no other test's app runs.
    let app = setup.another_instance_in_its_own_process().await;
    for _ in 0..100 {
        let text = app.http().get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let ran = |task: &str| text.lines().any(|l| l.starts_with("plinth_task_runs_total") && l.contains(task));
        if ["jobs.requeue_expired", "jobs.observe_queue", "billing.expire_grace", "email.sequences"]
            .into_iter()
            .all(ran)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let q = "query($f: Int) { drafts(first: $f) { edges { node { id title photos { id position draft { id title } } } } } }";
    let mut costs = Vec::new();
    for first in [10, 100] {
        let before = statements(&app).await;
        let r = app.gql(Some(&ann.access), q, json!({ "f": first })).await;
        let edges = r["data"]["drafts"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), first as usize);
        assert!(edges.iter().all(|e| e["node"]["photos"].as_array().unwrap().len() == 2), "{r}");
        costs.push(statements(&app).await - before);
    }
    println!("statements per request: first 10 -> {}, first 100 -> {}", costs[0], costs[1]);
    assert_eq!(costs[0], costs[1], "the cost grows with the page: N+1");
    assert!(costs[1] <= 3, "{} statements for one page", costs[1]);
}
