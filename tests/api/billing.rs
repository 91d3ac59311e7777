//! Billing over the wire, against a local server speaking Stripe's wire format and
//! webhooks signed with Stripe's real scheme: checkout to active, redeliveries and
//! concurrent deliveries applied once, events out of order, bad signatures, the
//! payment-failure path to suspension and back, trials granted once, reconciliation;
//! then issue 10's failures, one test each (`failure_N_...`), and a property test of
//! random interleavings and duplicates of a realistic event sequence.

use crate::helpers::{
    code,
    stripe::{event, event_in_version, invoice, item, subscription, tax_id, FakeStripe, API_VERSION},
    TestApp, TestUser,
};
use api::billing::signature::sign;
use chrono::{DateTime, Datelike, Months, Utc};
use serde_json::{json, Value};

/// Seconds since the epoch, as Stripe dates its objects.
fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn checkout(app: &TestApp, token: &str, plan: &str, interval: &str) -> Value {
    app.gql(
        Some(token),
        "mutation($i: StartCheckoutInput!) { startCheckout(input: $i) { url } }",
        json!({ "i": { "plan": plan, "interval": interval } }),
    )
    .await
}

/// A monthly checkout of `plan` that must start, as a user's way to a Stripe
/// customer; returns the customer's id.
async fn start_checkout(app: &TestApp, user: &TestUser, plan: &str) -> String {
    let r = checkout(app, &user.access, plan, "MONTH").await;
    assert!(r["data"]["startCheckout"]["url"].is_string(), "the checkout did not start: {r}");
    app.stripe_customer(user).await
}

async fn billing(app: &TestApp, token: &str) -> Value {
    app.gql(Some(token), "{ billing { plan state subscriptionStatus trialAvailable graceUntil } }", json!({})).await
        ["data"]["billing"]
        .clone()
}

async fn templates_sent(app: &TestApp, user: &TestUser) -> Vec<String> {
    sqlx::query_scalar("SELECT template FROM email_outbox WHERE user_id = $1 ORDER BY created_at, id")
        .bind(user.id)
        .fetch_all(&app.db)
        .await
        .unwrap()
}

async fn notification_kinds(app: &TestApp, user: &TestUser) -> Vec<String> {
    let r = app.gql(Some(&user.access), "{ notifications { kind } }", json!({})).await;
    let mut kinds: Vec<String> =
        r["data"]["notifications"].as_array().unwrap().iter().map(|n| n["kind"].as_str().unwrap().to_owned()).collect();
    kinds.reverse();
    kinds
}

#[tokio::test]
async fn plans_are_public() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let r = app
        .gql(
            None,
            "{ plans { code name monthlyPriceCents yearlyPriceCents trialDays quotas { metric limit } } }",
            json!({}),
        )
        .await;
    let plans = r["data"]["plans"].as_array().unwrap();
    let codes: Vec<_> = plans.iter().map(|p| p["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["FREE", "STARTER", "PRO", "SCALE"]);
    assert_eq!(plans[2]["monthlyPriceCents"], 4900);
    assert_eq!(plans[2]["trialDays"], 14);
    assert!(plans[2]["quotas"].as_array().unwrap().iter().any(|q| q["metric"] == "SCANS" && q["limit"] == 2500));
}

#[tokio::test]
async fn checkout_to_webhook_to_active() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let mut ann = app.register("ann").await;
    let r = checkout(&app, &ann.access, "PRO", "YEAR").await;
    assert!(r["data"]["startCheckout"]["url"].as_str().unwrap().starts_with("https://checkout.stripe.test/"), "{r}");

    let customers = stripe.requests_to("POST /v1/customers");
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0].get("email"), Some(ann.email.as_str()));
    assert_eq!(customers[0].idempotency_key.as_deref(), Some(format!("customer-{}", ann.id).as_str()));
    assert_eq!(customers[0].authorization.as_deref(), Some("Bearer sk_test_plinth"));
    let session = &stripe.requests_to("POST /v1/checkout/sessions")[0];
    let customer = app.stripe_customer(&ann).await;
    for (key, value) in [
        ("mode", "subscription"),
        ("customer", customer.as_str()),
        ("line_items[0][price]", "price_pro_yearly"),
        ("line_items[0][quantity]", "1"),
        ("automatic_tax[enabled]", "true"),
        ("tax_id_collection[enabled]", "true"),
        ("billing_address_collection", "required"),
        ("customer_update[address]", "auto"),
        ("subscription_data[trial_period_days]", "14"),
        ("client_reference_id", &ann.id.to_string()),
    ] {
        assert_eq!(session.get(key), Some(value), "{key} in {:?}", session.form);
    }
    assert!(session.get("success_url").unwrap().contains("{CHECKOUT_SESSION_ID}"));

    // A second checkout reuses the customer.
    checkout(&app, &ann.access, "STARTER", "MONTH").await;
    assert_eq!(stripe.requests_to("POST /v1/customers").len(), 1);

    let t = now();
    let (status, _) = app
        .deliver_webhook(&event(
            "evt_1",
            "checkout.session.completed",
            t,
            json!({ "id": "cs_1", "customer": customer, "subscription": "sub_1" }),
        ))
        .await;
    assert_eq!(status, 200);
    let sub = subscription("sub_1", &customer, "trialing", "price_pro_yearly", t);
    assert_eq!(
        app.deliver_webhook(&event("evt_2", "customer.subscription.created", t, sub)).await,
        (200, "applied".into())
    );

    // The old access token carried the Free plan: it was revoked.
    let stale = app.gql(Some(&ann.access), "{ me { plan } }", json!({})).await;
    assert_eq!(code(&stale), "UNAUTHENTICATED");
    app.refresh_session(&mut ann).await;
    assert_eq!(app.gql(Some(&ann.access), "{ me { plan } }", json!({})).await["data"]["me"]["plan"], "PRO");
    let b = billing(&app, &ann.access).await;
    assert_eq!(
        (b["plan"].as_str(), b["state"].as_str(), b["subscriptionStatus"].as_str()),
        (Some("PRO"), Some("ACTIVE"), Some("trialing"))
    );
    assert_eq!(b["trialAvailable"], false);
    assert_eq!(templates_sent(&app, &ann).await.last().map(String::as_str), Some("subscription_started"));
    assert_eq!(notification_kinds(&app, &ann).await, ["subscription_started"]);

    let portal = app.gql(Some(&ann.access), "mutation { openBillingPortal { url } }", json!({})).await;
    assert!(portal["data"]["openBillingPortal"]["url"].as_str().unwrap().starts_with("https://billing.stripe.test/"));
    assert_eq!(stripe.requests_to("POST /v1/billing_portal/sessions")[0].get("customer"), Some(customer.as_str()));
    // Subscribed: no second checkout.
    assert_eq!(code(&checkout(&app, &ann.access, "SCALE", "MONTH").await), "CONFLICT");
}

#[tokio::test]
async fn redelivered_and_concurrent_events_apply_once() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let ann = app.register("ann").await;
    let customer = start_checkout(&app, &ann, "PRO").await;
    let t = now();
    let paid = event("evt_paid", "invoice.paid", t, invoice("in_1", &customer, "paid", 5880, t));
    assert_eq!(app.deliver_webhook(&paid).await, (200, "applied".into()));
    assert_eq!(app.deliver_webhook(&paid).await, (200, "duplicate".into()));
    assert_eq!(templates_sent(&app, &ann).await.iter().filter(|t| *t == "receipt").count(), 1);

    // 50 concurrent deliveries of one new event: one applies, the rest are no-ops.
    let failed = event("evt_failed", "invoice.payment_failed", t + 1, invoice("in_2", &customer, "open", 0, t + 1));
    let answers = futures::future::join_all((0..50).map(|_| app.deliver_webhook(&failed))).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    assert_eq!(answers.iter().filter(|(_, b)| b == "applied").count(), 1, "{answers:?}");
    assert_eq!(templates_sent(&app, &ann).await.iter().filter(|t| *t == "payment_failed").count(), 1);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_events").fetch_one(&app.db).await.unwrap();
    assert_eq!(events, 2);
    let r = app
        .gql(Some(&ann.access), "{ invoices(first: 10) { edges { node { number status taxCentsTotal: taxCents totalCents amountDueCents } } } }", json!({}))
        .await;
    let invoices = r["data"]["invoices"]["edges"].as_array().unwrap();
    assert_eq!(invoices.len(), 2, "{r}");
    assert!(invoices.iter().all(|e| e["node"]["taxCentsTotal"] == 980));
}

