//! Showing a run to a person or a program: live progress on a terminal (a spinner per
//! running step, a line per finished step), plain lines when output is not a terminal
//! (CI logs), or one JSON object per event with `--format json`. Finished steps are
//! shown in the order they finish; when a step line follows a failure, the failed
//! steps are recalled before the run's last line, so a failure never scrolls away.
//!
//! Output goes through [`crate::console`]: when stdout or stderr is closed the run
//! goes on unseen (it is still recorded in its folder).
//!
//! Text that comes from plugins (summaries, log lines, progress messages) is data:
//! [`shown`] escapes control characters (ANSI and OSC sequences are printed, not
//! executed) and the markers CI systems scan lines for (`##[`, `##vso[`), and every
//! such line is printed after a fixed prefix, so it never starts a workflow command
//! (`::error ...`) or looks like the runner's own line. Inside GitHub Actions the
//! whole run's output is also fenced with `::stop-commands::`. Spinners are ticked from the
//! event loop rather than from a thread of indicatif's own, so showing progress never
//! needs a thread the OS might refuse.
//!
//! Deployments are shown by [`deploy::DeployLines`]: a line per deployment start and
//! end, per target when it is done, per failure and per bake.

mod deploy;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::console;
use crate::events::{Event, Status};
use crate::state::Store;

pub use deploy::DeployLines;

/// How to show a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Live progress on a terminal, plain lines otherwise.
    Auto,
    /// Live progress (spinners) even when not detected as a terminal.
    Tty,
    /// One line per stage start and step end; suits CI logs.
    Plain,
    /// One JSON object per event and line.
    Json,
}

/// Render events until the channel closes. `store` is the run's state store (what
/// deployment lines say of a deployment is read from it), when the run has one.
pub async fn render(
    format: Format,
    verbose: bool,
    mut rx: UnboundedReceiver<Event>,
    store: Option<Arc<Store>>,
) {
    let format = match format {
        Format::Auto if std::io::IsTerminal::is_terminal(&std::io::stderr()) => Format::Tty,
        Format::Auto => Format::Plain,
        f => f,
    };
    match format {
        Format::Json => {
            while let Some(e) = rx.recv().await {
                let Ok(line) = serde_json::to_string(&e) else {
                    continue;
                };
                // The same text once parsed, but no marker a CI system would act on
                // anywhere in the line (only strings can hold `#`).
                let line = line
                    .replace("##[", "#\\u0023[")
                    .replace("##vso[", "#\\u0023vso[");
                if !console::out_line(&line) {
                    // Nobody reads the events any more; the run goes on unseen.
                    break;
                }
                if is_last(&e) {
                    break;
                }
            }
        }
        Format::Tty => {
            let mut live = Live::new(DeployLines::new(store));
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    e = rx.recv() => match e {
                        Some(e) => {
                            live.event(&e, verbose);
                            if is_last(&e) {
                                break;
                            }
                        }
                        None => break,
                    },
                    _ = tick.tick() => live.tick(),
                }
            }
        }
        _ => {
            // Inside GitHub Actions everything goes to stdout, in one stream with the
            // command fence around it (see `GithubFence`).
            let to_stdout = crate::reports::github::in_github_actions();
            let mut failures = Failures::default();
            let mut deploys = DeployLines::new(store);
            while let Some(e) = rx.recv().await {
                if let Some(recap) = failures.note(&e) {
                    let written = if to_stdout {
                        console::out_line(&recap)
                    } else {
                        console::err_line(&recap)
                    };
                    if !written {
                        break;
                    }
                }
                let text = match &e {
                    Event::Deploy { .. } => deploys.line(&e, verbose, Instant::now()),
                    _ => plain_line(&e, verbose),
                };
                if let Some(text) = text {
                    let written = if to_stdout {
                        console::out_line(&text)
                    } else {
                        console::err_line(&text)
                    };
                    if !written {
                        break;
                    }
                }
                if is_last(&e) {
                    break;
                }
            }
        }
    }
}

/// The run's last event: showing ends with it, whatever still holds a sender.
fn is_last(e: &Event) -> bool {
    matches!(e, Event::RunFinished { .. } | Event::RunStopped { .. })
}

