//! The durable side of a run: the [`Journal`] every transition is written to before it
//! is shown, the entry of a stage (queue, every gate evaluated at one instant, the
//! stage claimed, or a wait that shows what would clear it), and what a resumed run
//! takes back from the record (finished steps, attempt numbers).
//!
//! No SQL here: every statement lives in [`crate::state`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::clock::Clock;
use crate::config::Stage;
use crate::events::{Event, EventSink, GateShown};
use crate::gates::{self, Decision, Evaluation, Gate, GateInput};
use crate::state::{
    AttemptRow, GateEvaluationRow, Holder, NewRun, RunState, StageClaim, StageRow, StateError,
    StepRow, StepTransition, Store,
};

use super::StepRecord;

/// What makes a run durable: where it is recorded, what time it is, who drives it.
pub struct DurableOptions {
    /// Shared: the command that started the run records its interruption through it.
    pub store: Arc<Store>,
    pub clock: Arc<dyn Clock>,
    /// This process, as recorded with the run and every stage it claims.
    pub holder: Holder,
    /// Stop at a gate that waits (record the run `waiting`) instead of waiting in the
    /// process.
    pub no_wait: bool,
    /// `Some` for a new run (recorded before anything is shown); `None` when resuming a
    /// run already recorded and claimed.
    pub new_run: Option<NewRun>,
    /// The gates of each stage, by stage name.
    pub gates: HashMap<String, Vec<Box<dyn Gate>>>,
    /// The pipeline's monitors that check while the run is alive
    /// ([`super::watch`]).
    pub monitors: Vec<super::watch::WatchedMonitor>,
}

/// Why a run stopped before its end.
#[derive(Debug, Clone)]
pub enum Stopped {
    /// `--no-wait` at a gate that waits (at the stage's entry, or its bake when
    /// `in_bake`); `sluice resume` continues it.
    Waiting {
        stage: String,
        reason: String,
        in_bake: bool,
    },
    /// A newer run took this run's place in a stage's queue.
    Superseded { stage: String, by: String },
}

/// The state store of one run, shared by its steps. A write that fails is kept and
/// ends the run (nothing is shown that was not recorded).
///
/// Steps' transitions (attempts starting and ending, final records) go through the
/// [`Recorder`]: the step awaits its commit, and transitions of steps that arrive
/// together share one commit. The run's own transitions (stages, gates, the run's
/// state) are rarer and are written at once.
pub struct Journal {
    store: Arc<Store>,
    recorder: Recorder,
    pub(super) run_id: String,
    pub(super) pipeline: String,
    clock: Arc<dyn Clock>,
    holder: Holder,
    /// The first write that failed; shared with the recorder, which keeps its own.
    failure: Arc<Mutex<Option<String>>>,
}

impl Journal {
    pub(super) fn new(
        store: Arc<Store>,
        run_id: &str,
        pipeline: &str,
        clock: Arc<dyn Clock>,
        holder: Holder,
    ) -> Journal {
        let failure = Arc::new(Mutex::new(None));
        Journal {
            recorder: Recorder::start(store.clone(), failure.clone()),
            store,
            run_id: run_id.to_string(),
            pipeline: pipeline.to_string(),
            clock,
            holder,
            failure,
        }
    }

    pub(super) fn now(&self) -> jiff::Timestamp {
        self.clock.now()
    }

    /// How long (real time) a waiting run sleeps before it looks again.
    pub(super) fn poll_interval(&self) -> std::time::Duration {
        self.clock.poll_interval()
    }

