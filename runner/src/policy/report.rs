//! `sluice policy report DIR...`: for many pipelines, the checks each fails or will
//! fail (and when), its exemptions and their expiry, and its automation level
//! (manual approvals, manual stages, missing bake, alarms or canary), for the people
//! who lead the teams that own them.
//!
//! This module finds the pipeline files ([`find_pipeline_files`]), reads each one
//! (configuration only: plugins are loaded only for custom checks), evaluates its
//! policy's checks at an instant ([`super::checks::evaluate`] and
//! [`super::lifecycle::status_at`]) and scores its automation ([`automation`]). The
//! result is a [`Report`], one [`PipelineReport`] per file, whose serde form is the
//! documented JSON shape (`report-version` [`REPORT_VERSION`]); `cli/report_cli.rs`
//! prints it as a table, JSON or a Markdown page. A file that does not load is a row
//! with its errors, never the end of the report. docs/policy/report.md documents the
//! columns, the score's weights and the JSON shape.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::civil::Date;
use serde::Serialize;

use super::checks::Violation;
use super::lifecycle::{CheckStatus, Standing};
use super::{Blocks, Policy, PolicyRef};
use crate::config::{self, Pipeline, PipelineFileError, PluginRef};
use crate::gates::spec::GateKind;
use crate::host::plugin::PluginHost;
use crate::lockfile::{self, Lock};

/// The version of the JSON shape; it changes only when a field changes meaning or
/// goes away (new fields may appear within a version).
pub const REPORT_VERSION: u32 = 1;

/// Folders never searched for pipeline files: build output, the runner's own
/// folders, package caches. Hidden folders (`.git`, `.sluice-cache`) are skipped too.
pub const SKIPPED_FOLDERS: &[&str] = &["target", "node_modules"];

/// Why there is no report at all (anything wrong with one pipeline is a row instead).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no such folder: {} (give the folders to search for pipeline files)", .0.display())]
    NoSuchFolder(PathBuf),
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Report {
    pub report_version: u32,
    /// The instant the checks' standings and the exemptions' expiry are evaluated at.
    pub generated_at: jiff::Timestamp,
    /// The policy given with `--policy`, used for every pipeline; `None`: each
    /// pipeline's own.
    pub policy_override: Option<PolicyShown>,
    pub summary: Summary,
    /// One per pipeline file, in path order.
    pub pipelines: Vec<PipelineReport>,
}

/// Counts over every pipeline of the report.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Summary {
    /// Pipeline files found.
    pub pipelines: usize,
    /// Files that did not load (each a row with its errors).
    pub errors: usize,
    /// Pipelines with no policy (none referenced and no `--policy`).
    pub without_policy: usize,
    /// Pipelines failing at least one enforced check now.
    pub failing: usize,
    /// Pipelines with at least one check in its warning or announcement period.
    pub warned: usize,
    /// Pipelines let through at least one check by an exemption.
    pub exempt: usize,
    /// Pipelines per automation level, most automated first.
    pub levels: Vec<LevelCount>,
}

/// How many pipelines are at one automation level.
#[derive(Debug, Clone, Serialize)]
pub struct LevelCount {
    pub level: Level,
    pub pipelines: usize,
}

/// A policy as reports name it.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyShown {
    pub name: String,
    pub version: Option<String>,
    /// The file (relative to the current folder when beneath it) or OCI reference.
    pub source: String,
    /// `sha256:HEX` of the policy file's bytes.
    pub digest: String,
}

impl PolicyShown {
    fn of(policy: &Policy) -> PolicyShown {
        let source = match &policy.origin {
            PolicyRef::File(p) => shown_path(p),
            PolicyRef::Oci(r) => r.to_string(),
        };
        PolicyShown {
            name: policy.name.clone(),
            version: policy.version.clone(),
            source,
            digest: policy.digest.clone(),
        }
    }

    /// `name version`, as a table cell.
    pub fn label(&self) -> String {
        match &self.version {
            Some(v) => format!("{} {v}", self.name),
            None => self.name.clone(),
        }
    }
}

/// One pipeline file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PipelineReport {
    /// The file, as found under the folder given (`examples/health/sluice.toml`).
    pub file: String,
    /// `[pipeline] name`; `None` when the file does not load.
    pub pipeline: Option<String>,
    /// Why the file does not load, each at file:line:col; empty when it loads.
    pub errors: Vec<String>,
    /// The policy its checks were evaluated against; `None`: no policy.
    pub policy: Option<PolicyShown>,
    /// Why its policy could not be read (its checks are then not evaluated).
    pub policy_error: Option<String>,
    pub counts: Counts,
    /// Every check of the policy, passing ones included, in policy order.
    pub checks: Vec<CheckRow>,
    /// The policy's exemptions that name this pipeline, expired ones included.
    pub exemptions: Vec<ExemptionRow>,
    /// `None` when the file does not load.
    pub automation: Option<Automation>,
}

