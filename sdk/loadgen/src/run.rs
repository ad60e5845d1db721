//! The run: a state machine a single-threaded poll loop drives. The caller reports what
//! happened (a request finished at `t` with an outcome) and asks [`Run::next`] what to do
//! at `now`: send a request (and which, with which intended send time), wait until a time
//! or until a request finishes, or stop.
//!
//! Open model: iteration k is due at its intended time. It starts on a free slot
//! (`max-in-flight` slots) that was free by its intended time plus `max-start-delay`
//! (default 0, k6's rule); otherwise it is counted in `dropped_iterations`, never sent
//! late. Latency is measured from the intended time (coordinated-omission corrected, as
//! wrk2) and from the actual send too. Closed model: `vus` slots each start a request as
//! soon as their last one finished; latency is from the actual send.
//!
//! The caller must report every request it saw finish before it asks `next` again:
//! a slot counts as free from the finish time reported.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use crate::plan::{Arrivals, ModelKind, Plan};
use crate::report::{Report, Summary};
use crate::request::{Outcome, Request, Templates};
use crate::stats::{Stats, ms};
use crate::threshold::{ThresholdResult, Thresholds};

/// Identifies one request of a run.
pub type RequestId = u64;

/// What the driver should do now.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Send `template` now, then report its end with [`Run::finished`].
    Send {
        /// The request's id.
        id: RequestId,
        /// Index into [`Run::requests`].
        template: usize,
        /// When it should have been sent (≤ now).
        intended: Duration,
    },
    /// Nothing to send before `until` (`None`: until a request finishes): wait for the
    /// first of a finishing request and that time, then ask again.
    Wait {
        /// The time to ask again at the latest.
        until: Option<Duration>,
    },
    /// The run is over: abandon requests still in flight (they count as interrupted) and
    /// call [`Run::finish`].
    Done,
}

/// Why the schedule stopped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// The measured duration ran out.
    Duration,
    /// The iteration count was reached.
    Iterations,
    /// An abort-on-fail threshold failed.
    Aborted,
    /// The driver finished the run before its schedule ended.
    Interrupted,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    template: usize,
    intended: Duration,
    started: Duration,
    measured: bool,
}

/// A request id the run never gave out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("request {0} was never sent by this run")]
pub struct UnknownRequest(pub RequestId);

/// A progress snapshot for live display.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// Time since the run began.
    pub elapsed: Duration,
    /// Still in the warm-up.
    pub warming_up: bool,
    /// Measured requests finished.
    pub requests: u64,
    /// Requests finished per second over the last whole second (or so far).
    pub rate: f64,
    /// The target now: rate per second (open) or virtual users (closed).
    pub target: f64,
    /// Measured failures.
    pub errors: u64,
    /// Measured dropped iterations.
    pub dropped: u64,
    /// Requests in flight.
    pub in_flight: usize,
    /// p99 latency so far, ms.
    pub p99_ms: Option<f64>,
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let phase = if self.warming_up { " (warm-up)" } else { "" };
        write!(
            f,
            "{:.1}s{phase}: {} requests, {:.0}/s (target {:.0}), {} errors, {} dropped, p99 {}",
            self.elapsed.as_secs_f64(),
            self.requests,
            self.rate,
            self.target,
            self.errors,
            self.dropped,
            self.p99_ms
                .map_or("-".to_string(), |v| format!("{v:.2} ms"))
        )
    }
}

/// One load test in progress.
#[derive(Debug)]
pub struct Run {
    plan: Plan,
    templates: Templates,
    thresholds: Thresholds,
    arrivals: Arrivals,
    pending: VecDeque<Duration>,
    free_slots: BinaryHeap<Reverse<Duration>>,
    in_flight: HashMap<RequestId, InFlight>,
    next_id: RequestId,
    stats: Stats,
    measured_scheduled: u64,
    stop: Option<(Duration, StopReason)>,
    aborted: Option<ThresholdResult>,
    next_abort_check: Duration,
    has_abort: bool,
    done: bool,
    interrupted: u64,
}

/// How often abort-on-fail thresholds are evaluated.
const ABORT_CHECK_EVERY: Duration = Duration::from_millis(100);