fn seconds(d: Duration) -> String {
    if d.as_secs() >= 60 {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else if d.as_millis() >= 100 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn mark(status: Status) -> &'static str {
    match status {
        Status::Passed => "PASS",
        Status::Failed => "FAIL",
        Status::Warned => "WARN",
        Status::Skipped => "SKIP",
    }
}

/// The plain-text rendering of an event (None: not shown).
pub fn plain_line(e: &Event, verbose: bool) -> Option<String> {
    match e {
        Event::RunStarted {
            pipeline, run_id, ..
        } => Some(format!("pipeline {pipeline} (run {run_id})")),
        Event::StageStarted { stage } => Some(format!("stage {stage}")),
        Event::MonitorChecked {
            monitor,
            outcome,
            positive,
            negative,
            summary,
            ..
        } => verbose.then(|| {
            format!(
                "  monitor {monitor}: {outcome}, {positive} positive, {negative} negative: {}",
                shown(summary)
            )
        }),
        Event::StageStopped { stage, reason } => {
            Some(format!("stage {stage} stopped: {}", shown(reason)))
        }
        Event::Gates {
            stage,
            verdict,
            gates,
            clear,
        } => {
            let mut s = format!("gates of stage {stage}: {verdict}");
            for g in gates {
                s.push_str(&format!(
                    "\n  {} {} ({}): {}",
                    g.decision.to_uppercase(),
                    g.gate,
                    g.kind,
                    shown(&g.reason)
                ));
                if let Some(until) = &g.until {
                    s.push_str(&format!(" (until {until})"));
                }
                if let Some(by) = &g.overridden_by {
                    s.push_str(&format!(" [overridden by {}]", shown(by)));
                }
            }
            for c in clear {
                s.push_str(&format!("\n  to clear: {}", shown(c)));
            }
            Some(s)
        }
        Event::Bake {
            stage,
            state,
            reason,
            ..
        } => Some(match state.as_str() {
            "baking" => format!("baking stage {stage}: {}", shown(reason)),
            ended => format!("bake of stage {stage} {ended}: {}", shown(reason)),
        }),
        Event::Deploy {
            deployment_id,
            target,
            lifecycle_event,
            state,
            detail,
            ..
        } => Some(if target.is_empty() {
            format!("  deployment {deployment_id} {state}: {}", shown(detail))
        } else {
            let mut s = format!("    {target} {lifecycle_event} {state}");
            if !detail.is_empty() {
                s.push_str(": ");
                s.push_str(&shown(first_line(detail)));
            }
            s
        }),
        Event::StageWaiting { stage, reason } => {
            Some(format!("waiting for stage {stage}: {}", shown(reason)))
        }
        Event::StepRestored {
            stage,
            step,
            status,
            summary,
        } => {
            let mut s = format!(
                "  {} {stage}/{step} (finished before the resume, not run again)",
                mark(*status)
            );
            if !summary.is_empty() {
                s.push_str(": ");
                s.push_str(&shown(first_line(summary)));
            }
            Some(s)
        }
        Event::RunStopped {
            run_id,
            state,
            reason,
        } => Some(format!(
            "pipeline {state}: {} (run {run_id})",
            shown(reason)
        )),
        Event::StepSecrets {
            stage,
            step,
            secrets,
        } => Some(format!(
            "  secrets for {stage}/{step}: {}",
            secrets.join(", ")
        )),
        Event::StepStarted { .. } | Event::StepProgress { .. } => None,
        Event::StepLog {
            stage,
            step,
            source,
            line,
        } => verbose.then(|| format!("       {stage}/{step} [{source}] {}", shown(line))),
        Event::StepRetrying {
            stage,
            step,
            attempt,
            delay,
            reason,
        } => Some(format!(
            "  RETRY {stage}/{step}: attempt {attempt} failed ({}); retrying in {}",
            shown(first_line(reason)),
            seconds(*delay)
        )),
        Event::StepFinished {
            stage,
            step,
            status,
            summary,
            attempts,
            duration,
            log_tail,
            log,
        } => {
            let mut s = format!("  {} {stage}/{step}", mark(*status));
            if *status != Status::Skipped {
                s.push_str(&format!(" [{}]", seconds(*duration)));
            }
            if *attempts > 1 {
                s.push_str(&format!(" after {attempts} attempts"));
            }
            if !summary.is_empty() {
                s.push_str(": ");
                s.push_str(&shown(first_line(summary)));
            }
            if *status == Status::Failed {
                for l in summary.lines().skip(1) {
                    s.push_str(&format!("\n         | {}", shown(l)));
                }
                if !log_tail.is_empty() {
                    s.push_str("\n       last lines of the step log:");
                    for l in log_tail {
                        s.push_str(&format!("\n         {}", shown(l)));
                    }
                }
                if let Some(log) = log {
                    s.push_str(&format!("\n       full log: {log}"));
                }
            }
            Some(s)
        }
        Event::StageFinished { .. } => None,
        Event::RunFinished {
            status,
            duration,
            reason,
            run_id,
        } => Some(match reason {
            Some(r) => format!(
                "pipeline {} in {}: {r} (run {run_id})",
                status.as_str(),
                seconds(*duration)
            ),
            None => format!(
                "pipeline {} in {} (run {run_id})",
                status.as_str(),
                seconds(*duration)
            ),
        }),
    }
}

/// The failed steps of a run, recalled at its end: steps are shown in the order they
/// finish, so a failure can scroll away above the passing steps that ran beside it or
/// after it. The recap (only when some step line followed a failure) keeps it in view.
#[derive(Default)]
struct Failures {
    failed: Vec<String>,
    /// Lines of steps that ran, shown since the first failure.
    shown_after: usize,
}

impl Failures {
    /// Take note of `e`; at the end of the run, the recap to show before its last line.
    fn note(&mut self, e: &Event) -> Option<String> {
        match e {
            Event::StepFinished {
                stage,
                step,
                status,
                summary,
                log,
                ..
            } => {
                // A skipped step says why (a failure above); it hides nothing.
                if !self.failed.is_empty() && *status != Status::Skipped {
                    self.shown_after += 1;
                }
                if *status == Status::Failed {
                    let mut line = format!("  FAIL {stage}/{step}");
                    if !summary.is_empty() {
                        line.push_str(&format!(": {}", shown(first_line(summary))));
                    }
                    if let Some(log) = log {
                        line.push_str(&format!(" (log: {log})"));
                    }
                    self.failed.push(line);
                }
                None
            }
            Event::RunFinished { .. } if self.shown_after > 0 => {
                let mut recap = format!("failed steps ({}):", self.failed.len());
                for line in &self.failed {
                    recap.push('\n');
                    recap.push_str(line);
                }
                Some(recap)
            }
            _ => None,
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// Plugin text as it may appear on a console: control characters (C0, DEL, C1, and
/// the bidirectional overrides) written as escapes, and the line markers CI systems
/// act on anywhere in a line (`##[` of GitHub's legacy commands, `##vso[` of Azure
/// Pipelines) broken with a backslash.
pub fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    let risky = |c: char| {
        (c.is_control() && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(risky) && !text.contains("##") {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if risky(c) {
            let n = c as u32;
            if n < 0x100 {
                out.push_str(&format!("\\x{n:02x}"));
            } else {
                out.push_str(&format!("\\u{{{n:x}}}"));
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out.replace("##[", "#\\#[").replace("##vso[", "#\\#vso["))
}

/// Spinners for running steps, lines for finished ones.
struct Live {
    multi: MultiProgress,
    bars: HashMap<(String, String), ProgressBar>,
    style: ProgressStyle,
    failures: Failures,
    deploys: DeployLines,
}

impl Live {
    fn new(deploys: DeployLines) -> Live {
        let style = ProgressStyle::with_template("  {spinner} {prefix} [{elapsed}] {wide_msg}")
            .expect("the template is valid")
            .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ");
        Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: HashMap::new(),
            style,
            failures: Failures::default(),
            deploys,
        }
    }

    /// Advance every spinner.
    fn tick(&self) {
        for b in self.bars.values() {
            b.tick();
        }
    }

    fn event(&mut self, e: &Event, verbose: bool) {
        if let Some(recap) = self.failures.note(e) {
            let _ = self.multi.println(recap);
        }
        match e {
            Event::StepStarted {
                stage,
                step,
                attempt,
            } => {
                let key = (stage.clone(), step.clone());
                let bar = self.bars.entry(key).or_insert_with(|| {
                    let b = self.multi.add(ProgressBar::new_spinner());
                    b.set_style(self.style.clone());
                    b.set_prefix(format!("{stage}/{step}"));
                    b
                });
                if *attempt > 1 {
                    bar.set_message(format!("attempt {attempt}"));
                }
            }
            Event::StepProgress {
                stage,
                step,
                done,
                total,
                message,
            } => {
                if let Some(b) = self.bars.get(&(stage.clone(), step.clone())) {
                    let message = shown(message).into_owned();
                    match total {
                        Some(t) => b.set_message(format!("{done}/{t} {message}")),
                        None => b.set_message(message),
                    }
                }
            }
            Event::StepFinished { stage, step, .. } => {
                if let Some(b) = self.bars.remove(&(stage.clone(), step.clone())) {
                    b.finish_and_clear();
                    self.multi.remove(&b);
                }
                if let Some(line) = plain_line(e, verbose) {
                    let _ = self.multi.println(line);
                }
            }
            Event::Deploy {
                stage,
                step,
                deployment_id,
                target,
                lifecycle_event,
                ..
            } => {
                // The step's spinner says where the deployment is.
                if let Some(b) = self.bars.get(&(stage.clone(), step.clone())) {
                    let at = if target.is_empty() {
                        lifecycle_event.clone()
                    } else {
                        format!("{target} {lifecycle_event}")
                    };
                    b.set_message(format!("{deployment_id}: {}", shown(&at)));
                }
                if let Some(line) = self.deploys.line(e, verbose, Instant::now()) {
                    let _ = self.multi.println(line);
                }
            }
            other => {
                if let Some(line) = plain_line(other, verbose) {
                    let _ = self.multi.println(line);
                }
            }
        }
    }
}
