//! Experiments and NPS over the wire: deterministic, sticky assignment across two
//! instances; weights; the new-users audience; stopping; idempotent exposure and
//! conversions; results and NPS summaries on fixtures worked out by hand; who may call
//! what; and that no user sees another's assignment or answer.
use crate::helpers::{code, TestApp, TestUser};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

async fn with_role(app: &TestApp, name: &str, role: &str) -> TestUser {
    let mut u = app.register(name).await;
    sqlx::query("UPDATE users SET role = $2 WHERE id = $1").bind(u.id).bind(role).execute(&app.db).await.unwrap();
    app.refresh_session(&mut u).await;
    u
}

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
}

#[track_caller]
fn close(v: &Value, want: f64) {
    let got = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert!((got - want).abs() < 1e-6, "{got} != {want}");
}

const CREATE: &str = "mutation($i: CreateExperimentInput!) { createExperiment(input: $i) {
    key status audience variants { name weight } } }";
const VARIANT: &str = "query($k: String!) { experimentVariant(key: $k) { key variant inExperiment status } }";
const TRACK: &str = "mutation($k: String!, $g: String!) { trackConversion(experiment: $k, goal: $g) }";
const RESULTS: &str = "query($k: String!, $g: String!) { experimentResults(key: $k, goal: $g) { goal
    experiment { key status winner } variants { variant weight exposed converted rate difference ciLow ciHigh
    zScore pValue } } }";
const NPS: &str = "mutation($i: SubmitNpsInput!) { submitNps(input: $i) { score submittedAt nextAllowedAt } }";
const SUMMARY: &str = "query($f: DateTime!, $t: DateTime!) { npsSummary(from: $f, to: $t) { respondents promoters
    passives detractors nps eligible responseRate distribution { score respondents }
    recentComments { score comment submittedAt } } }";

async fn create(app: &TestApp, admin: &TestUser, key: &str, arms: &[(&str, i32)], audience: &str) -> Value {
    let variants: Vec<Value> = arms.iter().map(|(n, w)| json!({ "name": n, "weight": w })).collect();
    let r = app
        .gql(Some(&admin.access), CREATE, json!({ "i": { "key": key, "variants": variants, "audience": audience } }))
        .await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["createExperiment"].clone()
}

async fn variant(app: &TestApp, token: &str, key: &str) -> Value {
    let r = app.gql(Some(token), VARIANT, json!({ "k": key })).await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["experimentVariant"].clone()
}

/// The assignment rule written out independently of the server: the first 8 bytes of
/// SHA-256(key, NUL, user id bytes), big-endian, modulo the total weight, into the
/// cumulative ranges.
fn expected(key: &str, user: Uuid, arms: &[(&str, i32)]) -> String {
    let d = Sha256::new().chain_update(key.as_bytes()).chain_update([0u8]).chain_update(user.as_bytes()).finalize();
    let total: u64 = arms.iter().map(|(_, w)| u64::try_from(*w).unwrap()).sum();
    let mut x = u64::from_be_bytes(d[..8].try_into().unwrap()) % total;
    for (name, w) in arms {
        let w = u64::try_from(*w).unwrap();
        if x < w {
            return (*name).to_owned();
        }
        x -= w;
    }
    unreachable!()
}

