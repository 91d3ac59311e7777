//! Business metrics over the wire: the subscription history webhooks write, and the
//! admin-only metrics over a fixture whose numbers are worked out by hand below, a
//! property test of MRR movements over random histories, who may call them, and what
//! the metrics role can read.
use crate::helpers::{
    code,
    stripe::{event, subscription, FakeStripe},
    TestApp, TestUser,
};
use chrono::{DateTime, TimeZone, Utc};
use proptest::{
    collection::vec,
    strategy::{Strategy, ValueTree},
    test_runner::TestRunner,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Asserts a float field equals `want` to 1e-12 (sums in PostgreSQL and here may
/// differ in the last bit).
#[track_caller]
pub(crate) fn close(v: &Value, want: f64) {
    let got = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert!((got - want).abs() < 1e-12, "{got} != {want}");
}

pub(crate) fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
}

pub(crate) async fn with_role(app: &TestApp, name: &str, role: &str) -> TestUser {
    let mut u = app.register(name).await;
    sqlx::query("UPDATE users SET role = $2 WHERE id = $1").bind(u.id).bind(role).execute(&app.db).await.unwrap();
    app.refresh_session(&mut u).await;
    u
}

const MRR: &str = "query($f: DateTime!, $t: DateTime!, $i: MetricInterval!) { mrr(from: $f, to: $t, interval: $i) {
    currency buckets { start end openingCents closingCents newCents expansionCents contractionCents churnCents
    reactivationCents netChangeCents customers } } }";
const CHURN: &str = "query($f: DateTime!, $t: DateTime!, $i: MetricInterval!) { churn(from: $f, to: $t, interval: $i) {
    start customersAtStart customersChurned openingCents churnedCents contractionCents expansionCents
    logoChurnRate revenueChurnRate netRevenueRetention } }";

pub(crate) async fn mrr(app: &TestApp, token: &str, from: DateTime<Utc>, to: DateTime<Utc>, interval: &str) -> Value {
    app.gql(Some(token), MRR, json!({ "f": from, "t": to, "i": interval })).await
}

/// A user row straight in the database (the fixture's customers), created at `created`.
pub(crate) async fn customer(app: &TestApp, created: DateTime<Utc>, verified: bool) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, created_at, email_verified_at)
         VALUES ($1, $1::text || '@example.com', 'x', $2, CASE WHEN $3 THEN $2 END)",
    )
    .bind(id)
    .bind(created)
    .bind(verified)
    .execute(&app.db)
    .await
    .unwrap();
    id
}

/// One history row: `sub` of `user` is in `status` on `plan`/`interval` from `t`.
pub(crate) async fn history(
    app: &TestApp,
    user: Uuid,
    sub: &str,
    t: DateTime<Utc>,
    plan: &str,
    interval: &str,
    status: &str,
) {
    let price: i64 = match (plan, interval) {
        ("starter", "month") => 1900,
        ("starter", "year") => 19000,
        ("pro", "month") => 4900,
        ("pro", "year") => 49000,
        ("scale", "month") => 14900,
        _ => 149000,
    };
    sqlx::query(
        "INSERT INTO billing_subscription_history (user_id, subscription_id, effective_at, plan, billing_interval,
           status, ended, quantity, unit_amount_cents, currency, mrr_cents)
         VALUES ($1, $2, $3, $4, $5, $6, $6 = 'canceled', 1, $7, 'eur',
                 subscription_mrr_cents($6, $6 = 'canceled', $5, 1, $7))",
    )
    .bind(user)
    .bind(sub)
    .bind(t)
    .bind(plan)
    .bind(interval)
    .bind(status)
    .bind(price)
    .execute(&app.db)
    .await
    .unwrap();
}

pub(crate) async fn job(app: &TestApp, user: Uuid, kind: &str, status: &str, created: DateTime<Utc>) {
    sqlx::query(
        "INSERT INTO jobs (id, user_id, kind, status, created_at, updated_at, finished_at)
         VALUES ($1, $2, $3, $4, $5, $5, CASE WHEN $4 IN ('succeeded', 'failed') THEN $5 END)",
    )
    .bind(Uuid::now_v7())
    .bind(user)
    .bind(kind)
    .bind(status)
    .bind(created)
    .execute(&app.db)
    .await
    .unwrap();
}

/// A history row as read back: time, plan, interval, status, quantity, price,
/// currency, MRR.
type HistoryRow = (DateTime<Utc>, Option<String>, Option<String>, String, i32, Option<i64>, String, i64);

