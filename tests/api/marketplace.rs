//! Connected marketplace accounts: credentials sealed at rest, never returned.

use crate::helpers::{code, TestApp};
use api::secretbox::SecretBox;
use serde_json::json;

const CONNECT: &str = "mutation($i: ConnectMarketplaceAccountInput!) { connectMarketplaceAccount(input: $i) {
    id platform displayName status hasCredentials } }";

#[tokio::test]
async fn credentials_are_sealed_and_never_returned() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let secret = "hunter2-very-secret-session";
    let r = app
        .gql(
            Some(&ann.access),
            CONNECT,
            json!({ "i": { "platform": "VINTED", "displayName": " My shop ", "credentials": { "session": secret } } }),
        )
        .await;
    let acc = &r["data"]["connectMarketplaceAccount"];
    assert_eq!(acc["displayName"], "My shop");
    assert_eq!(acc["status"], "CONNECTED");
    assert_eq!(acc["hasCredentials"], true);
    assert!(!r.to_string().contains(secret));

    // At rest: ciphertext only, and it opens with the key only for its own row.
    let (user_id, id, sealed): (uuid::Uuid, uuid::Uuid, Vec<u8>) =
        sqlx::query_as("SELECT user_id, id, credentials FROM marketplace_accounts").fetch_one(&app.db).await.unwrap();
    assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));
    let key = std::fs::read_to_string(app.data_dir.join("credentials_key")).unwrap();
    let sealer = SecretBox::from_hex(&key).unwrap();
    let aad = [user_id.as_bytes().as_slice(), id.as_bytes()].concat();
    let plain: serde_json::Value = serde_json::from_slice(&sealer.open(&sealed, &aad).unwrap()).unwrap();
    assert_eq!(plain["session"], secret);
    assert!(sealer.open(&sealed, uuid::Uuid::new_v4().as_bytes()).is_err());

    // The schema has no way to read them.
    let t = app.gql(None, "{ __type(name: \"MarketplaceAccount\") { fields { name } } }", json!({})).await;
    let fields = t["data"]["__type"]["fields"].to_string();
    assert!(!fields.contains("\"credentials\""), "{fields}");
}

#[tokio::test]
async fn rename_disconnect_and_bad_input() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let r = app
        .gql(Some(&ann.access), CONNECT, json!({ "i": { "platform": "EBAY", "displayName": "a", "credentials": {} } }))
        .await;
    let id = r["data"]["connectMarketplaceAccount"]["id"].as_str().unwrap().to_owned();
    let renamed = app
        .gql(
            Some(&ann.access),
            "mutation($id: ID!) { renameMarketplaceAccount(id: $id, displayName: \"b\") { displayName } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(renamed["data"]["renameMarketplaceAccount"]["displayName"], "b");
    let off = app
        .gql(
            Some(&ann.access),
            "mutation($id: ID!) { disconnectMarketplaceAccount(id: $id) { status hasCredentials } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        off["data"]["disconnectMarketplaceAccount"],
        json!({ "status": "DISCONNECTED", "hasCredentials": false })
    );
    let erased: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT credentials FROM marketplace_accounts").fetch_one(&app.db).await.unwrap();
    assert!(erased.is_none());

    for (input, field) in [
        (json!({ "platform": "VINTED", "displayName": "", "credentials": {} }), "input.displayName"),
        (json!({ "platform": "VINTED", "displayName": "x", "credentials": "not an object" }), "input.credentials"),
        (
            json!({ "platform": "VINTED", "displayName": "x", "credentials": { "k": "v".repeat(20_000) } }),
            "input.credentials",
        ),
    ] {
        let r = app.gql(Some(&ann.access), CONNECT, json!({ "i": input })).await;
        assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");
        assert_eq!(r["errors"][0]["extensions"]["field"], field);
    }
    assert_eq!(app.count("marketplace_accounts").await, 1);
}
