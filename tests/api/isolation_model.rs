//! Isolation, proven over the wire as a state machine: random interleavings of three
//! users' draft, marketplace-account, support-ticket (CSAT ratings included) and
//! data-export (GDPR) operations, and of a support agent's replies and internal notes,
//! each aimed at any object that
//! exists (so often another user's), checked against a model of who owns what. Every
//! answer must match the model, another user's object must behave exactly as if it did
//! not exist (NOT_FOUND, nothing changed), and after every step each user's whole view
//! — lists, lookups by id of every object, dashboard counts — must equal exactly their
//! part of the model. The support tables written behind the scenes are checked too, by
//! a bare `SELECT` as each user: its staff replies' delayed e-mails
//! (`support_reply_mails`) and its Chatwoot outbox rows (the bridge is on, pointed at an
//! address where nothing listens), never a row of an internal note.

use crate::helpers::{code, TestApp, TestUser};
use futures::future::join_all;
use proptest::{collection::vec, prelude::*, sample::Index, test_runner::TestCaseError};
use serde_json::{json, Map, Value};
use sqlx::{Connection, PgConnection};

/// Users per case.
const USERS: usize = 3;
/// The draft statuses, as the API spells them.
const STATUSES: [&str; 4] = ["DRAFT", "READY", "PUBLISHED", "ARCHIVED"];
/// An id no row has, aimed at when the model holds nothing to pick from.
const ABSENT: &str = "00000000-0000-7000-8000-000000000000";

const DRAFT_FIELDS: &str = "{ id title status }";
const ACCOUNT_FIELDS: &str = "{ id displayName status }";
const TICKET_FIELDS: &str = "{ id subject status messages { body } }";

/// One step: `user` acts; `draft`/`account` pick among ALL objects in the model,
/// whoever owns them.
#[derive(Clone, Debug)]
enum Op {
    CreateDraft {
        user: usize,
        title: String,
    },
    UpdateTitle {
        user: usize,
        draft: Index,
        title: String,
    },
    UpdateStatus {
        user: usize,
        draft: Index,
        status: &'static str,
    },
    DeleteDraft {
        user: usize,
        draft: Index,
    },
    RestoreDraft {
        user: usize,
        draft: Index,
    },
    ReadDraft {
        user: usize,
        draft: Index,
    },
    Connect {
        user: usize,
        name: String,
    },
    Rename {
        user: usize,
        account: Index,
        name: String,
    },
    Disconnect {
        user: usize,
        account: Index,
    },
    OpenTicket {
        user: usize,
        subject: String,
    },
    ReplyTicket {
        user: usize,
        ticket: Index,
        body: String,
    },
    CloseTicket {
        user: usize,
        ticket: Index,
    },
    ReopenTicket {
        user: usize,
        ticket: Index,
    },
    /// `submitCsat`: only the owner, of a closed ticket, once.
    RateTicket {
        user: usize,
        ticket: Index,
        score: i32,
    },
    /// `exportMyData`: the first request queues an export, later ones answer it (the
    /// builder is kept idle, so it stays in progress).
    RequestExport {
        user: usize,
    },
    /// The support agent replies to any ticket.
    StaffReply {
        ticket: Index,
        body: String,
    },
    /// The support agent adds an internal note to any ticket.
    StaffNote {
        ticket: Index,
        body: String,
    },
}

/// Valid titles and display names: no surrounding blanks, so the server's trimming
/// leaves them as they are.
fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{1,8}( [A-Za-z0-9]{1,8})?"
}

