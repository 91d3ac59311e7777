//! Isolation, swept over the wire: the schema is read by introspection, and every
//! Query and Mutation field that takes an `ID` (as an argument, or inside an input
//! object) is called by another user and anonymously with each of one user's ids —
//! ids found in the catalog's tenant tables, not listed here. Every answer must be
//! null, indistinguishable from an answer about an id that does not exist, and the
//! owner's rows must be unchanged. A field added later is swept without editing this
//! file.

use crate::helpers::{png, TestApp, TestUser};
use futures::StreamExt;
use serde_json::{json, Map, Value};
use sqlx::Row;
use std::{
    collections::{BTreeMap, HashMap},
    time::Instant,
};
use uuid::Uuid;

const INTROSPECTION: &str = r"
query Introspect {
  __schema {
    queryType { name }
    mutationType { name }
    types {
      kind
      name
      fields(includeDeprecated: true) { name args { name type { ...T } } type { ...T } }
      inputFields { name type { ...T } }
      enumValues(includeDeprecated: true) { name }
    }
  }
}
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }";

/// Tables excluded from the before/after comparison: they change on their own (a
/// session's last use) or are appended to by design.
const UNSNAPSHOTTED: &[&str] = &["activity_log", "sessions", "refresh_tokens"];

/// How many candidate values an argument is tried with before giving up.
const MAX_PICKS: usize = 8;

/// The introspected types, by name.
struct Schema {
    types: HashMap<String, Value>,
}

impl Schema {
    fn ty(&self, name: &str) -> &Value {
        self.types.get(name).unwrap_or_else(|| panic!("type {name} is not in the introspection"))
    }
}

/// The innermost type of a reference (through NON_NULL and LIST).
fn named(t: &Value) -> &Value {
    let mut t = t;
    while t["ofType"].is_object() {
        t = &t["ofType"];
    }
    t
}

fn kind(t: &Value) -> &str {
    t["kind"].as_str().unwrap_or("")
}

fn name(t: &Value) -> &str {
    t["name"].as_str().unwrap_or("")
}

fn non_null(t: &Value) -> bool {
    kind(t) == "NON_NULL"
}

/// The reference as GraphQL spells it, e.g. `[ID!]!`.
fn type_string(t: &Value) -> String {
    match kind(t) {
        "NON_NULL" => format!("{}!", type_string(&t["ofType"])),
        "LIST" => format!("[{}]", type_string(&t["ofType"])),
        _ => name(t).to_owned(),
    }
}

/// `v` wrapped in one-element lists as the reference's list levels require.
fn wrap(t: &Value, v: Value) -> Value {
    match kind(t) {
        "NON_NULL" => wrap(&t["ofType"], v),
        "LIST" => json!([wrap(&t["ofType"], v)]),
        _ => v,
    }
}

/// Values tried for a scalar, first to last when the server refuses one.
fn scalar_candidates(scalar: &str) -> Vec<Value> {
    match scalar {
        "String" => vec![
            json!("x"),
            json!("image/png"),
            json!("someone@example.com"),
            json!("correct horse battery staple"),
            json!("https://example.com/x"),
            json!("EUR"),
        ],
        "Int" => vec![json!(1), json!(0), json!(100)],
        "Float" => vec![json!(0.5), json!(1.0)],
        "Boolean" => vec![json!(false), json!(true)],
        "JSON" => vec![json!({}), json!({ "k": "v" })],
        "DateTime" => vec![json!("2030-01-01T00:00:00Z")],
        _ => vec![json!("x"), json!(1), json!({})],
    }
}

/// A place an id goes: an argument, or a field of an input object inside one.
#[derive(Debug)]
struct Slot {
    path: Vec<String>,
    /// Non-null all the way from the argument down.
    required: bool,
}

/// A Query or Mutation field that takes an id somewhere.
struct Op {
    root: &'static str,
    name: String,
    args: Vec<Value>,
    ret: Value,
    slots: Vec<Slot>,
}

fn collect_slots(schema: &Schema, t: &Value, path: Vec<String>, required: bool, depth: usize, out: &mut Vec<Slot>) {
    let n = named(t);
    let required = required && non_null(t);
    match kind(n) {
        "SCALAR" if name(n) == "ID" => out.push(Slot { path, required }),
        "INPUT_OBJECT" if depth < 6 => {
            for f in schema.ty(name(n))["inputFields"].as_array().into_iter().flatten() {
                let mut p = path.clone();
                p.push(name(f).to_owned());
                collect_slots(schema, &f["type"], p, required, depth + 1, out);
            }
        }
        _ => {}
    }
}

