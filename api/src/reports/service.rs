//! One metric as a CSV file: the parameters read from name–value pairs (a URL's query,
//! the command line's flags), the metric's service function called (the one its
//! GraphQL field calls, in the caller's transaction: administrators only), its result
//! written as rows with the `csv` crate (RFC 4180: CRLF line ends, fields quoted when
//! they need it).
//!
//! Columns are named as the GraphQL fields are, with the same units: amounts in cents
//! of the catalog currency, rates as fractions, durations in seconds, times in RFC 3339
//! (UTC), days as `YYYY-MM-DD`; an empty cell is a null. No free text leaves (NPS and
//! CSAT comments stay in GraphQL), and every text cell is a name the server chose or
//! validated (plans, experiment keys, variants, goals), so no cell can start a
//! spreadsheet formula.
use crate::{
    accounts::{domain::EmailAddress, store as accounts},
    billing::store as billing,
    business::service::{self as business, CohortMetric, Step},
    catalog::Catalog,
    db::{RequestMeta, RequestTx, RuntimePool},
    error::{AppError, AppResult},
    experiments::service as experiments,
    feedback::service as feedback,
    model::{AccountState, DbRole, PlanCode, Role},
    principal::{Limits, Principal, UserClaims},
};
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc};
use uuid::Uuid;

/// A metric that can be exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// `mrr`: MRR and its movements per bucket.
    Mrr,
    /// `churn`: churn rates per bucket.
    Churn,
    /// `conversion`: the sign-up funnel.
    Conversion,
    /// `activation`: first successful job within N days.
    Activation,
    /// `cohorts`: the retention table.
    Cohorts,
    /// `supportMetrics`: tickets, response and resolution times, CSAT.
    SupportMetrics,
    /// `usageTotals`: jobs per day and plan.
    UsageTotals,
    /// `experimentResults`: an experiment's results per goal and variant.
    ExperimentResults,
    /// `npsSummary`: NPS per month and over the range.
    NpsSummary,
}

impl Metric {
    /// Every metric, in the order of the documentation.
    pub const ALL: [Metric; 9] = [
        Metric::Mrr,
        Metric::Churn,
        Metric::Conversion,
        Metric::Activation,
        Metric::Cohorts,
        Metric::SupportMetrics,
        Metric::UsageTotals,
        Metric::ExperimentResults,
        Metric::NpsSummary,
    ];

    /// Its name: the GraphQL field's (`supportMetrics`).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Mrr => "mrr",
            Metric::Churn => "churn",
            Metric::Conversion => "conversion",
            Metric::Activation => "activation",
            Metric::Cohorts => "cohorts",
            Metric::SupportMetrics => "supportMetrics",
            Metric::UsageTotals => "usageTotals",
            Metric::ExperimentResults => "experimentResults",
            Metric::NpsSummary => "npsSummary",
        }
    }

    /// The metric named `name` (as [`Metric::name`] spells it).
    pub fn parse(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The parameters it takes (`from` and `to` are required where listed).
    pub fn parameters(self) -> &'static [&'static str] {
        match self {
            Metric::Mrr | Metric::Churn => &["from", "to", "interval"],
            Metric::Activation => &["from", "to", "withinDays"],
            Metric::Cohorts => &["from", "to", "cohort"],
            Metric::ExperimentResults => &["key", "goal"],
            Metric::Conversion | Metric::SupportMetrics | Metric::UsageTotals | Metric::NpsSummary => &["from", "to"],
        }
    }
}

/// A CSV file made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    /// A file name for it (`mrr_2025-01-01_2025-05-01.csv`).
    pub file_name: String,
    /// The CSV text, UTF-8.
    pub csv: Vec<u8>,
}

