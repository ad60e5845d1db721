//! Capability ceilings: no step may be granted more than the ceilings that select it
//! allow (`net` only to the package registries in build stages, no `exec` of `curl`).
//! Checked before any step runs; each refusal is at the grant that exceeds.
//!
//! A ceiling selects a step by its stage's kinds ([`super::protect::stage_kinds`]),
//! its stage's name and its plugin's [`crate::config::PluginRef::policy_name`]; a
//! selector left out (or empty) matches every step. It bounds what the pipeline file
//! grants: `net` (patterns over `host:port`; `https://crates.io` is `crates.io:443`),
//! `exec` and `exec-deny` (a bare name or a path's basename, and also what a
//! `toolchain` preset grants), `write` (patterns over paths relative to the pipeline
//! folder), `env`, `secrets`. The tool cache a toolchain preset writes is the
//! runner's own and is not bounded.

use super::{Ceiling, Pattern, Policy};
use crate::config::{ConfigError, PathSegment, Pipeline, Stage, Step};

/// Every grant of the pipeline above a ceiling.
pub fn check(policy: &Policy, pipeline: &Pipeline) -> Vec<ConfigError> {
    if policy.ceilings.is_empty() {
        return Vec::new();
    }
    let raw: Option<toml::Table> = toml::from_str(&pipeline.source.text).ok();
    let mut errors = Vec::new();
    for stage in &pipeline.stages {
        let kinds = super::protect::stage_kinds(Some(policy), pipeline, stage);
        for step in &stage.steps {
            let plugin = step.uses.policy_name(&pipeline.dir);
            let selecting: Vec<&Ceiling> = policy
                .ceilings
                .iter()
                .filter(|c| selects(c, stage, &kinds, &plugin))
                .collect();
            if selecting.is_empty() {
                continue;
            }
            let grants = raw_grants(raw.as_ref(), step);
            let bound = Bound {
                policy,
                pipeline,
                stage,
                step,
                errors: &mut errors,
            };
            bound.check(&selecting, &grants);
        }
    }
    errors
}

/// Whether the ceiling bounds a step of this stage using this plugin.
fn selects(ceiling: &Ceiling, stage: &Stage, kinds: &[String], plugin: &str) -> bool {
    (ceiling.kinds.is_empty() || ceiling.kinds.iter().any(|k| kinds.contains(k)))
        && (ceiling.stages.is_empty() || ceiling.stages.iter().any(|p| p.matches(&stage.name)))
        && (ceiling.plugins.is_empty() || ceiling.plugins.iter().any(|p| p.matches(plugin)))
}

/// A step's grants as written, with each entry's place in the list.
#[derive(Default)]
struct RawGrants {
    exec: Vec<String>,
    write: Vec<String>,
    env: Vec<String>,
    secrets: usize,
}

fn raw_grants(raw: Option<&toml::Table>, step: &Step) -> RawGrants {
    let grants = raw
        .and_then(|t| t.get("stage"))
        .and_then(|s| s.get(step.stage_index))
        .and_then(|s| s.get("step"))
        .and_then(|s| s.get(step.step_index))
        .and_then(|s| s.get("grants"));
    let strings = |key: &str| -> Vec<String> {
        grants
            .and_then(|g| g.get(key))
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    RawGrants {
        exec: strings("exec"),
        write: strings("write"),
        env: strings("env"),
        secrets: grants
            .and_then(|g| g.get("secrets"))
            .and_then(|v| v.as_array())
            .map_or(0, Vec::len),
    }
}

/// The ceilings of one step, and where their refusals go.
struct Bound<'a> {
    policy: &'a Policy,
    pipeline: &'a Pipeline,
    stage: &'a Stage,
    step: &'a Step,
    errors: &'a mut Vec<ConfigError>,
}

