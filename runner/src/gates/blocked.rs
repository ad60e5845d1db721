//! Blocked content: at every promotion, the run's artifact is checked against the
//! pipeline's denylists (`[pipeline] denylist`, in the security-scan plugin's format:
//! package purls with version ranges, git refs; format and matching in the shared
//! `sluice-denylist` crate). The `blocked-content` gate is added by
//! [`super::build_stage`] to the entry of every stage after the first when the pipeline
//! has denylists; a stage does not declare it.
//!
//! Each evaluation reads the denylist files afresh (one updated while a run waits blocks
//! it too). Packages come from the CycloneDX SBOMs the run's steps reported (their
//! records in the state store), each checked against its recorded digest; git refs from
//! the run's recorded commit and its ancestry (git in the pipeline's folder). It fails
//! closed: a denylist that cannot be read or parsed makes it wait, naming file and line;
//! an SBOM that changed or is missing makes it deny; a hit denies, naming the package,
//! the entry, its reason and the file. See docs/design/0019-blocked-content.md.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_spanned::Spanned;
use sha2::{Digest, Sha256};
use sluice_denylist::{Denylist, GitRefEntry};

use super::{Decision, Evaluation, Gate, GateInput};
use crate::config::{ConfigError, SourceFile};
use crate::render::shown;
use crate::state::Store;

/// `[pipeline] denylist = "path"` or `["a", "b"]`: the files, resolved against the
/// pipeline's folder.
pub(crate) fn denylist_paths(
    source: &SourceFile,
    dir: &Path,
    raw: Option<&Spanned<toml::Value>>,
    errors: &mut Vec<ConfigError>,
) -> Vec<PathBuf> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    let values: Vec<&toml::Value> = match raw.get_ref() {
        toml::Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut paths = Vec::new();
    for v in values {
        match v.as_str() {
            Some(p) if !p.trim().is_empty() && !p.contains('\0') => {
                paths.push(crate::config::normalize(&dir.join(crate::config::expand_home(p))))
            }
            _ => errors.push(source.error(
                raw.span().start,
                "`denylist` is a file path or a list of them, e.g. `denylist = \"denylist.toml\"` (relative to the pipeline file)",
            )),
        }
    }
    paths
}

/// The gate's id and kind: `sluice override RUN --gate blocked-content --stage S`.
pub const GATE_ID: &str = "blocked-content";

/// The media type under which a step reports a CycloneDX JSON SBOM (builtin:build's
/// `sbom.cdx.json`); parameters such as `; version=1.5` are allowed.
pub const CYCLONEDX_JSON: &str = "application/vnd.cyclonedx+json";

/// Whether the pipeline's blocked-content gate guards the entry of `stage`: every stage
/// after the first, when the pipeline has denylists. The first stage has none: nothing
/// is built before it.
pub fn guards(pipeline: &crate::config::Pipeline, stage: &str) -> bool {
    !pipeline.denylists.is_empty()
        && pipeline
            .stages
            .first()
            .is_some_and(|first| first.name != stage)
}

/// The blocked-content gate of one stage.
#[derive(Debug)]
pub struct BlockedContentGate {
    /// The denylist files, read again at every evaluation.
    files: Vec<PathBuf>,
    /// The pipeline's folder: where artifact paths are relative to, and where git runs.
    dir: PathBuf,
    /// Where the run's steps and commit are recorded.
    store: Option<Arc<Store>>,
}

impl BlockedContentGate {
    pub fn new(env: &super::GateEnv<'_>) -> BlockedContentGate {
        BlockedContentGate {
            files: env.pipeline.denylists.clone(),
            dir: env.pipeline.dir.clone(),
            store: env.store.cloned(),
        }
    }
}