impl Export {
    /// The CSV's rows as a JSON array of objects keyed by its header (`plinth metrics
    /// export --json`): a cell that reads as a number is one, every other a string.
    ///
    /// Errors: a CSV this module did not write (a bug).
    pub fn to_json(&self) -> anyhow::Result<serde_json::Value> {
        let mut reader = csv::Reader::from_reader(self.csv.as_slice());
        let header = reader.headers()?.clone();
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record?;
            let row: serde_json::Map<String, serde_json::Value> =
                header.iter().zip(record.iter()).map(|(name, cell)| (name.to_owned(), cell_json(cell))).collect();
            rows.push(serde_json::Value::Object(row));
        }
        Ok(serde_json::Value::Array(rows))
    }
}

/// A CSV cell as JSON: a number when it is one written the way JSON writes it (so the
/// text is kept exactly: `12.50` or `007` stay strings), else the text.
fn cell_json(cell: &str) -> serde_json::Value {
    match serde_json::from_str::<serde_json::Value>(cell) {
        Ok(serde_json::Value::Number(n)) if n.to_string() == cell => serde_json::Value::Number(n),
        _ => cell.into(),
    }
}

/// The parameters of one export, as given.
struct Params<'a> {
    pairs: &'a [(String, String)],
}

impl<'a> Params<'a> {
    /// Refuses a parameter the metric does not take, or one given twice.
    fn check(pairs: &'a [(String, String)], metric: Metric) -> AppResult<Self> {
        for (i, (name, _)) in pairs.iter().enumerate() {
            if !metric.parameters().contains(&name.as_str()) {
                return Err(AppError::bad_input(
                    name,
                    format!("{} takes no such parameter (it takes {})", metric.name(), metric.parameters().join(", ")),
                ));
            }
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(AppError::bad_input(name, "is given twice"));
            }
        }
        Ok(Params { pairs })
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// An instant: RFC 3339 (`2025-01-01T00:00:00Z`) or a day (`2025-01-01`, its
    /// midnight UTC).
    fn instant(&self, name: &str) -> AppResult<DateTime<Utc>> {
        let raw = self.get(name).ok_or_else(|| AppError::bad_input(name, "is required"))?;
        if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
            return Ok(t.with_timezone(&Utc));
        }
        NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .map(|d| d.and_time(NaiveTime::MIN).and_utc())
            .map_err(|_| AppError::bad_input(name, "must be an RFC 3339 time or a day (YYYY-MM-DD)"))
    }

    fn range(&self) -> AppResult<(DateTime<Utc>, DateTime<Utc>)> {
        Ok((self.instant("from")?, self.instant("to")?))
    }

    /// One of `choices` (case-insensitive), `default` when absent.
    fn choice<T: Copy>(&self, name: &str, choices: &[(&str, T)], default: T) -> AppResult<T> {
        let Some(raw) = self.get(name) else { return Ok(default) };
        choices.iter().find(|(c, _)| c.eq_ignore_ascii_case(raw)).map(|(_, v)| *v).ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(c, _)| *c).collect();
            AppError::bad_input(name, format!("must be one of {}", names.join(", ")))
        })
    }
}

/// A value as one cell.
trait Cell {
    fn cell(&self) -> String;
}

impl Cell for i64 {
    fn cell(&self) -> String {
        self.to_string()
    }
}

impl Cell for i32 {
    fn cell(&self) -> String {
        self.to_string()
    }
}

/// The shortest text that reads back as the same number (as GraphQL's JSON gives it).
impl Cell for f64 {
    fn cell(&self) -> String {
        self.to_string()
    }
}

impl<T: Cell> Cell for Option<T> {
    fn cell(&self) -> String {
        self.as_ref().map(Cell::cell).unwrap_or_default()
    }
}

impl Cell for DateTime<Utc> {
    fn cell(&self) -> String {
        self.to_rfc3339()
    }
}

impl Cell for NaiveDate {
    fn cell(&self) -> String {
        self.format("%Y-%m-%d").to_string()
    }
}

impl Cell for &str {
    fn cell(&self) -> String {
        (*self).to_owned()
    }
}

