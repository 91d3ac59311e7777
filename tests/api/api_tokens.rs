//! API tokens for integrators over the wire: scoped, listed, revoked on every instance,
//! and attenuated offline by their holder with the biscuit tooling.

use crate::helpers::{code, TestApp, TestUser};
use biscuit_auth::{builder::BlockBuilder, UnverifiedBiscuit};
use serde_json::{json, Value};
use std::time::Duration;

const CREATE: &str =
    "mutation($i: CreateApiTokenInput!) { createApiToken(input: $i) { token apiToken { id name scopes } } }";
const DRAFTS: &str = "{ drafts { edges { node { id } } } }";
const DRAFT: &str = "query($id: ID!) { draft(id: $id) { id title } }";

async fn create(app: &TestApp, user: &TestUser, scopes: &[&str]) -> (String, String) {
    let r = app.gql(Some(&user.access), CREATE, json!({ "i": { "name": "shop sync", "scopes": scopes } })).await;
    let c = &r["data"]["createApiToken"];
    assert!(c.is_object(), "{r}");
    (c["token"].as_str().unwrap().to_owned(), c["apiToken"]["id"].as_str().unwrap().to_owned())
}

/// Appends a block of checks, as an integrator would, offline and without any key.
fn attenuate(token: &str, code: &str) -> String {
    let t = UnverifiedBiscuit::from_base64(token).unwrap();
    t.append(BlockBuilder::new().code(code).unwrap()).unwrap().to_base64().unwrap()
}

#[tokio::test]
async fn a_token_does_what_its_scopes_allow_and_nothing_else() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let draft = app.create_draft(&ann.access, "mine").await;
    let (token, _) = create(&app, &ann, &["drafts:read"]).await;
    assert_eq!(app.gql(Some(&token), DRAFTS, json!({})).await["data"]["drafts"]["edges"].as_array().unwrap().len(), 1);
    assert_eq!(app.gql(Some(&token), DRAFT, json!({ "id": draft })).await["data"]["draft"]["title"], "mine");
    for q in [
        "mutation { createDraft(input: {title: \"x\"}) { id } }",
        "{ me { id } }",
        "mutation { createApiToken(input: {name: \"x\", scopes: [\"drafts:read\"]}) { token } }",
        "{ apiTokens { id } }",
        "mutation { changePassword(currentPassword: \"a\", newPassword: \"bbbbbbbbbb\") }",
        "{ sessions { id } }",
        "mutation { revokeSession(id: \"0190f7a4-0000-7000-8000-000000000000\") }",
    ] {
        let r = app.gql(Some(&token), q, json!({})).await;
        assert_eq!(code(&r), "FORBIDDEN", "{q}: {r}");
        assert_eq!(r["data"], Value::Null);
    }
    assert_eq!(app.count("drafts").await, 1);
    // Bad requests for tokens.
    for (input, field) in [
        (json!({ "name": "x", "scopes": ["drafts:delete"] }), "input.scopes"),
        (json!({ "name": "x", "scopes": [] }), "input.scopes"),
        (json!({ "name": "", "scopes": ["jobs:read"] }), "input.name"),
        (json!({ "name": "x", "scopes": ["jobs:read"], "expiresAt": "2020-01-01T00:00:00Z" }), "input.expiresAt"),
    ] {
        let r = app.gql(Some(&ann.access), CREATE, json!({ "i": input })).await;
        assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");
        assert_eq!(r["errors"][0]["extensions"]["field"], field);
    }
}

