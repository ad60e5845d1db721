//! Watching a run's health: while a durable run is alive, each of its pipeline's
//! monitors with `uses` checks on its interval (one task per monitor, stopped when the
//! run ends), recording every check in the state store; and while a stage runs, its
//! alarms gates are re-evaluated every poll, so that an alarm that fires stops the
//! stage's steps and fails the stage with a reason naming the alarm.
//!
//! The entry of a stage needs nothing from here: every gate, alarms included, is
//! evaluated at the instant the run enters ([`super::durable::enter_stage`]), so an
//! alarm that fired while the run waited for a window still stops it there.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::capabilities::logs::StepLog;
use crate::capabilities::secrets::SecretAccess;
use crate::clock::Clock;
use crate::events::{Event, EventSink};
use crate::gates::{Decision, Gate};
use crate::host::monitor::{LoadedMonitor, MonitorGrants, MonitorInstance};
use crate::monitors::MonitorSpec;
use crate::monitors::schedule::{Recorder, run_checks};
use crate::secrets::SecretValues;
use crate::state::Store;

/// Bytes of log a watched monitor keeps in memory.
const MONITOR_LOG_BYTES: u64 = 64 << 10;

/// A monitor of the pipeline with its loaded plugin.
#[derive(Clone)]
pub struct WatchedMonitor {
    pub spec: MonitorSpec,
    pub plugin: Arc<LoadedMonitor>,
}

/// The pairs of `monitors` whose plugin was loaded (by monitor id).
pub fn watched(
    monitors: &[MonitorSpec],
    loaded: &HashMap<String, Arc<LoadedMonitor>>,
) -> Vec<WatchedMonitor> {
    monitors
        .iter()
        .filter_map(|m| {
            loaded.get(&m.id).map(|p| WatchedMonitor {
                spec: m.clone(),
                plugin: p.clone(),
            })
        })
        .collect()
}

/// The monitors' check tasks of one run; dropping it stops them.
pub struct Watchers {
    tasks: JoinSet<()>,
    /// One message per monitor after its first check.
    first: tokio::sync::mpsc::UnboundedReceiver<()>,
    /// How many monitors, and the longest first check may take.
    count: usize,
    longest: std::time::Duration,
}

impl Watchers {
    /// Wait until every monitor has run its first check (or could not), at most as
    /// long as the slowest may take: a run's first gates judge fresh evidence, not the
    /// absence of a check that was about to happen.
    pub async fn first_round(&mut self) {
        let wait = async {
            for _ in 0..self.count {
                if self.first.recv().await.is_none() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(self.longest + std::time::Duration::from_secs(1), wait).await;
    }
}

impl Drop for Watchers {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// What the watchers of a run need.
pub struct WatchContext {
    pub store: Arc<Store>,
    pub clock: Arc<dyn Clock>,
    pub run_id: String,
    pub workdir: std::path::PathBuf,
    pub secrets: Arc<SecretValues>,
    pub events: EventSink,
}

/// Start one check task per monitor. A monitor whose grants cannot be honoured, or
/// whose checks cannot be recorded, stops with a warning; its alarm then goes
/// INSUFFICIENT_DATA (never silently OK).
pub fn start(monitors: &[WatchedMonitor], cx: WatchContext) -> Watchers {
    let mut tasks = JoinSet::new();
    let (first_tx, first) = tokio::sync::mpsc::unbounded_channel();
    let longest = monitors
        .iter()
        .map(|m| m.spec.timeout)
        .max()
        .unwrap_or_default();
    let redactor = Arc::new(cx.secrets.redactor());
    for m in monitors {
        let m = m.clone();
        let log = StepLog::in_memory(MONITOR_LOG_BYTES, redactor.clone());
        let secrets = Arc::new(SecretAccess::resolve(&m.spec.grants.secrets, &cx.secrets));
        let recorder = Recorder {
            store: cx.store.clone(),
            clock: cx.clock.clone(),
            source: format!("run {}", cx.run_id),
            workdir: cx.workdir.clone(),
            redactor: redactor.clone(),
        };
        let events = cx.events.clone();
        let first_tx = first_tx.clone();
        tasks.spawn(async move {
            let grants = match MonitorGrants::resolve(&m.spec.grants, secrets, &log) {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!("monitor `{}` cannot run: {e}", m.spec.id);
                    let _ = first_tx.send(());
                    return;
                }
            };
            let instance = MonitorInstance::new(m.plugin.clone(), grants, log);
            let mut told = false;
            let ended = run_checks(&m.spec, instance, &recorder, None, |report| {
                if !std::mem::replace(&mut told, true) {
                    let _ = first_tx.send(());
                }
                events.send(Event::MonitorChecked {
                    monitor: report.row.monitor.clone(),
                    outcome: report.row.outcome.as_str().to_string(),
                    positive: report.row.positive,
                    negative: report.row.negative,
                    summary: report.row.summary.clone(),
                    skipped: report.skipped,
                });
            })
            .await;
            let _ = first_tx.send(());
            if let Err(e) = ended {
                tracing::warn!(
                    "monitor `{}` stopped: cannot record its checks: {e}",
                    m.spec.id
                );
            }
        });
    }
    Watchers {
        tasks,
        first,
        count: monitors.len(),
        longest,
    }
}

/// The alarms gates of a stage that still watch it: those not let through by an
/// override this run used for this stage (the fix an override lets in must not be
/// stopped by the alarm it is meant to clear).
pub fn watching_gates<'a>(
    store: &Store,
    run_id: &str,
    stage: &str,
    gates: &'a [Box<dyn Gate>],
) -> Vec<&'a dyn Gate> {
    let used = store.overrides(run_id).unwrap_or_default();
    gates
        .iter()
        .filter(|g| g.kind() == "alarms")
        .filter(|g| {
            !used.iter().any(|o| {
                o.used_at.is_some()
                    && (o.gate == g.id() || o.gate == "*")
                    && o.stage.as_deref().is_none_or(|s| s == stage)
            })
        })
        .map(|g| g.as_ref())
        .collect()
}

/// Wait until one of `gates` (alarms gates of a running stage) holds; the reason
/// names the gate and the alarm. Re-evaluates every poll interval; never returns
/// while every alarm is OK.
pub async fn until_alarm(
    gates: Vec<&dyn Gate>,
    pipeline: &str,
    run_id: &str,
    stage: &str,
    clock: &dyn Clock,
) -> String {
    if gates.is_empty() {
        return std::future::pending().await;
    }
    loop {
        tokio::time::sleep(clock.poll_interval()).await;
        let input = crate::gates::GateInput {
            pipeline,
            run_id,
            stage,
            now: clock.now(),
            approvals: &[],
            artifact: None,
        };
        for g in &gates {
            let e = g.evaluate(&input).await;
            if let Decision::Wait { reason, .. } | Decision::Deny { reason } = &e.decision {
                return format!(
                    "alarm gate `{}` fired while the stage ran: {reason}",
                    e.gate
                );
            }
        }
    }
}
