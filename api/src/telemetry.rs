//! Structured logs with tracing-subscriber: pretty in development, JSON lines when
//! `PLINTH_LOG_FORMAT=json`. The filter comes from `RUST_LOG`.
use crate::config::LogFormat;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,poem=warn";

/// Installs the global subscriber once, logging to standard output; later calls are
/// no-ops (tests start many apps).
pub fn init(format: LogFormat) {
    install(format, std::io::stdout);
}

/// [`init`], logging to standard error: for commands whose standard output is their
/// result (`plinth metrics export` writes CSV there).
pub fn init_to_stderr(format: LogFormat) {
    install(format, std::io::stderr);
}

fn install<W>(format: LogFormat, writer: W)
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(fmt::layer().json().with_current_span(true).with_span_list(false).with_writer(writer))
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().compact().with_writer(writer)).try_init(),
    };
}
