//! Experiments and feedback over the wire: deterministic, sticky assignment across two
//! instances; weights; the new-users audience; stopping and starting again; the admin
//! list; idempotent exposure and conversions; results, NPS summaries (per month too)
//! and CSAT figures on fixtures worked out by hand; who may call what; and that no user
//! sees another's assignment, answer or rating.
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
        let dated: Vec<_> = rows
            .iter()
            .map(|(score, (m, d), comment)| (*score, at(if *m == 12 { 2024 } else { 2025 }, *m, *d), *comment))
            .collect();
        respondent(&app, &dated).await;
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
        ("mutation { startExperiment(key: \"exp\") { key } }", json!({})),
        ("query { experiments { key } }", json!({})),
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

/// A customer signed up in November 2024 who gave these NPS answers (score, time,
/// comment); its id.
pub(crate) async fn respondent(app: &TestApp, answers: &[(i16, DateTime<Utc>, Option<&str>)]) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $1::text || '@example.com', 'x', $2)",
    )
    .bind(id)
    .bind(at(2024, 11, 1))
    .execute(&app.db)
    .await
    .unwrap();
    for (score, when, comment) in answers {
        sqlx::query("INSERT INTO nps_responses (id, user_id, score, comment, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(Uuid::now_v7())
            .bind(id)
            .bind(score)
            .bind(comment)
            .bind(when)
            .execute(&app.db)
            .await
            .unwrap();
    }
    id
}

const EXPERIMENTS: &str =
    "{ experiments { key status winner startedAt stoppedAt resultsCsvPath variants { name weight } } }";

/// Administrators list every experiment, newest first, with status, variants, start and
/// the path of its results as CSV; a stopped experiment starts again with its
/// assignments kept (a user keeps its variant, nobody is assigned twice).
#[tokio::test]
async fn experiments_are_listed_stopped_and_started_again_with_their_assignments() {
    let app = TestApp::spawn().await;
    let admin = with_role(&app, "admin", "admin").await;
    let ann = app.register("ann").await;
    create(&app, &admin, "first", &[("a", 1), ("b", 1)], "ALL").await;
    create(&app, &admin, "second", &[("x", 3), ("y", 1)], "NEW_USERS").await;
    let seen = variant(&app, &ann.access, "first").await;
    assert_eq!(seen["inExperiment"], true);
    let stop = "mutation($k: String!) { stopExperiment(key: $k) { status stoppedAt } }";
    let start = "mutation($k: String!) { startExperiment(key: $k) { key status winner stoppedAt } }";
    let r = app.gql(Some(&admin.access), stop, json!({ "k": "first" })).await;
    assert_eq!(r["data"]["stopExperiment"]["status"], "STOPPED", "{r}");

    let r = app.gql(Some(&admin.access), EXPERIMENTS, json!({})).await;
    let list = r["data"]["experiments"].as_array().unwrap_or_else(|| panic!("{r}"));
    let keys: Vec<&str> = list.iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["second", "first"]);
    assert_eq!(list[1]["status"], "STOPPED");
    assert!(list[1]["stoppedAt"].is_string() && list[0]["stoppedAt"].is_null(), "{r}");
    assert_eq!(list[0]["variants"], json!([{ "name": "x", "weight": 3 }, { "name": "y", "weight": 1 }]));
    assert_eq!(list[1]["resultsCsvPath"], "/admin/metrics/experimentResults.csv?key=first");
    let csv = app.http().get(app.url("/admin/metrics/experimentResults.csv?key=first")).bearer_auth(&admin.access);
    assert_eq!(csv.send().await.unwrap().status(), 200);

    // Started again: running, no winner, Ann keeps her variant and her one row.
    let r = app.gql(Some(&admin.access), start, json!({ "k": "first" })).await;
    assert_eq!(
        r["data"]["startExperiment"],
        json!({ "key": "first", "status": "RUNNING", "winner": null, "stoppedAt": null }),
        "{r}"
    );
    let again = variant(&app, &ann.access, "first").await;
    assert_eq!((&again["variant"], &again["status"]), (&seen["variant"], &json!("RUNNING")));
    assert_eq!(app.count("experiment_assignments").await, 1);
    // Starting a running one is a conflict; an unknown one is not found.
    let r = app.gql(Some(&admin.access), start, json!({ "k": "first" })).await;
    assert_eq!(code(&r), "CONFLICT", "{r}");
    let r = app.gql(Some(&admin.access), start, json!({ "k": "nope" })).await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");
    // Nobody else lists or starts them.
    let support = with_role(&app, "sue", "support").await;
    for token in [&ann.access, &support.access] {
        assert_eq!(code(&app.gql(Some(token), EXPERIMENTS, json!({})).await), "FORBIDDEN");
        assert_eq!(code(&app.gql(Some(token), start, json!({ "k": "first" })).await), "FORBIDDEN");
    }
}