#[tokio::test]
async fn events_out_of_order_end_in_the_right_state() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let mut ann = app.register("ann").await;
    let customer = start_checkout(&app, &ann, "PRO").await;
    let t = now() - 100;
    // Updated (t+10) arrives before created (t): the older one changes nothing.
    let updated = subscription("sub_1", &customer, "active", "price_scale_monthly", t + 10);
    let created = subscription("sub_1", &customer, "trialing", "price_pro_monthly", t);
    app.deliver_webhook(&event("evt_u", "customer.subscription.updated", t + 10, updated)).await;
    app.deliver_webhook(&event("evt_c", "customer.subscription.created", t, created)).await;
    app.refresh_session(&mut ann).await;
    let b = billing(&app, &ann.access).await;
    assert_eq!((b["plan"].as_str(), b["subscriptionStatus"].as_str()), (Some("SCALE"), Some("active")));

    // Deleted (t+30) arrives before a late update (t+20): canceled wins, and an ended
    // subscription is the Free plan.
    let deleted = subscription("sub_1", &customer, "canceled", "price_scale_monthly", t + 30);
    let late = subscription("sub_1", &customer, "active", "price_scale_monthly", t + 20);
    app.deliver_webhook(&event("evt_d", "customer.subscription.deleted", t + 30, deleted)).await;
    app.deliver_webhook(&event("evt_l", "customer.subscription.updated", t + 20, late)).await;
    app.refresh_session(&mut ann).await;
    let b = billing(&app, &ann.access).await;
    assert_eq!(
        (b["state"].as_str(), b["plan"].as_str(), b["subscriptionStatus"].as_str()),
        (Some("FREE"), Some("FREE"), Some("canceled"))
    );
}

#[tokio::test]
async fn bad_and_stale_signatures_are_refused_and_write_nothing() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let ann = app.register("ann").await;
    let customer = start_checkout(&app, &ann, "PRO").await;
    let body = event(
        "evt_x",
        "customer.subscription.created",
        now(),
        subscription("sub_1", &customer, "active", "price_pro_monthly", now()),
    );
    assert_eq!(app.deliver_webhook_signed(&body, "whsec_wrong", now()).await.0, 400);
    assert_eq!(app.deliver_webhook_signed(&body, FakeStripe::WEBHOOK_SECRET, now() - 3600).await.0, 400, "stale");
    let unsigned = app.http().post(app.url("/webhooks/stripe")).json(&body).send().await.unwrap();
    assert_eq!(unsigned.status(), 400);
    // Signed for one body, sent with another.
    let raw = serde_json::to_vec(&body).unwrap();
    let header = sign(&raw, FakeStripe::WEBHOOK_SECRET, now());
    let tampered = raw.iter().map(|b| if *b == b'x' { b'y' } else { *b }).collect::<Vec<u8>>();
    let resp = app
        .http()
        .post(app.url("/webhooks/stripe"))
        .header("stripe-signature", header)
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_events").fetch_one(&app.db).await.unwrap();
    assert_eq!(events, 0);
    assert_eq!(billing(&app, &ann.access).await["state"], "FREE");
    // The previous secret still works during a rotation.
    assert_eq!(app.deliver_webhook_signed(&body, FakeStripe::PREVIOUS_WEBHOOK_SECRET, now()).await.0, 200);
}

#[tokio::test]
async fn payment_failure_grace_suspension_payment_reactivation() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let mut ann = app.register("ann").await;
    let customer = start_checkout(&app, &ann, "STARTER").await;
    let t = now() - 1000;
    let sub = |status: &str| subscription("sub_1", &customer, status, "price_starter_monthly", t);
    app.deliver_webhook(&event("e1", "customer.subscription.created", t, sub("active"))).await;
    app.deliver_webhook(&event("e2", "invoice.payment_failed", t + 1, invoice("in_1", &customer, "open", 0, t + 1)))
        .await;
    app.deliver_webhook(&event("e3", "customer.subscription.updated", t + 2, sub("past_due"))).await;
    app.refresh_session(&mut ann).await;
    let b = billing(&app, &ann.access).await;
    assert_eq!(b["state"], "GRACE");
    assert!(b["graceUntil"].is_string());
    // Grace: premium still works.
    let job = app.gql(Some(&ann.access), "mutation { createJob(input: {kind: SCAN}) { id } }", json!({})).await;
    assert!(job["data"]["createJob"].is_object(), "{job}");

    app.deliver_webhook(&event("e4", "customer.subscription.updated", t + 3, sub("unpaid"))).await;
    app.refresh_session(&mut ann).await;
    assert_eq!(billing(&app, &ann.access).await["state"], "SUSPENDED");
    let refused = app.gql(Some(&ann.access), "mutation { createJob(input: {kind: SCAN}) { id } }", json!({})).await;
    assert_eq!(code(&refused), "SUBSCRIPTION_INACTIVE");
    let upload = app
        .gql(
            Some(&ann.access),
            "mutation { createUpload(contentType: \"image/png\", byteSize: 10) { uploadUrl } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&upload), "SUBSCRIPTION_INACTIVE");
    // Reads keep working.
    let read = app
        .gql(Some(&ann.access), "{ jobs { edges { node { id } } } drafts { edges { node { id } } } }", json!({}))
        .await;
    assert!(read["errors"].is_null(), "{read}");

    app.deliver_webhook(&event("e5", "invoice.paid", t + 4, invoice("in_1", &customer, "paid", 5880, t + 1))).await;
    app.deliver_webhook(&event("e6", "customer.subscription.updated", t + 5, sub("active"))).await;
    app.refresh_session(&mut ann).await;
    assert_eq!(billing(&app, &ann.access).await["state"], "ACTIVE");
    let job = app.gql(Some(&ann.access), "mutation { createJob(input: {kind: SCAN}) { id } }", json!({})).await;
    assert!(job["data"]["createJob"].is_object(), "{job}");

    assert_eq!(
        templates_sent(&app, &ann).await,
        [
            "verify_email",
            "subscription_started",
            "payment_failed",
            "payment_failed",
            "suspended",
            "receipt",
            "reactivated"
        ]
    );
    assert_eq!(
        notification_kinds(&app, &ann).await,
        ["subscription_started", "payment_failed", "payment_failed", "suspended", "receipt", "reactivated"]
    );
    let states: Vec<Value> = sqlx::query_scalar(
        "SELECT data FROM activity_log WHERE user_id = $1 AND action = 'billing.state_changed' ORDER BY created_at, id",
    )
    .bind(ann.id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let path: Vec<_> = states.iter().map(|d| d["to"].as_str().unwrap()).collect();
    assert_eq!(path, ["active", "grace", "suspended", "active"]);
    let read = app.gql(Some(&ann.access), "mutation { markNotificationsRead }", json!({})).await;
    assert_eq!(read["data"]["markNotificationsRead"], 6);
}

#[tokio::test]
async fn an_expired_grace_period_counts_as_suspended() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let mut ann = app.register("ann").await;
    let customer = start_checkout(&app, &ann, "PRO").await;
    // Past due since eight days (the webhook arrives late): the seven days of grace are over.
    let since = now() - 8 * 86_400;
    app.deliver_webhook(&event(
        "e1",
        "customer.subscription.updated",
        since,
        subscription("sub_1", &customer, "past_due", "price_pro_monthly", since),
    ))
    .await;
    app.refresh_session(&mut ann).await;
    assert_eq!(billing(&app, &ann.access).await["state"], "SUSPENDED");
    let refused = app.gql(Some(&ann.access), "mutation { createJob(input: {kind: SCAN}) { id } }", json!({})).await;
    assert_eq!(code(&refused), "SUBSCRIPTION_INACTIVE");
    // And a grace whose end the sweeper has not reached yet is refused all the same.
    let mut bob = app.register("bob").await;
    let bobs = start_checkout(&app, &bob, "PRO").await;
    app.deliver_webhook(&event(
        "e2",
        "customer.subscription.updated",
        now(),
        subscription("sub_2", &bobs, "past_due", "price_pro_monthly", now()),
    ))
    .await;
    sqlx::query("UPDATE billing_accounts SET grace_until = now() - interval '1 minute' WHERE user_id = $1")
        .bind(bob.id)
        .execute(&app.db)
        .await
        .unwrap();
    app.refresh_session(&mut bob).await;
    let refused = app.gql(Some(&bob.access), "mutation { createJob(input: {kind: SCAN}) { id } }", json!({})).await;
    assert_eq!(code(&refused), "SUBSCRIPTION_INACTIVE");
}