/// The numbers of a row of the table.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Counts {
    /// Checks enforced now and violated (not exempt): they block the run or promotion.
    pub failing: usize,
    /// Checks violated and warning now, or announced (violated before their
    /// `warn-from`): they will fail once enforced.
    pub warnings: usize,
    /// The earliest `enforce-from` among the warning and announced checks.
    pub earliest_enforcement: Option<Date>,
    /// Exemptions of this pipeline that still apply.
    pub exemptions: usize,
    /// The earliest `expires` among them.
    pub earliest_expiry: Option<Date>,
    /// Checks that could not run (a custom check's plugin failed).
    pub check_errors: usize,
}

/// One check's standing for one pipeline.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CheckRow {
    pub check: String,
    pub message: String,
    pub standing: StandingName,
    pub warn_from: Option<Date>,
    pub enforce_from: Option<Date>,
    pub blocks: &'static str,
    pub violations: Vec<Violation>,
    /// The exemption letting the pipeline through, when `standing` is `exempt`.
    pub exemption: Option<ExemptionUsed>,
    /// The last day of an exemption of this pipeline from this check that has expired.
    pub expired_exemption: Option<Date>,
    /// Why the check could not run, when `standing` is `failed`.
    pub error: Option<String>,
}

/// [`Standing`] without its data, as a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StandingName {
    /// Enforced and violated: blocks now. Listed first.
    Enforced,
    Warns,
    Announced,
    Failed,
    Exempt,
    Passes,
}

impl StandingName {
    pub fn as_str(self) -> &'static str {
        match self {
            StandingName::Enforced => "enforced",
            StandingName::Warns => "warns",
            StandingName::Announced => "announced",
            StandingName::Failed => "failed",
            StandingName::Exempt => "exempt",
            StandingName::Passes => "passes",
        }
    }
}

/// The exemption a check's standing names.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExemptionUsed {
    pub approved_by: String,
    pub reason: String,
    pub expires: Option<Date>,
}

/// An exemption of the policy that names this pipeline.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExemptionRow {
    pub check: String,
    pub reason: String,
    pub approved_by: String,
    pub ticket: Option<String>,
    /// The last day it applies (UTC); `None`: permanent.
    pub expires: Option<Date>,
    pub state: ExemptionState,
    /// Where the policy file declares it (`file:line:col`).
    pub at: String,
}

/// Whether an exemption matters at the report's instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExemptionState {
    /// It lets the pipeline through a violated check.
    InUse,
    /// It applies, but the check is not violated (or not yet announced).
    Unused,
    /// Its last day has passed: it no longer applies.
    Expired,
}

impl ExemptionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ExemptionState::InUse => "in use",
            ExemptionState::Unused => "unused",
            ExemptionState::Expired => "expired",
        }
    }
}

// ---- automation ---------------------------------------------------------------------

/// Points taken off the automation score, per gap. Documented in
/// docs/policy/report.md; change both together.
pub mod weights {
    /// Per stage a run enters only once people approved (an `approval` gate).
    pub const MANUAL_APPROVAL: u32 = 20;
    /// Per deploy or production stage without a `[stage.bake]`.
    pub const NO_BAKE: u32 = 10;
    /// Per deploy or production stage with no `alarms` gate, on it or on the stage
    /// after it.
    pub const NO_ALARMS: u32 = 10;
    /// Once, for a pipeline that deploys and declares no `[[monitor]]` (no canary).
    pub const NO_CANARY: u32 = 15;
    /// Per production stage without a `window` gate.
    pub const NO_WINDOW: u32 = 5;
    /// Per step with `allow-failure = true`.
    pub const ALLOW_FAILURE: u32 = 5;
    /// Once, when a plugin that is not built in is pinned neither by a digest in its
    /// `uses` nor by `sluice.lock`.
    pub const UNPINNED_PLUGINS: u32 = 10;
}

/// How automated a pipeline is: a score from 100 down, each deduction listed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Automation {
    /// 0-100: 100 less every gap's deduction, at least 0.
    pub score: u32,
    pub level: Level,
    /// Whether any stage deploys (a deploy or production stage).
    pub deploys: bool,
    /// Stages a run enters only when people approved.
    pub manual_stages: Vec<String>,
    /// Approvals a release needs in all (the sum of every approval gate's `required`).
    pub approvals_required: u32,
    /// Stages of kind `deploy` or `production`.
    pub deploy_stages: Vec<String>,
    /// Stages of kind `production` (protected).
    pub production_stages: Vec<String>,
    /// `[[monitor]]`s declared.
    pub monitors: usize,
    /// Whether `sluice.lock` lies next to the pipeline file.
    pub lockfile: bool,
    /// Plugins (not built in) pinned neither by digest nor by the lock.
    pub unpinned_plugins: Vec<String>,
    /// What cost points, in stage order.
    pub gaps: Vec<Gap>,
}

