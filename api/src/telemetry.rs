//! Structured logs with tracing-subscriber: pretty in development, JSON lines when
//! `PLINTH_LOG_FORMAT=json`, always on standard error (standard output is a command's
//! result; the long-running `serve`, `mailer` and `worker` print none). The filter comes
//! from `RUST_LOG`. Colours (pretty format only) only when standard error is a terminal
//! and `NO_COLOR` is unset or empty (no-color.org), so a pipe, a file or a log collector
//! never gets escape codes.
//!
//! Optionally, spans are exported with OpenTelemetry (OTLP over HTTP, protobuf) when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set ([`crate::config::TraceExport`]): one trace per
//! request, the request's span (`request`, with its `request_id`) over its GraphQL
//! operation's (`graphql.operation.name`, `graphql.operation.type`) over one span per
//! SQL statement (`db.system=postgresql`, the statement's first keyword only). Spans carry
//! names, ids and keywords, never a token, a password, an e-mail address, a statement's
//! text or its parameters. Batches leave from the SDK's own thread; [`shutdown`] sends
//! what is left (the end of the drain). Unset, nothing is installed: the GraphQL and SQL
//! spans are at DEBUG under [`TRACE_TARGET`], which the default filter turns off at their
//! call sites.
use crate::config::{LogFormat, TraceExport};
use std::io::IsTerminal;
use std::sync::{
    atomic::{AtomicBool, Ordering},
    Mutex,
};
use tracing_subscriber::{filter, fmt, prelude::*, EnvFilter, Layer};

const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,poem=warn";

/// The target of the spans that exist for export only (a GraphQL operation, a SQL
/// statement): DEBUG, so a log filter at INFO never sees them and they cost nothing
/// when nothing exports.
pub const TRACE_TARGET: &str = "plinth::trace";

/// The export's provider, kept to flush and stop it at the end ([`shutdown`]).
static PROVIDER: Mutex<Option<opentelemetry_sdk::trace::SdkTracerProvider>> = Mutex::new(None);
/// The longest one export may take: a collector that does not answer delays the drain
/// this much at most.
pub const EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// Whether spans are exported (names worth computing).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Installs the global subscriber once, logging to standard error (every command's:
/// standard output carries a command's result only); later calls are no-ops (tests
/// start many apps).
pub fn init(format: LogFormat) {
    install(format, None);
}

/// Whether the logs, on standard error, may carry colours.
fn stderr_colour() -> bool {
    colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR"))
}

/// Whether logs to a stream may carry colours: a terminal, and `NO_COLOR` unset or
/// empty.
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// [`init`], and exporting spans to `traces` when set (`plinth serve`). Call
/// [`shutdown`] at the end.
pub fn init_with_traces(format: LogFormat, traces: Option<&TraceExport>) {
    install(format, traces);
}

/// Whether spans are exported: a span's name worth formatting (`otel.name`).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Sends the spans not exported yet and stops the export (bounded by the exporter's
/// timeout, [`EXPORT_TIMEOUT`]); nothing when nothing exports. Idempotent.
pub fn shutdown() {
    let provider = PROVIDER.lock().map(|mut p| p.take()).unwrap_or(None);
    if let Some(provider) = provider {
        EXPORTING.store(false, Ordering::Relaxed);
        if let Err(e) = provider.shutdown_with_timeout(EXPORT_TIMEOUT) {
            tracing::warn!(error = %e, "flushing the span export");
        }
    }
}

fn install(format: LogFormat, traces: Option<&TraceExport>) {
    let logs = match format {
        LogFormat::Json => fmt::layer()
            .json()
            .with_ansi(false)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Pretty => fmt::layer().compact().with_ansi(stderr_colour()).with_writer(std::io::stderr).boxed(),
    }
    .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER)));
    let export = match traces.map(exporter) {
        None => None,
        Some(Ok(layer)) => Some(layer),
        Some(Err(e)) => {
            // Logs still work; the start says why spans do not leave.
            eprintln!("plinth: span export off: {e:#}");
            None
        }
    };
    let exporting = export.is_some();
    if tracing_subscriber::registry().with(logs).with(export).try_init().is_ok() && exporting {
        EXPORTING.store(true, Ordering::Relaxed);
    } else if exporting {
        // Another subscriber was there first: this export would never see a span.
        shutdown();
    }
}

