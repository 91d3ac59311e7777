//! Issue 11, item 4: a property test over the whole schema. Every root field with a
//! `String` argument (directly, or inside an input object) is found by introspection and
//! called with generated strings — NUL and other control characters, lone surrogates
//! escaped in the JSON body, right-to-left marks, emoji, combining marks, 100 KB — as a
//! user and as a worker. No answer may be a server error or carry `INTERNAL`.
use crate::helpers::TestApp;
use proptest::{collection::vec, prelude::*, strategy::ValueTree, test_runner::TestRunner};
use serde_json::{json, Value};

/// A piece of a generated string: a character, or a lone UTF-16 surrogate that only a
/// JSON escape can carry.
#[derive(Clone, Debug)]
enum Piece {
    Char(char),
    LoneSurrogate(u16),
    Run(char, usize),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        4 => any::<char>().prop_map(Piece::Char),
        2 => prop::sample::select(vec!['\0', '\u{1}', '\u{7f}', '\u{202e}', '\u{200f}', '\u{feff}', '\u{301}', '😀', '\n', '%', '\'', '"', '\\'])
            .prop_map(Piece::Char),
        1 => (0xd800u16..0xe000).prop_map(Piece::LoneSurrogate),
        1 => (prop::sample::select(vec!['a', 'é', '😀', ' ']), 1000usize..100_000).prop_map(|(c, n)| Piece::Run(c, n)),
    ]
}

/// The JSON string literal (quotes included) of `pieces`.
fn literal(pieces: &[Piece]) -> String {
    let mut out = String::from("\"");
    for p in pieces {
        match p {
            Piece::Char(c) => out.push_str(&json_escape(&c.to_string())),
            Piece::LoneSurrogate(u) => out.push_str(&format!("\\u{u:04x}")),
            Piece::Run(c, n) => out.push_str(&json_escape(&c.to_string().repeat(*n))),
        }
    }
    out.push('"');
    out
}

fn json_escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap();
    quoted[1..quoted.len() - 1].to_owned()
}

const INTROSPECTION: &str = "{ __schema { queryType { name } mutationType { name } types { kind name
  fields { name args { name type { ...T } } type { ...T } }
  inputFields { name type { ...T } } enumValues { name } } } }
  fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }";

/// One root field to call: its operation, name, and the variables it takes.
struct Call {
    operation: &'static str,
    field: String,
    args: Vec<(String, Value)>,
    selection: &'static str,
}

fn named(t: &Value) -> (&str, &str, bool) {
    let required = t["kind"] == "NON_NULL";
    let mut t = t;
    while t["ofType"].is_object() && t["name"].is_null() {
        t = &t["ofType"];
    }
    (t["kind"].as_str().unwrap_or(""), t["name"].as_str().unwrap_or(""), required)
}

/// The type's GraphQL spelling (`[ID!]!`).
fn spelled(t: &Value) -> String {
    match t["kind"].as_str() {
        Some("NON_NULL") => format!("{}!", spelled(&t["ofType"])),
        Some("LIST") => format!("[{}]", spelled(&t["ofType"])),
        _ => t["name"].as_str().unwrap_or("").to_owned(),
    }
}

/// Whether a value of this type can hold a generated string (the string's slot).
fn holds_string(types: &[Value], t: &Value, depth: usize) -> bool {
    let (kind, name, _) = named(t);
    match kind {
        "SCALAR" => name == "String",
        "INPUT_OBJECT" if depth < 3 => types
            .iter()
            .find(|x| x["name"] == name)
            .map(|x| x["inputFields"].as_array().unwrap().iter().any(|f| holds_string(types, &f["type"], depth + 1)))
            .unwrap_or(false),
        _ => false,
    }
}

/// A value of type `t` in which every String is the placeholder `"\u{1}S"`.
fn sample(types: &[Value], t: &Value) -> Value {
    let list = t["kind"] == "LIST" || (t["kind"] == "NON_NULL" && t["ofType"]["kind"] == "LIST");
    let (kind, name, _) = named(t);
    let one = match (kind, name) {
        ("SCALAR", "String") => json!("\u{1}S"),
        ("SCALAR", "ID") => json!("018f0000-0000-7000-8000-000000000000"),
        ("SCALAR", "Int") => json!(1),
        ("SCALAR", "Float") => json!(1.0),
        ("SCALAR", "Boolean") => json!(false),
        ("SCALAR", "DateTime") => json!("2026-01-01T00:00:00Z"),
        ("SCALAR", _) => json!({}),
        ("ENUM", _) => types.iter().find(|x| x["name"] == name).unwrap()["enumValues"][0]["name"].clone(),
        ("INPUT_OBJECT", _) => {
            let fields = types.iter().find(|x| x["name"] == name).unwrap()["inputFields"].as_array().unwrap();
            Value::Object(
                fields.iter().map(|f| (f["name"].as_str().unwrap().to_owned(), sample(types, &f["type"]))).collect(),
            )
        }
        _ => Value::Null,
    };
    if list {
        json!([one])
    } else {
        one
    }
}

