//! Bounds a document before async-graphql validates it, in time linear in its size:
//! its length, its parse, the fields it selects once every fragment spread is expanded
//! (counted with memoisation, so `F0 { ...F1 ...F1 } F1 { ...F2 ...F2 } ...` is refused
//! in microseconds instead of walked 2^n times by the depth and complexity visitors),
//! its depth (`MAX_DEPTH`, and `MAX_INTROSPECTION_DEPTH` under `__schema`/`__type`),
//! its aliases, the authentication mutations it asks for (one of each), and its text
//! inputs (no NUL or control characters, bounded length, in literals and variables).
//! Also reports what the rate budget needs: the operation's type and its root fields.
use crate::error::AppError;
use async_graphql::{
    parser::types::{DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet},
    Name, Value as ConstValue, Variables,
};
use async_graphql_value::Value as Literal;
use std::{
    collections::HashMap,
    num::NonZeroUsize,
    sync::{LazyLock, Mutex},
};

/// The limits of one document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Longest query text, in bytes.
    pub max_document_bytes: usize,
    /// Most fields selected once every fragment is expanded.
    pub max_expanded_fields: u64,
    /// Most aliased fields in the document.
    pub max_aliases: u64,
    /// Longest text input, in characters.
    pub max_text_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_document_bytes: 32 * 1024, max_expanded_fields: 5_000, max_aliases: 100, max_text_chars: 100_000 }
    }
}

/// What a bounded document asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Query, mutation or subscription.
    pub operation: OperationType,
    /// The root fields it runs, aliases counted apart (what the rate budget counts).
    pub root_fields: u64,
    /// A text sent with its persisted-query hash, to keep once the request is admitted
    /// and validated (`persisted::register`).
    pub persisted: Option<super::persisted::Registration>,
}

/// Fields that sign in or create credentials: at most one of each per document.
const AUTHENTICATION_FIELDS: &[&str] =
    &["register", "login", "refreshSession", "requestPasswordReset", "resetPassword"];

/// QUERY_TOO_COMPLEX naming the limit and its value.
fn too_complex(limit: &'static str, max: u64) -> AppError {
    AppError::QueryTooComplex { limit, max }
}

/// Parses `request`'s query (keeping the parse for execution) and checks it against
/// `limits`. A persisted query (`extensions.persistedQuery`, [`super::persisted`]) is
/// resolved to its text first; a text sent with its hash comes back in
/// [`Shape::persisted`], for the caller to keep once the request is admitted.
///
/// Errors: QUERY_TOO_COMPLEX (with the limit exceeded), GRAPHQL_PARSE_FAILED,
/// BAD_USER_INPUT (a text input with NUL or control characters, or too long, naming it),
/// PERSISTED_QUERY_NOT_FOUND, PERSISTED_QUERY_HASH_MISMATCH.
pub fn check(request: &mut async_graphql::Request, limits: &Limits) -> Result<Shape, AppError> {
    let registration = super::persisted::resolve(request)?;
    let shape = check_text_of(request, limits)?;
    Ok(Shape { persisted: registration, ..shape })
}

/// [`check`] of the request's text.
fn check_text_of(request: &mut async_graphql::Request, limits: &Limits) -> Result<Shape, AppError> {
    if request.query.len() > limits.max_document_bytes {
        return Err(too_complex("documentBytes", limits.max_document_bytes as u64));
    }
    let key =
        ShapeKey { query: request.query.clone(), operation_name: request.operation_name.clone(), limits: *limits };
    let cached = SHAPES.lock().expect("shape cache").get(&key).cloned();
    let Some(shape) = cached else {
        let (shape, fields) = check_document(request, limits)?;
        // Only documents that passed every check, small in text and in fields (what their
        // parse weighs), are kept: a client cannot fill the caches with heavy parses.
        if key.query.len() <= CACHED_DOCUMENT_BYTES && fields <= CACHED_DOCUMENT_FIELDS {
            if let Ok(doc) = request.parsed_query() {
                DOCUMENTS.lock().expect("document cache").put(key.query.clone(), doc.clone());
            }
            SHAPES.lock().expect("shape cache").put(key, shape.clone());
        }
        return Ok(shape);
    };
    // The document's shape is its text's; its text inputs are the variables'.
    let variables = std::mem::take(&mut request.variables);
    let checked = parse(request).and_then(|doc| {
        let op = select_operation(doc, key.operation_name.as_deref())?;
        check_texts(&variables, op, doc, limits)
    });
    request.variables = variables;
    checked.map(|()| shape)
}

