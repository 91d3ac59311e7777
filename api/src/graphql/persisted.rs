//! Apollo's automatic persisted queries (APQ,
//! <https://www.apollographql.com/docs/apollo-server/performance/apq>): a client sends
//! `extensions.persistedQuery = {version: 1, sha256Hash}` (the lowercase hex SHA-256 of
//! the query text) without the query; an unknown hash answers `PersistedQueryNotFound`
//! (PERSISTED_QUERY_NOT_FOUND), and the client sends the text with the hash once, which
//! registers it.
//!
//! The lookup happens in [`super::limits::check`], before anything else reads the
//! document: a persisted document is bounded by exactly the same limits, parsed through
//! the same document cache and counted against the same rate as a sent one. A text
//! sent with its hash is kept only once it passed the limits, its request was admitted
//! (authenticated, within its rate) and it validated against the schema
//! (`execute::Executor`, [`register`]). The store keeps texts only (no parse, no data:
//! a hash another user registered runs under the caller's own row-level security),
//! at most [`PERSISTED_QUERIES`] of them and [`PERSISTED_BYTES`] in all, the least
//! recently used dropped first.
//!
//! async-graphql's `ApolloPersistedQueries` extension is not used: it runs inside
//! `Schema::execute`, after the limits, which would see an empty document; it keeps
//! every registered parse however large, before validation; and its errors carry no
//! `extensions.code`.
use crate::error::AppError;
use async_graphql::Value;
use sha2::{Digest, Sha256};
use std::{
    num::NonZeroUsize,
    sync::{Arc, LazyLock, Mutex},
};

/// Texts kept.
const PERSISTED_QUERIES: usize = 1024;
/// Bytes of text kept, in all (each text is at most the limits' `max_document_bytes`).
const PERSISTED_BYTES: usize = 4 * 1024 * 1024;

/// The `extensions` key Apollo clients send.
const EXTENSION: &str = "persistedQuery";

/// A text to keep under its hash once it has passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration([u8; 32]);

/// Resolves `request`'s persisted query, if it names one: a hash alone becomes the
/// stored text; a text with its hash is checked against it and returned as a
/// [`Registration`] for [`register`] once the request was admitted. A text with its hash
/// keeps the extension in the request: a second call (a query over the WebSocket is
/// checked twice) finds both and returns the registration again; a resolved hash is
/// taken out, so a second call does nothing.
///
/// Errors: PERSISTED_QUERY_NOT_FOUND (an unknown hash, the message
/// `PersistedQueryNotFound`), PERSISTED_QUERY_HASH_MISMATCH (the text's SHA-256 is not
/// the hash), BAD_USER_INPUT with field `extensions.persistedQuery` (a version other than
/// 1, or a hash that is not 64 hex digits).
pub fn resolve(request: &mut async_graphql::Request) -> Result<Option<Registration>, AppError> {
    let Some(extension) = request.extensions.get(EXTENSION) else { return Ok(None) };
    let hash = requested_hash(extension)?;
    if request.query.is_empty() {
        let text = STORE.lock().expect("persisted queries").get(&hash);
        return match text {
            Some(text) => {
                request.query = text.to_string();
                // Resolved: nothing to keep, so a second check (a query over the
                // WebSocket) takes it as a plain text rather than hashing it again.
                request.extensions.remove(EXTENSION);
                Ok(None)
            }
            None => Err(AppError::PersistedQueryNotFound),
        };
    }
    let actual: [u8; 32] = Sha256::digest(request.query.as_bytes()).into();
    if actual != hash {
        return Err(AppError::PersistedQueryHashMismatch);
    }
    Ok(Some(Registration(hash)))
}

/// Keeps `text` (which passed every check) under its registration's hash.
pub fn register(registration: Registration, text: &str) {
    STORE.lock().expect("persisted queries").put(registration.0, text);
}

/// The hash of a `persistedQuery` extension.
fn requested_hash(extension: &Value) -> Result<[u8; 32], AppError> {
    let field = |message: &str| AppError::bad_input("extensions.persistedQuery", message);
    let Value::Object(fields) = extension else {
        return Err(field("must be an object {version: 1, sha256Hash}"));
    };
    match fields.get("version") {
        Some(Value::Number(n)) if n.as_u64() == Some(1) => {}
        _ => return Err(field("version must be 1, the only version served")),
    }
    let hex_hash = match fields.get("sha256Hash") {
        Some(Value::String(s)) => s,
        _ => return Err(field("sha256Hash must be the query's SHA-256 in hex")),
    };
    let mut hash = [0u8; 32];
    hex::decode_to_slice(hex_hash, &mut hash)
        .map_err(|_| field("sha256Hash must be the query's SHA-256 in hex (64 digits)"))?;
    Ok(hash)
}