    /// The run's clock.
    pub(super) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The run's store.
    pub(super) fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Run one store call; a failure is kept (the first one) and `None` returned.
    pub(super) fn write<T>(&self, f: impl FnOnce(&Store) -> Result<T, StateError>) -> Option<T> {
        let result = f(&self.store);
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::error!("cannot record the run: {e}");
                super::lock(&self.failure).get_or_insert(e.to_string());
                None
            }
        }
    }

    /// The first write that failed, if any.
    pub(super) fn failure(&self) -> Option<String> {
        super::lock(&self.failure).clone()
    }

    /// A step attempt starts. The returned instant is the start recorded; the future
    /// ends once it is committed, and the step awaits it before the attempt is shown or
    /// its plugin runs. The start is committed at once, on the caller's thread, when no
    /// other commit is under way (a hand-off to the recorder and back costs a step more
    /// than the commit itself); otherwise it joins the recorder's next commit while the
    /// plugin is instantiated.
    pub(super) fn start_attempt(
        &self,
        stage: &str,
        step: &str,
        attempt: u32,
    ) -> (jiff::Timestamp, impl Future<Output = ()> + Send + 'static) {
        let at = self.now();
        let committed = self
            .recorder
            .commit_here_or_submit(StepTransition::AttemptStarted {
                run_id: self.run_id.clone(),
                stage: stage.to_string(),
                step: step.to_string(),
                attempt,
                at,
            });
        (at, async move {
            let _ = committed.await;
        })
    }

    pub(super) async fn finish_attempt(&self, row: AttemptRow) {
        self.record(StepTransition::AttemptFinished(row)).await;
    }

    /// A step's final record: after this, resume never runs it again. With the step's
    /// last attempt, both are one transaction. `start_follows`: the step gave its place
    /// among `--jobs` to a waiting step, whose attempt start is about to commit; the
    /// record then joins that commit.
    pub(super) async fn finish_step(
        &self,
        record: &StepRecord,
        last_attempt: Option<AttemptRow>,
        start_follows: bool,
    ) {
        let transition = self.step_finished(record, last_attempt);
        if start_follows {
            let _ = self.recorder.commit_with_next_start(transition).await;
        } else {
            let _ = self.recorder.commit_here_or_submit(transition).await;
        }
    }

    /// Commit at once the final records waiting for a next attempt start (a stage
    /// stopped by an alarm starts none).
    pub(super) fn commit_waiting_records(&self) {
        self.recorder.commit_parked();
    }

    /// [`Journal::finish_step`] from code that cannot wait (a step skipped, or stopped
    /// before its plugin ran): committed at once, on the caller's thread. Such a step
    /// has no transition waiting for the recorder.
    pub(super) fn finish_step_at_once(
        &self,
        record: &StepRecord,
        last_attempt: Option<AttemptRow>,
    ) {
        let transition = self.step_finished(record, last_attempt);
        if let Err(e) = one_by_one(&self.store, transition) {
            keep_failure(&self.failure, &e);
        }
    }

    fn step_finished(
        &self,
        record: &StepRecord,
        last_attempt: Option<AttemptRow>,
    ) -> StepTransition {
        let row = StepRow {
            run_id: self.run_id.clone(),
            stage: record.stage.clone(),
            step: record.step.clone(),
            status: record.status.as_str().to_string(),
            summary: record.summary.clone(),
            attempts: record.attempts,
            record: crate::state::stored_json(record),
            finished_at: self.now(),
        };
        match last_attempt {
            Some(attempt) => StepTransition::LastAttemptAndStepFinished(attempt, row),
            None => StepTransition::StepFinished(row),
        }
    }

    /// Hand a step's transition to the recorder and wait for its commit (a failure is
    /// kept by the recorder, like [`Journal::write`]'s).
    async fn record(&self, transition: StepTransition) {
        let _ = self.recorder.submit(transition).await;
    }
}

/// Group commit of steps' transitions: a thread of the run's own takes every
/// transition waiting when it is free and records them with one commit
/// ([`Store::record_step_transitions`]), then tells each step. A thousand steps that
/// start at once cost a few commits, not a thousand, and no step's task waits on a
/// worker thread of the runtime for another's commit. An attempt's start that finds
/// the store free is committed where it is ([`Recorder::commit_here_or_submit`]).
struct Recorder {
    store: Arc<Store>,
    /// The journal's first failed write.
    failure: Arc<Mutex<Option<String>>>,
    /// `None` when the thread could not start: transitions are then written one by one.
    queue: Option<std::sync::mpsc::Sender<Pending>>,
    /// Final records waiting for the next attempt start to commit with it
    /// ([`Recorder::commit_with_next_start`]).
    parked: Mutex<Vec<Parked>>,
    next_parked: std::sync::atomic::AtomicU64,
}