/// Webhooks write the history in their transaction: a trial (0), the first payment
/// (Pro monthly: 4,900), an upgrade to Scale yearly with 2 seats (149,000 × 2 ÷ 12 =
/// 24,833), a redelivery (nothing), an older event arriving late (nothing), a period
/// renewal (nothing: no amount changed), the deletion (0).
#[tokio::test]
async fn webhooks_write_the_subscription_history_in_their_transaction() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let ann = app.register("ann").await;
    let r = app.gql(Some(&ann.access), "mutation { startCheckout(input: {plan: PRO}) { url } }", json!({})).await;
    assert!(r["data"]["startCheckout"].is_object(), "{r}");
    let customer = app.stripe_customer(&ann).await;
    let t = at(2025, 3, 1).timestamp();
    let mut s = subscription("sub_1", &customer, "trialing", "price_pro_monthly", t);
    let deliver = |id: &str, kind: &str, when: i64, object: Value| {
        let e = event(id, kind, when, object);
        let app = &app;
        async move { app.deliver_webhook(&e).await }
    };
    assert_eq!(deliver("e1", "customer.subscription.created", t, s.clone()).await.0, 200);
    s["status"] = json!("active");
    assert_eq!(deliver("e2", "customer.subscription.updated", t + 86_400, s.clone()).await.0, 200);
    let mut up = s.clone();
    up["items"]["data"][0]["price"]["id"] = json!("price_scale_yearly");
    up["items"]["data"][0]["quantity"] = json!(2);
    assert_eq!(deliver("e3", "customer.subscription.updated", t + 2 * 86_400, up.clone()).await.0, 200);
    assert_eq!(deliver("e3", "customer.subscription.updated", t + 2 * 86_400, up.clone()).await.0, 200);
    assert_eq!(deliver("e_late", "customer.subscription.updated", t + 86_400 + 5, s.clone()).await.0, 200);
    let mut renewed = up.clone();
    renewed["current_period_start"] = json!(t + 40 * 86_400);
    renewed["current_period_end"] = json!(t + 70 * 86_400);
    assert_eq!(deliver("e4", "customer.subscription.updated", t + 40 * 86_400, renewed.clone()).await.0, 200);
    let mut gone = renewed.clone();
    gone["status"] = json!("canceled");
    assert_eq!(deliver("e5", "customer.subscription.deleted", t + 50 * 86_400, gone).await.0, 200);

    let rows: Vec<HistoryRow> = sqlx::query_as(
        "SELECT effective_at, plan, billing_interval, status, quantity, unit_amount_cents, currency, mrr_cents
             FROM billing_subscription_history WHERE user_id = $1 ORDER BY id",
    )
    .bind(ann.id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let day = |n: i64| DateTime::from_timestamp(t + n * 86_400, 0).unwrap();
    let s = |x: &str| Some(x.to_owned());
    assert_eq!(
        rows,
        [
            (day(0), s("pro"), s("month"), "trialing".into(), 1, Some(4900), "eur".into(), 0),
            (day(1), s("pro"), s("month"), "active".into(), 1, Some(4900), "eur".into(), 4900),
            (day(2), s("scale"), s("year"), "active".into(), 2, Some(149_000), "eur".into(), 24_833),
            (day(50), s("scale"), s("year"), "canceled".into(), 2, Some(149_000), "eur".into(), 0),
        ]
    );
    // And the admin's MRR over those days says the same.
    let admin = with_role(&app, "admin", "admin").await;
    let r = mrr(&app, &admin.access, day(0), day(3), "DAY").await;
    let closing: Vec<i64> = r["data"]["mrr"]["buckets"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .map(|b| b["closingCents"].as_i64().unwrap())
        .collect();
    assert_eq!(closing, [0, 4900, 24_833, 24_833]);
    assert_eq!(r["data"]["mrr"]["currency"], "eur");
}

/// The fixture, January to April 2025 (monthly buckets; MRR in cents):
/// - u1 signs up Jan 5 (verified): Starter monthly Jan 10 (new 1,900), Pro Feb 10
///   (expansion 3,000), canceled Mar 10 (churn 4,900), Pro again Apr 10
///   (reactivation 4,900). A successful scan Jan 7 (2 days after signing up).
/// - u2 signed up in December: Pro yearly since Dec 1 (49,000 ÷ 12 = 4,083), Starter
///   yearly Feb 15 (19,000 ÷ 12 = 1,583: contraction 2,500).
/// - u3 signs up Jan 20 (verified): trial Jan 20, Scale monthly Feb 3 (new 14,900). A
///   successful preparation Jan 30 (10 days after).
/// - u4 signs up Jan 25, never verifies nor pays; one failed publish Feb 5.
#[tokio::test]
async fn metrics_of_a_known_fixture_match_the_hand_computed_numbers() {
    let app = TestApp::spawn().await;
    let admin = with_role(&app, "admin", "admin").await;
    known_fixture(&app).await;
    check_known_fixture(&app, &admin).await;
}

/// The customers, subscriptions and jobs of the fixture above (its numbers are there).
pub(crate) async fn known_fixture(app: &TestApp) {
    let u1 = customer(app, at(2025, 1, 5), true).await;
    let u2 = customer(app, at(2024, 12, 1), true).await;
    let u3 = customer(app, at(2025, 1, 20), true).await;
    let u4 = customer(app, at(2025, 1, 25), false).await;
    history(app, u1, "s1", at(2025, 1, 10), "starter", "month", "active").await;
    history(app, u1, "s1", at(2025, 2, 10), "pro", "month", "active").await;
    history(app, u1, "s1", at(2025, 3, 10), "pro", "month", "canceled").await;
    history(app, u1, "s1b", at(2025, 4, 10), "pro", "month", "active").await;
    history(app, u2, "s2", at(2024, 12, 1), "pro", "year", "active").await;
    history(app, u2, "s2", at(2025, 2, 15), "starter", "year", "active").await;
    history(app, u3, "s3", at(2025, 1, 20), "scale", "month", "trialing").await;
    history(app, u3, "s3", at(2025, 2, 3), "scale", "month", "active").await;
    job(app, u1, "scan", "succeeded", at(2025, 1, 7)).await;
    job(app, u3, "prepare", "succeeded", at(2025, 1, 30)).await;
    job(app, u4, "publish", "failed", at(2025, 2, 5)).await;
}

async fn check_known_fixture(app: &TestApp, admin: &TestUser) {
    let r = mrr(app, &admin.access, at(2025, 1, 1), at(2025, 4, 30), "MONTH").await;
    let buckets = r["data"]["mrr"]["buckets"].as_array().unwrap_or_else(|| panic!("{r}")).clone();
    let got: Vec<[i64; 8]> = buckets
        .iter()
        .map(|b| {
            let n = |k: &str| b[k].as_i64().unwrap();
            [
                n("openingCents"),
                n("newCents"),
                n("expansionCents"),
                n("contractionCents"),
                n("churnCents"),
                n("reactivationCents"),
                n("closingCents"),
                n("customers"),
            ]
        })
        .collect();
    assert_eq!(
        got,
        [
            // opening, new, expansion, contraction, churn, reactivation, closing, customers
            [4083, 1900, 0, 0, 0, 0, 5983, 2],
            [5983, 14_900, 3000, 2500, 0, 0, 21_383, 3],
            [21_383, 0, 0, 0, 4900, 0, 16_483, 2],
            [16_483, 0, 0, 0, 0, 4900, 21_383, 3],
        ]
    );
    assert_eq!(buckets[0]["start"], "2025-01-01T00:00:00+00:00");
    assert_eq!(buckets[3]["end"], "2025-05-01T00:00:00+00:00");

    let r =
        app.gql(Some(&admin.access), CHURN, json!({ "f": at(2025, 2, 1), "t": at(2025, 3, 31), "i": "MONTH" })).await;
    let c = r["data"]["churn"].as_array().unwrap_or_else(|| panic!("{r}"));
    // February: u1 (1,900) and u2 (4,083) paying at its start; nobody leaves; u2
    // contracts by 2,500, u1 expands by 3,000; they end at 4,900 + 1,583.
    assert_eq!(
        (&c[0]["customersAtStart"], &c[0]["customersChurned"], &c[0]["openingCents"], &c[0]["contractionCents"]),
        (&json!(2), &json!(0), &json!(5983), &json!(2500))
    );
    assert_eq!(c[0]["logoChurnRate"], json!(0.0));
    close(&c[0]["revenueChurnRate"], 2500.0 / 5983.0);
    close(&c[0]["netRevenueRetention"], 6483.0 / 5983.0);
    // March: u1, u2, u3 paying (21,383); u1 (4,900) leaves.
    assert_eq!((&c[1]["customersAtStart"], &c[1]["customersChurned"]), (&json!(3), &json!(1)));
    close(&c[1]["logoChurnRate"], 1.0 / 3.0);
    close(&c[1]["revenueChurnRate"], 4900.0 / 21_383.0);
    close(&c[1]["netRevenueRetention"], 16_483.0 / 21_383.0);

    let (jan, feb) = (json!(at(2025, 1, 1)), json!(at(2025, 2, 1)));
    let r = app
        .gql(
            Some(&admin.access),
            "query($f: DateTime!, $t: DateTime!) { conversion(from: $f, to: $t) { signups verified trials paid
               trialsPaid verifiedRate trialRate paidRate trialToPaidRate } }",
            json!({ "f": jan, "t": feb }),
        )
        .await;
    assert_eq!(
        r["data"]["conversion"],
        json!({ "signups": 3, "verified": 2, "trials": 1, "paid": 2, "trialsPaid": 1,
                "verifiedRate": 2.0 / 3.0, "trialRate": 1.0 / 3.0, "paidRate": 2.0 / 3.0, "trialToPaidRate": 1.0 }),
        "{r}"
    );

    // Activation within 7 days: u1 (2 days) yes, u3 (10 days) no, u4 never. Time to the
    // first job over u1 and u3: median 6 days, p90 2 + 0.9 × 8 = 9.2 days.
    let r = app
        .gql(
            Some(&admin.access),
            "query($f: DateTime!, $t: DateTime!) { activation(from: $f, to: $t, withinDays: 7) { signups activated
               rate withFirstJob medianSecondsToFirstJob p90SecondsToFirstJob } }",
            json!({ "f": jan, "t": feb }),
        )
        .await;
    let a = &r["data"]["activation"];
    assert_eq!((&a["signups"], &a["activated"], &a["withFirstJob"]), (&json!(3), &json!(1), &json!(2)), "{r}");
    close(&a["rate"], 1.0 / 3.0);
    close(&a["medianSecondsToFirstJob"], 6.0 * 86_400.0);
    assert!((a["p90SecondsToFirstJob"].as_f64().unwrap() - 9.2 * 86_400.0).abs() < 1e-6);

    // Cohorts of January (u1, u3, u4). ACTIVE: January u1 and u3 created jobs, February
    // u4. REVENUE: MRR at each month's end: 1,900; 4,900 + 14,900; 14,900; 19,800.
    let cohorts = |metric: &str| {
        let token = admin.access.clone();
        let metric = metric.to_owned();
        let (jan, feb) = (jan.clone(), feb.clone());
        async move {
            let r = app
                .gql(
                    Some(&token),
                    "query($f: DateTime!, $t: DateTime!, $m: CohortMetric!) { cohorts(from: $f, to: $t, metric: $m) {
                       cohort monthsSince size value share } }",
                    json!({ "f": jan, "t": feb, "m": metric }),
                )
                .await;
            r["data"]["cohorts"].as_array().unwrap_or_else(|| panic!("{r}")).clone()
        }
    };
    let active = cohorts("ACTIVE").await;
    assert!(active.iter().all(|c| c["cohort"] == "2025-01-01T00:00:00+00:00" && c["size"] == 3));
    let first: Vec<(i64, i64)> =
        active.iter().take(4).map(|c| (c["monthsSince"].as_i64().unwrap(), c["value"].as_i64().unwrap())).collect();
    assert_eq!(first, [(0, 2), (1, 1), (2, 0), (3, 0)]);
    close(&active[0]["share"], 2.0 / 3.0);
    let revenue = cohorts("REVENUE").await;
    let values: Vec<i64> = revenue.iter().take(4).map(|c| c["value"].as_i64().unwrap()).collect();
    assert_eq!(values, [1900, 19_800, 14_900, 19_800]);
    close(&revenue[1]["share"], 19_800.0 / 1900.0);

    let r = app
        .gql(
            Some(&admin.access),
            "query($f: DateTime!, $t: DateTime!) { usageTotals(from: $f, to: $t) { day plan scans preparations publishes } }",
            json!({ "f": jan, "t": at(2025, 3, 1) }),
        )
        .await;
    assert_eq!(
        r["data"]["usageTotals"],
        json!([
            { "day": "2025-01-07", "plan": "free", "scans": 1, "preparations": 0, "publishes": 0 },
            { "day": "2025-01-30", "plan": "free", "scans": 0, "preparations": 1, "publishes": 0 },
            { "day": "2025-02-05", "plan": "free", "scans": 0, "preparations": 0, "publishes": 1 },
        ]),
        "{r}"
    );
}