/// Reads the schema over HTTP; returns it and every id-taking root field.
async fn introspect(app: &TestApp) -> (Schema, Vec<Op>) {
    let r = app.gql(None, INTROSPECTION, json!({})).await;
    let s = &r["data"]["__schema"];
    assert!(s.is_object(), "introspection failed: {r}");
    let types: HashMap<String, Value> =
        s["types"].as_array().unwrap().iter().map(|t| (name(t).to_owned(), t.clone())).collect();
    let schema = Schema { types };
    let mut ops = Vec::new();
    for (root, root_type) in [("query", &s["queryType"]), ("mutation", &s["mutationType"])] {
        let Some(root_name) = root_type["name"].as_str() else { continue };
        for f in schema.ty(root_name)["fields"].as_array().unwrap() {
            let args = f["args"].as_array().cloned().unwrap_or_default();
            let mut slots = Vec::new();
            for a in &args {
                collect_slots(&schema, &a["type"], vec![name(a).to_owned()], true, 0, &mut slots);
            }
            if !slots.is_empty() {
                ops.push(Op { root, name: name(f).to_owned(), args, ret: f["type"].clone(), slots });
            }
        }
    }
    (schema, ops)
}

/// What goes in an id slot for one call.
#[derive(Clone, Copy, Debug)]
enum Role {
    /// The id under test (the victim's, or a random one for comparison).
    Target,
    /// One of the caller's own ids.
    Own(Uuid),
}

/// Slot index → role; a slot not listed is omitted.
type Variant = BTreeMap<usize, Role>;

/// Every slot the target; with several slots, also each one the target while the
/// others hold each of the caller's own ids, or are omitted when they may be.
fn variants(op: &Op, own: &[Uuid]) -> Vec<Variant> {
    let n = op.slots.len();
    let mut out = vec![(0..n).map(|i| (i, Role::Target)).collect::<Variant>()];
    if n >= 2 {
        for i in 0..n {
            for &b in own {
                out.push((0..n).map(|j| (j, if j == i { Role::Target } else { Role::Own(b) })).collect());
            }
            if (0..n).all(|j| j == i || !op.slots[j].required) {
                out.push(BTreeMap::from([(i, Role::Target)]));
            }
        }
    }
    out
}

/// Builds argument values: assigned id slots, generated required values, and nothing
/// else. `None` when a required position cannot be filled.
struct Builder<'a> {
    schema: &'a Schema,
    ids: HashMap<Vec<String>, Uuid>,
    picks: &'a HashMap<String, usize>,
}

impl Builder<'_> {
    fn value(&self, t: &Value, path: &[String]) -> Option<Value> {
        if !non_null(t) && !self.ids.keys().any(|p| p.starts_with(path)) {
            return None;
        }
        let n = named(t);
        let pick = path.last().and_then(|leaf| self.picks.get(leaf)).copied().unwrap_or(0);
        let inner = match kind(n) {
            "SCALAR" if name(n) == "ID" => json!(self.ids.get(path)?),
            "SCALAR" => {
                let c = scalar_candidates(name(n));
                c[pick % c.len()].clone()
            }
            "ENUM" => {
                let values = self.schema.ty(name(n))["enumValues"].as_array().cloned().unwrap_or_default();
                json!(name(values.get(pick % values.len().max(1))?))
            }
            "INPUT_OBJECT" => {
                let mut m = Map::new();
                for f in self.schema.ty(name(n))["inputFields"].as_array().into_iter().flatten() {
                    let mut p = path.to_vec();
                    p.push(name(f).to_owned());
                    match self.value(&f["type"], &p) {
                        Some(v) => {
                            m.insert(name(f).to_owned(), v);
                        }
                        None if non_null(&f["type"]) => return None,
                        None => {}
                    }
                }
                Value::Object(m)
            }
            _ => return None,
        };
        Some(wrap(t, inner))
    }
}