/// A step's final record waiting for the next attempt start, and the step waiting for
/// its commit.
struct Parked {
    id: u64,
    transition: StepTransition,
    done: tokio::sync::oneshot::Sender<Result<(), StateError>>,
}

/// How long a final record waits for the next attempt start before it commits alone.
/// The start normally comes within a fraction of a millisecond (the next step only
/// opens its log and sandbox first); this bounds a start that never comes.
const PARKED_AT_MOST: std::time::Duration = std::time::Duration::from_millis(10);

/// A transition waiting for the recorder, and the step waiting for its commit.
type Pending = (
    StepTransition,
    tokio::sync::oneshot::Sender<Result<(), StateError>>,
);

/// At most this many transitions share one commit.
const MOST_PER_COMMIT: usize = 1024;

impl Recorder {
    fn start(store: Arc<Store>, failure: Arc<Mutex<Option<String>>>) -> Recorder {
        let (queue, waiting) = std::sync::mpsc::channel::<Pending>();
        let (for_thread, failure_seen) = (store.clone(), failure.clone());
        let started = std::thread::Builder::new()
            .name("sluice-recorder".into())
            .spawn(move || {
                // Ends when the journal (the only sender) is dropped.
                while let Ok(first) = waiting.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MOST_PER_COMMIT {
                        match waiting.try_recv() {
                            Ok(next) => batch.push(next),
                            Err(_) => break,
                        }
                    }
                    let (transitions, steps): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                    let outcomes = for_thread.record_step_transitions(&transitions);
                    for (step, outcome) in steps.into_iter().zip(outcomes) {
                        if let Err(e) = &outcome {
                            keep_failure(&failure_seen, e);
                        }
                        let _ = step.send(outcome);
                    }
                }
            });
        if let Err(e) = &started {
            tracing::warn!("no recorder thread ({e}): steps' transitions are committed one by one");
        }
        Recorder {
            store,
            failure,
            queue: started.ok().map(|_| queue),
            parked: Mutex::new(Vec::new()),
            next_parked: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Commit `transition` (a step's final record) with the next attempt start, in one
    /// commit ([`Recorder::commit_here_or_submit`] takes it along), or alone after
    /// [`PARKED_AT_MOST`]. The future ends with its commit.
    async fn commit_with_next_start(&self, transition: StepTransition) -> Result<(), StateError> {
        let (done, mut committed) = tokio::sync::oneshot::channel();
        let id = self
            .next_parked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        super::lock(&self.parked).push(Parked {
            id,
            transition,
            done,
        });
        if let Ok(outcome) = tokio::time::timeout(PARKED_AT_MOST, &mut committed).await {
            return self.replied(outcome);
        }
        let still_parked = {
            let mut parked = super::lock(&self.parked);
            parked
                .iter()
                .position(|p| p.id == id)
                .map(|i| parked.swap_remove(i))
        };
        match still_parked {
            Some(parked) => self.commit_here_or_submit(parked.transition).await,
            // Taken by a start at the last moment: its commit answers.
            None => self.replied(committed.await),
        }
    }

    /// Commit every parked final record now, on this thread.
    fn commit_parked(&self) {
        let (transitions, steps) = self.take_parked();
        if transitions.is_empty() {
            return;
        }
        let outcomes = self.store.record_step_transitions(&transitions);
        self.answer(steps, outcomes);
    }

    /// Every parked final record, taken out of the parking: the transitions, and in the
    /// same order the steps waiting for their commit.
    fn take_parked(
        &self,
    ) -> (
        Vec<StepTransition>,
        Vec<tokio::sync::oneshot::Sender<Result<(), StateError>>>,
    ) {
        std::mem::take(&mut *super::lock(&self.parked))
            .into_iter()
            .map(|p| (p.transition, p.done))
            .unzip()
    }

    /// Tell each step how its transition's commit went.
    fn answer(
        &self,
        steps: Vec<tokio::sync::oneshot::Sender<Result<(), StateError>>>,
        outcomes: Vec<Result<(), StateError>>,
    ) {
        for (step, outcome) in steps.into_iter().zip(outcomes) {
            if let Err(e) = &outcome {
                keep_failure(&self.failure, e);
            }
            let _ = step.send(outcome);
        }
    }

    fn replied(
        &self,
        answer: Result<Result<(), StateError>, tokio::sync::oneshot::error::RecvError>,
    ) -> Result<(), StateError> {
        replied(answer, self.store.path(), &self.failure)
    }

    /// Commit `transition` at once, on this thread, if no other commit of this process
    /// is under way (the store's connection is free); else [`Recorder::submit`]. The
    /// future ends with its commit. With a few steps at once (`--jobs` near the number
    /// of cores) the store is mostly free, and a step saves two thread hand-offs; with
    /// many, the recorder is mostly busy and they share its commits.
    fn commit_here_or_submit(
        &self,
        transition: StepTransition,
    ) -> impl Future<Output = Result<(), StateError>> + Send + 'static {
        // Final records parked for the next start commit with this transition.
        let (mut transitions, steps) = self.take_parked();
        transitions.push(transition);
        let committed_here = match self.store.record_step_transitions_if_free(&transitions) {
            Some(mut outcomes) => {
                let outcome = outcomes.pop().expect("one outcome per transition");
                if let Err(e) = &outcome {
                    keep_failure(&self.failure, e);
                }
                self.answer(steps, outcomes);
                Ok(outcome)
            }
            None => {
                let transition = transitions.pop().expect("this transition");
                for (parked, step) in transitions.into_iter().zip(steps) {
                    self.queue(parked, step);
                }
                Err(self.submit(transition))
            }
        };
        async move {
            match committed_here {
                Ok(outcome) => outcome,
                Err(queued) => queued.await,
            }
        }
    }

    /// Queue `transition` now; the future ends with its commit.
    fn submit(
        &self,
        transition: StepTransition,
    ) -> impl Future<Output = Result<(), StateError>> + Send + 'static {
        let (done, committed) = tokio::sync::oneshot::channel();
        self.queue(transition, done);
        let (path, failure) = (self.store.path().to_path_buf(), self.failure.clone());
        async move { replied(committed.await, &path, &failure) }
    }

