//! The load model: what the pipeline writes (`LoadSpec`), checked into a [`Plan`], and the
//! plan's schedules: the intended send times of the open model ([`Arrivals`]) and the
//! target concurrency of the closed model ([`Plan::vus_at`]). Time is an offset from the
//! start of the run; the warm-up comes first, then the measured stages.

use std::time::Duration;

use crate::duration::parse_duration;

/// Open (arrival rate) or closed (concurrency).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Iterations start at a rate, whether or not earlier ones finished.
    #[default]
    Open,
    /// A number of virtual users each send a request as soon as their last one finished.
    Closed,
}

/// One stage of a ramping model.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StageSpec {
    /// Rate (open, per second) or virtual users (closed) reached at the stage's end.
    pub target: f64,
    /// How long the stage lasts ("30s"); the level moves linearly to `target` over it.
    pub duration: String,
}

/// The load model as the pipeline writes it.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LoadSpec {
    /// `open` (default) or `closed`.
    #[serde(default)]
    pub model: ModelKind,
    /// Open model: constant arrival rate, iterations per second.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Closed model: constant number of virtual users.
    #[serde(default)]
    pub vus: Option<u32>,
    /// Ramping: the level at the start of the first stage (rate or VUs; default 0).
    #[serde(default)]
    pub start: Option<f64>,
    /// Ramping: stages of target and duration.
    #[serde(default)]
    pub stages: Option<Vec<StageSpec>>,
    /// Measured duration ("30s"); with `stages`, their total unless given.
    #[serde(default)]
    pub duration: Option<String>,
    /// Stop after this many measured iterations.
    #[serde(default)]
    pub iterations: Option<u64>,
    /// Unmeasured time before the measured run, at the measured run's starting level.
    #[serde(default)]
    pub warm_up: Option<String>,
    /// Open model: the most requests in flight at once (default 100).
    #[serde(default)]
    pub max_in_flight: Option<u32>,
    /// Open model: how long an iteration may wait for a free slot before it is dropped
    /// (default "0s": dropped at once, as k6 does).
    #[serde(default)]
    pub max_start_delay: Option<String>,
    /// How long requests still in flight at the end may take to finish (default "30s").
    #[serde(default)]
    pub graceful_stop: Option<String>,
}

/// A load model that could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct PlanError {
    /// The key at fault.
    pub key: String,
    /// What is wrong and how to fix it.
    pub problem: String,
}

fn plan_error(key: &str, problem: impl Into<String>) -> PlanError {
    PlanError {
        key: key.to_string(),
        problem: problem.into(),
    }
}

/// A linear segment of the load level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ramp {
    /// Level at its start.
    pub from: f64,
    /// Level at its end.
    pub to: f64,
    /// Its length; `None` for an open-ended constant level (stopped by `iterations`).
    pub length: Option<Duration>,
}

impl Ramp {
    fn level_at(&self, t: f64) -> f64 {
        match self.length {
            Some(l) if !l.is_zero() => {
                self.from + (self.to - self.from) * (t / l.as_secs_f64()).min(1.0)
            }
            _ => self.to,
        }
    }
}

/// The checked load model.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Open or closed.
    pub model: ModelKind,
    /// The warm-up level, then the measured stages, one after the other.
    pub segments: Vec<Ramp>,
    /// Unmeasured time at the start.
    pub warm_up: Duration,
    /// Measured time; `None` when only `iterations` stops the run.
    pub duration: Option<Duration>,
    /// Measured iterations after which the run stops.
    pub iterations: Option<u64>,
    /// Open model: slots for requests in flight.
    pub max_in_flight: u32,
    /// Open model: the longest wait for a slot before an iteration is dropped.
    pub max_start_delay: Duration,
    /// Time in-flight requests get to finish after the schedule ends.
    pub graceful_stop: Duration,
}

