//! `builtin:security-scan`: vulnerable dependencies, leaked secrets and blocked content.
//!
//! ```toml
//! [[stage.step]]
//! id = "audit"
//! uses = "builtin:security-scan"
//! with = { database = "../advisories/crates.io", max-database-age-days = 7, ignore = [
//!   { id = "RUSTSEC-2021-0139", reason = "ansi_term is only used by the CLI", expires = "2026-12-31" },
//! ], denylist = { packages = [{ purl = "pkg:npm/event-stream", versions = "=3.3.6", reason = "malware" }] } }
//! [stage.step.grants]
//! read = [".", "../advisories"]
//! ```
//!
//! - **Dependencies**: lockfiles (named, or found under `paths`) are matched against an
//!   OSV database (a folder of OSV JSON files or an ecosystem's `all.zip`) with the OSV
//!   range algorithm and each ecosystem's version ordering; one finding per vulnerable
//!   package and advisory, at the lockfile line of the package.
//! - **Secrets**: the tree is scanned with gitleaks' default rules (embedded) or a
//!   gitleaks rule file; `gitleaks:allow` on a line silences it; findings never contain
//!   the secret.
//! - **Denylist**: package ranges and git references that fail the step.
//!
//! Status: failed when a finding reaches `fail-on` (default `high`) or a denylist entry
//! matches; warned for lower findings, an old database or an expired ignore; passed
//! otherwise; skipped when there was nothing to scan.
//!
//! The summary counts vulnerable packages (distinct ecosystem, name and version) and,
//! separately, the advisories that matched them: `10 vulnerable packages (22
//! advisories) in 7 lockfiles (…)`.
//!
//! Outputs: `vulnerabilities` (package/advisory matches), `vulnerable-packages`,
//! `secrets`, `blocked`, `packages`. Metrics:
//! `packages.scanned`, `advisories.loaded`, `database.age`, `scan.time`.

pub mod osv;
pub mod report;
pub mod scan;
pub mod secrets;
/// The denylist format and its matching live in the shared `sluice-denylist` crate
/// (also used by the runner's blocked-content gate); this name keeps
/// `crate::denylist::...` working.
pub use sluice_denylist as denylist;
pub use sluice_denylist::{DenyGitRefConfig, DenyPackageConfig, DenylistConfig};
/// The lockfile readers and version orderings live in the shared `sluice-lockfiles`
/// crate (also used by `builtin:build`); these names keep `crate::lockfiles::...` and
/// `crate::versions::...` working.
pub use sluice_lockfiles as lockfiles;
pub use sluice_lockfiles::versions;

use std::path::{Path, PathBuf};
use std::time::Instant;

use sluice_sdk::{
    Capability, Finding, Metric, Plugin, Report, RunError, Severity, Status, StepContext,
};

use crate::lockfiles::Format;
use crate::osv::{Database, parse_date};
use crate::scan::Ignore;
use crate::secrets::RuleSet;

/// How many findings a failed scan's summary lists, worst first.
pub const LISTED_FINDINGS: usize = 20;

/// The step's `with` table.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(example = serde_json::json!({"paths": ["."], "secrets": {"paths": ["."]}}))]
pub struct Config {
    /// Lockfiles to scan, relative to the pipeline's folder. When empty, every known
    /// lockfile under `paths` is scanned (Cargo.lock, package-lock.json,
    /// npm-shrinkwrap.json, yarn.lock, pnpm-lock.yaml, go.mod, requirements*.txt,
    /// poetry.lock, Pipfile.lock, Gemfile.lock), honouring .gitignore. go.sum is read
    /// only when named here.
    #[serde(default)]
    pub lockfiles: Vec<String>,
    /// Folders searched for lockfiles when `lockfiles` is empty.
    #[serde(default = "default_paths")]
    pub paths: Vec<String>,
    /// Paths the lockfile search skips: globs relative to the pipeline's folder, where
    /// `*` stays within a folder and `**` crosses folders, e.g. `tests/fixtures/**`.
    /// Lockfiles named in `lockfiles` are always read.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// The OSV database: a folder of OSV `<ID>.json` files (searched recursively, also
    /// reading any `all.zip` in it) or one ecosystem's `all.zip`. Needs a `read` grant.
    /// Required when there are lockfiles to scan.
    pub database: Option<String>,
    /// Warn when the newest advisory in the database is older than this many days.
    #[serde(default = "default_max_age")]
    pub max_database_age_days: u32,
    /// Advisories to ignore, each with a reason and an optional expiry date after which
    /// it stops applying.
    #[serde(default)]
    pub ignore: Vec<IgnoreConfig>,
    /// The lowest severity that fails the step: `critical`, `high` (default), `medium`,
    /// `low` or `info`. Findings below it make the step warn.
    #[serde(default = "default_fail_on")]
    pub fail_on: String,
    /// Secret scanning.
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// Blocked package versions and git references.
    #[serde(default)]
    pub denylist: DenylistConfig,
}

