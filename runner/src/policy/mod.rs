//! Organisation policy: what a platform team requires of every pipeline that
//! references its policy file (`[pipeline] policy = "PATH"` or `"oci://..."`).
//!
//! A policy holds
//! - approved plugins (name → allowed digests and/or trusted signing keys, with a
//!   tier), and which stages are protected (they reach production): a protected stage
//!   may use only approved plugins, pinned by digest, signed when the policy says so;
//! - capability ceilings per stage kind or plugin (no `net` in build stages but the
//!   package registries, no `exec` of `curl`), checked before any step runs;
//! - organisation checks over the pipeline, each warning from one date and enforced
//!   from another, built in or written as plugins, with expiring exemptions.
//!
//! The pieces: [`spec`] reads and checks the file (every error at file:line:col);
//! [`protect`] decides which stages are protected and each stage's kinds;
//! [`approved`] checks plugins against the approved list, [`ceilings`] the grants
//! against the ceilings; [`checks`] runs the organisation checks and [`lifecycle`]
//! says, at an instant, whether each finding warns, blocks or is exempt; [`model`] is
//! the pipeline as JSON, what custom checks receive; [`report`] is `sluice policy
//! report` over many pipelines. [`enforce`] composes them for `validate` and `run`.

pub mod approved;
pub mod ceilings;
pub mod checks;
pub mod lifecycle;
pub mod model;
pub mod protect;
pub mod report;
pub mod spec;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_spanned::Spanned;

use crate::config::{ConfigError, Pipeline, PluginRef, SourceFile, SourcePos};

/// `[pipeline] policy`: where the pipeline's policy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyRef {
    /// A file, resolved against the pipeline's folder.
    File(PathBuf),
    /// A policy published to an OCI registry (`sluice policy push`).
    Oci(crate::registry::OciRef),
}

impl std::fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyRef::File(p) => write!(f, "{}", p.display()),
            PolicyRef::Oci(r) => write!(f, "{r}"),
        }
    }
}

/// Read `[pipeline] policy` (the raw value at its span) into a [`PolicyRef`].
pub(crate) fn policy_ref(
    source: &SourceFile,
    dir: &Path,
    value: Option<&Spanned<String>>,
    errors: &mut Vec<ConfigError>,
) -> Option<PolicyRef> {
    let value = value?;
    let text = value.get_ref().trim();
    if text.is_empty() {
        errors.push(source.error(
            value.span().start,
            "`policy` is empty; name the policy file (e.g. `policy = \"../policy/sluice-policy.toml\"`) or an OCI reference (`oci://HOST/NS/NAME:TAG`)",
        ));
        return None;
    }
    if text.starts_with(crate::registry::OCI_SCHEME) {
        return match crate::registry::OciRef::parse(text) {
            Ok(r) => Some(PolicyRef::Oci(r)),
            Err(reason) => {
                errors.push(source.error(
                    value.span().start,
                    format!("`policy` = \"{text}\": {reason}"),
                ));
                None
            }
        };
    }
    Some(PolicyRef::File(dir.join(crate::config::expand_home(text))))
}

/// A policy, read and checked. Every item keeps its place in the policy file.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `[policy] name`.
    pub name: String,
    /// `[policy] version`: the platform team's own version of the policy, shown in
    /// reports.
    pub version: Option<String>,
    /// The file's text, for positions; its path is the one messages show (for an
    /// OCI policy, the reference).
    pub source: SourceFile,
    /// Where it came from, and its digest (sha256 of its bytes).
    pub origin: PolicyRef,
    pub digest: String,
    /// The tiers, most trusted first (`[policy] tiers = ["org", "team", "experimental"]`).
    pub tiers: Vec<String>,
    /// Which stages are protected and what they require (`[protect]`).
    pub protect: Protection,
    /// Stage kinds by stage-name pattern (`[kinds] build = ["build*"]`), besides the
    /// kinds inferred from a stage's plugins (see [`protect::stage_kinds`]).
    pub kinds: Vec<(String, Vec<Pattern>)>,
    /// Approved plugins (`[[plugin]]`), in file order.
    pub plugins: Vec<ApprovedPlugin>,
    /// Keys trusted to sign plugins (`[[key]]`).
    pub keys: Vec<TrustedKey>,
    /// Capability ceilings (`[[ceiling]]`).
    pub ceilings: Vec<Ceiling>,
    /// Organisation checks (`[[check]]`).
    pub checks: Vec<CheckSpec>,
    /// Exemptions from checks (`[[exemption]]`).
    pub exemptions: Vec<Exemption>,
}

/// A shell-style pattern over names (`prod*`, `builtin:*`, `oci://registry/acme/*`):
/// `*` matches any run of characters, `?` one character; nothing else is special.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(pub String);

