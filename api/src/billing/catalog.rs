//! The plan catalog: names, prices, Stripe price ids, trial days and quotas, from a
//! checked-in TOML file validated at start.
use anyhow::{bail, ensure, Context};
use serde::Deserialize;
use std::{collections::HashSet, path::Path};

/// The catalog shipped with the binary (`plans.toml` at the repository root).
const BUILTIN: &str = include_str!("../../../plans.toml");

/// Plan codes, in order.
pub const CODES: &[&str] = &["free", "starter", "pro", "scale"];

/// Limits of one plan per billing period.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// SCAN jobs.
    pub scans: i64,
    /// PREPARE jobs.
    pub preparations: i64,
    /// Connected marketplace accounts at once.
    pub connected_accounts: i64,
    /// Bytes of photos stored at once.
    pub storage_bytes: i64,
    /// API requests per minute.
    pub api_requests_per_minute: i64,
}

/// One plan.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// `free`, `starter`, `pro` or `scale`.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Monthly price in cents.
    pub monthly_price_cents: i64,
    /// Yearly price in cents.
    pub yearly_price_cents: i64,
    /// Free trial days on a first subscription.
    pub trial_days: u32,
    /// Stripe price of the monthly interval.
    pub stripe_price_monthly: Option<String>,
    /// Stripe price of the yearly interval.
    pub stripe_price_yearly: Option<String>,
    /// Its limits.
    pub quotas: Quotas,
}

impl Plan {
    /// The Stripe price of `interval` (`month` or `year`).
    pub fn price_id(&self, interval: &str) -> Option<&str> {
        match interval {
            "month" => self.stripe_price_monthly.as_deref(),
            "year" => self.stripe_price_yearly.as_deref(),
            _ => None,
        }
    }
}

/// The whole catalog.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// ISO currency of every price (lower case, as Stripe writes it).
    pub currency: String,
    /// The plans, Free first.
    pub plans: Vec<Plan>,
}

impl Catalog {
    /// The catalog in `plans_file` (`PLINTH_PLANS_FILE`), or the built-in one when None.
    pub fn load(plans_file: Option<&Path>) -> anyhow::Result<Self> {
        match plans_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("PLINTH_PLANS_FILE: reading {}", path.display()))?;
                Self::parse(&text).context("PLINTH_PLANS_FILE")
            }
            None => Self::parse(BUILTIN).context("the built-in plans.toml"),
        }
    }

    /// Parses and validates a catalog.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let catalog: Catalog = toml::from_str(text)?;
        catalog.validate()?;
        Ok(catalog)
    }

    fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.currency.len() == 3, "currency must be a 3-letter ISO code");
        let codes: Vec<&str> = self.plans.iter().map(|p| p.code.as_str()).collect();
        ensure!(codes == CODES, "plans must be exactly {CODES:?} in that order, found {codes:?}");
        let mut prices = HashSet::new();
        for p in &self.plans {
            ensure!(!p.name.trim().is_empty(), "plan {}: empty name", p.code);
            ensure!(p.trial_days <= 90, "plan {}: trial_days must be at most 90", p.code);
            let q = &p.quotas;
            for (name, v) in [
                ("scans", q.scans),
                ("preparations", q.preparations),
                ("connected_accounts", q.connected_accounts),
                ("storage_bytes", q.storage_bytes),
                ("api_requests_per_minute", q.api_requests_per_minute),
            ] {
                ensure!(v >= 0, "plan {}: quota {name} must not be negative", p.code);
            }
            if p.code == "free" {
                ensure!(p.monthly_price_cents == 0 && p.yearly_price_cents == 0, "the free plan costs nothing");
                ensure!(p.stripe_price_monthly.is_none() && p.stripe_price_yearly.is_none(), "free has no prices");
                continue;
            }
            ensure!(p.monthly_price_cents > 0 && p.yearly_price_cents > 0, "plan {}: prices must be positive", p.code);
            for interval in ["month", "year"] {
                let Some(id) = p.price_id(interval).filter(|id| !id.trim().is_empty()) else {
                    bail!("plan {}: missing the Stripe price of interval {interval}", p.code);
                };
                ensure!(prices.insert(id.to_owned()), "Stripe price {id} is used twice");
            }
        }
        Ok(())
    }

    /// A plan by code.
    pub fn plan(&self, code: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.code == code)
    }

    /// The plan and interval a Stripe price stands for.
    pub fn by_price(&self, price_id: &str) -> Option<(&Plan, &'static str)> {
        self.plans.iter().find_map(|p| {
            if p.stripe_price_monthly.as_deref() == Some(price_id) {
                Some((p, "month"))
            } else if p.stripe_price_yearly.as_deref() == Some(price_id) {
                Some((p, "year"))
            } else {
                None
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalog_is_valid() {
        let c = Catalog::parse(BUILTIN).unwrap();
        assert_eq!(c.plans.len(), 4);
        assert_eq!(c.by_price("price_pro_yearly").map(|(p, i)| (p.code.as_str(), i)), Some(("pro", "year")));
        assert_eq!(c.plan("starter").unwrap().trial_days, 14);
    }

    #[test]
    fn mistakes_are_refused() {
        let dup = BUILTIN.replace("price_pro_yearly", "price_pro_monthly");
        assert!(Catalog::parse(&dup).unwrap_err().to_string().contains("used twice"));
        let neg = BUILTIN.replacen("scans = 500", "scans = -1", 1);
        assert!(Catalog::parse(&neg).is_err());
        let unknown = BUILTIN.replacen("trial_days = 0", "trial_days = 0\nsurprise = 1", 1);
        assert!(Catalog::parse(&unknown).is_err());
        let missing = BUILTIN.replacen("stripe_price_yearly = \"price_scale_yearly\"\n", "", 1);
        assert!(Catalog::parse(&missing).is_err());
    }
}