/// The automation level, from the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// 90-100: changes flow to production without people, guarded by bakes,
    /// alarms and windows.
    Continuous,
    /// 70-89.
    Automated,
    /// 40-69.
    PartlyAutomated,
    /// 0-39.
    Manual,
}

impl Level {
    /// The level of a score.
    pub fn of(score: u32) -> Level {
        match score {
            90.. => Level::Continuous,
            70..=89 => Level::Automated,
            40..=69 => Level::PartlyAutomated,
            _ => Level::Manual,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Continuous => "continuous",
            Level::Automated => "automated",
            Level::PartlyAutomated => "partly automated",
            Level::Manual => "manual",
        }
    }

    const ALL: [Level; 4] = [
        Level::Continuous,
        Level::Automated,
        Level::PartlyAutomated,
        Level::Manual,
    ];
}

/// One thing that costs automation points.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Gap {
    pub gap: GapKind,
    pub stage: Option<String>,
    pub step: Option<String>,
    pub deduction: u32,
    /// What is missing, in a sentence.
    pub text: String,
}

/// The kinds of gap, as the JSON names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GapKind {
    ManualApproval,
    NoBake,
    NoAlarms,
    NoCanary,
    NoWindow,
    AllowFailure,
    UnpinnedPlugins,
}

/// What the lock file says about a pipeline's plugins.
#[derive(Debug, Clone, Default)]
pub struct LockState {
    /// `sluice.lock` exists next to the pipeline file.
    pub exists: bool,
    /// Its entries, when it reads.
    pub lock: Option<Lock>,
}

