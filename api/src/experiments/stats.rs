//! The statistics of an experiment's results: one variant against the control.
use statrs::distribution::{ContinuousCDF, Normal};

/// Exposed users and, of those, converted ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Users exposed (assigned) to the variant.
    pub exposed: i64,
    /// Of those, users who reached the goal.
    pub converted: i64,
}

impl Sample {
    /// The conversion rate, `None` when nobody was exposed.
    #[allow(clippy::cast_precision_loss)]
    pub fn rate(self) -> Option<f64> {
        (self.exposed > 0).then(|| self.converted as f64 / self.exposed as f64)
    }
}

/// A variant compared with the control.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    /// Variant rate − control rate.
    pub difference: f64,
    /// Lower bound of the 95 % confidence interval of the difference.
    pub ci_low: f64,
    /// Upper bound of it.
    pub ci_high: f64,
    /// The z statistic; `None` when both rates are 0 or both 1 (no variance).
    pub z: Option<f64>,
    /// Its two-sided p-value; `None` with `z`.
    pub p_value: Option<f64>,
}

/// Compares `variant` with `control` by the two-proportion z-test, the standard test of
/// an A/B conversion difference (NIST/SEMATECH e-Handbook of Statistical Methods,
/// "comparing two proportions"; Agresti, *Categorical Data Analysis*):
///
/// - pooled rate p = (x₁ + x₂) ÷ (n₁ + n₂), standard error under the null hypothesis of
///   equal rates SE₀ = √(p (1 − p) (1/n₁ + 1/n₂)), z = (p₂ − p₁) ÷ SE₀, two-sided
///   p-value = 2 (1 − Φ(|z|));
/// - 95 % confidence interval of the difference (Wald, unpooled):
///   (p₂ − p₁) ± z₀.₉₇₅ √(p₁(1 − p₁)/n₁ + p₂(1 − p₂)/n₂), z₀.₉₇₅ = Φ⁻¹(0.975) ≈ 1.959964.
///
/// Φ and Φ⁻¹ are the standard normal's CDF and quantile from `statrs` (not written
/// here). The normal approximation wants roughly 5 or more conversions and
/// non-conversions in each group; smaller samples give indicative numbers only.
/// `None` when either group has nobody exposed.
pub fn compare(control: Sample, variant: Sample) -> Option<Comparison> {
    let (p1, p2) = (control.rate()?, variant.rate()?);
    #[allow(clippy::cast_precision_loss)]
    let (n1, n2, x) = (control.exposed as f64, variant.exposed as f64, (control.converted + variant.converted) as f64);
    let normal = Normal::standard();
    let difference = p2 - p1;
    let pooled = x / (n1 + n2);
    let se0 = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    let z = (se0 > 0.0).then(|| difference / se0);
    let p_value = z.map(|z| (2.0 * normal.sf(z.abs())).min(1.0));
    let se = (p1 * (1.0 - p1) / n1 + p2 * (1.0 - p2) / n2).sqrt();
    let half = normal.inverse_cdf(0.975) * se;
    Some(Comparison { difference, ci_low: difference - half, ci_high: difference + half, z, p_value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn near(got: f64, want: f64) {
        assert!((got - want).abs() < 1e-6, "{got} != {want}");
    }

    /// 20/200 against 36/200, worked by hand: p = 56/400 = 0.14,
    /// SE₀ = √(0.14 · 0.86 · 0.01) = 0.0346987, z = 0.08 / SE₀ = 2.305556,
    /// p = erfc(z/√2) = 0.0211351; SE = √(0.1·0.9/200 + 0.18·0.82/200) = 0.0344674.
    #[test]
    fn a_known_pair_gives_the_textbook_numbers() {
        let c = compare(Sample { exposed: 200, converted: 20 }, Sample { exposed: 200, converted: 36 }).unwrap();
        near(c.difference, 0.08);
        near(c.z.unwrap(), 0.08 / (0.14f64 * 0.86 * 0.01).sqrt());
        near(c.p_value.unwrap(), 0.021_135_137);
        let half = 1.959_963_985 * (0.1f64 * 0.9 / 200.0 + 0.18 * 0.82 / 200.0).sqrt();
        near(c.ci_low, 0.08 - half);
        near(c.ci_high, 0.08 + half);
    }

    #[test]
    fn empty_or_degenerate_groups_have_no_test() {
        assert!(compare(Sample { exposed: 0, converted: 0 }, Sample { exposed: 5, converted: 1 }).is_none());
        let c = compare(Sample { exposed: 10, converted: 0 }, Sample { exposed: 10, converted: 0 }).unwrap();
        assert_eq!((c.z, c.p_value), (None, None));
        let same = compare(Sample { exposed: 100, converted: 30 }, Sample { exposed: 100, converted: 30 }).unwrap();
        near(same.p_value.unwrap(), 1.0);
    }
}