impl Pattern {
    pub fn matches(&self, name: &str) -> bool {
        glob_match(self.0.as_bytes(), name.as_bytes())
    }
}

fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = n;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            n = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// `[protect]`: which stages are protected, and what a protected stage requires.
#[derive(Debug, Clone, Default)]
pub struct Protection {
    /// Stage names that are protected (`stages = ["prod", "prod-*"]`).
    pub stages: Vec<Pattern>,
    /// A stage whose steps are granted one of these target groups or targets is
    /// protected (`targets = ["prod*"]`): everything that deploys to production.
    pub targets: Vec<Pattern>,
    /// The tiers a protected stage's plugins may have (`tiers = ["org"]`); empty: any
    /// approved tier.
    pub tiers: Vec<String>,
    /// Plugins in protected stages must be signed by a trusted key
    /// (`require-signature = true`).
    pub require_signature: bool,
    /// Plugins everywhere must be approved, not only in protected stages
    /// (`approved-only = "everywhere"`; default `"protected"`).
    pub approved_everywhere: bool,
    pub pos: Option<SourcePos>,
}

/// `[[plugin]]`: an approved plugin.
#[derive(Debug, Clone)]
pub struct ApprovedPlugin {
    /// What it approves, as [`PluginRef::policy_name`] spells it; may be a pattern
    /// (`builtin:*`, `oci://registry.example/acme/*`).
    pub name: Pattern,
    pub tier: String,
    /// Allowed digests (`sha256:HEX`). Empty: any digest signed by one of `keys`
    /// (a built-in needs neither: it is pinned by the runner binary).
    pub digests: Vec<String>,
    /// Ids of `[[key]]`s whose signature approves any digest of it.
    pub keys: Vec<String>,
    pub pos: SourcePos,
}

/// `[[key]]`: a public key trusted to sign plugins. Keys rotate by overlap: add the
/// new key, re-sign, then give the old one a `not-after` date or remove it.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// The name the policy uses for it (`id = "release-2026"`).
    pub id: String,
    /// The minisign public key, base64 as `minisign -G` writes it (`RW...`).
    pub public_key: String,
    /// Signatures made with it count from this date…
    pub not_before: Option<jiff::civil::Date>,
    /// …until the end of this date (UTC).
    pub not_after: Option<jiff::civil::Date>,
    pub pos: SourcePos,
}

/// `[[ceiling]]`: the most some steps may be granted.
#[derive(Debug, Clone)]
pub struct Ceiling {
    pub id: String,
    /// Which steps it bounds: those in stages of these kinds (`kinds = ["build"]`), in
    /// stages matching these names, or using these plugins. A field left out matches
    /// every step; at least one is given.
    pub kinds: Vec<String>,
    pub stages: Vec<Pattern>,
    pub plugins: Vec<Pattern>,
    /// `net = ["crates.io:443", "*.crates.io:443"]`: the only hosts a grant may name
    /// (patterns over `host:port`); `Some(vec![])`: no `net` at all.
    pub net: Option<Vec<Pattern>>,
    /// `exec = [...]`: the only programs a grant may name; `None`: any.
    pub exec: Option<Vec<Pattern>>,
    /// `exec-deny = ["curl", "wget"]`: programs never granted (by bare name or path).
    pub exec_deny: Vec<Pattern>,
    /// `write = [...]`: the only folders (relative to the pipeline) a grant may name.
    pub write: Option<Vec<Pattern>>,
    /// `secrets = false`: no secrets.
    pub secrets: Option<bool>,
    /// `env = [...]`: the only variables a grant may pass.
    pub env: Option<Vec<Pattern>>,
    pub pos: SourcePos,
}

/// `[[check]]`: an organisation check.
#[derive(Debug, Clone)]
pub struct CheckSpec {
    pub id: String,
    pub kind: CheckKind,
    /// What it asks for and why, as engineers will read it.
    pub message: String,
    /// From this date (UTC) a violation is shown as a warning…
    pub warn_from: Option<jiff::civil::Date>,
    /// …and from this one it is enforced. `None`: it only ever warns.
    pub enforce_from: Option<jiff::civil::Date>,
    /// What an enforced violation stops.
    pub blocks: Blocks,
    pub pos: SourcePos,
}

/// What a check is.
#[derive(Debug, Clone)]
pub enum CheckKind {
    /// `builtin = "production-bake"` with its `with` table.
    Builtin {
        name: String,
        with: serde_json::Value,
    },
    /// `uses = "checks/x.wasm"` (or `oci://...`): a component of the `policy-check`
    /// world, given `with` as its config.
    Custom {
        uses: PluginRef,
        with: serde_json::Value,
    },
}

