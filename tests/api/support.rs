//! Support: tickets and live chat, the staff inbox, internal notes, access grants and
//! the access log, and who may call what. Staff are ordinary accounts whose role the
//! test sets in the database, then sign in again (the role travels in the token).

use crate::helpers::{admin_url, code, png, redacted, TestApp, TestUser, WsClient, WsEvent};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection, Postgres, Transaction};
use std::time::{Duration, Instant};
use uuid::Uuid;

pub(crate) const OPEN: &str =
    "mutation($i: OpenTicketInput!) { openTicket(input: $i) { id subject category priority status } }";
pub(crate) const REPLY: &str = "mutation($t: ID!, $b: String!) { replyTicket(ticketId: $t, body: $b) { id body bodyHtml internal author { kind name } } }";
pub(crate) const NOTE: &str =
    "mutation($t: ID!, $b: String!) { addInternalNote(ticketId: $t, body: $b) { id internal } }";
pub(crate) const TICKET: &str = "query($id: ID!) { ticket(id: $id) { id status firstResponseAt resolvedAt userId
    messages { body bodyHtml internal author { kind name } } } }";
pub(crate) const FOLLOW: &str = "subscription($id: ID) { ticketUpdated(id: $id) { ticket { id status } message { body internal author { kind name } } } }";
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// Makes `user` staff of `role` shown as `name`, and signs it in again.
pub(crate) async fn make_staff(app: &TestApp, user: &mut TestUser, role: &str, name: &str) {
    sqlx::query("UPDATE users SET role = $1, display_name = $2 WHERE id = $3")
        .bind(role)
        .bind(name)
        .bind(user.id)
        .execute(&app.db)
        .await
        .unwrap();
    let r = app
        .gql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { accessToken refreshToken } }",
            json!({ "i": { "email": user.email, "password": user.password } }),
        )
        .await;
    user.access = r["data"]["login"]["accessToken"].as_str().unwrap_or_else(|| panic!("login: {r}")).to_owned();
    user.refresh = r["data"]["login"]["refreshToken"].as_str().unwrap().to_owned();
}

pub(crate) async fn open_ticket(app: &TestApp, user: &TestUser, subject: &str) -> String {
    let r = app
        .gql(
            Some(&user.access),
            OPEN,
            json!({ "i": { "subject": subject, "category": "JOBS", "body": "My scan is **stuck**." } }),
        )
        .await;
    r["data"]["openTicket"]["id"].as_str().unwrap_or_else(|| panic!("openTicket: {r}")).to_owned()
}

pub(crate) async fn reply(app: &TestApp, token: &str, ticket: &str, body: &str) -> Value {
    app.gql(Some(token), REPLY, json!({ "t": ticket, "b": body })).await
}

/// A connection as the runtime login role, in a transaction switched as the server
/// switches it.
pub(crate) async fn runtime_conn(app: &TestApp) -> PgConnection {
    let url = admin_url(&app.database).replace("postgres@", "plinth_app@");
    PgConnection::connect(&url).await.unwrap()
}