/// Deletes and restores are weighted up and creations down so that deleted drafts
/// exist and get aimed at, by their owner as well as by others: with even weights most
/// runs never had an owner act on their own deleted draft.
fn op_strategy() -> impl Strategy<Value = Op> {
    let user = 0..USERS;
    prop_oneof![
        2 => (user.clone(), name()).prop_map(|(user, title)| Op::CreateDraft { user, title }),
        1 => (user.clone(), any::<Index>(), name()).prop_map(|(user, draft, title)| Op::UpdateTitle { user, draft, title }),
        1 => (user.clone(), any::<Index>(), prop::sample::select(&STATUSES[..]))
            .prop_map(|(user, draft, status)| Op::UpdateStatus { user, draft, status }),
        3 => (user.clone(), any::<Index>()).prop_map(|(user, draft)| Op::DeleteDraft { user, draft }),
        3 => (user.clone(), any::<Index>()).prop_map(|(user, draft)| Op::RestoreDraft { user, draft }),
        1 => (user.clone(), any::<Index>()).prop_map(|(user, draft)| Op::ReadDraft { user, draft }),
        1 => (user.clone(), name()).prop_map(|(user, name)| Op::Connect { user, name }),
        2 => (user.clone(), any::<Index>(), name()).prop_map(|(user, account, name)| Op::Rename { user, account, name }),
        3 => (user.clone(), any::<Index>()).prop_map(|(user, account)| Op::Disconnect { user, account }),
        1 => (user.clone(), name()).prop_map(|(user, subject)| Op::OpenTicket { user, subject }),
        2 => (user.clone(), any::<Index>(), name()).prop_map(|(user, ticket, body)| Op::ReplyTicket { user, ticket, body }),
        1 => (user.clone(), any::<Index>()).prop_map(|(user, ticket)| Op::CloseTicket { user, ticket }),
        1 => (user.clone(), any::<Index>()).prop_map(|(user, ticket)| Op::ReopenTicket { user, ticket }),
        1 => (user.clone(), any::<Index>(), 1..=5).prop_map(|(user, ticket, score)| Op::RateTicket { user, ticket, score }),
        1 => user.prop_map(|user| Op::RequestExport { user }),
        2 => (any::<Index>(), name()).prop_map(|(ticket, body)| Op::StaffReply { ticket, body }),
        1 => (any::<Index>(), name()).prop_map(|(ticket, body)| Op::StaffNote { ticket, body }),
    ]
}

#[derive(Clone, Debug)]
struct DraftRec {
    id: String,
    owner: usize,
    title: String,
    status: &'static str,
    deleted: bool,
}

impl DraftRec {
    fn json(&self) -> Value {
        json!({ "id": self.id, "title": self.title, "status": self.status })
    }
}

#[derive(Clone, Debug)]
struct AccountRec {
    id: String,
    owner: usize,
    name: String,
    status: &'static str,
}

impl AccountRec {
    fn json(&self) -> Value {
        json!({ "id": self.id, "displayName": self.name, "status": self.status })
    }
}

#[derive(Clone, Debug)]
struct TicketRec {
    id: String,
    owner: usize,
    subject: String,
    /// `OPEN`, `PENDING` (support answered) or `CLOSED`.
    status: &'static str,
    /// What the owner reads: its messages and support's replies, never a note.
    messages: Vec<String>,
    /// The ids of support's replies (each schedules a delayed e-mail).
    staff_replies: Vec<String>,
    /// Chatwoot outbox rows the owner may read: one per message it may read and per
    /// status change it made (a note's row is hidden from it).
    outbox: usize,
    /// Its owner's CSAT score, once given.
    rating: Option<i32>,
}

impl TicketRec {
    fn json(&self) -> Value {
        let messages: Vec<Value> = self.messages.iter().map(|b| json!({ "body": b })).collect();
        json!({ "id": self.id, "subject": self.subject, "status": self.status, "messages": messages })
    }

    fn closed(&self) -> bool {
        self.status == "CLOSED"
    }
}

/// Every object, in creation order, with its owner: a user's part is the rows it owns.
#[derive(Default)]
struct Model {
    drafts: Vec<DraftRec>,
    accounts: Vec<AccountRec>,
    tickets: Vec<TicketRec>,
    /// Each user's export in progress, by user.
    exports: [Option<String>; USERS],
}

impl Model {
    fn pick_ticket(&self, i: &Index) -> Option<usize> {
        (!self.tickets.is_empty()).then(|| i.index(self.tickets.len()))
    }

    fn ticket_id(&self, t: Option<usize>) -> String {
        t.map_or_else(|| ABSENT.to_owned(), |t| self.tickets[t].id.clone())
    }