    /// Hand `transition` to the recorder thread; `step` hears of its commit. Without
    /// the thread, it is committed at once, on this thread.
    fn queue(
        &self,
        transition: StepTransition,
        step: tokio::sync::oneshot::Sender<Result<(), StateError>>,
    ) {
        let unsent = match &self.queue {
            Some(queue) => queue
                .send((transition, step))
                .err()
                .map(|std::sync::mpsc::SendError(pending)| pending),
            None => Some((transition, step)),
        };
        if let Some((transition, step)) = unsent {
            let outcome = one_by_one(&self.store, transition);
            self.answer(vec![step], vec![outcome]);
        }
    }
}

impl Drop for Recorder {
    /// A step stopped while its final record was parked leaves it here: committed all
    /// the same (the stage already counts on it, see `ending` in `run_stage`).
    fn drop(&mut self) {
        self.commit_parked();
    }
}

/// A commit's answer as received; none (the committing side is gone: only a panic on
/// the recorder thread drops a step's reply) is a failure, kept.
fn replied(
    answer: Result<Result<(), StateError>, tokio::sync::oneshot::error::RecvError>,
    path: &std::path::Path,
    failure: &Mutex<Option<String>>,
) -> Result<(), StateError> {
    answer.unwrap_or_else(|_| {
        let e = StateError::Sql {
            path: path.to_path_buf(),
            message: "the recorder thread stopped before committing this step's transition".into(),
        };
        keep_failure(failure, &e);
        Err(e)
    })
}

/// One transition in a transaction of its own, on the caller's thread.
fn one_by_one(store: &Store, transition: StepTransition) -> Result<(), StateError> {
    store
        .record_step_transitions(std::slice::from_ref(&transition))
        .pop()
        .expect("one outcome per transition")
}

fn keep_failure(failure: &Mutex<Option<String>>, e: &StateError) {
    tracing::error!("cannot record the run: {e}");
    super::lock(failure).get_or_insert(e.to_string());
}