#[tokio::test]
async fn a_trial_is_never_granted_twice() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let ann = app.register("ann").await;
    let customer = start_checkout(&app, &ann, "PRO").await;
    let t = now();
    app.deliver_webhook(&event(
        "e1",
        "customer.subscription.created",
        t,
        subscription("sub_1", &customer, "trialing", "price_pro_monthly", t),
    ))
    .await;
    app.deliver_webhook(&event(
        "e2",
        "customer.subscription.deleted",
        t + 1,
        subscription("sub_1", &customer, "canceled", "price_pro_monthly", t + 1),
    ))
    .await;
    let mut ann = ann;
    app.refresh_session(&mut ann).await;
    assert_eq!(billing(&app, &ann.access).await["trialAvailable"], false);
    let r = checkout(&app, &ann.access, "PRO", "MONTH").await;
    assert!(r["data"]["startCheckout"]["url"].is_string(), "{r}");
    let sessions = stripe.requests_to("POST /v1/checkout/sessions");
    assert_eq!(sessions[0].get("subscription_data[trial_period_days]"), Some("14"));
    assert_eq!(sessions[1].get("subscription_data[trial_period_days]"), None, "no second trial");
}

#[tokio::test]
async fn billing_refuses_bad_input_and_unconfigured_servers() {
    let plain = TestApp::spawn().await;
    let bob = plain.register("bob").await;
    assert_eq!(code(&checkout(&plain, &bob.access, "PRO", "MONTH").await), "FORBIDDEN");
    let webhook = plain.http().post(plain.url("/webhooks/stripe")).body("{}").send().await.unwrap();
    assert_eq!(webhook.status(), 400);
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let ann = app.register("ann").await;
    assert!(checkout(&app, &ann.access, "FREE", "MONTH").await["errors"].is_array());
    let anon = app.gql(None, "mutation { startCheckout(input: {plan: PRO}) { url } }", json!({})).await;
    assert_eq!(code(&anon), "UNAUTHENTICATED");
    assert_eq!(
        code(&app.gql(Some(&ann.access), "mutation { openBillingPortal { url } }", json!({})).await),
        "CONFLICT"
    );
    // A field that calls Stripe releases the request's transaction: after another field
    // wrote, it refuses, and the request leaves nothing behind.
    let both = app
        .gql(
            Some(&ann.access),
            "mutation { createDraft(input: {title: \"x\"}) { id } startCheckout(input: {plan: PRO}) { url } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&both), "BAD_USER_INPUT", "{both}");
    assert_eq!(app.count(&format!("drafts WHERE user_id = '{}'", ann.id)).await, 0);
    assert!(stripe.requests_to("POST /v1/checkout/sessions").is_empty());
}

#[tokio::test]
async fn reconcile_repairs_drift_and_is_idempotent() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let ann = app.register("ann").await;
    let customer = start_checkout(&app, &ann, "PRO").await;
    let t = now() - 100;
    app.deliver_webhook(&event(
        "e1",
        "customer.subscription.created",
        t,
        subscription("sub_1", &customer, "past_due", "price_pro_monthly", t),
    ))
    .await;
    // Stripe says active (the webhook that said so was lost), plus an unknown customer.
    stripe.set_subscriptions(vec![
        subscription("sub_1", &customer, "active", "price_pro_monthly", t + 50),
        subscription("sub_x", "cus_nobody", "active", "price_pro_monthly", t),
    ]);
    // Async: the fake Stripe serves on this test's runtime while the CLI calls it.
    let run = |json: bool| {
        app.cli(if json { &["billing", "reconcile", "--json"][..] } else { &["billing", "reconcile"][..] })
            .env("PLINTH_STRIPE_SECRET_KEY", FakeStripe::SECRET_KEY)
            .env("PLINTH_STRIPE_API_BASE", &stripe.url)
            .output()
    };
    let out = run(false).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("past_due pro -> active pro"), "{text}");
    assert!(text.contains("cus_nobody"), "{text}");
    let state: String =
        sqlx::query_scalar("SELECT account_state FROM billing_accounts").fetch_one(&app.db).await.unwrap();
    assert_eq!(state, "active");
    // Scripts read the changes as JSON (standard output holds nothing else).
    let again: Value = serde_json::from_slice(&run(true).await.unwrap().stdout).expect("reconcile --json prints JSON");
    assert_eq!(again["count"], 1, "only the unknown customer is reported again: {again}");
    assert!(again["changes"][0].as_str().is_some_and(|c| c.contains("cus_nobody")), "{again}");
}

/// The instant `secs` (unix seconds) as GraphQL renders it, for comparisons.
fn instant(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc))
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

async fn billing_of(app: &TestApp, user: &mut TestUser) -> Value {
    app.refresh_session(user).await;
    app.gql(
        Some(&user.access),
        "{ billing { plan state subscriptionStatus cancelsAt currentPeriodEnd addressCountry
                     taxIds { type value country verification } } }",
        json!({}),
    )
    .await["data"]["billing"]
        .clone()
}

fn plan_state(b: &Value) -> (&str, &str) {
    (b["plan"].as_str().unwrap_or("?"), b["state"].as_str().unwrap_or("?"))
}

async fn event_note(app: &TestApp, id: &str) -> Option<String> {
    sqlx::query_scalar("SELECT note FROM stripe_events WHERE id = $1").bind(id).fetch_one(&app.db).await.unwrap()
}

async fn invoice_status(app: &TestApp, user: &TestUser, id: &str) -> String {
    sqlx::query_scalar("SELECT status FROM invoices WHERE user_id = $1 AND stripe_invoice_id = $2")
        .bind(user.id)
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

async fn reconcile(app: &TestApp, stripe: &FakeStripe) -> String {
    let out = app
        .cli(&["billing", "reconcile"])
        .env("PLINTH_STRIPE_SECRET_KEY", FakeStripe::SECRET_KEY)
        .env("PLINTH_STRIPE_API_BASE", &stripe.url)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Failure 1: `updated` (active) and `created` (incomplete) of one second, in either
/// order, leave a paying customer ACTIVE; one second apart too.
#[tokio::test]
async fn failure_1_equal_timestamps_never_move_a_paying_customer_backwards() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let t = now() - 100;
    for (name, updated_at, created_at, updated_first) in
        [("ann", t, t, true), ("bob", t, t, false), ("cat", t + 1, t, true), ("dan", t + 1, t, false)]
    {
        let mut user = app.register(name).await;
        let customer = start_checkout(&app, &user, "PRO").await;
        let updated = event(
            &format!("evt_u_{name}"),
            "customer.subscription.updated",
            updated_at,
            subscription("sub_1", &customer, "active", "price_pro_monthly", t),
        );
        let created = event(
            &format!("evt_c_{name}"),
            "customer.subscription.created",
            created_at,
            subscription("sub_1", &customer, "incomplete", "price_pro_monthly", t),
        );
        let order = if updated_first { [&updated, &created] } else { [&created, &updated] };
        for e in order {
            assert_eq!(app.deliver_webhook(e).await.0, 200);
        }
        let b = billing_of(&app, &mut user).await;
        assert_eq!(plan_state(&b), ("PRO", "ACTIVE"), "{name}: {b}");
        assert_eq!(b["subscriptionStatus"], "active", "{name}");
    }
}

/// Failure 2: two tabs, one session; two subscriptions, the best wins and one ending
/// leaves the other; no checkout while a subscription lives.
#[tokio::test]
async fn failure_2_the_best_subscription_wins_and_two_tabs_get_one_session() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let mut ann = app.register("ann").await;
    // Two tabs at once, same plan: one session, one URL.
    let (a, b) = tokio::join!(checkout(&app, &ann.access, "PRO", "MONTH"), checkout(&app, &ann.access, "PRO", "MONTH"));
    let (ua, ub) = (&a["data"]["startCheckout"]["url"], &b["data"]["startCheckout"]["url"]);
    assert!(ua.is_string() && ua == ub, "{a} {b}");
    assert_eq!(stripe.sessions().len(), 1, "one session at Stripe");
    let keys: Vec<_> =
        stripe.requests_to("POST /v1/checkout/sessions").into_iter().map(|r| r.idempotency_key.unwrap()).collect();
    assert!(keys.iter().all(|k| *k == keys[0]), "one idempotency key: {keys:?}");
    // Two tabs at once, other plans: whatever the interleaving, one payable session.
    let (c, d) =
        tokio::join!(checkout(&app, &ann.access, "SCALE", "MONTH"), checkout(&app, &ann.access, "STARTER", "YEAR"));
    let open: Vec<_> = stripe.sessions().into_iter().filter(|s| s["status"] == "open").collect();
    assert_eq!(open.len(), 1, "one payable session: {open:?}; answers {c} {d}");
    let handed: Vec<_> = [&c, &d].iter().filter_map(|r| r["data"]["startCheckout"]["url"].as_str()).collect();
    assert!(handed.contains(&open[0]["url"].as_str().unwrap()), "{handed:?}");
    for r in [&c, &d] {
        assert!(r["data"]["startCheckout"]["url"].is_string() || code(r) == "CONFLICT", "{r}");
    }
    // That one was paid: replacing it now is refused.
    stripe.complete_session(open[0]["id"].as_str().unwrap());
    let late = checkout(&app, &ann.access, "PRO", "YEAR").await;
    assert_eq!(code(&late), "CONFLICT", "{late}");

    // Both tabs were paid (say, before this release): two subscriptions.
    let customer = app.stripe_customer(&ann).await;
    let t = now() - 100;
    let pro = subscription("sub_pro", &customer, "active", "price_pro_monthly", t);
    let starter = subscription("sub_starter", &customer, "active", "price_starter_monthly", t + 1);
    app.deliver_webhook(&event("e1", "customer.subscription.created", t, pro.clone())).await;
    app.deliver_webhook(&event("e2", "customer.subscription.created", t + 1, starter)).await;
    assert_eq!(plan_state(&billing_of(&app, &mut ann).await), ("PRO", "ACTIVE"));
    let refused = checkout(&app, &ann.access, "SCALE", "MONTH").await;
    assert_eq!(code(&refused), "CONFLICT");
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("billing portal"), "{refused}");
    // Cancelling one leaves the other: not suspended, Starter.
    let mut gone = pro;
    gone["status"] = json!("canceled");
    app.deliver_webhook(&event("e3", "customer.subscription.deleted", t + 2, gone)).await;
    let b = billing_of(&app, &mut ann).await;
    assert_eq!((plan_state(&b), b["subscriptionStatus"].as_str()), (("STARTER", "ACTIVE"), Some("active")));
    let job = app.gql(Some(&ann.access), "mutation { createJob(input: {kind: SCAN}) { id } }", json!({})).await;
    assert!(job["data"]["createJob"].is_object(), "{job}");
}