    fn describe_ticket(&self, t: Option<usize>) -> String {
        match t {
            None => format!("absent ticket {ABSENT}"),
            Some(t) => {
                let k = &self.tickets[t];
                format!("ticket #{t} {} of u{} ({}, {} messages)", k.id, k.owner, k.status, k.messages.len())
            }
        }
    }

    fn pick_draft(&self, i: &Index) -> Option<usize> {
        (!self.drafts.is_empty()).then(|| i.index(self.drafts.len()))
    }

    fn pick_account(&self, i: &Index) -> Option<usize> {
        (!self.accounts.is_empty()).then(|| i.index(self.accounts.len()))
    }

    fn draft_id(&self, t: Option<usize>) -> String {
        t.map_or_else(|| ABSENT.to_owned(), |t| self.drafts[t].id.clone())
    }

    fn account_id(&self, t: Option<usize>) -> String {
        t.map_or_else(|| ABSENT.to_owned(), |t| self.accounts[t].id.clone())
    }

    fn describe_draft(&self, t: Option<usize>) -> String {
        match t {
            None => format!("absent draft {ABSENT}"),
            Some(t) => {
                let d = &self.drafts[t];
                format!(
                    "draft #{t} {} of u{} ({:?}, {}, {})",
                    d.id,
                    d.owner,
                    d.title,
                    d.status,
                    if d.deleted { "deleted" } else { "live" }
                )
            }
        }
    }

    fn describe_account(&self, t: Option<usize>) -> String {
        match t {
            None => format!("absent account {ABSENT}"),
            Some(t) => {
                let a = &self.accounts[t];
                format!("account #{t} {} of u{} ({:?}, {})", a.id, a.owner, a.name, a.status)
            }
        }
    }
}

/// The successful answer `field` of `r`, which must equal `expected`.
fn expect_data(r: &Value, field: &str, expected: &Value) -> Result<(), String> {
    if r.get("errors").is_some() || r["data"][field] != *expected {
        return Err(format!("expected {field} = {expected}, the server answered {r}"));
    }
    Ok(())
}

/// The operation must be refused as if the object did not exist.
fn expect_not_found(r: &Value) -> Result<(), String> {
    if code(r) != "NOT_FOUND" || !r["data"].is_null() {
        return Err(format!("expected NOT_FOUND and no data, the server answered {r}"));
    }
    Ok(())
}

/// What `op` is aimed at, resolved in the model as it stands before the step.
fn aim(model: &Model, op: &Op) -> String {
    match op {
        Op::CreateDraft { .. } => "a new draft".into(),
        Op::Connect { .. } => "a new account".into(),
        Op::RequestExport { .. } => "the user's export".into(),
        Op::UpdateTitle { draft, .. }
        | Op::UpdateStatus { draft, .. }
        | Op::DeleteDraft { draft, .. }
        | Op::RestoreDraft { draft, .. }
        | Op::ReadDraft { draft, .. } => model.describe_draft(model.pick_draft(draft)),
        Op::Rename { account, .. } | Op::Disconnect { account, .. } => {
            model.describe_account(model.pick_account(account))
        }
        Op::OpenTicket { .. } => "a new ticket".into(),
        Op::ReplyTicket { ticket, .. }
        | Op::CloseTicket { ticket, .. }
        | Op::ReopenTicket { ticket, .. }
        | Op::RateTicket { ticket, .. }
        | Op::StaffReply { ticket, .. }
        | Op::StaffNote { ticket, .. } => model.describe_ticket(model.pick_ticket(ticket)),
    }
}