/// An API token of `admin`'s with every read scope (metrics refuse it all the same).
pub(crate) async fn admin_api_token(app: &TestApp, admin: &TestUser) -> String {
    let r = app
        .gql(
            Some(&admin.access),
            "mutation { createApiToken(input: {name: \"all\", scopes: [\"drafts:read\", \"activity:read\", \"billing:read\", \"usage:read\"]}) { token } }",
            json!({}),
        )
        .await;
    r["data"]["createApiToken"]["token"].as_str().unwrap_or_else(|| panic!("{r}")).to_owned()
}

/// Every metric field refuses users, support staff and API tokens (an admin's
/// included), and anonymous callers; bad ranges are BAD_USER_INPUT.
#[tokio::test]
async fn metrics_are_for_administrators_with_a_session_only() {
    let app = TestApp::spawn().await;
    let user = app.register("ann").await;
    let support = with_role(&app, "sue", "support").await;
    let admin = with_role(&app, "admin", "admin").await;
    let api_token = admin_api_token(&app, &admin).await;
    let range = json!({ "f": at(2025, 1, 1), "t": at(2025, 2, 1) });
    let queries = [
        "query($f: DateTime!, $t: DateTime!) { mrr(from: $f, to: $t, interval: DAY) { currency } }",
        "query($f: DateTime!, $t: DateTime!) { churn(from: $f, to: $t, interval: WEEK) { start } }",
        "query($f: DateTime!, $t: DateTime!) { conversion(from: $f, to: $t) { signups } }",
        "query($f: DateTime!, $t: DateTime!) { activation(from: $f, to: $t) { signups } }",
        "query($f: DateTime!, $t: DateTime!) { cohorts(from: $f, to: $t, metric: ACTIVE) { size } }",
        "query($f: DateTime!, $t: DateTime!) { usageTotals(from: $f, to: $t) { day } }",
        "query($f: DateTime!, $t: DateTime!) { supportMetrics(from: $f, to: $t) { opened } }",
    ];
    for q in queries {
        for (who, token) in [("user", &user.access), ("support", &support.access), ("api token", &api_token)] {
            let r = app.gql(Some(token), q, range.clone()).await;
            assert_eq!(code(&r), "FORBIDDEN", "{who}: {q}: {r}");
            assert!(r["data"].is_null(), "{who}: {r}");
        }
        assert_eq!(code(&app.gql(None, q, range.clone()).await), "UNAUTHENTICATED", "{q}");
        let r = app.gql(Some(&admin.access), q, range.clone()).await;
        assert!(r["errors"].is_null(), "{q}: {r}");
        let backwards = json!({ "f": at(2025, 2, 1), "t": at(2025, 1, 1) });
        assert_eq!(code(&app.gql(Some(&admin.access), q, backwards).await), "BAD_USER_INPUT", "{q}");
    }
    let many = json!({ "f": at(2015, 1, 1), "t": at(2025, 1, 1) });
    assert_eq!(code(&app.gql(Some(&admin.access), queries[0], many).await), "BAD_USER_INPUT");
}