/// NPS per month over a range, by hand (from Jan 15 to Mar 1, noon UTC):
/// - A answers 10 on Jan 10 (before the range), 0 on Jan 20, 9 on Feb 5; B 9 on Jan 16;
///   C 3 on Jan 25; D 7 on Feb 10; E 6 on Feb 20 then 10 on Feb 25; F 10 on Mar 2 (after).
/// - January: A 0, B 9, C 3 → 1 promoter, 2 detractors of 3: NPS 100 × (1 − 2) ÷ 3.
/// - February: A 9, D 7, E 10 (latest) → 2 promoters, 1 passive: 100 × 2 ÷ 3.
/// - March (Mar 1 to noon): nobody, NPS null.
/// - The range, each one's latest: A 9, B 9, C 3, D 7, E 10 → 3 promoters, 1 passive,
///   1 detractor of 5: NPS 40; distribution 3: 1, 7: 1, 9: 2, 10: 1.
///
/// The newest comments, as many as asked for.
#[tokio::test]
async fn nps_is_given_per_month_by_hand_numbers() {
    let app = TestApp::spawn().await;
    let admin = with_role(&app, "admin", "admin").await;
    // Per user: (score, (month, day), comment).
    type Answers<'a> = [&'a [(i16, (u32, u32), Option<&'a str>)]; 6];
    let answers: Answers = [
        &[(10, (1, 10), None), (0, (1, 20), Some("down")), (9, (2, 5), Some("fixed"))],
        &[(9, (1, 16), None)],
        &[(3, (1, 25), Some("slow"))],
        &[(7, (2, 10), None)],
        &[(6, (2, 20), None), (10, (2, 25), Some("love it"))],
        &[(10, (3, 2), Some("late"))],
    ];
    for rows in answers {
        let dated: Vec<_> = rows.iter().map(|(score, (m, d), comment)| (*score, at(2025, *m, *d), *comment)).collect();
        respondent(&app, &dated).await;
    }
    let q = "query($f: DateTime!, $t: DateTime!, $n: Int!) { npsSummary(from: $f, to: $t, commentsLimit: $n) {
        respondents promoters passives detractors nps distribution { respondents }
        months { start respondents promoters passives detractors nps } recentComments { comment } } }";
    let r = app.gql(Some(&admin.access), q, json!({ "f": at(2025, 1, 15), "t": at(2025, 3, 1), "n": 2 })).await;
    let s = &r["data"]["npsSummary"];
    assert!(r["errors"].is_null(), "{r}");
    let months: Vec<(&str, [i64; 4])> = s["months"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let n = |k: &str| m[k].as_i64().unwrap();
            (m["start"].as_str().unwrap(), [n("respondents"), n("promoters"), n("passives"), n("detractors")])
        })
        .collect();
    assert_eq!(
        months,
        [
            ("2025-01-01T00:00:00+00:00", [3, 1, 0, 2]),
            ("2025-02-01T00:00:00+00:00", [3, 2, 1, 0]),
            ("2025-03-01T00:00:00+00:00", [0, 0, 0, 0]),
        ]
    );
    close(&s["months"][0]["nps"], -100.0 / 3.0);
    close(&s["months"][1]["nps"], 200.0 / 3.0);
    assert!(s["months"][2]["nps"].is_null());
    assert_eq!(
        (s["respondents"].as_i64(), s["promoters"].as_i64(), s["passives"].as_i64()),
        (Some(5), Some(3), Some(1))
    );
    close(&s["nps"], 40.0);
    let dist: Vec<i64> =
        s["distribution"].as_array().unwrap().iter().map(|d| d["respondents"].as_i64().unwrap()).collect();
    assert_eq!(dist, [0, 0, 0, 1, 0, 0, 0, 1, 0, 2, 1]);
    assert_eq!(s["recentComments"], json!([{ "comment": "love it" }, { "comment": "fixed" }]));
    for n in [-1, 101] {
        let r = app.gql(Some(&admin.access), q, json!({ "f": at(2025, 1, 15), "t": at(2025, 3, 1), "n": n })).await;
        assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");
    }
}

