//! Latency distributions printed by the scenarios that keep every sample (fanout,
//! webhook): nearest-rank percentiles of the samples themselves.
use std::time::Duration;

/// Nearest-rank percentile `p` (0 to 100) of sorted samples; zero when there are none.
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds, fractional.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One line: `label` padded to `width`, then p50, p90, p99 and max in ms and the count.
pub fn print(label: &str, width: usize, samples: &mut [Duration]) {
    samples.sort_unstable();
    if samples.is_empty() {
        println!("{label:<width$} no samples");
        return;
    }
    println!(
        "{label:<width$} p50 {:>8.2}  p90 {:>8.2}  p99 {:>8.2}  max {:>8.2} ms  (n={})",
        ms(pct(samples, 50.0)),
        ms(pct(samples, 90.0)),
        ms(pct(samples, 99.0)),
        ms(pct(samples, 100.0)),
        samples.len()
    );
}