/// Runs `op` against the server and the model, checking the server's answer. The last
/// of `users` is the support agent.
async fn apply(app: &TestApp, users: &[TestUser], model: &mut Model, op: &Op) -> Result<(), String> {
    let gql = |user: usize, query: &'static str, vars: Value| app.gql(Some(&users[user].access), query, vars);
    let staff = users.len() - 1;
    match op {
        Op::CreateDraft { user, title } => {
            let r = gql(
                *user,
                "mutation($i: CreateDraftInput!) { createDraft(input: $i) { id title status } }",
                json!({ "i": { "title": title } }),
            )
            .await;
            let Some(id) = r["data"]["createDraft"]["id"].as_str() else {
                return Err(format!("createDraft failed: {r}"));
            };
            let rec =
                DraftRec { id: id.to_owned(), owner: *user, title: title.clone(), status: "DRAFT", deleted: false };
            expect_data(&r, "createDraft", &rec.json())?;
            model.drafts.push(rec);
            Ok(())
        }
        Op::UpdateTitle { user, draft, .. } | Op::UpdateStatus { user, draft, .. } => {
            let t = model.pick_draft(draft);
            let input = match op {
                Op::UpdateTitle { title, .. } => json!({ "title": title }),
                Op::UpdateStatus { status, .. } => json!({ "status": status }),
                _ => unreachable!(),
            };
            let r = gql(
                *user,
                "mutation($id: ID!, $i: UpdateDraftInput!) { updateDraft(id: $id, input: $i) { id title status } }",
                json!({ "id": model.draft_id(t), "i": input }),
            )
            .await;
            match t.filter(|&t| model.drafts[t].owner == *user && !model.drafts[t].deleted) {
                Some(t) => {
                    let d = &mut model.drafts[t];
                    match op {
                        Op::UpdateTitle { title, .. } => d.title = title.clone(),
                        Op::UpdateStatus { status, .. } => d.status = status,
                        _ => unreachable!(),
                    }
                    expect_data(&r, "updateDraft", &d.json())?;
                }
                None => expect_not_found(&r)?,
            }
            Ok(())
        }
        Op::DeleteDraft { user, draft } => {
            let t = model.pick_draft(draft);
            let r = gql(*user, "mutation($id: ID!) { deleteDraft(id: $id) }", json!({ "id": model.draft_id(t) })).await;
            match t.filter(|&t| model.drafts[t].owner == *user && !model.drafts[t].deleted) {
                Some(t) => {
                    expect_data(&r, "deleteDraft", &json!(true))?;
                    model.drafts[t].deleted = true;
                }
                None => expect_not_found(&r)?,
            }
            Ok(())
        }
        Op::RestoreDraft { user, draft } => {
            let t = model.pick_draft(draft);
            let r = gql(
                *user,
                "mutation($id: ID!) { restoreDraft(id: $id) { id title status } }",
                json!({ "id": model.draft_id(t) }),
            )
            .await;
            match t.filter(|&t| model.drafts[t].owner == *user && model.drafts[t].deleted) {
                Some(t) => {
                    model.drafts[t].deleted = false;
                    expect_data(&r, "restoreDraft", &model.drafts[t].json())?;
                }
                None => expect_not_found(&r)?,
            }
            Ok(())
        }
        Op::ReadDraft { user, draft } => {
            let t = model.pick_draft(draft);
            let r = gql(
                *user,
                "query($id: ID!) { draft(id: $id) { id title status } }",
                json!({ "id": model.draft_id(t) }),
            )
            .await;
            let expected = match t.filter(|&t| model.drafts[t].owner == *user && !model.drafts[t].deleted) {
                Some(t) => model.drafts[t].json(),
                None => Value::Null,
            };
            expect_data(&r, "draft", &expected)?;
            Ok(())
        }
        Op::Connect { user, name } => {
            let r = gql(
                *user,
                "mutation($i: ConnectMarketplaceAccountInput!) { connectMarketplaceAccount(input: $i) { id displayName status } }",
                json!({ "i": { "platform": "VINTED", "displayName": name, "credentials": { "token": "x" } } }),
            )
            .await;
            let Some(id) = r["data"]["connectMarketplaceAccount"]["id"].as_str() else {
                return Err(format!("connectMarketplaceAccount failed: {r}"));
            };
            let rec = AccountRec { id: id.to_owned(), owner: *user, name: name.clone(), status: "CONNECTED" };
            expect_data(&r, "connectMarketplaceAccount", &rec.json())?;
            model.accounts.push(rec);
            Ok(())
        }
        Op::Rename { user, account, name } => {
            let t = model.pick_account(account);
            let r = gql(
                *user,
                "mutation($id: ID!, $n: String!) { renameMarketplaceAccount(id: $id, displayName: $n) { id displayName status } }",
                json!({ "id": model.account_id(t), "n": name }),
            )
            .await;
            // A disconnected account keeps its row, and its owner may still rename it.
            match t.filter(|&t| model.accounts[t].owner == *user) {
                Some(t) => {
                    model.accounts[t].name = name.clone();
                    expect_data(&r, "renameMarketplaceAccount", &model.accounts[t].json())?;
                }
                None => expect_not_found(&r)?,
            }
            Ok(())
        }
        Op::RequestExport { user } => {
            let r = gql(*user, "mutation { exportMyData { id status } }", json!({})).await;
            let Some(id) = r["data"]["exportMyData"]["id"].as_str() else {
                return Err(format!("exportMyData failed: {r}"));
            };
            match &model.exports[*user] {
                Some(known) if known != id => {
                    return Err(format!("a second request answered another export {id}, not {known}"))
                }
                Some(_) => {}
                None => {
                    if model.exports.iter().flatten().any(|other| other == id) {
                        return Err(format!("the new export {id} is another user's"));
                    }
                    model.exports[*user] = Some(id.to_owned());
                }
            }
            expect_data(&r, "exportMyData", &json!({ "id": id, "status": "PENDING" }))
        }
        Op::Disconnect { user, account } => {
            let t = model.pick_account(account);
            let r = gql(
                *user,
                "mutation($id: ID!) { disconnectMarketplaceAccount(id: $id) { id displayName status } }",
                json!({ "id": model.account_id(t) }),
            )
            .await;
            // Disconnecting is idempotent for the owner.
            match t.filter(|&t| model.accounts[t].owner == *user) {
                Some(t) => {
                    model.accounts[t].status = "DISCONNECTED";
                    expect_data(&r, "disconnectMarketplaceAccount", &model.accounts[t].json())?;
                }
                None => expect_not_found(&r)?,
            }
            Ok(())
        }
        Op::OpenTicket { user, subject } => {
            let r = gql(
                *user,
                "mutation($i: OpenTicketInput!) { openTicket(input: $i) { id subject status messages { body } } }",
                json!({ "i": { "subject": subject, "category": "OTHER", "body": subject } }),
            )
            .await;
            let Some(id) = r["data"]["openTicket"]["id"].as_str() else {
                return Err(format!("openTicket failed: {r}"));
            };
            let rec = TicketRec {
                id: id.to_owned(),
                owner: *user,
                subject: subject.clone(),
                status: "OPEN",
                messages: vec![subject.clone()],
                staff_replies: Vec::new(),
                outbox: 1,
                rating: None,
            };
            expect_data(&r, "openTicket", &rec.json())?;
            model.tickets.push(rec);
            Ok(())
        }
        Op::ReplyTicket { user, ticket, body } => {
            let t = model.pick_ticket(ticket);
            let r = gql(
                *user,
                "mutation($t: ID!, $b: String!) { replyTicket(ticketId: $t, body: $b) { body } }",
                json!({ "t": model.ticket_id(t), "b": body }),
            )
            .await;
            match t.filter(|&t| model.tickets[t].owner == *user) {
                Some(t) if model.tickets[t].closed() => {
                    if crate::helpers::code(&r) != "BAD_USER_INPUT" {
                        return Err(format!("expected BAD_USER_INPUT (closed), the server answered {r}"));
                    }
                }
                Some(t) => {
                    let k = &mut model.tickets[t];
                    k.messages.push(body.clone());
                    k.outbox += 1;
                    k.status = "OPEN";
                    expect_data(&r, "replyTicket", &json!({ "body": body }))?;
                }
                None => expect_not_found(&r)?,
            }
            Ok(())
        }
        Op::StaffReply { ticket, body } | Op::StaffNote { ticket, body } => {
            let t = model.pick_ticket(ticket);
            let note = matches!(op, Op::StaffNote { .. });
            let (field, query) = if note {
                (
                    "addInternalNote",
                    "mutation($t: ID!, $b: String!) { addInternalNote(ticketId: $t, body: $b) { id body } }",
                )
            } else {
                ("replyTicket", "mutation($t: ID!, $b: String!) { replyTicket(ticketId: $t, body: $b) { id body } }")
            };
            let r = gql(staff, query, json!({ "t": model.ticket_id(t), "b": body })).await;
            match t {
                None => expect_not_found(&r)?,
                Some(t) if model.tickets[t].closed() && !note => {
                    if crate::helpers::code(&r) != "BAD_USER_INPUT" {
                        return Err(format!("expected BAD_USER_INPUT (closed), the server answered {r}"));
                    }
                }
                Some(t) => {
                    let Some(id) = r["data"][field]["id"].as_str() else {
                        return Err(format!("{field} by support failed: {r}"));
                    };
                    let k = &mut model.tickets[t];
                    if !note {
                        k.messages.push(body.clone());
                        k.staff_replies.push(id.to_owned());
                        k.outbox += 1;
                        if k.status == "OPEN" {
                            k.status = "PENDING";
                        }
                    }
                    expect_data(&r, field, &json!({ "id": id, "body": body }))?;
                }
            }
            Ok(())
        }
        Op::CloseTicket { user, ticket } | Op::ReopenTicket { user, ticket } => {
            let t = model.pick_ticket(ticket);
            let (field, query) = match op {
                Op::CloseTicket { .. } => (
                    "closeTicket",
                    "mutation($id: ID!) { closeTicket(id: $id) { id subject status messages { body } } }",
                ),
                _ => (
                    "reopenTicket",
                    "mutation($id: ID!) { reopenTicket(id: $id) { id subject status messages { body } } }",
                ),
            };
            let r = gql(*user, query, json!({ "id": model.ticket_id(t) })).await;
            match t.filter(|&t| model.tickets[t].owner == *user) {
                Some(t) => {
                    let k = &mut model.tickets[t];
                    // Closing a closed ticket, or reopening an open one, changes nothing.
                    let status = match op {
                        Op::CloseTicket { .. } => "CLOSED",
                        _ if k.closed() => "OPEN",
                        _ => k.status,
                    };
                    if status != k.status {
                        k.outbox += 1;
                    }
                    k.status = status;
                    expect_data(&r, field, &k.json())?;
                }
                None => expect_not_found(&r)?,
            }
            Ok(())
        }
        Op::RateTicket { user, ticket, score } => {
            let t = model.pick_ticket(ticket);
            let r = gql(
                *user,
                "mutation($t: ID!, $s: Int!) { submitCsat(input: {ticketId: $t, score: $s}) { score } }",
                json!({ "t": model.ticket_id(t), "s": score }),
            )
            .await;
            match t.filter(|&t| model.tickets[t].owner == *user) {
                Some(t) if !model.tickets[t].closed() || model.tickets[t].rating.is_some() => {
                    if code(&r) != "CONFLICT" {
                        return Err(format!("expected CONFLICT (open or rated), the server answered {r}"));
                    }
                }
                Some(t) => {
                    model.tickets[t].rating = Some(*score);
                    expect_data(&r, "submitCsat", &json!({ "score": score }))?;
                }
                None => expect_not_found(&r)?,
            }
            Ok(())
        }
    }
}