/// Failure 3: the plan comes from the item whose price is in the catalog, whatever its
/// place; an unknown price is noted on the event and never downgrades.
#[tokio::test]
async fn failure_3_several_items_take_the_plan_from_the_catalog_price() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let mut ann = app.register("ann").await;
    let customer = start_checkout(&app, &ann, "PRO").await;
    let t = now() - 100;
    let mut sub = subscription("sub_1", &customer, "active", "price_pro_monthly", t);
    sub["items"]["data"] = json!([item("sub_1", "price_addon_seats", 0), item("sub_1", "price_pro_monthly", 1)]);
    assert_eq!(app.deliver_webhook(&event("e1", "customer.subscription.created", t, sub.clone())).await.1, "applied");
    assert_eq!(plan_state(&billing_of(&app, &mut ann).await), ("PRO", "ACTIVE"));
    let usage = app.gql(Some(&ann.access), "{ usage { metric limit } }", json!({})).await;
    let scans = usage["data"]["usage"].as_array().unwrap().iter().find(|u| u["metric"] == "SCANS").unwrap().clone();
    assert_eq!(scans["limit"], 2500, "Pro's limits, not Free's");
    assert!(event_note(&app, "e1").await.unwrap_or_default().contains("price_addon_seats"));
    // Items with no catalog price at all: the known plan stays.
    sub["items"]["data"] = json!([item("sub_1", "price_mystery", 0)]);
    app.deliver_webhook(&event("e2", "customer.subscription.updated", t + 1, sub)).await;
    assert_eq!(plan_state(&billing_of(&app, &mut ann).await), ("PRO", "ACTIVE"));
    assert!(event_note(&app, "e2").await.unwrap_or_default().contains("price_mystery"));
}

/// Failure 4: an ended subscription is the Free plan with its allowance, never a
/// suspension; `cancel_at_period_end` keeps the plan until then and says when.
#[tokio::test]
async fn failure_4_cancellation_returns_to_free_and_keeps_the_plan_until_the_period_ends() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let mut ann = app.register("ann").await;
    let customer = start_checkout(&app, &ann, "PRO").await;
    let t = now() - 100;
    let mut sub = subscription("sub_1", &customer, "active", "price_pro_monthly", t);
    app.deliver_webhook(&event("e1", "customer.subscription.created", t, sub.clone())).await;
    assert_eq!(billing_of(&app, &mut ann).await["cancelsAt"], Value::Null);
    sub["cancel_at_period_end"] = json!(true);
    sub["cancel_at"] = sub["current_period_end"].clone();
    app.deliver_webhook(&event("e2", "customer.subscription.updated", t + 1, sub.clone())).await;
    let b = billing_of(&app, &mut ann).await;
    assert_eq!(plan_state(&b), ("PRO", "ACTIVE"));
    assert_eq!(instant(&b["cancelsAt"]), Some(at(t + 30 * 86_400)));
    sub["status"] = json!("canceled");
    app.deliver_webhook(&event("e3", "customer.subscription.deleted", t + 2, sub)).await;
    let b = billing_of(&app, &mut ann).await;
    assert_eq!((plan_state(&b), b["cancelsAt"].clone()), (("FREE", "FREE"), Value::Null));
    let me = app.gql(Some(&ann.access), "{ me { plan } }", json!({})).await;
    assert_eq!(me["data"]["me"]["plan"], "FREE");
    let job = app.gql(Some(&ann.access), "mutation { createJob(input: {kind: SCAN}) { id } }", json!({})).await;
    assert!(job["data"]["createJob"].is_object(), "the Free allowance works: {job}");

    // Ended by status alone (no deletion event), or never paid, or a cancellation date
    // that passed with its event lost: Free each time.
    for (name, status, cancel_at) in
        [("bob", "canceled", None), ("cat", "incomplete_expired", None), ("dan", "active", Some(now() - 10))]
    {
        let mut user = app.register(name).await;
        let customer = start_checkout(&app, &user, "PRO").await;
        app.deliver_webhook(&event(
            &format!("{name}_1"),
            "customer.subscription.created",
            t,
            subscription("sub_1", &customer, "active", "price_pro_monthly", t),
        ))
        .await;
        let mut s = subscription("sub_1", &customer, status, "price_pro_monthly", t);
        s["cancel_at"] = json!(cancel_at);
        app.deliver_webhook(&event(&format!("{name}_2"), "customer.subscription.updated", t + 1, s)).await;
        let b = billing_of(&app, &mut user).await;
        assert_eq!(plan_state(&b), ("FREE", "FREE"), "{name}: {b}");
    }
}

/// Failure 5: after `customer.deleted`, or a customer Stripe no longer has, checkout and
/// portal work again: the customer is forgotten and a new one created, once.
#[tokio::test]
async fn failure_5_a_deleted_customer_is_forgotten_and_replaced_once() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let customer_of = |user: &TestUser| {
        let db = app.db.clone();
        let id = user.id;
        async move {
            sqlx::query_scalar::<_, Option<String>>(
                "SELECT stripe_customer_id FROM billing_accounts WHERE user_id = $1",
            )
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };

    // The event: the subscription ends with the customer, the next checkout starts anew.
    let mut ann = app.register("ann").await;
    let old = start_checkout(&app, &ann, "PRO").await;
    let t = now() - 100;
    app.deliver_webhook(&event(
        "e1",
        "customer.subscription.created",
        t,
        subscription("sub_1", &old, "active", "price_pro_monthly", t),
    ))
    .await;
    let deleted = json!({ "id": old, "object": "customer", "deleted": true });
    assert_eq!(app.deliver_webhook(&event("e2", "customer.deleted", t + 1, deleted)).await.1, "applied");
    assert_eq!(plan_state(&billing_of(&app, &mut ann).await), ("FREE", "FREE"));
    assert_eq!(customer_of(&ann).await, None);
    stripe.delete_customer(&old);
    let r = checkout(&app, &ann.access, "PRO", "MONTH").await;
    assert!(r["data"]["startCheckout"]["url"].is_string(), "{r}");
    let fresh = customer_of(&ann).await.unwrap();
    assert_ne!(fresh, old);
    let last = stripe.requests_to("POST /v1/customers").pop().unwrap();
    assert_eq!(last.idempotency_key, Some(format!("customer-{}-after-{old}", ann.id)));

    // Deleted at Stripe, nobody told: the checkout finds out, forgets it, starts anew.
    let bob = app.register("bob").await;
    let old = start_checkout(&app, &bob, "PRO").await;
    stripe.delete_customer(&old);
    let r = checkout(&app, &bob.access, "SCALE", "MONTH").await;
    assert!(r["data"]["startCheckout"]["url"].is_string(), "{r}");
    let fresh = customer_of(&bob).await.unwrap();
    assert_ne!(fresh, old);
    assert_eq!(stripe.requests_to("POST /v1/checkout/sessions").last().unwrap().get("customer"), Some(fresh.as_str()));

    // The portal too.
    let cat = app.register("cat").await;
    let old = start_checkout(&app, &cat, "PRO").await;
    stripe.delete_customer(&old);
    let r = app.gql(Some(&cat.access), "mutation { openBillingPortal { url } }", json!({})).await;
    assert!(r["data"]["openBillingPortal"]["url"].is_string(), "{r}");
    let fresh = customer_of(&cat).await.unwrap();
    assert_ne!(fresh, old);
    let portals = stripe.requests_to("POST /v1/billing_portal/sessions");
    assert_eq!(portals.last().unwrap().get("customer"), Some(fresh.as_str()));
    // And again, without a new customer this time.
    let again = app.gql(Some(&cat.access), "mutation { openBillingPortal { url } }", json!({})).await;
    assert!(again["data"]["openBillingPortal"]["url"].is_string(), "{again}");
    assert_eq!(customer_of(&cat).await.unwrap(), fresh);
}

