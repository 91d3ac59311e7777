//! A local OpenTelemetry collector speaking OTLP over HTTP with protobuf bodies (`POST
//! /v1/traces`, answered 200 with an empty `ExportTraceServiceResponse`), as the
//! server's exporter sends to `OTEL_EXPORTER_OTLP_ENDPOINT`. It keeps every body as
//! received (to search for what must never leave) and the spans decoded from them.
use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    common::v1::{any_value::Value as AnyValue, KeyValue},
};
use poem::{
    handler,
    listener::{Acceptor, Listener, TcpListener},
    web::Data,
    Body, EndpointExt, Response, Route, Server,
};
use prost::Message;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// One exported span, flattened.
#[derive(Clone, Debug)]
pub struct ExportedSpan {
    /// The `service.name` of its resource.
    pub service: String,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    /// Empty for a trace's root.
    pub parent_span_id: Vec<u8>,
    pub name: String,
    /// The span kind (OTLP's numbering: 2 server, 3 client).
    pub kind: i32,
    /// Its attributes, each value as text.
    pub attributes: HashMap<String, String>,
}

impl ExportedSpan {
    /// The attribute `key`, as text.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct State {
    /// Each request's headers, names lower-case.
    headers: Mutex<Vec<HashMap<String, String>>>,
    bodies: Mutex<Vec<Vec<u8>>>,
    spans: Mutex<Vec<ExportedSpan>>,
}

/// The running collector.
pub struct FakeCollector {
    /// Its base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub url: String,
    state: Arc<State>,
}

impl FakeCollector {
    /// Starts on a random port of 127.0.0.1.
    pub async fn start() -> FakeCollector {
        let state = Arc::new(State::default());
        let app = Route::new().at("/v1/traces", poem::post(export)).data(state.clone());
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        FakeCollector { url: format!("http://{addr}"), state }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ExportedSpan> {
        self.state.spans.lock().unwrap().clone()
    }

    /// Every request's headers so far (names lower-case).
    pub fn headers(&self) -> Vec<HashMap<String, String>> {
        self.state.headers.lock().unwrap().clone()
    }

    /// Every body received so far, as received.
    pub fn bodies(&self) -> Vec<Vec<u8>> {
        self.state.bodies.lock().unwrap().clone()
    }

    /// Waits up to 20 s until `found` picks something out of the spans received; panics
    /// with what arrived otherwise.
    pub async fn wait_for<T>(&self, found: impl Fn(&[ExportedSpan]) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let spans = self.spans();
            if let Some(t) = found(&spans) {
                return t;
            }
            let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
            assert!(Instant::now() < deadline, "the collector did not get the spans awaited; it got {names:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn text(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

#[handler]
async fn export(req: &poem::Request, body: Body, Data(state): Data<&Arc<State>>) -> Response {
    let headers =
        req.headers().iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned())).collect();
    state.headers.lock().unwrap().push(headers);
    let bytes = body.into_vec().await.unwrap_or_default();
    let request = match ExportTraceServiceRequest::decode(bytes.as_slice()) {
        Ok(r) => r,
        Err(e) => return Response::builder().status(poem::http::StatusCode::BAD_REQUEST).body(e.to_string()),
    };
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .find(|kv| kv.key == "service.name")
            .map(text)
            .unwrap_or_default();
        for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
            spans.push(ExportedSpan {
                service: service.clone(),
                trace_id: span.trace_id,
                span_id: span.span_id,
                parent_span_id: span.parent_span_id,
                name: span.name,
                kind: span.kind,
                attributes: span.attributes.iter().map(|kv| (kv.key.clone(), text(kv))).collect(),
            });
        }
    }
    state.bodies.lock().unwrap().push(bytes);
    state.spans.lock().unwrap().extend(spans);
    Response::builder()
        .content_type("application/x-protobuf")
        .body(ExportTraceServiceResponse::default().encode_to_vec())
}