/// What an enforced violation stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocks {
    /// The whole run, before any step (exit 2). The default.
    Run,
    /// Promotion into protected stages: a `policy` gate at their entry, overridable on
    /// the record like every gate.
    Promotion,
}

/// `[[exemption]]`: a pipeline let off a check, on the record.
#[derive(Debug, Clone)]
pub struct Exemption {
    /// The check's id.
    pub check: String,
    /// The pipelines it covers (`pipeline = "legacy-*"`).
    pub pipeline: Pattern,
    pub reason: String,
    pub approved_by: String,
    pub ticket: Option<String>,
    /// The last day (UTC) it applies; `None`: permanent.
    pub expires: Option<jiff::civil::Date>,
    pub pos: SourcePos,
}

/// Why a policy cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read the policy {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Problems in the policy file, each at its place.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\nerror: "))]
    Invalid(Vec<ConfigError>),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// A `--policy oci://...` that is not a valid reference.
    #[error("`{given}`: {reason}")]
    BadReference { given: String, reason: String },
}

/// Read and check a policy file. Messages name it relative to the current folder
/// when it lies beneath it.
pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    let shown = std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf());
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Unreadable {
        path: shown.clone(),
        source,
    })?;
    spec::parse(&shown, text, PolicyRef::File(path.to_path_buf()))
}

/// The policy the pipeline references, loaded (pulled when it is an OCI reference);
/// `None` when it references none.
pub async fn for_pipeline(pipeline: &Pipeline) -> Result<Option<Arc<Policy>>, PolicyError> {
    match &pipeline.policy {
        None => Ok(None),
        Some(reference) => load_from(reference).await.map(|p| Some(Arc::new(p))),
    }
}

/// Load a policy from where a reference points: read the file, or pull it (verified,
/// cached by digest) from an OCI registry.
pub async fn load_from(reference: &PolicyRef) -> Result<Policy, PolicyError> {
    match reference {
        PolicyRef::File(path) => load(path),
        PolicyRef::Oci(oci) => {
            let (text, _digest) = crate::registry::pull_policy(oci).await?;
            spec::parse(
                Path::new(&oci.to_string()),
                text,
                PolicyRef::Oci(oci.clone()),
            )
        }
    }
}

/// Load the policy a command line names (`--policy FILE|oci://...` of `sluice policy
/// check` and `report`); a relative path is taken from the current folder.
pub async fn load_given(given: &str) -> Result<Policy, PolicyError> {
    let reference = if given.starts_with(crate::registry::OCI_SCHEME) {
        PolicyRef::Oci(crate::registry::OciRef::parse(given).map_err(|reason| {
            PolicyError::BadReference {
                given: given.to_string(),
                reason,
            }
        })?)
    } else {
        PolicyRef::File(PathBuf::from(given))
    };
    load_from(&reference).await
}

/// What the policy says about a pipeline before it runs.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Problems that stop the run before any step (exit 2): unapproved, unpinned or
    /// unsigned plugins in protected stages, grants above a ceiling, enforced checks
    /// that block the run. Each is at its place in `sluice.toml`.
    pub errors: Vec<ConfigError>,
    /// What to show but not stop on: checks in their warning period (with the date
    /// they will be enforced), exemptions in use or expired.
    pub warnings: Vec<lifecycle::Notice>,
    /// The check results, kept for the `policy` gate of protected stages (which
    /// applies the lifecycle at each evaluation's instant) and for reports.
    pub findings: Option<Arc<checks::Findings>>,
}

/// Everything the policy decides before a run: approvals and signatures of the
/// loaded plugins (pinned by digest in the policy, or by `lock` and a signature),
/// ceilings over the grants, organisation checks at `now`.
pub async fn enforce(
    pipeline: &Pipeline,
    plugins: &std::collections::HashMap<PluginRef, Arc<crate::host::plugin::LoadedPlugin>>,
    policy: Option<&Arc<Policy>>,
    lock: Option<&crate::lockfile::Lock>,
    host: &crate::host::plugin::PluginHost,
    now: jiff::Timestamp,
) -> Outcome {
    let Some(policy) = policy else {
        return Outcome::default();
    };
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let mut errors = approved::check(policy, pipeline, plugins, lock, today);
    errors.extend(ceilings::check(policy, pipeline));
    let findings = checks::evaluate(policy, pipeline, Some(host)).await;
    let statuses = lifecycle::status_at(policy, &findings, now);
    let mut warnings = Vec::new();
    for status in statuses {
        apply_status(policy, pipeline, status, &mut errors, &mut warnings);
    }
    Outcome {
        errors,
        warnings,
        findings: Some(Arc::new(findings)),
    }
}