#[async_trait::async_trait]
impl Gate for BlockedContentGate {
    fn id(&self) -> &str {
        GATE_ID
    }
    fn kind(&self) -> &'static str {
        GATE_ID
    }
    async fn evaluate(&self, input: &GateInput<'_>) -> Evaluation {
        let inspection = Inspection {
            files: self.files.clone(),
            dir: self.dir.clone(),
            store: self.store.clone(),
            run_id: input.run_id.to_string(),
            has_artifact: input.artifact.is_some(),
        };
        // Files, hashes and git: blocking work, off the runtime's threads when there
        // is a runtime (unit tests evaluate without one).
        let found = match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::spawn_blocking(move || inspection.inspect())
                .await
                .unwrap_or_else(|e| Findings::failed(format!("the check stopped: {e}"))),
            Err(_) => inspection.inspect(),
        };
        found.into_evaluation(input)
    }
}

/// One evaluation's look at the run: its denylists, its SBOMs, its git history.
struct Inspection {
    files: Vec<PathBuf>,
    dir: PathBuf,
    store: Option<Arc<Store>>,
    run_id: String,
    /// Whether the run has recorded its artifact (a deliverable) yet.
    has_artifact: bool,
}

/// One denylist file as read at this evaluation.
#[derive(Debug, Clone, Serialize)]
struct DenylistRead {
    file: String,
    /// `sha256:<hex>` of the bytes read; `None` when they could not be read.
    digest: Option<String>,
    packages: usize,
    git_refs: usize,
    /// Why it cannot be used (with the line when it does not parse).
    error: Option<String>,
}

/// One SBOM of the run.
#[derive(Debug, Clone, Serialize)]
struct SbomRead {
    stage: String,
    step: String,
    path: String,
    /// As the executor recorded it when the step reported it.
    digest: String,
    /// Components with a package-url the denylist can judge.
    packages: usize,
    /// Components without one, or of a type no denylist entry can name.
    skipped: usize,
}

/// A denylist entry that matched.
#[derive(Debug, Clone, Serialize)]
struct HitRecord {
    /// `pkg:npm/left-pad@1.3.0`, or the commit.
    found: String,
    /// Where it was found: `SBOM target/sluice/sbom.cdx.json of step build/package`.
    in_: String,
    /// `package/pkg:npm/left-pad` or `git-ref/github.com/acme/shop@3f1c2e9a`.
    entry: String,
    /// What matched: `left-pad 1.3.0 is in `<2``.
    matched: String,
    reason: String,
    file: String,
}

/// Everything one evaluation found.
#[derive(Debug, Default)]
struct Findings {
    denylists: Vec<DenylistRead>,
    sboms: Vec<SbomRead>,
    hits: Vec<HitRecord>,
    /// What makes the artifact unverifiable (an SBOM changed or gone, none at all):
    /// the gate denies, as it must fail closed.
    unverifiable: Vec<String>,
    /// What makes the check itself impossible for now (a denylist that cannot be read
    /// or parsed, no store): the gate waits, and says what to fix.
    cannot_check: Vec<String>,
    commit: Option<String>,
    /// How the run's git ancestry was checked, or why it was not.
    ancestry: String,
    packages_checked: usize,
    package_entries: usize,
    git_entries: usize,
}

impl Findings {
    fn failed(why: String) -> Findings {
        Findings {
            cannot_check: vec![why],
            ..Findings::default()
        }
    }

    fn evidence(&self) -> serde_json::Value {
        serde_json::json!({
            "denylists": self.denylists,
            "sboms": self.sboms,
            "packages_checked": self.packages_checked,
            "package_entries": self.package_entries,
            "git_ref_entries": self.git_entries,
            "commit": self.commit,
            "ancestry": self.ancestry,
            "hits": self.hits.iter().map(|h| serde_json::json!({
                "found": h.found,
                "in": h.in_,
                "entry": h.entry,
                "matched": h.matched,
                "reason": h.reason,
                "file": h.file,
            })).collect::<Vec<_>>(),
            "unverifiable": self.unverifiable,
            "cannot_check": self.cannot_check,
        })
    }