/// What a resumed run takes back from the record.
#[derive(Default)]
pub(super) struct Restored {
    /// Finished steps by (stage, step): never run again.
    pub steps: HashMap<(String, String), StepRecord>,
    /// The highest attempt number recorded per (stage, step), finished or not: a
    /// re-run attempt gets the next number.
    pub attempts: HashMap<(String, String), u32>,
    /// The stages as recorded.
    pub stages: Vec<StageRow>,
}

impl Restored {
    pub(super) fn load(journal: &Journal) -> Option<Restored> {
        let run_id = journal.run_id.clone();
        let (steps, attempts, stages) = journal.write(|s| {
            Ok((
                s.finished_steps(&run_id)?,
                s.attempts(&run_id)?,
                s.stages(&run_id)?,
            ))
        })?;
        let mut restored = Restored {
            stages,
            ..Restored::default()
        };
        for row in steps {
            match serde_json::from_str::<StepRecord>(row.record.get()) {
                Ok(rec) => {
                    restored.steps.insert((row.stage, row.step), rec);
                }
                Err(e) => {
                    // A record this sluice cannot read: the step runs again rather than
                    // the run reporting a step it knows nothing about.
                    tracing::warn!(
                        "run {run_id}: the record of step {}/{} cannot be read ({e}); it runs again",
                        row.stage,
                        row.step
                    );
                }
            }
        }
        for a in attempts {
            let n = restored.attempts.entry((a.stage, a.step)).or_insert(0);
            *n = (*n).max(a.attempt);
        }
        Some(restored)
    }

    fn stage(&self, stage: &str) -> Option<&StageRow> {
        self.stages.iter().rev().find(|s| s.stage == stage)
    }

    /// Whether the stage was left with a success (its steps are all restored).
    pub(super) fn stage_done(&self, stage: &str) -> bool {
        self.stage(stage).is_some_and(|s| {
            s.exited_at.is_some() && matches!(s.status.as_deref(), Some("passed" | "warned"))
        })
    }

    /// Whether the run had entered the stage (its gates let it in) without leaving it.
    pub(super) fn stage_entered(&self, stage: &str) -> bool {
        self.stage(stage)
            .is_some_and(|s| s.entered_at.is_some() && s.exited_at.is_none())
    }
}

/// How the entry of a stage ended.
pub(super) enum Entry {
    /// The run holds the stage.
    Enter,
    /// A gate denied: the run fails with this reason.
    Denied(String),
    /// The run stops here (waiting with `--no-wait`, or superseded).
    Stop(Stopped),
}

/// The exact command that overrides one gate of one stage for a run.
pub fn override_command(run_id: &str, stage: &str, gate: &str) -> String {
    format!("sluice override {run_id} --gate {gate} --stage {stage} --reason \"...\"")
}

/// The decision's name as recorded and shown.
pub fn decision_name(e: &Evaluation) -> &'static str {
    if e.overridden_by.is_some() {
        return "overridden";
    }
    match e.decision {
        Decision::Allow { .. } => "allow",
        Decision::Wait { .. } => "wait",
        Decision::Deny { .. } => "deny",
    }
}

fn decision_reason(d: &Decision) -> &str {
    match d {
        Decision::Allow { reason } | Decision::Wait { reason, .. } | Decision::Deny { reason } => {
            reason
        }
    }
}

/// A gate evaluation as shown.
pub fn gate_shown(e: &Evaluation) -> GateShown {
    GateShown {
        gate: e.gate.clone(),
        kind: e.kind.clone(),
        decision: decision_name(e).to_string(),
        reason: decision_reason(&e.decision).to_string(),
        until: match &e.decision {
            Decision::Wait {
                until: Some(until), ..
            } => Some(until.to_string()),
            _ => None,
        },
        overridden_by: e
            .overridden_by
            .as_ref()
            .map(|o| format!("{}: {}", o.actor, o.reason)),
    }
}