pub(crate) async fn begin_as<'c>(conn: &'c mut PgConnection, role: &str, user: Uuid) -> Transaction<'c, Postgres> {
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('role', $1, true), set_config('plinth.user_id', $2, true)")
        .bind(role)
        .bind(user.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

pub(crate) async fn access_actions(app: &TestApp, user: &TestUser) -> Vec<String> {
    let r = app
        .gql(
            Some(&user.access),
            "{ supportAccessLog(first: 100) { edges { node { staffName staffRole action ticketId } } } }",
            json!({}),
        )
        .await;
    r["data"]["supportAccessLog"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("supportAccessLog: {r}"))
        .iter()
        .map(|e| format!("{}:{}", e["node"]["staffName"].as_str().unwrap(), e["node"]["action"].as_str().unwrap()))
        .collect()
}

/// The actions of `user`'s activity log done by support, newest first.
async fn done_by_support(app: &TestApp, user: &TestUser) -> Vec<String> {
    let r =
        app.gql(Some(&user.access), "{ activity(first: 50) { edges { node { action bySupport } } } }", json!({})).await;
    r["data"]["activity"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .filter(|e| e["node"]["bySupport"] == true)
        .map(|e| e["node"]["action"].as_str().unwrap().to_owned())
        .collect()
}

pub(crate) async fn next_update(ws: &mut WsClient) -> Value {
    match ws.next(WAIT).await {
        WsEvent::Next(p) => {
            assert!(p["errors"].is_null(), "{p}");
            p["data"]["ticketUpdated"].clone()
        }
        other => panic!("expected an update, got {other:?}"),
    }
}

/// A Markdown record of GraphQL operations and their answers (ids and times redacted),
/// written to the file `PLINTH_TRANSCRIPT` names when the test ends; nothing when unset.
/// `PLINTH_TRANSCRIPT=/tmp/conversation.md scripts/test --test api a_whole_conversation`
struct Transcript {
    text: String,
}

impl Transcript {
    fn new(title: &str) -> Self {
        Transcript { text: format!("# {title}\n") }
    }

    fn block(&mut self, heading: &str, request: &str, answer_label: &str, answer: &Value) {
        let answer = serde_json::to_string_pretty(&redacted(answer)).unwrap();
        self.text.push_str(&format!(
            "\n## {heading}\n\n```graphql\n{}\n```\n\n{answer_label}:\n\n```json\n{answer}\n```\n",
            request.trim()
        ));
    }

    /// Sends `query` as `token`, records it under `heading` (with its variables), and
    /// returns the answer.
    async fn gql(&mut self, app: &TestApp, heading: &str, token: &str, query: &str, vars: Value) -> Value {
        let r = app.gql(Some(token), query, vars.clone()).await;
        let request = if vars.as_object().is_some_and(|v| !v.is_empty()) {
            format!("{query}\n# variables: {}", redacted(&vars))
        } else {
            query.to_owned()
        };
        self.block(heading, &request, "Answer", &r);
        r
    }

    /// Records an event a subscription received.
    fn event(&mut self, heading: &str, subscription: &str, payload: &Value) {
        self.block(heading, subscription, "Event received on the WebSocket (`next`)", payload);
    }

    fn finish(self) {
        if let Some(path) = std::env::var_os("PLINTH_TRANSCRIPT") {
            std::fs::write(path, self.text).expect("writing the transcript");
        }
    }
}

#[tokio::test]
async fn a_whole_conversation_internal_notes_stay_with_staff_and_every_staff_read_is_logged() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let mut sam = app.register("sam").await;
    make_staff(&app, &mut sam, "support", "Sam from Support").await;
    let mut tr = Transcript::new("A support conversation: Ann (user) and Sam (support)");

    let o = tr
        .gql(
            &app,
            "Ann opens a ticket",
            &ann.access,
            "mutation($i: OpenTicketInput!) { openTicket(input: $i) { id subject category status createdAt } }",
            json!({ "i": { "subject": "Scan stuck", "category": "JOBS", "body": "My scan is **stuck**." } }),
        )
        .await;
    let ticket = o["data"]["openTicket"]["id"].as_str().unwrap_or_else(|| panic!("openTicket: {o}")).to_owned();
    let mut ann_ws = WsClient::connect(&app, Some(&ann.access)).await;
    ann_ws.subscribe("t", FOLLOW, json!({ "id": ticket })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let inbox = tr
        .gql(
            &app,
            "Sam finds it in the support inbox",
            &sam.access,
            "{ supportInbox(filter: {status: OPEN, search: \"stuck\"}) { edges { node { id subject status userId } } } }",
            json!({}),
        )
        .await;
    assert_eq!(inbox["data"]["supportInbox"]["edges"][0]["node"]["id"], ticket.as_str(), "{inbox}");
    assert_eq!(inbox["data"]["supportInbox"]["edges"][0]["node"]["userId"], ann.id.to_string(), "{inbox}");

    let r = tr
        .gql(
            &app,
            "Sam replies",
            &sam.access,
            REPLY,
            json!({ "t": ticket, "b": "Looking into it. <script>alert(1)</script>" }),
        )
        .await;
    assert_eq!(r["data"]["replyTicket"]["author"], json!({ "kind": "STAFF", "name": "Sam from Support" }), "{r}");
    assert!(!r["data"]["replyTicket"]["bodyHtml"].as_str().unwrap().contains("<script"), "{r}");
    let live = match ann_ws.next(WAIT).await {
        WsEvent::Next(p) => p,
        other => panic!("expected Sam's reply live, got {other:?}"),
    };
    tr.event("Ann receives Sam's reply live (she subscribed to the ticket before)", FOLLOW, &live);
    assert_eq!(live["data"]["ticketUpdated"]["message"]["author"]["name"], "Sam from Support", "{live}");
    let n = tr
        .gql(
            &app,
            "Sam adds an internal note",
            &sam.access,
            NOTE,
            json!({ "t": ticket, "b": "User on the free plan; worker 3 is slow." }),
        )
        .await;
    assert_eq!(n["data"]["addInternalNote"]["internal"], true, "{n}");

    // The owner sees the staff reply by display name and never the note.
    let mine =
        tr.gql(&app, "Ann reads the ticket: no internal note", &ann.access, TICKET, json!({ "id": ticket })).await;
    let t = &mine["data"]["ticket"];
    assert_eq!(t["status"], "PENDING", "{mine}");
    assert!(t["firstResponseAt"].is_string(), "{mine}");
    assert!(t["userId"].is_null(), "users are not shown owner ids: {mine}");
    let bodies: Vec<&str> = t["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies.len(), 2, "{mine}");
    assert!(!mine.to_string().contains("worker 3"), "the internal note leaked: {mine}");
    assert_eq!(t["messages"][0]["bodyHtml"], "<p>My scan is <strong>stuck</strong>.</p>\n", "{mine}");

    // Staff see the note.
    let theirs =
        tr.gql(&app, "Sam reads the ticket: the note is there", &sam.access, TICKET, json!({ "id": ticket })).await;
    assert_eq!(theirs["data"]["ticket"]["messages"].as_array().unwrap().len(), 3, "{theirs}");

    // The user answers (the ticket waits for support again), support resolves it.
    let r = tr.gql(&app, "Ann answers", &ann.access, REPLY, json!({ "t": ticket, "b": "Thanks!" })).await;
    assert_eq!(r["data"]["replyTicket"]["author"], json!({ "kind": "USER", "name": null }), "{r}");
    let s = tr
        .gql(
            &app,
            "Sam resolves the ticket",
            &sam.access,
            "mutation($t: ID!) { setTicketStatus(ticketId: $t, status: RESOLVED) { status resolvedAt firstResponseAt } }",
            json!({ "t": ticket }),
        )
        .await;
    assert_eq!(s["data"]["setTicketStatus"]["status"], "RESOLVED", "{s}");
    assert!(s["data"]["setTicketStatus"]["resolvedAt"].is_string(), "{s}");
    // Ann's socket: her own answer, then the resolution (never the note).
    let mut events = Vec::new();
    for _ in 0..2 {
        match ann_ws.next(WAIT).await {
            WsEvent::Next(p) => events.push(p),
            other => panic!("expected an update, got {other:?}"),
        }
    }
    assert_eq!(events[1]["data"]["ticketUpdated"]["ticket"]["status"], "RESOLVED", "{events:?}");
    assert!(!format!("{events:?}").contains("worker 3"), "the note reached Ann's socket");
    tr.event("Ann receives the resolution live", FOLLOW, &events[1]);

    let log = tr
        .gql(
            &app,
            "Ann lists who at support read or acted on her data",
            &ann.access,
            "{ supportAccessLog(first: 20) { edges { node { staffName staffRole action ticketId } } } }",
            json!({}),
        )
        .await;
    assert!(log["errors"].is_null(), "{log}");
    let log = access_actions(&app, &ann).await;
    for action in ["inbox.list", "ticket.reply", "ticket.note", "ticket.view", "ticket.status.resolved"] {
        assert!(log.iter().any(|l| l == &format!("Sam from Support:{action}")), "{action} not in {log:?}");
    }
    tr.finish();
    // The user closes and reopens it.
    let c = app
        .gql(
            Some(&ann.access),
            "mutation($id: ID!) { closeTicket(id: $id) { status closedAt } }",
            json!({ "id": ticket }),
        )
        .await;
    assert_eq!(c["data"]["closeTicket"]["status"], "CLOSED", "{c}");
    assert_eq!(code(&reply(&app, &ann.access, &ticket, "again").await), "BAD_USER_INPUT");
    let o = app
        .gql(Some(&ann.access), "mutation($id: ID!) { reopenTicket(id: $id) { status } }", json!({ "id": ticket }))
        .await;
    assert_eq!(o["data"]["reopenTicket"]["status"], "OPEN", "{o}");
}

#[tokio::test]
async fn another_user_never_sees_a_ticket_its_messages_or_its_events() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let mut sam = app.register("sam").await;
    make_staff(&app, &mut sam, "support", "Sam").await;
    let ticket = open_ticket(&app, &ann, "Ann's problem").await;
    let bobs = open_ticket(&app, &bob, "Bob's problem").await;

    let r = app.gql(Some(&bob.access), TICKET, json!({ "id": ticket })).await;
    assert!(r["data"]["ticket"].is_null() && r["errors"].is_null(), "{r}");
    let list = app.gql(Some(&bob.access), "{ tickets { edges { node { id } } } }", json!({})).await;
    assert_eq!(list["data"]["tickets"]["edges"], json!([{ "node": { "id": bobs } }]), "{list}");
    for (q, vars) in [
        (REPLY, json!({ "t": ticket, "b": "hi" })),
        ("mutation($id: ID!) { closeTicket(id: $id) { id } }", json!({ "id": ticket })),
        ("mutation($id: ID!) { reopenTicket(id: $id) { id } }", json!({ "id": ticket })),
    ] {
        assert_eq!(code(&app.gql(Some(&bob.access), q, vars).await), "NOT_FOUND");
    }

    // Bob cannot follow Ann's ticket, and following all of his own hears nothing of hers.
    let mut bob_ws = WsClient::connect(&app, Some(&bob.access)).await;
    bob_ws.subscribe("1", FOLLOW, json!({ "id": ticket })).await;
    match bob_ws.next(WAIT).await {
        WsEvent::Next(v) => assert_eq!(v["errors"][0]["extensions"]["code"], "NOT_FOUND", "{v}"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(matches!(bob_ws.next(WAIT).await, WsEvent::Other(v) if v["type"] == "complete"));
    bob_ws.subscribe("2", FOLLOW, json!({})).await;
    let mut ann_ws = WsClient::connect(&app, Some(&ann.access)).await;
    ann_ws.subscribe("1", FOLLOW, json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    reply(&app, &sam.access, &ticket, "For Ann only").await;
    assert_eq!(next_update(&mut ann_ws).await["message"]["body"], "For Ann only");
    reply(&app, &sam.access, &bobs, "For Bob").await;
    // Bob's first event is his own ticket's: Ann's never reached him.
    assert_eq!(next_update(&mut bob_ws).await["message"]["body"], "For Bob");
}

#[tokio::test]
async fn the_user_role_never_reads_an_internal_note_even_with_a_bare_select() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let mut sam = app.register("sam").await;
    make_staff(&app, &mut sam, "admin", "Sam").await;
    let ticket = open_ticket(&app, &ann, "Help").await;
    let n = app.gql(Some(&sam.access), NOTE, json!({ "t": ticket, "b": "secret note" })).await;
    assert_eq!(n["data"]["addInternalNote"]["internal"], true, "{n}");

    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM ticket_messages").fetch_one(&app.db).await.unwrap();
    assert_eq!(total, 2);
    let mut conn = runtime_conn(&app).await;
    let mut tx = begin_as(&mut conn, "plinth_user", ann.id).await;
    let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM ticket_messages").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(bodies, ["My scan is **stuck**."]);
    let internal: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ticket_messages WHERE internal").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(internal, 0);
    // Nor can the user role write one, as itself or as staff.
    let forged = sqlx::query(
        "INSERT INTO ticket_messages (id, user_id, ticket_id, author_id, author_is_staff, internal, body)
         VALUES ($1, $2, $3, $2, true, true, 'x')",
    )
    .bind(Uuid::now_v7())
    .bind(ann.id)
    .bind(ticket.parse::<Uuid>().unwrap())
    .execute(&mut *tx)
    .await;
    assert!(forged.is_err(), "the user role wrote an internal note");
    tx.rollback().await.unwrap();
}

/// Staff read a ticket's CSAT rating with the ticket (`ticket` and, batched, the
/// inbox), a read logged like any other; another user never reads it, and its own
/// unrated ticket shows none.
#[tokio::test]
async fn staff_read_a_tickets_csat_rating_and_another_user_never_does() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let mut sam = app.register("sam").await;
    make_staff(&app, &mut sam, "support", "Sam").await;
    let ticket = open_ticket(&app, &ann, "Rated").await;
    let unrated = open_ticket(&app, &ann, "Unrated").await;
    let bobs = open_ticket(&app, &bob, "Bob's").await;
    let resolve = "mutation($t: ID!) { setTicketStatus(ticketId: $t, status: RESOLVED) { status } }";
    let r = app.gql(Some(&sam.access), resolve, json!({ "t": ticket })).await;
    assert_eq!(r["data"]["setTicketStatus"]["status"], "RESOLVED", "{r}");
    let rate = "mutation($t: ID!) { submitCsat(input: {ticketId: $t, score: 2, comment: \"slow\"}) { score } }";
    let r = app.gql(Some(&ann.access), rate, json!({ "t": ticket })).await;
    assert_eq!(r["data"]["submitCsat"]["score"], 2, "{r}");
    let rating = json!({ "score": 2, "comment": "slow", "ticketId": ticket });

    // Staff: on the ticket (logged), and on every ticket of the inbox.
    let one = "query($id: ID!) { ticket(id: $id) { csat { score comment ticketId } } }";
    let r = app.gql(Some(&sam.access), one, json!({ "id": ticket })).await;
    assert_eq!(r["data"]["ticket"]["csat"], rating, "{r}");
    assert!(access_actions(&app, &ann).await.contains(&"Sam:ticket.view".to_owned()));
    let inbox = "{ supportInbox(first: 50) { edges { node { id csat { score comment ticketId } } } } }";
    let r = app.gql(Some(&sam.access), inbox, json!({})).await;
    let edges = r["data"]["supportInbox"]["edges"].as_array().unwrap_or_else(|| panic!("{r}"));
    let csat_of = |id: &str| edges.iter().find(|e| e["node"]["id"] == id).map(|e| e["node"]["csat"].clone());
    assert_eq!(csat_of(&ticket), Some(rating.clone()), "{r}");
    assert_eq!(csat_of(&unrated), Some(Value::Null), "{r}");
    assert_eq!(csat_of(&bobs), Some(Value::Null), "{r}");

    // The owner reads its own; Bob reads neither the ticket nor, with a bare select, the rating.
    let r = app.gql(Some(&ann.access), "{ tickets { edges { node { id csat { score } } } } }", json!({})).await;
    let mine = r["data"]["tickets"]["edges"].as_array().unwrap_or_else(|| panic!("{r}"));
    assert!(mine.iter().any(|e| e["node"]["id"] == ticket.as_str() && e["node"]["csat"]["score"] == 2), "{r}");
    let r = app.gql(Some(&bob.access), one, json!({ "id": ticket })).await;
    assert!(r["data"]["ticket"].is_null() && r["errors"].is_null(), "{r}");
    let r = app.gql(Some(&bob.access), "{ tickets { edges { node { id csat { score } } } } }", json!({})).await;
    assert_eq!(r["data"]["tickets"]["edges"], json!([{ "node": { "id": bobs, "csat": null } }]), "{r}");
    let mut conn = runtime_conn(&app).await;
    for (role, user, seen) in [("plinth_user", bob.id, 0), ("plinth_support", sam.id, 1), ("plinth_user", ann.id, 1)] {
        let mut tx = begin_as(&mut conn, role, user).await;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM ticket_csat").fetch_one(&mut *tx).await.unwrap();
        assert_eq!(n, seen, "{role}");
        tx.rollback().await.unwrap();
    }
    // Staff still cannot rate, nor change a rating.
    let mut tx = begin_as(&mut conn, "plinth_support", sam.id).await;
    let changed = sqlx::query("UPDATE ticket_csat SET score = 5").execute(&mut *tx).await;
    assert!(changed.is_err(), "support changed a rating");
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn support_reads_an_account_only_through_a_ticket_or_a_live_grant_and_admins_read_all() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await; // opens a ticket
    let cat = app.register("cat").await; // grants access
    let dan = app.register("dan").await; // neither
    let mut sam = app.register("sam").await;
    make_staff(&app, &mut sam, "support", "Sam").await;
    let mut ada = app.register("ada").await;
    make_staff(&app, &mut ada, "admin", "Ada").await;
    open_ticket(&app, &ann, "Help").await;

    let visible = |role: &'static str, staff: Uuid| {
        let app = &app;
        async move {
            let mut conn = runtime_conn(app).await;
            let mut tx = begin_as(&mut conn, role, staff).await;
            let mut ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM users").fetch_all(&mut *tx).await.unwrap();
            tx.rollback().await.unwrap();
            ids.sort();
            ids
        }
    };
    let sorted = |mut v: Vec<Uuid>| {
        v.sort();
        v
    };
    assert_eq!(visible("plinth_support", sam.id).await, sorted(vec![ann.id, sam.id, ada.id]));
    assert_eq!(visible("plinth_admin", ada.id).await, sorted(vec![ann.id, cat.id, dan.id, sam.id, ada.id]));

    let g = app.gql(Some(&cat.access), "mutation { grantSupportAccess(hours: 2) { expiresAt } }", json!({})).await;
    assert!(g["data"]["grantSupportAccess"]["expiresAt"].is_string(), "{g}");
    assert_eq!(
        code(&app.gql(Some(&cat.access), "mutation { grantSupportAccess(hours: 0) { id } }", json!({})).await),
        "BAD_USER_INPUT"
    );
    assert_eq!(visible("plinth_support", sam.id).await, sorted(vec![ann.id, cat.id, sam.id, ada.id]));
    let r = app.gql(Some(&cat.access), "mutation { revokeSupportAccess }", json!({})).await;
    assert_eq!(r["data"]["revokeSupportAccess"], true, "{r}");
    assert_eq!(visible("plinth_support", sam.id).await, sorted(vec![ann.id, sam.id, ada.id]));
    // An expired grant opens nothing either.
    sqlx::query(
        "INSERT INTO support_access_grants (id, user_id, created_at, expires_at)
         VALUES ($1, $2, now() - interval '3 hours', now() - interval '1 hour')",
    )
    .bind(Uuid::now_v7())
    .bind(dan.id)
    .execute(&app.db)
    .await
    .unwrap();
    assert_eq!(visible("plinth_support", sam.id).await, sorted(vec![ann.id, sam.id, ada.id]));
    // No staff id set: nothing at all.
    let mut conn = runtime_conn(&app).await;
    for role in ["plinth_support", "plinth_admin"] {
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("SELECT set_config('role', $1, true), set_config('plinth.user_id', '', true)")
            .bind(role)
            .execute(&mut *tx)
            .await
            .unwrap();
        for table in ["users", "tickets", "ticket_messages", "support_access_log"] {
            let n: i64 =
                sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut *tx).await.unwrap();
            assert_eq!(n, 0, "{role} with no id reads {table}");
        }
        tx.rollback().await.unwrap();
    }
}

#[tokio::test]
async fn staff_operations_refuse_users_workers_and_api_tokens() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let mut sam = app.register("sam").await;
    make_staff(&app, &mut sam, "support", "Sam").await;
    let mut ada = app.register("ada").await;
    make_staff(&app, &mut ada, "admin", "Ada").await;
    let ticket = open_ticket(&app, &ann, "Help").await;
    let t = app
        .gql(
            Some(&ann.access),
            "mutation { createApiToken(input: {name: \"ci\", scopes: [\"drafts:read\", \"jobs:read\"]}) { token } }",
            json!({}),
        )
        .await;
    let api_token = t["data"]["createApiToken"]["token"].as_str().unwrap_or_else(|| panic!("{t}")).to_owned();
    let worker = app.worker_token(&["scan"]);

    let staff_ops = [
        ("{ supportInbox { edges { node { id } } } }", json!({})),
        ("{ cannedReplies { id } }", json!({})),
        ("mutation($t: ID!) { assignTicket(ticketId: $t) { id } }", json!({ "t": ticket })),
        (NOTE, json!({ "t": ticket, "b": "x" })),
        ("mutation($t: ID!) { setTicketStatus(ticketId: $t, status: PENDING) { id } }", json!({ "t": ticket })),
    ];
    for (q, vars) in &staff_ops {
        for token in [&ann.access, &api_token, &worker] {
            let r = app.gql(Some(token), q, vars.clone()).await;
            assert_eq!(code(&r), "FORBIDDEN", "{q}: {r}");
        }
        assert_eq!(code(&app.gql(None, q, vars.clone()).await), "UNAUTHENTICATED", "{q}");
        let r = app.gql(Some(&sam.access), q, vars.clone()).await;
        assert!(r["errors"].is_null(), "support may call {q}: {r}");
    }
    // The users' operations refuse API tokens too.
    let r = app.gql(Some(&api_token), TICKET, json!({ "id": ticket })).await;
    assert_eq!(code(&r), "FORBIDDEN", "{r}");

    // Canned replies: admins write, support reads.
    let create = "mutation($i: CannedReplyInput!) { createCannedReply(input: $i) { id title } }";
    let input = json!({ "i": { "title": "Restart", "body": "Please **restart** the scan." } });
    assert_eq!(code(&app.gql(Some(&sam.access), create, input.clone()).await), "FORBIDDEN");
    let c = app.gql(Some(&ada.access), create, input).await;
    let id = c["data"]["createCannedReply"]["id"].as_str().unwrap_or_else(|| panic!("{c}")).to_owned();
    let u = app
        .gql(
            Some(&ada.access),
            "mutation($id: ID!, $i: CannedReplyInput!) { updateCannedReply(id: $id, input: $i) { title } }",
            json!({ "id": id, "i": { "title": "Restart it", "body": "Please restart." } }),
        )
        .await;
    assert_eq!(u["data"]["updateCannedReply"]["title"], "Restart it", "{u}");
    let l = app.gql(Some(&sam.access), "{ cannedReplies { title } }", json!({})).await;
    assert_eq!(l["data"]["cannedReplies"], json!([{ "title": "Restart it" }]), "{l}");

    // Assigning: to staff only; support may assign to itself.
    let a = app
        .gql(
            Some(&sam.access),
            "mutation($t: ID!, $a: ID) { assignTicket(ticketId: $t, assigneeId: $a) { assigneeId } }",
            json!({ "t": ticket, "a": sam.id }),
        )
        .await;
    assert_eq!(a["data"]["assignTicket"]["assigneeId"], sam.id.to_string(), "{a}");
    let bad = app
        .gql(
            Some(&sam.access),
            "mutation($t: ID!, $a: ID) { assignTicket(ticketId: $t, assigneeId: $a) { assigneeId } }",
            json!({ "t": ticket, "a": ann.id }),
        )
        .await;
    assert_eq!(code(&bad), "BAD_USER_INPUT", "{bad}");
    let mine = app
        .gql(
            Some(&sam.access),
            "{ supportInbox(filter: {assigneeId: \"ID\"}) { edges { node { id } } } }"
                .replace("ID", &sam.id.to_string())
                .as_str(),
            json!({}),
        )
        .await;
    assert_eq!(mine["data"]["supportInbox"]["edges"][0]["node"]["id"], ticket.as_str(), "{mine}");
    assert!(access_actions(&app, &ann).await.contains(&"Sam:ticket.assign".to_owned()));
}

