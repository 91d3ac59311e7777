//! One GraphQL request, end to end below HTTP: authenticate the caller, bound the
//! document (size, expanded fields, aliases, text inputs), count its root fields
//! against the caller's request rate, execute in its row-level-secured transaction
//! (begun at the first statement), then commit and publish (no error) or roll back (any
//! error). Every error leaves with an `extensions.code`. `http` and the WebSocket
//! transport only translate to this and back.
use super::{
    limits::{self, Limits},
    with_request, AppSchema, MAX_COMPLEXITY, MAX_INTROSPECTION_DEPTH,
};
use crate::{
    api_tokens::service as api_tokens,
    auth::{self, entitlements, ratelimit, tokens::TokenService},
    catalog::Catalog,
    db::{RequestMeta, RequestTx, RuntimePool},
    error::AppError,
    events::EventBus,
    principal::Principal,
};
use async_graphql::{parser::types::OperationType, ServerError, Value};
use futures_util::{stream::BoxStream, StreamExt};
use std::sync::Arc;

/// What executing a request needs.
#[derive(Clone)]
pub struct Executor {
    /// The schema, with its process-wide data.
    pub schema: AppSchema,
    /// Verifies access tokens.
    pub tokens: Arc<TokenService>,
    /// The runtime pool.
    pub pool: RuntimePool,
    /// Where committed events go.
    pub bus: Arc<EventBus>,
    /// Request rates.
    pub limiter: Arc<ratelimit::RateLimiter>,
    /// Plans (an API token's limits).
    pub catalog: Arc<Catalog>,
    /// Statement timeout of a request's transaction.
    pub statement_timeout_ms: u64,
    /// The whole request's time budget.
    pub request_timeout: std::time::Duration,
    /// Bounds of a document.
    pub limits: Limits,
    /// Largest answer, in bytes.
    pub max_response_bytes: usize,
}

impl Executor {
    /// Executes `request` for the bearer of `authorization`, within the request's time
    /// budget. Every failure is a GraphQL error with its `extensions.code`; past the
    /// budget, SERVICE_UNAVAILABLE (the transaction is dropped unfinished: it rolls back).
    pub async fn execute(
        &self,
        authorization: Option<&str>,
        meta: RequestMeta,
        request: async_graphql::Request,
    ) -> async_graphql::Response {
        match auth::authenticate(&self.tokens, authorization) {
            Ok(principal) => self.execute_as(principal, meta, request).await,
            Err(e) => error_response(e),
        }
    }

    /// [`Executor::execute`] for a caller already authenticated (a WebSocket's).
    pub async fn execute_as(
        &self,
        principal: Principal,
        meta: RequestMeta,
        mut request: async_graphql::Request,
    ) -> async_graphql::Response {
        use tracing::Instrument;
        let span = if crate::telemetry::exporting() { operation_span(&mut request) } else { tracing::Span::none() };
        match self.within_budget(self.run(principal, meta, request)).instrument(span).await {
            Ok(resp) => resp,
            Err(e) => error_response(e),
        }
    }

    /// Runs `work` for the bearer of `authorization` exactly as a GraphQL request of
    /// one root field runs (the HTTP routes that are not GraphQL, such as the CSV
    /// exports): authenticated, counted against the caller's request rate, in its own
    /// row-level-secured transaction, within the request's time budget; committed when
    /// `work` succeeds, rolled back when it fails.
    ///
    /// Errors: UNAUTHENTICATED, RATE_LIMITED, SERVICE_UNAVAILABLE (past the budget),
    /// `work`'s, INTERNAL (the commit).
    pub async fn transact<T, F, Fut>(
        &self,
        authorization: Option<&str>,
        meta: RequestMeta,
        work: F,
    ) -> Result<T, AppError>
    where
        F: FnOnce(RequestTx) -> Fut,
        Fut: std::future::Future<Output = Result<T, AppError>>,
    {
        let principal = auth::authenticate(&self.tokens, authorization)?;
        self.within_budget(async {
            let tx = self.open(principal, meta, 1).await?;
            match work(tx.clone()).await {
                Ok(value) => {
                    self.finish(&tx).await?;
                    Ok(value)
                }
                Err(e) => {
                    tx.rollback().await;
                    Err(e)
                }
            }
        })
        .await
    }