/// What would clear the gates that hold a run: each gate's own hint, and the override
/// of each gate that waits or denies.
pub fn clear_commands(run_id: &str, stage: &str, evaluations: &[Evaluation]) -> Vec<String> {
    let mut out = Vec::new();
    for e in evaluations {
        if e.overridden_by.is_some() || matches!(e.decision, Decision::Allow { .. }) {
            continue;
        }
        let command = override_command(run_id, stage, &e.gate);
        match &e.clear_hint {
            // A gate's own hint may already name its override.
            Some(hint) if hint.contains("sluice override") => out.push(hint.clone()),
            Some(hint) => {
                out.push(hint.clone());
                out.push(command);
            }
            None => out.push(command),
        }
    }
    out
}

/// What the gates of one stage look at for one run, read from the store at one instant.
pub struct GateFacts {
    pub approvals: Vec<crate::state::ApprovalRow>,
    pub overrides: Vec<crate::state::OverrideRow>,
    pub artifact: Option<crate::state::ArtifactRow>,
}

impl GateFacts {
    pub fn read(
        store: &Store,
        run_id: &str,
        stage: &str,
        now: jiff::Timestamp,
    ) -> Result<GateFacts, StateError> {
        Ok(GateFacts {
            approvals: store.approvals(run_id, stage)?,
            overrides: store.active_overrides(run_id, stage, now)?,
            artifact: store.run(run_id)?.artifact,
        })
    }

    /// Evaluate every gate of `stage` for the run at `now` (explain uses it too: it
    /// writes nothing).
    pub async fn evaluate(
        &self,
        pipeline: &str,
        run_id: &str,
        stage: &str,
        gates: &[Box<dyn Gate>],
        now: jiff::Timestamp,
    ) -> gates::Verdict {
        let input = GateInput {
            pipeline,
            run_id,
            stage,
            now,
            approvals: &self.approvals,
            artifact: self.artifact.as_ref(),
        };
        gates::evaluate_stage(gates, &input, &self.overrides).await
    }
}