const CSAT: &str = "mutation($i: SubmitCsatInput!) { submitCsat(input: $i) { ticketId score comment submittedAt } }";

/// CSAT: a ticket's owner rates it once it is resolved or closed, once (1 to 5, an
/// optional comment); nobody else can, not even through the database role; an open
/// ticket cannot be rated; API tokens cannot. Administrators read it in
/// `supportMetrics`, by hand: ratings 5, 4, 2 and 1 in the range (one more outside):
/// 4 ratings, average 3, 2 satisfied, CSAT 0.5.
#[tokio::test]
async fn csat_is_given_once_by_the_owner_of_a_resolved_ticket_and_counted_for_admins() {
    let app = TestApp::spawn().await;
    let admin = with_role(&app, "admin", "admin").await;
    let support = with_role(&app, "sue", "support").await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let open = "mutation { openTicket(input: {subject: \"Help\", category: JOBS, body: \"stuck\"}) { id } }";
    let r = app.gql(Some(&ann.access), open, json!({})).await;
    let ticket = r["data"]["openTicket"]["id"].as_str().unwrap_or_else(|| panic!("{r}")).to_owned();
    let rate = |token: &str, score: i32, comment: Option<&str>| {
        let (app, token, ticket) = (&app, token.to_owned(), ticket.clone());
        let comment = comment.map(str::to_owned);
        async move {
            app.gql(Some(&token), CSAT, json!({ "i": { "ticketId": ticket, "score": score, "comment": comment } }))
                .await
        }
    };
    // Open: not yet.
    assert_eq!(code(&rate(&ann.access, 5, None).await), "CONFLICT");
    // Resolved by support: Ann rates it; bad scores and comments are refused first.
    let resolve = "mutation($t: ID!) { setTicketStatus(ticketId: $t, status: RESOLVED) { status } }";
    let r = app.gql(Some(&support.access), resolve, json!({ "t": ticket })).await;
    assert_eq!(r["data"]["setTicketStatus"]["status"], "RESOLVED", "{r}");
    for (score, comment) in [(0, None), (6, None), (4, Some("x".repeat(1001))), (4, Some("bad\u{0}byte".into()))] {
        let r = rate(&ann.access, score, comment.as_deref()).await;
        assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");
    }
    // Bob, support and an admin cannot rate Ann's ticket: as absent as an unknown one.
    for token in [&bob.access, &support.access, &admin.access] {
        assert_eq!(code(&rate(token, 5, None).await), "NOT_FOUND");
    }
    let r = app.gql(Some(&bob.access), CSAT, json!({ "i": { "ticketId": Uuid::now_v7(), "score": 5 } })).await;
    assert_eq!(code(&r), "NOT_FOUND");
    let r = rate(&ann.access, 4, Some("  quick, thanks  ")).await;
    let given = &r["data"]["submitCsat"];
    assert_eq!(
        (given["ticketId"].as_str(), &given["score"], &given["comment"]),
        (Some(ticket.as_str()), &json!(4), &json!("quick, thanks")),
        "{r}"
    );
    // Once: again, or after a reopen and a close, is a conflict; the rating stays.
    assert_eq!(code(&rate(&ann.access, 1, None).await), "CONFLICT");
    for q in [
        "mutation($t: ID!) { reopenTicket(id: $t) { status } }",
        "mutation($t: ID!) { closeTicket(id: $t) { status } }",
    ] {
        assert!(app.gql(Some(&ann.access), q, json!({ "t": ticket })).await["errors"].is_null());
    }
    assert_eq!(code(&rate(&ann.access, 1, None).await), "CONFLICT");
    let mine = "query($t: ID!) { ticketCsat(ticketId: $t) { score comment } }";
    let r = app.gql(Some(&ann.access), mine, json!({ "t": ticket })).await;
    assert_eq!(r["data"]["ticketCsat"], json!({ "score": 4, "comment": "quick, thanks" }), "{r}");
    assert!(app.gql(Some(&bob.access), mine, json!({ "t": ticket })).await["data"]["ticketCsat"].is_null());
    // API tokens take no part.
    let r = app
        .gql(
            Some(&ann.access),
            "mutation { createApiToken(input: {name: \"t\", scopes: [\"drafts:read\"]}) { token } }",
            json!({}),
        )
        .await;
    let api = r["data"]["createApiToken"]["token"].as_str().unwrap().to_owned();
    assert_eq!(code(&rate(&api, 5, None).await), "FORBIDDEN");
    assert_eq!(code(&app.gql(Some(&api), mine, json!({ "t": ticket })).await), "FORBIDDEN");
    // The database itself refuses a rating of an open ticket, or of another's ticket.
    let other =
        app.gql(Some(&bob.access), open, json!({})).await["data"]["openTicket"]["id"].as_str().unwrap().to_owned();
    let url = crate::helpers::admin_url(&app.database).replace("postgres@", "plinth_app@");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    for (who, target) in [(bob.id, &other), (bob.id, &ticket)] {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("SELECT set_config('role', 'plinth_user', true), set_config('plinth.user_id', $1, true)")
            .bind(who.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
        let insert = sqlx::query("INSERT INTO ticket_csat (user_id, ticket_id, score) VALUES ($1, $2::uuid, 5)")
            .bind(who)
            .bind(target)
            .execute(&mut *tx)
            .await;
        assert!(insert.is_err(), "{target}");
        tx.rollback().await.ok();
    }

    // The figures: four more ratings in March 2025 (5, 2, 1 and Ann's 4 moved there),
    // one in April.
    sqlx::query("UPDATE ticket_csat SET created_at = $1").bind(at(2025, 3, 3)).execute(&app.db).await.unwrap();
    for (score, day) in [(5, (3, 4)), (2, (3, 5)), (1, (3, 6)), (5, (4, 2))] {
        sqlx::query(
            "WITH t AS (INSERT INTO tickets (id, user_id, subject, category, status, resolved_at)
                        VALUES (gen_random_uuid(), $1, 'x', 'other', 'resolved', $3) RETURNING user_id, id)
             INSERT INTO ticket_csat (user_id, ticket_id, score, created_at) SELECT user_id, id, $2, $3 FROM t",
        )
        .bind(bob.id)
        .bind(score)
        .bind(at(2025, day.0, day.1))
        .execute(&app.db)
        .await
        .unwrap();
    }
    let r = app
        .gql(
            Some(&admin.access),
            "query($f: DateTime!, $t: DateTime!) { supportMetrics(from: $f, to: $t) { csatResponses csatAverage csatSatisfied csat } }",
            json!({ "f": at(2025, 3, 1), "t": at(2025, 4, 1) }),
        )
        .await;
    assert_eq!(
        r["data"]["supportMetrics"],
        json!({ "csatResponses": 4, "csatAverage": 3.0, "csatSatisfied": 2, "csat": 0.5 }),
        "{r}"
    );
    let r = app
        .gql(
            Some(&support.access),
            "query($f: DateTime!, $t: DateTime!) { supportMetrics(from: $f, to: $t) { csat } }",
            json!({ "f": at(2025, 3, 1), "t": at(2025, 4, 1) }),
        )
        .await;
    assert_eq!(code(&r), "FORBIDDEN");
}