#[tokio::test]
async fn limits_lengths_and_links_are_checked() {
    let app = TestApp::builder()
        .with_env("PLINTH_SUPPORT_MAX_OPEN_TICKETS", "2")
        .with_env("PLINTH_SUPPORT_MESSAGES_PER_HOUR", "4")
        .spawn()
        .await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let bobs_draft = app.create_draft(&bob.access, "Bob's").await;
    let anns_draft = app.create_draft(&ann.access, "Ann's").await;

    let open = |subject: String, extra: Value| {
        let mut i = json!({ "subject": subject, "category": "OTHER", "body": "hello" });
        i.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        app.gql(Some(&ann.access), OPEN, json!({ "i": i }))
    };
    let r = open("x".repeat(201), json!({})).await;
    assert_eq!(code(&r), "BAD_USER_INPUT");
    assert_eq!(r["errors"][0]["extensions"]["field"], "input.subject", "{r}");
    assert_eq!(code(&open("ok".into(), json!({ "body": "x".repeat(10_001) })).await), "BAD_USER_INPUT");
    assert_eq!(code(&open("ok".into(), json!({ "draftId": bobs_draft })).await), "NOT_FOUND");
    assert_eq!(code(&open("ok".into(), json!({ "jobId": Uuid::now_v7() })).await), "NOT_FOUND");

    let first = open("one".into(), json!({ "draftId": anns_draft })).await;
    let first = first["data"]["openTicket"]["id"].as_str().unwrap_or_else(|| panic!("{first}")).to_owned();
    assert!(open("two".into(), json!({})).await["data"]["openTicket"].is_object());
    let third = open("three".into(), json!({})).await;
    assert_eq!(code(&third), "BAD_USER_INPUT", "{third}");
    assert_eq!(app.count("tickets").await, 2, "a refused ticket leaves nothing");

    // Four messages an hour: two opened tickets, two replies, then RATE_LIMITED.
    for _ in 0..2 {
        assert!(reply(&app, &ann.access, &first, "more").await["data"]["replyTicket"].is_object());
    }
    let limited = reply(&app, &ann.access, &first, "more").await;
    assert_eq!(code(&limited), "RATE_LIMITED", "{limited}");
}