    fn into_evaluation(self, input: &GateInput<'_>) -> Evaluation {
        let override_command = format!(
            "sluice override {} --gate {GATE_ID} --stage {} --reason \"...\"",
            input.run_id, input.stage
        );
        let (decision, clear_hint) = if !self.hits.is_empty() {
            let reason = self
                .hits
                .iter()
                .map(|h| {
                    format!(
                        "blocked: {} ({}) matches denylist entry `{}` of {}: {} ({})",
                        h.found, h.in_, h.entry, h.file, h.reason, h.matched
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            (
                Decision::Deny { reason },
                Some(format!(
                    "the artifact carries blocked content: build a new run without it, or: {override_command}"
                )),
            )
        } else if !self.unverifiable.is_empty() {
            (
                Decision::Deny {
                    reason: self.unverifiable.join("; "),
                },
                Some(format!(
                    "the artifact cannot be shown free of blocked content: build a new run, or: {override_command}"
                )),
            )
        } else if !self.cannot_check.is_empty() {
            (
                Decision::Wait {
                    reason: self.cannot_check.join("; "),
                    until: None,
                },
                Some(format!(
                    "fix the denylist (it is read again at every evaluation), or: {override_command}"
                )),
            )
        } else {
            let sboms = match self.sboms.len() {
                1 => "1 SBOM".to_string(),
                n => format!("{n} SBOMs"),
            };
            let commit = match &self.commit {
                Some(c) => format!(", commit {}", short_commit(c)),
                None => String::new(),
            };
            let sboms = if self.sboms.is_empty() && self.package_entries > 0 {
                format!("{sboms}: the run has no artifact yet")
            } else {
                sboms
            };
            (
                Decision::Allow {
                    reason: format!(
                        "no blocked content: {} packages ({sboms}){commit} checked against {} package and {} git-ref entries",
                        self.packages_checked, self.package_entries, self.git_entries
                    ),
                },
                None,
            )
        };
        Evaluation {
            gate: GATE_ID.into(),
            kind: GATE_ID.into(),
            decision,
            clear_hint,
            evidence: self.evidence(),
            overridden_by: None,
        }
    }
}

fn short_commit(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl Inspection {
    /// A path as shown: relative to the pipeline's folder when inside it.
    fn shown(&self, path: &Path) -> String {
        path.strip_prefix(&self.dir)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    fn inspect(self) -> Findings {
        let mut found = Findings::default();
        // Read afresh: a denylist updated while the run waits applies now.
        let mut lists: Vec<(String, Denylist)> = Vec::new();
        for path in &self.files {
            let file = self.shown(path);
            let mut read = DenylistRead {
                file: file.clone(),
                digest: None,
                packages: 0,
                git_refs: 0,
                error: None,
            };
            match std::fs::read(path) {
                Err(e) => {
                    let why = format!("denylist {} cannot be read: {e}", path.display());
                    read.error = Some(e.to_string());
                    found.cannot_check.push(why);
                }
                Ok(bytes) => {
                    read.digest = Some(sha256_of(&bytes));
                    let parsed = std::str::from_utf8(&bytes)
                        .map_err(|e| format!("not UTF-8: {e}"))
                        .and_then(|text| {
                            sluice_denylist::file::parse(text).map_err(|e| e.to_string())
                        });
                    match parsed {
                        Err(e) => {
                            found
                                .cannot_check
                                .push(format!("denylist {}: {e}", path.display()));
                            read.error = Some(e);
                        }
                        Ok(list) => {
                            read.packages = list.packages.len();
                            read.git_refs = list.git_refs.len();
                            found.package_entries += list.packages.len();
                            found.git_entries += list.git_refs.len();
                            lists.push((file, list));
                        }
                    }
                }
            }
            found.denylists.push(read);
        }
        let Some(store) = &self.store else {
            found
                .cannot_check
                .push("no state store to read the run's steps from".into());
            return found;
        };
        self.check_packages(store, &lists, &mut found);
        self.check_commit(store, &lists, &mut found);
        found
    }

    /// The packages of every CycloneDX SBOM the run's steps reported, each checked
    /// against the digest recorded when the step reported it.
    fn check_packages(&self, store: &Store, lists: &[(String, Denylist)], found: &mut Findings) {
        let steps = match store.finished_steps(&self.run_id) {
            Ok(steps) => steps,
            Err(e) => {
                found.cannot_check.push(format!(
                    "the steps of run {} cannot be read: {e}",
                    self.run_id
                ));
                return;
            }
        };
        for step in &steps {
            let record: StepRecordView = match serde_json::from_str(step.record.get()) {
                Ok(r) => r,
                Err(e) => {
                    found.unverifiable.push(format!(
                        "the record of step {}/{} cannot be read: {e}",
                        step.stage, step.step
                    ));
                    continue;
                }
            };
            for artifact in record.artifacts.iter().filter(|a| {
                a.media_type
                    .split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case(CYCLONEDX_JSON))
            }) {
                let path = self.dir.join(&artifact.path);
                let place = format!(
                    "SBOM {} of step {}/{}",
                    artifact.path, step.stage, step.step
                );
                let bytes = match std::fs::read(&path) {
                    Ok(b) => b,
                    Err(e) => {
                        found
                            .unverifiable
                            .push(format!("{place} cannot be read: {e}"));
                        continue;
                    }
                };
                let now = sha256_of(&bytes);
                if now != artifact.digest {
                    found.unverifiable.push(format!(
                        "{place} changed since the step reported it (recorded {}, now {now})",
                        artifact.digest
                    ));
                    continue;
                }
                let components = match sbom_purls(&bytes) {
                    Ok(c) => c,
                    Err(e) => {
                        found
                            .unverifiable
                            .push(format!("{place} is not a CycloneDX JSON document: {e}"));
                        continue;
                    }
                };
                let mut read = SbomRead {
                    stage: step.stage.clone(),
                    step: step.step.clone(),
                    path: artifact.path.clone(),
                    digest: artifact.digest.clone(),
                    packages: 0,
                    skipped: 0,
                };
                for purl in components {
                    let Some(package) =
                        purl.and_then(|p| sluice_denylist::package_of_purl(&p).ok())
                    else {
                        read.skipped += 1;
                        continue;
                    };
                    read.packages += 1;
                    for (file, list) in lists {
                        for hit in sluice_denylist::check(&package, &list.packages, &[]) {
                            found.hits.push(HitRecord {
                                found: package.purl(),
                                in_: place.clone(),
                                entry: hit.entry,
                                matched: hit.matched,
                                reason: hit.reason,
                                file: file.clone(),
                            });
                        }
                    }
                }
                found.packages_checked += read.packages;
                found.sboms.push(read);
            }
        }
        if found.sboms.is_empty() && found.package_entries > 0 && self.has_artifact {
            // An artifact whose contents no SBOM lists cannot be shown free of blocked
            // packages. Before anything is built (an SBOM written in a later stage),
            // there is nothing to promote yet, and nothing to block.
            found.unverifiable.push(format!(
                "run {} reported no CycloneDX SBOM ({CYCLONEDX_JSON}) to check the denylisted packages against; builtin:build writes one (`sbom = true`)",
                self.run_id
            ));
        }
    }

    /// The run's recorded commit and its ancestry against the git-ref entries.
    fn check_commit(&self, store: &Store, lists: &[(String, Denylist)], found: &mut Findings) {
        let commit = match store.run(&self.run_id) {
            Ok(run) => run.trigger.git_commit,
            Err(e) => {
                found
                    .cannot_check
                    .push(format!("run {} cannot be read: {e}", self.run_id));
                return;
            }
        };
        found.commit = commit.clone();
        let entries: Vec<(&String, &GitRefEntry)> = lists
            .iter()
            .flat_map(|(file, list)| list.git_refs.iter().map(move |e| (file, e)))
            .collect();
        let Some(commit) = commit else {
            found.ancestry = "not checked: the run recorded no git commit (its pipeline folder was not a git work tree, or git was missing)".into();
            return;
        };
        if entries.is_empty() {
            found.ancestry = "not needed: no git-ref entries".into();
            return;
        }
        let git = Git { dir: &self.dir };
        let ancestry_ok = match git.run(&["cat-file", "-e", &format!("{commit}^{{commit}}")]) {
            Ok(true) => None,
            Ok(false) => Some(format!(
                "commit {} is not in the repository at {}",
                short_commit(&commit),
                self.dir.display()
            )),
            Err(why) => Some(why),
        };
        match &ancestry_ok {
            None => {
                found.ancestry = format!(
                    "checked with git in {}: the commit and every commit before it",
                    self.dir.display()
                )
            }
            Some(why) => {
                found.ancestry =
                    format!("not checked: {why}; only the run's own commit was compared")
            }
        }
        for (file, entry) in entries {
            let wanted = entry.reference.to_ascii_lowercase();
            let is_commit =
                (7..=64).contains(&wanted.len()) && wanted.chars().all(|c| c.is_ascii_hexdigit());
            let hit = if ancestry_ok.is_none() {
                match git.contains(&commit, entry, is_commit) {
                    Ok(hit) => hit,
                    Err(why) => {
                        // Cannot tell whether the history carries it: never allow.
                        found.unverifiable.push(format!(
                            "git-ref entry `{}` of {file}: {why}",
                            entry.reference
                        ));
                        continue;
                    }
                }
            } else {
                // Without git, only the run's own commit can be compared.
                is_commit && commit.to_ascii_lowercase().starts_with(&wanted)
            };
            if let Some(matched) = hit.then(|| {
                if commit.to_ascii_lowercase().starts_with(&wanted) {
                    format!("the run's commit is {}", short_commit(&commit))
                } else {
                    format!(
                        "{} is an ancestor of the run's commit {}",
                        entry.reference,
                        short_commit(&commit)
                    )
                }
            }) {
                found.hits.push(HitRecord {
                    found: format!("commit {}", short_commit(&commit)),
                    in_: "the run's git history".into(),
                    entry: format!(
                        "git-ref/{}@{}",
                        sluice_denylist::normalize_repo(&entry.repo),
                        entry.reference
                    ),
                    matched,
                    reason: entry.reason.clone(),
                    file: file.clone(),
                });
            }
        }
    }
}

/// `git -C <pipeline folder>`, for the ancestry check.
struct Git<'a> {
    dir: &'a Path,
}

impl Git<'_> {
    /// Run git; `Ok(success)`, or why git could not run at all.
    fn run(&self, args: &[&str]) -> Result<bool, String> {
        std::process::Command::new("git")
            .arg("-C")
            .arg(self.dir)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .map_err(|e| format!("git cannot run: {e}"))
    }

    fn output(&self, args: &[&str]) -> Option<String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(self.dir)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Does the history of `commit` contain the entry? A commit (or prefix) matches in
    /// any repository, as its id names the same content in every clone, fork and
    /// mirror; a tag only when the entry's repository is a remote of this one.
    fn contains(&self, commit: &str, entry: &GitRefEntry, is_commit: bool) -> Result<bool, String> {
        let target = if is_commit {
            self.output(&[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{}^{{commit}}", entry.reference),
            ])
        } else {
            let wanted = sluice_denylist::normalize_repo(&entry.repo);
            let remotes = self.output(&["remote", "-v"]).unwrap_or_default();
            let ours = remotes
                .lines()
                .filter_map(|l| l.split_whitespace().nth(1))
                .any(|url| sluice_denylist::normalize_repo(url) == wanted);
            if !ours {
                return Ok(false);
            }
            self.output(&[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/tags/{}^{{commit}}", entry.reference),
            ])
        };
        let Some(target) = target.filter(|t| !t.is_empty()) else {
            return Ok(false);
        };
        // 0: an ancestor; 1: not one; anything else: git could not tell.
        let status = std::process::Command::new("git")
            .arg("-C")
            .arg(self.dir)
            .args(["merge-base", "--is-ancestor", &target, commit])
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map_err(|e| format!("git cannot run: {e}"))?;
        match status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(format!(
                "`git merge-base --is-ancestor {target} {commit}` failed ({status})"
            )),
        }
    }
}

/// What the gate reads of a recorded step (the executor's `StepRecord`).
#[derive(serde::Deserialize)]
struct StepRecordView {
    #[serde(default)]
    artifacts: Vec<ArtifactView>,
}

#[derive(serde::Deserialize)]
struct ArtifactView {
    path: String,
    media_type: String,
    digest: String,
}

/// The package-url of every component of a CycloneDX JSON document (the subject in
/// `metadata.component` too, and nested components); `None` for one without.
fn sbom_purls(bytes: &[u8]) -> Result<Vec<Option<String>>, String> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if doc["bomFormat"] != "CycloneDX" {
        return Err("`bomFormat` is not `CycloneDX`".into());
    }
    fn walk(components: &serde_json::Value, out: &mut Vec<Option<String>>) {
        for c in components.as_array().into_iter().flatten() {
            out.push(c["purl"].as_str().map(str::to_string));
            walk(&c["components"], out);
        }
    }
    let mut out = Vec::new();
    if doc["metadata"]["component"].is_object() {
        out.push(
            doc["metadata"]["component"]["purl"]
                .as_str()
                .map(str::to_string),
        );
    }
    walk(&doc["components"], &mut out);
    Ok(out)
}

