//! Billing over the wire, against a local server speaking Stripe's wire format and
//! webhooks signed with Stripe's real scheme: checkout to active, redeliveries and
//! concurrent deliveries applied once, events out of order, bad signatures, the
//! payment-failure path to suspension and back, trials granted once, reconciliation.

use crate::helpers::{
    code,
    stripe::{event, invoice, subscription, FakeStripe},
    TestApp, TestUser,
};
use api::billing::signature::sign;
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

    // Deleted (t+30) arrives before a late update (t+20): canceled wins.
    let deleted = subscription("sub_1", &customer, "canceled", "price_scale_monthly", t + 30);
    let late = subscription("sub_1", &customer, "active", "price_scale_monthly", t + 20);
    app.deliver_webhook(&event("evt_d", "customer.subscription.deleted", t + 30, deleted)).await;
    app.deliver_webhook(&event("evt_l", "customer.subscription.updated", t + 20, late)).await;
    app.refresh_session(&mut ann).await;
    let b = billing(&app, &ann.access).await;
    assert_eq!((b["state"].as_str(), b["subscriptionStatus"].as_str()), (Some("SUSPENDED"), Some("canceled")));
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
    app.deliver_webhook(&event(
        "e1",
        "customer.subscription.updated",
        now(),
        subscription("sub_1", &customer, "past_due", "price_pro_monthly", now()),
    ))
    .await;
    sqlx::query("UPDATE billing_accounts SET grace_until = now() - interval '1 minute'")
        .execute(&app.db)
        .await
        .unwrap();
    app.refresh_session(&mut ann).await;
    let refused = app.gql(Some(&ann.access), "mutation { createJob(input: {kind: SCAN}) { id } }", json!({})).await;
    assert_eq!(code(&refused), "SUBSCRIPTION_INACTIVE");
}

#[tokio::test]
async fn a_trial_is_never_granted_twice() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).spawn().await;
    let ann = app.register("ann").await;
    let customer = start_checkout(&app, &ann, "PRO").await;
    let t = now() - 50;
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
    let run = || {
        app.cli(&["billing", "reconcile"])
            .env("PLINTH_STRIPE_SECRET_KEY", FakeStripe::SECRET_KEY)
            .env("PLINTH_STRIPE_API_BASE", &stripe.url)
            .output()
    };
    let out = run().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("past_due pro -> active pro"), "{text}");
    assert!(text.contains("cus_nobody"), "{text}");
    let state: String =
        sqlx::query_scalar("SELECT account_state FROM billing_accounts").fetch_one(&app.db).await.unwrap();
    assert_eq!(state, "active");
    let again = String::from_utf8(run().await.unwrap().stdout).unwrap();
    assert!(again.contains("reconciled: 1 change(s)"), "only the unknown customer is reported again: {again}");
}