/// Turn one check's standing into errors (enforced, blocking the run) or notices.
fn apply_status(
    policy: &Policy,
    pipeline: &Pipeline,
    status: lifecycle::CheckStatus,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<lifecycle::Notice>,
) {
    use lifecycle::{BlocksName, Standing};
    let spec = policy.checks.iter().find(|c| c.id == status.check);
    let found = violations_text(&status.violations);
    let id = &status.check;
    // The check's message is a sentence; what was found follows it after a colon.
    let message = status.message.trim_end_matches('.');
    let mut notice = |text: String| {
        warnings.push(lifecycle::Notice {
            check: id.clone(),
            text,
            status: status.clone(),
        })
    };
    if let Some(expired) = status.expired_exemption {
        notice(format!(
            "check `{id}`: the exemption of pipeline `{}` expired on {expired}; the check applies again",
            pipeline.name
        ));
    }
    match &status.standing {
        Standing::Passes | Standing::Announced { .. } => {}
        Standing::Warns { enforce_from } => {
            let when = match enforce_from {
                Some(d) => format!("will be enforced from {d}"),
                None => "warns only".to_string(),
            };
            notice(format!("check `{id}` ({when}): {message}{found}"));
        }
        Standing::Exempt {
            approved_by,
            reason,
            expires,
        } => {
            let until = match expires {
                Some(d) => format!("until {d}"),
                None => "permanently".to_string(),
            };
            notice(format!(
                "check `{id}`: pipeline `{}` is exempt {until} (approved by {approved_by}: {reason}){found}",
                pipeline.name
            ));
        }
        Standing::Failed { reason } => {
            notice(format!("check `{id}` could not run: {reason}"));
        }
        Standing::Enforced {
            blocks: BlocksName::Promotion,
        } => {
            let since = since(spec);
            notice(format!(
                "check `{id}` (enforced{since}) blocks promotion into protected stages: {message}{found}"
            ));
        }
        Standing::Enforced {
            blocks: BlocksName::Run,
        } => {
            let since = since(spec);
            let how = format!(
                "fix the pipeline, or ask the platform team for an `[[exemption]]` with check = \"{id}\", pipeline = \"{}\", a reason, approved-by and expires in {}",
                pipeline.name,
                policy.source.path.display()
            );
            let mut placed = false;
            for v in &status.violations {
                let pos = violation_pos(pipeline, v);
                errors.push(ConfigError {
                    pos,
                    message: format!(
                        "check `{id}` of policy `{}` (enforced{since}): {message}: {}; {how}",
                        policy.name, v.message
                    ),
                });
                placed = true;
            }
            if !placed {
                errors.push(ConfigError {
                    pos: pipeline_pos(pipeline),
                    message: format!(
                        "check `{id}` of policy `{}` (enforced{since}): {message}; {how}",
                        policy.name
                    ),
                });
            }
        }
    }
}

/// " since DATE" for a check with an enforcement date.
fn since(spec: Option<&CheckSpec>) -> String {
    spec.and_then(|c| c.enforce_from)
        .map_or(String::new(), |d| format!(" since {d}"))
}

/// ": A; B" for the violations, or nothing.
fn violations_text(violations: &[checks::Violation]) -> String {
    if violations.is_empty() {
        return String::new();
    }
    let all = violations
        .iter()
        .map(|v| v.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    format!(": {all}")
}

/// Where a violation is: its own place, its stage's, or the pipeline's name.
fn violation_pos(pipeline: &Pipeline, v: &checks::Violation) -> SourcePos {
    if let Some(at) = &v.at {
        return SourcePos {
            file: PathBuf::from(&at.file),
            line: at.line,
            column: at.column,
        };
    }
    if let Some(stage) = v
        .stage
        .as_ref()
        .and_then(|name| pipeline.stages.iter().find(|s| &s.name == name))
    {
        return stage.pos.clone();
    }
    pipeline_pos(pipeline)
}

/// The place of `[pipeline] name`.
fn pipeline_pos(pipeline: &Pipeline) -> SourcePos {
    use crate::config::PathSegment::Key;
    let at = pipeline
        .source
        .span_of(&[Key("pipeline".into()), Key("name".into())])
        .map_or(0, |s| s.start);
    pipeline.source.pos(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_a_shell() {
        assert!(Pattern("prod*".into()).matches("prod"));
        assert!(Pattern("prod*".into()).matches("prod-eu"));
        assert!(!Pattern("prod*".into()).matches("preprod"));
        assert!(Pattern("builtin:*".into()).matches("builtin:lint"));
        assert!(Pattern("*.crates.io:443".into()).matches("static.crates.io:443"));
        assert!(Pattern("b?x".into()).matches("box"));
        assert!(!Pattern("b?x".into()).matches("bx"));
    }
}