#[tokio::test]
async fn tokens_are_listed_with_their_last_use_and_revoked_everywhere_within_a_second() {
    let one = TestApp::builder().with_redis().spawn().await;
    let two = one.another_instance().await;
    let ann = one.register("ann").await;
    let (token, id) = create(&one, &ann, &["drafts:read", "jobs:read"]).await;
    assert!(two.gql(Some(&token), DRAFTS, json!({})).await["data"]["drafts"].is_object());
    let list = one.gql(Some(&ann.access), "{ apiTokens { id name scopes lastUsedAt revokedAt } }", json!({})).await;
    let t = &list["data"]["apiTokens"][0];
    assert_eq!((t["id"].as_str(), t["name"].as_str()), (Some(id.as_str()), Some("shop sync")));
    assert_eq!(t["scopes"], json!(["drafts:read", "jobs:read"]));
    assert!(t["lastUsedAt"].is_string(), "{list}");
    // Another user cannot revoke it.
    let bob = one.register("bob").await;
    let r = one.gql(Some(&bob.access), "mutation($id: ID!) { revokeApiToken(id: $id) }", json!({ "id": id })).await;
    assert_eq!(code(&r), "NOT_FOUND");

    let r = one.gql(Some(&ann.access), "mutation($id: ID!) { revokeApiToken(id: $id) }", json!({ "id": id })).await;
    assert_eq!(r["data"]["revokeApiToken"], true);
    let started = std::time::Instant::now();
    let mut refused = false;
    while started.elapsed() < Duration::from_secs(1) {
        if code(&two.gql(Some(&token), DRAFTS, json!({})).await) == "UNAUTHENTICATED" {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the other instance still accepts the revoked token after 1 s");
    assert_eq!(code(&one.gql(Some(&token), DRAFTS, json!({})).await), "UNAUTHENTICATED");
    // An instance started afterwards refuses it too.
    let three = one.another_instance().await;
    assert_eq!(code(&three.gql(Some(&token), DRAFTS, json!({})).await), "UNAUTHENTICATED");
}

#[tokio::test]
async fn the_server_honours_offline_attenuation() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let keep = app.create_draft(&ann.access, "keep").await;
    let other = app.create_draft(&ann.access, "other").await;
    let (token, _) = create(&app, &ann, &["drafts:read", "drafts:write"]).await;
    assert!(app.gql(Some(&token), "mutation { createDraft(input: {title: \"w\"}) { id } }", json!({})).await["data"]
        ["createDraft"]
        .is_object());

    let read_only = attenuate(&token, "check if operation(\"drafts:read\");");
    assert!(app.gql(Some(&read_only), DRAFTS, json!({})).await["data"]["drafts"].is_object());
    let w = app.gql(Some(&read_only), "mutation { createDraft(input: {title: \"w\"}) { id } }", json!({})).await;
    assert_eq!(code(&w), "FORBIDDEN");

    let one_draft = attenuate(&read_only, &format!("check if resource(\"{keep}\");"));
    assert_eq!(app.gql(Some(&one_draft), DRAFT, json!({ "id": keep })).await["data"]["draft"]["title"], "keep");
    assert_eq!(code(&app.gql(Some(&one_draft), DRAFT, json!({ "id": other })).await), "FORBIDDEN");
    assert_eq!(code(&app.gql(Some(&one_draft), DRAFTS, json!({})).await), "FORBIDDEN");

    let expired = attenuate(&token, "check if time($t), $t <= 2020-01-01T00:00:00Z;");
    assert_eq!(code(&app.gql(Some(&expired), DRAFTS, json!({})).await), "FORBIDDEN");
    // A block cannot widen: claiming a scope it was not given does nothing.
    let (narrow, _) = create(&app, &ann, &["jobs:read"]).await;
    let widened = attenuate(&narrow, "scope(\"drafts:write\");");
    let r = app.gql(Some(&widened), "mutation { createDraft(input: {title: \"w\"}) { id } }", json!({})).await;
    assert_eq!(code(&r), "FORBIDDEN");
    // Tampering with the signature is refused outright.
    let mut bytes = token.clone().into_bytes();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    assert_eq!(code(&app.gql(Some(&String::from_utf8(bytes).unwrap()), DRAFTS, json!({})).await), "UNAUTHENTICATED");
}