/// The metrics role reads across tenants only while the request's user is an
/// administrator; with another user, or none, it sees nothing; no app role but it may
/// call the metrics functions; plinth_admin itself gained no cross-tenant read.
#[tokio::test]
async fn the_metrics_role_reads_across_tenants_only_for_an_administrator() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let admin = with_role(&app, "admin", "admin").await;
    let support = with_role(&app, "sue", "support").await;
    history(&app, ann.id, "s1", at(2025, 1, 10), "pro", "month", "active").await;
    job(&app, ann.id, "scan", "succeeded", at(2025, 1, 11)).await;
    ticket(&app, ann.id, at(2025, 1, 12), None, None, None).await;
    let url = crate::helpers::admin_url(&app.database).replace("postgres@", "plinth_app@");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let count = |role: &'static str, user: Option<Uuid>, table: &'static str| {
        let pool = pool.clone();
        async move {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("SELECT set_config('role', $1, true), set_config('plinth.user_id', $2, true)")
                .bind(role)
                .bind(user.map(|u| u.to_string()).unwrap_or_default())
                .execute(&mut *tx)
                .await
                .unwrap();
            let n: Result<i64, _> =
                sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut *tx).await;
            tx.rollback().await.ok();
            n.map_err(|e| e.to_string())
        }
    };
    for table in ["billing_subscription_history", "jobs", "tickets"] {
        assert_eq!(count("plinth_metrics", Some(admin.id), table).await, Ok(1), "{table}");
        for user in [Some(ann.id), Some(support.id), None] {
            assert_eq!(count("plinth_metrics", user, table).await, Ok(0), "{table} as {user:?}");
        }
    }
    assert_eq!(count("plinth_metrics", Some(admin.id), "users").await, Ok(3));
    assert_eq!(count("plinth_metrics", Some(ann.id), "users").await, Ok(0));
    // The admin role itself: the rows its staff policies give it (support's account
    // summary reads every account's jobs: issue 14), and no history at all.
    assert_eq!(count("plinth_admin", Some(admin.id), "jobs").await, Ok(1));
    assert!(count("plinth_admin", Some(admin.id), "billing_subscription_history").await.is_err());
    // Writes are refused to the metrics role.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('role', 'plinth_metrics', true), set_config('plinth.user_id', $1, true)")
        .bind(admin.id.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    assert!(sqlx::query("DELETE FROM jobs").execute(&mut *tx).await.is_err());
    tx.rollback().await.ok();
    // Only plinth_metrics executes the metrics functions.
    let grantees: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT r.rolname::text FROM pg_proc p CROSS JOIN LATERAL aclexplode(p.proacl) a
         JOIN pg_roles r ON r.oid = a.grantee
         WHERE p.pronamespace = 'metrics'::regnamespace AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(grantees, ["plinth_metrics"]);
    let definer: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_proc WHERE pronamespace = 'metrics'::regnamespace AND prosecdef")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(definer, 0, "the metrics functions run as the caller");
}