/// `request`'s parsed document, parsed at most once per request and, for a text that
/// passed [`check`] recently, not at all (a copy of the cached parse).
///
/// Errors: GRAPHQL_PARSE_FAILED.
pub fn parse(request: &mut async_graphql::Request) -> Result<&ExecutableDocument, AppError> {
    // An empty text (a persisted query not resolved yet) is not marked: once resolved,
    // its text is looked up.
    if !request.query.is_empty() && !request.data.contains_key(&std::any::TypeId::of::<Parsed>()) {
        request.data.insert(Parsed);
        let cached = DOCUMENTS.lock().expect("document cache").get(&request.query).cloned();
        if let Some(doc) = cached {
            request.set_parsed_query(doc);
        }
    }
    request.parsed_query().map_err(|e| AppError::GraphqlParseFailed(e.message))
}

/// Marks a request whose document [`parse`] has looked up.
struct Parsed;

/// Documents up to this size and [`CACHED_DOCUMENT_FIELDS`] fields (expanded) are kept
/// parsed, with their shapes. A parse weighs a few hundred bytes per field: the caches
/// hold at most [`CACHED_DOCUMENTS`] × 256 fields, some 20 MiB, whatever clients send
/// (a security review filled 512 MiB with 8 KiB documents of 4,000 fields when every
/// parse was kept).
const CACHED_DOCUMENT_BYTES: usize = 4 * 1024;
/// Most fields (fragments expanded) of a cached document.
const CACHED_DOCUMENT_FIELDS: u64 = 256;
/// Documents kept.
const CACHED_DOCUMENTS: usize = 256;

/// Parsed documents by their text: clients send the same few documents again and
/// again, and parsing (a PEG parser) is the costliest step before execution.
static DOCUMENTS: LazyLock<Mutex<lru::LruCache<String, ExecutableDocument>>> =
    LazyLock::new(|| Mutex::new(lru::LruCache::new(NonZeroUsize::new(CACHED_DOCUMENTS).expect("non-zero"))));

/// Shapes of documents that passed every check of [`check`] but the text inputs, by
/// text, operation and limits: the walks above are not repeated for them.
static SHAPES: LazyLock<Mutex<lru::LruCache<ShapeKey, Shape>>> =
    LazyLock::new(|| Mutex::new(lru::LruCache::new(NonZeroUsize::new(CACHED_DOCUMENTS).expect("non-zero"))));

#[derive(PartialEq, Eq, Hash)]
struct ShapeKey {
    query: String,
    operation_name: Option<String>,
    limits: Limits,
}

/// [`check`] without the cache: the shape and the document's expanded field count.
fn check_document(request: &mut async_graphql::Request, limits: &Limits) -> Result<(Shape, u64), AppError> {
    let variables = request.variables.clone();
    let operation_name = request.operation_name.clone();
    let doc = parse(request)?;
    let op = select_operation(doc, operation_name.as_deref())?;
    let mut walk = Walk { doc, memo: HashMap::new(), depth_memo: HashMap::new(), aliases: 0, limits };
    let expanded = walk.expanded(&op.selection_set.node, 0);
    for frag in doc.fragments.values() {
        walk.count_aliases(&frag.node.selection_set.node);
    }
    walk.count_aliases(&op.selection_set.node);
    if expanded > limits.max_expanded_fields {
        return Err(too_complex("expandedFields", limits.max_expanded_fields));
    }
    let (plain, introspection) = walk.depth(&op.selection_set.node, false, 0);
    if plain > super::MAX_DEPTH {
        return Err(too_complex("depth", super::MAX_DEPTH as u64));
    }
    if introspection > super::MAX_INTROSPECTION_DEPTH {
        return Err(too_complex("introspectionDepth", super::MAX_INTROSPECTION_DEPTH as u64));
    }
    if walk.aliases > limits.max_aliases {
        return Err(too_complex("aliases", limits.max_aliases));
    }
    let mut roots: Vec<&str> = Vec::new();
    root_fields(doc, &op.selection_set.node, &mut roots, 0);
    for name in AUTHENTICATION_FIELDS {
        if roots.iter().filter(|r| *r == name).count() > 1 {
            return Err(too_complex("authenticationFieldsPerDocument", 1));
        }
    }
    check_texts(&variables, op, doc, limits)?;
    Ok((Shape { operation: op.ty, root_fields: roots.len() as u64, persisted: None }, expanded))
}