/// The operation text and its variables, or `None` if the variant cannot be built.
fn build(
    schema: &Schema,
    op: &Op,
    variant: &Variant,
    target: Uuid,
    picks: &HashMap<String, usize>,
) -> Option<(String, Value)> {
    let ids = variant
        .iter()
        .map(|(&i, role)| (op.slots[i].path.clone(), if let Role::Own(b) = role { *b } else { target }))
        .collect();
    let b = Builder { schema, ids, picks };
    let (mut decls, mut uses, mut vars) = (Vec::new(), Vec::new(), Map::new());
    for a in &op.args {
        let arg = name(a);
        match b.value(&a["type"], &[arg.to_owned()]) {
            Some(v) => {
                decls.push(format!("${arg}: {}", type_string(&a["type"])));
                uses.push(format!("{arg}: ${arg}"));
                vars.insert(arg.to_owned(), v);
            }
            None if non_null(&a["type"]) => return None,
            None => {}
        }
    }
    let wrapped = |v: &[String]| if v.is_empty() { String::new() } else { format!("({})", v.join(", ")) };
    let selection = match kind(named(&op.ret)) {
        "OBJECT" | "INTERFACE" | "UNION" => " { __typename }",
        _ => "",
    };
    let query = format!("{} Sweep{} {{ {}{}{} }}", op.root, wrapped(&decls), op.name, wrapped(&uses), selection);
    Some((query, Value::Object(vars)))
}

/// Who calls, where, and how many requests it has sent.
struct Caller<'a> {
    app: &'a TestApp,
    schema: &'a Schema,
    token: Option<&'a str>,
    requests: usize,
}

impl Caller<'_> {
    /// Calls a variant, retrying with the next candidate value while the server
    /// refuses a generated (non-id) argument; returns the request and the response.
    async fn call(
        &mut self,
        op: &Op,
        variant: &Variant,
        target: Uuid,
        picks: &mut HashMap<String, usize>,
    ) -> Option<(String, Value, Value)> {
        loop {
            let (query, vars) = build(self.schema, op, variant, target, picks)?;
            let resp = self.app.gql(self.token, &query, vars.clone()).await;
            self.requests += 1;
            let e = &resp["errors"][0];
            if e["extensions"]["code"] == "BAD_USER_INPUT" {
                if let Some(field) = e["extensions"]["field"].as_str() {
                    let leaf = field.rsplit('.').next().unwrap_or(field).to_owned();
                    let is_slot = op.slots.iter().any(|s| s.path.last() == Some(&leaf));
                    let pick = picks.entry(leaf).or_default();
                    if !is_slot && *pick + 1 < MAX_PICKS {
                        *pick += 1;
                        continue;
                    }
                }
            }
            return Some((query, vars, resp));
        }
    }
}

/// Sweep totals.
#[derive(Default)]
struct Tally {
    fields: usize,
    variants: usize,
    calls: usize,
}

/// Calls every id-taking field as `token` (anonymous when `None`) with each of the
/// victim's ids; returns the problems found.
async fn sweep(
    app: &TestApp,
    schema: &Schema,
    ops: &[Op],
    token: Option<&str>,
    victim_ids: &[(String, Uuid)],
    own_ids: &[Uuid],
    tally: &mut Tally,
) -> Vec<String> {
    // Fields are independent of each other: a few in flight at once keep the server and
    // the database busy while one request waits (the sweep is thousands of requests).
    // `buffered` keeps the fields' order, so the problems read the same on every run.
    let swept: Vec<FieldSweep> = futures::stream::iter(ops)
        .map(|op| sweep_field(app, schema, op, token, victim_ids, own_ids))
        .buffered(4)
        .collect()
        .await;
    let mut problems = Vec::new();
    for field in swept {
        tally.fields += 1;
        tally.variants += field.variants;
        tally.calls += field.requests;
        problems.extend(field.problems);
    }
    problems
}

/// What sweeping one field found.
struct FieldSweep {
    problems: Vec<String>,
    variants: usize,
    requests: usize,
}