/// One history row of the property test: user, subscription, day, MRR.
type Row = (usize, usize, i64, i64);

/// MRR of each customer just before `t` (changes strictly before it).
fn per_user_at(rows: &[Row], t: i64) -> BTreeMap<usize, i64> {
    let mut subs: BTreeMap<(usize, usize), i64> = BTreeMap::new();
    for &(u, s, _, m) in rows.iter().filter(|r| r.2 < t) {
        subs.insert((u, s), m);
    }
    let mut users = BTreeMap::new();
    for ((u, _), m) in subs {
        *users.entry(u).or_insert(0) += m;
    }
    users
}

/// Over random histories (several subscriptions per customer, changes on the same day,
/// trials, cancellations, comebacks), each daily bucket's movements add up to its MRR
/// change, each bucket opens where the last closed, MRR and paying customers equal a
/// direct count, and every movement equals the one classified here by hand.
#[tokio::test]
async fn mrr_movements_reconcile_over_random_histories() {
    let app = TestApp::spawn().await;
    let admin = with_role(&app, "admin", "admin").await;
    let prices = [0_i64, 1900, 4900, 14_900, 1583, 4083];
    let strategy = vec((0..4_usize, 0..2_usize, 0..20_i64, 0..prices.len()), 1..30);
    let mut runner = TestRunner::deterministic();
    let users: Vec<Uuid> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(customer(&app, at(2024, 12, 1), true).await);
        }
        v
    };
    let day0 = at(2025, 1, 1).timestamp() - 12 * 3600;
    for case in 0..12 {
        let mut rows: Vec<Row> = strategy
            .new_tree(&mut runner)
            .unwrap()
            .current()
            .into_iter()
            .map(|(u, s, d, p)| (u, s, d, prices[p]))
            .collect();
        rows.sort_by_key(|r| r.2);
        sqlx::query("DELETE FROM billing_subscription_history").execute(&app.db).await.unwrap();
        for &(u, s, d, m) in &rows {
            sqlx::query(
                "INSERT INTO billing_subscription_history (user_id, subscription_id, effective_at, status, ended,
                   quantity, mrr_cents) VALUES ($1, $2, to_timestamp($3), 'active', false, 1, $4)",
            )
            .bind(users[u])
            .bind(format!("s{s}"))
            .bind(day0 + d * 86_400 + 3600)
            .bind(m)
            .execute(&app.db)
            .await
            .unwrap();
        }
        let r = mrr(&app, &admin.access, at(2025, 1, 1), at(2025, 1, 20), "DAY").await;
        let buckets = r["data"]["mrr"]["buckets"].as_array().unwrap_or_else(|| panic!("{r}"));
        assert_eq!(buckets.len(), 20);
        let mut ever_paid: BTreeMap<usize, bool> = BTreeMap::new();
        for (i, b) in buckets.iter().enumerate() {
            let n = |k: &str| b[k].as_i64().unwrap();
            let (start, end) = (day0 + i as i64 * 86_400, day0 + (i as i64 + 1) * 86_400);
            let timed: Vec<Row> = rows.iter().map(|r| (r.0, r.1, day0 + r.2 * 86_400 + 3600, r.3)).collect();
            let (before, after) = (per_user_at(&timed, start), per_user_at(&timed, end));
            let sum = |m: &BTreeMap<usize, i64>| m.values().sum::<i64>();
            assert_eq!((n("openingCents"), n("closingCents")), (sum(&before), sum(&after)), "case {case} bucket {i}");
            assert_eq!(n("customers"), after.values().filter(|m| **m > 0).count() as i64, "case {case} bucket {i}");
            assert_eq!(
                n("newCents") + n("expansionCents") + n("reactivationCents") - n("contractionCents") - n("churnCents"),
                n("closingCents") - n("openingCents"),
                "case {case} bucket {i}: {b}"
            );
            if i > 0 {
                assert_eq!(n("openingCents"), buckets[i - 1]["closingCents"].as_i64().unwrap());
            }
            // One change per customer per day at most here (all of a day's rows share
            // its instant), so the movement is the day's before → after.
            let mut want = [0_i64; 5];
            for u in 0..4 {
                let (b0, a0) = (before.get(&u).copied().unwrap_or(0), after.get(&u).copied().unwrap_or(0));
                let paid = ever_paid.get(&u).copied().unwrap_or(false);
                match (b0, a0) {
                    (0, a) if a > 0 && !paid => want[0] += a,
                    (0, a) if a > 0 => want[4] += a,
                    (b, a) if b > 0 && a > b => want[1] += a - b,
                    (b, a) if b > 0 && a > 0 && a < b => want[2] += b - a,
                    (b, 0) if b > 0 => want[3] += b,
                    _ => {}
                }
                if b0 > 0 || a0 > 0 {
                    ever_paid.insert(u, true);
                }
            }
            let got =
                [n("newCents"), n("expansionCents"), n("contractionCents"), n("churnCents"), n("reactivationCents")];
            assert_eq!(got, want, "case {case} bucket {i}: rows {rows:?}");
        }
    }
}