    /// `work` within the request's time budget; past it, SERVICE_UNAVAILABLE (the
    /// transaction is dropped unfinished: it rolls back).
    async fn within_budget<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, AppError>>,
    ) -> Result<T, AppError> {
        match tokio::time::timeout(self.request_timeout, work).await {
            Ok(done) => done,
            Err(_) => {
                tracing::warn!(budget_ms = self.request_timeout.as_millis() as u64, "a request ran out of time");
                Err(AppError::ServiceUnavailable(format!(
                    "the request did not finish within {} ms; nothing was done, retry shortly",
                    self.request_timeout.as_millis()
                )))
            }
        }
    }

    async fn run(
        &self,
        principal: Principal,
        meta: RequestMeta,
        mut request: async_graphql::Request,
    ) -> Result<async_graphql::Response, AppError> {
        let shape = limits::check(&mut request, &self.limits)?;
        let persisted = persisted_text(&shape, &principal, &request);
        let tx = self.open(principal, meta, shape.root_fields).await?;
        // Admitted: a text sent with its hash is kept once it validated.
        let mut resp = self.schema.execute(with_request(request, tx.clone())).await;
        coded(&mut resp);
        keep_if_valid(persisted, &resp);
        if !resp.errors.is_empty() {
            tx.rollback().await;
            return Ok(resp);
        }
        if response_bytes(&resp) > self.max_response_bytes {
            tx.rollback().await;
            return Err(AppError::ResponseTooLarge { max: self.max_response_bytes as u64 });
        }
        self.finish(&tx).await?;
        Ok(resp)
    }

    /// The request's transaction for `principal`, its `fields` root fields counted
    /// against the caller's rate: a session token's before a connection is taken, an
    /// API token's once its limits are read in the transaction.
    async fn open(&self, principal: Principal, meta: RequestMeta, fields: u64) -> Result<RequestTx, AppError> {
        let counted_early = principal.api().is_none();
        if counted_early {
            ratelimit::check_request_rate(&self.limiter, &principal, fields).await?;
        }
        let mut tx = RequestTx::new(&self.pool, principal, meta, self.statement_timeout_ms);
        if let Err(e) = self.complete(&mut tx, counted_early, fields).await {
            tx.rollback().await;
            return Err(e);
        }
        Ok(tx)
    }

    /// Commits a request that succeeded (an API token's last use recorded with it) and
    /// publishes its events.
    async fn finish(&self, tx: &RequestTx) -> Result<(), AppError> {
        if let Err(e) = api_tokens::touch(tx).await {
            tx.rollback().await;
            return Err(e);
        }
        tx.commit(&self.bus).await.map_err(AppError::from_db)
    }

    /// Completes an API token's claims and counts its request.
    async fn complete(&self, tx: &mut RequestTx, counted: bool, fields: u64) -> Result<(), AppError> {
        entitlements::complete(tx, &self.catalog).await?;
        if !counted {
            ratelimit::check_request_rate(&self.limiter, tx.principal(), fields).await?;
        }
        Ok(())
    }
}

/// The executor of one WebSocket, for its authenticated caller: a query or mutation
/// runs exactly as over HTTP ([`Executor::execute_as`]: bounded, rate-counted, in its
/// own row-level-secured transaction) and answers once; a subscription is bounded and
/// counted like a request, then streams from the schema with the socket's data.
#[derive(Clone)]
pub struct SocketExecutor {
    executor: Executor,
    principal: Principal,
    meta: RequestMeta,
    metrics: crate::metrics::Metrics,
}

impl SocketExecutor {
    /// An executor for operations of `principal`'s socket; each operation's meta is
    /// `meta` with a request id of its own.
    pub fn new(executor: Executor, principal: Principal, meta: RequestMeta, metrics: crate::metrics::Metrics) -> Self {
        SocketExecutor { executor, principal, meta, metrics }
    }

    fn meta(&self) -> RequestMeta {
        RequestMeta { request_id: uuid::Uuid::now_v7().to_string(), ..self.meta.clone() }
    }

    fn counted(&self, resp: async_graphql::Response) -> async_graphql::Response {
        self.metrics.graphql_errors(&resp.errors);
        resp
    }
}