/// Calls one id-taking field with each of the victim's ids in every variant (see
/// [`sweep`]), and each time with a nonexistent id to compare the answers.
async fn sweep_field(
    app: &TestApp,
    schema: &Schema,
    op: &Op,
    token: Option<&str>,
    victim_ids: &[(String, Uuid)],
    own_ids: &[Uuid],
) -> FieldSweep {
    let who = if token.is_some() { "the other user" } else { "anonymous" };
    let allowed: &[&str] =
        if token.is_some() { &["NOT_FOUND", "FORBIDDEN"] } else { &["UNAUTHENTICATED", "NOT_FOUND", "FORBIDDEN"] };
    let mut caller = Caller { app, schema, token, requests: 0 };
    let mut problems = Vec::new();
    let mut picks: HashMap<String, usize> = HashMap::new();
    let picks = &mut picks;
    let mut variants_called = 0;
    for (label, id) in victim_ids {
        for variant in variants(op, own_ids) {
            let Some((query, vars, resp)) = caller.call(op, &variant, *id, picks).await else {
                continue;
            };
            variants_called += 1;
            let ctx = || {
                format!("{who}: {}.{} with {label} {id}\n  {query}\n  variables {vars}\n  -> {resp}", op.root, op.name)
            };
            let data = &resp["data"][op.name.as_str()];
            let err = &resp["errors"][0];
            let code = err["extensions"]["code"].as_str();
            if !data.is_null() {
                problems.push(format!("LEAK (non-null data) {}", ctx()));
                continue;
            }
            let exercised = match code {
                None => resp["errors"].as_array().is_none_or(Vec::is_empty),
                Some("BAD_USER_INPUT") => {
                    let field = err["extensions"]["field"].as_str().unwrap_or("");
                    let leaf = field.rsplit('.').next().unwrap_or(field);
                    op.slots.iter().any(|s| s.path.last().map(String::as_str) == Some(leaf))
                }
                Some(c) => allowed.contains(&c),
            };
            if !exercised {
                problems.push(format!("UNEXPECTED ANSWER (code {code:?}) {}", ctx()));
                continue;
            }
            // The same call about an id that does not exist must be answered alike,
            // or the answer tells whether the victim's id exists.
            let random = Uuid::new_v4();
            let Some((_, _, baseline)) = caller.call(op, &variant, random, picks).await else {
                continue;
            };
            let norm = |v: &Value, id: &Uuid| v.to_string().replace(&id.to_string(), "<id>");
            if norm(&resp, id) != norm(&baseline, &random) {
                problems
                    .push(format!("EXISTENCE ORACLE (answer differs from a nonexistent id's: {baseline}) {}", ctx()));
            }
        }
    }
    if variants_called == 0 {
        problems.push(format!("{who}: {}.{} could not be called at all", op.root, op.name));
    }
    FieldSweep { problems, variants: variants_called, requests: caller.requests }
}

/// Public tables that have a `user_id` column, from the catalog.
async fn user_tables(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
           AND EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = c.oid AND a.attname = 'user_id' AND a.attnum > 0 AND NOT a.attisdropped)
         ORDER BY 1",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