fn select_operation<'a>(
    doc: &'a ExecutableDocument,
    name: Option<&str>,
) -> Result<&'a async_graphql::parser::types::OperationDefinition, AppError> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Ok(&op.node),
        (DocumentOperations::Multiple(ops), Some(n)) => ops
            .get(n)
            .map(|o| &o.node)
            .ok_or_else(|| AppError::GraphqlValidationFailed(format!("unknown operation named \"{n}\""))),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            Ok(&ops.values().next().expect("one operation").node)
        }
        (DocumentOperations::Multiple(_), None) => {
            Err(AppError::GraphqlValidationFailed("the document has several operations: name one".into()))
        }
    }
}

struct Walk<'a> {
    doc: &'a ExecutableDocument,
    /// Expanded field count of each fragment (None while it is being counted: a cycle,
    /// which validation refuses).
    memo: HashMap<&'a str, Option<u64>>,
    /// Depths of each fragment (plain, introspection), by whether it is used under an
    /// introspection field (None while being walked: a cycle).
    depth_memo: HashMap<(&'a str, bool), Option<(usize, usize)>>,
    aliases: u64,
    limits: &'a Limits,
}

/// Deepest nesting walked; deeper documents are refused by the depth limit anyway.
const MAX_WALK_DEPTH: usize = 64;

impl<'a> Walk<'a> {
    /// The fields `set` selects, every fragment spread expanded (saturating).
    fn expanded(&mut self, set: &'a SelectionSet, depth: usize) -> u64 {
        if depth > MAX_WALK_DEPTH {
            return u64::MAX;
        }
        let mut n: u64 = 0;
        for item in &set.items {
            let add = match &item.node {
                Selection::Field(f) => 1u64.saturating_add(self.expanded(&f.node.selection_set.node, depth + 1)),
                Selection::InlineFragment(i) => self.expanded(&i.node.selection_set.node, depth + 1),
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.as_str();
                    match self.memo.get(name) {
                        Some(Some(known)) => *known,
                        Some(None) => 0,
                        None => match self.doc.fragments.get(&Name::new(name)) {
                            None => 0,
                            Some(frag) => {
                                self.memo.insert(name, None);
                                let count = self.expanded(&frag.node.selection_set.node, depth + 1);
                                self.memo.insert(name, Some(count));
                                count
                            }
                        },
                    }
                }
            };
            n = n.saturating_add(add);
            if n > self.limits.max_expanded_fields {
                return n;
            }
        }
        n
    }

    /// The deepest paths of fields below `set` (fragments add no depth, as async-graphql
    /// counts): (outside introspection, through `__schema` or `__type`); `intro` says
    /// whether `set` is already under one. A leaf field is 1 deep.
    fn depth(&mut self, set: &'a SelectionSet, intro: bool, level: usize) -> (usize, usize) {
        if level > MAX_WALK_DEPTH {
            return (MAX_WALK_DEPTH, MAX_WALK_DEPTH);
        }
        let (mut plain, mut deepest) = (0, 0);
        for item in &set.items {
            let (p, i) = match &item.node {
                Selection::Field(f) => {
                    let name = f.node.name.node.as_str();
                    let under = intro || name == "__schema" || name == "__type";
                    let (p, i) = self.depth(&f.node.selection_set.node, under, level + 1);
                    if under {
                        (0, 1 + p.max(i))
                    } else {
                        (1 + p, if i > 0 { 1 + i } else { 0 })
                    }
                }
                Selection::InlineFragment(f) => self.depth(&f.node.selection_set.node, intro, level + 1),
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.as_str();
                    match self.depth_memo.get(&(name, intro)) {
                        Some(Some(known)) => *known,
                        Some(None) => (0, 0),
                        None => match self.doc.fragments.get(&Name::new(name)) {
                            None => (0, 0),
                            Some(frag) => {
                                self.depth_memo.insert((name, intro), None);
                                let d = self.depth(&frag.node.selection_set.node, intro, level + 1);
                                self.depth_memo.insert((name, intro), Some(d));
                                d
                            }
                        },
                    }
                }
            };
            plain = plain.max(p);
            deepest = deepest.max(i);
        }
        (plain, deepest)
    }

    fn count_aliases(&mut self, set: &SelectionSet) {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    if f.node.alias.is_some() {
                        self.aliases += 1;
                    }
                    self.count_aliases(&f.node.selection_set.node);
                }
                Selection::InlineFragment(i) => self.count_aliases(&i.node.selection_set.node),
                Selection::FragmentSpread(_) => {}
            }
        }
    }
}