#[tokio::test]
async fn live_chat_both_ways_over_two_websockets() {
    let app = TestApp::builder().with_redis().spawn().await;
    let ann = app.register("ann").await;
    let mut sam = app.register("sam").await;
    make_staff(&app, &mut sam, "support", "Sam").await;
    let ticket = open_ticket(&app, &ann, "Chat").await;

    let mut user_ws = WsClient::connect(&app, Some(&ann.access)).await;
    user_ws.subscribe("u", FOLLOW, json!({ "id": ticket })).await;
    let mut staff_ws = WsClient::connect(&app, Some(&sam.access)).await;
    staff_ws.subscribe("s", FOLLOW, json!({ "id": ticket })).await;
    let mut inbox_ws = WsClient::connect(&app, Some(&sam.access)).await;
    inbox_ws
        .subscribe("i", "subscription { supportInboxUpdated { ticketId messageAdded internal status } }", json!({}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    reply(&app, &sam.access, &ticket, "Hello Ann").await;
    let got = next_update(&mut user_ws).await;
    assert_eq!(
        got["message"],
        json!({ "body": "Hello Ann", "internal": false, "author": { "kind": "STAFF", "name": "Sam" } })
    );
    assert_eq!(got["ticket"]["status"], "PENDING");
    assert_eq!(next_update(&mut staff_ws).await["message"]["body"], "Hello Ann");

    reply(&app, &ann.access, &ticket, "Hi Sam").await;
    assert_eq!(next_update(&mut staff_ws).await["message"]["body"], "Hi Sam");
    assert_eq!(next_update(&mut user_ws).await["message"]["body"], "Hi Sam");

    // A note reaches staff, never the user: the user's next event is the reply after it.
    app.gql(Some(&sam.access), NOTE, json!({ "t": ticket, "b": "internal" })).await;
    reply(&app, &sam.access, &ticket, "Fixed").await;
    assert_eq!(next_update(&mut staff_ws).await["message"]["internal"], true);
    assert_eq!(next_update(&mut user_ws).await["message"]["body"], "Fixed");

    let mut inbox = Vec::new();
    for _ in 0..4 {
        match inbox_ws.next(WAIT).await {
            WsEvent::Next(p) => inbox.push(p["data"]["supportInboxUpdated"].clone()),
            other => panic!("inbox: {other:?}"),
        }
    }
    assert!(inbox.iter().all(|u| u["ticketId"] == ticket.as_str() && u["messageAdded"] == true), "{inbox:?}");
    assert_eq!(inbox[2]["internal"], true, "{inbox:?}");
    // Following the ticket was a logged read.
    assert!(access_actions(&app, &ann).await.contains(&"Sam:ticket.follow".to_owned()));
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// The latency of a chat message from the sender's mutation to the other side's
/// subscription, 100 messages each way, printed (never asserted: timings depend on the
/// machine). `scripts/test --test api support_latency -- --ignored --nocapture`
#[tokio::test]
#[ignore]
async fn support_latency() {
    let app = TestApp::builder().with_redis().with_env("PLINTH_SUPPORT_MESSAGES_PER_HOUR", "1000").spawn().await;
    let ann = app.register("ann").await;
    let mut sam = app.register("sam").await;
    make_staff(&app, &mut sam, "support", "Sam").await;
    let ticket = open_ticket(&app, &ann, "Latency").await;
    let mut user_ws = WsClient::connect(&app, Some(&ann.access)).await;
    user_ws.subscribe("u", FOLLOW, json!({ "id": ticket })).await;
    let mut staff_ws = WsClient::connect(&app, Some(&sam.access)).await;
    staff_ws.subscribe("s", FOLLOW, json!({ "id": ticket })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for staff_sends in [true, false] {
        let (label, sender, receiver, echo) = if staff_sends {
            ("staff -> user", &sam, &mut user_ws, &mut staff_ws)
        } else {
            ("user -> staff", &ann, &mut staff_ws, &mut user_ws)
        };
        let mut times = Vec::with_capacity(100);
        for i in 0..100 {
            let body = format!("{label} {i}");
            let start = Instant::now();
            let r = reply(&app, &sender.access, &ticket, &body).await;
            assert!(r["errors"].is_null(), "{r}");
            loop {
                let u = next_update(receiver).await;
                if u["message"]["body"] == body.as_str() {
                    break;
                }
            }
            times.push(start.elapsed());
            next_update(echo).await;
        }
        times.sort();
        println!(
            "support chat latency, {label}, mutation sent to subscription event received, 100 messages: \
             p50 {:.2?}, p99 {:.2?}, max {:.2?}",
            percentile(&times, 0.50),
            percentile(&times, 0.99),
            times[99]
        );
    }
}

const RESERVE: &str = "mutation($i: TicketAttachmentInput!) { createTicketAttachmentUpload(input: $i) {
    attachment { id status } uploadUrl headers { name value } } }";
const CONFIRM: &str =
    "mutation($id: ID!) { confirmTicketAttachment(id: $id) { id status sha256 byteSize contentType } }";
const FILES: &str = "query($id: ID!) { ticket(id: $id) { messages { internal attachments {
    id fileName contentType byteSize internal url } } } }";
/// A small PDF (the sniffer reads its magic bytes).
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

fn reserve_input(ticket: &str, name: &str, ct: &str, bytes: &[u8], internal: bool) -> Value {
    json!({ "i": { "ticketId": ticket, "fileName": name, "contentType": ct, "byteSize": bytes.len(),
                   "sha256": hex::encode(Sha256::digest(bytes)), "internal": internal } })
}

/// Reserves, uploads and confirms a file on `ticket`; returns its id.
async fn attach_file(
    app: &TestApp,
    token: &str,
    ticket: &str,
    name: &str,
    ct: &str,
    bytes: &[u8],
    internal: bool,
) -> String {
    let r = app.gql(Some(token), RESERVE, reserve_input(ticket, name, ct, bytes, internal)).await;
    let up = &r["data"]["createTicketAttachmentUpload"];
    assert!(up.is_object(), "createTicketAttachmentUpload: {r}");
    assert!(app.put_upload(up, bytes.to_vec()).await.status().is_success());
    let c = app.gql(Some(token), CONFIRM, json!({ "id": up["attachment"]["id"] })).await;
    assert_eq!(c["data"]["confirmTicketAttachment"]["status"], "READY", "{c}");
    assert_eq!(c["data"]["confirmTicketAttachment"]["sha256"], hex::encode(Sha256::digest(bytes)), "{c}");
    up["attachment"]["id"].as_str().unwrap().to_owned()
}

