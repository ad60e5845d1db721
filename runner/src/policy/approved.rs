//! Approved plugins: in a protected stage (everywhere, when the policy says so) every
//! step's and monitor's plugin must be on the approved list, of an allowed tier,
//! pinned by digest (in `uses` or in `sluice.lock`), and signed by a trusted key when
//! the policy requires signatures. Checked after plugins load (their digests are
//! known), before any step runs; each refusal is at the step's `uses`.
//!
//! The rules, in order, for a plugin in a stage they apply to:
//! 1. approved: the first `[[plugin]]` whose `name` pattern matches the plugin's
//!    [`PluginRef::policy_name`] approves it (file order);
//! 2. tier: in a protected stage, that entry's tier is one `[protect] tiers` allows;
//! 3. pinned (protected stages): a built-in always is (the runner binary pins it); a
//!    file or OCI plugin when its digest is among the entry's `digests`, or when the
//!    lock pins it (or its `uses` names `@sha256:`) and it is signed by one of the
//!    entry's `keys`;
//! 4. signed (protected stages, `require-signature = true`): every plugin but a
//!    built-in verifies against the policy's `[[key]]`s ([`crate::signing::verify`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::Digest as _;

use super::{ApprovedPlugin, Policy};
use crate::config::{ConfigError, PathSegment, Pipeline, PluginRef, SourceFile, Stage};
use crate::host::plugin::LoadedPlugin;

/// Every refusal of a plugin by the policy. `today` (UTC) is the day signatures'
/// keys are checked for validity on.
pub fn check(
    policy: &Policy,
    pipeline: &Pipeline,
    plugins: &HashMap<PluginRef, Arc<LoadedPlugin>>,
    lock: Option<&crate::lockfile::Lock>,
    today: jiff::civil::Date,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let checker = Checker {
        policy,
        pipeline,
        lock,
        today,
    };
    for stage in &pipeline.stages {
        let protected = policy.is_protected(pipeline, stage);
        if !protected && !policy.protect.approved_everywhere {
            continue;
        }
        for step in &stage.steps {
            let uses_path = step.key_path(&[PathSegment::Key("uses".into())]);
            let at = pipeline.source.span_of(&uses_path).map_or(0, |s| s.start);
            let digest = plugins.get(&step.uses).map(|p| p.digest().to_string());
            let what = format!("step `{}`", step.id);
            if let Some(message) =
                checker.refusal(stage, protected, &step.uses, digest.as_deref(), at, &what)
            {
                errors.push(pipeline.source.error(at, message));
            }
        }
        for monitor in monitors_of(pipeline, stage) {
            let Some(uses) = &monitor.uses else { continue };
            let digest = digest_of(uses);
            let what = format!(
                "monitor `{}` (watched by stage `{}`)",
                monitor.id, stage.name
            );
            if let Some(message) = checker.refusal(
                stage,
                protected,
                uses,
                digest.as_deref(),
                monitor.uses_offset,
                &what,
            ) {
                let error = pipeline.source.error(monitor.uses_offset, message);
                if !errors.iter().any(|e: &ConfigError| e.pos == error.pos) {
                    errors.push(error);
                }
            }
        }
    }
    errors
}

/// The monitors a stage depends on: those of its alarms gates and its bake.
fn monitors_of<'p>(
    pipeline: &'p Pipeline,
    stage: &Stage,
) -> impl Iterator<Item = &'p crate::monitors::MonitorSpec> {
    let mut ids: Vec<&str> = Vec::new();
    for gate in &stage.gates {
        if let crate::gates::spec::GateKind::Alarms(a) = &gate.kind {
            ids.extend(a.alarms.iter().map(String::as_str));
        }
    }
    if let Some(bake) = &stage.bake {
        ids.extend(bake.monitors.iter().map(String::as_str));
    }
    let ids: Vec<String> = ids.into_iter().map(str::to_string).collect();
    pipeline
        .monitors
        .iter()
        .filter(move |m| ids.contains(&m.id))
}

/// The digest of a monitor's component, which the step plugins' map does not hold.
fn digest_of(uses: &PluginRef) -> Option<String> {
    match uses {
        PluginRef::Builtin(_) => None,
        PluginRef::File(p) => std::fs::read(p)
            .ok()
            .map(|bytes| format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))),
        PluginRef::Oci(r) => r.component.clone(),
    }
}

/// Verifies the plugin's signature against some keys; `None` when its digest is
/// unknown.
type Verifier<'a> =
    dyn Fn(&[super::TrustedKey]) -> Option<Result<String, crate::signing::SignatureError>> + 'a;

struct Checker<'a> {
    policy: &'a Policy,
    pipeline: &'a Pipeline,
    lock: Option<&'a crate::lockfile::Lock>,
    today: jiff::civil::Date,
}