impl Run {
    /// A run of `plan` sending `templates`, judged by `thresholds`.
    pub fn new(plan: Plan, templates: Templates, thresholds: Thresholds) -> Run {
        let slots = if plan.model == ModelKind::Open {
            plan.max_in_flight as usize
        } else {
            0
        };
        let has_abort = thresholds.0.iter().any(|t| t.abort_on_fail);
        Run {
            arrivals: Arrivals::new(&plan),
            pending: VecDeque::new(),
            free_slots: (0..slots).map(|_| Reverse(Duration::ZERO)).collect(),
            in_flight: HashMap::new(),
            next_id: 0,
            stats: Stats::new(plan.warm_up, templates.requests().len()),
            measured_scheduled: 0,
            stop: None,
            aborted: None,
            next_abort_check: plan.warm_up,
            has_abort,
            done: false,
            interrupted: 0,
            plan,
            templates,
            thresholds,
        }
    }

    /// The prepared requests, indexed by `Next::Send::template`.
    pub fn requests(&self) -> &[Request] {
        self.templates.requests()
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Statistics so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// What to do at `now`. Call it until it answers `Wait` or `Done`.
    pub fn next(&mut self, now: Duration) -> Next {
        if self.done {
            return Next::Done;
        }
        self.check_abort(now);
        loop {
            if let Some((at, _)) = self.stop {
                let deadline = at + self.plan.graceful_stop;
                if self.in_flight.is_empty() || now >= deadline {
                    self.interrupted = self.in_flight.len() as u64;
                    self.in_flight.clear();
                    self.done = true;
                    return Next::Done;
                }
                return Next::Wait {
                    until: Some(deadline),
                };
            }
            let next = match self.plan.model {
                ModelKind::Open => self.next_open(now),
                ModelKind::Closed => self.next_closed(now),
            };
            if let Some(next) = next {
                return match next {
                    Next::Wait { until: Some(t) } if t <= now => Next::Wait {
                        until: Some(now + Duration::from_micros(1)),
                    },
                    n => n,
                };
            }
        }
    }

    fn stop_at(&mut self, at: Duration, reason: StopReason) {
        if self.stop.is_none() {
            self.stop = Some((at, reason));
            self.pending.clear();
        }
    }

    fn cap_reached(&self) -> bool {
        self.plan
            .iterations
            .is_some_and(|n| self.measured_scheduled >= n)
    }

    /// `None` when it changed state and the loop must look again.
    fn next_open(&mut self, now: Duration) -> Option<Next> {
        loop {
            if self.pending.is_empty() {
                if self.cap_reached() {
                    self.stop_at(now, StopReason::Iterations);
                    return None;
                }
                match self.arrivals.peek() {
                    None => {
                        let end = self.plan.end().unwrap_or(now);
                        self.stop_at(end, StopReason::Duration);
                        return None;
                    }
                    Some(t) if t <= now => {
                        self.arrivals.advance();
                        if t >= self.plan.warm_up {
                            self.measured_scheduled += 1;
                        }
                        self.pending.push_back(t);
                    }
                    Some(t) => return Some(Next::Wait { until: Some(t) }),
                }
            }
            let t = *self.pending.front().expect("filled above");
            let deadline = t + self.plan.max_start_delay;
            if let Some(&Reverse(free_since)) = self.free_slots.peek()
                && free_since <= deadline
            {
                self.free_slots.pop();
                self.pending.pop_front();
                if free_since > t && t >= self.plan.warm_up {
                    self.stats.delayed += 1;
                }
                return Some(self.send(t, now));
            }
            if now >= deadline {
                self.pending.pop_front();
                if t >= self.plan.warm_up {
                    self.stats.record_drop(t);
                }
                continue;
            }
            return Some(Next::Wait {
                until: Some(deadline),
            });
        }
    }

    fn next_closed(&mut self, now: Duration) -> Option<Next> {
        if let Some(end) = self.plan.end()
            && now >= end
        {
            self.stop_at(end, StopReason::Duration);
            return None;
        }
        if self.cap_reached() {
            self.stop_at(now, StopReason::Iterations);
            return None;
        }
        if (self.in_flight.len() as u64) < u64::from(self.plan.vus_at(now)) {
            if now >= self.plan.warm_up {
                self.measured_scheduled += 1;
            }
            return Some(self.send(now, now));
        }
        let until = match (self.plan.next_vus_increase(now), self.plan.end()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Some(Next::Wait { until })
    }

    fn send(&mut self, intended: Duration, now: Duration) -> Next {
        let id = self.next_id;
        self.next_id += 1;
        let template = self.templates.pick();
        let measured = intended >= self.plan.warm_up;
        if measured {
            self.stats.record_start(now.max(intended));
        }
        self.in_flight.insert(
            id,
            InFlight {
                template,
                intended,
                started: now.max(intended),
                measured,
            },
        );
        Next::Send {
            id,
            template,
            intended,
        }
    }

    /// Request `id` finished at `at` with `outcome`. Reports after [`Next::Done`] are ignored.
    pub fn finished(
        &mut self,
        id: RequestId,
        at: Duration,
        outcome: &Outcome,
    ) -> Result<(), UnknownRequest> {
        let Some(r) = self.in_flight.remove(&id) else {
            return if id < self.next_id {
                Ok(())
            } else {
                Err(UnknownRequest(id))
            };
        };
        if self.plan.model == ModelKind::Open {
            self.free_slots.push(Reverse(at));
        }
        if r.measured {
            let ok = outcome.succeeded(&self.templates.requests()[r.template]);
            self.stats.record_finish(
                at,
                at.saturating_sub(r.intended),
                at.saturating_sub(r.started),
                r.template,
                outcome,
                ok,
            );
        }
        Ok(())
    }

    fn measured_window(&self, now: Duration) -> Duration {
        let end = match self.stop {
            Some((at, _)) => at.min(now),
            None => now,
        };
        end.saturating_sub(self.plan.warm_up)
    }

    fn check_abort(&mut self, now: Duration) {
        if !self.has_abort || self.stop.is_some() || now < self.next_abort_check {
            return;
        }
        self.next_abort_check = now + ABORT_CHECK_EVERY;
        let measured = now - self.plan.warm_up;
        if let Some(mut r) = self
            .thresholds
            .abort_check(&self.stats.at(measured), measured)
        {
            r.aborted_run = true;
            self.aborted = Some(r);
            self.stop_at(now, StopReason::Aborted);
        }
    }

    /// A snapshot for live progress at `now`.
    pub fn progress(&self, now: Duration) -> Progress {
        let warming_up = now < self.plan.warm_up;
        let measured = self.measured_window(now);
        let second = measured.as_secs() as usize;
        let rate = match second.checked_sub(1).and_then(|i| self.stats.series.get(i)) {
            Some(s) => s.requests as f64,
            None if measured > Duration::ZERO => {
                self.stats.requests as f64 / measured.as_secs_f64()
            }
            None => 0.0,
        };
        Progress {
            elapsed: now,
            warming_up,
            requests: self.stats.requests,
            rate,
            target: self.plan.level_at(now),
            errors: self.stats.failed,
            dropped: self.stats.dropped,
            in_flight: self.in_flight.len(),
            p99_ms: (!self.stats.corrected.is_empty())
                .then(|| ms(self.stats.corrected.value_at_quantile(0.99))),
        }
    }

    /// Ends the run at `now` and judges it. Requests still in flight count as interrupted.
    pub fn finish(mut self, now: Duration) -> Report {
        if !self.done {
            self.interrupted = self.in_flight.len() as u64;
            self.stop_at(now, StopReason::Interrupted);
        }
        self.stats.flush_second();
        let (stop_at, reason) = self.stop.clone().expect("stopped above");
        let window = stop_at.saturating_sub(self.plan.warm_up);
        let mut thresholds = self.thresholds.evaluate(&self.stats.at(window));
        if let Some(a) = &self.aborted {
            for r in &mut thresholds {
                if r.name == a.name {
                    r.aborted_run = true;
                }
            }
        }
        let target = self.plan.mean_level(stop_at.max(self.plan.warm_up));
        Summary::build(
            &self.plan,
            &self.templates,
            self.stats,
            window,
            target,
            reason,
            self.interrupted,
            thresholds,
        )
    }
}