impl Cell for String {
    fn cell(&self) -> String {
        self.clone()
    }
}

macro_rules! row {
    ($($value:expr),* $(,)?) => { vec![$(Cell::cell(&$value)),*] };
}

/// A header and its rows.
struct Table {
    header: &'static [&'static str],
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &'static [&'static str]) -> Self {
        Table { header, rows: Vec::new() }
    }

    /// The CSV text.
    fn csv(&self) -> AppResult<Vec<u8>> {
        let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
        w.write_record(self.header).map_err(anyhow::Error::new)?;
        for row in &self.rows {
            debug_assert_eq!(row.len(), self.header.len());
            w.write_record(row).map_err(anyhow::Error::new)?;
        }
        Ok(w.into_inner().map_err(|e| anyhow::anyhow!("finishing a CSV file: {e}"))?)
    }
}

/// `metric` over `params` (name–value pairs: `from`, `to` as RFC 3339 or `YYYY-MM-DD`,
/// `interval` DAY|WEEK|MONTH (MONTH when absent), `withinDays` (7), `cohort`
/// ACTIVE|REVENUE (ACTIVE), `key` and `goal` (every derived and tracked goal when
/// absent) of an experiment) as CSV, from the service function of its GraphQL field,
/// in the caller's transaction.
///
/// Errors: UNAUTHENTICATED, FORBIDDEN (anyone but an administrator with a session:
/// checked before the parameters), BAD_USER_INPUT (`field`: the parameter at fault),
/// NOT_FOUND (experiment), INTERNAL.
pub async fn export(
    tx: &RequestTx,
    catalog: &Catalog,
    metric: Metric,
    pairs: &[(String, String)],
) -> AppResult<Export> {
    business::admin(tx)?;
    let params = Params::check(pairs, metric)?;
    let table = table(tx, catalog, metric, &params).await?;
    let suffix = match metric {
        Metric::ExperimentResults => params.get("key").unwrap_or_default().to_owned(),
        _ => {
            let (from, to) = params.range()?;
            format!("{}_{}", from.date_naive().cell(), to.date_naive().cell())
        }
    };
    Ok(Export { file_name: format!("{}_{suffix}.csv", metric.name()), csv: table.csv()? })
}