impl Bound<'_> {
    fn check(mut self, ceilings: &[&Ceiling], raw: &RawGrants) {
        for ceiling in ceilings {
            self.net(ceiling);
            self.exec(ceiling, raw);
            self.write(ceiling, raw);
            self.env(ceiling, raw);
            if ceiling.secrets == Some(false) {
                for i in 0..raw.secrets {
                    let name = self
                        .step
                        .grants
                        .secrets
                        .get(i)
                        .map_or("?", |g| g.name.as_str());
                    self.refuse(
                        &[key("secrets"), PathSegment::Index(i)],
                        ceiling,
                        format!("`secrets` grant `{name}`"),
                        "no secrets (`secrets = false`)".into(),
                    );
                }
            }
        }
    }

    fn net(&mut self, ceiling: &Ceiling) {
        let Some(allowed) = &ceiling.net else { return };
        for (i, grant) in self.step.grants.net.iter().enumerate() {
            let host_port = format!("{}:{}", grant.host, grant.port);
            if allowed.iter().any(|p| p.matches(&host_port)) {
                continue;
            }
            let shown = if grant.scheme.is_some() {
                format!("`net` grant `{grant}` ({host_port})")
            } else {
                format!("`net` grant `{host_port}`")
            };
            let bound = if allowed.is_empty() {
                "no `net` at all".to_string()
            } else {
                format!("`net` only to {}", list(allowed))
            };
            self.refuse(&[key("net"), PathSegment::Index(i)], ceiling, shown, bound);
        }
    }

    fn exec(&mut self, ceiling: &Ceiling, raw: &RawGrants) {
        let refused = |program: &str| -> Option<String> {
            let base = program.rsplit('/').next().unwrap_or(program);
            let hit = |p: &Pattern| p.matches(program) || p.matches(base);
            if ceiling.exec_deny.iter().any(hit) {
                return Some(format!("never `exec` of {}", list(&ceiling.exec_deny)));
            }
            match &ceiling.exec {
                Some(allowed) if !allowed.iter().any(hit) => Some(if allowed.is_empty() {
                    "no `exec` at all".to_string()
                } else {
                    format!("`exec` only of {}", list(allowed))
                }),
                _ => None,
            }
        };
        for (i, program) in raw.exec.iter().enumerate() {
            if let Some(bound) = refused(program) {
                self.refuse(
                    &[key("exec"), PathSegment::Index(i)],
                    ceiling,
                    format!("`exec` grant `{program}`"),
                    bound,
                );
            }
        }
        for preset in &self.step.grants.toolchains {
            for program in &preset.exec {
                if let Some(bound) = refused(program) {
                    self.refuse(
                        &[key("toolchain")],
                        ceiling,
                        format!(
                            "toolchain `{}`, which grants `exec` of `{program}`,",
                            preset.toolchain
                        ),
                        bound,
                    );
                }
            }
        }
    }

    fn write(&mut self, ceiling: &Ceiling, raw: &RawGrants) {
        let Some(allowed) = &ceiling.write else {
            return;
        };
        for (i, written) in raw.write.iter().enumerate() {
            let path = self
                .step
                .grants
                .write
                .get(i)
                .map(|p| {
                    p.strip_prefix(&self.pipeline.dir)
                        .map(|r| {
                            let r = r.display().to_string();
                            if r.is_empty() { ".".to_string() } else { r }
                        })
                        .unwrap_or_else(|_| p.display().to_string())
                })
                .unwrap_or_else(|| written.clone());
            let trimmed = path.trim_end_matches('/');
            if allowed
                .iter()
                .any(|p| p.matches(trimmed) || p.matches(&path))
            {
                continue;
            }
            let bound = if allowed.is_empty() {
                "no `write` at all".to_string()
            } else {
                format!(
                    "`write` only to {} (relative to the pipeline folder)",
                    list(allowed)
                )
            };
            self.refuse(
                &[key("write"), PathSegment::Index(i)],
                ceiling,
                format!("`write` grant `{written}` ({path})"),
                bound,
            );
        }
    }

    fn env(&mut self, ceiling: &Ceiling, raw: &RawGrants) {
        let Some(allowed) = &ceiling.env else { return };
        for (i, name) in raw.env.iter().enumerate() {
            if allowed.iter().any(|p| p.matches(name)) {
                continue;
            }
            let bound = if allowed.is_empty() {
                "no `env` at all".to_string()
            } else {
                format!("`env` only of {}", list(allowed))
            };
            self.refuse(
                &[key("env"), PathSegment::Index(i)],
                ceiling,
                format!("`env` grant `{name}`"),
                bound,
            );
        }
    }

    /// A refusal at the grant's own place.
    fn refuse(
        &mut self,
        grant_path: &[PathSegment],
        ceiling: &Ceiling,
        what: String,
        bound: String,
    ) {
        let mut path = vec![key("grants")];
        path.extend_from_slice(grant_path);
        let at = self
            .pipeline
            .source
            .span_of(&self.step.key_path(&path))
            .map_or(0, |s| s.start);
        let selects = describe_selection(ceiling);
        self.errors.push(self.pipeline.source.error(
            at,
            format!(
                "step `{}` in stage `{}`: {what} is above ceiling `{}` of policy `{}` ({}:{}), which bounds {selects}: {bound}; remove the grant, or ask the platform team to raise the ceiling",
                self.step.id,
                self.stage.name,
                ceiling.id,
                self.policy.name,
                self.policy.source.path.display(),
                ceiling.pos.line,
            ),
        ));
    }
}

fn key(k: &str) -> PathSegment {
    PathSegment::Key(k.into())
}

fn list(patterns: &[Pattern]) -> String {
    patterns
        .iter()
        .map(|p| format!("`{}`", p.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "steps in build stages" / "steps in stages `prod*`" / "steps using `oci://...`".
fn describe_selection(ceiling: &Ceiling) -> String {
    let mut parts = Vec::new();
    if !ceiling.kinds.is_empty() {
        parts.push(format!("in {} stages", ceiling.kinds.join(" or ")));
    }
    if !ceiling.stages.is_empty() {
        parts.push(format!("in stages {}", list(&ceiling.stages)));
    }
    if !ceiling.plugins.is_empty() {
        parts.push(format!("using {}", list(&ceiling.plugins)));
    }
    format!("steps {}", parts.join(", "))
}