/// Bring the run into `stage`: queue for it (superseding older queued runs of the
/// pipeline), evaluate every gate at one instant and record each evaluation, claim the
/// stage. While something holds the run it waits in the process, re-evaluating every
/// poll interval and showing what it waits for, or, with `no_wait`, records the run
/// `waiting` and stops.
pub(super) async fn enter_stage(
    journal: &Journal,
    stage: &Stage,
    gates: &[Box<dyn Gate>],
    restored: Option<&Restored>,
    no_wait: bool,
    events: &EventSink,
) -> Option<Entry> {
    let run_id = journal.run_id.clone();
    let name = stage.name.clone();
    // A stage entered before the runner stopped was already let in by its gates.
    let already_in = restored.is_some_and(|r| r.stage_entered(&name));
    if !already_in {
        let at = journal.now();
        let superseded = journal.write(|s| s.queue_for_stage(&run_id, &name, at))?;
        for old in superseded {
            tracing::info!("run {old} is superseded by run {run_id} at stage {name}");
        }
    }
    let mut shown_key: Option<String> = None;
    let mut last_recorded: HashMap<String, (String, String)> = HashMap::new();
    loop {
        let now = journal.now();
        // A newer run may have taken this run's place while it waited.
        let row = journal.write(|s| s.run(&run_id))?;
        if row.state == RunState::Superseded {
            return Some(Entry::Stop(Stopped::Superseded {
                stage: name,
                by: row.superseded_by.unwrap_or_else(|| "a newer run".into()),
            }));
        }
        let verdict = if already_in || gates.is_empty() {
            None
        } else {
            let facts = journal.write(|s| GateFacts::read(s, &run_id, &name, now))?;
            let verdict = facts
                .evaluate(&journal.pipeline, &run_id, &name, gates, now)
                .await;
            // Every evaluation that changed is recorded (the first, and each change).
            let rows: Vec<GateEvaluationRow> = verdict
                .evaluations
                .iter()
                .filter(|e| {
                    let key = (
                        decision_name(e).to_string(),
                        decision_reason(&e.decision).to_string(),
                    );
                    last_recorded.insert(e.gate.clone(), key.clone()) != Some(key)
                })
                .map(|e| GateEvaluationRow {
                    run_id: run_id.clone(),
                    stage: name.clone(),
                    gate: e.gate.clone(),
                    kind: e.kind.clone(),
                    evaluated_at: now,
                    decision: decision_name(e).to_string(),
                    reason: decision_reason(&e.decision).to_string(),
                    until: match &e.decision {
                        Decision::Wait { until, .. } => *until,
                        _ => None,
                    },
                    evidence: e.evidence.clone(),
                    since: now,
                })
                .collect();
            if !rows.is_empty() {
                journal.write(|s| s.record_gate_evaluations(&rows))?;
            }
            Some(verdict)
        };
        let wait_reason = match verdict.as_ref().map(|v| &v.decision) {
            Some(Decision::Deny { .. }) => {
                let v = verdict.as_ref().expect("a verdict");
                show_gates(events, &run_id, &name, v, &mut shown_key);
                let denied = v
                    .evaluations
                    .iter()
                    .filter(|e| e.overridden_by.is_none())
                    .find_map(|e| match &e.decision {
                        Decision::Deny { reason } => {
                            Some(format!("gate `{}` denied: {reason}", e.gate))
                        }
                        _ => None,
                    })
                    .unwrap_or_else(|| "a gate denied".into());
                return Some(Entry::Denied(format!("stage `{name}`: {denied}")));
            }
            Some(Decision::Wait { .. }) => {
                let v = verdict.as_ref().expect("a verdict");
                let holding: Vec<String> = v
                    .evaluations
                    .iter()
                    .filter(|e| {
                        e.overridden_by.is_none() && !matches!(e.decision, Decision::Allow { .. })
                    })
                    .map(|e| format!("gate `{}`: {}", e.gate, decision_reason(&e.decision)))
                    .collect();
                format!("stage `{name}`: {}", holding.join("; "))
            }
            Some(Decision::Allow { .. }) | None => {
                let holder = journal.holder.clone();
                match journal.write(|s| s.claim_stage(&run_id, &name, &holder, now))? {
                    StageClaim::Held => {
                        if let Some(v) = &verdict {
                            for e in &v.evaluations {
                                if let Some(o) = &e.overridden_by {
                                    journal.write(|s| s.use_override(o.id, now))?;
                                }
                            }
                            show_gates(events, &run_id, &name, v, &mut shown_key);
                        }
                        return Some(Entry::Enter);
                    }
                    StageClaim::Superseded { by } => {
                        return Some(Entry::Stop(Stopped::Superseded { stage: name, by }));
                    }
                    StageClaim::Busy { holder_run } => {
                        if let Some(v) = &verdict {
                            show_gates(events, &run_id, &name, v, &mut shown_key);
                        }
                        format!("stage `{name}` is busy with run {holder_run}")
                    }
                }
            }
        };
        if let Some(v) = &verdict {
            show_gates(events, &run_id, &name, v, &mut shown_key);
        }
        if no_wait {
            let at = journal.now();
            journal
                .write(|s| s.set_run_state(&run_id, RunState::Waiting, Some(&wait_reason), at))?;
            return Some(Entry::Stop(Stopped::Waiting {
                stage: name,
                reason: wait_reason,
                in_bake: false,
            }));
        }
        let key = format!("waiting:{wait_reason}");
        if shown_key.as_deref() != Some(key.as_str()) {
            events.send(Event::StageWaiting {
                stage: name.clone(),
                reason: wait_reason,
            });
            shown_key = Some(key);
        }
        tokio::time::sleep(journal.clock.poll_interval()).await;
    }
}