async fn table(tx: &RequestTx, catalog: &Catalog, metric: Metric, params: &Params<'_>) -> AppResult<Table> {
    let steps = [("DAY", Step::Day), ("WEEK", Step::Week), ("MONTH", Step::Month)];
    let mut t;
    match metric {
        Metric::Mrr => {
            let (from, to) = params.range()?;
            let step = params.choice("interval", &steps, Step::Month)?;
            t = Table::new(&[
                "currency",
                "start",
                "end",
                "openingCents",
                "closingCents",
                "newCents",
                "expansionCents",
                "contractionCents",
                "churnCents",
                "reactivationCents",
                "netChangeCents",
                "customers",
            ]);
            for p in business::mrr(tx, from, to, step).await? {
                t.rows.push(row![
                    catalog.currency,
                    p.start,
                    p.end,
                    p.opening,
                    p.closing,
                    p.new,
                    p.expansion,
                    p.contraction,
                    p.churn,
                    p.reactivation,
                    p.net_change(),
                    p.customers
                ]);
            }
        }
        Metric::Churn => {
            let (from, to) = params.range()?;
            let step = params.choice("interval", &steps, Step::Month)?;
            t = Table::new(&[
                "start",
                "end",
                "customersAtStart",
                "customersChurned",
                "openingCents",
                "churnedCents",
                "contractionCents",
                "expansionCents",
                "logoChurnRate",
                "revenueChurnRate",
                "netRevenueRetention",
            ]);
            for p in business::churn(tx, from, to, step).await? {
                t.rows.push(row![
                    p.start,
                    p.end,
                    p.customers_start,
                    p.customers_churned,
                    p.opening,
                    p.churned,
                    p.contraction,
                    p.expansion,
                    p.logo_churn_rate,
                    p.revenue_churn_rate,
                    p.net_revenue_retention
                ]);
            }
        }
        Metric::Conversion => {
            let (from, to) = params.range()?;
            let f = business::conversion(tx, from, to).await?;
            t = Table::new(&[
                "from",
                "to",
                "signups",
                "verified",
                "trials",
                "paid",
                "trialsPaid",
                "verifiedRate",
                "trialRate",
                "paidRate",
                "trialToPaidRate",
            ]);
            t.rows.push(row![
                from,
                to,
                f.signups,
                f.verified,
                f.trials,
                f.paid,
                f.trials_paid,
                f.verified_rate(),
                f.trial_rate(),
                f.paid_rate(),
                f.trial_to_paid_rate()
            ]);
        }
        Metric::Activation => {
            let (from, to) = params.range()?;
            let days = match params.get("withinDays") {
                None => 7,
                Some(d) => d.parse().map_err(|_| AppError::bad_input("withinDays", "must be a whole number"))?,
            };
            let a = business::activation(tx, from, to, days).await?;
            t = Table::new(&[
                "from",
                "to",
                "withinDays",
                "signups",
                "activated",
                "rate",
                "withFirstJob",
                "medianSecondsToFirstJob",
                "p90SecondsToFirstJob",
            ]);
            t.rows.push(row![
                from,
                to,
                days,
                a.signups,
                a.activated,
                a.rate(),
                a.with_first_job,
                a.median_seconds,
                a.p90_seconds
            ]);
        }
        Metric::Cohorts => {
            let (from, to) = params.range()?;
            let kinds = [("ACTIVE", CohortMetric::Active), ("REVENUE", CohortMetric::Revenue)];
            let kind = params.choice("cohort", &kinds, CohortMetric::Active)?;
            t = Table::new(&["cohort", "monthsSince", "size", "value", "share"]);
            for c in business::cohorts(tx, from, to, kind).await? {
                t.rows.push(row![c.cohort, c.months_since, c.size, c.value, c.share]);
            }
        }
        Metric::SupportMetrics => {
            let (from, to) = params.range()?;
            let f = business::support(tx, from, to).await?;
            t = Table::new(&[
                "from",
                "to",
                "opened",
                "responded",
                "firstResponseMedianSeconds",
                "firstResponseP90Seconds",
                "resolved",
                "resolutionMedianSeconds",
                "backlog",
                "csatResponses",
                "csatAverage",
                "csatSatisfied",
                "csat",
            ]);
            t.rows.push(row![
                from,
                to,
                f.opened,
                f.responded,
                f.first_response_median_seconds,
                f.first_response_p90_seconds,
                f.resolved,
                f.resolution_median_seconds,
                f.backlog,
                f.csat_responses,
                f.csat_average,
                f.csat_satisfied,
                f.csat_satisfied_share()
            ]);
        }
        Metric::UsageTotals => {
            let (from, to) = params.range()?;
            t = Table::new(&["day", "plan", "scans", "preparations", "publishes"]);
            for u in business::usage_totals(tx, from, to).await? {
                t.rows.push(row![u.day, u.plan, u.scans, u.preparations, u.publishes]);
            }
        }
        Metric::ExperimentResults => {
            let key = params.get("key").ok_or_else(|| AppError::bad_input("key", "is required"))?;
            let goals = match params.get("goal") {
                Some(goal) => vec![goal.to_owned()],
                None => experiments::goals(tx, key).await?,
            };
            t = Table::new(&[
                "experiment",
                "status",
                "goal",
                "variant",
                "weight",
                "exposed",
                "converted",
                "rate",
                "difference",
                "ciLow",
                "ciHigh",
                "zScore",
                "pValue",
            ]);
            for goal in goals {
                let (e, rows) = experiments::results(tx, key, &goal).await?;
                for r in rows {
                    let c = r.comparison;
                    t.rows.push(row![
                        e.key,
                        e.status.to_uppercase(),
                        goal,
                        r.counts.variant,
                        r.counts.weight,
                        r.counts.exposed,
                        r.counts.converted,
                        r.rate(),
                        c.map(|c| c.difference),
                        c.map(|c| c.ci_low),
                        c.map(|c| c.ci_high),
                        c.and_then(|c| c.z),
                        c.and_then(|c| c.p_value)
                    ]);
                }
            }
        }
        Metric::NpsSummary => {
            let (from, to) = params.range()?;
            let report = feedback::summary(tx, from, to, 0).await?;
            t = Table::new(&[
                "period",
                "respondents",
                "promoters",
                "passives",
                "detractors",
                "nps",
                "eligible",
                "responseRate",
                "score0",
                "score1",
                "score2",
                "score3",
                "score4",
                "score5",
                "score6",
                "score7",
                "score8",
                "score9",
                "score10",
            ]);
            let blank = || vec![String::new(); 13];
            for m in &report.months {
                let c = m.counts;
                let mut cells = row![
                    format!("{:04}-{:02}", m.start.year(), m.start.month()),
                    c.respondents,
                    c.promoters,
                    c.passives,
                    c.detractors,
                    c.nps()
                ];
                cells.extend(blank());
                t.rows.push(cells);
            }
            let (s, c) = (&report.summary, report.summary.counts);
            let mut cells = row![
                "total",
                c.respondents,
                c.promoters,
                c.passives,
                c.detractors,
                c.nps(),
                s.eligible,
                s.response_rate()
            ];
            cells.extend(s.distribution.iter().map(Cell::cell));
            t.rows.push(cells);
        }
    }
    Ok(t)
}