/// The root fields `set` runs, root-level fragments expanded.
fn root_fields<'a>(doc: &'a ExecutableDocument, set: &'a SelectionSet, out: &mut Vec<&'a str>, depth: usize) {
    if depth > 8 {
        return;
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => out.push(f.node.name.node.as_str()),
            Selection::InlineFragment(i) => root_fields(doc, &i.node.selection_set.node, out, depth + 1),
            Selection::FragmentSpread(s) => {
                if let Some(frag) = doc.fragments.get(&s.node.fragment_name.node) {
                    root_fields(doc, &frag.node.selection_set.node, out, depth + 1);
                }
            }
        }
    }
}

/// Refuses NUL and control characters (tab, newline and carriage return excepted) and
/// overlong strings in every text input: the variables, and the literal arguments of
/// the operation and of the fragments it may use.
fn check_texts(
    variables: &Variables,
    op: &async_graphql::parser::types::OperationDefinition,
    doc: &ExecutableDocument,
    limits: &Limits,
) -> Result<(), AppError> {
    // Where each variable is used (`drafts.search`), so its errors name the argument.
    let mut usages: HashMap<String, String> = HashMap::new();
    let mut sets: Vec<&SelectionSet> = vec![&op.selection_set.node];
    sets.extend(doc.fragments.values().map(|f| &f.node.selection_set.node));
    while let Some(set) = sets.pop() {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    for (arg, value) in &f.node.arguments {
                        let field = format!("{}.{}", f.node.name.node, arg.node);
                        check_literal(&field, &value.node, limits, &mut usages)?;
                    }
                    sets.push(&f.node.selection_set.node);
                }
                Selection::InlineFragment(i) => sets.push(&i.node.selection_set.node),
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    for (name, value) in variables.iter() {
        let field = usages.get(name.as_str()).cloned().unwrap_or_else(|| format!("${name}"));
        check_value(&field, value, limits)?;
    }
    Ok(())
}

fn check_text(field: &str, text: &str, limits: &Limits) -> Result<(), AppError> {
    if text.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
        return Err(AppError::bad_input(field, "must not contain NUL or control characters"));
    }
    if text.len() > limits.max_text_chars && text.chars().count() > limits.max_text_chars {
        return Err(AppError::bad_input(field, format!("must be at most {} characters", limits.max_text_chars)));
    }
    Ok(())
}

fn check_value(field: &str, value: &ConstValue, limits: &Limits) -> Result<(), AppError> {
    use ConstValue as V;
    match value {
        V::String(s) => check_text(field, s, limits),
        V::Enum(e) => check_text(field, e.as_str(), limits),
        V::List(items) => {
            items.iter().enumerate().try_for_each(|(i, v)| check_value(&format!("{field}.{i}"), v, limits))
        }
        V::Object(map) => map.iter().try_for_each(|(k, v)| {
            check_text(field, k.as_str(), limits)?;
            check_value(&format!("{field}.{k}"), v, limits)
        }),
        _ => Ok(()),
    }
}

