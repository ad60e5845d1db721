//! What a run measured: HDR latency histograms (1 µs to 1 h, 3 significant digits) from the
//! intended and from the actual send time, counters by outcome class and status, and a
//! per-second series; it answers thresholds through [`Observe`].

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::request::{Class, Outcome};
use crate::threshold::{Aggregation, Metric, Observe};

/// Lowest trackable latency, µs.
pub const LOWEST_US: u64 = 1;
/// Highest trackable latency, µs (1 h); longer ones are recorded as 1 h.
pub const HIGHEST_US: u64 = 3_600_000_000;
/// Significant digits kept.
pub const SIGFIG: u8 = 3;

/// A histogram with the crate's bounds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG).expect("constant bounds are valid")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .max(LOWEST_US)
}

/// One second of the measured run (second 0 starts when the warm-up ends).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Second {
    /// Seconds since the measured run began.
    pub second: u64,
    /// Iterations started in this second.
    pub started: u64,
    /// Requests finished in this second.
    pub requests: u64,
    /// Of those, failures.
    pub errors: u64,
    /// Iterations dropped in this second.
    pub dropped: u64,
    /// Median latency of the requests finished in this second, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// Maximum, ms.
    pub max_ms: Option<f64>,
}

/// Everything measured so far.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency from the intended send time (equal to `uncorrected` in the closed model).
    pub corrected: Histogram<u64>,
    /// Latency from the actual send time.
    pub uncorrected: Histogram<u64>,
    /// Measured iterations started.
    pub started: u64,
    /// Measured requests finished.
    pub requests: u64,
    /// Of those, failures (not an expected status, or no response).
    pub failed: u64,
    /// Measured iterations dropped (open model).
    pub dropped: u64,
    /// Open model: measured iterations that waited for a slot (within `max-start-delay`).
    pub delayed: u64,
    /// Failures by class.
    pub errors_by_class: BTreeMap<Class, u64>,
    /// Responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Finished requests and failures per template.
    pub per_template: Vec<(u64, u64)>,
    /// Up to five distinct transport error messages, for the summary.
    pub error_samples: Vec<String>,
    /// The per-second series.
    pub series: Vec<Second>,
    second_hist: Histogram<u64>,
    second_at: Option<u64>,
    measured_from: Duration,
}

impl Stats {
    /// Empty statistics for a run measured from `measured_from` with `templates` templates.
    pub fn new(measured_from: Duration, templates: usize) -> Stats {
        Stats {
            corrected: new_histogram(),
            uncorrected: new_histogram(),
            started: 0,
            requests: 0,
            failed: 0,
            dropped: 0,
            delayed: 0,
            errors_by_class: BTreeMap::new(),
            statuses: BTreeMap::new(),
            per_template: vec![(0, 0); templates],
            error_samples: Vec::new(),
            series: Vec::new(),
            second_hist: new_histogram(),
            second_at: None,
            measured_from,
        }
    }

    fn second_of(&self, at: Duration) -> usize {
        at.saturating_sub(self.measured_from).as_secs() as usize
    }

    fn second(&mut self, at: Duration) -> &mut Second {
        let i = self.second_of(at);
        while self.series.len() <= i {
            let second = self.series.len() as u64;
            self.series.push(Second {
                second,
                ..Second::default()
            });
        }
        &mut self.series[i]
    }

    /// A measured iteration started at `at`.
    pub fn record_start(&mut self, at: Duration) {
        self.started += 1;
        self.second(at).started += 1;
    }

    /// A measured iteration was dropped at `at`.
    pub fn record_drop(&mut self, at: Duration) {
        self.dropped += 1;
        self.second(at).dropped += 1;
    }

    /// A measured request finished at `at`: `corrected` from its intended send time,
    /// `uncorrected` from its actual one.
    pub fn record_finish(
        &mut self,
        at: Duration,
        corrected: Duration,
        uncorrected: Duration,
        template: usize,
        outcome: &Outcome,
        succeeded: bool,
    ) {
        let c = micros(corrected);
        self.corrected.saturating_record(c);
        self.uncorrected.saturating_record(micros(uncorrected));
        self.requests += 1;
        if let Outcome::Status(s) = outcome {
            *self.statuses.entry(*s).or_default() += 1;
        }
        let t = &mut self.per_template[template];
        t.0 += 1;
        if !succeeded {
            self.failed += 1;
            t.1 += 1;
            *self.errors_by_class.entry(outcome.class()).or_default() += 1;
            if let Outcome::Denied(m) | Outcome::Other(m) = outcome
                && self.error_samples.len() < 5
                && !self.error_samples.contains(m)
            {
                self.error_samples.push(m.clone());
            }
        }
        let sec = self.second_of(at) as u64;
        if self.second_at != Some(sec) {
            self.flush_second();
            self.second_at = Some(sec);
        }
        self.second_hist.saturating_record(c);
        let s = self.second(at);
        s.requests += 1;
        if !succeeded {
            s.errors += 1;
        }
    }

