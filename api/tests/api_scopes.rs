//! Every root field (query, mutation and subscription) declares exactly one API-token
//! rule at the field: the one scope an API token needs, or a refusal of API tokens.
//! Proven by calling each field of the real schema, in process, as API tokens holding
//! each scope in turn, and reading which scope the field's guard let through. The
//! expected table is the published one (README "API token scopes"): a field that forgets its
//! rule, or changes it, fails here.
use api::{auth::tokens::TokenService, model::ApiScope, principal::Principal};
use async_graphql::{Request, Value};
use biscuit_auth::KeyPair;
use futures_util::StreamExt;
use serde_json::Value as Json;
use std::{collections::BTreeMap, sync::Arc, time::Duration};
use uuid::Uuid;

/// The scope each root field needs; fields absent here refuse API tokens.
const TABLE: &[(&str, &str)] = &[
    ("drafts", "drafts:read"),
    ("draft", "drafts:read"),
    ("photo", "drafts:read"),
    ("activity", "activity:read"),
    ("dashboard", "activity:read"),
    ("createDraft", "drafts:write"),
    ("updateDraft", "drafts:write"),
    ("deleteDraft", "drafts:write"),
    ("restoreDraft", "drafts:write"),
    ("createUpload", "drafts:write"),
    ("confirmUpload", "drafts:write"),
    ("deletePhoto", "drafts:write"),
    ("jobs", "jobs:read"),
    ("job", "jobs:read"),
    ("jobUpdated", "jobs:read"),
    ("createJob", "jobs:write"),
    ("cancelJob", "jobs:write"),
    ("marketplaceAccounts", "accounts:read"),
    ("marketplaceAccount", "accounts:read"),
    ("connectMarketplaceAccount", "accounts:write"),
    ("renameMarketplaceAccount", "accounts:write"),
    ("disconnectMarketplaceAccount", "accounts:write"),
    ("me", "usage:read"),
    ("usage", "usage:read"),
    ("plans", "usage:read"),
    ("billing", "billing:read"),
    ("invoices", "billing:read"),
];

fn tokens() -> TokenService {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
    let policies: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "datalog"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    TokenService::new(KeyPair::new(), &policies, Duration::from_secs(900)).unwrap()
}

/// A literal of a type, for a required argument: any value that parses.
fn literal(types: &BTreeMap<String, Json>, t: &Json) -> String {
    match t["kind"].as_str().unwrap() {
        "NON_NULL" => literal(types, &t["ofType"]),
        "LIST" => format!("[{}]", literal(types, &t["ofType"])),
        _ => {
            let name = t["name"].as_str().unwrap();
            let def = &types[name];
            match def["kind"].as_str().unwrap() {
                "ENUM" => def["enumValues"][0]["name"].as_str().unwrap().to_owned(),
                "INPUT_OBJECT" => {
                    let fields: Vec<String> = def["inputFields"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|f| f["type"]["kind"] == "NON_NULL" && f["defaultValue"].is_null())
                        .map(|f| format!("{}: {}", f["name"].as_str().unwrap(), literal(types, &f["type"])))
                        .collect();
                    format!("{{{}}}", fields.join(", "))
                }
                _ => match name {
                    "ID" => format!("\"{}\"", Uuid::nil()),
                    "String" | "DateTime" => "\"2030-01-01T00:00:00Z\"".into(),
                    "Int" => "1".into(),
                    "Float" => "0.5".into(),
                    "Boolean" => "true".into(),
                    "JSON" => "{}".into(),
                    other => panic!("no literal for scalar {other}"),
                },
            }
        }
    }
}