/// Checks a literal's texts; records where each variable in it is used.
fn check_literal(
    field: &str,
    value: &Literal,
    limits: &Limits,
    usages: &mut HashMap<String, String>,
) -> Result<(), AppError> {
    match value {
        Literal::String(s) => check_text(field, s, limits),
        Literal::Variable(v) => {
            usages.entry(v.to_string()).or_insert_with(|| field.to_owned());
            Ok(())
        }
        Literal::List(items) => {
            items.iter().enumerate().try_for_each(|(i, v)| check_literal(&format!("{field}.{i}"), v, limits, usages))
        }
        Literal::Object(map) => map.iter().try_for_each(|(k, v)| {
            check_text(field, k.as_str(), limits)?;
            check_literal(&format!("{field}.{k}"), v, limits, usages)
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(query: &str) -> Result<Shape, AppError> {
        check(&mut async_graphql::Request::new(query), &Limits::default())
    }

    #[test]
    fn depth_counts_fields_not_fragments_and_introspection_has_its_own_bound() {
        let nest = |n: usize| format!("{}id{}", "drafts { nodes { photos { ".repeat(n), " } } }".repeat(n));
        // 3 fields per repetition and a leaf: 4 repetitions are 13 deep, 3 are 10.
        assert!(shape(&format!("{{ {} }}", nest(3))).is_ok());
        let deep = shape(&format!("{{ {} }}", nest(4))).unwrap_err();
        assert!(matches!(deep, AppError::QueryTooComplex { limit: "depth", max: 12 }), "{deep:?}");
        // The same depth through a fragment and an inline fragment (they add none).
        let q = format!("query {{ ...F }} fragment F on Query {{ ... on Query {{ {} }} }}", nest(4));
        assert!(matches!(shape(&q), Err(AppError::QueryTooComplex { limit: "depth", .. })));
        // The standard introspection query (15 deep) passes; a deeper ofType chain does not.
        let standard = include_str!("../../../tests/api/fixtures/introspection-graphql-js-16.graphql");
        assert!(shape(standard).is_ok());
        let chain = |n: usize| {
            format!(
                "{{ __schema {{ types {{ fields {{ type {{ {}name{} }} }} }} }} }}",
                "ofType { ".repeat(n),
                " }".repeat(n)
            )
        };
        assert!(shape(&chain(15)).is_ok());
        let deeper = shape(&chain(17)).unwrap_err();
        assert!(matches!(deeper, AppError::QueryTooComplex { limit: "introspectionDepth", max: 20 }), "{deeper:?}");
    }

    #[test]
    fn a_fragment_bomb_is_refused_by_its_expanded_size() {
        let mut q = String::from("query { ...F0 }\n");
        for i in 0..22 {
            q.push_str(&format!("fragment F{i} on Query {{ ...F{n} ...F{n} }}\n", n = i + 1));
        }
        q.push_str("fragment F22 on Query { __typename }\n");
        let err = shape(&q).unwrap_err();
        assert!(matches!(err, AppError::QueryTooComplex { limit: "expandedFields", .. }), "{err:?}");
    }

    #[test]
    fn aliases_roots_and_authentication_fields_are_counted() {
        let aliases: String = (0..101).map(|i| format!("a{i}: __typename ")).collect();
        assert!(matches!(shape(&format!("{{ {aliases} }}")), Err(AppError::QueryTooComplex { limit: "aliases", .. })));
        let s = shape(
            "mutation { a: createDraft(input: {title: \"x\"}) { id } b: createDraft(input: {title: \"y\"}) { id } }",
        )
        .unwrap();
        assert_eq!((s.operation, s.root_fields), (OperationType::Mutation, 2));
        let two = "mutation { a: login(input: {email: \"a@b.c\", password: \"x\"}) { accessToken } \
                   b: login(input: {email: \"a@b.c\", password: \"y\"}) { accessToken } }";
        assert!(matches!(shape(two), Err(AppError::QueryTooComplex { limit: "authenticationFieldsPerDocument", .. })));
        assert!(matches!(shape("{ me { id "), Err(AppError::GraphqlParseFailed(_))));
    }

    #[test]
    fn text_inputs_refuse_nul_and_control_characters() {
        let err = shape("{ drafts(search: \"a\\u0000b\") { edges { cursor } } }").unwrap_err();
        assert!(matches!(err, AppError::BadUserInput { ref field, .. } if field == "drafts.search"), "{err:?}");
        let mut r = async_graphql::Request::new("query($s: String) { drafts(search: $s) { edges { cursor } } }")
            .variables(Variables::from_json(serde_json::json!({ "s": "bell\u{7}" })));
        let err = check(&mut r, &Limits::default()).unwrap_err();
        assert!(matches!(err, AppError::BadUserInput { ref field, .. } if field == "drafts.search"), "{err:?}");
        assert!(shape("{ drafts(search: \"tab\\tnewline\\nok\") { edges { cursor } } }").is_ok());
    }
}