    /// Writes the current second's latency figures into the series. A request reported
    /// late, for a second already closed, adds to its counts but not to its percentiles.
    pub fn flush_second(&mut self) {
        if let Some(sec) = self.second_at.take()
            && !self.second_hist.is_empty()
        {
            let h = &self.second_hist;
            let (p50, p99, max) = (
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max()),
            );
            let s = &mut self.series[sec as usize];
            s.p50_ms = Some(p50);
            s.p99_ms = Some(p99);
            s.max_ms = Some(max);
            self.second_hist.reset();
        }
    }

    /// The share of finished requests that failed, `None` before any finished.
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.failed as f64 / self.requests as f64)
    }

    /// A view that answers thresholds with rates over `measured` seconds.
    pub fn at(&self, measured: Duration) -> StatsAt<'_> {
        StatsAt {
            stats: self,
            measured,
        }
    }
}

/// A µs value in ms.
pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// [`Stats`] with the measured time the rates divide by.
#[derive(Debug, Clone, Copy)]
pub struct StatsAt<'a> {
    stats: &'a Stats,
    measured: Duration,
}

impl Observe for StatsAt<'_> {
    fn observe(&self, metric: Metric, aggregation: Aggregation) -> Option<f64> {
        let s = self.stats;
        let per_second = |n: u64| {
            let secs = self.measured.as_secs_f64();
            (secs > 0.0).then(|| n as f64 / secs)
        };
        let trend = |h: &Histogram<u64>| -> Option<f64> {
            if h.is_empty() {
                return None;
            }
            Some(match aggregation {
                Aggregation::Avg => h.mean() / 1000.0,
                Aggregation::Min => ms(h.min()),
                Aggregation::Max => ms(h.max()),
                Aggregation::Med => ms(h.value_at_quantile(0.5)),
                Aggregation::Percentile(p) => ms(h.value_at_percentile(p)),
                Aggregation::Rate | Aggregation::Count => return None,
            })
        };
        let counter = |n: u64| match aggregation {
            Aggregation::Count => Some(n as f64),
            Aggregation::Rate => per_second(n),
            _ => None,
        };
        match metric {
            Metric::HttpReqDuration => trend(&s.corrected),
            Metric::HttpReqDurationUncorrected => trend(&s.uncorrected),
            Metric::HttpReqFailed => s.error_rate(),
            Metric::HttpReqs => counter(s.requests),
            Metric::DroppedIterations => counter(s.dropped),
            Metric::Iterations => counter(s.started),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_classes_statuses_and_seconds() {
        let mut s = Stats::new(Duration::from_secs(1), 2);
        let ms_ = Duration::from_millis;
        for i in 0..100u64 {
            let at = Duration::from_secs(1) + ms_(i * 20);
            s.record_start(at);
            let outcome = if i % 10 == 0 {
                Outcome::Status(500)
            } else {
                Outcome::Status(200)
            };
            let ok = outcome == Outcome::Status(200);
            s.record_finish(at, ms_(i + 1), ms_(1), (i % 2) as usize, &outcome, ok);
        }
        s.record_finish(ms_(3000), ms_(5), ms_(5), 0, &Outcome::Timeout, false);
        s.record_finish(
            ms_(3000),
            ms_(5),
            ms_(5),
            0,
            &Outcome::Other("tls: bad certificate".into()),
            false,
        );
        s.record_drop(ms_(2500));
        s.flush_second();
        assert_eq!(
            (s.requests, s.failed, s.dropped, s.started),
            (102, 12, 1, 100)
        );
        assert_eq!(s.statuses, BTreeMap::from([(200, 90), (500, 10)]));
        assert_eq!(s.errors_by_class[&Class::ServerError], 10);
        assert_eq!(s.errors_by_class[&Class::Timeout], 1);
        assert_eq!(s.error_samples, vec!["tls: bad certificate".to_string()]);
        assert_eq!(s.per_template, vec![(52, 12), (50, 0)]);
        assert_eq!(s.series.len(), 3);
        assert_eq!(
            (
                s.series[0].requests,
                s.series[0].errors,
                s.series[0].started
            ),
            (50, 5, 50)
        );
        assert_eq!((s.series[1].requests, s.series[1].dropped), (50, 1));
        assert!((s.series[0].p50_ms.unwrap() - 25.0).abs() < 0.02);
        assert_eq!(s.series[2].max_ms.map(|v| v.round()), Some(5.0));
        let at = s.at(Duration::from_secs(2));
        assert_eq!(at.observe(Metric::HttpReqs, Aggregation::Rate), Some(51.0));
        assert_eq!(
            at.observe(Metric::HttpReqFailed, Aggregation::Rate),
            Some(12.0 / 102.0)
        );
        assert_eq!(
            at.observe(Metric::HttpReqDurationUncorrected, Aggregation::Max)
                .map(f64::round),
            Some(5.0)
        );
        assert!(
            at.observe(Metric::HttpReqDuration, Aggregation::Percentile(99.0))
                .unwrap()
                > 99.0
        );
        assert_eq!(
            at.observe(Metric::DroppedIterations, Aggregation::Count),
            Some(1.0)
        );
    }

    #[test]
    fn latencies_beyond_an_hour_are_recorded_as_an_hour() {
        let mut s = Stats::new(Duration::ZERO, 1);
        s.record_finish(
            Duration::ZERO,
            Duration::from_secs(7200),
            Duration::ZERO,
            0,
            &Outcome::Status(200),
            true,
        );
        assert!(
            s.corrected.max() >= HIGHEST_US && s.corrected.max() < HIGHEST_US + HIGHEST_US / 500
        );
        assert_eq!(s.uncorrected.min(), 1);
    }
}
