//! Structured logs with tracing-subscriber: pretty in development, JSON lines when
//! `PLINTH_LOG_FORMAT=json`. The filter comes from `RUST_LOG`. Colours (pretty format
//! only) only when the stream the logs go to is a terminal and `NO_COLOR` is unset or
//! empty (no-color.org), so a pipe, a file or a log collector never gets escape codes.
use crate::config::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,poem=warn";

/// Installs the global subscriber once, logging to standard output; later calls are
/// no-ops (tests start many apps).
pub fn init(format: LogFormat) {
    let colour = colour(std::io::stdout().is_terminal(), std::env::var_os("NO_COLOR"));
    install(format, colour, std::io::stdout);
}

/// [`init`], logging to standard error: for commands whose standard output is their
/// result (`plinth metrics export` writes CSV there).
pub fn init_to_stderr(format: LogFormat) {
    let colour = colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR"));
    install(format, colour, std::io::stderr);
}

/// Whether logs to a stream may carry colours: a terminal, and `NO_COLOR` unset or
/// empty.
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

fn install<W>(format: LogFormat, colour: bool, writer: W)
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer().json().with_ansi(false).with_current_span(true).with_span_list(false).with_writer(writer),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().compact().with_ansi(colour).with_writer(writer)).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::colour;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())), "an empty NO_COLOR does not count (no-color.org)");
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
        assert!(!colour(false, Some("1".into())));
    }
}