impl Plan {
    /// Checks `spec`.
    pub fn new(spec: &LoadSpec) -> Result<Plan, PlanError> {
        let dur = |key: &str, v: &Option<String>| -> Result<Option<Duration>, PlanError> {
            v.as_deref()
                .map(|t| {
                    parse_duration(key, t).map_err(|e| {
                        plan_error(
                            key,
                            e.problem.clone()
                                + &format!(" (\"{t}\"); write e.g. \"30s\", \"1m30s\", \"500ms\""),
                        )
                    })
                })
                .transpose()
        };
        let (level_key, other_key) = match spec.model {
            ModelKind::Open => ("rate", "vus"),
            ModelKind::Closed => ("vus", "rate"),
        };
        let wrong = match spec.model {
            ModelKind::Open => spec.vus.is_some(),
            ModelKind::Closed => spec.rate.is_some(),
        };
        if wrong {
            return Err(plan_error(
                other_key,
                format!(
                    "does not apply to the {:?} model; use `{level_key}`",
                    spec.model
                )
                .to_lowercase(),
            ));
        }
        let constant = match spec.model {
            ModelKind::Open => spec.rate,
            ModelKind::Closed => spec.vus.map(f64::from),
        };
        let duration = dur("duration", &spec.duration)?;
        let mut stages = Vec::new();
        match (constant, &spec.stages) {
            (Some(_), Some(_)) => {
                return Err(plan_error(
                    level_key,
                    "give either a constant level or `stages`, not both",
                ));
            }
            (None, None) => {
                return Err(plan_error(
                    level_key,
                    format!(
                        "missing: set `{level_key}` for a constant load or `stages` for a ramp"
                    ),
                ));
            }
            (Some(level), None) => {
                if !(level.is_finite() && level > 0.0) {
                    return Err(plan_error(level_key, format!("{level} must be above 0")));
                }
                if duration.is_none() && spec.iterations.is_none() {
                    return Err(plan_error(
                        "duration",
                        "missing: set `duration` or `iterations` (or both)",
                    ));
                }
                stages.push(Ramp {
                    from: level,
                    to: level,
                    length: duration,
                });
            }
            (None, Some(list)) => {
                if list.is_empty() {
                    return Err(plan_error(
                        "stages",
                        "is empty; list at least one { target, duration }",
                    ));
                }
                let mut from = spec.start.unwrap_or(0.0);
                if !(from.is_finite() && from >= 0.0) {
                    return Err(plan_error("start", format!("{from} must be 0 or more")));
                }
                for (i, s) in list.iter().enumerate() {
                    let key = format!("stages[{i}]");
                    if !(s.target.is_finite() && s.target >= 0.0) {
                        return Err(plan_error(
                            &format!("{key}.target"),
                            format!("{} must be 0 or more", s.target),
                        ));
                    }
                    let length = dur(&format!("{key}.duration"), &Some(s.duration.clone()))?;
                    stages.push(Ramp {
                        from,
                        to: s.target,
                        length,
                    });
                    from = s.target;
                }
            }
        }
        if spec.start.is_some() && spec.stages.is_none() {
            return Err(plan_error("start", "only applies with `stages`"));
        }
        let staged: Duration = stages.iter().filter_map(|r| r.length).sum();
        let duration = match (duration, &spec.stages) {
            (Some(d), _) => Some(d),
            (None, Some(_)) => Some(staged),
            (None, None) => None,
        };
        if duration.is_some_and(|d| d.is_zero()) {
            return Err(plan_error("duration", "must be above 0"));
        }
        if spec.iterations == Some(0) {
            return Err(plan_error("iterations", "must be above 0"));
        }
        let warm_up = dur("warm-up", &spec.warm_up)?.unwrap_or_default();
        let mut segments = Vec::with_capacity(stages.len() + 1);
        if !warm_up.is_zero() {
            let first = stages[0];
            let level = if first.from > 0.0 {
                first.from
            } else {
                first.to
            };
            segments.push(Ramp {
                from: level,
                to: level,
                length: Some(warm_up),
            });
        }
        segments.extend(stages);
        let max_in_flight = spec.max_in_flight.unwrap_or(100);
        if max_in_flight == 0 {
            return Err(plan_error("max-in-flight", "must be at least 1"));
        }
        if spec.model == ModelKind::Closed
            && (spec.max_in_flight.is_some() || spec.max_start_delay.is_some())
        {
            return Err(plan_error(
                if spec.max_in_flight.is_some() {
                    "max-in-flight"
                } else {
                    "max-start-delay"
                },
                "applies to the open model only; the closed model's concurrency is `vus`",
            ));
        }
        Ok(Plan {
            model: spec.model,
            segments,
            warm_up,
            duration,
            iterations: spec.iterations,
            max_in_flight,
            max_start_delay: dur("max-start-delay", &spec.max_start_delay)?.unwrap_or_default(),
            graceful_stop: dur("graceful-stop", &spec.graceful_stop)?
                .unwrap_or(Duration::from_secs(30)),
        })
    }

    /// When the schedule ends: warm-up plus measured duration (`None`: only iterations stop it).
    pub fn end(&self) -> Option<Duration> {
        self.duration.map(|d| self.warm_up + d)
    }

    /// The level (rate or VUs) at `t`.
    pub fn level_at(&self, t: Duration) -> f64 {
        let mut start = Duration::ZERO;
        for seg in &self.segments {
            match seg.length {
                Some(l) if t >= start + l => start += l,
                _ => return seg.level_at((t - start).as_secs_f64()),
            }
        }
        self.segments.last().map_or(0.0, |s| s.to)
    }