/// One user's view query, and what each of its top-level fields must be:
/// (field, description, expected value).
fn view_of(model: &Model, u: usize) -> (String, Vec<(String, String, Value)>) {
    let mut query = format!(
        "{{ drafts(first: 100) {{ edges {{ node {DRAFT_FIELDS} }} pageInfo {{ hasNextPage }} }}
           marketplaceAccounts {ACCOUNT_FIELDS}
           tickets(first: 100) {{ edges {{ node {TICKET_FIELDS} }} }}
           dashboard {{ drafts {{ draft ready published archived total }} connectedAccounts }}
           dataExports {{ id status }}"
    );
    let mut expected: Vec<(String, String, Value)> = Vec::new();

    // Newest first: the model keeps creation order, and restoring keeps a draft's place.
    let live: Vec<&DraftRec> = model.drafts.iter().rev().filter(|d| d.owner == u && !d.deleted).collect();
    let edges: Vec<Value> = live.iter().take(100).map(|d| json!({ "node": d.json() })).collect();
    expected.push((
        "drafts".into(),
        "drafts(first: 100)".into(),
        json!({ "edges": edges, "pageInfo": { "hasNextPage": live.len() > 100 } }),
    ));
    // Oldest first, disconnected ones included.
    let accounts: Vec<Value> = model.accounts.iter().filter(|a| a.owner == u).map(AccountRec::json).collect();
    expected.push(("marketplaceAccounts".into(), "marketplaceAccounts".into(), Value::Array(accounts)));
    let count = |s: &str| live.iter().filter(|d| d.status == s).count();
    let connected = model.accounts.iter().filter(|a| a.owner == u && a.status == "CONNECTED").count();
    expected.push((
        "dashboard".into(),
        "dashboard".into(),
        json!({
            "drafts": {
                "draft": count("DRAFT"), "ready": count("READY"), "published": count("PUBLISHED"),
                "archived": count("ARCHIVED"), "total": live.len(),
            },
            "connectedAccounts": connected,
        }),
    ));

    // Newest first.
    let tickets: Vec<Value> =
        model.tickets.iter().rev().filter(|t| t.owner == u).map(|t| json!({ "node": t.json() })).collect();
    expected.push(("tickets".into(), "tickets(first: 100)".into(), json!({ "edges": tickets })));
    for (i, t) in model.tickets.iter().enumerate() {
        query.push_str(&format!(" t{i}: ticket(id: \"{}\") {TICKET_FIELDS}", t.id));
        let want = if t.owner == u { t.json() } else { Value::Null };
        expected.push((format!("t{i}"), format!("ticket(id) of {}", model.describe_ticket(Some(i))), want));
    }
    let exports: Vec<Value> = model.exports[u].iter().map(|id| json!({ "id": id, "status": "PENDING" })).collect();
    expected.push(("dataExports".into(), "dataExports".into(), Value::Array(exports)));

    for (i, d) in model.drafts.iter().enumerate() {
        query.push_str(&format!(" d{i}: draft(id: \"{}\") {DRAFT_FIELDS}", d.id));
        let want = if d.owner == u && !d.deleted { d.json() } else { Value::Null };
        expected.push((format!("d{i}"), format!("draft(id) of {}", model.describe_draft(Some(i))), want));
    }
    for (i, a) in model.accounts.iter().enumerate() {
        query.push_str(&format!(" a{i}: marketplaceAccount(id: \"{}\") {ACCOUNT_FIELDS}", a.id));
        let want = if a.owner == u { a.json() } else { Value::Null };
        expected.push((
            format!("a{i}"),
            format!("marketplaceAccount(id) of {}", model.describe_account(Some(i))),
            want,
        ));
    }
    query.push('}');
    (query, expected)
}