impl async_graphql::Executor for SocketExecutor {
    async fn execute(&self, mut request: async_graphql::Request) -> async_graphql::Response {
        let name = operation_name(&mut request);
        // The socket's token was verified when it opened: what revoked it since refuses
        // the operation, as HTTP would.
        let resp = match self.executor.tokens.not_revoked(&self.principal) {
            Err(e) => error_response(e),
            Ok(()) => self.executor.execute_as(self.principal.clone(), self.meta(), request).await,
        };
        self.metrics.graphql_operation(name.as_deref(), resp.errors.is_empty());
        self.counted(resp)
    }

    fn execute_stream(
        &self,
        mut request: async_graphql::Request,
        session_data: Option<Arc<async_graphql::Data>>,
    ) -> BoxStream<'static, async_graphql::Response> {
        let this = self.clone();
        let first = async move {
            let shape = match limits::check(&mut request, &this.executor.limits) {
                Ok(shape) => shape,
                Err(e) => return one(this.counted(error_response(e))),
            };
            if shape.operation != OperationType::Subscription {
                let resp = async_graphql::Executor::execute(&this, request).await;
                return one(resp);
            }
            if let Err(e) = this.executor.tokens.not_revoked(&this.principal) {
                return one(this.counted(error_response(e)));
            }
            if this.principal.api().is_none() {
                if let Err(e) = ratelimit::check_request_rate(&this.executor.limiter, &this.principal, 1).await {
                    return one(this.counted(error_response(e)));
                }
            }
            let metrics = this.metrics.clone();
            metrics.graphql_operation(operation_name(&mut request).as_deref(), true);
            // Admitted: a text sent with its hash is kept once it validated, which a
            // subscription shows by its first poll: an error answer at once, or nothing
            // yet (waiting for its first event).
            let mut persisted = persisted_text(&shape, &this.principal, &request);
            let mut answers = async_graphql::Executor::execute_stream(&this.executor.schema, request, session_data)
                .map(move |mut resp| {
                    coded(&mut resp);
                    metrics.graphql_errors(&resp.errors);
                    resp
                });
            futures_util::stream::poll_fn(move |cx| {
                let polled = answers.poll_next_unpin(cx);
                match &polled {
                    std::task::Poll::Ready(Some(resp)) => keep_if_valid(persisted.take(), resp),
                    std::task::Poll::Pending => keep_if_valid(persisted.take(), &Default::default()),
                    std::task::Poll::Ready(None) => {}
                }
                polled
            })
            .boxed()
        };
        // Boxed: once the first step is done only the subscription's stream stays, not
        // the space of the step's largest state (a whole query's execution).
        futures_util::stream::once(Box::pin(first)).flatten().boxed()
    }
}

/// The name of the operation `request` runs: `operationName`, else the name of the
/// document's only operation; None for an anonymous one (or a document that does not
/// parse).
pub fn operation_name(request: &mut async_graphql::Request) -> Option<String> {
    if let Some(name) = &request.operation_name {
        return Some(name.clone());
    }
    match &limits::parse(request).ok()?.operations {
        async_graphql::parser::types::DocumentOperations::Multiple(ops) if ops.len() == 1 => {
            ops.keys().next().map(|n| n.to_string())
        }
        _ => None,
    }
}

/// The exported span of one operation (`telemetry`), inside its request's: named
/// `{type} {name}` as OpenTelemetry's GraphQL conventions say, with the operation's
/// name and type only (never its document nor its variables).
fn operation_span(request: &mut async_graphql::Request) -> tracing::Span {
    let name = operation_name(request);
    let ty = operation_type(request);
    tracing::debug_span!(
        target: crate::telemetry::TRACE_TARGET,
        "graphql",
        otel.name = %format_args!("{ty} {}", name.as_deref().unwrap_or("anonymous")),
        graphql.operation.name = name.as_deref(),
        graphql.operation.type = ty,
    )
}