/// One ignored advisory.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IgnoreConfig {
    /// Advisory id or alias, e.g. `RUSTSEC-2021-0139` or `CVE-2021-3918`.
    pub id: String,
    /// Why it is safe to ignore (shown in the log).
    pub reason: String,
    /// Last day the ignore applies, `YYYY-MM-DD`; from the next day on the advisory is
    /// reported again.
    pub expires: Option<String>,
}

/// Secret scanning settings.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SecretsConfig {
    /// Scan for secrets at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Folders (or files) to scan, relative to the pipeline's folder.
    #[serde(default = "default_paths")]
    pub paths: Vec<String>,
    /// A rule file in gitleaks TOML format. Without it, gitleaks' default rules
    /// (embedded). A `gitleaks:allow` comment on a line silences any rule there.
    pub rules: Option<String>,
    /// With `rules`: also apply the default rules, as gitleaks' `[extend] useDefault =
    /// true` does (a rule of the same id in `rules` is merged into the default one, so
    /// it may just add an allowlist).
    #[serde(default)]
    pub extend_default: bool,
    /// Files larger than this many bytes are skipped.
    #[serde(default = "default_max_file")]
    pub max_file_bytes: u64,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        SecretsConfig {
            enabled: true,
            paths: default_paths(),
            rules: None,
            extend_default: false,
            max_file_bytes: default_max_file(),
        }
    }
}

fn default_paths() -> Vec<String> {
    vec![".".into()]
}
fn default_max_age() -> u32 {
    7
}
fn default_fail_on() -> String {
    "high".into()
}
fn default_max_file() -> u64 {
    1 << 20
}
fn yes() -> bool {
    true
}

/// The plugin.
pub struct SecurityScan;

impl Plugin for SecurityScan {
    type Config = Config;
    const NAME: &'static str = "security-scan";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SUMMARY: &'static str = "Finds vulnerable dependencies (OSV), leaked secrets (gitleaks rules) and denylisted packages.";

    fn capabilities() -> Vec<Capability> {
        vec![Capability::ReadFiles]
    }

    fn run(config: Config, ctx: &StepContext) -> Result<Report, RunError> {
        run_scan(config, ctx.workdir(), scan::today())
    }
}

sluice_sdk::export_plugin!(SecurityScan);

