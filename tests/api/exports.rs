//! CSV exports of the business metrics over the wire: `GET /admin/metrics/<metric>.csv`
//! and `plinth metrics export` give, cell for cell, the numbers the GraphQL fields give
//! on a fixture (whose numbers `metrics.rs` and `experiments.rs` work out by hand); who
//! may fetch them; bad parameters; and the erasure of an account, which leaves past MRR
//! as it was.
use crate::{
    experiments::respondent,
    helpers::{code, TestApp, TestUser},
    metrics::{admin_api_token, at, customer, history, known_fixture, ticket, with_role},
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

/// One CSV row: header → cell.
type Row = BTreeMap<String, String>;

/// Fetches `path` with `token`: status, content type, disposition, body.
async fn fetch(app: &TestApp, token: Option<&str>, path: &str) -> (u16, String, String, String) {
    let mut req = app.http().get(app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let header = |name: &str| resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let (status, ct, cd) = (resp.status().as_u16(), header("content-type"), header("content-disposition"));
    (status, ct, cd, resp.text().await.unwrap())
}

/// The rows of a CSV text, read with the `csv` crate.
fn rows(text: &str) -> Vec<Row> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    reader.records().map(|r| header.iter().cloned().zip(r.unwrap().iter().map(str::to_owned)).collect()).collect()
}

/// An administrator's export of `path`, checked to be a CSV download.
async fn export(app: &TestApp, admin: &TestUser, path: &str) -> Vec<Row> {
    let (status, ct, cd, body) = fetch(app, Some(&admin.access), path).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(ct, "text/csv; charset=utf-8", "{path}");
    assert!(cd.starts_with("attachment; filename=\"") && cd.ends_with(".csv\""), "{path}: {cd}");
    assert!(body.contains("\r\n"), "RFC 4180 line ends");
    rows(&body)
}

/// A cell holds what a GraphQL value holds: null as an empty cell, a number as the same
/// number, a string as itself. Integers are compared exactly; fractions to a couple of
/// units in the last place, because serde_json reads JSON floats with its fast,
/// best-effort parser (not always the nearest double; the CSV's are read exactly).
#[track_caller]
fn same(cell: &str, value: &Value, what: &str) {
    match value {
        Value::Null => assert_eq!(cell, "", "{what}"),
        Value::Number(n) if n.is_i64() => assert_eq!(cell, n.to_string(), "{what}"),
        Value::Number(n) => {
            let got: f64 = cell.parse().unwrap_or_else(|_| panic!("{what}: {cell:?} is not a number"));
            let want = n.as_f64().unwrap();
            assert!((got - want).abs() <= 4.0 * f64::EPSILON * want.abs(), "{what}: {got} != {want}");
        }
        Value::String(s) => assert_eq!(cell, s, "{what}"),
        other => panic!("{what}: unexpected {other}"),
    }
}

/// Every row equals its GraphQL object on every column named as a field of it; the
/// columns that are not fields are `extra`, and nothing else is left unchecked.
#[track_caller]
fn matches(csv: &[Row], gql: &Value, extra: &[&str], what: &str) {
    let objects = gql.as_array().unwrap_or_else(|| panic!("{what}: {gql}"));
    assert_eq!(csv.len(), objects.len(), "{what}: rows");
    assert!(!csv.is_empty(), "{what}: an empty fixture proves nothing");
    for (i, (row, object)) in csv.iter().zip(objects).enumerate() {
        for (column, cell) in row {
            if extra.contains(&column.as_str()) {
                continue;
            }
            let value = object.get(column).unwrap_or_else(|| panic!("{what}: column {column} is no field of {object}"));
            same(cell, value, &format!("{what} row {i} {column}"));
        }
    }
}

async fn query(app: &TestApp, admin: &TestUser, q: &str, vars: Value) -> Value {
    let r = app.gql(Some(&admin.access), q, vars).await;
    assert!(r["errors"].is_null(), "{q}: {r}");
    r["data"].clone()
}

/// Tickets of March 2025 (three rated: 5 and 4 in March, 2 in April), an experiment
/// with assignments and a tracked goal, two NPS respondents (January and February).
async fn more_fixture(app: &TestApp) {
    let (a, b) = (customer(app, at(2024, 12, 2), true).await, customer(app, at(2024, 12, 3), true).await);
    let h = chrono::Duration::hours;
    ticket(app, a, at(2025, 3, 2), Some(at(2025, 3, 2) + h(1)), Some(at(2025, 3, 3)), None).await;
    ticket(app, b, at(2025, 3, 5), Some(at(2025, 3, 5) + h(3)), None, Some(at(2025, 3, 9))).await;
    ticket(app, a, at(2025, 3, 10), None, None, None).await;
    ticket(app, a, at(2025, 3, 20), None, Some(at(2025, 3, 21)), None).await;
    for (user, day, score) in [(a, (3, 4), 5), (b, (3, 10), 4), (a, (4, 2), 2)] {
        sqlx::query(
            "INSERT INTO ticket_csat (user_id, ticket_id, score, created_at)
             SELECT user_id, id, $2, $3 FROM tickets WHERE user_id = $1 AND status <> 'open'
               AND id NOT IN (SELECT ticket_id FROM ticket_csat) LIMIT 1",
        )
        .bind(user)
        .bind(score)
        .bind(at(2025, day.0, day.1))
        .execute(&app.db)
        .await
        .unwrap();
    }
    for sql in [
        "INSERT INTO experiments (key, variants, audience) VALUES ('pricing', '[{\"name\": \"control\", \"weight\": 1}, {\"name\": \"cheap\", \"weight\": 1}]', 'all')",
        "INSERT INTO experiment_assignments (user_id, experiment_key, variant)
           SELECT id, 'pricing', CASE WHEN row_number() OVER (ORDER BY id) % 2 = 0 THEN 'control' ELSE 'cheap' END
           FROM users WHERE role = 'user'",
        "INSERT INTO experiment_conversions (user_id, experiment_key, goal)
           SELECT user_id, 'pricing', 'clicked' FROM experiment_assignments WHERE variant = 'cheap'",
    ] {
        sqlx::query(sql).execute(&app.db).await.unwrap();
    }
    respondent(app, &[(10, at(2025, 1, 10), Some("why")), (8, at(2025, 2, 3), None)]).await;
    respondent(app, &[(4, at(2025, 1, 20), Some("why"))]).await;
}

#[tokio::test]
async fn every_csv_export_gives_the_graphql_numbers() {
    let app = TestApp::spawn().await;
    let admin = with_role(&app, "admin", "admin").await;
    known_fixture(&app).await;
    more_fixture(&app).await;
    let (jan, feb, mar, apr, may) = (
        json!(at(2025, 1, 1)),
        json!(at(2025, 2, 1)),
        json!(at(2025, 3, 1)),
        json!(at(2025, 4, 1)),
        json!(at(2025, 5, 1)),
    );
    let range = |f: &Value, t: &Value| format!("from={}&to={}", f.as_str().unwrap(), t.as_str().unwrap());
    let range = |f: &Value, t: &Value| range(f, t).replace('+', "%2B");

    let g = query(
        &app,
        &admin,
        "query($f: DateTime!, $t: DateTime!) { mrr(from: $f, to: $t, interval: WEEK) { currency buckets {
        start end openingCents closingCents newCents expansionCents contractionCents churnCents reactivationCents
        netChangeCents customers } } }",
        json!({ "f": jan, "t": may }),
    )
    .await;
    let csv = export(&app, &admin, &format!("/admin/metrics/mrr.csv?{}&interval=week", range(&jan, &may))).await;
    matches(&csv, &g["mrr"]["buckets"], &["currency"], "mrr");
    assert!(csv.iter().all(|r| r["currency"] == "eur"));
    // And the hand-computed closing MRR of the fixture at the end of April.
    assert_eq!(csv.last().unwrap()["closingCents"], "21383");

    let g = query(
        &app,
        &admin,
        "query($f: DateTime!, $t: DateTime!) { churn(from: $f, to: $t, interval: MONTH) {
        start end customersAtStart customersChurned openingCents churnedCents contractionCents expansionCents
        logoChurnRate revenueChurnRate netRevenueRetention } }",
        json!({ "f": feb, "t": apr }),
    )
    .await;
    let csv = export(&app, &admin, &format!("/admin/metrics/churn.csv?{}", range(&feb, &apr))).await;
    matches(&csv, &g["churn"], &[], "churn");
    assert_eq!(csv[1]["logoChurnRate"].parse::<f64>().unwrap(), 1.0 / 3.0);

    let g = query(
        &app,
        &admin,
        "query($f: DateTime!, $t: DateTime!) { conversion(from: $f, to: $t) { signups verified
        trials paid trialsPaid verifiedRate trialRate paidRate trialToPaidRate } }",
        json!({ "f": jan, "t": feb }),
    )
    .await;
    let csv = export(&app, &admin, &format!("/admin/metrics/conversion.csv?{}", range(&jan, &feb))).await;
    matches(&csv, &json!([g["conversion"]]), &["from", "to"], "conversion");
    assert_eq!(csv[0]["from"], at(2025, 1, 1).to_rfc3339(), "as GraphQL writes times");

    let g = query(
        &app,
        &admin,
        "query($f: DateTime!, $t: DateTime!) { activation(from: $f, to: $t, withinDays: 9) {
        signups activated rate withFirstJob medianSecondsToFirstJob p90SecondsToFirstJob } }",
        json!({ "f": jan, "t": feb }),
    )
    .await;
    let csv = export(&app, &admin, &format!("/admin/metrics/activation.csv?{}&withinDays=9", range(&jan, &feb))).await;
    matches(&csv, &json!([g["activation"]]), &["from", "to", "withinDays"], "activation");
    assert_eq!(csv[0]["withinDays"], "9");

    for metric in ["ACTIVE", "REVENUE"] {
        let g = query(
            &app,
            &admin,
            "query($f: DateTime!, $t: DateTime!, $m: CohortMetric!) { cohorts(from: $f, to: $t,
            metric: $m) { cohort monthsSince size value share } }",
            json!({ "f": jan, "t": feb, "m": metric }),
        )
        .await;
        let path = format!("/admin/metrics/cohorts.csv?{}&cohort={}", range(&jan, &feb), metric.to_lowercase());
        matches(&export(&app, &admin, &path).await, &g["cohorts"], &[], metric);
    }

    let g = query(
        &app,
        &admin,
        "query($f: DateTime!, $t: DateTime!) { supportMetrics(from: $f, to: $t) { opened
        responded firstResponseMedianSeconds firstResponseP90Seconds resolved resolutionMedianSeconds backlog
        csatResponses csatAverage csatSatisfied csat } }",
        json!({ "f": mar, "t": apr }),
    )
    .await;
    let csv = export(&app, &admin, &format!("/admin/metrics/supportMetrics.csv?{}", range(&mar, &apr))).await;
    matches(&csv, &json!([g["supportMetrics"]]), &["from", "to"], "supportMetrics");
    // By hand: the March ratings 5 and 4 (the April one is outside): average 4.5, both
    // satisfied.
    assert_eq!(
        (&csv[0]["csatResponses"], &csv[0]["csatAverage"], &csv[0]["csat"]),
        (&"2".into(), &"4.5".into(), &"1".into())
    );

    let g = query(
        &app,
        &admin,
        "query($f: DateTime!, $t: DateTime!) { usageTotals(from: $f, to: $t) { day plan scans
        preparations publishes } }",
        json!({ "f": jan, "t": mar }),
    )
    .await;
    let csv = export(&app, &admin, &format!("/admin/metrics/usageTotals.csv?{}", range(&jan, &mar))).await;
    matches(&csv, &g["usageTotals"], &[], "usageTotals");

    // Every goal (the derived ones, then the tracked one), each against GraphQL.
    let csv = export(&app, &admin, "/admin/metrics/experimentResults.csv?key=pricing").await;
    let goals: Vec<&str> = csv.iter().map(|r| r["goal"].as_str()).collect();
    assert_eq!(goals, ["verified", "verified", "first_job", "first_job", "paid", "paid", "clicked", "clicked"]);
    for (i, goal) in ["verified", "first_job", "paid", "clicked"].into_iter().enumerate() {
        let g = query(
            &app,
            &admin,
            "query($g: String!) { experimentResults(key: \"pricing\", goal: $g) { variants {
            variant weight exposed converted rate difference ciLow ciHigh zScore pValue } } }",
            json!({ "g": goal }),
        )
        .await;
        matches(&csv[2 * i..2 * i + 2], &g["experimentResults"]["variants"], &["experiment", "status", "goal"], goal);
    }
    assert_eq!((&csv[7]["variant"], &csv[7]["rate"]), (&"cheap".into(), &"1".into()));
    let one = export(&app, &admin, "/admin/metrics/experimentResults.csv?key=pricing&goal=clicked").await;
    assert_eq!(one, csv[6..]);

    let g = query(
        &app,
        &admin,
        "query($f: DateTime!, $t: DateTime!) { npsSummary(from: $f, to: $t) { respondents
        promoters passives detractors nps eligible responseRate distribution { score respondents }
        months { start respondents promoters passives detractors nps } } }",
        json!({ "f": jan, "t": mar }),
    )
    .await;
    let csv = export(&app, &admin, &format!("/admin/metrics/npsSummary.csv?{}", range(&jan, &mar))).await;
    let s = &g["npsSummary"];
    let periods: Vec<&str> = csv.iter().map(|r| r["period"].as_str()).collect();
    assert_eq!(periods, ["2025-01", "2025-02", "2025-03", "total"]);
    let scores: Vec<String> = (0..=10).map(|i| format!("score{i}")).collect();
    let mut month_extra: Vec<&str> = vec!["period", "eligible", "responseRate"];
    month_extra.extend(scores.iter().map(String::as_str));
    matches(&csv[..3], &s["months"], &month_extra, "npsSummary months");
    let mut total_extra = month_extra.clone();
    total_extra.retain(|c| !matches!(*c, "eligible" | "responseRate"));
    matches(&csv[3..], &json!([s]), &total_extra, "npsSummary total");
    for (i, d) in s["distribution"].as_array().unwrap().iter().enumerate() {
        same(&csv[3][&scores[i]], &d["respondents"], &scores[i]);
    }
    // By hand: January 10 and 4 (one promoter, one detractor: 0); March nobody (null);
    // the range, the latest of each: 8 and 4 (100 × (0 − 1) ÷ 2 = −50).
    let nps: Vec<&str> = csv.iter().map(|r| r["nps"].as_str()).collect();
    assert_eq!(nps, ["0", "0", "", "-50"]);

    // The command line writes the same file, to standard output or --out.
    let http = fetch(&app, Some(&admin.access), &format!("/admin/metrics/mrr.csv?{}&interval=week", range(&jan, &may)))
        .await
        .3;
    let out = app
        .cli(&[
            "metrics",
            "export",
            "mrr",
            "--from",
            "2025-01-01T12:00:00Z",
            "--to",
            "2025-05-01T12:00:00Z",
            "--interval",
            "WEEK",
        ])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), http);
    // --json: the same rows as objects keyed by the header, numbers as numbers.
    let out = app
        .cli(&["metrics", "export", "mrr", "--from", "2025-01-01T12:00:00Z", "--to", "2025-05-01T12:00:00Z"])
        .args(["--interval", "WEEK", "--json"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json_rows: Value = serde_json::from_slice(&out.stdout).expect("metrics export --json prints JSON");
    let csv_rows = rows(&http);
    assert_eq!(json_rows.as_array().map(Vec::len), Some(csv_rows.len()), "{json_rows}");
    for (j, c) in json_rows.as_array().unwrap().iter().zip(&csv_rows) {
        for (name, cell) in c {
            let rendered = match &j[name] {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            assert_eq!(&rendered, cell, "{name} in {j}");
        }
    }
    let file = app.data_dir.join("nps.csv");
    let out = app
        .cli(&["metrics", "export", "npsSummary", "--from", "2025-01-01T12:00:00Z", "--to", "2025-03-01T12:00:00Z"])
        .args(["--admin", &admin.email, "--out", file.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty());
    assert_eq!(rows(&std::fs::read_to_string(&file).unwrap()), csv);
    // A bad parameter, an unknown metric or address: a one-line error, a failure.
    for args in [
        &["metrics", "export", "mrr", "--from", "2025-02-01", "--to", "2025-01-01"][..],
        &["metrics", "export", "mrr", "--from", "2025-01-01", "--to", "2025-02-01", "--within-days", "3"],
        &["metrics", "export", "arr", "--from", "2025-01-01", "--to", "2025-02-01"],
        &["metrics", "export", "mrr", "--from", "2025-01-01", "--to", "2025-02-01", "--admin", "nobody@example.com"],
    ] {
        let out = app.cli(args).output().await.unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("plinth: "), "{args:?}");
    }
}

/// Only an administrator signed in with a session: users, support staff and API tokens
/// (an administrator's included) get 403 with FORBIDDEN, anonymous callers 401; bad
/// parameters are 400 with BAD_USER_INPUT naming the parameter, an unknown metric 404.
#[tokio::test]
async fn exports_are_for_administrators_and_refuse_bad_parameters() {
    let app = TestApp::spawn().await;
    let user = app.register("ann").await;
    let support = with_role(&app, "sue", "support").await;
    let admin = with_role(&app, "admin", "admin").await;
    let api_token = admin_api_token(&app, &admin).await;
    let error = |body: &str| -> Value { serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}")) };
    let paths = [
        "/admin/metrics/mrr.csv?from=2025-01-01&to=2025-02-01",
        "/admin/metrics/churn.csv?from=2025-01-01&to=2025-02-01&interval=DAY",
        "/admin/metrics/conversion.csv?from=2025-01-01&to=2025-02-01",
        "/admin/metrics/activation.csv?from=2025-01-01&to=2025-02-01",
        "/admin/metrics/cohorts.csv?from=2025-01-01&to=2025-02-01",
        "/admin/metrics/supportMetrics.csv?from=2025-01-01&to=2025-02-01",
        "/admin/metrics/usageTotals.csv?from=2025-01-01&to=2025-02-01",
        "/admin/metrics/npsSummary.csv?from=2025-01-01&to=2025-02-01",
        "/admin/metrics/experimentResults.csv?key=nope",
    ];
    for path in paths {
        for (who, token) in [("user", &user.access), ("support", &support.access), ("api token", &api_token)] {
            let (status, ct, _, body) = fetch(&app, Some(token), path).await;
            assert_eq!((status, ct.as_str()), (403, "application/json"), "{who}: {path}");
            assert_eq!(code(&error(&body)), "FORBIDDEN", "{who}: {path}");
        }
        let (status, _, _, body) = fetch(&app, None, path).await;
        assert_eq!((status, code(&error(&body))), (401, "UNAUTHENTICATED"), "{path}");
        let (status, _, _, body) = fetch(&app, Some(&admin.access), path).await;
        let want = if path.contains("nope") { 404 } else { 200 };
        assert_eq!(status, want, "{path}: {body}");
    }
    // A non-admin learns nothing about parameters: still FORBIDDEN.
    let (status, _, _, _) = fetch(&app, Some(&user.access), "/admin/metrics/mrr.csv?from=never").await;
    assert_eq!(status, 403);
    for (query, field) in [
        ("mrr.csv?to=2025-02-01", "from"),
        ("mrr.csv?from=2025-13-01&to=2025-02-01", "from"),
        ("mrr.csv?from=2025-01-01&to=soon", "to"),
        ("mrr.csv?from=2025-02-01&to=2025-01-01", "to"),
        ("mrr.csv?from=2010-01-01&to=2025-01-01", "to"),
        ("mrr.csv?from=2015-01-01&to=2025-01-01&interval=DAY", "interval"),
        ("mrr.csv?from=2025-01-01&to=2025-02-01&interval=YEAR", "interval"),
        ("mrr.csv?from=2025-01-01&to=2025-02-01&limit=3", "limit"),
        ("mrr.csv?from=2025-01-01&from=2025-01-02&to=2025-02-01", "from"),
        ("activation.csv?from=2025-01-01&to=2025-02-01&withinDays=400", "withinDays"),
        ("activation.csv?from=2025-01-01&to=2025-02-01&withinDays=a", "withinDays"),
        ("cohorts.csv?from=2025-01-01&to=2025-02-01&cohort=ALL", "cohort"),
        ("experimentResults.csv", "key"),
        ("experimentResults.csv?key=nope&goal=Not%20A%20Goal", "goal"),
    ] {
        let (status, ct, _, body) = fetch(&app, Some(&admin.access), &format!("/admin/metrics/{query}")).await;
        assert_eq!((status, ct.as_str()), (400, "application/json"), "{query}: {body}");
        let e = error(&body);
        assert_eq!(code(&e), "BAD_USER_INPUT", "{query}: {e}");
        assert_eq!(e["errors"][0]["extensions"]["field"], field, "{query}: {e}");
    }
    for path in ["/admin/metrics/arr.csv", "/admin/metrics/mrr", "/admin/metrics/mrr.json"] {
        let (status, _, _, body) = fetch(&app, Some(&admin.access), path).await;
        assert_eq!((status, code(&error(&body))), (404, "NOT_FOUND"), "{path}");
    }
}

/// Erasing a customer keeps its subscription history, pseudonymized: MRR and churn of
/// the months before are what they were; its subscription, still paying, churns at the
/// erasure; no row names the account or its Stripe subscription any more.
#[tokio::test]
async fn erasing_a_customer_leaves_past_mrr_as_it_was() {
    let app = TestApp::builder().with_env("PLINTH_ACCOUNT_SWEEP_SECS", "1").spawn().await;
    let admin = with_role(&app, "admin", "admin").await;
    known_fixture(&app).await;
    // Ann, the customer to erase: Starter monthly from Jan 15, Pro yearly from Mar 1
    // (49,000 ÷ 12 = 4,083), still paying.
    let ann = customer(&app, at(2025, 1, 2), true).await;
    history(&app, ann, "sub_ann", at(2025, 1, 15), "starter", "month", "active").await;
    history(&app, ann, "sub_ann", at(2025, 3, 1), "pro", "year", "active").await;
    let queries = [
        "query($f: DateTime!, $t: DateTime!) { mrr(from: $f, to: $t, interval: MONTH) { buckets { start
           openingCents closingCents newCents expansionCents contractionCents churnCents reactivationCents customers } } }",
        "query($f: DateTime!, $t: DateTime!) { churn(from: $f, to: $t, interval: MONTH) { start customersAtStart
           customersChurned openingCents churnedCents logoChurnRate revenueChurnRate netRevenueRetention } }",
    ];
    let past = json!({ "f": at(2025, 1, 1), "t": at(2025, 6, 1) });
    let mut before = Vec::new();
    for q in queries {
        before.push(query(&app, &admin, q, past.clone()).await);
    }
    // By hand, with Ann: at the end of April 21,383 (the fixture) + 4,083.
    assert_eq!(before[0]["mrr"]["buckets"][3]["closingCents"], 25_466);
    let now = query(&app, &admin, queries[0], json!({ "f": at(2025, 6, 1), "t": chrono::Utc::now() })).await;
    let paying_now = now["mrr"]["buckets"].as_array().unwrap().last().unwrap()["closingCents"].as_i64().unwrap();
    let rows_before = app.count("billing_subscription_history").await;

    sqlx::query("UPDATE users SET deletion_requested_at = now(), deletion_scheduled_at = now() - interval '1 second' WHERE id = $1")
        .bind(ann)
        .execute(&app.db)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while app.count(&format!("users WHERE id = '{ann}'")).await > 0 {
        assert!(std::time::Instant::now() < deadline, "the account was not erased");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    for (q, was) in queries.iter().zip(&before) {
        assert_eq!(&query(&app, &admin, q, past.clone()).await, was, "{q}");
    }
    // Her 4,083 churned at the erasure: today's MRR is that much lower.
    let day = json!({ "f": at(2025, 6, 1), "t": chrono::Utc::now() + chrono::Duration::minutes(1) });
    let after = query(&app, &admin, queries[0], day).await;
    let last = after["mrr"]["buckets"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["closingCents"].as_i64().unwrap(), paying_now - 4083, "{last}");
    assert_eq!(last["churnCents"], 4083, "{last}");
    // Her rows stay, one more (the end), under a pseudonym that is no account, made from
    // the invoice archive's pseudonym; her Stripe subscription id is gone.
    assert_eq!(app.count("billing_subscription_history").await, rows_before + 1);
    let sealer = api::secretbox::SecretBox::load_or_create(&app.data_dir.join("credentials_key")).unwrap();
    let subject = api::accounts::privacy::Privacy::pseudonym(&sealer, ann);
    let kept: Vec<(Uuid, String, String, i64)> = sqlx::query_as(
        "SELECT user_id, subscription_id, status, mrr_cents FROM billing_subscription_history
          WHERE user_id = md5('subscription-history:' || $1)::uuid ORDER BY effective_at, id",
    )
    .bind(&subject)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let summary: Vec<(&str, i64)> = kept.iter().map(|k| (k.2.as_str(), k.3)).collect();
    assert_eq!(summary, [("active", 1900), ("active", 4083), ("canceled", 0)]);
    assert!(kept.iter().all(|k| k.1 == kept[0].1 && k.1.starts_with("erased_") && !k.1.contains("ann")), "{kept:?}");
    assert_eq!(app.count(&format!("users WHERE id = '{}'", kept[0].0)).await, 0);
    let everything: String =
        sqlx::query_scalar("SELECT string_agg(to_jsonb(h)::text, ' ') FROM billing_subscription_history h")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(!everything.contains(&ann.to_string()) && !everything.contains("sub_ann"));
}