async fn storage_used(app: &TestApp, user: &TestUser) -> i64 {
    let r = app.gql(Some(&user.access), "{ usage { metric used } dashboard { storageBytes } }", json!({})).await;
    let used = r["data"]["usage"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .find(|u| u["metric"] == "STORAGE_BYTES")
        .unwrap()["used"]
        .as_i64()
        .unwrap();
    assert_eq!(r["data"]["dashboard"]["storageBytes"].as_i64(), Some(used), "dashboard and gauge agree: {r}");
    used
}

/// Item 1 (attachments): the owner's files are sent with a reply, counted in its storage
/// gauge, downloadable as attachments; staff read them (logged) and attach internal
/// files that the user never sees, not even by a bare SELECT; another user reaches none.
#[tokio::test]
async fn attachments_stay_with_their_ticket_count_in_storage_and_internal_ones_stay_with_staff() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let mut sam = app.register("sam").await;
    make_staff(&app, &mut sam, "support", "Sam").await;
    let ticket = open_ticket(&app, &ann, "Broken photo").await;
    let image = png(4, 3);

    let file = attach_file(&app, &ann.access, &ticket, "screen shot.png", "image/png", &image, false).await;
    assert_eq!(storage_used(&app, &ann).await, image.len() as i64, "a confirmed attachment counts");
    let r = app
        .gql(Some(&ann.access), "mutation($t: ID!, $a: [ID!]) { replyTicket(ticketId: $t, body: \"see file\", attachmentIds: $a) { attachments { id fileName } } }",
             json!({ "t": ticket, "a": [file] }))
        .await;
    assert_eq!(r["data"]["replyTicket"]["attachments"][0]["id"], file.as_str(), "{r}");
    // Sent once: a second message cannot carry it again.
    let again = app
        .gql(
            Some(&ann.access),
            "mutation($t: ID!, $a: [ID!]) { replyTicket(ticketId: $t, body: \"again\", attachmentIds: $a) { id } }",
            json!({ "t": ticket, "a": [file] }),
        )
        .await;
    assert_eq!(code(&again), "BAD_USER_INPUT", "{again}");
    assert_eq!(again["errors"][0]["extensions"]["field"], "attachmentIds");

    let mine = app.gql(Some(&ann.access), FILES, json!({ "id": ticket })).await;
    let a = &mine["data"]["ticket"]["messages"][1]["attachments"][0];
    assert_eq!(
        (a["fileName"].as_str(), a["contentType"].as_str()),
        (Some("screen shot.png"), Some("image/png")),
        "{mine}"
    );
    let got = app.http().get(a["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-disposition"], "attachment; filename=\"screenshot.png\"");
    assert_eq!(got.headers()["x-content-type-options"], "nosniff");
    assert_eq!(got.bytes().await.unwrap().as_ref(), image.as_slice());

    // Bob reaches none of it: not the ticket, not the file by id, not by attaching it.
    assert!(app.gql(Some(&bob.access), FILES, json!({ "id": ticket })).await["data"]["ticket"].is_null());
    assert_eq!(code(&app.gql(Some(&bob.access), CONFIRM, json!({ "id": file })).await), "NOT_FOUND");
    let r = app.gql(Some(&bob.access), RESERVE, reserve_input(&ticket, "x.png", "image/png", &image, false)).await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");
    let bobs = open_ticket(&app, &bob, "Mine").await;
    let stolen = app
        .gql(
            Some(&bob.access),
            "mutation($t: ID!, $a: [ID!]) { replyTicket(ticketId: $t, body: \"mine now\", attachmentIds: $a) { id } }",
            json!({ "t": bobs, "a": [file] }),
        )
        .await;
    assert_eq!(code(&stolen), "BAD_USER_INPUT", "{stolen}");
    let mut conn = runtime_conn(&app).await;
    let mut tx = begin_as(&mut conn, "plinth_user", bob.id).await;
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM ticket_attachments").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(seen, 0, "Bob's bare SELECT sees none of Ann's files");
    tx.rollback().await.unwrap();

    // A user cannot mark its upload internal.
    let r = app.gql(Some(&ann.access), RESERVE, reserve_input(&ticket, "x.pdf", "application/pdf", PDF, true)).await;
    assert_eq!(code(&r), "FORBIDDEN", "{r}");

    // Staff attach an internal PDF to a note: not in Ann's gauge, never in Ann's view.
    let note_file = attach_file(&app, &sam.access, &ticket, "ledger.pdf", "application/pdf", PDF, true).await;
    let n = app
        .gql(Some(&sam.access), "mutation($t: ID!, $a: [ID!]) { addInternalNote(ticketId: $t, body: \"see ledger\", attachmentIds: $a) { attachments { id internal } } }",
             json!({ "t": ticket, "a": [note_file] }))
        .await;
    assert_eq!(n["data"]["addInternalNote"]["attachments"][0]["internal"], true, "{n}");
    assert_eq!(storage_used(&app, &ann).await, image.len() as i64, "staff files are not the user's storage");
    let mine = app.gql(Some(&ann.access), FILES, json!({ "id": ticket })).await;
    assert!(!mine.to_string().contains("ledger"), "the internal file leaked: {mine}");
    let mut tx = begin_as(&mut conn, "plinth_user", ann.id).await;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT file_name FROM ticket_attachments").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(names, ["screen shot.png"], "a bare SELECT as the user never returns an internal file");
    let forged = sqlx::query("UPDATE ticket_attachments SET message_id = NULL WHERE internal")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(forged, 0);
    tx.rollback().await.unwrap();

    // Staff see both, with URLs; each URL handed out is in Ann's access log.
    let theirs = app.gql(Some(&sam.access), FILES, json!({ "id": ticket })).await;
    let urls: Vec<&str> = theirs["data"]["ticket"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["attachments"].as_array().unwrap().iter().map(|a| a["url"].as_str().unwrap()))
        .collect();
    assert_eq!(urls.len(), 2, "{theirs}");
    let pdf = app.http().get(urls[1]).send().await.unwrap();
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    assert_eq!(pdf.headers()["content-disposition"], "attachment; filename=\"ledger.pdf\"");
    let log = access_actions(&app, &ann).await;
    assert_eq!(log.iter().filter(|a| *a == "Sam:attachment.download").count(), 2, "{log:?}");
    assert!(log.contains(&"Sam:attachment.upload".to_owned()), "{log:?}");
}

/// Item 1: a type other than images and PDF, a file over the limit, bytes that are not
/// the declared type, a checksum that does not match, and the storage quota are each
/// refused with a code and the field at fault; nothing refused is kept.
#[tokio::test]
async fn wrong_type_oversize_fake_content_and_bad_checksums_are_refused() {
    let app = TestApp::builder()
        .with_env("PLINTH_SUPPORT_MAX_ATTACHMENT_BYTES", "2000")
        .with_free_plan_edits(&[("storage_bytes = 524288000", "storage_bytes = 1000")])
        .spawn()
        .await;
    let ann = app.register("ann").await;
    let ticket = open_ticket(&app, &ann, "Files").await;
    for (ct, n, field) in [
        ("image/gif", 10, "input.contentType"),
        ("text/html", 10, "input.contentType"),
        ("application/pdf", 2001, "input.byteSize"),
        ("application/pdf", 0, "input.byteSize"),
    ] {
        let r = app
            .gql(
                Some(&ann.access),
                RESERVE,
                json!({ "i": { "ticketId": ticket, "fileName": "f", "contentType": ct, "byteSize": n } }),
            )
            .await;
        assert_eq!(code(&r), "BAD_USER_INPUT", "{ct} {n}: {r}");
        assert_eq!(r["errors"][0]["extensions"]["field"], field, "{r}");
    }
    assert_eq!(app.count("ticket_attachments").await, 0);

    // HTML declared as a PDF, of the declared size: refused when confirmed, and gone.
    let fake = b"<html><script>alert(1)</script></html>".to_vec();
    let r = app
        .gql(Some(&ann.access), RESERVE, json!({ "i": { "ticketId": ticket, "fileName": "a.pdf", "contentType": "application/pdf", "byteSize": fake.len() } }))
        .await;
    let up = &r["data"]["createTicketAttachmentUpload"];
    let early = app.gql(Some(&ann.access), CONFIRM, json!({ "id": up["attachment"]["id"] })).await;
    assert_eq!(code(&early), "BAD_USER_INPUT", "nothing uploaded yet: {early}");
    assert!(app.put_upload(up, fake).await.status().is_success());
    let refused = app.gql(Some(&ann.access), CONFIRM, json!({ "id": up["attachment"]["id"] })).await;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("not a application/pdf"), "{refused}");
    // A pending file cannot be sent.
    let r = app
        .gql(
            Some(&ann.access),
            "mutation($t: ID!, $a: [ID!]) { replyTicket(ticketId: $t, body: \"x\", attachmentIds: $a) { id } }",
            json!({ "t": ticket, "a": [up["attachment"]["id"]] }),
        )
        .await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");

    // A declared checksum that the bytes do not have.
    let image = png(2, 2);
    let mut input = reserve_input(&ticket, "b.png", "image/png", &image, false);
    input["i"]["sha256"] = json!(hex::encode(Sha256::digest(b"something else")));
    let r = app.gql(Some(&ann.access), RESERVE, input).await;
    let up = &r["data"]["createTicketAttachmentUpload"];
    assert!(app.put_upload(up, image.clone()).await.status().is_success());
    let refused = app.gql(Some(&ann.access), CONFIRM, json!({ "id": up["attachment"]["id"] })).await;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("SHA-256"), "{refused}");
    let bad_sum = app
        .gql(Some(&ann.access), RESERVE, json!({ "i": { "ticketId": ticket, "fileName": "c.png", "contentType": "image/png", "byteSize": 10, "sha256": "xyz" } }))
        .await;
    assert_eq!(bad_sum["errors"][0]["extensions"]["field"], "input.sha256", "{bad_sum}");

    // The storage gauge: reservations count, and the plan's 1000 bytes are a ceiling.
    let used = storage_used(&app, &ann).await;
    let r = app
        .gql(Some(&ann.access), RESERVE, json!({ "i": { "ticketId": ticket, "fileName": "d.pdf", "contentType": "application/pdf", "byteSize": 1001 - used } }))
        .await;
    assert_eq!(code(&r), "QUOTA_EXCEEDED", "{r}");
    assert_eq!(r["errors"][0]["extensions"]["metric"], "STORAGE_BYTES", "{r}");
}