/// A ticket of `user` straight in the database, opened at `created`.
pub(crate) async fn ticket(
    app: &TestApp,
    user: Uuid,
    created: DateTime<Utc>,
    responded: Option<DateTime<Utc>>,
    resolved: Option<DateTime<Utc>>,
    closed: Option<DateTime<Utc>>,
) {
    sqlx::query(
        "INSERT INTO tickets (id, user_id, subject, category, status, created_at, updated_at,
                              first_response_at, resolved_at, closed_at)
         VALUES ($1, $2, 'Help', 'other', CASE WHEN $6::timestamptz IS NOT NULL THEN 'closed'
                 WHEN $5::timestamptz IS NOT NULL THEN 'resolved' ELSE 'open' END, $3, $3, $4, $5, $6)",
    )
    .bind(Uuid::now_v7())
    .bind(user)
    .bind(created)
    .bind(responded)
    .bind(resolved)
    .bind(closed)
    .execute(&app.db)
    .await
    .unwrap();
}

/// Support figures of March 2025 (noon to noon, UTC), by hand. Opened in the range:
/// T1 (response 1 h, resolved in 1 day), T2 (3 h, 3 days), T3 (5 h, open), T4 (no
/// response), T5 (Mar 31, answered and resolved only after `to`): 5 opened; responses
/// before `to` 3600, 10800, 18000 → median 10800, p90 10800 + 0.8 × 7200 = 16560;
/// resolutions 86400, 259200 → median 172800. Outside: one from Feb 20 still open, one
/// from Feb 1 resolved Feb 2, one from Feb 25 closed Mar 3, one from Apr 5. Backlog at
/// `to`: Feb 20, T3, T4, T5 = 4.
#[tokio::test]
async fn support_metrics_of_a_known_fixture_match_the_hand_computed_numbers() {
    let app = TestApp::spawn().await;
    let admin = with_role(&app, "admin", "admin").await;
    let (a, b) = (customer(&app, at(2025, 1, 1), true).await, customer(&app, at(2025, 1, 2), true).await);
    let h = chrono::Duration::hours;
    let d = chrono::Duration::days;
    let t1 = at(2025, 3, 2);
    ticket(&app, a, t1, Some(t1 + h(1)), Some(t1 + d(1)), None).await;
    let t2 = at(2025, 3, 5);
    ticket(&app, b, t2, Some(t2 + h(3)), Some(t2 + d(3)), None).await;
    let t3 = at(2025, 3, 10);
    ticket(&app, a, t3, Some(t3 + h(5)), None, None).await;
    ticket(&app, b, at(2025, 3, 20), None, None, None).await;
    let t5 = at(2025, 3, 31);
    ticket(&app, a, t5, Some(t5 + d(1) + h(1)), Some(t5 + d(2)), None).await;
    ticket(&app, b, at(2025, 2, 20), None, None, None).await;
    ticket(&app, a, at(2025, 2, 1), Some(at(2025, 2, 1) + h(1)), Some(at(2025, 2, 2)), None).await;
    ticket(&app, b, at(2025, 2, 25), None, None, Some(at(2025, 3, 3))).await;
    ticket(&app, a, at(2025, 4, 5), None, None, None).await;

    let r = app
        .gql(
            Some(&admin.access),
            "query($f: DateTime!, $t: DateTime!) { supportMetrics(from: $f, to: $t) { opened responded
                firstResponseMedianSeconds firstResponseP90Seconds resolved resolutionMedianSeconds backlog } }",
            json!({ "f": at(2025, 3, 1), "t": at(2025, 4, 1) }),
        )
        .await;
    let m = &r["data"]["supportMetrics"];
    assert!(r["errors"].is_null(), "{r}");
    assert_eq!((m["opened"].clone(), m["responded"].clone(), m["resolved"].clone()), (json!(5), json!(3), json!(2)));
    close(&m["firstResponseMedianSeconds"], 10800.0);
    close(&m["firstResponseP90Seconds"], 16560.0);
    close(&m["resolutionMedianSeconds"], 172800.0);
    assert_eq!(m["backlog"], 4, "{m}");

    // An empty range: zero counts, no medians, the backlog still at its end.
    let r = app
        .gql(
            Some(&admin.access),
            "query($f: DateTime!, $t: DateTime!) { supportMetrics(from: $f, to: $t) { opened firstResponseMedianSeconds backlog } }",
            json!({ "f": at(2025, 1, 1), "t": at(2025, 1, 2) }),
        )
        .await;
    assert_eq!(
        r["data"]["supportMetrics"],
        json!({ "opened": 0, "firstResponseMedianSeconds": null, "backlog": 0 }),
        "{r}"
    );
}