/// Show the gates' verdict when it differs from what was shown last.
fn show_gates(
    events: &EventSink,
    run_id: &str,
    stage: &str,
    verdict: &gates::Verdict,
    shown_key: &mut Option<String>,
) {
    let gates: Vec<GateShown> = verdict.evaluations.iter().map(gate_shown).collect();
    let verdict_name = match verdict.decision {
        Decision::Allow { .. } => "allow",
        Decision::Wait { .. } => "wait",
        Decision::Deny { .. } => "deny",
    };
    let key = serde_json::to_string(&(verdict_name, &gates)).unwrap_or_default();
    if shown_key.as_deref() == Some(key.as_str()) {
        return;
    }
    *shown_key = Some(key);
    events.send(Event::Gates {
        stage: stage.to_string(),
        verdict: verdict_name.to_string(),
        clear: clear_commands(run_id, stage, &verdict.evaluations),
        gates,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{NewRun, Trigger};

    fn store_with_run(dir: &std::path::Path) -> Arc<Store> {
        let store = Arc::new(Store::open(&dir.join("state.db")).unwrap());
        let at = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        store
            .create_run(
                &NewRun {
                    run_id: "r".into(),
                    pipeline: "p".into(),
                    pipeline_file: dir.join("sluice.toml"),
                    pipeline_digest: "d".into(),
                    run_dir: dir.join("runs/r"),
                    trigger: Trigger {
                        actor: "tester".into(),
                        ci: vec![],
                        git_commit: None,
                    },
                    started_at: at,
                },
                &Holder::current(),
            )
            .unwrap();
        store
    }

    fn started(step: &str) -> StepTransition {
        StepTransition::AttemptStarted {
            run_id: "r".into(),
            stage: "s".into(),
            step: step.into(),
            attempt: 1,
            at: jiff::Timestamp::from_second(1_800_000_001).unwrap(),
        }
    }

    fn finished(step: &str) -> StepTransition {
        let attempt = AttemptRow {
            run_id: "r".into(),
            stage: "s".into(),
            step: step.into(),
            attempt: 1,
            started_at: jiff::Timestamp::from_second(1_800_000_001).unwrap(),
            finished_at: Some(jiff::Timestamp::from_second(1_800_000_002).unwrap()),
            status: Some("passed".into()),
            summary: Some("ok".into()),
            report: None,
            log: None,
        };
        StepTransition::LastAttemptAndStepFinished(
            attempt,
            StepRow {
                run_id: "r".into(),
                stage: "s".into(),
                step: step.into(),
                status: "passed".into(),
                summary: "ok".into(),
                attempts: 1,
                record: crate::state::stored_json(&serde_json::json!({ "step": step })),
                finished_at: jiff::Timestamp::from_second(1_800_000_002).unwrap(),
            },
        )
    }

    /// `step`'s final record parked (on a task of its own, which waits for its commit),
    /// once it is.
    async fn parked_on_a_task(
        recorder: &Arc<Recorder>,
        step: &str,
    ) -> tokio::task::JoinHandle<Result<(), StateError>> {
        let waiting = tokio::spawn({
            let (recorder, finished) = (recorder.clone(), finished(step));
            async move { recorder.commit_with_next_start(finished).await }
        });
        while super::super::lock(&recorder.parked).is_empty() {
            tokio::task::yield_now().await;
        }
        waiting
    }

    fn finished_steps(store: &Store) -> Vec<String> {
        let mut steps: Vec<String> = store
            .finished_steps("r")
            .unwrap()
            .into_iter()
            .map(|s| s.step)
            .collect();
        steps.sort();
        steps
    }

    #[tokio::test]
    async fn a_final_record_waiting_for_the_next_start_commits_with_it_or_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_run(dir.path());
        let recorder = Arc::new(Recorder::start(store.clone(), Arc::default()));
        recorder.commit_here_or_submit(started("a")).await.unwrap();
        // Parked: not in the store until a start comes.
        let waiting = parked_on_a_task(&recorder, "a").await;
        assert!(finished_steps(&store).is_empty());
        // The next start takes it along: both are committed when the start is.
        recorder.commit_here_or_submit(started("b")).await.unwrap();
        assert_eq!(finished_steps(&store), ["a"]);
        assert_eq!(store.attempts("r").unwrap().len(), 2);
        waiting.await.unwrap().unwrap();
        // No start comes: committed alone once the wait is over.
        recorder
            .commit_with_next_start(finished("b"))
            .await
            .unwrap();
        assert_eq!(finished_steps(&store), ["a", "b"]);
        // A stage stopped by an alarm starts none: what waits is committed at once.
        recorder.commit_here_or_submit(started("c")).await.unwrap();
        let stopped = parked_on_a_task(&recorder, "c").await;
        stopped.abort();
        recorder.commit_parked();
        assert_eq!(finished_steps(&store), ["a", "b", "c"]);
        let problems = store.consistency_problems().unwrap();
        assert!(problems.is_empty(), "{problems:?}");
    }
}