/// `query`, `mutation` or `subscription`: the type of the operation `request` runs
/// (`unknown` when the document does not parse or names none of its operations).
fn operation_type(request: &mut async_graphql::Request) -> &'static str {
    use async_graphql::parser::types::DocumentOperations;
    let wanted = request.operation_name.clone();
    let Ok(document) = limits::parse(request) else { return "unknown" };
    let ty = match &document.operations {
        DocumentOperations::Single(op) => Some(op.node.ty),
        DocumentOperations::Multiple(ops) => match wanted {
            Some(name) => ops.iter().find(|(n, _)| n.as_str() == name).map(|(_, op)| op.node.ty),
            None if ops.len() == 1 => ops.values().next().map(|op| op.node.ty),
            None => None,
        },
    };
    match ty {
        Some(OperationType::Query) => "query",
        Some(OperationType::Mutation) => "mutation",
        Some(OperationType::Subscription) => "subscription",
        None => "unknown",
    }
}

/// A stream of one response.
fn one(resp: async_graphql::Response) -> BoxStream<'static, async_graphql::Response> {
    futures_util::stream::once(std::future::ready(resp)).boxed()
}

/// The text `request` sent with its persisted-query hash, to keep once the request is
/// admitted and valid ([`keep_if_valid`]): a signed-in caller's only, so anonymous
/// requests cannot push other clients' texts out of the store.
fn persisted_text(
    shape: &limits::Shape,
    principal: &Principal,
    request: &async_graphql::Request,
) -> Option<(super::persisted::Registration, String)> {
    let registration = shape.persisted.clone().filter(|_| !matches!(principal, Principal::Anonymous))?;
    Some((registration, request.query.clone()))
}

/// Keeps a persisted query's text (`persisted::register`) unless `resp` shows the
/// document itself was refused before anything ran: an error without a path coded
/// GRAPHQL_VALIDATION_FAILED or QUERY_TOO_COMPLEX (after [`coded`]).
fn keep_if_valid(persisted: Option<(super::persisted::Registration, String)>, resp: &async_graphql::Response) {
    let Some((registration, text)) = persisted else { return };
    let refused = resp
        .errors
        .iter()
        .any(|e| e.path.is_empty() && (is_code(e, "GRAPHQL_VALIDATION_FAILED") || is_code(e, "QUERY_TOO_COMPLEX")));
    if !refused {
        super::persisted::register(registration, &text);
    }
}

/// Whether `err` carries `extensions.code` = `code`.
pub fn is_code(err: &ServerError, code: &str) -> bool {
    err.extensions.as_ref().and_then(|e| e.get("code")) == Some(&Value::from(code))
}

/// Gives every error async-graphql raised itself (validation, complexity, depth,
/// argument coercion) the code clients branch on: QUERY_TOO_COMPLEX (with the limit),
/// GRAPHQL_VALIDATION_FAILED before execution, BAD_USER_INPUT for an argument that does
/// not coerce.
fn coded(resp: &mut async_graphql::Response) {
    for err in &mut resp.errors {
        if err.extensions.as_ref().is_some_and(|e| e.get("code").is_some()) {
            continue;
        }
        let (code, extra): (&str, Option<(&str, u64)>) = match err.message.as_str() {
            "Query is too complex." => ("QUERY_TOO_COMPLEX", Some(("complexity", MAX_COMPLEXITY as u64))),
            "Query is nested too deep." => ("QUERY_TOO_COMPLEX", Some(("depth", MAX_INTROSPECTION_DEPTH as u64))),
            // A value (literal or variable) that does not coerce to its argument's type.
            m if m.starts_with("Invalid value for argument") || m.starts_with("Expected input type") => {
                ("BAD_USER_INPUT", None)
            }
            _ if err.path.is_empty() => ("GRAPHQL_VALIDATION_FAILED", None),
            _ => ("BAD_USER_INPUT", None),
        };
        let ext = err.extensions.get_or_insert_with(Default::default);
        ext.set("code", code);
        if let Some((limit, max)) = extra {
            ext.set("limit", limit);
            ext.set("max", max);
        }
    }
}

/// The size of the response's JSON, counted without keeping it.
fn response_bytes(resp: &async_graphql::Response) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, resp);
    count.0
}

/// A response that failed before (or instead of) execution.
pub fn error_response(err: AppError) -> async_graphql::Response {
    let gql: async_graphql::Error = err.into();
    async_graphql::Response::from_errors(vec![ServerError {
        locations: Vec::new(),
        ..gql.into_server_error(Default::default())
    }])
}

/// The `extensions.code` of an error, if it has one.
pub fn code_of(err: &ServerError) -> Option<&str> {
    match err.extensions.as_ref().and_then(|e| e.get("code")) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    }
}
