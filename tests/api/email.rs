//! E-mail that leaves: the delivery worker against the SendGrid stand-in, a real SMTP
//! server and the file mailer; retries, failures, races and crashes; secrets that do not
//! rest in the outbox; locales; the pages the links open; the password-reset journey.
use crate::helpers::{decoded_mail, sendgrid::FakeSendGrid, smtp::SmtpServer, token_in, TestApp};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use uuid::Uuid;

const REGISTER: &str = "mutation($i: RegisterInput!) { register(input: $i) { accessToken user { id email locale } } }";

/// Every outbox column of every row, as text (what a database dump would show).
async fn outbox_dump(app: &TestApp) -> String {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT row_to_json(o)::text FROM email_outbox o").fetch_all(&app.db).await.unwrap();
    rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n")
}

/// Waits up to 15 s until the row `id` leaves `pending`; its status.
async fn settled(app: &TestApp, id: Uuid) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status,): (String,) =
            sqlx::query_as("SELECT status FROM email_outbox WHERE id = $1").bind(id).fetch_one(&app.db).await.unwrap();
        if status != "pending" {
            return status;
        }
        assert!(Instant::now() < deadline, "outbox row {id} is still pending");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn row_id(app: &TestApp, email: &str, template: &str) -> Uuid {
    let (id,): (Uuid,) = sqlx::query_as(
        "SELECT id FROM email_outbox WHERE to_email = $1 AND template = $2 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(email)
    .bind(template)
    .fetch_one(&app.db)
    .await
    .unwrap();
    id
}

/// Queues `n` test messages directly (as the superuser), as domains would.
async fn queue_test_mails(app: &TestApp, user_id: Uuid, n: i64) {
    sqlx::query(
        "INSERT INTO email_outbox (id, user_id, to_email, template, subject, body_text, data)
         SELECT gen_random_uuid(), $1, 'bulk' || g || '@example.com', 'test', 'test', 'test', '{}'
           FROM generate_series(1, $2) g",
    )
    .bind(user_id)
    .bind(n)
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query("NOTIFY plinth_email_outbox").execute(&app.db).await.unwrap();
}

#[tokio::test]
async fn with_nothing_configured_the_verification_mail_is_a_file_whose_link_works() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let token = app.mailed_token(&ann.email, "verify_email").await;
    let id = row_id(&app, &ann.email, "verify_email").await;
    let eml = std::fs::read_to_string(app.data_dir.join("mail").join(format!("{id}.eml"))).unwrap();
    assert!(eml.contains(&format!("X-Plinth-Outbox-Id: {id}")), "{eml}");
    assert!(eml.contains("multipart/alternative"));
    // The link is one line a person can copy from the file as it is (8bit text part,
    // not quoted-printable).
    assert!(
        eml.lines().any(|l| l.trim_end().ends_with(&format!("/verify-email?token={token}"))),
        "no line of the file is the link: {eml}"
    );
    // The link opens the web app's page, then the page sends its operation.
    crate::webapp::assert_serves_the_shell(&app, &format!("/verify-email?token={token}")).await;
    let r = app.gql_operation(None, crate::webapp::ACCOUNT_OPERATIONS, "VerifyEmail", json!({ "token": token })).await;
    assert_eq!(r["data"]["verifyEmail"], true, "{r}");
    let me = app.gql(Some(&ann.access), "{ me { emailVerified } }", json!({})).await;
    assert_eq!(me["data"]["me"]["emailVerified"], true);
    // The token rested sealed, and is gone once sent.
    assert!(!outbox_dump(&app).await.contains(&token));
    let (sealed,): (Option<Vec<u8>>,) = sqlx::query_as("SELECT sealed_secret FROM email_outbox WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(sealed.is_none());
}

#[tokio::test]
async fn the_token_is_sealed_until_sending() {
    // Delivery off: the row waits, and still holds no token in clear.
    let app = TestApp::builder().with_env("PLINTH_MAIL_WORKERS", "0").spawn().await;
    let ann = app.register("ann").await;
    let dump = outbox_dump(&app).await;
    assert!(dump.contains("sealed_secret"));
    let (sealed, data): (Option<Vec<u8>>, Value) =
        sqlx::query_as("SELECT sealed_secret, data FROM email_outbox WHERE to_email = $1")
            .bind(&ann.email)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(sealed.is_some_and(|s| s.len() > 28));
    assert!(data.get("token").is_none() && !data.to_string().contains("token="), "{data}");
}

#[tokio::test]
async fn sendgrid_receives_the_v3_payload_with_the_row_id() {
    let sendgrid = FakeSendGrid::start().await;
    let app = TestApp::builder().with_sendgrid(&sendgrid).spawn().await;
    let ann = app.register("ann").await;
    let mail = sendgrid.mail_of(&ann.email, "verify_email").await;
    let id = row_id(&app, &ann.email, "verify_email").await;
    assert_eq!(mail.authorization.as_deref(), Some("Bearer SG.test-key"));
    assert_eq!(mail.outbox_id(), id.to_string());
    assert_eq!(mail.body["from"]["email"], "no-reply@localhost");
    assert_eq!(mail.body["from"]["name"], "Plinth");
    assert_eq!(mail.body["categories"], json!(["verify_email"]));
    assert_eq!(mail.body["subject"], "Confirmez votre adresse e-mail");
    let text = mail.content("text/plain");
    let html = mail.content("text/html");
    let token = token_in(&text).expect("a link in the text part");
    assert!(html.contains(&format!("/verify-email?token={token}")));
    assert_eq!(settled(&app, id).await, "sent");
    let (provider_id, attempts): (Option<String>, i32) =
        sqlx::query_as("SELECT provider_message_id, attempts FROM email_outbox WHERE id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(provider_id.is_some_and(|p| p.starts_with("sg-")));
    assert_eq!(attempts, 1);
    assert!(!outbox_dump(&app).await.contains(&token));
}

#[tokio::test]
async fn a_429_and_a_500_are_retried_with_backoff_honouring_retry_after() {
    let sendgrid = FakeSendGrid::start().await;
    sendgrid.fail_next(429, Some(1));
    sendgrid.fail_next(500, None);
    let app = TestApp::builder().with_sendgrid(&sendgrid).spawn().await;
    // The scripted answers go to the first requests: none to the onboarding welcome.
    after_the_first_scheduled_run(&app).await;
    let ann = app.register("ann").await;
    sendgrid.mail_of(&ann.email, "verify_email").await;
    let id = row_id(&app, &ann.email, "verify_email").await;
    assert_eq!(settled(&app, id).await, "sent");
    // This row's attempts only: the onboarding sequence may also welcome ann meanwhile
    // (its leader runs it at once when it wins the lock, at any moment of the test).
    let tries: Vec<_> = sendgrid.received().into_iter().filter(|r| r.outbox_id() == id.to_string()).collect();
    assert_eq!(tries.iter().map(|r| r.status).collect::<Vec<_>>(), vec![429, 500, 202]);
    assert!(tries.iter().all(|r| r.to() == ann.email));
    // Retry-After: 1 s, honoured; then the backoff (50-100 ms for the second attempt).
    assert!(tries[1].at - tries[0].at >= Duration::from_millis(950), "{:?}", tries[1].at - tries[0].at);
    assert!(tries[2].at - tries[1].at >= Duration::from_millis(90));
    let (attempts,): (i32,) =
        sqlx::query_as("SELECT attempts FROM email_outbox WHERE id = $1").bind(id).fetch_one(&app.db).await.unwrap();
    assert_eq!(attempts, 3);
    let metrics = app.http().get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"plinth_mail_deliveries_total{outcome="retried",template="verify_email"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"plinth_mail_deliveries_total{outcome="sent",template="verify_email"} 1"#));
}

#[tokio::test]
async fn a_400_marks_the_row_failed_with_the_reason_and_erases_the_token() {
    let sendgrid = FakeSendGrid::start().await;
    sendgrid.fail_next(400, None);
    let app = TestApp::builder().with_sendgrid(&sendgrid).spawn().await;
    after_the_first_scheduled_run(&app).await;
    let ann = app.register("ann").await;
    let id = row_id(&app, &ann.email, "verify_email").await;
    assert_eq!(settled(&app, id).await, "failed");
    let (reason, sealed, attempts): (String, Option<Vec<u8>>, i32) =
        sqlx::query_as("SELECT last_error, sealed_secret, attempts FROM email_outbox WHERE id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(reason.starts_with("sendgrid 400: The to array is required"), "{reason}");
    assert!(sealed.is_none());
    assert_eq!(attempts, 1);
    assert_eq!(sendgrid.received().len(), 1);
}

#[tokio::test]
async fn a_row_that_keeps_failing_stops_after_the_last_attempt() {
    let sendgrid = FakeSendGrid::start().await;
    for _ in 0..3 {
        sendgrid.fail_next(503, None);
    }
    let app = TestApp::builder().with_sendgrid(&sendgrid).with_env("PLINTH_MAIL_MAX_ATTEMPTS", "3").spawn().await;
    after_the_first_scheduled_run(&app).await;
    let ann = app.register("ann").await;
    let id = row_id(&app, &ann.email, "verify_email").await;
    assert_eq!(settled(&app, id).await, "failed");
    let (reason,): (String,) =
        sqlx::query_as("SELECT last_error FROM email_outbox WHERE id = $1").bind(id).fetch_one(&app.db).await.unwrap();
    assert_eq!(reason, "gave up after 3 attempts: sendgrid 503: Internal server error");
    assert_eq!(sendgrid.received().len(), 3);
    let metrics = app.http().get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"plinth_mail_deliveries_total{outcome="failed",template="verify_email"} 1"#));
}

#[tokio::test]
async fn two_instances_with_two_workers_each_send_every_row_once() {
    let sendgrid = FakeSendGrid::start().await;
    let app = TestApp::builder()
        .with_sendgrid(&sendgrid)
        .with_env("PLINTH_MAIL_WORKERS", "2")
        .with_env("PLINTH_MAIL_BATCH", "5")
        .spawn()
        .await;
    after_the_first_scheduled_run(&app).await;
    let other = app.another_instance().await;
    let ann = app.register("ann").await;
    sendgrid.wait_accepted(1).await;
    queue_test_mails(&app, ann.id, 300).await;
    let got = sendgrid.wait_accepted(301).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = sendgrid.accepted().len().max(got.len());
    assert_eq!(got, 301, "a row was sent twice");
    let ids: std::collections::HashSet<String> = sendgrid.accepted().iter().map(|r| r.outbox_id().to_owned()).collect();
    assert_eq!(ids.len(), 301);
    assert_eq!(app.count("email_outbox WHERE status = 'sent'").await, 301);
    drop(other);
}

#[tokio::test]
async fn a_crash_between_sending_and_marking_sends_one_duplicate_at_most() {
    let sendgrid = FakeSendGrid::start().await;
    let app = TestApp::builder().with_sendgrid(&sendgrid).with_env("PLINTH_MAIL_WORKERS", "0").spawn().await;
    after_the_first_scheduled_run(&app).await;
    let ann = app.register("ann").await;
    let id = row_id(&app, &ann.email, "verify_email").await;
    // A mailer whose provider answers slowly is killed once the mail reached it.
    sendgrid.set_delay(Duration::from_millis(1500));
    let env = [
        ("PLINTH_SENDGRID_API_KEY", FakeSendGrid::API_KEY),
        ("PLINTH_SENDGRID_API_BASE", sendgrid.url.as_str()),
        ("PLINTH_MAIL_TIMEOUT_MS", "3000"),
        ("PLINTH_MAIL_LEASE_MS", "6000"),
        ("PLINTH_MAIL_POLL_MS", "100"),
    ];
    let mut first = app.cli(&["mailer"]).envs(env).kill_on_drop(true).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sendgrid.received().is_empty() {
        assert!(Instant::now() < deadline, "the first mailer sent nothing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill().await.unwrap();
    sendgrid.set_delay(Duration::ZERO);
    assert_eq!(app.count(&format!("email_outbox WHERE id = '{id}' AND status = 'pending'")).await, 1);
    // Another mailer takes the row once its lease ran out, and sends it once more.
    let mut second = app.cli(&["mailer"]).envs(env).kill_on_drop(true).spawn().unwrap();
    assert_eq!(settled(&app, id).await, "sent");
    tokio::time::sleep(Duration::from_millis(300)).await;
    second.kill().await.unwrap();
    let copies: Vec<_> = sendgrid.received().into_iter().filter(|r| r.outbox_id() == id.to_string()).collect();
    assert_eq!(copies.len(), 2, "one duplicate, both carrying the row id");
}

#[tokio::test]
async fn smtp_delivers_to_a_real_server_with_the_row_id_header() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::builder().with_env("PLINTH_SMTP_URL", &smtp.url).spawn().await;
    let ann = app.register("ann").await;
    let id = row_id(&app, &ann.email, "verify_email").await;
    let messages = smtp.wait_messages(1).await;
    assert_eq!(settled(&app, id).await, "sent");
    let raw = &messages[0];
    assert!(raw.contains(&format!("X-Plinth-Outbox-Id: {id}")), "{raw}");
    assert!(raw.contains(&format!("To: {}", ann.email)));
    let token = token_in(&decoded_mail(raw)).expect("a link");
    let r = app.gql(None, "mutation($t: String!) { verifyEmail(token: $t) }", json!({ "t": token })).await;
    assert_eq!(r["data"]["verifyEmail"], true, "{r}");
}

#[tokio::test]
async fn an_unreachable_smtp_server_is_retried_then_delivered() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = TestApp::builder()
        .with_env("PLINTH_SMTP_URL", &format!("smtp://127.0.0.1:{port}"))
        .with_env("PLINTH_MAIL_MAX_ATTEMPTS", "50")
        .spawn()
        .await;
    let ann = app.register("ann").await;
    let id = row_id(&app, &ann.email, "verify_email").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (attempts, err): (i32, Option<String>) =
            sqlx::query_as("SELECT attempts, last_error FROM email_outbox WHERE id = $1")
                .bind(id)
                .fetch_one(&app.db)
                .await
                .unwrap();
        if attempts >= 2 {
            assert_eq!(err.as_deref(), Some("smtp: network error"));
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.count(&format!("email_outbox WHERE id = '{id}' AND status = 'pending'")).await, 1);
}

#[tokio::test]
async fn the_locale_comes_from_the_input_then_accept_language_then_french() {
    let sendgrid = FakeSendGrid::start().await;
    let app = TestApp::builder().with_sendgrid(&sendgrid).spawn().await;
    let register = |email: &'static str, locale: Option<&'static str>, accept: Option<&'static str>| {
        let app = &app;
        async move {
            let mut input = json!({ "email": email, "password": "long enough pw" });
            if let Some(l) = locale {
                input["locale"] = json!(l);
            }
            let mut req =
                app.http().post(app.url("/graphql")).json(&json!({ "query": REGISTER, "variables": { "i": input } }));
            if let Some(a) = accept {
                req = req.header("Accept-Language", a);
            }
            let r: Value = req.send().await.unwrap().json().await.unwrap();
            r["data"]["register"]["user"]["locale"].as_str().unwrap_or_default().to_owned()
        }
    };
    assert_eq!(register("a@example.com", None, None).await, "FR");
    assert_eq!(register("b@example.com", None, Some("en-GB,en;q=0.9,fr;q=0.8")).await, "EN");
    assert_eq!(register("c@example.com", None, Some("de-DE, fr;q=0.5, en;q=0.7")).await, "EN");
    assert_eq!(register("d@example.com", Some("FR"), Some("en-US")).await, "FR");
    assert_eq!(register("e@example.com", None, Some("de, es")).await, "FR");
    assert_eq!(
        sendgrid.mail_of("a@example.com", "verify_email").await.body["subject"],
        "Confirmez votre adresse e-mail"
    );
    assert_eq!(sendgrid.mail_of("b@example.com", "verify_email").await.body["subject"], "Confirm your e-mail address");
    let bad = app
        .gql(None, REGISTER, json!({ "i": { "email": "f@example.com", "password": "long enough pw", "locale": "DE" } }))
        .await;
    assert!(bad["errors"][0]["message"].as_str().unwrap().contains("DE"), "{bad}");
    assert_eq!(app.count("users WHERE email = 'f@example.com'").await, 0);
}

#[tokio::test]
async fn update_profile_changes_the_language_of_later_mail() {
    let sendgrid = FakeSendGrid::start().await;
    let app = TestApp::builder().with_sendgrid(&sendgrid).spawn().await;
    let ann = app.register("ann").await;
    let r =
        app.gql(Some(&ann.access), "mutation { updateProfile(input: { locale: EN }) { id locale } }", json!({})).await;
    assert_eq!(r["data"]["updateProfile"]["locale"], "EN", "{r}");
    let anon = app.gql(None, "mutation { updateProfile(input: { locale: EN }) { id } }", json!({})).await;
    assert_eq!(crate::helpers::code(&anon), "UNAUTHENTICATED");
    app.gql(None, "mutation($e: String!) { requestPasswordReset(email: $e) }", json!({ "e": ann.email })).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reset = sendgrid
            .accepted()
            .into_iter()
            .find(|m| m.to() == ann.email && m.body["categories"][0] == "reset_password");
        if let Some(m) = reset {
            assert_eq!(m.body["subject"], "Reset your Plinth password");
            break;
        }
        assert!(Instant::now() < deadline, "no reset mail");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_password_reset_journey_over_http() {
    let sendgrid = FakeSendGrid::start().await;
    let app = TestApp::builder().with_sendgrid(&sendgrid).spawn().await;
    let ann = app.register("ann").await;
    let asked =
        app.gql(None, "mutation($e: String!) { requestPasswordReset(email: $e) }", json!({ "e": ann.email })).await;
    assert_eq!(asked["data"]["requestPasswordReset"], true);
    // The mail, as the stand-in captured it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mail = loop {
        if let Some(m) =
            sendgrid.accepted().into_iter().find(|m| m.to() == ann.email && m.body["categories"][0] == "reset_password")
        {
            break m;
        }
        assert!(Instant::now() < deadline, "no reset mail");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let text = mail.content("text/plain");
    let link = text.lines().find(|l| l.contains("/reset-password?token=")).expect("a link").trim().to_owned();
    assert!(link.starts_with(&app.url("/reset-password?token=")), "{link}");
    // The link opens the web app's page, which posts its operation as JSON to /graphql.
    crate::webapp::assert_serves_the_shell(&app, link.strip_prefix(&app.url("")).unwrap()).await;
    let token = token_in(&link).unwrap();
    let reset = json!({ "token": token, "newPassword": "a brand new secret" });
    let r = app.gql_operation(None, crate::webapp::ACCOUNT_OPERATIONS, "ResetPassword", reset).await;
    assert_eq!(r["data"]["resetPassword"], true, "{r}");
    let login = "mutation($i: LoginInput!) { login(input: $i) { accessToken } }";
    let old = app.gql(None, login, json!({ "i": { "email": ann.email, "password": ann.password } })).await;
    assert_eq!(crate::helpers::code(&old), "UNAUTHENTICATED");
    let new = app.gql(None, login, json!({ "i": { "email": ann.email, "password": "a brand new secret" } })).await;
    assert!(new["data"]["login"]["accessToken"].is_string(), "{new}");
    // The token was never at rest in clear, and the link does not work twice.
    let id = row_id(&app, &ann.email, "reset_password").await;
    assert_eq!(settled(&app, id).await, "sent");
    assert!(!outbox_dump(&app).await.contains(&token));
    let again = app
        .gql(
            None,
            "mutation($token: String!, $newPassword: String!) { resetPassword(token: $token, newPassword: $newPassword) }",
            json!({ "token": token, "newPassword": "yet another secret" }),
        )
        .await;
    assert_eq!(crate::helpers::code(&again), "BAD_USER_INPUT");
    // And the password-changed notice follows.
    sendgrid.wait_accepted(3).await;
}

/// Waits for the leader's first run of the onboarding schedule, which a server makes at
/// once on a fresh database (then every `PLINTH_MAIL_SEQUENCES_SECS`): the test's own runs
/// (`run_sequences`) then find every user it registers, none taken by that first run.
async fn after_the_first_scheduled_run(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let metrics = app.http().get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        if metrics.lines().any(|l| l.starts_with(r#"plinth_task_runs_total{outcome="ok",task="email.sequences"}"#)) {
            return;
        }
        assert!(Instant::now() < deadline, "the onboarding schedule never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the onboarding scheduler as of `now() + offset` (the controllable clock).
async fn run_sequences(app: &TestApp, offset: &str) -> i32 {
    sqlx::query_scalar("SELECT priv.email_sequences_run(now() + $1::interval)")
        .bind(offset)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

async fn steps(app: &TestApp, user: Uuid) -> Vec<(String, String)> {
    sqlx::query_as("SELECT step, outcome FROM email_sequence_steps WHERE user_id = $1 ORDER BY created_at, step")
        .bind(user)
        .fetch_all(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn onboarding_follows_the_data_and_stops_on_unsubscribe_and_on_payment() {
    let sendgrid = FakeSendGrid::start().await;
    let app = TestApp::builder().with_sendgrid(&sendgrid).with_env("PLINTH_MAIL_SEQUENCES_SECS", "3600").spawn().await;
    after_the_first_scheduled_run(&app).await;
    let [ann, bob, carol, dave] =
        [app.register("ann").await, app.register("bob").await, app.register("carol").await, app.register("dave").await];
    // Day 0: a welcome each, once however often the scheduler runs.
    assert_eq!(run_sequences(&app, "1 minute").await, 4);
    assert_eq!(run_sequences(&app, "2 minutes").await, 0);
    let welcome = sendgrid.mail_of(&bob.email, "onboarding_welcome").await;
    assert_eq!(welcome.body["categories"], json!(["onboarding_welcome"]));
    assert_eq!(welcome.body["subject"], "Bienvenue sur Plinth");
    let header = welcome.body["headers"]["List-Unsubscribe"].as_str().expect("List-Unsubscribe").to_owned();
    assert_eq!(welcome.body["headers"]["List-Unsubscribe-Post"], "List-Unsubscribe=One-Click");
    let link = header.trim_start_matches('<').trim_end_matches('>').to_owned();
    assert!(welcome.content("text/plain").contains(&link));
    // Ann connects an account; Bob unsubscribes with the link, without a session; Carol pays.
    sqlx::query(
        "INSERT INTO marketplace_accounts (id, user_id, platform, display_name) VALUES ($1, $2, 'vinted', 'Ann')",
    )
    .bind(Uuid::now_v7())
    .bind(ann.id)
    .execute(&app.db)
    .await
    .unwrap();
    let page = app.http().get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let prefs = "{ emailPreferences { onboarding productNews } }";
    let before = app.gql(Some(&bob.access), prefs, json!({})).await;
    assert_eq!(before["data"]["emailPreferences"]["onboarding"], true, "a GET changes nothing");
    let forged = app.http().post(link.replace("c=onboarding", "c=product_news")).body("List-Unsubscribe=One-Click");
    assert_eq!(forged.send().await.unwrap().status(), 400);
    let one_click = app
        .http()
        .post(&link)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(one_click.status(), 200);
    let after = app.gql(Some(&bob.access), prefs, json!({})).await;
    assert_eq!(after["data"]["emailPreferences"], json!({ "onboarding": false, "productNews": true }));
    sqlx::query("UPDATE users SET plan = 'pro' WHERE id = $1").bind(carol.id).execute(&app.db).await.unwrap();
    // Day 1: only Dave is asked to connect an account (Ann did it: skipped).
    assert_eq!(run_sequences(&app, "1 day 1 hour").await, 1);
    // Day 3: Ann and Dave are asked for a first scan.
    assert_eq!(run_sequences(&app, "3 days 1 hour").await, 2);
    assert_eq!(run_sequences(&app, "3 days 2 hours").await, 0);
    let s = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    assert_eq!(
        steps(&app, ann.id).await,
        s(&[("onboarding_welcome", "queued"), ("onboarding_connect", "skipped"), ("onboarding_scan", "queued")])
    );
    assert_eq!(steps(&app, bob.id).await, s(&[("onboarding_welcome", "queued")]));
    assert_eq!(steps(&app, carol.id).await, s(&[("onboarding_welcome", "queued")]));
    assert_eq!(steps(&app, dave.id).await.len(), 3);
    // A moment long past a step's window sends no backlog.
    assert_eq!(run_sequences(&app, "30 days").await, 0);
    let sent = sendgrid.wait_accepted(4 + 4 + 1 + 2).await;
    assert!(sent.iter().all(|m| m.to() != bob.email || m.body["categories"][0] != "onboarding_scan"));
}

/// The page behind the unsubscribe link runs no script: its policy allows none (no
/// `'unsafe-inline'`, no `script-src` at all under `default-src 'none'`), and its button
/// is a plain form posting the one-click body to the link's own URL, which unsubscribes.
#[tokio::test]
async fn the_unsubscribe_page_is_a_plain_form_under_a_policy_without_scripts() {
    let sendgrid = FakeSendGrid::start().await;
    let app = TestApp::builder().with_sendgrid(&sendgrid).with_env("PLINTH_MAIL_SEQUENCES_SECS", "3600").spawn().await;
    after_the_first_scheduled_run(&app).await;
    let eve = app.register("eve").await;
    assert_eq!(run_sequences(&app, "1 minute").await, 1);
    let welcome = sendgrid.mail_of(&eve.email, "onboarding_welcome").await;
    let header = welcome.body["headers"]["List-Unsubscribe"].as_str().expect("List-Unsubscribe").to_owned();
    let link = header.trim_start_matches('<').trim_end_matches('>').to_owned();

    let page = app.http().get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    assert!(directives.contains(&"default-src 'none'"), "{csp}");
    assert!(directives.iter().all(|d| !d.starts_with("script-src")), "no script source at all: {csp}");
    assert!(directives.contains(&"form-action 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script"), "{html}");
    // The form: no action (it posts to the page's own URL, query string included), the
    // RFC 8058 body as its one field.
    assert!(html.contains(r#"<form method="post">"#), "{html}");
    assert!(html.contains(r#"<input type="hidden" name="List-Unsubscribe" value="One-Click">"#), "{html}");
    assert!(html.contains(r#"<button type="submit">"#), "{html}");

    // What the browser sends when the button is pressed.
    let prefs = "{ emailPreferences { onboarding productNews } }";
    let r = app.gql(Some(&eve.access), prefs, json!({})).await;
    assert_eq!(r["data"]["emailPreferences"]["onboarding"], true, "the GET changed nothing");
    let done = app
        .http()
        .post(&link)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Origin", app.url(""))
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    assert_eq!(done.headers()["content-security-policy"].to_str().unwrap(), csp);
    assert!(done.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let text = done.text().await.unwrap();
    assert!(text.contains("You are unsubscribed.") && !text.contains("<script"), "{text}");
    let r = app.gql(Some(&eve.access), prefs, json!({})).await;
    assert_eq!(r["data"]["emailPreferences"], json!({ "onboarding": false, "productNews": true }));

    let bad = app.http().post(app.url("/unsubscribe?u=nope&c=onboarding&s=00")).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("This unsubscribe link is not valid."));
}

#[tokio::test]
async fn email_preferences_are_read_and_changed_by_their_owner() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let r = app.gql(Some(&ann.access), "{ emailPreferences { onboarding productNews } }", json!({})).await;
    assert_eq!(r["data"]["emailPreferences"], json!({ "onboarding": true, "productNews": true }));
    let m =
        "mutation($i: UpdateEmailPreferencesInput!) { updateEmailPreferences(input: $i) { onboarding productNews } }";
    let r = app.gql(Some(&ann.access), m, json!({ "i": { "productNews": false } })).await;
    assert_eq!(r["data"]["updateEmailPreferences"], json!({ "onboarding": true, "productNews": false }));
    let anon = app.gql(None, m, json!({ "i": { "productNews": false } })).await;
    assert_eq!(crate::helpers::code(&anon), "UNAUTHENTICATED");
    let bad = app.http().post(app.url("/unsubscribe?u=nope&c=onboarding&s=00")).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let bad = app
        .http()
        .post(app.url(&format!("/unsubscribe?u={}&c=onboarding&s={}", ann.id, "0".repeat(32))))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let r = app.gql(Some(&ann.access), "{ emailPreferences { onboarding } }", json!({})).await;
    assert_eq!(r["data"]["emailPreferences"]["onboarding"], true);
}

/// A SendGrid-style signing key for the event webhook, and the public key to configure.
fn webhook_keys() -> (p256::ecdsa::SigningKey, String) {
    use base64::Engine;
    use p256::pkcs8::EncodePublicKey;
    let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
    let der = key.verifying_key().to_public_key_der().unwrap();
    (key, base64::engine::general_purpose::STANDARD.encode(der.as_bytes()))
}

/// POSTs `events` to the webhook signed with `key` at `timestamp`.
async fn post_events(app: &TestApp, key: &p256::ecdsa::SigningKey, timestamp: i64, events: &Value) -> (u16, String) {
    use base64::Engine;
    use p256::ecdsa::signature::Signer;
    let body = events.to_string();
    let sig: p256::ecdsa::Signature = key.sign(format!("{timestamp}{body}").as_bytes());
    let resp = app
        .http()
        .post(app.url("/webhooks/sendgrid"))
        .header(
            "X-Twilio-Email-Event-Webhook-Signature",
            base64::engine::general_purpose::STANDARD.encode(sig.to_der()),
        )
        .header("X-Twilio-Email-Event-Webhook-Timestamp", timestamp.to_string())
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn a_signed_bounce_marks_the_address_undeliverable_and_stops_onboarding() {
    let sendgrid = FakeSendGrid::start().await;
    let (key, public) = webhook_keys();
    let app = TestApp::builder()
        .with_sendgrid(&sendgrid)
        .with_env("PLINTH_SENDGRID_WEBHOOK_PUBLIC_KEY", &public)
        .with_env("PLINTH_MAIL_SEQUENCES_SECS", "3600")
        .spawn()
        .await;
    after_the_first_scheduled_run(&app).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let verify = sendgrid.mail_of(&ann.email, "verify_email").await;
    let now = chrono::Utc::now().timestamp();
    let events = json!([
        { "email": ann.email, "event": "delivered", "timestamp": now, "outbox_id": verify.outbox_id(), "sg_message_id": "x" },
        { "email": ann.email.to_uppercase(), "event": "bounce", "timestamp": now, "reason": "550 5.1.1 no such user", "type": "bounce" },
    ]);
    // Bad signatures: another key, a stale timestamp, a changed body; nothing written.
    let other = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap();
    assert_eq!(post_events(&app, &other, now, &events).await.0, 400);
    assert_eq!(post_events(&app, &key, now - 3600, &events).await.0, 400);
    let unsigned = app.http().post(app.url("/webhooks/sendgrid")).body(events.to_string()).send().await.unwrap();
    assert_eq!(unsigned.status(), 400);
    assert_eq!(app.count("users WHERE email_undeliverable_at IS NOT NULL").await, 0);
    // Signed: applied.
    let (status, text) = post_events(&app, &key, now, &events).await;
    assert_eq!((status, text.as_str()), (200, "applied 2"));
    let (status, _) = post_events(&app, &key, now, &events).await;
    assert_eq!(status, 200, "a redelivery is harmless");
    let (reason,): (Option<String>,) = sqlx::query_as("SELECT email_undeliverable_reason FROM users WHERE id = $1")
        .bind(ann.id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(reason.as_deref(), Some("bounce: 550 5.1.1 no such user"));
    let (tracked,): (Option<String>,) = sqlx::query_as("SELECT provider_status FROM email_outbox WHERE id = $1::uuid")
        .bind(verify.outbox_id())
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(tracked.as_deref(), Some("delivered"));
    // The user sees a notice in the app, once.
    let n = app.gql(Some(&ann.access), "{ notifications { kind title } }", json!({})).await;
    let kinds: Vec<&str> =
        n["data"]["notifications"].as_array().unwrap().iter().filter_map(|x| x["kind"].as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "address_undeliverable").count(), 1, "{n}");
    // Onboarding goes to Bob only.
    assert_eq!(run_sequences(&app, "1 minute").await, 1);
    assert_eq!(steps(&app, ann.id).await, Vec::<(String, String)>::new());
    assert_eq!(steps(&app, bob.id).await.len(), 1);
}

#[tokio::test]
async fn the_sendgrid_webhook_is_refused_when_not_configured() {
    let app = TestApp::spawn().await;
    let (key, _) = webhook_keys();
    let (status, text) = post_events(&app, &key, chrono::Utc::now().timestamp(), &json!([])).await;
    assert_eq!((status, text.as_str()), (400, "the SendGrid event webhook is not configured"));
}

/// Runs the reminders scheduler's SQL as of `now() + offset`; the reminders it recorded.
async fn run_reminders_sql(db: &sqlx::PgPool, at: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM priv.email_reminders_run($1::timestamptz)")
        .bind(at)
        .fetch_one(db)
        .await
        .unwrap()
}

/// Runs `plinth mail remind --at now + hours` (the whole scheduler, tokens included).
async fn remind(app: &TestApp, hours: i64) -> i64 {
    let at = (chrono::Utc::now() + chrono::Duration::hours(hours)).to_rfc3339();
    let out = app.cli(&["mail", "remind", "--at", &at]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    // The count alone on standard output.
    stdout.trim().parse().unwrap()
}

/// The accepted mails to `to` whose subject starts with `prefix`, waiting up to 15 s
/// for at least `n`.
async fn mails_starting(
    sendgrid: &FakeSendGrid,
    to: &str,
    prefix: &str,
    n: usize,
) -> Vec<crate::helpers::sendgrid::Received> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got: Vec<_> = sendgrid
            .accepted()
            .into_iter()
            .filter(|m| m.to() == to && m.body["subject"].as_str().unwrap_or_default().starts_with(prefix))
            .collect();
        if got.len() >= n {
            return got;
        }
        assert!(Instant::now() < deadline, "only {} mails {prefix:?} to {to}", got.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn verification_reminders_come_on_day_1_and_day_3_once_each_and_stop_once_verified() {
    let sendgrid = FakeSendGrid::start().await;
    let app = TestApp::builder().with_sendgrid(&sendgrid).with_env("PLINTH_MAIL_SEQUENCES_SECS", "3600").spawn().await;
    after_the_first_scheduled_run(&app).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    sendgrid.wait_accepted(2).await;
    assert_eq!(remind(&app, 12).await, 0, "nothing before day 1");
    // Day 1: one each, however often the scheduler runs.
    assert_eq!(remind(&app, 25).await, 2);
    assert_eq!(remind(&app, 26).await, 0);
    let reminder = &mails_starting(&sendgrid, &bob.email, "Rappel : Confirmez", 1).await[0];
    assert!(reminder.content("text/plain").contains("pas encore confirmée"));
    // The reminder carries a link of its own, sealed until sent, that works.
    let token = token_in(&reminder.content("text/plain")).expect("a link");
    assert!(!outbox_dump(&app).await.contains(&token));
    let r = app.gql(None, "mutation($t: String!) { verifyEmail(token: $t) }", json!({ "t": token })).await;
    assert_eq!(r["data"]["verifyEmail"], true, "{r}");
    // Day 3: Ann only (Bob verified).
    assert_eq!(remind(&app, 73).await, 1);
    assert_eq!(remind(&app, 74).await, 0);
    mails_starting(&sendgrid, &ann.email, "Rappel : Confirmez", 2).await;
    let recorded: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT user_id, occurrence FROM email_reminders WHERE kind = 'verify_email' ORDER BY 2, 1")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let mut expected = vec![(ann.id, "day1".to_owned()), (bob.id, "day1".to_owned())];
    expected.sort();
    expected.push((ann.id, "day3".to_owned()));
    assert_eq!(recorded, expected);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mails_starting(&sendgrid, &bob.email, "Rappel", 0).await.len(), 1, "Bob got one reminder");
}

/// Makes `user` a subscriber of `status` (as the billing webhook would have recorded).
async fn subscribe(
    app: &TestApp,
    user: Uuid,
    id: &str,
    status: &str,
    past_due_since: Option<&str>,
    trial_end: Option<&str>,
) {
    sqlx::query(
        "INSERT INTO billing_subscriptions (user_id, subscription_id, customer_id, status, plan, billing_interval,
                                            past_due_since, trial_end, version, status_rank)
         VALUES ($1, $2, 'cus_' || $2, $3, 'pro', 'month', $4::timestamptz, $5::timestamptz, 1, 1)",
    )
    .bind(user)
    .bind(id)
    .bind(status)
    .bind(past_due_since)
    .bind(trial_end)
    .execute(&app.db)
    .await
    .unwrap();
}

#[tokio::test]
async fn payment_reminders_come_on_day_3_and_day_7_once_each_even_with_racing_instances_and_stop_once_paid() {
    let sendgrid = FakeSendGrid::start().await;
    let app = TestApp::builder().with_sendgrid(&sendgrid).with_env("PLINTH_MAIL_SEQUENCES_SECS", "3600").spawn().await;
    after_the_first_scheduled_run(&app).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let since = "2030-03-01T10:00:00Z";
    subscribe(&app, ann.id, "sub_ann", "past_due", Some(since), None).await;
    subscribe(&app, bob.id, "sub_bob", "past_due", Some(since), None).await;
    sqlx::query(
        "INSERT INTO invoices (id, user_id, stripe_invoice_id, status, currency, hosted_invoice_url, stripe_created)
         VALUES (gen_random_uuid(), $1, 'in_open', 'open', 'eur', 'https://invoice.stripe.com/i/ann', now())",
    )
    .bind(ann.id)
    .execute(&app.db)
    .await
    .unwrap();
    assert_eq!(run_reminders_sql(&app.db, "2030-03-03T10:00:00Z").await, 0, "nothing before day 3");
    // Day 3, with two instances running the scheduler at the same moment: one each.
    let second = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&crate::helpers::admin_url(&app.database))
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        run_reminders_sql(&app.db, "2030-03-04T11:00:00Z"),
        run_reminders_sql(&second, "2030-03-04T11:00:00Z")
    );
    assert_eq!(a + b, 2);
    assert_eq!(run_reminders_sql(&app.db, "2030-03-05T11:00:00Z").await, 0);
    let day3 = &mails_starting(&sendgrid, &ann.email, "Rappel : votre paiement", 1).await[0];
    let text = day3.content("text/plain");
    assert!(text.contains("depuis le 1er mars 2030"), "{text}");
    assert!(text.contains("https://invoice.stripe.com/i/ann"), "{text}");
    // Bob pays; Ann does not.
    sqlx::query("UPDATE billing_subscriptions SET status = 'active', past_due_since = NULL WHERE user_id = $1")
        .bind(bob.id)
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(run_reminders_sql(&app.db, "2030-03-08T11:00:00Z").await, 1);
    assert_eq!(run_reminders_sql(&app.db, "2030-03-09T11:00:00Z").await, 0);
    mails_starting(&sendgrid, &ann.email, "Dernier rappel", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(mails_starting(&sendgrid, &bob.email, "Dernier rappel", 0).await.is_empty());
    // And the in-app notice came with each.
    assert_eq!(
        app.count(&format!("notifications WHERE user_id = '{}' AND kind = 'payment_reminder'", ann.id)).await,
        2
    );
    // A new past-due spell is another occurrence.
    sqlx::query("UPDATE billing_subscriptions SET status = 'past_due', past_due_since = '2030-06-01T10:00:00Z' WHERE user_id = $1")
        .bind(bob.id)
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(
        run_reminders_sql(&app.db, "2030-06-04T11:00:00Z").await,
        1,
        "Bob's day 3; Ann's spell is past its windows"
    );
}

#[tokio::test]
async fn the_trial_reminder_is_dated_in_each_language_and_sent_once() {
    let sendgrid = FakeSendGrid::start().await;
    let app = TestApp::builder().with_sendgrid(&sendgrid).with_env("PLINTH_MAIL_SEQUENCES_SECS", "3600").spawn().await;
    after_the_first_scheduled_run(&app).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let r = app.gql(Some(&bob.access), "mutation { updateProfile(input: { locale: EN }) { locale } }", json!({})).await;
    assert_eq!(r["data"]["updateProfile"]["locale"], "EN", "{r}");
    subscribe(&app, ann.id, "sub_ann", "trialing", None, Some("2030-12-03T12:00:00Z")).await;
    subscribe(&app, bob.id, "sub_bob", "trialing", None, Some("2030-12-03T12:00:00Z")).await;
    assert_eq!(run_reminders_sql(&app.db, "2030-11-30T11:00:00Z").await, 0, "more than 3 days before");
    assert_eq!(run_reminders_sql(&app.db, "2030-11-30T13:00:00Z").await, 2);
    assert_eq!(run_reminders_sql(&app.db, "2030-12-01T13:00:00Z").await, 0);
    let fr = sendgrid.mail_of(&ann.email, "trial_ending").await;
    let en = sendgrid.mail_of(&bob.email, "trial_ending").await;
    assert!(fr.content("text/plain").contains("se termine le 3 décembre 2030"), "{}", fr.content("text/plain"));
    assert!(fr.content("text/html").contains("le 3 décembre 2030"));
    assert!(en.content("text/plain").contains("ends on December 3, 2030"), "{}", en.content("text/plain"));
    // Stripe's trial_will_end for the same trial claims the same key: nothing more.
    let (key,): (String,) =
        sqlx::query_as("SELECT occurrence FROM email_reminders WHERE user_id = $1 AND kind = 'trial_ending'")
            .bind(ann.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(key, "sub_ann:2030-12-03");
}

#[tokio::test]
async fn mail_nobody_wants_any_more_is_skipped_when_it_would_leave_and_transactional_mail_still_goes() {
    let sendgrid = FakeSendGrid::start().await;
    let app = TestApp::builder().with_sendgrid(&sendgrid).with_env("PLINTH_MAIL_WORKERS", "0").spawn().await;
    after_the_first_scheduled_run(&app).await;
    let [ann, bob, carol] = [app.register("ann").await, app.register("bob").await, app.register("carol").await];
    // Queued while everyone still wanted it: the welcome, and a transactional notice to Bob.
    assert_eq!(run_sequences(&app, "1 minute").await, 3);
    sqlx::query(
        "INSERT INTO email_outbox (id, user_id, to_email, template, subject, body_text, data)
         VALUES (gen_random_uuid(), $1, $2, 'password_changed', 'x', 'x', '{}')",
    )
    .bind(bob.id)
    .bind(&bob.email)
    .execute(&app.db)
    .await
    .unwrap();
    // Then Ann unsubscribes and Bob's address bounces.
    let m = "mutation { updateEmailPreferences(input: { onboarding: false }) { onboarding } }";
    assert_eq!(app.gql(Some(&ann.access), m, json!({})).await["data"]["updateEmailPreferences"]["onboarding"], false);
    sqlx::query("UPDATE users SET email_undeliverable_at = now(), email_undeliverable_reason = 'bounce' WHERE id = $1")
        .bind(bob.id)
        .execute(&app.db)
        .await
        .unwrap();
    // A worker starts.
    let mailer = app.another_instance_with(&[("PLINTH_MAIL_WORKERS", "1")]).await;
    let status = |who: &crate::helpers::TestUser, template: &'static str| {
        let app = &app;
        let email = who.email.clone();
        async move {
            let id = row_id(app, &email, template).await;
            let status = settled(app, id).await;
            let (reason,): (Option<String>,) = sqlx::query_as("SELECT skipped_reason FROM email_outbox WHERE id = $1")
                .bind(id)
                .fetch_one(&app.db)
                .await
                .unwrap();
            (status, reason)
        }
    };
    assert_eq!(
        status(&ann, "onboarding_welcome").await,
        ("skipped".into(), Some("unsubscribed from onboarding".into()))
    );
    assert_eq!(status(&bob, "onboarding_welcome").await, ("skipped".into(), Some("address undeliverable".into())));
    assert_eq!(status(&bob, "password_changed").await, ("sent".into(), None));
    assert_eq!(status(&carol, "onboarding_welcome").await, ("sent".into(), None));
    assert_eq!(status(&ann, "verify_email").await, ("sent".into(), None));
    let onboarding_to: Vec<String> = sendgrid
        .accepted()
        .into_iter()
        .filter(|m| m.body["categories"][0] == "onboarding_welcome")
        .map(|m| m.to().to_owned())
        .collect();
    assert_eq!(onboarding_to, vec![carol.email.clone()]);
    let metrics = mailer.http().get(mailer.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"plinth_mail_deliveries_total{outcome="skipped",template="onboarding_welcome"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn metrics_show_queued_sent_and_the_oldest_waiting_mail_per_template() {
    let sendgrid = FakeSendGrid::start().await;
    let app = TestApp::builder().with_sendgrid(&sendgrid).spawn().await;
    let ann = app.register("ann").await;
    sendgrid.mail_of(&ann.email, "verify_email").await;
    // One mail waiting for a later attempt, queued ten minutes ago.
    sqlx::query(
        "INSERT INTO email_outbox (id, user_id, to_email, template, subject, body_text, data, created_at, next_attempt_at)
         VALUES (gen_random_uuid(), $1, $2, 'test', 'x', 'x', '{}', now() - interval '10 minutes', now() + interval '1 hour')",
    )
    .bind(ann.id)
    .bind(&ann.email)
    .execute(&app.db)
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let metrics = loop {
        let m = app.http().get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        if m.contains(r#"plinth_mail_queued{template="test"} 1"#) {
            break m;
        }
        assert!(Instant::now() < deadline, "{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(metrics.contains(r#"plinth_mail_deliveries_total{outcome="sent",template="verify_email"} 1"#), "{metrics}");
    let oldest: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"plinth_mail_oldest_queued_seconds{template="test"} "#))
        .expect("the oldest waiting mail's age")
        .parse()
        .unwrap();
    assert!((600..700).contains(&oldest), "{oldest}");
    assert!(metrics.contains(r#"plinth_mail_queued{template="verify_email"} 0"#), "nothing of it waits: {metrics}");
    assert!(metrics.contains("plinth_mail_pending 1"));
}

#[tokio::test]
async fn changing_the_address_takes_effect_from_the_link_sent_to_it() {
    let sendgrid = FakeSendGrid::start().await;
    let app = TestApp::builder().with_sendgrid(&sendgrid).spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let login = "mutation($i: LoginInput!) { login(input: $i) { accessToken refreshToken } }";
    let phone = app.gql(None, login, json!({ "i": { "email": ann.email, "password": ann.password } })).await;
    let phone_refresh = phone["data"]["login"]["refreshToken"].as_str().unwrap().to_owned();
    let update = "mutation($i: UpdateProfileInput!) { updateProfile(input: $i) { id email } }";
    // Re-authentication: missing or wrong password, the existing error.
    let r = app.gql(Some(&ann.access), update, json!({ "i": { "email": "new@example.org" } })).await;
    assert_eq!(crate::helpers::code(&r), "BAD_USER_INPUT", "{r}");
    let r = app
        .gql(
            Some(&ann.access),
            update,
            json!({ "i": { "email": "new@example.org", "currentPassword": "wrong password" } }),
        )
        .await;
    assert_eq!(crate::helpers::code(&r), "BAD_USER_INPUT");
    assert_eq!(r["errors"][0]["extensions"]["field"], "currentPassword", "{r}");
    // An address that has an account: the same answer, and no mail to it.
    let taken = app
        .gql(
            Some(&ann.access),
            update,
            json!({ "i": { "email": bob.email.to_uppercase(), "currentPassword": ann.password } }),
        )
        .await;
    // A free address, written another way: normalized, and nothing changes yet.
    let new_email = format!("ann.new-{}@example.org", &Uuid::new_v4().simple().to_string()[..8]);
    let free = app
        .gql(
            Some(&ann.access),
            update,
            json!({ "i": { "email": format!("  {}", new_email.to_uppercase()), "currentPassword": ann.password } }),
        )
        .await;
    assert_eq!(taken, free, "the answer does not tell which addresses have accounts");
    assert_eq!(free["data"]["updateProfile"]["email"], ann.email.as_str(), "{free}");
    let link_mail = sendgrid.mail_of(&new_email, "verify_email").await;
    let token = token_in(&link_mail.content("text/plain")).expect("a link");
    assert!(token.starts_with("plc_"), "{token}");
    assert!(link_mail.content("text/plain").contains("rien ne change"));
    assert!(!outbox_dump(&app).await.contains(&token));
    assert_eq!(app.count(&format!("email_outbox WHERE lower(to_email) = lower('{}')", bob.email)).await, 1);
    let me = app.gql(Some(&ann.access), "{ me { email } }", json!({})).await;
    assert_eq!(me["data"]["me"]["email"], ann.email.as_str());
    // The link, opened without a session.
    let r = app.gql(None, "mutation($t: String!) { verifyEmail(token: $t) }", json!({ "t": token })).await;
    assert_eq!(r["data"]["verifyEmail"], true, "{r}");
    let again = app.gql(None, "mutation($t: String!) { verifyEmail(token: $t) }", json!({ "t": token })).await;
    assert_eq!(crate::helpers::code(&again), "BAD_USER_INPUT");
    // The session that asked stays; the other is signed out.
    let me = app.gql(Some(&ann.access), "{ me { email emailVerified } }", json!({})).await;
    assert_eq!(me["data"]["me"], json!({ "email": new_email, "emailVerified": true }), "{me}");
    let refresh = "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }";
    let r = app.gql(None, refresh, json!({ "t": phone_refresh })).await;
    assert_eq!(crate::helpers::code(&r), "UNAUTHENTICATED", "{r}");
    let r = app.gql(None, refresh, json!({ "t": ann.refresh })).await;
    assert!(r["data"]["refreshSession"]["accessToken"].is_string(), "{r}");
    // Sign-in follows the address.
    let old = app.gql(None, login, json!({ "i": { "email": ann.email, "password": ann.password } })).await;
    assert_eq!(crate::helpers::code(&old), "UNAUTHENTICATED");
    let new = app.gql(None, login, json!({ "i": { "email": new_email, "password": ann.password } })).await;
    assert!(new["data"]["login"]["accessToken"].is_string(), "{new}");
    // The old address is told, with the way to reach support.
    let notice = sendgrid.mail_of(&ann.email, "email_changed").await;
    let text = notice.content("text/plain");
    assert!(text.contains(&new_email) && text.contains("/support"), "{text}");
    assert_eq!(notice.body["subject"], "L'adresse e-mail de votre compte Plinth a changé");
}

const UPDATE_EMAIL: &str = "mutation($i: UpdateProfileInput!) { updateProfile(input: $i) { email } }";
const VERIFY: &str = "mutation($t: String!) { verifyEmail(token: $t) }";
const RESET: &str = "mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) }";

fn fresh_address(name: &str) -> String {
    format!("{name}-{}@example.org", &Uuid::new_v4().simple().to_string()[..8])
}

#[tokio::test]
async fn a_reset_link_mailed_to_the_old_address_dies_when_the_address_changes() {
    // Whoever reads the old mailbox (the reason one moves away from it) must not be
    // able to reset the password of the account that left it.
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let asked =
        app.gql(None, "mutation($e: String!) { requestPasswordReset(email: $e) }", json!({ "e": ann.email })).await;
    assert_eq!(asked["data"]["requestPasswordReset"], true, "{asked}");
    let reset = app.mailed_token(&ann.email, "reset_password").await;
    let new_email = fresh_address("ann.new");
    let r = app
        .gql(Some(&ann.access), UPDATE_EMAIL, json!({ "i": { "email": new_email, "currentPassword": ann.password } }))
        .await;
    assert!(r["data"]["updateProfile"].is_object(), "{r}");
    let change = app.mailed_token(&new_email, "verify_email").await;
    let r = app.gql(None, VERIFY, json!({ "t": change })).await;
    assert_eq!(r["data"]["verifyEmail"], true, "{r}");
    let r = app.gql(None, RESET, json!({ "t": reset, "p": "taken over by the old mailbox" })).await;
    assert_eq!(crate::helpers::code(&r), "BAD_USER_INPUT", "the old address's reset link still works: {r}");
    let login = "mutation($i: LoginInput!) { login(input: $i) { accessToken } }";
    let r = app.gql(None, login, json!({ "i": { "email": new_email, "password": ann.password } })).await;
    assert!(r["data"]["login"]["accessToken"].is_string(), "{r}");
}

#[tokio::test]
async fn a_new_password_kills_a_change_of_address_asked_before_it() {
    // Someone with the session and the password asks to move the account to their
    // address; the owner takes it back with a reset (or changes the password): the
    // link already mailed to the intruder's address must not move the account after.
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let intruder = fresh_address("intruder");
    let r = app
        .gql(Some(&ann.access), UPDATE_EMAIL, json!({ "i": { "email": intruder, "currentPassword": ann.password } }))
        .await;
    assert!(r["data"]["updateProfile"].is_object(), "{r}");
    let change = app.mailed_token(&intruder, "verify_email").await;
    let asked =
        app.gql(None, "mutation($e: String!) { requestPasswordReset(email: $e) }", json!({ "e": ann.email })).await;
    assert_eq!(asked["data"]["requestPasswordReset"], true, "{asked}");
    let reset = app.mailed_token(&ann.email, "reset_password").await;
    let r = app.gql(None, RESET, json!({ "t": reset, "p": "the owner's new secret" })).await;
    assert_eq!(r["data"]["resetPassword"], true, "{r}");
    let r = app.gql(None, VERIFY, json!({ "t": change })).await;
    assert_eq!(crate::helpers::code(&r), "BAD_USER_INPUT", "the change survived the reset: {r}");
    let (email,): (String,) =
        sqlx::query_as("SELECT email::text FROM users WHERE id = $1").bind(ann.id).fetch_one(&app.db).await.unwrap();
    assert_eq!(email, ann.email);

    // The same with changePassword from a session of the owner.
    let login = "mutation($i: LoginInput!) { login(input: $i) { accessToken } }";
    let r = app.gql(None, login, json!({ "i": { "email": ann.email, "password": "the owner's new secret" } })).await;
    let access = r["data"]["login"]["accessToken"].as_str().unwrap_or_else(|| panic!("{r}")).to_owned();
    let intruder2 = fresh_address("intruder2");
    let r = app
        .gql(
            Some(&access),
            UPDATE_EMAIL,
            json!({ "i": { "email": intruder2, "currentPassword": "the owner's new secret" } }),
        )
        .await;
    assert!(r["data"]["updateProfile"].is_object(), "{r}");
    let change = app.mailed_token(&intruder2, "verify_email").await;
    let r = app
        .gql(
            Some(&access),
            "mutation { changePassword(currentPassword: \"the owner's new secret\", newPassword: \"and another one\") }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["changePassword"], true, "{r}");
    let r = app.gql(None, VERIFY, json!({ "t": change })).await;
    assert_eq!(crate::helpers::code(&r), "BAD_USER_INPUT", "the change survived changePassword: {r}");
}

/// The bounce lookup's comparison (citext's equality named with its schema, as
/// `priv.email_provider_events` writes it) can use `users_email_key`; `lower(email)`,
/// which it replaced, could not and scanned every user for each batch.
#[tokio::test]
async fn the_bounce_lookup_can_use_the_address_index() {
    let app = TestApp::spawn().await;
    let mut tx = app.db.begin().await.unwrap();
    sqlx::query("SET LOCAL enable_seqscan = off").execute(&mut *tx).await.unwrap();
    let plan = |sql: &'static str| sqlx::query_scalar::<_, String>(sql);
    let now: Vec<String> = plan(
        "EXPLAIN SELECT id FROM public.users u WHERE u.email OPERATOR(public.=) 'ANN@example.com'::text::public.citext",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    assert!(now.iter().any(|l| l.contains("users_email_key")), "{now:#?}");
    let before: Vec<String> =
        plan("EXPLAIN SELECT id FROM public.users u WHERE lower(u.email::text) = lower('ANN@example.com')")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert!(!before.iter().any(|l| l.contains("users_email_key")), "{before:#?}");
    let source: String = sqlx::query_scalar("SELECT prosrc FROM pg_proc WHERE proname = 'email_provider_events'")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert!(source.contains("u.email OPERATOR(public.=) b.email::public.citext"), "{source}");
}