/// Failure 6: a paid period turns at the billing anchor's instant whether or not the
/// renewal webhook came; the late webhook changes nothing; Free counts calendar months.
#[tokio::test]
async fn failure_6_quota_periods_follow_the_billing_anchor_not_the_webhook() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let usage = |token: String| {
        let app = &app;
        async move {
            let r = app.gql(Some(&token), "{ usage { metric used resetsAt } }", json!({})).await;
            r["data"]["usage"].as_array().unwrap().iter().find(|u| u["metric"] == "SCANS").unwrap().clone()
        }
    };
    let mut ann = app.register("ann").await;
    let customer = start_checkout(&app, &ann, "PRO").await;
    // Subscribed 31 days and an hour ago, monthly: the first period ended, and Stripe's
    // renewal webhook has not arrived.
    let anchor = at(now() - 31 * 86_400 - 3600);
    let second = anchor.checked_add_months(Months::new(1)).unwrap();
    let third = anchor.checked_add_months(Months::new(2)).unwrap();
    let mut sub = subscription("sub_1", &customer, "active", "price_pro_monthly", anchor.timestamp());
    sub["current_period_end"] = json!(second.timestamp());
    app.deliver_webhook(&event("e1", "customer.subscription.created", anchor.timestamp(), sub.clone())).await;
    app.refresh_session(&mut ann).await;
    assert_eq!(instant(&usage(ann.access.clone()).await["resetsAt"]), Some(third), "the period after the anchor's");
    let job = app.gql(Some(&ann.access), "mutation { createJob(input: {kind: SCAN}) { id } }", json!({})).await;
    assert!(job["data"]["createJob"].is_object(), "{job}");
    let start: DateTime<Utc> = sqlx::query_scalar("SELECT period_start FROM quota_usage WHERE user_id = $1")
        .bind(ann.id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(start, second, "counted in Stripe's current period");
    // The renewal webhook arrives late: same period, same counter.
    sub["current_period_start"] = json!(second.timestamp());
    sub["current_period_end"] = json!(third.timestamp());
    app.deliver_webhook(&event("e2", "customer.subscription.updated", now(), sub)).await;
    app.refresh_session(&mut ann).await;
    let u = usage(ann.access.clone()).await;
    assert_eq!((u["used"].as_i64(), instant(&u["resetsAt"])), (Some(1), Some(third)));

    let bob = app.register("bob").await;
    let first = Utc::now().date_naive().with_day(1).unwrap();
    let next_month = first.checked_add_months(Months::new(1)).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc();
    assert_eq!(instant(&usage(bob.access.clone()).await["resetsAt"]), Some(next_month), "Free: calendar months");
}

/// Failure 7: every POST carries a key derived from the request; 429 and 5xx are
/// retried with the same key; every call carries the pinned API version (failure 10).
#[tokio::test]
async fn failure_7_calls_carry_idempotency_keys_and_are_retried() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let ann = app.register("ann").await;
    stripe.fail_next("POST /v1/customers", &[500]);
    stripe.fail_next("POST /v1/checkout/sessions", &[429, 503]);
    let r = checkout(&app, &ann.access, "PRO", "MONTH").await;
    assert!(r["data"]["startCheckout"]["url"].is_string(), "{r}");
    let customers = stripe.requests_to("POST /v1/customers");
    assert_eq!(customers.len(), 2);
    assert!(customers.iter().all(|c| c.idempotency_key == Some(format!("customer-{}", ann.id))));
    let sessions = stripe.requests_to("POST /v1/checkout/sessions");
    assert_eq!(sessions.len(), 3, "two failures, then success");
    let key = sessions[0].idempotency_key.clone().unwrap();
    assert!(key.starts_with(&format!("checkout-{}-pro-month-", ann.id)), "{key}");
    assert!(sessions.iter().all(|s| s.idempotency_key.as_deref() == Some(key.as_str())));
    assert_eq!(stripe.sessions().len(), 1);
    stripe.fail_next("POST /v1/billing_portal/sessions", &[502]);
    let p = app.gql(Some(&ann.access), "mutation { openBillingPortal { url } }", json!({})).await;
    assert!(p["data"]["openBillingPortal"]["url"].is_string(), "{p}");
    let portals = stripe.requests_to("POST /v1/billing_portal/sessions");
    assert_eq!(portals.len(), 2);
    assert!(portals[0].idempotency_key.as_deref().unwrap().starts_with(&format!("portal-{}-", ann.id)));
    assert_eq!(portals[0].idempotency_key, portals[1].idempotency_key);
    // Failure 10: the pinned version on every call.
    for r in stripe.requests() {
        assert_eq!(r.stripe_version.as_deref(), Some(API_VERSION), "{}", r.route);
        if r.route.starts_with("POST") {
            assert!(r.idempotency_key.is_some(), "{}", r.route);
        }
    }
}

/// Failure 7: while Stripe is slow no transaction, connection or advisory lock is held;
/// past the timeout the request is SERVICE_UNAVAILABLE, and the next one succeeds.
#[tokio::test]
async fn failure_7_a_slow_stripe_holds_no_transaction_and_times_out() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).with_env("PLINTH_STRIPE_TIMEOUT_MS", "1500").spawn().await;
    let ann = app.register("ann").await;
    let mut hold = stripe.hold("POST /v1/checkout/sessions");
    let pending = checkout(&app, &ann.access, "PRO", "MONTH");
    let watch = async {
        hold.arrived().await;
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let idle: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state LIKE 'idle in transaction%'
               AND now() - state_change > interval '300 milliseconds'",
        )
        .bind(&app.database)
        .fetch_one(&app.db)
        .await
        .unwrap();
        let locks: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
             WHERE l.locktype = 'advisory' AND d.datname = $1
               AND l.pid NOT IN (SELECT pid FROM pg_stat_activity WHERE application_name = $2)",
        )
        .bind(&app.database)
        // The scheduler's leader holds its lock for as long as it leads (api::tasks).
        .bind(api::tasks::LEADER_APPLICATION_NAME)
        .fetch_one(&app.db)
        .await
        .unwrap();
        (idle, locks)
    };
    let (r, (idle, locks)) = tokio::join!(pending, watch);
    assert_eq!((idle, locks), (0, 0), "nothing held while Stripe is called");
    assert_eq!(code(&r), "SERVICE_UNAVAILABLE", "{r}");
    hold.release();
    let again = checkout(&app, &ann.access, "PRO", "MONTH").await;
    assert!(again["data"]["startCheckout"]["url"].is_string(), "{again}");
    assert_eq!(stripe.sessions().len(), 1, "the retry joined the first attempt's session");
}