/// The OpenTelemetry layer for `traces`, its provider kept for [`shutdown`]; it sees
/// spans only (events stay in the logs): the request's span, and the spans of
/// [`TRACE_TARGET`] within it.
fn exporter<S>(traces: &TraceExport) -> anyhow::Result<impl Layer<S>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
    use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
    use secrecy::ExposeSecret;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces.endpoint.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .with_headers(traces.headers.iter().map(|(k, v)| (k.clone(), v.expose_secret().to_owned())).collect())
        .build()?;
    let batches = BatchSpanProcessor::builder(exporter)
        .with_batch_config(BatchConfigBuilder::default().with_scheduled_delay(traces.batch_delay).build())
        .build();
    let resource = opentelemetry_sdk::Resource::builder_empty()
        .with_service_name(traces.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder().with_span_processor(batches).with_resource(resource).build();
    let tracer = provider.tracer("plinth");
    *PROVIDER.lock().map_err(|_| anyhow::anyhow!("the span export's lock is poisoned"))? = Some(provider);
    // A request's span starts a trace; the spans of TRACE_TARGET are exported inside one
    // only (a sweeper's statements start none).
    let exported = filter::dynamic_filter_fn(|meta, cx| {
        meta.is_span()
            && match meta.target() {
                TRACE_TARGET => cx.lookup_current().is_some(),
                target => target == "api::http" && meta.name() == "request",
            }
    });
    Ok(tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_level(false)
        .with_target(false)
        .with_filter(exported))
}

/// The first keyword of a SQL statement (`SELECT`, `INSERT`, `WITH` ...), upper-case,
/// for a statement's span: never its text, which may hold values.
pub fn sql_keyword(sql: &str) -> &'static str {
    let word: String =
        sql.trim_start().chars().take_while(|c| c.is_ascii_alphabetic()).take(16).collect::<String>().to_uppercase();
    const KNOWN: [&str; 17] = [
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "WITH",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SET",
        "SAVEPOINT",
        "RELEASE",
        "LOCK",
        "NOTIFY",
        "CALL",
        "VALUES",
        "TRUNCATE",
        "DO",
    ];
    KNOWN.into_iter().find(|k| *k == word).unwrap_or("OTHER")
}

#[cfg(test)]
mod tests {
    use super::{colour, sql_keyword, TRACE_TARGET};

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())), "an empty NO_COLOR does not count (no-color.org)");
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
        assert!(!colour(false, Some("1".into())));
    }

    // nextest runs each test in a process of its own: this one's global subscriber is
    // the server's without an export, with the default filter.
    #[test]
    fn without_an_export_the_operation_and_statement_spans_are_never_built() {
        std::env::remove_var("RUST_LOG");
        super::init(crate::config::LogFormat::Pretty);
        assert!(!super::exporting());
        let statement = tracing::debug_span!(target: TRACE_TARGET, "sql", otel.name = "SELECT");
        assert!(statement.is_disabled());
        // The request's span is built as before (its fields are in every log line).
        assert!(!tracing::info_span!("request", request_id = "r").is_disabled());
    }

    #[test]
    fn a_statement_is_named_by_its_first_keyword_only() {
        assert_eq!(sql_keyword("  select * from users where email = 'a@b.c'"), "SELECT");
        assert_eq!(sql_keyword("WITH x AS (SELECT 1) SELECT * FROM x"), "WITH");
        assert_eq!(sql_keyword("INSERT INTO t VALUES ($1)"), "INSERT");
        assert_eq!(sql_keyword("'secret@example.com'"), "OTHER");
        assert_eq!(sql_keyword("EXPLAIN ANALYZE SELECT 1"), "OTHER");
    }
}