    /// Closed model: virtual users wanted at `t` (a ramp moves one VU at a time).
    pub fn vus_at(&self, t: Duration) -> u32 {
        (self.level_at(t) + 1e-9).floor() as u32
    }

    /// Closed model: the next time after `t` at which the number of VUs grows (a drop needs
    /// no wake-up: a finishing VU simply does not start again).
    pub fn next_vus_increase(&self, t: Duration) -> Option<Duration> {
        let mut start = Duration::ZERO;
        let now = self.vus_at(t);
        for seg in &self.segments {
            let l = seg.length?;
            let end = start + l;
            if t < end && seg.to > seg.from {
                let frac = (f64::from(now) + 1.0 - seg.from) / (seg.to - seg.from);
                if (0.0..=1.0).contains(&frac) {
                    let at = (start + l.mul_f64(frac)).max(t);
                    return Some(at.min(end));
                }
            }
            if t < end && seg.from > f64::from(now) + 1.0 - 1e-9 {
                return Some(start.max(t));
            }
            start = end;
        }
        None
    }

    /// The mean level over the measured time up to `until` (target rate or VUs).
    pub fn mean_level(&self, until: Duration) -> f64 {
        let from = self.warm_up;
        if until <= from {
            return self.level_at(from);
        }
        let steps = 1000u32;
        let span = until - from;
        (0..steps)
            .map(|i| self.level_at(from + span.mul_f64((f64::from(i) + 0.5) / f64::from(steps))))
            .sum::<f64>()
            / f64::from(steps)
    }
}

/// The open model's intended send times, in order: iteration k is due when the integral
/// of the rate since the start reaches k (so the first is due at 0).
#[derive(Debug, Clone)]
pub struct Arrivals {
    segments: Vec<Ramp>,
    seg: usize,
    seg_start: Duration,
    /// Iterations due before the current segment began (fractional).
    count_at_seg_start: f64,
    next_k: u64,
    end: Option<Duration>,
}

impl Arrivals {
    /// The schedule of `plan`.
    pub fn new(plan: &Plan) -> Arrivals {
        Arrivals {
            segments: plan.segments.clone(),
            seg: 0,
            seg_start: Duration::ZERO,
            count_at_seg_start: 0.0,
            next_k: 0,
            end: plan.end(),
        }
    }

    /// The next intended send time, or `None` when the schedule is over.
    pub fn peek(&mut self) -> Option<Duration> {
        loop {
            let seg = *self.segments.get(self.seg)?;
            let x = self.next_k as f64 - self.count_at_seg_start;
            let (a, b) = match seg.length {
                Some(l) if !l.is_zero() => {
                    ((seg.to - seg.from) / (2.0 * l.as_secs_f64()), seg.from)
                }
                _ => (0.0, seg.to),
            };
            // Solve a·τ² + b·τ = x for the smallest τ ≥ 0.
            let tau = if a.abs() < 1e-12 {
                if b > 0.0 { Some(x / b) } else { None }
            } else {
                let disc = b * b + 4.0 * a * x;
                if disc < 0.0 {
                    None
                } else {
                    Some((-b + disc.sqrt()) / (2.0 * a))
                }
            };
            let length = seg.length.map(|l| l.as_secs_f64());
            match (tau, length) {
                (Some(tau), Some(l)) if tau < l => return self.at(tau),
                (Some(tau), None) => return self.at(tau),
                (_, Some(l)) => {
                    self.count_at_seg_start += a * l * l + b * l;
                    self.seg_start += seg.length.unwrap_or_default();
                    self.seg += 1;
                }
                (None, None) => return None,
            }
        }
    }

    fn at(&self, tau: f64) -> Option<Duration> {
        let t = self.seg_start + Duration::from_secs_f64(tau.max(0.0));
        match self.end {
            Some(end) if t >= end => None,
            _ => Some(t),
        }
    }