fn calls(schema: &Value) -> Vec<Call> {
    let types = schema["types"].as_array().unwrap();
    let mut out = Vec::new();
    for (operation, root) in [("query", &schema["queryType"]["name"]), ("mutation", &schema["mutationType"]["name"])] {
        let root = types.iter().find(|t| t["name"] == *root).unwrap();
        for f in root["fields"].as_array().unwrap() {
            let args = f["args"].as_array().unwrap();
            if !args.iter().any(|a| holds_string(types, &a["type"], 0)) {
                continue;
            }
            let (kind, _, _) = named(&f["type"]);
            out.push(Call {
                operation,
                field: f["name"].as_str().unwrap().to_owned(),
                args: args
                    .iter()
                    .map(|a| {
                        (format!("{}: {}", a["name"].as_str().unwrap(), spelled(&a["type"])), sample(types, &a["type"]))
                    })
                    .collect(),
                selection: if matches!(kind, "OBJECT" | "INTERFACE" | "UNION") { "{ __typename }" } else { "" },
            });
        }
    }
    out
}

impl Call {
    /// The request body, each String slot filled with `literal`.
    fn body(&self, literal: &str) -> String {
        let decl: Vec<String> = self
            .args
            .iter()
            .enumerate()
            .map(|(i, (a, _))| format!("$v{i}: {}", a.split_once(": ").unwrap().1))
            .collect();
        let pass: Vec<String> = self
            .args
            .iter()
            .enumerate()
            .map(|(i, (a, _))| format!("{}: $v{i}", a.split_once(": ").unwrap().0))
            .collect();
        let query = format!(
            "{} ({}) {{ {}({}) {} }}",
            self.operation,
            decl.join(", "),
            self.field,
            pass.join(", "),
            self.selection
        );
        let vars: serde_json::Map<String, Value> =
            self.args.iter().enumerate().map(|(i, (_, v))| (format!("v{i}"), v.clone())).collect();
        let vars = serde_json::to_string(&vars).unwrap().replace("\"\\u0001S\"", literal);
        format!("{{\"query\":{},\"variables\":{vars}}}", serde_json::to_string(&query).unwrap())
    }
}

#[tokio::test]
async fn random_strings_in_every_string_argument_never_cause_a_server_error() {
    let app = TestApp::builder()
        .with_unlimited_free_plan()
        .with_free_plan_edits(&[("api_requests_per_minute = 60", "api_requests_per_minute = 1000000")])
        .with_env("PLINTH_LOGIN_LIMIT_PER_IP", "1000000")
        .with_env("PLINTH_LOGIN_LIMIT_PER_EMAIL", "1000000")
        .spawn()
        .await;
    let ann = app.register("ann").await;
    let worker = app.worker_token(&["scan", "prepare", "publish"]);
    let schema = app.gql(Some(&ann.access), INTROSPECTION, json!({})).await["data"]["__schema"].clone();
    let calls = calls(&schema);
    assert!(calls.len() >= 10, "introspection found the String arguments: {}", calls.len());
    let cases: u32 = std::env::var("PLINTH_EDGE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    let mut runner = TestRunner::deterministic();
    let strings = vec(piece(), 0..12);
    let mut sent = 0;
    for _ in 0..cases {
        let pieces = strings.new_tree(&mut runner).unwrap().current();
        let literal = literal(&pieces);
        for call in &calls {
            for token in [ann.access.as_str(), worker.as_str()] {
                let resp = app
                    .http()
                    .post(format!("http://{}/graphql", app.addr))
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(call.body(&literal))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status();
                let text = resp.text().await.unwrap();
                let shown = || format!("{} {} with {:.200}: {status} {text:.500}", call.operation, call.field, literal);
                assert!(!status.is_server_error(), "{}", shown());
                let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {}", shown()));
                for e in body["errors"].as_array().into_iter().flatten() {
                    let code = e["extensions"]["code"].as_str();
                    assert!(code.is_some() && code != Some("INTERNAL"), "{}", shown());
                }
                sent += 1;
            }
        }
    }
    eprintln!("{sent} requests over {} fields, {cases} generated strings", calls.len());
}
