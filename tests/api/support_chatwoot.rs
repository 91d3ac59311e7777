//! The Chatwoot bridge (issue 14, item 6) against a local server speaking Chatwoot's
//! Application API and webhooks: tickets mirrored as conversations in order, agents'
//! replies and private notes taken back once each (and their echoes ignored), signatures
//! refused before anything is written, and a Chatwoot that is a black hole slowing no
//! request while the outbox waits and delivers once it is back.

use crate::{
    helpers::{
        chatwoot::FakeChatwoot,
        proxy::{Mode, Proxy},
        TestApp, TestUser, WsClient,
    },
    support::{access_actions, make_staff, next_update, open_ticket, reply, FOLLOW, NOTE, TICKET, WAIT},
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Waits until `check` holds (each delivery is asynchronous), up to 20 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "{what} did not happen within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The outbox rows' (state, attempts), oldest first.
async fn outbox(app: &TestApp) -> Vec<(String, i32)> {
    sqlx::query_as("SELECT state, attempts FROM chatwoot_outbox ORDER BY created_at, id")
        .fetch_all(&app.db)
        .await
        .unwrap()
}

async fn all_sent(app: &TestApp, n: usize) -> bool {
    let rows = outbox(app).await;
    rows.len() == n && rows.iter().all(|(state, _)| state == "sent")
}

/// The messages of `ticket` as `token` reads them: (author kind, author name, body, internal).
async fn messages(app: &TestApp, token: &str, ticket: &str) -> Vec<(String, Option<String>, String, bool)> {
    let r = app.gql(Some(token), TICKET, json!({ "id": ticket })).await;
    r["data"]["ticket"]["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .map(|m| {
            (
                m["author"]["kind"].as_str().unwrap().to_owned(),
                m["author"]["name"].as_str().map(str::to_owned),
                m["body"].as_str().unwrap().to_owned(),
                m["internal"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn conversation_of(chatwoot: &FakeChatwoot, ticket: &str) -> i64 {
    chatwoot
        .conversations()
        .iter()
        .find(|c| c["custom_attributes"]["plinth_ticket_id"] == ticket)
        .and_then(|c| c["id"].as_i64())
        .unwrap_or_else(|| panic!("no conversation for {ticket}: {:?}", chatwoot.conversations()))
}

#[tokio::test]
async fn tickets_are_mirrored_in_order_and_agents_replies_and_notes_come_back_once() {
    let chatwoot = FakeChatwoot::start().await;
    let app = TestApp::builder().with_chatwoot(&chatwoot).spawn().await;
    chatwoot.send_webhooks_to(&app);
    let ann = app.register("ann").await;
    let mut sam = app.register("sam").await;
    make_staff(&app, &mut sam, "support", "Sam").await;

    // Opening a ticket: the contact, the conversation, then the first message (incoming).
    let ticket = open_ticket(&app, &ann, "Scan stuck").await;
    eventually("the first copy", || all_sent(&app, 1)).await;
    assert_eq!(
        chatwoot.routes(),
        [
            "POST contacts",
            "POST conversations",
            format!("POST conversations/{}/messages", conversation_of(&chatwoot, &ticket)).as_str()
        ]
    );
    let requests = chatwoot.requests();
    assert!(requests.iter().all(|r| r.token.as_deref() == Some(FakeChatwoot::TOKEN)), "api_access_token on every call");
    let contact = &requests[0].body;
    assert_eq!(
        (contact["inbox_id"].as_i64(), contact["identifier"].as_str(), contact["email"].as_str()),
        (Some(FakeChatwoot::INBOX_ID), Some(ann.id.to_string().as_str()), Some(ann.email.as_str()))
    );
    let source = format!("plinth-{}", ann.id);
    assert_eq!(contact["source_id"], source.as_str());
    let conversation = &requests[1].body;
    assert_eq!(
        (conversation["source_id"].as_str(), conversation["status"].as_str()),
        (Some(source.as_str()), Some("open"))
    );
    assert_eq!(conversation["custom_attributes"]["plinth_category"], "jobs");
    let first = &requests[2].body;
    assert_eq!(
        (first["content"].as_str(), first["message_type"].as_str(), first["private"].as_bool()),
        (Some("My scan is **stuck**."), Some("incoming"), Some(false))
    );
    assert!(first["source_id"].as_str().unwrap().starts_with("plinth:"), "{first}");
    let conversation_id = conversation_of(&chatwoot, &ticket);

    // An agent answers in Chatwoot: the user sees it live, by the agent's name; once.
    let mut ann_ws = WsClient::connect(&app, Some(&ann.access)).await;
    ann_ws.subscribe("t", FOLLOW, json!({ "id": ticket })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = chatwoot.agent_writes(conversation_id, "Restart the scan, please.", false);
    assert_eq!(chatwoot.deliver(&app, &answer).await, (200, "applied".to_owned()));
    let live = next_update(&mut ann_ws).await;
    assert_eq!(
        live["message"],
        json!({ "body": "Restart the scan, please.", "internal": false, "author": { "kind": "STAFF", "name": "Ada Agent" } })
    );
    assert_eq!(live["ticket"]["status"], "PENDING");
    assert_eq!(chatwoot.deliver(&app, &answer).await, (200, "duplicate".to_owned()), "a redelivery is a no-op");
    let n = app.gql(Some(&ann.access), "{ notifications { kind title } }", json!({})).await;
    assert_eq!(
        n["data"]["notifications"],
        json!([{ "kind": "support_reply", "title": "Support replied: Scan stuck" }])
    );
    let scheduled: i64 = sqlx::query_scalar("SELECT count(*) FROM support_reply_mails WHERE user_id = $1")
        .bind(ann.id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(scheduled, 1, "the reply's e-mail waits for the delay");

    // A private note in Chatwoot is an internal note: staff read it, the user never does.
    let note = chatwoot.agent_writes(conversation_id, "Worker 3 is slow again.", true);
    assert_eq!(chatwoot.deliver(&app, &note).await, (200, "applied".to_owned()));
    let theirs = messages(&app, &sam.access, &ticket).await;
    assert_eq!(theirs[2], ("STAFF".into(), Some("Ada Agent".into()), "Worker 3 is slow again.".into(), true));
    assert!(!messages(&app, &ann.access, &ticket).await.iter().any(|m| m.3), "the note reached the user");

    // Replies written in Plinth are copied (the user's incoming, staff's outgoing and
    // signed, a note private), and their echoes are ignored.
    assert!(reply(&app, &ann.access, &ticket, "Restarted, still stuck.").await["errors"].is_null());
    assert!(reply(&app, &sam.access, &ticket, "Fixed on our side.").await["errors"].is_null());
    let n = app.gql(Some(&sam.access), NOTE, json!({ "t": ticket, "b": "Moved to worker 4." })).await;
    assert!(n["errors"].is_null(), "{n}");
    let s = app
        .gql(
            Some(&sam.access),
            "mutation($t: ID!) { setTicketStatus(ticketId: $t, status: RESOLVED) { status } }",
            json!({ "t": ticket }),
        )
        .await;
    assert_eq!(s["data"]["setTicketStatus"]["status"], "RESOLVED", "{s}");
    eventually("every copy", || all_sent(&app, 5)).await;
    let copied: Vec<(String, bool, String)> = chatwoot
        .messages()
        .iter()
        .filter(|m| m["source_id"].as_str().is_some_and(|s| s.starts_with("plinth:")))
        .map(|m| {
            (
                m["message_type"].as_str().unwrap().to_owned(),
                m["private"] == true,
                m["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        copied,
        [
            ("incoming".into(), false, "My scan is **stuck**.".into()),
            ("incoming".into(), false, "Restarted, still stuck.".into()),
            ("outgoing".into(), false, "Fixed on our side.\n\n— Sam (Plinth)".into()),
            ("outgoing".into(), true, "Moved to worker 4.\n\n— Sam (Plinth)".into()),
        ]
    );
    assert_eq!(chatwoot.conversations()[0]["status"], "resolved");
    assert!(chatwoot.routes().last().unwrap().ends_with("/toggle_status"));
    eventually("the four echoes answered", || async { chatwoot.webhook_answers().len() == 4 }).await;
    for (id, status, body) in chatwoot.webhook_answers() {
        assert_eq!(status, 200, "echo of {id}");
        assert!(body.starts_with("ignored: ") || body == "duplicate", "echo of {id} was taken in: {body}");
    }
    let bodies: Vec<String> = messages(&app, &sam.access, &ticket).await.into_iter().map(|m| m.2).collect();
    assert_eq!(bodies.len(), 6, "no echo became a message: {bodies:?}");

    let log = access_actions(&app, &ann).await;
    for entry in
        ["Chatwoot:chatwoot.mirror", "Ada Agent (Chatwoot):chatwoot.reply", "Ada Agent (Chatwoot):chatwoot.note"]
    {
        assert!(log.contains(&entry.to_owned()), "{entry} not in {log:?}");
    }
}

#[tokio::test]
async fn bad_or_stale_signatures_and_unconfigured_webhooks_are_refused_and_write_nothing() {
    let chatwoot = FakeChatwoot::start().await;
    let app = TestApp::builder().with_chatwoot(&chatwoot).spawn().await;
    let ann = app.register("ann").await;
    let ticket = open_ticket(&app, &ann, "Help").await;
    eventually("the first copy", || all_sent(&app, 1)).await;
    let conversation = conversation_of(&chatwoot, &ticket);
    let payload = chatwoot.agent_writes(conversation, "Forged?", false);
    let counts = || async {
        let mut n = Vec::new();
        for table in ["ticket_messages", "chatwoot_messages", "notifications", "support_reply_mails"] {
            n.push(app.count(table).await);
        }
        n
    };
    let before = counts().await;
    let now = chrono::Utc::now().timestamp();
    for (secret, t, why) in [
        ("another-secret", now, "another secret"),
        (FakeChatwoot::WEBHOOK_SECRET, now - 3600, "an hour old"),
        (FakeChatwoot::WEBHOOK_SECRET, now + 3600, "an hour ahead"),
    ] {
        let (status, _) = chatwoot.deliver_signed(&app, &payload, secret, t).await;
        assert_eq!(status, 401, "{why}");
    }
    assert_eq!(chatwoot.deliver_unsigned(&app, &payload).await.0, 401, "unsigned");
    // The body is signed as it is sent: a signature of another body does not pass.
    let raw = serde_json::to_vec(&payload).unwrap();
    let signature = api::support::chatwoot::webhook::sign(&raw, FakeChatwoot::WEBHOOK_SECRET, now);
    let mut tampered = payload.clone();
    tampered["content"] = json!("Pay to this account instead.");
    let resp = app
        .http()
        .post(app.url("/webhooks/chatwoot"))
        .header("x-chatwoot-timestamp", now.to_string())
        .header("x-chatwoot-signature", signature)
        .json(&tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Signed but not a Chatwoot event: 400.
    assert_eq!(chatwoot.deliver(&app, &json!(["not", "an", "event"])).await.0, 400);
    assert_eq!(counts().await, before, "nothing written");

    // A signed message about a conversation that mirrors no ticket changes nothing either.
    let stranger = chatwoot.agent_writes(987_654, "Hello?", false);
    let (status, body) = chatwoot.deliver(&app, &stranger).await;
    assert_eq!((status, body.starts_with("ignored: ")), (200, true), "{body}");
    assert_eq!(counts().await, before);
    // The genuine delivery goes through.
    assert_eq!(chatwoot.deliver(&app, &payload).await, (200, "applied".to_owned()));

    // Without the bridge configured, the webhook refuses everything.
    let plain = TestApp::spawn().await;
    assert_eq!(chatwoot.deliver(&plain, &payload).await.0, 401);
    assert_eq!(plain.count("ticket_messages").await, 0);
}

/// The bridge off: nothing is queued, whatever tickets do.
#[tokio::test]
async fn without_the_bridge_nothing_is_queued() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let ticket = open_ticket(&app, &ann, "Help").await;
    assert!(reply(&app, &ann.access, &ticket, "More").await["errors"].is_null());
    assert_eq!(app.count("chatwoot_outbox").await, 0);
}

#[tokio::test]
async fn a_failing_chatwoot_is_retried_with_backoff_and_creates_each_conversation_once() {
    let chatwoot = FakeChatwoot::start().await;
    chatwoot.fail_next("conversations", &[503, 500]);
    let app = TestApp::builder().with_chatwoot(&chatwoot).spawn().await;
    let ann = app.register("ann").await;
    let ticket = open_ticket(&app, &ann, "Help").await;
    assert!(reply(&app, &ann.access, &ticket, "Second message").await["errors"].is_null());
    eventually("both copies", || all_sent(&app, 2)).await;
    assert_eq!(outbox(&app).await.iter().map(|(_, a)| *a).collect::<Vec<_>>(), [3, 1], "two failures, then sent");
    assert_eq!(chatwoot.conversations().len(), 1);
    let contacts = chatwoot.routes().iter().filter(|r| *r == "POST contacts").count();
    assert_eq!(contacts, 1, "the contact was recorded at once and not created again");
    let contents: Vec<Value> = chatwoot.messages().iter().map(|m| m["content"].clone()).collect();
    assert_eq!(contents, [json!("My scan is **stuck**."), json!("Second message")], "in order");
}

/// The answer to a mutation, which must come and succeed. The timeout is a safety net,
/// not a measure: a mutation that waited on a black-holed Chatwoot would hang here.
async fn answered(app: &TestApp, token: &str, query: &str, vars: Value, what: &str) -> Value {
    let r = tokio::time::timeout(WAIT, app.gql(Some(token), query, vars))
        .await
        .unwrap_or_else(|_| panic!("{what} did not answer while Chatwoot was a black hole"));
    assert!(r["errors"].is_null(), "{what}: {r}");
    r
}

/// A Chatwoot that accepts connections and never answers (a TCP black hole): requests
/// answer while a delivery hangs on it, and the outbox delivers in order once it is back.
#[tokio::test]
async fn a_black_holed_chatwoot_slows_no_request_and_the_outbox_delivers_once_it_is_back() {
    let chatwoot = FakeChatwoot::start().await;
    let hole = Proxy::start(chatwoot.url.trim_start_matches("http://").parse().unwrap()).await;
    hole.set(Mode::Blackhole);
    let app = TestApp::builder()
        .with_chatwoot_at(&format!("http://{}", hole.addr))
        // Longer than the test: an attempt in flight stays in flight until the hole closes it.
        .with_env("PLINTH_CHATWOOT_TIMEOUT_MS", "600000")
        .spawn()
        .await;
    let ann = app.register("ann").await;
    let mut sam = app.register("sam").await;
    make_staff(&app, &mut sam, "support", "Sam").await;

    let open = "mutation { openTicket(input: {subject: \"Stuck\", category: JOBS, body: \"Hello\"}) { id } }";
    let open = answered(&app, &ann.access, open, json!({}), "openTicket").await;
    let ticket = open["data"]["openTicket"]["id"].as_str().unwrap().to_owned();
    eventually("a delivery hanging in the black hole", || async { hole.accepted() >= 1 }).await;
    // While that delivery hangs: the user and staff write, and get their answers.
    let q = "mutation($t: ID!, $b: String!) { replyTicket(ticketId: $t, body: $b) { id } }";
    answered(&app, &ann.access, q, json!({ "t": ticket, "b": "Anyone?" }), "the user's reply").await;
    answered(&app, &sam.access, q, json!({ "t": ticket, "b": "On it." }), "staff's reply").await;
    assert!(chatwoot.requests().is_empty(), "nothing got through the black hole");
    assert_eq!(outbox(&app).await.iter().filter(|(s, _)| s == "pending").count(), 3);

    // Chatwoot is back: the held connection closes, the attempt is retried, all three
    // messages arrive, in order, once each.
    hole.set(Mode::Pass);
    eventually("every copy once Chatwoot is back", || all_sent(&app, 3)).await;
    let contents: Vec<Value> = chatwoot.messages().iter().map(|m| m["content"].clone()).collect();
    assert_eq!(contents, [json!("Hello"), json!("Anyone?"), json!("On it.\n\n— Sam (Plinth)")]);
    assert!(outbox(&app).await[0].1 >= 2, "the first row was attempted again");
    assert_eq!(chatwoot.conversations().len(), 1);
}

/// A bridged app where Ann and Bob each opened a ticket, and Sam is staff.
struct Bridged {
    chatwoot: FakeChatwoot,
    app: TestApp,
    ann: TestUser,
    bob: TestUser,
    sam: TestUser,
    anns: String,
    bobs: String,
}

async fn bridged(sams_role: &str) -> Bridged {
    let chatwoot = FakeChatwoot::start().await;
    let app = TestApp::builder().with_chatwoot(&chatwoot).spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let mut sam = app.register("sam").await;
    make_staff(&app, &mut sam, sams_role, "Sam").await;
    let anns = open_ticket(&app, &ann, "Ann's").await;
    let bobs = open_ticket(&app, &bob, "Bob's").await;
    Bridged { chatwoot, app, ann, bob, sam, anns, bobs }
}

/// The outbox and the bridge's maps are the owner's to read, never another user's, and
/// never a row about an internal note (by a bare SELECT as the runtime role).
#[tokio::test]
async fn the_bridge_tables_keep_to_their_owner_and_hide_internal_notes() {
    let Bridged { chatwoot, app, ann, bob, sam, anns, .. } = bridged("support").await;
    assert!(app.gql(Some(&sam.access), NOTE, json!({ "t": anns, "b": "internal" })).await["errors"].is_null());
    eventually("every copy", || all_sent(&app, 3)).await;
    let note = chatwoot.agent_writes(conversation_of(&chatwoot, &anns), "Chatwoot note", true);
    assert_eq!(chatwoot.deliver(&app, &note).await.0, 200);

    let mut conn = crate::support::runtime_conn(&app).await;
    for (user, outbox_rows, messages) in [(ann.id, 1, 1), (bob.id, 1, 1)] {
        let mut tx = crate::support::begin_as(&mut conn, "plinth_user", user).await;
        for (table, want) in [
            ("chatwoot_outbox", outbox_rows),
            ("chatwoot_messages", messages),
            ("chatwoot_conversations", 1),
            ("chatwoot_contacts", 1),
        ] {
            let owners: Vec<Uuid> =
                sqlx::query_scalar(&format!("SELECT user_id FROM {table}")).fetch_all(&mut *tx).await.unwrap();
            assert!(owners.iter().all(|o| *o == user), "{table}: another user's row");
            assert_eq!(owners.len(), want, "{table} as {user}: notes are hidden, the rest is there");
        }
        // Nor can the user write the bridge's maps.
        let forged = sqlx::query("INSERT INTO chatwoot_messages (user_id, chatwoot_message_id, ticket_id, direction) SELECT user_id, 1, id, 'inbound' FROM tickets")
            .execute(&mut *tx)
            .await;
        assert!(forged.is_err(), "a user wrote chatwoot_messages");
        tx.rollback().await.unwrap();
    }
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM chatwoot_outbox").fetch_one(&app.db).await.unwrap();
    assert_eq!(total, 3);
}

/// The webhook's functions: only the system role runs them; a conversation id reaches
/// the one ticket it mirrors and no other; the notification function serves only a
/// public message the bridge took in, once.
#[tokio::test]
async fn the_webhook_functions_are_the_system_roles_and_reach_one_ticket() {
    let Bridged { chatwoot, app, ann, bob, sam, anns, bobs } = bridged("admin").await;
    let sams_reply = reply(&app, &sam.access, &bobs, "From Plinth").await;
    let sams_reply: Uuid = sams_reply["data"]["replyTicket"]["id"].as_str().unwrap().parse().unwrap();
    eventually("every copy", || all_sent(&app, 3)).await;
    let conversation = conversation_of(&chatwoot, &anns);
    let inbound = "SELECT user_id, ticket_id, message_id, fresh FROM priv.chatwoot_inbound_message($1, 77, $2, 'Eve', 'x', false)";
    let notify = "SELECT priv.chatwoot_notify_reply($1, $2, $3, 't', 'b', '{}', 0)";

    let mut conn = crate::support::runtime_conn(&app).await;
    for (role, user) in
        [("plinth_user", ann.id), ("plinth_support", sam.id), ("plinth_admin", sam.id), ("plinth_worker", ann.id)]
    {
        let mut tx = crate::support::begin_as(&mut conn, role, user).await;
        let r = sqlx::query(inbound).bind(conversation).bind(Uuid::now_v7()).fetch_all(&mut *tx).await;
        assert!(r.is_err(), "{role} ran chatwoot_inbound_message");
        tx.rollback().await.unwrap();
    }
    // An unknown conversation: nothing. (The system role reads no user id.)
    let mut tx = crate::support::begin_as(&mut conn, "plinth_system", Uuid::nil()).await;
    let rows = sqlx::query(inbound).bind(999_999i64).bind(Uuid::now_v7()).fetch_all(&mut *tx).await.unwrap();
    assert!(rows.is_empty());
    // Ann's conversation: one message into Ann's ticket, once.
    let first: (Uuid, Uuid, Option<Uuid>, bool) =
        sqlx::query_as(inbound).bind(conversation).bind(Uuid::now_v7()).fetch_one(&mut *tx).await.unwrap();
    assert_eq!((first.0, first.1.to_string(), first.3), (ann.id, anns.clone(), true));
    let again: (Uuid, Uuid, Option<Uuid>, bool) =
        sqlx::query_as(inbound).bind(conversation).bind(Uuid::now_v7()).fetch_one(&mut *tx).await.unwrap();
    assert_eq!((again.2, again.3), (None, false), "a known Chatwoot message id changes nothing");
    // The notification function serves that message once, and never Sam's own reply.
    let mut notified = Vec::new();
    for (user, message) in [(ann.id, first.2.unwrap()), (ann.id, first.2.unwrap()), (bob.id, sams_reply)] {
        let q = sqlx::query_scalar::<_, bool>(notify).bind(user).bind(message).bind(Uuid::now_v7());
        notified.push(q.fetch_one(&mut *tx).await.unwrap());
    }
    let (served, twice, not_imported) = (notified[0], notified[1], notified[2]);
    assert_eq!((served, twice, not_imported), (true, false, false));
    tx.commit().await.unwrap();
    let per_ticket: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT user_id, count(*) FROM ticket_messages WHERE author_is_staff AND author_id IS NULL GROUP BY user_id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(per_ticket, [(ann.id, 1)], "Bob's ticket is untouched");
}