/// A reservation never confirmed is swept with its object: the gauge gives it back.
#[tokio::test]
async fn expired_attachment_reservations_are_swept() {
    let app = TestApp::builder().with_env("PLINTH_UPLOAD_SWEEP_SECS", "1").spawn().await;
    let ann = app.register("ann").await;
    let ticket = open_ticket(&app, &ann, "Files").await;
    let kept = attach_file(&app, &ann.access, &ticket, "kept.pdf", "application/pdf", PDF, false).await;
    let image = png(3, 3);
    let r = app.gql(Some(&ann.access), RESERVE, reserve_input(&ticket, "lost.png", "image/png", &image, false)).await;
    let up = r["data"]["createTicketAttachmentUpload"].clone();
    assert!(app.put_upload(&up, image.clone()).await.status().is_success());
    assert_eq!(storage_used(&app, &ann).await, (PDF.len() + image.len()) as i64);
    let id = up["attachment"]["id"].as_str().unwrap();
    let object = app.data_dir.join("objects").join(format!("u/{}/t/{id}", ann.id));
    assert!(object.exists());
    sqlx::query("UPDATE ticket_attachments SET created_at = now() - interval '31 minutes' WHERE status = 'pending'")
        .execute(&app.db)
        .await
        .unwrap();
    let swept = async {
        while app.count("ticket_attachments").await != 1 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), swept).await.expect("swept within 20 s");
    assert!(!object.exists(), "its object is deleted");
    assert_eq!(storage_used(&app, &ann).await, PDF.len() as i64);
    let left: Uuid = sqlx::query_scalar("SELECT id FROM ticket_attachments").fetch_one(&app.db).await.unwrap();
    assert_eq!(left.to_string(), kept, "a confirmed file is never swept");
}

/// Attachments on a real S3-compatible server: the sealed copy is served with its
/// checked type as a download.
#[tokio::test]
async fn attachments_on_s3() {
    let app = TestApp::builder().with_s3().spawn().await;
    let ann = app.register("ann").await;
    let ticket = open_ticket(&app, &ann, "Invoice").await;
    let file = attach_file(&app, &ann.access, &ticket, "invoice.pdf", "application/pdf", PDF, false).await;
    let r = app
        .gql(
            Some(&ann.access),
            "mutation($t: ID!, $a: [ID!]) { replyTicket(ticketId: $t, body: \"attached\", attachmentIds: $a) { attachments { url } } }",
            json!({ "t": ticket, "a": [file] }),
        )
        .await;
    let url = r["data"]["replyTicket"]["attachments"][0]["url"].as_str().unwrap_or_else(|| panic!("{r}"));
    let got = app.http().get(url).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-disposition"], "attachment; filename=\"invoice.pdf\"");
    assert_eq!(got.bytes().await.unwrap().as_ref(), PDF);
}

async fn login(app: &TestApp, user: &TestUser) -> Value {
    app.gql(
        None,
        "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
        json!({ "i": { "email": user.email, "password": user.password } }),
    )
    .await
}

/// Item 4: support finds an account by id only through a ticket or a live grant, never
/// by e-mail; admins find any by e-mail; the summary shows plan, usage, jobs and their
/// logs, notifications and e-mails; every read is in the user's access log.
#[tokio::test]
async fn staff_find_accounts_and_read_summaries_within_their_role() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let mut sam = app.register("sam").await;
    make_staff(&app, &mut sam, "support", "Sam").await;
    let mut ada = app.register("ada").await;
    make_staff(&app, &mut ada, "admin", "Ada").await;
    let draft = app.create_draft(&ann.access, "Boots").await;
    let job = app
        .gql(
            Some(&ann.access),
            "mutation($d: ID!) { createJob(input: {kind: SCAN, draftId: $d}) { id } }",
            json!({ "d": draft }),
        )
        .await;
    assert!(job["data"]["createJob"]["id"].is_string(), "{job}");
    let ticket = open_ticket(&app, &ann, "Scan stuck").await;

    let find = "query($id: ID!, $t: ID) { supportUser(id: $id, ticketId: $t) { id email role suspendedAt } }";
    let r = app.gql(Some(&sam.access), find, json!({ "id": ann.id, "t": ticket })).await;
    assert_eq!(r["data"]["supportUser"]["email"], ann.email.as_str(), "{r}");
    let r = app.gql(Some(&sam.access), find, json!({ "id": bob.id })).await;
    assert!(
        r["data"]["supportUser"].is_null() && r["errors"].is_null(),
        "support reads no account without a ticket: {r}"
    );
    let by_email = "query($e: String!) { supportUserByEmail(email: $e) { id } }";
    assert_eq!(code(&app.gql(Some(&sam.access), by_email, json!({ "e": bob.email })).await), "FORBIDDEN");
    let r = app.gql(Some(&ada.access), by_email, json!({ "e": bob.email.to_uppercase() })).await;
    assert_eq!(r["data"]["supportUserByEmail"]["id"], bob.id.to_string(), "{r}");

    let summary = "query($id: ID!, $t: ID) { supportAccountSummary(userId: $id, ticketId: $t) { plan accountState
        user { email } usage { metric used credit } storageBytes recentJobs { kind status logs { message } }
        invoices { status } notifications { kind } emailsSent { template status } } }";
    let r = app.gql(Some(&sam.access), summary, json!({ "id": ann.id, "t": ticket })).await;
    let s = &r["data"]["supportAccountSummary"];
    assert_eq!((s["plan"].as_str(), s["accountState"].as_str()), (Some("free"), Some("free")), "{r}");
    assert_eq!(s["recentJobs"][0]["kind"], "scan", "{r}");
    assert!(s["emailsSent"].as_array().unwrap().iter().any(|e| e["template"] == "verify_email"), "{r}");
    assert_eq!(code(&app.gql(Some(&sam.access), summary, json!({ "id": bob.id })).await), "NOT_FOUND");
    // With Bob's grant, support reads his account too.
    app.gql(Some(&bob.access), "mutation { grantSupportAccess(hours: 1) { id } }", json!({})).await;
    let r = app.gql(Some(&sam.access), summary, json!({ "id": bob.id })).await;
    assert_eq!(r["data"]["supportAccountSummary"]["user"]["email"], bob.email.as_str(), "{r}");

    let log = access_actions(&app, &ann).await;
    for entry in ["Sam:account.find", "Sam:account.summary"] {
        assert!(log.contains(&entry.to_owned()), "{entry} not in {log:?}");
    }
    assert!(access_actions(&app, &bob).await.contains(&"Ada:account.find".to_owned()));
}

