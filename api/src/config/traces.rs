//! Span export (OpenTelemetry, OTLP over HTTP), read from the standard `OTEL_`
//! variables so a collector's usual setup applies as is. Off unless an endpoint is set.
use super::{ConfigError, Vars};
use secrecy::SecretString;
use std::time::Duration;

/// Where spans go and under which service name (`crate::telemetry`).
#[derive(Clone, Debug)]
pub struct TraceExport {
    /// The collector's OTLP/HTTP traces URL: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as
    /// given, else `OTEL_EXPORTER_OTLP_ENDPOINT` with `/v1/traces` appended (the OTLP
    /// specification's rule). Neither set: no export at all.
    pub endpoint: String,
    /// `OTEL_SERVICE_NAME`: the `service.name` of every span (`plinth`).
    pub service_name: String,
    /// `OTEL_BSP_SCHEDULE_DELAY`: milliseconds between two batch exports (5000).
    pub batch_delay: Duration,
    /// `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, else `OTEL_EXPORTER_OTLP_HEADERS`: headers of
    /// every export (`api-key=...,x-tenant=...`, values percent-decoded), a hosted
    /// collector's credentials: secrets, never printed.
    pub headers: Vec<(String, SecretString)>,
}

impl TraceExport {
    /// None when no endpoint is set or `OTEL_SDK_DISABLED=true`.
    ///
    /// Errors: an endpoint that is not an http(s) URL; a delay that is not a number.
    pub(super) fn read(v: &Vars) -> Result<Option<Self>, ConfigError> {
        if v.get("OTEL_SDK_DISABLED").is_some_and(|d| d.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let (var, endpoint) = match (v.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), v.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
        {
            (Some(url), _) => ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url),
            (None, Some(base)) => ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("{}/v1/traces", base.trim_end_matches('/'))),
            (None, None) => return Ok(None),
        };
        match url::Url::parse(&endpoint) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => return Err(ConfigError { var, message: format!("expected an http(s) URL, got {endpoint:?}") }),
        }
        Ok(Some(TraceExport {
            endpoint,
            service_name: v.get("OTEL_SERVICE_NAME").unwrap_or_else(|| "plinth".to_owned()),
            batch_delay: Duration::from_millis(v.parse("OTEL_BSP_SCHEDULE_DELAY", 5000u64)?.max(1)),
            headers: headers(v)?,
        }))
    }

    /// The endpoint without what a URL may carry besides where it is (user, password,
    /// query): for `plinth doctor` and logs.
    pub fn endpoint_shown(&self) -> String {
        match url::Url::parse(&self.endpoint) {
            Ok(u) => format!("{}://{}{}", u.scheme(), u.host_str().unwrap_or(""), port(&u)) + u.path(),
            Err(_) => "(unparsable)".to_owned(),
        }
    }
}

/// The export's headers: `key=value` pairs separated by commas (the OTLP exporter
/// specification's format).
fn headers(v: &Vars) -> Result<Vec<(String, SecretString)>, ConfigError> {
    let (var, list) = match (v.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS"), v.get("OTEL_EXPORTER_OTLP_HEADERS")) {
        (Some(list), _) => ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", list),
        (None, Some(list)) => ("OTEL_EXPORTER_OTLP_HEADERS", list),
        (None, None) => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').map(|(k, v)| (k.trim(), v.trim())).unwrap_or((pair, ""));
        let value: String = url::form_urlencoded::parse(format!("v={}", value.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let key_ok = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
        if !key_ok || value.is_empty() {
            // The key only: the value may be a credential.
            return Err(ConfigError { var, message: format!("expected key=value pairs, got a pair with key {key:?}") });
        }
        out.push((key.to_owned(), SecretString::from(value)));
    }
    Ok(out)
}

fn port(u: &url::Url) -> String {
    u.port().map(|p| format!(":{p}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    use secrecy::ExposeSecret;

    fn read(pairs: &[(&str, &str)]) -> Result<Option<TraceExport>, ConfigError> {
        TraceExport::read(&Vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
    }

    #[test]
    fn off_unless_an_endpoint_is_set() {
        assert!(read(&[]).unwrap().is_none());
        assert!(read(&[("OTEL_SERVICE_NAME", "x")]).unwrap().is_none());
        let disabled = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_SDK_DISABLED", "true")];
        assert!(read(&disabled).unwrap().is_none());
    }

    #[test]
    fn the_base_endpoint_gets_the_traces_path_and_the_signal_endpoint_is_kept() {
        let t = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]).unwrap().unwrap();
        assert_eq!(t.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(t.service_name, "plinth");
        assert_eq!(t.batch_delay, Duration::from_secs(5));
        let t = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://u:p@traces.example.com/otlp?k=v"),
            ("OTEL_SERVICE_NAME", "plinth-eu"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(t.endpoint, "https://u:p@traces.example.com/otlp?k=v");
        assert_eq!(t.endpoint_shown(), "https://traces.example.com/otlp");
        assert_eq!((t.service_name.as_str(), t.batch_delay), ("plinth-eu", Duration::from_millis(200)));
    }

    #[test]
    fn headers_are_key_value_pairs_percent_decoded_and_a_bad_one_hides_its_value() {
        let t = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cr%3Dt+x, x-tenant=eu"),
        ])
        .unwrap()
        .unwrap();
        let headers: Vec<(&str, &str)> = t.headers.iter().map(|(k, v)| (k.as_str(), v.expose_secret())).collect();
        assert_eq!(headers, vec![("api-key", "s3cr=t+x"), ("x-tenant", "eu")]);
        let e = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "bad key=hunter2"),
        ])
        .unwrap_err();
        assert_eq!(e.var, "OTEL_EXPORTER_OTLP_HEADERS");
        assert!(!e.message.contains("hunter2"), "{}", e.message);
    }

    #[test]
    fn a_bad_endpoint_names_its_variable() {
        let e = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]).unwrap_err();
        assert_eq!(e.var, "OTEL_EXPORTER_OTLP_ENDPOINT");
        let e = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"), ("OTEL_BSP_SCHEDULE_DELAY", "soon")]).unwrap_err();
        assert_eq!(e.var, "OTEL_BSP_SCHEDULE_DELAY");
    }
}
