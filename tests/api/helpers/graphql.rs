//! GraphQL over HTTP as a client speaks it, and what tests read from the answers.
use super::TestApp;
use serde_json::{json, Value};

impl TestApp {
    /// POSTs a GraphQL request as `token` (anonymous when None); returns the whole JSON
    /// response. The HTTP status must be a success: GraphQL errors travel in the body.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        self.post_graphql(token, json!({ "query": query, "variables": variables })).await
    }

    /// [`TestApp::gql`] for the operation `name` of a document that has several (the web
    /// app's `.graphql` files), as a client sends it: with `operationName`.
    pub async fn gql_operation(&self, token: Option<&str>, document: &str, name: &str, variables: Value) -> Value {
        self.post_graphql(token, json!({ "query": document, "operationName": name, "variables": variables })).await
    }

    /// POSTs `body` as it is (a request with `extensions`, or without `query`) as
    /// `token`; returns the whole JSON response, as [`TestApp::gql`].
    pub async fn post_graphql(&self, token: Option<&str>, body: Value) -> Value {
        let mut req = self.client.post(self.url("/graphql")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("POST /graphql");
        assert!(resp.status().is_success(), "status {}", resp.status());
        resp.json().await.expect("JSON response")
    }
}

/// The `extensions.code` of the first error.
pub fn code(resp: &Value) -> &str {
    resp["errors"][0]["extensions"]["code"].as_str().unwrap_or("<no error>")
}

/// `resp` with what changes from run to run replaced, for a snapshot: every string that
/// is a UUID becomes `[id]`, every RFC 3339 timestamp `[timestamp]`.
pub fn redacted(resp: &Value) -> Value {
    match resp {
        Value::String(s) if uuid::Uuid::parse_str(s).is_ok() => json!("[id]"),
        Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => json!("[timestamp]"),
        Value::Array(items) => Value::Array(items.iter().map(redacted).collect()),
        Value::Object(fields) => Value::Object(fields.iter().map(|(k, v)| (k.clone(), redacted(v))).collect()),
        other => other.clone(),
    }
}