/// What the pipeline's folder-relative display of `path` is.
fn display(workdir: &Path, path: &Path) -> String {
    path.strip_prefix(workdir)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

/// `path` from the configuration as an absolute path with `.` and `..` resolved
/// lexically. The `..` must go before the path reaches WASI: wasi-libc picks the grant
/// (preopen) by prefix and hands the rest, `..` included, to the host, which refuses to
/// leave that grant even when the result lies inside another one (`../osv` with `..`
/// or `../osv` granted). Grants are resolved the same way by the runner.
fn resolve(workdir: &Path, path: &str) -> PathBuf {
    sluice_sdk::fs::normalize(&workdir.join(path))
}

/// Lockfiles under `roots`, honouring ignore files, skipping `node_modules`, `target`,
/// `.git`, vendored trees and whatever matches an `exclude` glob.
fn find_lockfiles(
    roots: &[PathBuf],
    workdir: &Path,
    exclude: &[String],
) -> Result<Vec<(PathBuf, Format)>, RunError> {
    let discovery = lockfiles::Discovery::new(workdir, exclude)
        .map_err(|e| RunError::invalid_config(e.to_string()))?;
    for root in roots {
        std::fs::metadata(root).map_err(|e| {
            RunError::from(sluice_sdk::fs::Error::new(
                root.clone(),
                sluice_sdk::fs::Access::Read,
                e,
            ))
        })?;
    }
    let found = discovery
        .find(roots)
        .map_err(|e| RunError::failed(e.to_string()))?;
    Ok(found.into_iter().map(|f| (f.path, f.format)).collect())
}

/// Run the whole scan with `today` as the current day (days since the Unix epoch).
pub fn run_scan(config: Config, workdir: &Path, today: i64) -> Result<Report, RunError> {
    let started = Instant::now();
    let fail_on = report::parse_severity(&config.fail_on).ok_or_else(|| {
        RunError::invalid_config(format!(
            "`fail-on` is `{}`: use critical, high, medium, low or info",
            config.fail_on
        ))
    })?;

    // Validate everything before reading anything big.
    let mut ignores = Vec::new();
    for entry in &config.ignore {
        let expires = match &entry.expires {
            None => None,
            Some(text) => Some(parse_date(text).ok_or_else(|| {
                RunError::invalid_config(format!(
                    "ignore `{}`: expires `{text}` is not a YYYY-MM-DD date",
                    entry.id
                ))
            })?),
        };
        if entry.reason.trim().is_empty() {
            return Err(RunError::invalid_config(format!(
                "ignore `{}`: give a reason",
                entry.id
            )));
        }
        ignores.push(Ignore {
            id: entry.id.clone(),
            reason: entry.reason.clone(),
            expires,
        });
    }
    let sluice_denylist::Denylist {
        packages: deny_packages,
        git_refs: deny_refs,
    } = config
        .denylist
        .compile()
        .map_err(RunError::invalid_config)?;

    let lockfiles: Vec<(PathBuf, Format)> = if config.lockfiles.is_empty() {
        find_lockfiles(
            &config
                .paths
                .iter()
                .map(|p| resolve(workdir, p))
                .collect::<Vec<_>>(),
            workdir,
            &config.exclude,
        )?
    } else {
        config
            .lockfiles
            .iter()
            .map(|l| {
                let path = resolve(workdir, l);
                Format::detect(&path).map(|f| (path, f)).ok_or_else(|| RunError::invalid_config(format!("lockfile `{l}`: unknown format; the file name must be one of Cargo.lock, package-lock.json, npm-shrinkwrap.json, yarn.lock, pnpm-lock.yaml, go.mod, go.sum, requirements*.txt, poetry.lock, Pipfile.lock, Gemfile.lock")))
            })
            .collect::<Result<_, _>>()?
    };

    let mut findings: Vec<Finding> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut status = Status::Passed;
    let mut metrics = Vec::new();
    let mut packages_scanned = 0usize;
    let (mut vulnerabilities, mut blocked) = (0usize, 0usize);
    // A package can match several advisories and appear in several lockfiles; it is one
    // vulnerable package (ecosystem, name, version) however many advisories name it.
    let mut vulnerable_packages = std::collections::BTreeSet::new();

    if !lockfiles.is_empty() || !deny_packages.is_empty() || !deny_refs.is_empty() {
        let db = if lockfiles.is_empty() {
            None
        } else {
            let Some(database) = &config.database else {
                return Err(RunError::invalid_config(format!(
                    "found {} lockfile(s) but no `database`: set it to a folder of OSV JSON files or an `all.zip`, and grant it under `read`",
                    lockfiles.len()
                )));
            };
            let path = resolve(workdir, database);
            std::fs::metadata(&path).map_err(|e| {
                RunError::from(sluice_sdk::fs::Error::new(
                    path.clone(),
                    sluice_sdk::fs::Access::Read,
                    e,
                ))
            })?;
            let loading = Instant::now();
            let db = Database::load(&path).map_err(RunError::failed)?;
            sluice_sdk::log::info(format!(
                "loaded {} advisories ({} withdrawn skipped) from {} in {} ms",
                db.loaded,
                db.withdrawn,
                database,
                loading.elapsed().as_millis()
            ));
            metrics.push(Metric::new("advisories.loaded", db.loaded as f64, "count"));
            if let Some(newest) = db.newest_day {
                let age = today - newest;
                metrics.push(Metric::new("database.age", age as f64, "days"));
                if age > i64::from(config.max_database_age_days) {
                    status = status.worse(Status::Warned);
                    notes.push(format!(
                        "the advisory database is {age} days old (limit {}): update it",
                        config.max_database_age_days
                    ));
                }
            } else {
                notes.push(
                    "the advisory database has no `modified` dates: its age is unknown".into(),
                );
                status = status.worse(Status::Warned);
            }
            Some(db)
        };
        for (path, format) in &lockfiles {
            let shown = display(workdir, path);
            let text = sluice_sdk::fs::read_to_string(path)?;
            let parsed = format
                .parse(&text)
                .map_err(|e| RunError::failed(format!("{shown}: {e}")))?;
            for skipped in &parsed.skipped {
                sluice_sdk::log::debug(format!("{shown}: not scanned: {skipped}"));
            }
            packages_scanned += parsed.packages.len();
            let Some(db) = &db else { continue };
            let result = scan::scan_packages(
                db,
                &parsed.packages,
                &ignores,
                &deny_packages,
                &deny_refs,
                today,
            );
            for problem in &result.problems {
                sluice_sdk::log::warn(format!("{shown}: could not judge {problem}"));
            }
            if !result.problems.is_empty() {
                notes.push(format!(
                    "{shown}: {} package/advisory pair(s) could not be judged (see the log)",
                    result.problems.len()
                ));
                status = status.worse(Status::Warned);
            }
            for (id, day) in &result.expired_ignores {
                notes.push(format!(
                    "the ignore for {id} expired ({} days ago)",
                    today - day
                ));
                status = status.worse(Status::Warned);
            }
            for (hit, reason) in &result.ignored {
                sluice_sdk::log::info(format!(
                    "{shown}: ignoring {} for {} {}: {reason}",
                    hit.advisory.id, hit.package.name, hit.package.version
                ));
            }
            vulnerabilities += result.vulnerabilities.len();
            for hit in &result.vulnerabilities {
                vulnerable_packages.insert((
                    hit.package.ecosystem,
                    hit.package.name.clone(),
                    hit.package.version.clone(),
                ));
                findings.push(report::vulnerability_finding(
                    &shown,
                    &hit.package,
                    &hit.advisory,
                    hit.affected_index,
                ));
            }
            blocked += result.blocked.len();
            for (package, hit) in &result.blocked {
                findings.push(report::denylist_finding(&shown, package, hit));
            }
        }
        metrics.push(Metric::new(
            "packages.scanned",
            packages_scanned as f64,
            "count",
        ));
    }

    let mut secrets_found = 0usize;
    if config.secrets.enabled {
        let rules = match &config.secrets.rules {
            None => RuleSet::default_rules(),
            Some(file) => {
                let path = resolve(workdir, file);
                let text = sluice_sdk::fs::read_to_string(&path)?;
                let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
                let read = move |p: &str| {
                    sluice_sdk::fs::read_to_string(resolve(&base, p)).map_err(|e| e.to_string())
                };
                if config.secrets.extend_default {
                    RuleSet::parse_extending_default(&text, file, Some(&read))
                } else {
                    RuleSet::parse(&text, file, Some(&read))
                }
                .map_err(RunError::invalid_config)?
            }
        };
        let (mut files, mut skipped) = (0, 0);
        for root in &config.secrets.paths {
            let path = resolve(workdir, root);
            std::fs::metadata(&path).map_err(|e| {
                RunError::from(sluice_sdk::fs::Error::new(
                    path.clone(),
                    sluice_sdk::fs::Access::Read,
                    e,
                ))
            })?;
            let tree = secrets::scan_tree(&rules, &path, config.secrets.max_file_bytes, &|p| {
                display(workdir, p)
            })
            .map_err(RunError::failed)?;
            files += tree.files_scanned;
            skipped += tree.files_skipped;
            secrets_found += tree.leaks.len();
            findings.extend(tree.leaks.iter().map(report::secret_finding));
        }
        metrics.push(Metric::new("secrets.files", files as f64, "count"));
        if skipped > 0 {
            sluice_sdk::log::info(format!(
                "secret scan skipped {skipped} binary or oversized file(s)"
            ));
        }
    }

    let scanned_anything = !lockfiles.is_empty() || config.secrets.enabled;
    for finding in &findings {
        let hit_threshold = finding.severity.rank() >= fail_on.rank();
        let is_blocked = finding.rule_id.starts_with("denylist/");
        status = status.worse(if hit_threshold || is_blocked {
            Status::Failed
        } else {
            Status::Warned
        });
    }
    metrics.push(Metric::new(
        "scan.time",
        started.elapsed().as_secs_f64() * 1000.0,
        "ms",
    ));

    let mut summary = format!(
        "{} in {} ({}), {}, {blocked} denylisted",
        counted(
            vulnerable_packages.len(),
            "vulnerable package",
            "vulnerable packages"
        ),
        counted(lockfiles.len(), "lockfile", "lockfiles"),
        counted(packages_scanned, "package", "packages"),
        counted(secrets_found, "secret", "secrets"),
    );
    if vulnerabilities > 0 {
        summary.insert_str(
            summary
                .find(" in ")
                .expect("the summary names the lockfiles"),
            &format!(" ({})", counted(vulnerabilities, "advisory", "advisories")),
        );
    }
    if let Some(worst) = findings.iter().map(|f| f.severity).max_by_key(|s| s.rank()) {
        summary.push_str(&format!("; worst: {}", severity_name(worst)));
    }
    for note in &notes {
        summary.push_str("; ");
        summary.push_str(note);
    }
    if status == Status::Failed && !findings.is_empty() {
        // The findings explain the failure on the console (the log's tail is not shown).
        summary.push('\n');
        summary.push_str(&Finding::listing(&findings, LISTED_FINDINGS));
    }
    if !scanned_anything {
        return Ok(Report::skipped(
            "nothing to scan: no lockfiles found and secret scanning disabled",
        ));
    }
    // The `findings` output marks the step as an analysis: it gets a SARIF run even
    // when clean, so code scanning closes the alerts that were fixed.
    let finding_count = findings.len();
    Ok(Report::new(status, summary)
        .with_output("findings", finding_count)
        .with_findings(findings)
        .with_metrics(metrics)
        .with_output("vulnerabilities", vulnerabilities)
        .with_output("vulnerable-packages", vulnerable_packages.len())
        .with_output("secrets", secrets_found)
        .with_output("blocked", blocked)
        .with_output("packages", packages_scanned))
}

/// `1 lockfile`, `2 lockfiles`.
fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}