/// Every uuid in a user's rows (every uuid column of every `user_id` table, `id`
/// included), labelled `table.column`, plus the user's id.
async fn ids_of(app: &TestApp, user: Uuid) -> Vec<(String, Uuid)> {
    let columns = sqlx::query(
        "SELECT c.relname::text AS t, a.attname::text AS col FROM pg_class c
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                             AND a.atttypid = 'uuid'::regtype
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
           AND EXISTS (SELECT 1 FROM pg_attribute u
                       WHERE u.attrelid = c.oid AND u.attname = 'user_id' AND NOT u.attisdropped)
         ORDER BY (a.attname <> 'id'), 1, 2",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let mut ids = vec![("users.id".to_owned(), user)];
    for row in columns {
        let (table, col): (String, String) = (row.get("t"), row.get("col"));
        let found: Vec<String> = sqlx::query_scalar(&format!(
            r#"SELECT DISTINCT "{col}"::text FROM "{table}" WHERE user_id = $1 AND "{col}" IS NOT NULL ORDER BY 1"#
        ))
        .bind(user)
        .fetch_all(&app.db)
        .await
        .unwrap();
        for id in found {
            let id: Uuid = id.parse().unwrap();
            if !ids.iter().any(|(_, known)| *known == id) {
                ids.push((format!("{table}.{col}"), id));
            }
        }
    }
    ids
}

/// A user's rows, as JSON text per table, plus its `users` row.
async fn snapshot(app: &TestApp, user: Uuid) -> BTreeMap<String, String> {
    let mut snap = BTreeMap::new();
    for table in user_tables(app).await {
        if UNSNAPSHOTTED.contains(&table.as_str()) {
            continue;
        }
        let rows: String = sqlx::query_scalar(&format!(
            r#"SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY to_jsonb(t)::text)::text, '[]') FROM "{table}" t
               WHERE t.user_id = $1"#
        ))
        .bind(user)
        .fetch_one(&app.db)
        .await
        .unwrap();
        snap.insert(table, rows);
    }
    let me: String = sqlx::query_scalar("SELECT to_jsonb(u)::text FROM users u WHERE id = $1")
        .bind(user)
        .fetch_one(&app.db)
        .await
        .unwrap();
    snap.insert("users".into(), me);
    snap
}

/// A snapshot that holds still for a moment, so work the server finishes on its own
/// after a request is not taken for a change made by the sweep.
async fn settled_snapshot(app: &TestApp, user: Uuid) -> BTreeMap<String, String> {
    let mut last = snapshot(app, user).await;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let now = snapshot(app, user).await;
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the victim's rows keep changing on their own: {last:?}");
}

/// Rows of `user` in any `user_id` table whose JSON mentions one of `ids`.
async fn rows_mentioning(app: &TestApp, user: Uuid, ids: &[(String, Uuid)]) -> Vec<String> {
    let patterns: Vec<String> = ids.iter().map(|(_, id)| format!("%{id}%")).collect();
    let mut found = Vec::new();
    for table in user_tables(app).await {
        let rows: Vec<String> = sqlx::query_scalar(&format!(
            r#"SELECT to_jsonb(t)::text FROM "{table}" t WHERE t.user_id = $1 AND to_jsonb(t)::text LIKE ANY($2)"#
        ))
        .bind(user)
        .bind(&patterns)
        .fetch_all(&app.db)
        .await
        .unwrap();
        found.extend(rows.into_iter().map(|r| format!("{table}: {r}")));
    }
    found
}

/// Gives a user a draft with a confirmed photo, a marketplace account, two queued
/// jobs, a support ticket about the draft, a closed ticket with its CSAT rating, a
/// support access grant, an import mapping, and the activity those leave; returns the
/// draft's and photo's ids.
async fn furnish(app: &TestApp, user: &TestUser, title: &str) -> (String, String) {
    let draft = app.create_draft(&user.access, title).await;
    let photo = app.upload_photo(&user.access, Some(&draft), "image/png", &png(2, 2)).await;
    let r = app
        .gql(
            Some(&user.access),
            "mutation { connectMarketplaceAccount(input: {platform: VINTED, displayName: \"a\", credentials: {k: \"v\"}}) { id } }",
            json!({}),
        )
        .await;
    assert!(r["data"]["connectMarketplaceAccount"]["id"].is_string(), "connectMarketplaceAccount failed: {r}");
    let u = app
        .gql(
            Some(&user.access),
            "mutation($d: ID!) { updateDraft(id: $d, input: {description: \"worn twice\"}) { id } }",
            json!({ "d": draft }),
        )
        .await;
    assert!(u["data"]["updateDraft"].is_object(), "updateDraft failed: {u}");
    for kind in ["SCAN", "PREPARE"] {
        let j = app
            .gql(
                Some(&user.access),
                "mutation($k: JobKind!, $d: ID!) { createJob(input: {kind: $k, draftId: $d}) { id } }",
                json!({ "k": kind, "d": draft }),
            )
            .await;
        assert!(j["data"]["createJob"]["id"].is_string(), "createJob failed: {j}");
    }
    let t = app
        .gql(
            Some(&user.access),
            "mutation($d: ID!) { openTicket(input: {subject: \"Help\", category: JOBS, body: \"stuck\", draftId: $d}) { id } }",
            json!({ "d": draft }),
        )
        .await;
    assert!(t["data"]["openTicket"]["id"].is_string(), "openTicket failed: {t}");
    // A file sent with a reply (ticket_attachments).
    let image = png(2, 1);
    let a = app
        .gql(
            Some(&user.access),
            "mutation($i: TicketAttachmentInput!) { createTicketAttachmentUpload(input: $i) { attachment { id } uploadUrl headers { name value } } }",
            json!({ "i": { "ticketId": t["data"]["openTicket"]["id"], "fileName": "a.png", "contentType": "image/png", "byteSize": image.len() } }),
        )
        .await;
    let up = &a["data"]["createTicketAttachmentUpload"];
    assert!(app.put_upload(up, image).await.status().is_success(), "attachment upload failed: {a}");
    let sent = app
        .gql(
            Some(&user.access),
            "mutation($t: ID!, $a: ID!) { confirmTicketAttachment(id: $a) { id } replyTicket(ticketId: $t, body: \"file\", attachmentIds: [$a]) { id } }",
            json!({ "t": t["data"]["openTicket"]["id"], "a": up["attachment"]["id"] }),
        )
        .await;
    assert!(sent["errors"].is_null(), "sending an attachment failed: {sent}");
    // A second ticket, closed and rated (ticket_csat).
    let done = app
        .gql(
            Some(&user.access),
            "mutation { openTicket(input: {subject: \"Done\", category: OTHER, body: \"ok\"}) { id } }",
            json!({}),
        )
        .await;
    let rated = app
        .gql(
            Some(&user.access),
            "mutation($t: ID!) { closeTicket(id: $t) { id } submitCsat(input: {ticketId: $t, score: 4, comment: \"fine\"}) { score } }",
            json!({ "t": done["data"]["openTicket"]["id"] }),
        )
        .await;
    assert!(rated["errors"].is_null(), "rating a ticket failed: {done} {rated}");
    let g = app.gql(Some(&user.access), "mutation { grantSupportAccess(hours: 1) { id } }", json!({})).await;
    assert!(g["data"]["grantSupportAccess"]["id"].is_string(), "grantSupportAccess failed: {g}");
    let e = app.gql(Some(&user.access), "mutation { exportMyData { id } }", json!({})).await;
    assert!(e["data"]["exportMyData"]["id"].is_string(), "exportMyData failed: {e}");
    // What `plinth import` leaves beside an imported row: its mapping (import_records).
    sqlx::query("INSERT INTO import_records (user_id, kind, original_id, new_id) VALUES ($1, 'draft', $2, $3::uuid)")
        .bind(user.id)
        .bind(format!("legacy-{title}"))
        .bind(&draft)
        .execute(&app.db)
        .await
        .unwrap();
    // What an import from the web app leaves: its run (imports), ended, and an upload
    // waiting (import_uploads).
    sqlx::query(
        "INSERT INTO imports (user_id, id, upload_id, file_name, byte_size, status, report, finished_at)
         VALUES ($1, $2, $3, 'history.zip', 10, 'succeeded', '{}', now())",
    )
    .bind(user.id)
    .bind(Uuid::now_v7())
    .bind(Uuid::now_v7())
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query("INSERT INTO import_uploads (user_id, id, byte_size) VALUES ($1, $2, 10)")
        .bind(user.id)
        .bind(Uuid::now_v7())
        .execute(&app.db)
        .await
        .unwrap();
    (draft, photo["id"].as_str().unwrap().to_owned())
}

async fn me(app: &TestApp, user: &TestUser) -> Value {
    app.gql(Some(&user.access), "{ me { id } }", json!({})).await["data"]["me"]["id"].clone()
}

#[tokio::test]
async fn no_id_taking_field_reaches_another_users_rows() {
    let started = Instant::now();
    // The export builder idles (exports stay pending) and the onboarding sequence runs
    // only at start (not again 5 minutes later, within a slow sweep), so the victim's
    // rows hold still.
    let app = TestApp::builder()
        .with_env("PLINTH_GRAPHQL_INTROSPECTION", "true")
        .with_env("PLINTH_ACCOUNT_SWEEP_SECS", "3600")
        .with_env("PLINTH_MAIL_SEQUENCES_SECS", "86400")
        .spawn()
        .await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let (draft, photo) = furnish(&app, &ann, "Ann's jacket").await;
    furnish(&app, &bob, "Bob's boots").await;
    // Support answers Ann and notes something internal: her tickets hold staff rows too.
    let staff = app.register("sam").await;
    sqlx::query("UPDATE users SET role = 'support', display_name = 'Sam' WHERE id = $1")
        .bind(staff.id)
        .execute(&app.db)
        .await
        .unwrap();
    let login = app
        .gql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
            json!({ "i": { "email": staff.email, "password": staff.password } }),
        )
        .await;
    let staff_token = login["data"]["login"]["accessToken"].as_str().unwrap().to_owned();
    let ticket: Uuid = sqlx::query_scalar("SELECT id FROM tickets WHERE user_id = $1 AND status = 'open'")
        .bind(ann.id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    for q in [
        "mutation($t: ID!) { replyTicket(ticketId: $t, body: \"On it\") { id } }",
        "mutation($t: ID!) { addInternalNote(ticketId: $t, body: \"internal\") { id } }",
    ] {
        let r = app.gql(Some(&staff_token), q, json!({ "t": ticket })).await;
        assert!(r["errors"].is_null(), "{q}: {r}");
    }

    let ann_ids = ids_of(&app, ann.id).await;
    // The other user's own ids fill the other slots of a multi-id field: one of each
    // kind (table and column) is enough to show a victim id is refused beside a valid
    // one, and keeps the sweep linear in the victim's ids (every one of which is tried).
    let mut bob_ids: Vec<Uuid> = Vec::new();
    let mut kinds_seen = std::collections::HashSet::new();
    for (label, id) in ids_of(&app, bob.id).await {
        if kinds_seen.insert(label) {
            bob_ids.push(id);
        }
    }
    for (table, id) in [("drafts", &draft), ("photos", &photo)] {
        assert!(ann_ids.iter().any(|(l, i)| l.starts_with(table) && i.to_string() == *id), "{table}: {ann_ids:?}");
    }
    for table in [
        "marketplace_accounts.id",
        "activity_log.id",
        "tickets.id",
        "ticket_messages.id",
        "ticket_attachments.id",
        "support_access_grants.id",
        "support_access_log.id",
        "data_exports.id",
        "imports.id",
        "imports.upload_id",
    ] {
        assert!(ann_ids.iter().any(|(l, _)| l == table), "no {table} among {ann_ids:?}");
    }

    let (schema, ops) = introspect(&app).await;
    let names: Vec<String> = ops.iter().map(|o| format!("{}.{}", o.root, o.name)).collect();
    assert!(ops.len() >= 8, "only {} id-taking fields found: {names:?}", ops.len());
    assert!(ops.iter().any(|o| o.root == "query") && ops.iter().any(|o| o.root == "mutation"), "{names:?}");

    let before = settled_snapshot(&app, ann.id).await;
    assert_eq!(me(&app, &bob).await, bob.id.to_string(), "the other user's token works");
    let mut tally = Tally::default();
    let mut problems = sweep(&app, &schema, &ops, Some(&bob.access), &ann_ids, &bob_ids, &mut tally).await;
    problems.extend(sweep(&app, &schema, &ops, None, &ann_ids, &bob_ids, &mut tally).await);
    assert_eq!(me(&app, &bob).await, bob.id.to_string(), "the other user's token still works");
    // The GDPR operations take no id: the other user's export is its own, and its
    // deletion request with a wrong password changes nothing.
    let mine = app.gql(Some(&bob.access), "mutation { exportMyData { id } }", json!({})).await;
    let listed = app.gql(Some(&bob.access), "{ dataExports { id } }", json!({})).await;
    let ann_export: String = sqlx::query_scalar("SELECT id::text FROM data_exports WHERE user_id = $1")
        .bind(ann.id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_ne!(mine["data"]["exportMyData"]["id"].as_str(), Some(ann_export.as_str()), "{mine}");
    assert!(!listed.to_string().contains(&ann_export), "{listed}");
    let refused = app
        .gql(Some(&bob.access), "mutation { deleteMyAccount(input: {currentPassword: \"not it\"}) { id } }", json!({}))
        .await;
    assert_eq!(crate::helpers::code(&refused), "BAD_USER_INPUT", "{refused}");
    let after = settled_snapshot(&app, ann.id).await;

    for (table, rows) in &before {
        if after.get(table) != Some(rows) {
            problems.push(format!("CHANGED ROWS in {table}:\n  before {rows}\n  after  {:?}", after.get(table)));
        }
    }
    for row in rows_mentioning(&app, bob.id, &ann_ids).await {
        problems.push(format!("THE OTHER USER'S ROW REFERENCES THE VICTIM: {row}"));
    }
    let r = app
        .gql(Some(&ann.access), "query($d: ID!) { draft(id: $d) { title photos { id } } }", json!({ "d": draft }))
        .await;
    assert_eq!(r["data"]["draft"]["title"], "Ann's jacket", "{r}");
    assert_eq!(r["data"]["draft"]["photos"][0]["id"], photo.as_str(), "{r}");

    println!(
        "swept {} id-taking fields ({}) against {} ids of the victim ({}), as another user and anonymously: \
         {} operations, {} requests, {:.1?}",
        ops.len(),
        names.join(", "),
        ann_ids.len(),
        ann_ids.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>().join(", "),
        tally.variants,
        tally.calls,
        started.elapsed()
    );
    assert_eq!(tally.fields, 2 * ops.len());
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n\n"));
}