/// Item 4: each tool does what it says, is refused to those who may not use it (admin
/// tools to support; every tool to users, workers and API tokens), and shows in the
/// user's activity log as done by support.
#[tokio::test]
async fn staff_tools_act_at_once_are_admin_only_when_destructive_and_show_as_support() {
    let app = TestApp::spawn().await;
    let mut ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let mut sam = app.register("sam").await;
    make_staff(&app, &mut sam, "support", "Sam").await;
    let mut ada = app.register("ada").await;
    make_staff(&app, &mut ada, "admin", "Ada").await;
    open_ticket(&app, &ann, "Help").await;
    let t = app
        .gql(
            Some(&ann.access),
            "mutation { createApiToken(input: {name: \"ci\", scopes: [\"drafts:read\"]}) { token } }",
            json!({}),
        )
        .await;
    let api_token = t["data"]["createApiToken"]["token"].as_str().unwrap_or_else(|| panic!("{t}")).to_owned();
    let worker = app.worker_token(&["scan"]);

    let resend = "mutation($u: ID!) { resendVerificationEmail(userId: $u) }";
    let credit = "mutation($u: ID!) { creditQuota(userId: $u, metric: SCANS, amount: 5, reason: \"goodwill\") }";
    let revoke = "mutation($u: ID!) { revokeUserSessions(userId: $u) }";
    let suspend =
        "mutation($u: ID!, $r: String!) { suspendUser(userId: $u, reason: $r) { suspendedAt suspensionReason } }";
    let unsuspend = "mutation($u: ID!) { unsuspendUser(userId: $u, reason: \"appeal accepted\") { suspendedAt } }";
    let tools = [
        ("query($u: ID!) { supportUser(id: $u) { id } }", false),
        ("query($u: ID!) { supportAccountSummary(userId: $u) { plan } }", false),
        ("query($u: String!) { supportUserByEmail(email: $u) { id } }", true),
        (resend, false),
        (credit, true),
        (revoke, true),
        ("mutation($u: ID!) { suspendUser(userId: $u, reason: \"x\") { id } }", true),
        (unsuspend, true),
    ];
    for (q, admin_only) in tools {
        let vars = if q.contains("String!) { supportUserByEmail") {
            json!({ "u": ann.email })
        } else {
            json!({ "u": ann.id })
        };
        for token in [&ann.access, &api_token, &worker] {
            assert_eq!(code(&app.gql(Some(token), q, vars.clone()).await), "FORBIDDEN", "{q}");
        }
        assert_eq!(code(&app.gql(None, q, vars.clone()).await), "UNAUTHENTICATED", "{q}");
        if admin_only {
            assert_eq!(code(&app.gql(Some(&sam.access), q, vars.clone()).await), "FORBIDDEN", "support: {q}");
        }
    }

    // Resend verification (support, through Ann's ticket): a new link is queued.
    let queued = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM email_outbox WHERE user_id = $1 AND template = 'verify_email'",
        )
        .bind(ann.id)
        .fetch_one(&app.db)
        .await
        .unwrap()
    };
    let before = queued().await;
    let r = app.gql(Some(&sam.access), resend, json!({ "u": ann.id })).await;
    assert_eq!(r["data"]["resendVerificationEmail"], true, "{r}");
    assert_eq!(queued().await, before + 1);
    assert_eq!(
        code(&app.gql(Some(&sam.access), resend, json!({ "u": bob.id })).await),
        "NOT_FOUND",
        "no ticket, no grant"
    );

    // A quota credit raises this period's limit.
    let scans = |token: String| {
        let app = &app;
        async move {
            let r = app.gql(Some(&token), "{ usage { metric limit } }", json!({})).await;
            r["data"]["usage"].as_array().unwrap().iter().find(|u| u["metric"] == "SCANS").unwrap()["limit"]
                .as_i64()
                .unwrap()
        }
    };
    let plan_limit = scans(ann.access.clone()).await;
    let r = app.gql(Some(&ada.access), credit, json!({ "u": ann.id })).await;
    assert_eq!(r["data"]["creditQuota"], 5, "{r}");
    assert_eq!(scans(ann.access.clone()).await, plan_limit + 5);
    let bad = app
        .gql(
            Some(&ada.access),
            "mutation($u: ID!) { creditQuota(userId: $u, metric: STORAGE_BYTES, amount: 5, reason: \"x\") }",
            json!({ "u": ann.id }),
        )
        .await;
    assert_eq!(bad["errors"][0]["extensions"]["field"], "metric", "{bad}");

    // Revoking sessions: Ann's socket closes 4403, her token and refresh token are refused.
    let mut ws = WsClient::connect(&app, Some(&ann.access)).await;
    ws.subscribe("1", FOLLOW, json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = app.gql(Some(&ada.access), revoke, json!({ "u": ann.id })).await;
    assert!(r["data"]["revokeUserSessions"].as_i64().unwrap_or(0) >= 1, "{r}");
    match ws.next(WAIT).await {
        WsEvent::Closed(c) => assert_eq!(c, 4403),
        other => panic!("expected the socket to close, got {other:?}"),
    }
    assert_eq!(
        code(&app.gql(Some(&ann.access), "{ tickets { edges { node { id } } } }", json!({})).await),
        "UNAUTHENTICATED"
    );
    let refresh = app
        .gql(
            None,
            "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }",
            json!({ "t": ann.refresh }),
        )
        .await;
    assert_eq!(code(&refresh), "UNAUTHENTICATED", "{refresh}");

    // Suspension: sign-in refused with the reason; lifted, sign-in works again.
    let r = app.gql(Some(&ada.access), suspend, json!({ "u": ann.id, "r": "chargeback fraud" })).await;
    assert_eq!(r["data"]["suspendUser"]["suspensionReason"], "chargeback fraud", "{r}");
    let refused = login(&app, &ann).await;
    assert_eq!(code(&refused), "ACCOUNT_SUSPENDED", "{refused}");
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("chargeback fraud"));
    let r = app.gql(Some(&ada.access), suspend, json!({ "u": ada.id, "r": "oops" })).await;
    assert_eq!(code(&r), "FORBIDDEN", "an admin does not suspend itself: {r}");
    let r = app.gql(Some(&ada.access), unsuspend, json!({ "u": ann.id })).await;
    assert!(r["data"]["unsuspendUser"]["suspendedAt"].is_null(), "{r}");
    let back = login(&app, &ann).await;
    ann.access = back["data"]["login"]["accessToken"].as_str().unwrap_or_else(|| panic!("{back}")).to_owned();

    // Ann's activity shows each step as done by support.
    assert_eq!(
        done_by_support(&app, &ann).await,
        [
            "support.unsuspend",
            "support.suspend",
            "support.revoke_sessions",
            "support.quota_credit",
            "support.resend_verification"
        ]
    );
    let log = access_actions(&app, &ann).await;
    assert!(
        log.contains(&"Ada:support.suspend".to_owned()) && log.contains(&"Sam:support.resend_verification".to_owned()),
        "{log:?}"
    );
}

/// The admin functions check their caller themselves: the support role cannot execute
/// them, and the admin role with a non-admin's id is refused.
#[tokio::test]
async fn admin_functions_refuse_anyone_but_a_signed_in_admin() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let mut conn = runtime_conn(&app).await;
    for (role, caller) in [("plinth_support", bob.id), ("plinth_admin", bob.id), ("plinth_user", ann.id)] {
        for sql in [
            "SELECT * FROM priv.admin_revoke_sessions($1)",
            "SELECT * FROM priv.admin_set_suspension($1, true, 'x')",
            "SELECT priv.admin_credit_quota($1, 'scans', now(), 5)",
            "SELECT * FROM priv.admin_set_role($1, 'admin')",
        ] {
            let mut tx = begin_as(&mut conn, role, caller).await;
            let r = sqlx::query(sql).bind(ann.id).execute(&mut *tx).await;
            assert!(r.is_err(), "{role} as a non-admin ran {sql}");
            tx.rollback().await.ok();
        }
    }
    let suspended: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT suspended_at FROM users WHERE id = $1")
            .bind(ann.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(suspended.is_none());
    let role: String =
        sqlx::query_scalar("SELECT role FROM users WHERE id = $1").bind(ann.id).fetch_one(&app.db).await.unwrap();
    assert_eq!(role, "user");
}