/// An admin's document asking for several metrics and for the admin's own rows at once:
/// its root fields resolve concurrently in one transaction, yet no field's statement runs
/// under the role another switched to (`plinth_metrics` has no right on `drafts`; the
/// admin's role sees only the admin's drafts), and each answer is whole.
#[tokio::test]
async fn metric_fields_resolved_together_never_run_under_each_others_role() {
    let app = TestApp::spawn().await;
    let admin = with_role(&app, "admin", "admin").await;
    let ann = app.register("ann").await;
    app.create_draft(&ann.access, "Ann's").await;
    app.create_draft(&admin.access, "The admin's").await;
    let q = "query($f: DateTime!, $t: DateTime!) {
        conversion(from: $f, to: $t) { signups verified }
        activation(from: $f, to: $t, withinDays: 7) { signups activated }
        drafts(first: 10) { nodes { title } }
        again: conversion(from: $f, to: $t) { signups verified }
        mine: drafts(first: 10) { nodes { title } } }";
    let now = Utc::now();
    let range = json!({ "f": now - chrono::Duration::days(1), "t": now + chrono::Duration::days(1) });
    for _ in 0..25 {
        let r = app.gql(Some(&admin.access), q, range.clone()).await;
        assert!(r["errors"].is_null(), "{r}");
        // Ann only: staff accounts are not sign-ups of the funnel.
        assert_eq!(r["data"]["conversion"]["signups"], 1, "{r}");
        assert_eq!(r["data"]["again"], r["data"]["conversion"]);
        assert_eq!(r["data"]["activation"]["signups"], 1, "{r}");
        for field in ["drafts", "mine"] {
            assert_eq!(r["data"][field]["nodes"], json!([{ "title": "The admin's" }]), "{r}");
        }
    }
}