/// Two instances of one deployment give every user the same variant, the one the rule
/// gives, and record it once; concurrent first exposures make one row; the rule splits
/// 1000 ids by the weights (within 4.5 points, over 4 standard deviations).
#[tokio::test]
async fn assignment_is_deterministic_across_instances_sticky_and_weighted() {
    let app = TestApp::spawn().await;
    let other = app.another_instance().await;
    let admin = with_role(&app, "admin", "admin").await;
    let arms = [("control", 50), ("blue", 30), ("green", 20)];
    let made = create(&app, &admin, "checkout.color", &arms, "ALL").await;
    assert_eq!(made["status"], "RUNNING");
    for i in 0..10 {
        let u = app.register(&format!("u{i}")).await;
        let want = expected("checkout.color", u.id, &arms);
        let (a, b) =
            (variant(&app, &u.access, "checkout.color").await, variant(&other, &u.access, "checkout.color").await);
        assert_eq!(a["variant"], want.as_str(), "{u:?}");
        assert_eq!(b, a);
        assert_eq!(a["inExperiment"], true);
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM experiment_assignments").fetch_one(&app.db).await.unwrap();
    assert_eq!(rows, 10);
    // Concurrent first exposures of one user: one row, one answer.
    let late = app.register("late").await;
    let answers = futures::future::join_all(
        (0..8).map(|i| variant(if i % 2 == 0 { &app } else { &other }, &late.access, "checkout.color")),
    )
    .await;
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    let mine: i64 = sqlx::query_scalar("SELECT count(*) FROM experiment_assignments WHERE user_id = $1")
        .bind(late.id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(mine, 1);
    // Weights, on 1000 ids.
    let mut counts = std::collections::BTreeMap::new();
    for i in 0..1000u128 {
        *counts.entry(expected("checkout.color", Uuid::from_u128(i * 7_919 + 13), &arms)).or_insert(0) += 1;
    }
    for (name, w) in arms {
        let got = f64::from(counts[name]) / 1000.0;
        assert!((got - f64::from(w) / 100.0).abs() < 0.045, "{name}: {got}");
    }
    // Unknown experiments are null (the client shows its default).
    assert!(variant(&app, &late.access, "nope").await.is_null());
}

/// Audience NEW_USERS: a user who signed up before the start gets the control and is
/// not counted; one who signed up after is assigned. Stopping with a winner gives it to
/// everybody, keeps the assignments, and ends conversions.
#[tokio::test]
async fn new_users_audience_and_stopping() {
    let app = TestApp::spawn().await;
    let admin = with_role(&app, "admin", "admin").await;
    let old = app.register("old").await;
    let arms = [("control", 0), ("treat", 1)];
    create(&app, &admin, "onboarding", &arms, "NEW_USERS").await;
    let v = variant(&app, &old.access, "onboarding").await;
    assert_eq!((v["variant"].as_str(), v["inExperiment"].as_bool()), (Some("control"), Some(false)));
    let new = app.register("new").await;
    let v = variant(&app, &new.access, "onboarding").await;
    assert_eq!((v["variant"].as_str(), v["inExperiment"].as_bool()), (Some("treat"), Some(true)));
    assert_eq!(app.count("experiment_assignments").await, 1);
    // Conversions: only the exposed; once per goal.
    for _ in 0..2 {
        let r = app.gql(Some(&new.access), TRACK, json!({ "k": "onboarding", "g": "finished_tour" })).await;
        assert_eq!(r["data"]["trackConversion"], true, "{r}");
    }
    let r = app.gql(Some(&old.access), TRACK, json!({ "k": "onboarding", "g": "finished_tour" })).await;
    assert_eq!(r["data"]["trackConversion"], false, "{r}");
    assert_eq!(app.count("experiment_conversions").await, 1);
    let r = app.gql(Some(&new.access), TRACK, json!({ "k": "onboarding", "g": "paid" })).await;
    assert_eq!(code(&r), "BAD_USER_INPUT");
    let r = app.gql(Some(&new.access), TRACK, json!({ "k": "nope", "g": "x" })).await;
    assert_eq!(code(&r), "NOT_FOUND");
    // Stop with the control as winner.
    let r = app
        .gql(
            Some(&admin.access),
            "mutation { stopExperiment(key: \"onboarding\", winner: \"control\") { status winner } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["stopExperiment"], json!({ "status": "STOPPED", "winner": "control" }), "{r}");
    let v = variant(&app, &new.access, "onboarding").await;
    assert_eq!((v["variant"].as_str(), v["status"].as_str()), (Some("control"), Some("STOPPED")));
    assert_eq!(v["inExperiment"], true);
    assert_eq!(app.count("experiment_assignments").await, 1);
    let r = app.gql(Some(&new.access), TRACK, json!({ "k": "onboarding", "g": "other" })).await;
    assert_eq!(r["data"]["trackConversion"], false, "{r}");
    let r = app.gql(Some(&admin.access), RESULTS, json!({ "k": "onboarding", "g": "finished_tour" })).await;
    let v = &r["data"]["experimentResults"]["variants"];
    assert_eq!((v[1]["exposed"].as_i64(), v[1]["converted"].as_i64()), (Some(1), Some(1)), "{r}");
}

/// Results on a fixture: 200 exposed to the control with 20 conversions, 200 to the
/// treatment with 36. By hand: rates 0.10 and 0.18, difference 0.08; pooled rate
/// 56/400 = 0.14, SE₀ = √(0.14·0.86·(1/200 + 1/200)) = 0.0346987, z = 2.3055617,
/// two-sided p = erfc(z/√2) = 0.0211351; SE = √(0.1·0.9/200 + 0.18·0.82/200) =
/// 0.0344674, 95 % CI = 0.08 ± 1.959964·SE = [0.0124454, 0.1475546]. The derived goal
/// `verified` counts the 10 treatment users verified after their exposure and not the
/// 5 control users verified before it.
#[tokio::test]
async fn results_of_a_known_fixture_match_the_hand_computed_statistics() {
    let app = TestApp::spawn().await;
    let admin = with_role(&app, "admin", "admin").await;
    create(&app, &admin, "pricing.page", &[("control", 1), ("treatment", 1)], "ALL").await;
    sqlx::query(
        "WITH u AS (
           INSERT INTO users (id, email, password_hash, created_at)
           SELECT gen_random_uuid(), 'fx' || g || '@example.com', 'x', now() - interval '1 day'
           FROM generate_series(1, 400) g RETURNING id, email),
         n AS (SELECT id, substring(email from '[0-9]+')::int AS g FROM u),
         a AS (INSERT INTO experiment_assignments (user_id, experiment_key, variant, assigned_at)
               SELECT id, 'pricing.page', CASE WHEN g <= 200 THEN 'control' ELSE 'treatment' END,
                      now() - interval '1 hour' FROM n RETURNING user_id)
         SELECT count(*) FROM a",
    )
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO experiment_conversions (user_id, experiment_key, goal)
         SELECT u.id, 'pricing.page', 'clicked_buy' FROM users u
         WHERE u.email ~ '^fx[0-9]+@' AND (substring(u.email from '[0-9]+')::int BETWEEN 1 AND 20
                                         OR substring(u.email from '[0-9]+')::int BETWEEN 201 AND 236)",
    )
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE users SET email_verified_at = CASE WHEN substring(email from '[0-9]+')::int <= 200
                                                  THEN now() - interval '2 hours' ELSE now() END
         WHERE email ~ '^fx[0-9]+@' AND substring(email from '[0-9]+')::int IN (1, 2, 3, 4, 5, 201, 202, 203, 204, 205,
                                                                                206, 207, 208, 209, 210)",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let r = app.gql(Some(&admin.access), RESULTS, json!({ "k": "pricing.page", "g": "clicked_buy" })).await;
    assert!(r["errors"].is_null(), "{r}");
    let v = &r["data"]["experimentResults"]["variants"];
    assert_eq!(v[0]["variant"], "control");
    assert_eq!((v[0]["exposed"].as_i64(), v[0]["converted"].as_i64()), (Some(200), Some(20)));
    close(&v[0]["rate"], 0.10);
    assert!(v[0]["pValue"].is_null() && v[0]["difference"].is_null());
    assert_eq!((v[1]["exposed"].as_i64(), v[1]["converted"].as_i64()), (Some(200), Some(36)));
    close(&v[1]["rate"], 0.18);
    close(&v[1]["difference"], 0.08);
    close(&v[1]["zScore"], 2.305_561_7);
    close(&v[1]["pValue"], 0.021_135_1);
    close(&v[1]["ciLow"], 0.012_445_4);
    close(&v[1]["ciHigh"], 0.147_554_6);
    let r = app.gql(Some(&admin.access), RESULTS, json!({ "k": "pricing.page", "g": "verified" })).await;
    let v = &r["data"]["experimentResults"]["variants"];
    assert_eq!((v[0]["converted"].as_i64(), v[1]["converted"].as_i64()), (Some(0), Some(10)), "{r}");
    let r = app.gql(Some(&admin.access), RESULTS, json!({ "k": "nope", "g": "x" })).await;
    assert_eq!(code(&r), "NOT_FOUND");
}

/// NPS: one answer per 90 days (RATE_LIMITED after), scores and comments checked; the
/// summary of a fixture by hand: in January 8 respondents (one answered twice: the later
/// 9 counts, not the earlier 0), promoters 4 (10, 10, 9, 9), passives 2 (8, 7),
/// detractors 2 (6, 3): NPS = 100 × (4 − 2) / 8 = 25; 10 customers eligible, so a
/// response rate of 0.8; one answer in December is outside.
#[tokio::test]
async fn nps_is_limited_per_user_and_summarised_by_hand_numbers() {
    let app = TestApp::spawn().await;
    let admin = with_role(&app, "admin", "admin").await;
    let ann = app.register("ann").await;
    let r = app.gql(Some(&ann.access), NPS, json!({ "i": { "score": 9, "comment": "  nice  " } })).await;
    assert!(r["errors"].is_null(), "{r}");
    let again = app.gql(Some(&ann.access), NPS, json!({ "i": { "score": 10 } })).await;
    assert_eq!(code(&again), "RATE_LIMITED", "{again}");
    let wait = again["errors"][0]["extensions"]["retryAfter"].as_u64().unwrap();
    assert!(wait > 89 * 86_400 && wait <= 90 * 86_400, "{wait}");
    let bob = app.register("bob").await;
    for bad in [json!({ "score": 11 }), json!({ "score": -1 }), json!({ "score": 5, "comment": "x".repeat(1001) })] {
        let r = app.gql(Some(&bob.access), NPS, json!({ "i": bad })).await;
        assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");
    }
    assert_eq!(app.count("nps_responses").await, 1);

    // (user, [(score, (month, day), comment)])
    type Answers<'a> = [(i32, &'a [(i16, (u32, u32), Option<&'a str>)]); 10];
    let answers: Answers = [
        (0, &[(10, (1, 10), None)]),
        (1, &[(10, (1, 11), None)]),
        (2, &[(9, (1, 12), None)]),
        (3, &[(8, (1, 13), None)]),
        (4, &[(7, (1, 14), None)]),
        (5, &[(6, (1, 15), Some("too slow"))]),
        (6, &[(3, (1, 16), None)]),
        (7, &[(0, (1, 5), Some("broken")), (9, (1, 20), Some("better now"))]),
        (8, &[(10, (12, 15), None)]),
        (9, &[]),
    ];
    for (_, rows) in answers {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $1::text || '@example.com', 'x', $2)",
        )
        .bind(id)
        .bind(at(2024, 11, 1))
        .execute(&app.db)
        .await
        .unwrap();
        for (score, (m, d), comment) in rows {
            let y = if *m == 12 { 2024 } else { 2025 };
            sqlx::query(
                "INSERT INTO nps_responses (id, user_id, score, comment, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(Uuid::now_v7())
            .bind(id)
            .bind(score)
            .bind(comment)
            .bind(at(y, *m, *d))
            .execute(&app.db)
            .await
            .unwrap();
        }
    }
    let r = app.gql(Some(&admin.access), SUMMARY, json!({ "f": at(2025, 1, 1), "t": at(2025, 2, 1) })).await;
    assert!(r["errors"].is_null(), "{r}");
    let s = &r["data"]["npsSummary"];
    assert_eq!(
        (s["respondents"].as_i64(), s["promoters"].as_i64(), s["passives"].as_i64(), s["detractors"].as_i64()),
        (Some(8), Some(4), Some(2), Some(2)),
        "{s}"
    );
    close(&s["nps"], 25.0);
    assert_eq!(s["eligible"], 10);
    close(&s["responseRate"], 0.8);
    let dist: Vec<i64> =
        s["distribution"].as_array().unwrap().iter().map(|d| d["respondents"].as_i64().unwrap()).collect();
    assert_eq!(dist, [0, 0, 0, 1, 0, 0, 1, 1, 1, 2, 2]);
    let comments: Vec<&str> =
        s["recentComments"].as_array().unwrap().iter().map(|c| c["comment"].as_str().unwrap()).collect();
    assert_eq!(comments, ["better now", "too slow", "broken"]);
    let r = app.gql(Some(&admin.access), SUMMARY, json!({ "f": at(2025, 2, 1), "t": at(2025, 1, 1) })).await;
    assert_eq!(code(&r), "BAD_USER_INPUT");
}

/// Administrators only (with a session) define, stop and read experiments and NPS:
/// users, support agents and API tokens (an admin's included) get FORBIDDEN; API tokens
/// cannot take part in experiments or answer NPS either; anonymous callers are
/// UNAUTHENTICATED.
#[tokio::test]
async fn admin_operations_are_forbidden_to_everyone_else() {
    let app = TestApp::spawn().await;
    let user = app.register("ann").await;
    let support = with_role(&app, "sue", "support").await;
    let admin = with_role(&app, "admin", "admin").await;
    create(&app, &admin, "exp", &[("a", 1), ("b", 1)], "ALL").await;
    let r = app
        .gql(
            Some(&admin.access),
            "mutation { createApiToken(input: {name: \"all\", scopes: [\"drafts:read\", \"usage:read\"]}) { token } }",
            json!({}),
        )
        .await;
    let api = r["data"]["createApiToken"]["token"].as_str().unwrap_or_else(|| panic!("{r}")).to_owned();
    let range = json!({ "f": at(2025, 1, 1), "t": at(2025, 2, 1) });
    let admin_ops = [
        ("mutation { createExperiment(input: {key: \"x\", variants: [{name: \"a\", weight: 1}, {name: \"b\", weight: 1}]}) { key } }", json!({})),
        ("mutation { stopExperiment(key: \"exp\") { key } }", json!({})),
        ("query { experimentResults(key: \"exp\", goal: \"g\") { goal } }", json!({})),
        (SUMMARY, range.clone()),
    ];
    for (q, vars) in &admin_ops {
        for (who, token) in [("user", &user.access), ("support", &support.access), ("api token", &api)] {
            let r = app.gql(Some(token), q, vars.clone()).await;
            assert_eq!(code(&r), "FORBIDDEN", "{who}: {q}: {r}");
        }
        assert_eq!(code(&app.gql(None, q, vars.clone()).await), "UNAUTHENTICATED", "{q}");
    }
    for (q, vars) in [
        (VARIANT, json!({ "k": "exp" })),
        (TRACK, json!({ "k": "exp", "g": "g" })),
        (NPS, json!({ "i": { "score": 5 } })),
    ] {
        assert_eq!(code(&app.gql(Some(&api), q, vars.clone()).await), "FORBIDDEN", "{q}");
        assert_eq!(code(&app.gql(None, q, vars).await), "UNAUTHENTICATED", "{q}");
    }
    // Validation of definitions, and a taken key.
    for bad in [
        json!({ "key": "Bad Key", "variants": [{ "name": "a", "weight": 1 }, { "name": "b", "weight": 1 }] }),
        json!({ "key": "k", "variants": [{ "name": "a", "weight": 1 }] }),
        json!({ "key": "k", "variants": [{ "name": "a", "weight": 1 }, { "name": "a", "weight": 1 }] }),
        json!({ "key": "k", "variants": [{ "name": "a", "weight": 0 }, { "name": "b", "weight": 0 }] }),
        json!({ "key": "k", "variants": [{ "name": "a", "weight": -1 }, { "name": "b", "weight": 1 }] }),
    ] {
        assert_eq!(code(&app.gql(Some(&admin.access), CREATE, json!({ "i": bad })).await), "BAD_USER_INPUT", "{bad}");
    }
    let taken =
        json!({ "i": { "key": "exp", "variants": [{ "name": "a", "weight": 1 }, { "name": "b", "weight": 1 }] } });
    assert_eq!(code(&app.gql(Some(&admin.access), CREATE, taken).await), "CONFLICT");
}

/// A user never sees or writes another's assignment, conversion or NPS answer, even
/// through the runtime role directly; the definitions are readable by every signed-in
/// role but writable by administrators only.
#[tokio::test]
async fn users_never_see_each_others_assignments_or_answers() {
    let app = TestApp::spawn().await;
    let admin = with_role(&app, "admin", "admin").await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    create(&app, &admin, "exp", &[("a", 1), ("b", 1)], "ALL").await;
    variant(&app, &ann.access, "exp").await;
    app.gql(Some(&ann.access), TRACK, json!({ "k": "exp", "g": "g" })).await;
    app.gql(Some(&ann.access), NPS, json!({ "i": { "score": 3, "comment": "secret" } })).await;
    let url = crate::helpers::admin_url(&app.database).replace("postgres@", "plinth_app@");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    for table in ["experiment_assignments", "experiment_conversions", "nps_responses"] {
        for (role, who, want) in
            [("plinth_user", bob.id, 0i64), ("plinth_user", ann.id, 1), ("plinth_admin", admin.id, 0)]
        {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("SELECT set_config('role', $1, true), set_config('plinth.user_id', $2, true)")
                .bind(role)
                .bind(who.to_string())
                .execute(&mut *tx)
                .await
                .unwrap();
            let n: i64 =
                sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut *tx).await.unwrap();
            assert_eq!(n, want, "{table} as {role} {who}");
            tx.rollback().await.unwrap();
        }
    }
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('role', 'plinth_user', true), set_config('plinth.user_id', $1, true)")
        .bind(bob.id.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM experiments").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(seen, 1, "definitions are readable");
    assert!(sqlx::query(
        "INSERT INTO experiment_assignments (user_id, experiment_key, variant) VALUES ($1, 'exp', 'a')"
    )
    .bind(ann.id)
    .execute(&mut *tx)
    .await
    .is_err());
    tx.rollback().await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('role', 'plinth_user', true), set_config('plinth.user_id', $1, true)")
        .bind(bob.id.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    assert!(sqlx::query("UPDATE experiments SET status = 'stopped', stopped_at = now()")
        .execute(&mut *tx)
        .await
        .is_err());
    tx.rollback().await.unwrap();
    // Over the API, bob's variant request records bob's row only.
    variant(&app, &bob.access, "exp").await;
    let owners: Vec<Uuid> = sqlx::query_scalar("SELECT user_id FROM experiment_assignments ORDER BY assigned_at")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(owners, [ann.id, bob.id]);
}