/// A document calling `field` of the root `op` with its required arguments and, for an
/// object result, `__typename`.
fn document(types: &BTreeMap<String, Json>, op: &str, field: &Json) -> String {
    let args: Vec<String> = field["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["type"]["kind"] == "NON_NULL")
        .map(|a| format!("{}: {}", a["name"].as_str().unwrap(), literal(types, &a["type"])))
        .collect();
    let args = if args.is_empty() { String::new() } else { format!("({})", args.join(", ")) };
    let mut t = &field["type"];
    while !t["ofType"].is_null() {
        t = &t["ofType"];
    }
    let kind = types[t["name"].as_str().unwrap()]["kind"].as_str().unwrap();
    let selection = if matches!(kind, "OBJECT" | "INTERFACE" | "UNION") { " { __typename }" } else { "" };
    format!("{op} {{ {}{args}{selection} }}", field["name"].as_str().unwrap())
}

/// What the field's guard said to an API token with `scope`.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Refused because the token lacks the field's scope.
    WrongScope,
    /// Refused to every API token.
    NoApiTokens,
    /// Let through (the resolver ran, and may have failed for other reasons).
    Passed,
}

fn verdict(errors: &[async_graphql::ServerError]) -> Verdict {
    match errors.first().map(|e| e.message.as_str()) {
        Some(m) if m.starts_with("this API token may not call") => Verdict::WrongScope,
        Some(m) if m.starts_with("API tokens cannot call") => Verdict::NoApiTokens,
        _ => Verdict::Passed,
    }
}

#[tokio::test]
async fn every_root_field_declares_exactly_one_api_token_rule() {
    let tokens = Arc::new(tokens());
    let schema = api::graphql::builder(true).data(tokens.clone()).finish();
    let intro = schema
        .execute(
            "{ __schema { types { name kind enumValues { name } inputFields { name defaultValue type { ...T } }
               fields { name args { name type { ...T } } type { ...T } } } } }
             fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }",
        )
        .await;
    assert!(intro.errors.is_empty(), "{:?}", intro.errors);
    let intro = intro.data.into_json().unwrap();
    let types: BTreeMap<String, Json> = intro["__schema"]["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_owned(), t.clone()))
        .collect();
    let user = Uuid::now_v7();
    let expires = chrono::Utc::now() + chrono::Duration::days(1);
    let principals: Vec<(ApiScope, Principal)> = ApiScope::ALL
        .iter()
        .map(|s| {
            let (token, _) = tokens.issue_api(user, Uuid::now_v7(), &[*s], expires).unwrap();
            (*s, tokens.verify(&token).unwrap())
        })
        .collect();
    let mut found: BTreeMap<String, Option<&str>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (root, op) in [("Query", "query"), ("Mutation", "mutation"), ("Subscription", "subscription")] {
        for field in types[root]["fields"].as_array().unwrap() {
            let name = field["name"].as_str().unwrap().to_owned();
            let doc = document(&types, op, field);
            let mut passed = Vec::new();
            let mut refused_all = 0;
            for (scope, principal) in &principals {
                let request = Request::new(doc.clone()).data(principal.clone());
                let errors = if op == "subscription" {
                    let first = schema.execute_stream(request).next().await.expect("a first item");
                    first.errors
                } else {
                    schema.execute(request).await.errors
                };
                match verdict(&errors) {
                    Verdict::Passed => passed.push(scope.as_str()),
                    Verdict::NoApiTokens => refused_all += 1,
                    Verdict::WrongScope => {}
                }
            }
            match (passed.as_slice(), refused_all) {
                ([one], 0) => {
                    found.insert(name, Some(*one));
                }
                ([], n) if n == ApiScope::ALL.len() => {
                    found.insert(name, None);
                }
                _ => problems
                    .push(format!("{name} ({doc}): passed {passed:?}, refused to every token {refused_all} times")),
            }
        }
    }
    assert!(problems.is_empty(), "fields without exactly one rule:\n{}", problems.join("\n"));
    let expected: BTreeMap<String, Option<&str>> =
        found.keys().map(|f| (f.clone(), TABLE.iter().find(|(n, _)| n == f).map(|(_, s)| *s))).collect();
    assert_eq!(found, expected, "the declared scopes differ from the published table");
    for (f, _) in TABLE {
        assert!(found.contains_key(*f), "{f} is in the table but not in the schema");
    }
    let _ = Value::Null;
}