/// Failure 8: tax ids come from their own events (out of order too) and reconcile;
/// the billing country from the customer.
#[tokio::test]
async fn failure_8_tax_ids_and_the_billing_country_are_stored() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let mut ann = app.register("ann").await;
    let customer = start_checkout(&app, &ann, "PRO").await;
    let t = now() - 100;
    let created = tax_id("txi_1", &customer, "DE123456789", "pending");
    let verified = tax_id("txi_1", &customer, "DE123456789", "verified");
    app.deliver_webhook(&event("e1", "customer.tax_id.created", t, created)).await;
    app.deliver_webhook(&event("e2", "customer.tax_id.updated", t + 1, verified)).await;
    // Deleted (t+6) delivered before its creation (t+5): it stays deleted.
    let other = tax_id("txi_2", &customer, "FR40303265045", "pending");
    app.deliver_webhook(&event("e3", "customer.tax_id.deleted", t + 6, other.clone())).await;
    app.deliver_webhook(&event("e4", "customer.tax_id.created", t + 5, other)).await;
    let c = json!({ "id": customer, "object": "customer", "address": { "country": "DE", "city": "Berlin" } });
    app.deliver_webhook(&event("e5", "customer.updated", t + 7, c)).await;
    let b = billing_of(&app, &mut ann).await;
    assert_eq!(
        b["taxIds"],
        json!([{ "type": "eu_vat", "value": "DE123456789", "country": "DE", "verification": "VERIFIED" }])
    );
    assert_eq!(b["addressCountry"], "DE");

    // What Stripe has now (the events of a change were lost): reconcile reads it, expanded.
    stripe.set_customer_details(&customer, vec![tax_id("txi_3", &customer, "FR40303265045", "verified")], Some("FR"));
    let out = reconcile(&app, &stripe).await;
    assert!(out.contains("tax id change(s)"), "{out}");
    let read = stripe.requests_to(&format!("GET /v1/customers/{customer}"));
    assert!(read[0].form.iter().any(|(k, v)| k.starts_with("expand[") && v == "tax_ids"), "{:?}", read[0].form);
    let b = billing_of(&app, &mut ann).await;
    assert_eq!(b["taxIds"].as_array().unwrap().len(), 1, "{b}");
    assert_eq!((b["taxIds"][0]["value"].as_str(), b["addressCountry"].as_str()), (Some("FR40303265045"), Some("FR")));
}

/// Failure 9: SCA, voided and uncollectible invoices, a stale `invoice.updated`, a
/// dispute (admins told, account flagged), an unknown event recorded and ignored.
#[tokio::test]
async fn failure_9_the_missing_events_are_handled() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let ann = app.register("ann").await;
    let admin = app.register("admin").await;
    sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1").bind(admin.id).execute(&app.db).await.unwrap();
    let customer = start_checkout(&app, &ann, "PRO").await;
    let t = now() - 100;
    let sca = invoice("in_sca", &customer, "open", 0, t);
    assert_eq!(app.deliver_webhook(&event("e1", "invoice.payment_action_required", t, sca)).await.1, "applied");
    assert!(notification_kinds(&app, &ann).await.contains(&"payment_action_required".to_owned()));
    let mail = app.last_mail(&ann.email, "payment_action_required").await.expect("an e-mail");
    assert_eq!(mail["link"], "https://invoice.stripe.test/in_sca");

    app.deliver_webhook(&event("e2", "invoice.voided", t + 1, invoice("in_sca", &customer, "void", 0, t))).await;
    assert_eq!(invoice_status(&app, &ann, "in_sca").await, "void");
    let bad = invoice("in_bad", &customer, "uncollectible", 0, t);
    app.deliver_webhook(&event("e3", "invoice.marked_uncollectible", t + 2, bad)).await;
    assert_eq!(invoice_status(&app, &ann, "in_bad").await, "uncollectible");
    // Paid, then an update of the same second that still says open: the mirror stays paid.
    app.deliver_webhook(&event("e4", "invoice.paid", t + 3, invoice("in_ok", &customer, "paid", 5880, t))).await;
    app.deliver_webhook(&event("e5", "invoice.updated", t + 3, invoice("in_ok", &customer, "open", 0, t))).await;
    assert_eq!(invoice_status(&app, &ann, "in_ok").await, "paid");
    let r =
        app.gql(Some(&ann.access), "{ invoices(first: 10) { edges { node { status taxCents } } } }", json!({})).await;
    assert!(r["data"]["invoices"]["edges"].as_array().unwrap().iter().all(|e| e["node"]["taxCents"] == 980), "{r}");

    // A dispute names its charge only: Plinth reads the charge for its customer.
    stripe.add_charge("ch_1", &customer);
    let dispute = json!({ "id": "dp_1", "object": "dispute", "charge": "ch_1", "amount": 5880, "currency": "eur",
                          "reason": "fraudulent", "status": "needs_response" });
    assert_eq!(app.deliver_webhook(&event("e6", "charge.dispute.created", t + 4, dispute)).await.1, "applied");
    let flagged: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT disputed_at FROM billing_accounts WHERE user_id = $1")
            .bind(ann.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(flagged, Some(at(t + 4)));
    assert_eq!(notification_kinds(&app, &admin).await, ["dispute_created"]);
    assert!(!notification_kinds(&app, &ann).await.contains(&"dispute_created".to_owned()));
    let told = app.last_mail(&admin.email, "dispute_created").await.unwrap();
    assert!(told["detail"].as_str().unwrap().contains(&ann.email), "{told}");

    let unknown = event("e7", "customer.discount.created", t + 5, json!({ "id": "di_1", "customer": customer }));
    assert_eq!(app.deliver_webhook(&unknown).await, (200, "ignored".into()));
    assert_eq!(app.count("stripe_events WHERE id = 'e7'").await, 1);
}

/// Failure 10: an event rendered in another API version (periods on the items, as since
/// 2025-03-31) is applied, and its version recorded and noted.
#[tokio::test]
async fn failure_10_events_of_another_api_version_are_noted_and_read() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let mut ann = app.register("ann").await;
    let customer = start_checkout(&app, &ann, "PRO").await;
    let t = now() - 100;
    let mut sub = subscription("sub_1", &customer, "active", "price_pro_monthly", t);
    let obj = sub.as_object_mut().unwrap();
    obj.remove("current_period_start");
    obj.remove("current_period_end");
    sub["items"]["data"][0]["current_period_start"] = json!(t);
    sub["items"]["data"][0]["current_period_end"] = json!(t + 30 * 86_400);
    let e = event_in_version("e1", "customer.subscription.created", t, sub, "2025-03-31.basil");
    assert_eq!(app.deliver_webhook(&e).await.1, "applied");
    let b = billing_of(&app, &mut ann).await;
    assert_eq!(plan_state(&b), ("PRO", "ACTIVE"));
    assert_eq!(instant(&b["currentPeriodEnd"]), Some(at(t + 30 * 86_400)));
    let (version, note): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT api_version, note FROM stripe_events WHERE id = 'e1'").fetch_one(&app.db).await.unwrap();
    assert_eq!(version.as_deref(), Some("2025-03-31.basil"));
    assert!(note.unwrap_or_default().contains(&format!("pinned {API_VERSION}")));
}

/// `plinth billing reconcile` repairs what each lost event would leave: a subscription
/// created, changed or ended without a word, a customer deleted, an invoice paid, a
/// subscription Stripe does not have; and reports nothing the second time.
#[tokio::test]
async fn reconcile_repairs_every_state_a_lost_event_leaves() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let t = now() - 100;
    let mut users = Vec::new();
    for name in ["created", "changed", "ended", "deleted", "paid", "phantom"] {
        let user = app.register(name).await;
        let customer = start_checkout(&app, &user, "PRO").await;
        users.push((name, user, customer));
    }
    let mut listed = Vec::new();
    for (name, _, customer) in &users {
        let sub = |status: &str, price: &str| subscription(&format!("sub_{name}"), customer, status, price, t);
        match *name {
            // Its `created` was lost: Stripe has it active.
            "created" => listed.push(sub("active", "price_starter_monthly")),
            // Stored Pro active; Stripe moved it to Scale.
            "changed" => {
                app.deliver_webhook(&event(
                    &format!("{name}_1"),
                    "customer.subscription.created",
                    t,
                    sub("active", "price_pro_monthly"),
                ))
                .await;
                listed.push(sub("active", "price_scale_monthly"));
            }
            // Stored active; Stripe canceled it.
            "ended" => {
                app.deliver_webhook(&event(
                    &format!("{name}_1"),
                    "customer.subscription.created",
                    t,
                    sub("active", "price_pro_monthly"),
                ))
                .await;
                listed.push(sub("canceled", "price_pro_monthly"));
            }
            // Stored active; the customer was deleted (and with it the subscription).
            "deleted" => {
                app.deliver_webhook(&event(
                    &format!("{name}_1"),
                    "customer.subscription.created",
                    t,
                    sub("active", "price_pro_monthly"),
                ))
                .await;
                stripe.delete_customer(customer);
            }
            // Stored open; Stripe has it paid.
            "paid" => {
                app.deliver_webhook(&event(
                    &format!("{name}_1"),
                    "invoice.finalized",
                    t,
                    invoice("in_paid", customer, "open", 0, t),
                ))
                .await;
                stripe.set_invoices(vec![invoice("in_paid", customer, "paid", 5880, t)]);
            }
            // Stored active; Stripe has no such subscription.
            "phantom" => {
                app.deliver_webhook(&event(
                    &format!("{name}_1"),
                    "customer.subscription.created",
                    t,
                    sub("active", "price_pro_monthly"),
                ))
                .await;
            }
            _ => unreachable!(),
        }
    }
    listed.push(subscription("sub_x", "cus_nobody", "active", "price_pro_monthly", t));
    stripe.set_subscriptions(listed);
    let out = reconcile(&app, &stripe).await;
    let expect = |name: &str| users.iter().find(|(n, _, _)| *n == name).unwrap().1.clone();
    for (name, plan, state) in [
        ("created", "STARTER", "ACTIVE"),
        ("changed", "SCALE", "ACTIVE"),
        ("ended", "FREE", "FREE"),
        ("deleted", "FREE", "FREE"),
        ("paid", "FREE", "FREE"),
        ("phantom", "FREE", "FREE"),
    ] {
        let mut user = expect(name);
        let b = billing_of(&app, &mut user).await;
        assert_eq!(plan_state(&b), (plan, state), "{name}: {b}\n{out}");
    }
    assert_eq!(invoice_status(&app, &expect("paid"), "in_paid").await, "paid");
    assert!(out.contains("is gone at Stripe; forgotten"), "{out}");
    assert!(out.contains("sub_phantom is not at Stripe; ended"), "{out}");
    assert!(out.contains("cus_nobody"), "{out}");
    let again = reconcile(&app, &stripe).await;
    // A line per change on standard output (the count is on standard error).
    assert!(
        again.lines().count() == 1 && again.contains("cus_nobody"),
        "only the unknown customer is reported again: {again}"
    );
}