    /// Consumes the time [`peek`](Self::peek) returned.
    pub fn advance(&mut self) {
        self.next_k += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(rate: f64, duration: &str) -> LoadSpec {
        LoadSpec {
            rate: Some(rate),
            duration: Some(duration.into()),
            ..LoadSpec::default()
        }
    }

    fn all(plan: &Plan) -> Vec<Duration> {
        let mut a = Arrivals::new(plan);
        let mut out = Vec::new();
        while let Some(t) = a.peek() {
            out.push(t);
            a.advance();
        }
        out
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let plan = Plan::new(&open(100.0, "2s")).unwrap();
        let times = all(&plan);
        assert_eq!(times.len(), 200);
        assert_eq!(times[0], Duration::ZERO);
        assert!((times[150].as_secs_f64() - 1.5).abs() < 1e-9);
    }

    #[test]
    fn ramping_rate_integrates_the_stages() {
        // 0 → 100/s over 2s (100 iterations), then 100/s for 1s (100 more), then 100 → 0 over 1s (50).
        let spec = LoadSpec {
            stages: Some(vec![
                StageSpec {
                    target: 100.0,
                    duration: "2s".into(),
                },
                StageSpec {
                    target: 100.0,
                    duration: "1s".into(),
                },
                StageSpec {
                    target: 0.0,
                    duration: "1s".into(),
                },
            ]),
            ..LoadSpec::default()
        };
        let plan = Plan::new(&spec).unwrap();
        assert_eq!(plan.duration, Some(Duration::from_secs(4)));
        let times = all(&plan);
        let in_range = |a: f64, b: f64| {
            times
                .iter()
                .filter(|t| t.as_secs_f64() >= a && t.as_secs_f64() < b)
                .count()
        };
        assert_eq!(in_range(0.0, 2.0), 100);
        assert_eq!(in_range(2.0, 3.0), 100);
        assert!(
            (49..=50).contains(&in_range(3.0, 4.0)),
            "{}",
            in_range(3.0, 4.0)
        );
        // In the first ramp the rate grows: the second second holds three times the first.
        assert_eq!(in_range(0.0, 1.0), 25);
        assert_eq!(in_range(1.0, 2.0), 75);
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn warm_up_runs_at_the_starting_level_before_the_measured_time() {
        let spec = LoadSpec {
            warm_up: Some("1s".into()),
            ..open(10.0, "2s")
        };
        let plan = Plan::new(&spec).unwrap();
        assert_eq!(plan.end(), Some(Duration::from_secs(3)));
        let times = all(&plan);
        assert_eq!(times.len(), 30);
        assert_eq!(
            times
                .iter()
                .filter(|t| **t < Duration::from_secs(1))
                .count(),
            10
        );
    }

    #[test]
    fn closed_ramp_moves_one_vu_at_a_time() {
        let spec = LoadSpec {
            model: ModelKind::Closed,
            stages: Some(vec![
                StageSpec {
                    target: 10.0,
                    duration: "10s".into(),
                },
                StageSpec {
                    target: 10.0,
                    duration: "5s".into(),
                },
                StageSpec {
                    target: 2.0,
                    duration: "4s".into(),
                },
            ]),
            ..LoadSpec::default()
        };
        let plan = Plan::new(&spec).unwrap();
        assert_eq!(plan.vus_at(Duration::ZERO), 0);
        assert_eq!(plan.vus_at(Duration::from_millis(2500)), 2);
        assert_eq!(plan.vus_at(Duration::from_secs(12)), 10);
        assert_eq!(plan.vus_at(Duration::from_secs(17)), 6);
        let next = plan.next_vus_increase(Duration::from_millis(2500)).unwrap();
        assert!(
            next.abs_diff(Duration::from_secs(3)) < Duration::from_micros(1),
            "{next:?}"
        );
        assert_eq!(plan.next_vus_increase(Duration::from_secs(12)), None);
        assert!((plan.mean_level(Duration::from_secs(10)) - 5.0).abs() < 0.01);
    }

    #[test]
    fn errors_name_the_key() {
        let e = |s: LoadSpec| Plan::new(&s).unwrap_err().to_string();
        assert!(e(LoadSpec::default()).starts_with("rate: missing"));
        assert!(
            e(LoadSpec {
                model: ModelKind::Closed,
                ..LoadSpec::default()
            })
            .starts_with("vus: missing")
        );
        assert!(
            e(LoadSpec {
                rate: Some(5.0),
                ..LoadSpec::default()
            })
            .starts_with("duration: missing")
        );
        assert!(
            e(LoadSpec {
                vus: Some(5),
                ..open(1.0, "1s")
            })
            .starts_with("vus: does not apply to the open model")
        );
        assert!(e(open(0.0, "1s")).starts_with("rate: 0 must be above 0"));
        let x = e(open(1.0, "1 minute"));
        assert!(x.starts_with("duration: ") && x.contains("1 minute"), "{x}");
        let x = e(LoadSpec {
            stages: Some(vec![StageSpec {
                target: 1.0,
                duration: "x".into(),
            }]),
            ..LoadSpec::default()
        });
        assert!(x.starts_with("stages[0].duration"), "{x}");
        let x = e(LoadSpec {
            model: ModelKind::Closed,
            vus: Some(2),
            max_in_flight: Some(3),
            ..open(1.0, "1s")
        });
        assert!(x.contains("rate") || x.contains("max-in-flight"), "{x}");
    }
}