/// Score a pipeline's automation. `policy` decides which stages are protected and
/// adds stage kinds by name (see [`super::protect::stage_kinds`]); without one only
/// the kinds inferred from the stages' plugins and `protected = true` count.
pub fn automation(pipeline: &Pipeline, policy: Option<&Policy>, lock: &LockState) -> Automation {
    let mut gaps = Vec::new();
    let kinds: Vec<Vec<String>> = pipeline
        .stages
        .iter()
        .map(|s| super::protect::stage_kinds(policy, pipeline, s))
        .collect();
    let has_kind = |i: usize, k: &str| kinds[i].iter().any(|x| x == k);
    let is_deploy = |i: usize| has_kind(i, "deploy") || has_kind(i, "production");
    let has_gate = |i: usize, f: fn(&GateKind) -> bool| {
        pipeline
            .stages
            .get(i)
            .is_some_and(|s| s.gates.iter().any(|g| f(&g.kind)))
    };

    let mut manual_stages = Vec::new();
    let mut approvals_required = 0;
    let mut deploy_stages = Vec::new();
    let mut production_stages = Vec::new();
    for (i, stage) in pipeline.stages.iter().enumerate() {
        let name = &stage.name;
        let approvers: u32 = stage
            .gates
            .iter()
            .map(|g| match &g.kind {
                GateKind::Approval(a) => a.required,
                _ => 0,
            })
            .sum();
        if approvers > 0 {
            approvals_required += approvers;
            manual_stages.push(name.clone());
            let people = if approvers == 1 {
                "1 approver".to_string()
            } else {
                format!("{approvers} approvers")
            };
            gaps.push(stage_gap(
                GapKind::ManualApproval,
                name,
                weights::MANUAL_APPROVAL,
                format!("stage `{name}` is entered only after manual approval ({people})"),
            ));
        }
        if !is_deploy(i) {
            continue;
        }
        deploy_stages.push(name.clone());
        let production = has_kind(i, "production");
        if production {
            production_stages.push(name.clone());
        }
        if stage.bake.is_none() {
            gaps.push(stage_gap(
                GapKind::NoBake,
                name,
                weights::NO_BAKE,
                format!("stage `{name}` deploys without a bake (`[stage.bake]`)"),
            ));
        }
        let alarms = |g: &GateKind| matches!(g, GateKind::Alarms(_));
        if !has_gate(i, alarms) && !has_gate(i + 1, alarms) {
            gaps.push(stage_gap(
                GapKind::NoAlarms,
                name,
                weights::NO_ALARMS,
                format!(
                    "stage `{name}` deploys with no alarms gate on it or on the stage after it"
                ),
            ));
        }
        if production && !has_gate(i, |g| matches!(g, GateKind::Window(_))) {
            gaps.push(stage_gap(
                GapKind::NoWindow,
                name,
                weights::NO_WINDOW,
                format!("production stage `{name}` has no time window gate"),
            ));
        }
    }
    let deploys = !deploy_stages.is_empty();
    if deploys && pipeline.monitors.is_empty() {
        gaps.push(Gap {
            gap: GapKind::NoCanary,
            stage: None,
            step: None,
            deduction: weights::NO_CANARY,
            text: "the pipeline deploys but declares no `[[monitor]]`: no canary or health signal watches a release".into(),
        });
    }
    for stage in &pipeline.stages {
        for step in stage.steps.iter().filter(|s| s.allow_failure) {
            gaps.push(Gap {
                gap: GapKind::AllowFailure,
                stage: Some(stage.name.clone()),
                step: Some(step.id.clone()),
                deduction: weights::ALLOW_FAILURE,
                text: format!(
                    "step `{}` of stage `{}` may fail without stopping the run (`allow-failure = true`)",
                    step.id, stage.name
                ),
            });
        }
    }
    let unpinned_plugins = unpinned_plugins(pipeline, lock.lock.as_ref());
    if !unpinned_plugins.is_empty() {
        let list = unpinned_plugins
            .iter()
            .map(|u| format!("`{u}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let why = if lock.exists {
            "sluice.lock does not pin them (`sluice lock --update`)"
        } else {
            "there is no sluice.lock (`sluice lock`)"
        };
        gaps.push(Gap {
            gap: GapKind::UnpinnedPlugins,
            stage: None,
            step: None,
            deduction: weights::UNPINNED_PLUGINS,
            text: format!("plugins not pinned by digest: {list}; {why}"),
        });
    }
    let lost: u32 = gaps.iter().map(|g| g.deduction).sum();
    let score = 100u32.saturating_sub(lost);
    Automation {
        score,
        level: Level::of(score),
        deploys,
        manual_stages,
        approvals_required,
        deploy_stages,
        production_stages,
        monitors: pipeline.monitors.len(),
        lockfile: lock.exists,
        unpinned_plugins,
        gaps,
    }
}

fn stage_gap(gap: GapKind, stage: &str, deduction: u32, text: String) -> Gap {
    Gap {
        gap,
        stage: Some(stage.to_string()),
        step: None,
        deduction,
        text,
    }
}

/// The plugins of steps and monitors that are not built in and are pinned neither by
/// a digest in `uses` nor by the lock, by the name the lock knows them by; sorted.
fn unpinned_plugins(pipeline: &Pipeline, lock: Option<&Lock>) -> Vec<String> {
    let uses = pipeline
        .stages
        .iter()
        .flat_map(|s| &s.steps)
        .map(|s| &s.uses)
        .chain(pipeline.monitors.iter().filter_map(|m| m.uses.as_ref()));
    let mut unpinned = BTreeSet::new();
    for plugin in uses {
        let name = plugin.policy_name(&pipeline.dir);
        let pinned = match plugin {
            PluginRef::Builtin(_) => true,
            PluginRef::Oci(r) if r.digest.is_some() => true,
            PluginRef::File(_) | PluginRef::Oci(_) => lock.is_some_and(|l| {
                l.pinned(&name).is_some() || l.pinned(&plugin.to_string()).is_some()
            }),
        };
        if !pinned {
            unpinned.insert(name);
        }
    }
    unpinned.into_iter().collect()
}

// ---- finding pipeline files ---------------------------------------------------------

/// What the search found: a pipeline file, or a folder it could not read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Found {
    File(PathBuf),
    Unreadable { path: PathBuf, reason: String },
}

impl Found {
    fn path(&self) -> &Path {
        match self {
            Found::File(p) | Found::Unreadable { path: p, .. } => p,
        }
    }
}

/// Every pipeline file under the folders (recursively; a file given is taken as
/// it is): `sluice.toml`, and any `*.toml` whose top level has a `[pipeline]` table.
/// Folders named in [`SKIPPED_FOLDERS`], hidden folders and links to folders are not
/// entered. Sorted by path, each once.
pub fn find_pipeline_files(dirs: &[PathBuf]) -> Result<Vec<Found>, ReportError> {
    let mut found = Vec::new();
    for dir in dirs {
        let meta = std::fs::metadata(dir).map_err(|_| ReportError::NoSuchFolder(dir.clone()))?;
        if meta.is_file() {
            found.push(Found::File(dir.clone()));
        } else {
            walk(dir, &mut found);
        }
    }
    found.sort_by(|a, b| a.path().cmp(b.path()));
    found.dedup_by(|a, b| a.path() == b.path());
    Ok(found)
}

fn walk(dir: &Path, found: &mut Vec<Found>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            found.push(Found::Unreadable {
                path: dir.to_path_buf(),
                reason: format!("cannot read the folder {}: {e}", dir.display()),
            });
            return;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !name.starts_with('.') && !SKIPPED_FOLDERS.contains(&name.as_ref()) {
                walk(&path, found);
            }
        } else if name.ends_with(".toml")
            && (kind.is_file() || path.is_file())
            && is_pipeline_file(&name, &path)
        {
            found.push(Found::File(path));
        }
    }
}