/// Texts by hash, bounded in count and in bytes.
struct Store {
    texts: lru::LruCache<[u8; 32], Arc<str>>,
    bytes: usize,
    max_bytes: usize,
}

impl Store {
    fn new(count: usize, max_bytes: usize) -> Self {
        Store { texts: lru::LruCache::new(NonZeroUsize::new(count).expect("non-zero")), bytes: 0, max_bytes }
    }

    fn get(&mut self, hash: &[u8; 32]) -> Option<Arc<str>> {
        self.texts.get(hash).cloned()
    }

    fn put(&mut self, hash: [u8; 32], text: &str) {
        if text.len() > self.max_bytes || self.texts.get(&hash).is_some() {
            return;
        }
        while self.bytes + text.len() > self.max_bytes {
            match self.texts.pop_lru() {
                Some((_, old)) => self.bytes -= old.len(),
                None => break,
            }
        }
        self.bytes += text.len();
        if let Some((_, old)) = self.texts.push(hash, Arc::from(text)) {
            self.bytes -= old.len();
        }
    }
}

static STORE: LazyLock<Mutex<Store>> = LazyLock::new(|| Mutex::new(Store::new(PERSISTED_QUERIES, PERSISTED_BYTES)));

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(query: &str, extension: serde_json::Value) -> async_graphql::Request {
        let mut r = async_graphql::Request::new(query);
        r.extensions.insert(EXTENSION.into(), Value::from_json(extension).unwrap());
        r
    }

    fn sha(text: &str) -> String {
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    #[test]
    fn a_hash_resolves_once_registered_and_a_wrong_one_is_refused() {
        let text = "{ __typename persistedUnitTest: __typename }";
        let mut hash_only = request("", json!({ "version": 1, "sha256Hash": sha(text) }));
        assert!(matches!(resolve(&mut hash_only), Err(AppError::PersistedQueryNotFound)));
        let mut wrong = request(text, json!({ "version": 1, "sha256Hash": sha("{ me { id } }") }));
        assert!(matches!(resolve(&mut wrong), Err(AppError::PersistedQueryHashMismatch)));
        let mut both = request(text, json!({ "version": 1, "sha256Hash": sha(text).to_uppercase() }));
        let registration = resolve(&mut both).unwrap().expect("a registration");
        // Resolved again (a query over the WebSocket is checked twice): the same.
        assert_eq!(resolve(&mut both).unwrap(), Some(registration.clone()));
        register(registration, text);
        let mut hash_only = request("", json!({ "version": 1, "sha256Hash": sha(text) }));
        assert!(resolve(&mut hash_only).unwrap().is_none());
        assert_eq!(hash_only.query, text);
        assert!(hash_only.extensions.is_empty(), "a resolved hash is taken out of the request");
        for bad in [json!({ "version": 2, "sha256Hash": sha(text) }), json!({ "version": 1, "sha256Hash": "abc" })] {
            let err = resolve(&mut request("", bad)).unwrap_err();
            assert!(matches!(err, AppError::BadUserInput { ref field, .. } if field == "extensions.persistedQuery"));
        }
    }

    #[test]
    fn the_store_is_bounded_in_count_and_bytes() {
        let mut store = Store::new(3, 100);
        for i in 0..5u8 {
            store.put([i; 32], &"x".repeat(10));
        }
        assert_eq!((store.texts.len(), store.bytes), (3, 30));
        assert!(store.get(&[0; 32]).is_none() && store.get(&[4; 32]).is_some());
        // 30 + 90 > 100: the two least recently used go, the newest 10 stays (100 ≤ 100).
        store.put([9; 32], &"y".repeat(90));
        assert_eq!((store.texts.len(), store.bytes), (2, 100), "older texts make room");
        assert!(store.get(&[3; 32]).is_none() && store.get(&[4; 32]).is_some());
        store.put([8; 32], &"z".repeat(101));
        assert!(store.get(&[8; 32]).is_none(), "larger than the whole store: not kept");
        assert_eq!(store.bytes, 100);
    }
}