/// The error for a stage that declares the blocked-content gate itself: it is the
/// pipeline's, on every promotion, so that no stage can leave it out.
pub(crate) fn not_declared_here(stage: &str) -> String {
    format!(
        "stage `{stage}`: `{GATE_ID}` is not declared per stage; `[pipeline] denylist = \"denylist.toml\"` adds it to the entry of every stage after the first"
    )
}

/// `sluice explain`'s block lines under a stage's gate table, from the evidence of its
/// blocked-content gate: the denylists read (with digests), what was checked (SBOMs,
/// packages, commit and ancestry) and every hit with its entry, file and reason.
pub fn render_explain(out: &mut String, gates: &[super::explain::GateLine]) {
    use std::fmt::Write;
    for g in gates.iter().filter(|g| g.kind == GATE_ID) {
        let e = &g.evidence;
        let _ = writeln!(out, "  blocked content ({}):", g.decision);
        for d in e["denylists"].as_array().into_iter().flatten() {
            let digest = d["digest"]
                .as_str()
                .map(|d| format!(" ({})", super::explain::short_digest(d)))
                .unwrap_or_default();
            let what = match d["error"].as_str() {
                Some(err) => format!("unusable: {}", shown(err)),
                None => format!(
                    "{} package and {} git-ref entries",
                    d["packages"], d["git_refs"]
                ),
            };
            let _ = writeln!(
                out,
                "    denylist {}{digest}: {what}",
                shown(d["file"].as_str().unwrap_or("?"))
            );
        }
        for s in e["sboms"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "    checked SBOM {} of step {}/{} ({}): {} packages, {} components without a usable package-url",
                shown(s["path"].as_str().unwrap_or("?")),
                shown(s["stage"].as_str().unwrap_or("?")),
                shown(s["step"].as_str().unwrap_or("?")),
                super::explain::short_digest(s["digest"].as_str().unwrap_or("")),
                s["packages"],
                s["skipped"],
            );
        }
        match e["commit"].as_str() {
            Some(c) => {
                let _ = writeln!(
                    out,
                    "    commit {}: ancestry {}",
                    short_commit(c),
                    shown(e["ancestry"].as_str().unwrap_or("?"))
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "    commit: {}",
                    shown(e["ancestry"].as_str().unwrap_or("none recorded"))
                );
            }
        }
        for h in e["hits"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "    BLOCKED {} in {}: entry `{}` of {} ({}): {}",
                shown(h["found"].as_str().unwrap_or("?")),
                shown(h["in"].as_str().unwrap_or("?")),
                shown(h["entry"].as_str().unwrap_or("?")),
                shown(h["file"].as_str().unwrap_or("?")),
                shown(h["matched"].as_str().unwrap_or("?")),
                shown(h["reason"].as_str().unwrap_or("?")),
            );
        }
        for key in ["unverifiable", "cannot_check"] {
            for why in e[key].as_array().into_iter().flatten() {
                let _ = writeln!(
                    out,
                    "    cannot tell: {}",
                    shown(why.as_str().unwrap_or("?"))
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(denylist: &str) -> (tempfile::TempDir, crate::config::Pipeline) {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[pipeline]\nname = \"shop\"\n{denylist}\n[[stage]]\nname = \"build\"\n[[stage.step]]\nid = \"a\"\nuses = \"builtin:command\"\n\
             [[stage]]\nname = \"prod\"\n[[stage.step]]\nid = \"b\"\nuses = \"builtin:command\"\n"
        );
        let pipeline = crate::config::parse(&dir.path().join("sluice.toml"), text).unwrap();
        (dir, pipeline)
    }

    fn input() -> GateInput<'static> {
        GateInput {
            pipeline: "shop",
            run_id: "r1",
            stage: "prod",
            now: "2026-11-30T07:00:00Z".parse().unwrap(),
            approvals: &[],
            artifact: None,
        }
    }

    fn evaluate(pipeline: &crate::config::Pipeline) -> Evaluation {
        let env = super::super::GateEnv {
            pipeline,
            store: None,
            policy: None,
        };
        let gates = super::super::build_stage(&pipeline.stages[1], &env);
        assert_eq!(gates.len(), 1);
        assert_eq!(gates[0].id(), GATE_ID);
        futures::executor::block_on(gates[0].evaluate(&input()))
    }

    #[test]
    fn the_gate_guards_every_stage_after_the_first_only_with_denylists() {
        let (_d, with) = pipeline("denylist = [\"a.toml\", \"b.toml\"]");
        assert!(!guards(&with, "build"));
        assert!(guards(&with, "prod"));
        assert_eq!(with.denylists.len(), 2);
        assert!(with.denylists[0].is_absolute());
        let (_d, without) = pipeline("");
        assert!(!guards(&without, "prod"));
        let env = super::super::GateEnv {
            pipeline: &without,
            store: None,
            policy: None,
        };
        assert!(super::super::build_stage(&without.stages[1], &env).is_empty());
        assert!(super::super::check_override_target(&with, GATE_ID, Some("prod")).is_ok());
        assert_eq!(
            super::super::check_override_target(&with, GATE_ID, Some("build")).unwrap_err(),
            "stage `build` has no gate `blocked-content`; gates (stage/gate): prod/blocked-content"
        );
    }

    #[test]
    fn a_denylist_that_is_not_paths_is_located_with_an_example() {
        for bad in [
            "denylist = 3",
            "denylist = [\"a.toml\", 3]",
            "denylist = \" \"",
        ] {
            let dir = tempfile::tempdir().unwrap();
            let err = crate::config::parse(
                &dir.path().join("sluice.toml"),
                format!("[pipeline]\nname = \"shop\"\n{bad}\n[[stage]]\nname = \"prod\"\n[[stage.step]]\nid = \"b\"\nuses = \"builtin:command\"\n"),
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("sluice.toml:3:")
                    && err.contains("`denylist` is a file path or a list of them"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_stage_cannot_declare_the_gate_itself() {
        let dir = tempfile::tempdir().unwrap();
        let err = crate::config::parse(
            &dir.path().join("sluice.toml"),
            "[pipeline]\nname = \"shop\"\n[[stage]]\nname = \"prod\"\n[stage.gates.blocked-content]\n[[stage.step]]\nid = \"b\"\nuses = \"builtin:command\"\n".into(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("is not declared per stage"), "{err}");
    }

    #[test]
    fn a_denylist_that_cannot_be_read_or_parsed_holds_the_run_naming_file_and_line() {
        let (dir, p) = pipeline("denylist = \"denylist.toml\"");
        let missing = evaluate(&p);
        assert_eq!(missing.decision.name(), "wait", "{missing:?}");
        assert!(
            missing.decision.reason().contains(&format!(
                "denylist {} cannot be read",
                dir.path().join("denylist.toml").display()
            )),
            "{missing:?}"
        );
        std::fs::write(
            dir.path().join("denylist.toml"),
            "packages = [\n  { purl = \"pkg:npm/a\", versions = \"<banana\", reason = \"r\" },\n]\n",
        )
        .unwrap();
        let invalid = evaluate(&p);
        assert_eq!(invalid.decision.name(), "wait");
        assert!(
            invalid
                .decision
                .reason()
                .contains("denylist.toml: line 2, column 3:"),
            "{invalid:?}"
        );
        assert!(
            invalid
                .clear_hint
                .unwrap()
                .contains("--gate blocked-content --stage prod")
        );
        assert_eq!(invalid.evidence["denylists"][0]["file"], "denylist.toml");
    }

    #[test]
    fn sbom_components_and_the_subject_are_read_nested_ones_too() {
        let doc = serde_json::json!({
            "bomFormat": "CycloneDX",
            "metadata": { "component": { "name": "shop", "purl": "pkg:npm/shop@1.0.0" } },
            "components": [
                { "name": "a", "purl": "pkg:npm/a@1.0.0", "components": [{ "name": "b", "purl": "pkg:npm/b@2.0.0" }] },
                { "name": "no-purl" }
            ]
        });
        let purls = sbom_purls(doc.to_string().as_bytes()).unwrap();
        assert_eq!(
            purls,
            [
                Some("pkg:npm/shop@1.0.0".to_string()),
                Some("pkg:npm/a@1.0.0".into()),
                Some("pkg:npm/b@2.0.0".into()),
                None
            ]
        );
        assert!(sbom_purls(b"{\"spdxVersion\": \"SPDX-2.3\"}").is_err());
    }

    #[test]
    fn explain_lines_render_the_evidence_of_a_block() {
        let findings = Findings {
            denylists: vec![DenylistRead {
                file: "denylist.toml".into(),
                digest: Some(format!("sha256:{}", "ab".repeat(32))),
                packages: 2,
                git_refs: 1,
                error: None,
            }],
            sboms: vec![SbomRead {
                stage: "build".into(),
                step: "package".into(),
                path: "target/sluice/sbom.cdx.json".into(),
                digest: format!("sha256:{}", "cd".repeat(32)),
                packages: 2,
                skipped: 0,
            }],
            hits: vec![HitRecord {
                found: "pkg:npm/left-pad@1.3.0".into(),
                in_: "SBOM target/sluice/sbom.cdx.json of step build/package".into(),
                entry: "package/pkg:npm/left-pad".into(),
                matched: "left-pad 1.3.0 is in `<2`".into(),
                reason: "unpublished upstream".into(),
                file: "denylist.toml".into(),
            }],
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            ancestry: "checked with git in /srv/shop: the commit and every commit before it".into(),
            packages_checked: 2,
            package_entries: 2,
            git_entries: 1,
            ..Findings::default()
        };
        let evaluation = findings.into_evaluation(&input());
        assert_eq!(evaluation.decision.name(), "deny");
        let line = super::super::explain::GateLine {
            gate: evaluation.gate.clone(),
            kind: evaluation.kind.clone(),
            decision: "deny".into(),
            since: None,
            detail: evaluation.decision.reason().to_string(),
            next_change_at: None,
            next_change: "never".into(),
            evidence: evaluation.evidence.clone(),
            overridden_by: None,
        };
        let mut out = String::new();
        render_explain(&mut out, &[line]);
        insta::assert_snapshot!(format!("{}\n{out}", evaluation.decision.reason()));
    }
}