/// The property: whatever order Stripe delivers a realistic sequence in, and whatever
/// it delivers twice, the account ends as the last snapshot of each subscription says.
mod interleavings {
    use super::*;
    use proptest::{collection::vec, prelude::*, test_runner::TestCaseError};

    /// One event of the sequence, with what the model needs to know of it.
    #[derive(Clone, Debug)]
    struct Step {
        kind: &'static str,
        created: i64,
        /// (subscription, status, plan code, cancel at period end) for subscription events.
        sub: Option<(&'static str, &'static str, &'static str, bool)>,
        /// (invoice, status) for invoice events.
        invoice: Option<(&'static str, &'static str)>,
    }

    /// A customer's life, in Stripe's order: a checkout, its subscription created and
    /// paid within one second, a failed renewal and its recovery, a second subscription,
    /// a cancellation at the period's end, the end.
    fn life(t: i64, second_plan: &'static str) -> Vec<Step> {
        let s = |kind, created, id, status, plan, cancel| Step {
            kind,
            created,
            sub: Some((id, status, plan, cancel)),
            invoice: None,
        };
        let i = |kind, created, id, status| Step { kind, created, sub: None, invoice: Some((id, status)) };
        vec![
            Step { kind: "checkout.session.completed", created: t, sub: None, invoice: None },
            s("customer.subscription.created", t, "sub_1", "incomplete", "pro", false),
            s("customer.subscription.updated", t, "sub_1", "active", "pro", false),
            i("invoice.paid", t, "in_1", "paid"),
            i("invoice.payment_failed", t + 100, "in_2", "open"),
            s("customer.subscription.updated", t + 100, "sub_1", "past_due", "pro", false),
            i("invoice.paid", t + 200, "in_2", "paid"),
            s("customer.subscription.updated", t + 200, "sub_1", "active", "pro", false),
            s("customer.subscription.created", t + 300, "sub_2", "active", second_plan, false),
            s("customer.subscription.updated", t + 400, "sub_1", "active", "pro", true),
            s("customer.subscription.deleted", t + 500, "sub_1", "canceled", "pro", true),
        ]
    }

    fn price(plan: &str) -> String {
        format!("price_{plan}_monthly")
    }

    fn payload(step: &Step, n: usize, customer: &str) -> Value {
        let object = match (step.sub, step.invoice) {
            (Some((id, status, plan, cancel)), _) => {
                let mut s = subscription(id, customer, status, &price(plan), step.created);
                s["cancel_at_period_end"] = json!(cancel);
                s
            }
            (_, Some((id, status))) => {
                invoice(id, customer, status, if status == "paid" { 5880 } else { 0 }, step.created)
            }
            _ => json!({ "id": "cs_1", "object": "checkout.session", "customer": customer }),
        };
        event(&format!("evt_{n}"), step.kind, step.created, object)
    }

    /// The account the last snapshot of each subscription gives, by the rules:
    /// active/trialing > past_due (grace) > unpaid; the higher plan first; else Free.
    fn expected(steps: &[Step]) -> (String, String, Option<String>) {
        let mut last: std::collections::BTreeMap<&str, (i64, &str, &str, bool)> = Default::default();
        for step in steps {
            if let Some((id, status, plan, _)) = step.sub {
                let deleted = step.kind.ends_with("deleted");
                last.insert(id, (step.created, status, plan, deleted));
            }
        }
        let order = |p: &str| ["starter", "pro", "scale"].iter().position(|x| *x == p).unwrap();
        let standing = last.values().filter_map(|(_, status, plan, deleted)| match (*status, *deleted) {
            (_, true) => None,
            ("active" | "trialing", _) => Some((2, order(plan), "ACTIVE", *plan)),
            ("past_due", _) => Some((1, order(plan), "GRACE", *plan)),
            _ => None,
        });
        let newest = last.values().max_by_key(|(created, ..)| *created).map(|(_, status, ..)| status.to_string());
        match standing.max_by_key(|(usable, rank, ..)| (*usable > 0, *rank, *usable)) {
            Some((_, _, state, plan)) => {
                let status = last.values().find(|(_, _, p, d)| *p == plan && !d).map(|(_, s, ..)| s.to_string());
                (plan.to_uppercase(), state.to_owned(), status)
            }
            None => ("FREE".into(), "FREE".into(), newest),
        }
    }

    fn expected_invoices(steps: &[Step]) -> Vec<(String, String)> {
        let mut last: std::collections::BTreeMap<&str, &str> = Default::default();
        for step in steps {
            if let Some((id, status)) = step.invoice {
                last.insert(id, status);
            }
        }
        last.into_iter().map(|(i, s)| (i.to_owned(), s.to_owned())).collect()
    }

    async fn run(steps: Vec<Step>, order: Vec<usize>) -> Result<(), TestCaseError> {
        let stripe = FakeStripe::start().await;
        let app = TestApp::builder().with_stripe(&stripe).spawn().await;
        let mut ann = app.register("ann").await;
        let customer = start_checkout(&app, &ann, "PRO").await;
        for &n in &order {
            let (status, body) = app.deliver_webhook(&payload(&steps[n], n, &customer)).await;
            prop_assert_eq!(status, 200, "event {} answered {}", n, body);
        }
        let b = billing_of(&app, &mut ann).await;
        let got = (
            b["plan"].as_str().unwrap_or_default().to_owned(),
            b["state"].as_str().unwrap_or_default().to_owned(),
            b["subscriptionStatus"].as_str().map(str::to_owned),
        );
        prop_assert_eq!(got, expected(&steps), "delivered in the order {:?}", order);
        let plan: String =
            sqlx::query_scalar("SELECT plan FROM users WHERE id = $1").bind(ann.id).fetch_one(&app.db).await.unwrap();
        prop_assert_eq!(plan.to_uppercase(), expected(&steps).0);
        let invoices: Vec<(String, String)> = sqlx::query_as(
            "SELECT stripe_invoice_id, status FROM invoices WHERE user_id = $1 ORDER BY stripe_invoice_id",
        )
        .bind(ann.id)
        .fetch_all(&app.db)
        .await
        .unwrap();
        prop_assert_eq!(invoices, expected_invoices(&steps));
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_events").fetch_one(&app.db).await.unwrap();
        prop_assert_eq!(applied as usize, steps.len(), "each event recorded once");
        Ok(())
    }