impl Checker<'_> {
    /// Why the policy refuses this plugin in this stage, if it does.
    fn refusal(
        &self,
        stage: &Stage,
        protected: bool,
        uses: &PluginRef,
        digest: Option<&str>,
        uses_at: usize,
        what: &str,
    ) -> Option<String> {
        let policy = self.policy;
        let name = uses.policy_name(&self.pipeline.dir);
        let where_ = if protected {
            format!("{what} in protected stage `{}`", stage.name)
        } else {
            format!("{what} in stage `{}`", stage.name)
        };
        let shown_digest = digest.unwrap_or("unknown");
        let file = policy.source.path.display();
        let Some(entry) = policy.plugins.iter().find(|p| p.name.matches(&name)) else {
            let rule = if protected {
                "a protected stage may use only approved plugins"
            } else {
                "the policy approves plugins everywhere (`approved-only = \"everywhere\"`)"
            };
            let digests = match digest {
                Some(d) if !matches!(uses, PluginRef::Builtin(_)) => {
                    format!(", digests = [\"{d}\"]")
                }
                _ => String::new(),
            };
            return Some(format!(
                "{where_}: plugin `{name}` is not approved by policy `{}` ({file}): {rule}; ask the platform team to add it, e.g. `[[plugin]] name = \"{name}\", tier = \"{}\"{digests}`",
                policy.name,
                policy.tiers.last().map_or("org", String::as_str),
            ));
        };
        let entry_at = format!("{file}:{}", entry.pos.line);
        if !protected {
            return None;
        }
        if !policy.protect.tiers.is_empty() && !policy.protect.tiers.contains(&entry.tier) {
            let allowed = policy
                .protect
                .tiers
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let protect_at = policy
                .protect
                .pos
                .as_ref()
                .map_or(String::new(), |p| format!(" at {file}:{}", p.line));
            return Some(format!(
                "{where_}: plugin `{name}` is approved in tier `{}` ({entry_at}), but protected stages allow only tier {allowed} (`[protect] tiers`{protect_at}); use a plugin of an allowed tier, or ask the platform team to promote it",
                entry.tier
            ));
        }
        if matches!(uses, PluginRef::Builtin(_)) {
            return None;
        }
        let trusted = |keys: &[super::TrustedKey]| {
            digest.map(|d| crate::signing::verify(uses, d, keys, self.today))
        };
        if !self.pinned(entry, uses, digest, uses_at, &trusted) {
            return Some(self.unpinned(&where_, &name, entry, uses, shown_digest, &entry_at));
        }
        if policy.protect.require_signature {
            match trusted(&policy.keys) {
                Some(Ok(_)) => {}
                Some(Err(reason)) => {
                    let protect_at = policy
                        .protect
                        .pos
                        .as_ref()
                        .map_or(String::new(), |p| format!(" at {file}:{}", p.line));
                    return Some(format!(
                        "{where_}: plugin `{name}` (digest {shown_digest}) must be signed by a key policy `{}` trusts (`require-signature = true`{protect_at}), but {reason}; sign it with `sluice plugin sign {} --key KEY` using a key the policy lists under `[[key]]`",
                        policy.name,
                        sign_target(uses)
                    ));
                }
                None => {
                    return Some(format!(
                        "{where_}: plugin `{name}` must be signed (`require-signature = true` in {file}), but its digest is unknown"
                    ));
                }
            }
        }
        None
    }

    /// Whether the plugin is pinned by the rules of its approval.
    fn pinned(
        &self,
        entry: &ApprovedPlugin,
        uses: &PluginRef,
        digest: Option<&str>,
        uses_at: usize,
        trusted: &Verifier<'_>,
    ) -> bool {
        let Some(digest) = digest else { return false };
        if entry.digests.iter().any(|d| d == digest) {
            return true;
        }
        if entry.keys.is_empty() {
            return false;
        }
        let written = written_value(&self.pipeline.source, uses_at);
        // The lock keys a plugin as `sluice lock` writes it (`./x.wasm` and `x.wasm`
        // are one entry), not as this `uses` happens to spell it.
        let by_lock = self
            .lock
            .and_then(|l| l.pinned_ref(uses, &self.pipeline.dir))
            .is_some_and(|d| d == digest);
        let by_uses = written.contains("@sha256:")
            && matches!(uses, PluginRef::Oci(r) if r.component.as_deref() == Some(digest));
        if !by_lock && !by_uses {
            return false;
        }
        let keys: Vec<super::TrustedKey> = self
            .policy
            .keys
            .iter()
            .filter(|k| entry.keys.contains(&k.id))
            .cloned()
            .collect();
        matches!(trusted(&keys), Some(Ok(_)))
    }

    fn unpinned(
        &self,
        where_: &str,
        name: &str,
        entry: &ApprovedPlugin,
        uses: &PluginRef,
        digest: &str,
        entry_at: &str,
    ) -> String {
        let policy = &self.policy.name;
        let mut message = format!(
            "{where_}: plugin `{name}` is approved ({entry_at}) but not pinned: its digest {digest} is not among the approved digests"
        );
        if entry.keys.is_empty() {
            message.push_str(&format!(
                "; add `\"{digest}\"` to the `digests` of its `[[plugin]]` entry in policy `{policy}`"
            ));
        } else {
            let keys = entry
                .keys
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            message.push_str(&format!(
                ", and it is not both pinned (by `sluice lock` or `@sha256:` in `uses`) and signed by {keys}; pin it with `sluice lock` and sign it with `sluice plugin sign {} --key KEY`, or add `\"{digest}\"` to the entry's `digests` in policy `{policy}`",
                sign_target(uses)
            ));
        }
        message
    }
}

/// What to name in a `sluice plugin sign` hint.
fn sign_target(uses: &PluginRef) -> String {
    match uses {
        PluginRef::File(p) => shown_path(p),
        other => other.to_string(),
    }
}

fn shown_path(p: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    p.strip_prefix(&cwd).unwrap_or(p).display().to_string()
}

/// The string value written at `offset` in the pipeline file (the `uses` as
/// written, which is how `sluice.lock` knows it).
fn written_value(source: &SourceFile, offset: usize) -> String {
    let rest = source.text.get(offset..).unwrap_or_default();
    let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        return String::new();
    };
    let body = &rest[1..];
    body.split(quote)
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}