/// `metric` over `pairs` as CSV for the command line (`plinth metrics export`): as
/// [`export`], in a transaction of its own acting for an administrator (`email`'s
/// account, or the first administrator's), rolled back at the end (it only reads).
///
/// Errors: no such administrator; [`export`]'s, with their code.
pub async fn export_as_operator(
    pool: &RuntimePool,
    statement_timeout_ms: u64,
    catalog: &Catalog,
    email: Option<&str>,
    metric: Metric,
    pairs: &[(String, String)],
) -> anyhow::Result<Export> {
    let principal = operator(pool, statement_timeout_ms, email).await?;
    tracing::info!(metric = metric.name(), admin = ?principal.user_id(), "exporting a metric");
    let tx = RequestTx::new(pool, principal, RequestMeta::internal("metrics.export"), statement_timeout_ms);
    let export = export(&tx, catalog, metric, pairs).await;
    tx.rollback().await;
    export.map_err(AppError::into_anyhow)
}

/// The administrator the command line acts as: the account with `email`, or else the
/// first administrator (the oldest id). Found through the narrow functions the server
/// itself uses, `priv.billing_admins` (as the system role, as billing's dispute notice
/// does) and `priv.user_id_for_email` (as the anonymous role, as a password reset
/// does), so the command needs no other read.
/// The principal it returns stands for that account's session: the metrics run as
/// `plinth_metrics` for it, exactly as for the administrator over HTTP.
///
/// Errors: no such administrator, or the database.
pub async fn operator(pool: &RuntimePool, statement_timeout_ms: u64, email: Option<&str>) -> anyhow::Result<Principal> {
    let meta = RequestMeta::internal("metrics.export");
    let tx = RequestTx::begin(pool, Principal::System, meta, statement_timeout_ms).await?;
    let found: AppResult<Option<Uuid>> = async {
        let admins = billing::admins(&tx).await?;
        let Some(email) = email else { return Ok(admins.first().copied()) };
        let email = EmailAddress::parse("--admin", email)?;
        let id = tx.acting_as(DbRole::Anon, None, accounts::user_id_for_email(&tx, email.as_str())).await?;
        Ok(id.filter(|id| admins.contains(id)))
    }
    .await;
    tx.rollback().await;
    let user_id = found.map_err(AppError::into_anyhow)?.ok_or_else(|| match email {
        Some(e) => anyhow::anyhow!("no administrator has the address {e}"),
        None => anyhow::anyhow!("there is no administrator yet: create one with `plinth admin create --email`"),
    })?;
    let now = Utc::now();
    Ok(Principal::User(UserClaims {
        user_id,
        role: Role::Admin,
        session_id: Uuid::nil(),
        expires_at: now + chrono::Duration::hours(1),
        issued_at: now,
        plan: PlanCode::Free,
        account_state: AccountState::Free,
        quotas: Limits::default(),
        api: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_become_numbers_only_when_the_text_is_kept() {
        assert_eq!(cell_json("12"), serde_json::json!(12));
        assert_eq!(cell_json("-50"), serde_json::json!(-50));
        assert_eq!(cell_json("0.25"), serde_json::json!(0.25));
        for text in ["", "12.50", "007", "2025-01-01", "pro", " 1", "1e3", "NaN"] {
            assert_eq!(cell_json(text), serde_json::json!(text), "{text:?}");
        }
        let export = Export { file_name: "x.csv".into(), csv: b"day,mrr,plan\r\n2025-01-01,1200,pro\r\n".to_vec() };
        assert_eq!(export.to_json().unwrap(), serde_json::json!([{ "day": "2025-01-01", "mrr": 1200, "plan": "pro" }]));
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    }

    #[test]
    fn names_round_trip() {
        for m in Metric::ALL {
            assert_eq!(Metric::parse(m.name()), Some(m));
        }
        assert_eq!(Metric::parse("MRR"), None);
    }

    #[test]
    fn parameters_are_checked_by_name_and_form() {
        let field = |r: AppResult<Params<'_>>| match r {
            Err(AppError::BadUserInput { field, .. }) => field,
            other => panic!("{:?}", other.is_ok()),
        };
        let unknown = pairs(&[("from", "2025-01-01"), ("limit", "3")]);
        assert_eq!(field(Params::check(&unknown, Metric::Mrr)), "limit");
        let twice = pairs(&[("from", "2025-01-01"), ("from", "2025-02-01")]);
        assert_eq!(field(Params::check(&twice, Metric::Conversion)), "from");
        let ok = pairs(&[("from", "2025-01-01"), ("to", "2025-02-01T12:00:00+01:00"), ("interval", "week")]);
        let p = Params::check(&ok, Metric::Mrr).unwrap();
        let (from, to) = p.range().unwrap();
        assert_eq!(from.cell(), "2025-01-01T00:00:00+00:00");
        assert_eq!(to.cell(), "2025-02-01T11:00:00+00:00");
        let steps = [("DAY", Step::Day), ("WEEK", Step::Week)];
        assert_eq!(p.choice("interval", &steps, Step::Day).unwrap(), Step::Week);
        let bad = pairs(&[("from", "January"), ("interval", "YEAR")]);
        let p = Params::check(&bad, Metric::Churn).unwrap();
        assert!(matches!(p.instant("from"), Err(AppError::BadUserInput { .. })));
        assert!(matches!(p.instant("to"), Err(AppError::BadUserInput { .. })));
        assert!(p.choice("interval", &steps, Step::Day).is_err());
    }

    #[test]
    fn cells_quote_only_what_needs_it() {
        let mut t = Table::new(&["a", "b", "c"]);
        t.rows.push(row![1_i64, Some(0.5_f64), None::<f64>]);
        t.rows.push(row!["x,y", "say \"hi\"", -2_i64]);
        assert_eq!(
            String::from_utf8(t.csv().unwrap()).unwrap(),
            "a,b,c\r\n1,0.5,\r\n\"x,y\",\"say \"\"hi\"\"\",-2\r\n"
        );
    }
}