    /// How far the customer's life got, the second subscription's plan, the order of
    /// delivery and the redeliveries (an index into the delivered list, repeated).
    fn case() -> impl Strategy<Value = (Vec<Step>, Vec<usize>)> {
        (2usize..=11, prop::sample::select(vec!["starter", "scale"]))
            .prop_flat_map(|(len, second)| {
                let steps: Vec<Step> = life(now() - 1000, second).into_iter().take(len).collect();
                let order = Just((0..len).collect::<Vec<_>>()).prop_shuffle();
                (Just(steps), order, vec(any::<prop::sample::Index>(), 0..4))
            })
            .prop_map(|(steps, mut order, again)| {
                for i in again {
                    let n = order[i.index(order.len())];
                    let at = i.index(order.len() + 1);
                    order.insert(at.min(order.len()), n);
                }
                (steps, order)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(16),
            // Each case starts a server: keep shrinking bounded and write no regression files.
            max_shrink_iters: 128,
            max_shrink_time: 120_000,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_interleaving_with_duplicates_ends_as_the_last_snapshots_say((steps, order) in case()) {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(run(steps, order))?;
        }
    }
}

/// Billing's new tenant tables show a user only its own rows (none of another's), and
/// the cross-tenant functions billing added answer exactly their question (admins' ids,
/// (user, customer) pairs, accounts due), only to the system role.
#[tokio::test]
async fn billing_tables_and_functions_leak_nothing_across_users() {
    use sqlx::{Connection, Row};
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let admin = app.register("admin").await;
    sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1").bind(admin.id).execute(&app.db).await.unwrap();
    let customer = start_checkout(&app, &ann, "PRO").await;
    let t = now() - 100;
    app.deliver_webhook(&event(
        "e1",
        "customer.subscription.created",
        t + 1,
        subscription("sub_1", &customer, "active", "price_pro_monthly", t),
    ))
    .await;
    app.deliver_webhook(&event("e2", "customer.tax_id.created", t, tax_id("txi_1", &customer, "DE1", "pending"))).await;
    // A second pending checkout row, for Bob.
    let bobs = start_checkout(&app, &bob, "STARTER").await;
    let url = crate::helpers::admin_url(&app.database).replace("postgres@", "plinth_app@");
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    for (table, ann_sees) in
        [("billing_subscriptions", Some(1)), ("billing_tax_ids", Some(1)), ("billing_checkouts", None)]
    {
        for (user, expected) in [(ann.id, ann_sees), (bob.id, ann_sees.map(|_| 0))] {
            let mut tx = conn.begin().await.unwrap();
            sqlx::query("SELECT set_config('role', 'plinth_user', true), set_config('plinth.user_id', $1, true)")
                .bind(user.to_string())
                .execute(&mut *tx)
                .await
                .unwrap();
            let seen = sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut *tx).await;
            match expected {
                Some(n) => assert_eq!(seen.unwrap(), n, "{table} as {user}"),
                None => assert!(seen.is_err(), "{table} is not readable by users"),
            }
            tx.rollback().await.unwrap();
        }
    }
    let url = crate::helpers::admin_url(&app.database).replace("postgres@", "plinth_app@");
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('role', 'plinth_system', true)").execute(&mut *tx).await.unwrap();
    let admins: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT user_id FROM priv.billing_admins()").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(admins, [admin.id]);
    let rows = sqlx::query("SELECT * FROM priv.billing_customers()").fetch_all(&mut *tx).await.unwrap();
    let pairs: Vec<(uuid::Uuid, String)> = rows.iter().map(|r| (r.get("user_id"), r.get("customer_id"))).collect();
    let mut expected = vec![(ann.id, customer), (bob.id, bobs)];
    expected.sort();
    assert_eq!(pairs, expected);
    assert_eq!(rows[0].columns().len(), 2, "two columns, nothing else");
    let due: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT user_id FROM priv.billing_due()").fetch_all(&mut *tx).await.unwrap();
    assert!(due.is_empty());
    tx.rollback().await.unwrap();
    for role in ["plinth_user", "plinth_billing", "plinth_anon"] {
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("SELECT set_config('role', $1, true), set_config('plinth.user_id', $2, true)")
            .bind(role)
            .bind(bob.id.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
        for f in ["billing_admins", "billing_customers", "billing_due"] {
            let refused = sqlx::query(&format!("SELECT * FROM priv.{f}()")).fetch_all(&mut *tx).await;
            assert!(refused.is_err(), "{role} may call priv.{f}");
            tx.rollback().await.unwrap();
            tx = conn.begin().await.unwrap();
            sqlx::query("SELECT set_config('role', $1, true)").bind(role).execute(&mut *tx).await.unwrap();
        }
        tx.rollback().await.unwrap();
    }
}

#[tokio::test]
async fn poison_events_are_recorded_once_and_never_fail_forever() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let mut ann = app.register("ann").await;
    let customer = start_checkout(&app, &ann, "PRO").await;
    let t = now();
    let before = billing_of(&app, &mut ann).await;
    // A subscription event whose object has no id, and one whose fields have the wrong
    // types: Stripe would redeliver a 500 for three days. Each is recorded with a note
    // and ignored; the account does not move.
    let poison =
        event("evt_poison", "customer.subscription.updated", t, json!({ "customer": customer, "status": "active" }));
    assert_eq!(app.deliver_webhook(&poison).await, (200, "ignored".into()));
    assert!(event_note(&app, "evt_poison").await.is_some_and(|n| n.starts_with("malformed data.object.id")));
    let typed = event(
        "evt_typed",
        "customer.subscription.updated",
        t,
        json!({ "id": "sub_t", "customer": customer, "items": 7 }),
    );
    assert_eq!(app.deliver_webhook(&typed).await, (200, "ignored".into()));
    assert!(event_note(&app, "evt_typed").await.is_some_and(|n| n.starts_with("malformed data.object")));
    assert_eq!(app.deliver_webhook(&poison).await, (200, "duplicate".into()));
    assert_eq!(plan_state(&billing_of(&app, &mut ann).await), plan_state(&before));
    // Texts PostgreSQL cannot store, and ids no Stripe event has: refused, nothing written.
    for id in ["evt_\u{0}nul", "", &"e".repeat(300)] {
        let bad = event(id, "invoice.paid", t, invoice("in_p", &customer, "paid", 100, t));
        assert_eq!(app.deliver_webhook(&bad).await.0, 400, "{id:?}");
    }
    let nul_inside = event("evt_nul_body", "invoice.paid", t, invoice("in_\u{0}", &customer, "paid", 100, t));
    assert_eq!(app.deliver_webhook(&nul_inside).await.0, 400);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_events").fetch_one(&app.db).await.unwrap();
    assert_eq!(events, 2, "only the two poison events are recorded");
    // The endpoint still applies good events.
    let paid = event("evt_ok", "invoice.paid", t + 1, invoice("in_ok", &customer, "paid", 5880, t + 1));
    assert_eq!(app.deliver_webhook(&paid).await, (200, "applied".into()));
}

#[tokio::test]
async fn the_trial_reminder_is_sent_once_per_trial_end_and_the_receipt_links_the_invoice_and_its_pdf() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let ann = app.register("ann").await;
    let customer = start_checkout(&app, &ann, "PRO").await;
    let t = now();
    let sub = subscription("sub_1", &customer, "trialing", "price_pro_monthly", t);
    assert_eq!(app.deliver_webhook(&event("evt_sub", "customer.subscription.created", t, sub.clone())).await.0, 200);
    // The scheduler finds the trial 3 days before its end (t + 14 days) ...
    let moment = (at(t) + chrono::Duration::days(11) + chrono::Duration::hours(1)).to_rfc3339();
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM priv.email_reminders_run($1::timestamptz)")
        .bind(&moment)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(recorded, 1);
    // ... then Stripe's trial_will_end arrives, twice under two ids: nothing more.
    for id in ["evt_twe_1", "evt_twe_2"] {
        let (status, _) =
            app.deliver_webhook(&event(id, "customer.subscription.trial_will_end", t + 1, sub.clone())).await;
        assert_eq!(status, 200);
    }
    assert_eq!(templates_sent(&app, &ann).await.iter().filter(|t| *t == "trial_ending").count(), 1);
    let data = app.last_mail(&ann.email, "trial_ending").await.unwrap();
    let ends = at(t + 14 * 86_400).format("%Y-%m-%d").to_string();
    assert_eq!(data["ends_on"], ends.as_str());
    // The receipt carries Stripe's page of the invoice and its PDF.
    let paid = event("evt_paid", "invoice.paid", t + 2, invoice("in_1", &customer, "paid", 5880, t + 2));
    assert_eq!(app.deliver_webhook(&paid).await, (200, "applied".into()));
    let receipt = app.last_mail(&ann.email, "receipt").await.unwrap();
    assert_eq!(receipt["invoice_url"], "https://invoice.stripe.test/in_1");
    assert_eq!(receipt["pdf_url"], "https://invoice.stripe.test/in_1/pdf");
}