/// Item 5 (in-app part): a staff reply notifies the user at once, live over
/// `notificationAdded`; an internal note does not; the user's reply notifies the
/// ticket's assignee, live too. No e-mail is queued at once for either (a staff reply's
/// e-mail waits for the delay: see the next test).
#[tokio::test]
async fn replies_notify_the_other_side_in_the_app_at_once() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let mut sam = app.register("sam").await;
    make_staff(&app, &mut sam, "support", "Sam").await;
    let ticket = open_ticket(&app, &ann, "Scan stuck").await;
    let mut ws = WsClient::connect(&app, Some(&ann.access)).await;
    ws.subscribe("n", "subscription { notificationAdded { kind title } }", json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    app.gql(Some(&sam.access), NOTE, json!({ "t": ticket, "b": "internal only" })).await;
    let r = reply(&app, &sam.access, &ticket, "Restart it, please.").await;
    assert!(r["errors"].is_null(), "{r}");
    match ws.next(WAIT).await {
        WsEvent::Next(p) => assert_eq!(
            p["data"]["notificationAdded"],
            json!({ "kind": "support_reply", "title": "Support replied: Scan stuck" }),
            "the note notified nobody; the reply did: {p}"
        ),
        other => panic!("expected a notification, got {other:?}"),
    }
    let mails: i64 = sqlx::query_scalar("SELECT count(*) FROM email_outbox WHERE template = 'support_reply'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(mails, 0);

    // Assigned to Sam, Ann's reply notifies him, live on his socket.
    app.gql(
        Some(&sam.access),
        "mutation($t: ID!, $a: ID) { assignTicket(ticketId: $t, assigneeId: $a) { id } }",
        json!({ "t": ticket, "a": sam.id }),
    )
    .await;
    let mut sam_ws = WsClient::connect(&app, Some(&sam.access)).await;
    sam_ws.subscribe("n", "subscription { notificationAdded { kind title body } }", json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = reply(&app, &ann.access, &ticket, "Done, still stuck.").await;
    assert!(r["errors"].is_null(), "{r}");
    match sam_ws.next(WAIT).await {
        WsEvent::Next(p) => {
            let n = &p["data"]["notificationAdded"];
            assert_eq!(
                (n["kind"].as_str(), n["title"].as_str()),
                (Some("support_reply"), Some("The user replied: Scan stuck")),
                "{p}"
            );
            assert!(n["body"].as_str().unwrap().contains("Done, still stuck."), "{p}");
        }
        other => panic!("expected the assignee's notification, got {other:?}"),
    }
    let n = app.gql(Some(&sam.access), "{ notifications { kind title } }", json!({})).await;
    assert_eq!(
        n["data"]["notifications"],
        json!([{ "kind": "support_reply", "title": "The user replied: Scan stuck" }]),
        "{n}"
    );
}

/// The `support_reply` mails queued so far: (user, locale, link).
async fn reply_mails(app: &TestApp) -> Vec<(Uuid, String, String)> {
    sqlx::query_as(
        "SELECT user_id, locale, data->>'link' FROM email_outbox WHERE template = 'support_reply' ORDER BY created_at",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_staff_reply_is_mailed_once_only_when_its_notification_stays_unread_and_notes_never() {
    let app = TestApp::builder()
        .with_env("PLINTH_SUPPORT_REPLY_MAIL_DELAY_SECS", "2")
        .with_env("PLINTH_SUPPORT_REPLY_MAIL_SWEEP_SECS", "1")
        .with_env("PLINTH_PUBLIC_URL", "https://plinth.example")
        .spawn()
        .await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let mut sam = app.register("sam").await;
    make_staff(&app, &mut sam, "support", "Sam").await;
    let r = app.gql(Some(&ann.access), "mutation { updateProfile(input: { locale: EN }) { locale } }", json!({})).await;
    assert!(r["errors"].is_null(), "{r}");
    let ann_ticket = open_ticket(&app, &ann, "Scan stuck").await;
    let bob_ticket = open_ticket(&app, &bob, "Invoice").await;

    // Ann never reads; Bob reads at once; a note is never mailed.
    let r = app.gql(Some(&sam.access), NOTE, json!({ "t": ann_ticket, "b": "internal only" })).await;
    assert!(r["errors"].is_null(), "{r}");
    assert!(reply(&app, &sam.access, &ann_ticket, "Restart it.").await["errors"].is_null());
    assert!(reply(&app, &sam.access, &bob_ticket, "Refunded.").await["errors"].is_null());
    let r = app.gql(Some(&bob.access), "mutation { markNotificationsRead }", json!({})).await;
    assert_eq!(r["data"]["markNotificationsRead"], 1, "{r}");
    assert!(reply_mails(&app).await.is_empty(), "nothing before the delay");

    let deadline = Instant::now() + WAIT;
    while reply_mails(&app).await.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A few more sweeps: still one mail.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        reply_mails(&app).await,
        vec![(ann.id, "en".to_owned(), format!("https://plinth.example/support/tickets/{ann_ticket}"))]
    );
    let scheduled: Vec<(Uuid, bool)> =
        sqlx::query_as("SELECT user_id, mailed FROM support_reply_mails WHERE done_at IS NOT NULL ORDER BY mailed")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(scheduled, vec![(bob.id, false), (ann.id, true)], "two replies scheduled, the note not");

    // Racing claimers (two direct calls and the app's own sweeper): one mail in all.
    assert!(reply(&app, &sam.access, &ann_ticket, "Any news?").await["errors"].is_null());
    let claim = "SELECT count(*) FROM priv.support_reply_mails_due(now() + interval '1 hour', 10)";
    let (a, b) = tokio::join!(
        sqlx::query_scalar::<_, i64>(claim).fetch_one(&app.db),
        sqlx::query_scalar::<_, i64>(claim).fetch_one(&app.db)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let by_app = reply_mails(&app).await.len() as i64 - 1;
    assert_eq!(a.unwrap() + b.unwrap() + by_app, 1, "each reply claimed once");
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM support_reply_mails WHERE done_at IS NULL")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(pending, 0);
}

/// HMAC-SHA256 written out (RFC 2104), independent of the server's crate.
fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::digest([pad(0x36), message.to_vec()].concat());
    hex::encode(Sha256::digest([pad(0x5c), inner.to_vec()].concat()))
}

#[tokio::test]
async fn the_signed_in_user_carries_the_chat_widget_identity_hash_only_when_a_secret_is_set() {
    // RFC 4231, test case 2: the helper itself is right.
    assert_eq!(
        hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    let app = TestApp::builder().with_env("PLINTH_CHAT_IDENTITY_SECRET", "chat-s3cret").spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    for user in [&ann, &bob] {
        let r = app.gql(Some(&user.access), "{ me { id chatIdentityHash } }", json!({})).await;
        let want = hmac_sha256_hex(b"chat-s3cret", user.id.to_string().as_bytes());
        assert_eq!(r["data"]["me"]["chatIdentityHash"], want, "{r}");
    }
    // The sign-in's answer carries it too.
    let r = app
        .gql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { user { chatIdentityHash } } }",
            json!({ "i": { "email": ann.email, "password": ann.password } }),
        )
        .await;
    assert_eq!(
        r["data"]["login"]["user"]["chatIdentityHash"],
        hmac_sha256_hex(b"chat-s3cret", ann.id.to_string().as_bytes()),
        "{r}"
    );

    let plain = TestApp::spawn().await;
    let cat = plain.register("cat").await;
    let r = plain.gql(Some(&cat.access), "{ me { chatIdentityHash } }", json!({})).await;
    assert!(r["errors"].is_null(), "{r}");
    assert_eq!(r["data"]["me"]["chatIdentityHash"], Value::Null);
}

/// Item 4, extending a trial: admins only, audited at once (done by support); Stripe is
/// called after the request commits (never inside its transaction), with the request's
/// id as idempotency key, and Stripe's webhook then moves the account's trial end.
#[tokio::test]
async fn an_admin_extends_a_trial_through_stripe_after_the_commit_and_it_shows_as_support() {
    use crate::helpers::stripe::{event, subscription, FakeStripe};
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder().with_stripe(&stripe).with_env("PLINTH_SUPPORT_TRIAL_SWEEP_MS", "100").spawn().await;
    let mut ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let mut sam = app.register("sam").await;
    make_staff(&app, &mut sam, "support", "Sam").await;
    let mut ada = app.register("ada").await;
    make_staff(&app, &mut ada, "admin", "Ada").await;

    // Ann is on Pro's trial.
    let t = chrono::Utc::now().timestamp();
    let customer = app.subscribe_to_pro(&stripe, &mut ann, "sub_ann", "trialing", t).await;
    let trial_end = t + 14 * 86_400;

    let extend = "mutation($u: ID!, $d: Int!, $r: String!) { extendTrial(userId: $u, days: $d, reason: $r) {
        id days trialEnd status error } }";
    let vars = |user: Uuid, days: i32| json!({ "u": user, "d": days, "r": "Onboarding took a week" });
    let worker = app.worker_token(&["scan"]);
    for token in [&ann.access, &sam.access, &worker] {
        assert_eq!(code(&app.gql(Some(token), extend, vars(ann.id, 7)).await), "FORBIDDEN");
    }
    let r = app.gql(Some(&ada.access), extend, vars(ann.id, 0)).await;
    assert_eq!(r["errors"][0]["extensions"]["field"], "days", "{r}");
    let r = app.gql(Some(&ada.access), extend, vars(bob.id, 7)).await;
    assert_eq!(r["errors"][0]["extensions"]["field"], "userId", "no trial, nothing to extend: {r}");
    assert_eq!(app.count("support_trial_extensions").await, 0, "refusals leave nothing");
    assert!(stripe.requests_to("POST /v1/subscriptions/sub_ann").is_empty());

    let r = app.gql(Some(&ada.access), extend, vars(ann.id, 7)).await;
    let x = &r["data"]["extendTrial"];
    assert_eq!((x["days"].as_i64(), x["status"].as_str()), (Some(7), Some("PENDING")), "{r}");
    let wanted = trial_end + 7 * 86_400;
    let asked = chrono::DateTime::parse_from_rfc3339(x["trialEnd"].as_str().unwrap()).unwrap().timestamp();
    assert_eq!(asked, wanted);
    let id = x["id"].as_str().unwrap().to_owned();

    // Sent to Stripe after the commit, once, with the request's id as idempotency key.
    let summary = "query($u: ID!) { supportAccountSummary(userId: $u) { trialEnd trialExtensions { id status } } }";
    let deadline = Instant::now() + WAIT;
    loop {
        let s = app.gql(Some(&ada.access), summary, json!({ "u": ann.id })).await;
        if s["data"]["supportAccountSummary"]["trialExtensions"][0]["status"] == "DONE" {
            break;
        }
        assert!(Instant::now() < deadline, "the extension was not sent: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let calls = stripe.requests_to("POST /v1/subscriptions/sub_ann");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].get("trial_end"), Some(wanted.to_string().as_str()));
    assert_eq!(calls[0].get("proration_behavior"), Some("none"));
    assert_eq!(calls[0].idempotency_key.as_deref(), Some(format!("trial-extension-{id}").as_str()));

    // Stripe's webhook then moves the account's trial end.
    let mut sub = subscription("sub_ann", &customer, "trialing", "price_pro_monthly", t);
    sub["trial_end"] = json!(wanted);
    let changed = event("evt_sub_2", "customer.subscription.updated", t + 1, sub);
    assert_eq!(app.deliver_webhook(&changed).await, (200, "applied".into()));
    let s = app.gql(Some(&ada.access), summary, json!({ "u": ann.id })).await;
    let end = s["data"]["supportAccountSummary"]["trialEnd"].as_str().unwrap_or_else(|| panic!("{s}"));
    assert_eq!(chrono::DateTime::parse_from_rfc3339(end).unwrap().timestamp(), wanted, "{s}");

    // Audited: done by support in Ann's activity, and in her access log.
    assert_eq!(done_by_support(&app, &ann).await, ["support.extend_trial"]);
    assert!(access_actions(&app, &ann).await.contains(&"Ada:support.extend_trial".to_owned()));
}