/// `sluice.toml` always (a broken one is reported); another `*.toml` when its top
/// level has a `[pipeline]` table (when it is not valid TOML: when a line reads
/// `[pipeline]`).
fn is_pipeline_file(name: &str, path: &Path) -> bool {
    if name == "sluice.toml" {
        return true;
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    match toml::from_str::<toml::Table>(&text) {
        Ok(table) => table.get("pipeline").is_some_and(toml::Value::is_table),
        Err(_) => text.lines().any(|l| {
            let l = l.trim();
            let l = l.split_once('#').map_or(l, |(before, _)| before).trim_end();
            l == "[pipeline]"
        }),
    }
}

/// A path as reports show it: relative to the current folder when beneath it.
pub fn shown_path(p: &Path) -> String {
    if p.is_absolute()
        && let Ok(cwd) = std::env::current_dir()
        && let Ok(rel) = config::normalize(p).strip_prefix(&cwd)
    {
        return rel.display().to_string();
    }
    p.display().to_string()
}

// ---- the report ---------------------------------------------------------------------

/// Report on every pipeline file under `dirs` at `now`: against `policy_override`
/// when given, else each pipeline's own policy. Custom checks load through `host`
/// (`None`: they are reported as not run). Only a folder that does not exist stops
/// it; every other problem is a row.
pub async fn report(
    dirs: &[PathBuf],
    policy_override: Option<Arc<Policy>>,
    now: jiff::Timestamp,
    host: Option<&PluginHost>,
) -> Result<Report, ReportError> {
    let found = find_pipeline_files(dirs)?;
    let mut policies = PolicyCache::default();
    let mut pipelines = Vec::new();
    for item in found {
        let row = match item {
            Found::Unreadable { path, reason } => failed_row(&path, vec![reason]),
            Found::File(path) => {
                pipeline_report(&path, policy_override.as_ref(), &mut policies, now, host).await
            }
        };
        pipelines.push(row);
    }
    Ok(Report {
        report_version: REPORT_VERSION,
        generated_at: now,
        policy_override: policy_override.as_deref().map(PolicyShown::of),
        summary: summarize(&pipelines),
        pipelines,
    })
}

fn summarize(rows: &[PipelineReport]) -> Summary {
    let mut s = Summary {
        pipelines: rows.len(),
        ..Summary::default()
    };
    for r in rows {
        if !r.errors.is_empty() {
            s.errors += 1;
            continue;
        }
        if r.policy.is_none() && r.policy_error.is_none() {
            s.without_policy += 1;
        }
        s.failing += usize::from(r.counts.failing > 0);
        s.warned += usize::from(r.counts.warnings > 0);
        s.exempt += usize::from(r.checks.iter().any(|c| c.standing == StandingName::Exempt));
    }
    s.levels = Level::ALL
        .iter()
        .map(|&level| LevelCount {
            level,
            pipelines: rows
                .iter()
                .filter(|r| r.automation.as_ref().is_some_and(|a| a.level == level))
                .count(),
        })
        .collect();
    s
}

/// Policies read once each, by where they come from.
#[derive(Default)]
struct PolicyCache {
    loaded: Vec<(PolicyRef, Result<Arc<Policy>, String>)>,
}

impl PolicyCache {
    async fn for_pipeline(&mut self, pipeline: &Pipeline) -> Option<Result<Arc<Policy>, String>> {
        let reference = pipeline.policy.as_ref()?;
        if let Some((_, loaded)) = self.loaded.iter().find(|(r, _)| r == reference) {
            return Some(loaded.clone());
        }
        let loaded = match super::for_pipeline(pipeline).await {
            Ok(Some(policy)) => Ok(policy),
            Ok(None) => return None,
            Err(e) => Err(e.to_string()),
        };
        self.loaded.push((reference.clone(), loaded.clone()));
        Some(loaded)
    }
}

fn failed_row(path: &Path, errors: Vec<String>) -> PipelineReport {
    PipelineReport {
        file: path.display().to_string(),
        pipeline: None,
        errors,
        policy: None,
        policy_error: None,
        counts: Counts::default(),
        checks: Vec::new(),
        exemptions: Vec::new(),
        automation: None,
    }
}

async fn pipeline_report(
    path: &Path,
    policy_override: Option<&Arc<Policy>>,
    policies: &mut PolicyCache,
    now: jiff::Timestamp,
    host: Option<&PluginHost>,
) -> PipelineReport {
    let pipeline = match config::load(path) {
        Ok(p) => p,
        Err(PipelineFileError::Invalid(errors)) => {
            return failed_row(path, errors.iter().map(ToString::to_string).collect());
        }
        Err(e @ PipelineFileError::Unreadable { .. }) => {
            return failed_row(path, vec![e.to_string()]);
        }
    };
    let (policy, policy_error) = match policy_override {
        Some(p) => (Some(p.clone()), None),
        None => match policies.for_pipeline(&pipeline).await {
            None => (None, None),
            Some(Ok(p)) => (Some(p), None),
            Some(Err(e)) => (None, Some(e)),
        },
    };
    let lock = LockState {
        exists: pipeline.dir.join(lockfile::LOCK_FILE).is_file(),
        lock: lockfile::read_for(&pipeline, path).ok().flatten(),
    };
    let automation = automation(&pipeline, policy.as_deref(), &lock);
    let mut row = PipelineReport {
        file: path.display().to_string(),
        pipeline: Some(pipeline.name.clone()),
        errors: Vec::new(),
        policy: policy.as_deref().map(PolicyShown::of),
        policy_error,
        counts: Counts::default(),
        checks: Vec::new(),
        exemptions: Vec::new(),
        automation: Some(automation),
    };
    if let Some(policy) = policy {
        let findings = super::checks::evaluate(&policy, &pipeline, host).await;
        let statuses = super::lifecycle::status_at(&policy, &findings, now);
        row.checks = check_rows(&policy, statuses);
        row.exemptions = exemption_rows(&policy, &pipeline.name, &row.checks, today(now));
        row.counts = counts(&row.checks, &row.exemptions);
    }
    row
}

/// The UTC date of an instant: what `warn-from`, `enforce-from` and `expires` are
/// compared with.
pub fn today(now: jiff::Timestamp) -> Date {
    now.to_zoned(jiff::tz::TimeZone::UTC).date()
}

fn check_rows(policy: &Policy, statuses: Vec<CheckStatus>) -> Vec<CheckRow> {
    let order = |id: &str| policy.checks.iter().position(|c| c.id == id);
    let mut rows: Vec<CheckRow> = statuses
        .into_iter()
        .map(|status| {
            let spec = policy.checks.iter().find(|c| c.id == status.check);
            let (standing, exemption, error) = match status.standing {
                Standing::Passes => (StandingName::Passes, None, None),
                Standing::Announced { .. } => (StandingName::Announced, None, None),
                Standing::Warns { .. } => (StandingName::Warns, None, None),
                Standing::Enforced { .. } => (StandingName::Enforced, None, None),
                Standing::Exempt {
                    approved_by,
                    reason,
                    expires,
                } => (
                    StandingName::Exempt,
                    Some(ExemptionUsed {
                        approved_by,
                        reason,
                        expires,
                    }),
                    None,
                ),
                Standing::Failed { reason } => (StandingName::Failed, None, Some(reason)),
            };
            CheckRow {
                message: if status.message.is_empty() {
                    spec.map(|s| s.message.clone()).unwrap_or_default()
                } else {
                    status.message
                },
                check: status.check,
                standing,
                warn_from: spec.and_then(|s| s.warn_from),
                enforce_from: spec.and_then(|s| s.enforce_from),
                blocks: match spec.map_or(Blocks::Run, |s| s.blocks) {
                    Blocks::Run => "run",
                    Blocks::Promotion => "promotion",
                },
                violations: status.violations,
                exemption,
                expired_exemption: status.expired_exemption,
                error,
            }
        })
        .collect();
    rows.sort_by_key(|r| order(&r.check).unwrap_or(usize::MAX));
    rows
}

fn exemption_rows(
    policy: &Policy,
    pipeline: &str,
    checks: &[CheckRow],
    today: Date,
) -> Vec<ExemptionRow> {
    policy
        .exemptions
        .iter()
        .filter(|e| e.pipeline.matches(pipeline))
        .map(|e| {
            let state = if e.expires.is_some_and(|last| last < today) {
                ExemptionState::Expired
            } else if checks
                .iter()
                .any(|c| c.check == e.check && c.standing == StandingName::Exempt)
            {
                ExemptionState::InUse
            } else {
                ExemptionState::Unused
            };
            ExemptionRow {
                check: e.check.clone(),
                reason: e.reason.clone(),
                approved_by: e.approved_by.clone(),
                ticket: e.ticket.clone(),
                expires: e.expires,
                state,
                at: format!(
                    "{}:{}:{}",
                    shown_path(&e.pos.file),
                    e.pos.line,
                    e.pos.column
                ),
            }
        })
        .collect()
}

fn counts(checks: &[CheckRow], exemptions: &[ExemptionRow]) -> Counts {
    let pending: Vec<&CheckRow> = checks
        .iter()
        .filter(|c| matches!(c.standing, StandingName::Warns | StandingName::Announced))
        .collect();
    let applying: Vec<&ExemptionRow> = exemptions
        .iter()
        .filter(|e| e.state != ExemptionState::Expired)
        .collect();
    Counts {
        failing: checks
            .iter()
            .filter(|c| c.standing == StandingName::Enforced)
            .count(),
        warnings: pending.len(),
        earliest_enforcement: pending.iter().filter_map(|c| c.enforce_from).min(),
        exemptions: applying.len(),
        earliest_expiry: applying.iter().filter_map(|e| e.expires).min(),
        check_errors: checks
            .iter()
            .filter(|c| c.standing == StandingName::Failed)
            .count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(text: &str) -> Pipeline {
        let dir = tempfile::tempdir().expect("temp folder");
        let path = dir.path().join("sluice.toml");
        config::parse(&path, text.to_string()).expect("a valid pipeline")
    }

    const HEAD: &str = r#"
[pipeline]
name = "svc"
"#;

    fn echo_step(id: &str) -> String {
        format!(
            r#"
[[stage.step]]
id = "{id}"
uses = "builtin:command"
with = {{ program = "echo", args = ["hi"] }}
[stage.step.grants]
exec = ["echo"]
"#
        )
    }

    #[test]
    fn a_pipeline_that_only_builds_and_tests_scores_100() {
        let text = format!("{HEAD}\n[[stage]]\nname = \"build\"\n{}", echo_step("b"));
        let a = automation(&pipeline(&text), None, &LockState::default());
        assert_eq!(a.score, 100);
        assert_eq!(a.level, Level::Continuous);
        assert!(a.gaps.is_empty(), "{:?}", a.gaps);
        assert!(!a.deploys);
    }

    #[test]
    fn every_manual_approval_costs_its_weight_and_says_how_many_people() {
        let text = format!(
            "{HEAD}\n[[stage]]\nname = \"build\"\n{}\n[[stage]]\nname = \"qa\"\n[stage.gates.approval]\nrequired = 2\n{}\n[[stage]]\nname = \"release\"\n[stage.gates.approval]\n{}",
            echo_step("b"),
            echo_step("q"),
            echo_step("r")
        );
        let a = automation(&pipeline(&text), None, &LockState::default());
        assert_eq!(a.manual_stages, ["qa", "release"]);
        assert_eq!(a.approvals_required, 3);
        assert_eq!(a.score, 100 - 2 * weights::MANUAL_APPROVAL);
        assert_eq!(a.level, Level::PartlyAutomated);
        assert_eq!(
            a.gaps[0].text,
            "stage `qa` is entered only after manual approval (2 approvers)"
        );
        assert_eq!(
            a.gaps[1].text,
            "stage `release` is entered only after manual approval (1 approver)"
        );
    }

    #[test]
    fn a_protected_stage_without_bake_alarms_window_or_canary_loses_each_weight() {
        let text = format!(
            "{HEAD}\n[[stage]]\nname = \"build\"\n{}\n[[stage]]\nname = \"prod\"\nprotected = true\n{}",
            echo_step("b"),
            echo_step("p")
        );
        let a = automation(&pipeline(&text), None, &LockState::default());
        let kinds: Vec<GapKind> = a.gaps.iter().map(|g| g.gap).collect();
        assert_eq!(
            kinds,
            [
                GapKind::NoBake,
                GapKind::NoAlarms,
                GapKind::NoWindow,
                GapKind::NoCanary
            ]
        );
        assert_eq!(
            a.score,
            100 - weights::NO_BAKE - weights::NO_ALARMS - weights::NO_WINDOW - weights::NO_CANARY
        );
        assert_eq!(a.production_stages, ["prod"]);
        assert_eq!(a.deploy_stages, ["prod"]);
        assert_eq!(a.level, Level::PartlyAutomated);
    }

    #[test]
    fn a_guarded_production_stage_costs_nothing() {
        let text = format!(
            r#"{HEAD}
[[monitor]]
id = "site"
uses = "builtin:http-check"
interval = "2s"
[monitor.with]
url = "http://127.0.0.1:8080/"
[monitor.grants]
net = ["http://127.0.0.1:8080"]

[[stage]]
name = "prod"
protected = true
[stage.gates.alarms]
alarms = ["site"]
[stage.gates.hours]
kind = "window"
timezone = "UTC"
days = "Mon-Fri"
hours = "09:00-17:00"
[stage.bake]
duration = "1h"
positive = 3
monitors = ["site"]
{}"#,
            echo_step("p")
        );
        let a = automation(&pipeline(&text), None, &LockState::default());
        assert!(a.gaps.is_empty(), "{:?}", a.gaps);
        assert_eq!(a.score, 100);
        assert_eq!(a.monitors, 1);
    }

    #[test]
    fn an_alarms_gate_on_the_next_stage_watches_a_deploy_stage() {
        let text = format!(
            r#"{HEAD}
[[monitor]]
id = "site"
uses = "builtin:http-check"
interval = "2s"
[monitor.with]
url = "http://127.0.0.1:8080/"
[monitor.grants]
net = ["http://127.0.0.1:8080"]

[[stage]]
name = "prod"
protected = true
[stage.gates.hours]
kind = "window"
timezone = "UTC"
days = "Mon-Fri"
hours = "09:00-17:00"
[stage.bake]
duration = "1h"
monitors = ["site"]
{}
[[stage]]
name = "after"
[stage.gates.alarms]
alarms = ["site"]
{}"#,
            echo_step("p"),
            echo_step("a")
        );
        let a = automation(&pipeline(&text), None, &LockState::default());
        assert!(a.gaps.is_empty(), "{:?}", a.gaps);
    }

    #[test]
    fn allow_failure_steps_cost_each_and_the_score_never_goes_below_zero() {
        let mut text = format!("{HEAD}\n[[stage]]\nname = \"test\"\n");
        for i in 0..25 {
            text.push_str(&echo_step(&format!("t{i}")));
            text = text.replace(
                &format!("id = \"t{i}\"\n"),
                &format!("id = \"t{i}\"\nallow-failure = true\n"),
            );
        }
        let a = automation(&pipeline(&text), None, &LockState::default());
        assert_eq!(a.gaps.len(), 25);
        assert!(a.gaps.iter().all(|g| g.gap == GapKind::AllowFailure));
        assert_eq!(a.gaps[0].step.as_deref(), Some("t0"));
        assert_eq!(a.score, 0);
        assert_eq!(a.level, Level::Manual);
    }

    #[test]
    fn plugins_from_files_are_unpinned_without_a_lock_and_pinned_by_one() {
        let text = format!(
            "{HEAD}\n[[stage]]\nname = \"lint\"\n[[stage.step]]\nid = \"mine\"\nuses = \"plugins/mine.wasm\"\n{}",
            echo_step("b")
        );
        let p = pipeline(&text);
        let a = automation(&p, None, &LockState::default());
        assert_eq!(a.unpinned_plugins, ["plugins/mine.wasm"]);
        assert_eq!(a.score, 100 - weights::UNPINNED_PLUGINS);
        assert!(
            a.gaps[0].text.contains("there is no sluice.lock"),
            "{}",
            a.gaps[0].text
        );

        let lock = LockState {
            exists: true,
            lock: Some(Lock {
                path: p.dir.join("sluice.lock"),
                plugins: vec![lockfile::Locked {
                    uses: "plugins/mine.wasm".into(),
                    digest: format!("sha256:{}", "0".repeat(64)),
                }],
            }),
        };
        let a = automation(&p, None, &lock);
        assert!(a.unpinned_plugins.is_empty());
        assert_eq!(a.score, 100);
        assert!(a.lockfile);
    }

    #[test]
    fn levels_have_documented_bounds() {
        assert_eq!(Level::of(100), Level::Continuous);
        assert_eq!(Level::of(90), Level::Continuous);
        assert_eq!(Level::of(89), Level::Automated);
        assert_eq!(Level::of(70), Level::Automated);
        assert_eq!(Level::of(69), Level::PartlyAutomated);
        assert_eq!(Level::of(40), Level::PartlyAutomated);
        assert_eq!(Level::of(39), Level::Manual);
        assert_eq!(Level::of(0), Level::Manual);
    }

    #[test]
    fn pipeline_files_are_found_sorted_skipping_build_output_and_hidden_folders() {
        let dir = tempfile::tempdir().expect("temp folder");
        let write = |rel: &str, text: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().expect("a folder")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        };
        write("b/sluice.toml", "not even toml [");
        write("a/release.toml", "# a pipeline\n[pipeline]\nname = \"x\"\n");
        write("a/broken.toml", "[pipeline] # broken\nname = \n");
        write("a/Cargo.toml", "[package]\nname = \"x\"\n");
        write("a/target/sluice.toml", "[pipeline]\n");
        write("a/node_modules/sluice.toml", "[pipeline]\n");
        write(".hidden/sluice.toml", "[pipeline]\n");
        write("c/not-a-pipeline.toml", "pipeline = 3\n");
        let found = find_pipeline_files(&[dir.path().to_path_buf()]).expect("found");
        let rel: Vec<String> = found
            .iter()
            .map(|f| {
                f.path()
                    .strip_prefix(dir.path())
                    .expect("beneath")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(rel, ["a/broken.toml", "a/release.toml", "b/sluice.toml"]);
    }

    #[test]
    fn a_folder_that_does_not_exist_is_a_usage_error() {
        let err = find_pipeline_files(&[PathBuf::from("/no/such/folder")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no such folder: /no/such/folder (give the folders to search for pipeline files)"
        );
    }
}