/// Compares every user's whole view with their part of the model: the drafts list
/// (newest first), the accounts list (oldest first), `draft(id)` and
/// `marketplaceAccount(id)` of EVERY object in the model (null unless theirs and live),
/// and the dashboard's counts. One request per user, the three at once.
async fn check_views(app: &TestApp, users: &[TestUser], model: &Model) -> Result<(), String> {
    let views: Vec<_> = (0..users.len()).map(|u| view_of(model, u)).collect();
    let answers =
        join_all(views.iter().zip(users).map(|((query, _), user)| app.gql(Some(&user.access), query, json!({})))).await;
    let mut problems = Vec::new();
    for (u, ((_, expected), r)) in views.into_iter().zip(answers).enumerate() {
        if r.get("errors").is_some() {
            problems.push(format!("u{u}'s view query failed: {r}"));
            continue;
        }
        let data = r["data"].as_object().cloned().unwrap_or_else(Map::new);
        for (key, what, want) in expected {
            let got = data.get(&key).unwrap_or(&Value::Null);
            if *got != want {
                problems.push(format!("u{u}'s {what}:\n    expected {want}\n    got      {got}"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n  "))
    }
}

/// Each user's rows of the tables written behind the scenes, by a bare `SELECT` as the
/// runtime role switched to that user: exactly its tickets' staff replies' scheduled
/// e-mails, and exactly its Chatwoot outbox rows (none of another's, none of a note).
async fn check_tables(conn: &mut PgConnection, users: &[TestUser], model: &Model) -> Result<(), String> {
    let mut problems = Vec::new();
    for (u, user) in users.iter().enumerate().take(USERS) {
        let mut tx = conn.begin().await.map_err(|e| e.to_string())?;
        sqlx::query("SELECT set_config('role', 'plinth_user', true), set_config('plinth.user_id', $1, true)")
            .bind(user.id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
        let mine: Vec<&TicketRec> = model.tickets.iter().filter(|t| t.owner == u).collect();
        let mut want_mails: Vec<String> = mine.iter().flat_map(|t| t.staff_replies.clone()).collect();
        want_mails.sort();
        let mut mails: Vec<String> = sqlx::query_scalar("SELECT message_id::text FROM support_reply_mails")
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
        mails.sort();
        if mails != want_mails {
            problems.push(format!("u{u}'s support_reply_mails: expected {want_mails:?}, got {mails:?}"));
        }
        let outbox: Vec<String> = sqlx::query_scalar("SELECT ticket_id::text FROM chatwoot_outbox")
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
        let want: usize = mine.iter().map(|t| t.outbox).sum();
        if outbox.len() != want || outbox.iter().any(|t| !mine.iter().any(|m| m.id == *t)) {
            problems.push(format!("u{u}'s chatwoot_outbox: expected {want} rows of its tickets, got {outbox:?}"));
        }
        tx.rollback().await.map_err(|e| e.to_string())?;
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n  "))
    }
}

async fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    // The export builder idles: requested exports stay in progress. The Chatwoot bridge
    // is on, towards a port where nothing listens: its outbox rows stay pending.
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let app = TestApp::builder()
        .with_unlimited_free_plan()
        .with_env("PLINTH_SUPPORT_MAX_OPEN_TICKETS", "1000")
        .with_env("PLINTH_SUPPORT_MESSAGES_PER_HOUR", "1000")
        .with_env("PLINTH_ACCOUNT_SWEEP_SECS", "3600")
        .with_chatwoot_at(&format!("http://{nowhere}"))
        .spawn()
        .await;
    let mut users = Vec::with_capacity(USERS + 1);
    for name in ["ann", "bob", "cat", "sam"] {
        users.push(app.register(name).await);
    }
    crate::support::make_staff(&app, &mut users[USERS], "support", "Sam").await;
    let mut conn = crate::support::runtime_conn(&app).await;
    let mut model = Model::default();
    check_views(&app, &users[..USERS], &model)
        .await
        .map_err(|e| TestCaseError::fail(format!("before any step:\n  {e}")))?;
    for (step, op) in ops.iter().enumerate() {
        let aimed = aim(&model, op);
        apply(&app, &users, &mut model, op).await.map_err(|e| {
            TestCaseError::fail(format!("step {step} {op:?}, aimed at {aimed}, answered wrongly:\n  {e}"))
        })?;
        check_views(&app, &users[..USERS], &model).await.map_err(|e| {
            TestCaseError::fail(format!("views diverged after step {step} {op:?}, aimed at {aimed}:\n  {e}"))
        })?;
        check_tables(&mut conn, &users, &model).await.map_err(|e| {
            TestCaseError::fail(format!("tables diverged after step {step} {op:?}, aimed at {aimed}:\n  {e}"))
        })?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(20),
        // Each case starts a server: keep shrinking bounded and write no regression files.
        max_shrink_iters: 256,
        max_shrink_time: 120_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Whatever three users do to whatever exists, each one sees exactly their own data.
    #[test]
    fn every_user_sees_exactly_their_own_data(ops in vec(op_strategy(), 1..64)) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(run(&ops))?;
    }
}
