//! What happens during a run, as a stream of events: the executor sends them, the
//! reporters (live progress, plain lines, JSON lines) render them. With
//! `--format json` each event is one line of JSON, tagged by `"event"`.
//!
//! In a durable run every transition an event announces (a stage entered, a step
//! finished, a gate's verdict, the run's end) is recorded in the state store before the
//! event is sent: what a person sees has already been written down.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

/// Final state of a step or stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Passed,
    Failed,
    /// Passed with a warning, or failed where failure was allowed.
    Warned,
    /// Not run: a step it needs failed, or an earlier stage failed.
    Skipped,
}

impl Status {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Warned => "warned",
            Status::Skipped => "skipped",
        }
    }
}

/// One event of a run.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    RunStarted {
        run_id: String,
        pipeline: String,
        run_dir: String,
        stages: Vec<StagePlan>,
    },
    StageStarted {
        stage: String,
    },
    /// A monitor of the run checked (recorded before it is sent); shown with
    /// `--verbose` and in JSON.
    MonitorChecked {
        monitor: String,
        /// `data`, `no-data` or `error`.
        outcome: String,
        positive: u32,
        negative: u32,
        summary: String,
        /// Ticks skipped so far (checks that could not start on time).
        skipped: u64,
    },
    /// An alarm of the stage fired while it ran: its steps are stopped and the stage
    /// fails.
    StageStopped {
        stage: String,
        reason: String,
    },
    /// The verdict of a stage's gates, all evaluated at one instant; sent when it
    /// changes while the run waits, and when the gates let the run in.
    Gates {
        stage: String,
        /// `allow`, `wait` or `deny`.
        verdict: String,
        gates: Vec<GateShown>,
        /// Commands that would clear what holds the run, exactly as they are typed.
        clear: Vec<String>,
    },
    /// The run waits to enter a stage: why (every gate that holds it, or the run that
    /// holds the stage).
    StageWaiting {
        stage: String,
        reason: String,
    },
    /// A stage's bake (`[stage.bake]`): its progress while it lasts (sent when what it
    /// shows changes, at most once a poll), and its end.
    Bake {
        stage: String,
        /// `baking`, `passed`, `failed` or `overridden`.
        state: String,
        /// The progress line ("bake 23m of 1h, 1,204 of 3,000 positive, 0 negative"),
        /// or why the bake ended.
        reason: String,
        progress: crate::gates::bake::BakeProgress,
    },
    /// A deploy step's progress (`deploy-targets` import), recorded in the state store
    /// before it is sent: a deployment's start and end, a lifecycle step of one target,
    /// a bake between waves.
    Deploy {
        stage: String,
        step: String,
        deployment_id: String,
        /// The target, or empty for the whole deployment.
        target: String,
        /// A lifecycle event (`ValidateService`), `Bake`, `Health`, `Skip`, or
        /// `Deployment` for the deployment's own start and end.
        lifecycle_event: String,
        /// `started`, `succeeded`, `failed`, `skipped` (`stopped` for a deployment an
        /// alarm stopped).
        state: String,
        detail: String,
    },
    /// A step that had finished before the run was resumed: its record is reused, the
    /// step is not run again.
    StepRestored {
        stage: String,
        step: String,
        status: Status,
        summary: String,
    },
    /// The secrets a step is granted, by name (never their values).
    StepSecrets {
        stage: String,
        step: String,
        secrets: Vec<String>,
    },
    StepStarted {
        stage: String,
        step: String,
        attempt: u32,
    },
    StepLog {
        stage: String,
        step: String,
        source: String,
        line: String,
    },
    StepProgress {
        stage: String,
        step: String,
        done: u64,
        total: Option<u64>,
        message: String,
    },
    StepRetrying {
        stage: String,
        step: String,
        attempt: u32,
        #[serde(with = "millis")]
        delay: Duration,
        reason: String,
    },
    StepFinished {
        stage: String,
        step: String,
        status: Status,
        summary: String,
        attempts: u32,
        #[serde(with = "millis")]
        duration: Duration,
        /// Last lines of the step log, for failed steps.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        log_tail: Vec<String>,
        log: Option<String>,
    },
    StageFinished {
        stage: String,
        status: Status,
        #[serde(with = "millis")]
        duration: Duration,
    },
    RunFinished {
        run_id: String,
        status: Status,
        #[serde(with = "millis")]
        duration: Duration,
        /// Why the run stopped, when it failed.
        reason: Option<String>,
    },
    /// The run stopped before its end and can be continued (`waiting`), or will never
    /// continue (`superseded`); the last event of such a run.
    RunStopped {
        run_id: String,
        /// `waiting` or `superseded`.
        state: String,
        reason: String,
    },
}

/// One gate's decision, as shown.
#[derive(Debug, Clone, Serialize)]
pub struct GateShown {
    pub gate: String,
    pub kind: String,
    /// `allow`, `wait`, `deny` or `overridden`.
    pub decision: String,
    pub reason: String,
    /// When a waiting gate will allow by itself (a window opening), RFC 3339.
    pub until: Option<String>,
    /// Who overrode it, and why.
    pub overridden_by: Option<String>,
}

/// The steps of a stage, as announced at the start of a run.
#[derive(Debug, Clone, Serialize)]
pub struct StagePlan {
    pub name: String,
    pub steps: Vec<String>,
}

mod millis {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0)
    }
}

/// Where events go. Clones share the channel.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::UnboundedSender<Event>,
    log_lines: bool,
}

impl EventSink {
    /// A sink and the receiving end; `log_lines` says whether every log line is sent.
    pub fn channel(log_lines: bool) -> (EventSink, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (EventSink { tx, log_lines }, rx)
    }

    /// Send an event; a receiver that has gone away is ignored.
    pub fn send(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// Whether log lines are wanted as events.
    pub fn wants_log_lines(&self) -> bool {
        self.log_lines
    }
}
