//! Which stages of a pipeline are protected (they reach production), and the kinds
//! of each stage (`build`, `test`, `deploy`, `production`, and those the policy names
//! by pattern), which ceilings and checks select stages by.

use super::Policy;
use crate::config::{Pipeline, PluginRef, Stage};

impl Policy {
    /// Whether the stage is protected: marked `protected = true`, named by
    /// `[protect] stages`, or granting a target group or target `[protect] targets`
    /// names.
    pub fn is_protected(&self, pipeline: &Pipeline, stage: &Stage) -> bool {
        stage.protected
            || self.protect.stages.iter().any(|p| p.matches(&stage.name))
            || self.deploys_to_protected_targets(pipeline, stage)
    }

    /// Whether a step of the stage is granted a target group or target that
    /// `[protect] targets` matches: the grant's own entries (group or target names)
    /// and the targets they reach, by name and by group.
    fn deploys_to_protected_targets(&self, pipeline: &Pipeline, stage: &Stage) -> bool {
        if self.protect.targets.is_empty() {
            return false;
        }
        let matches = |name: &str| self.protect.targets.iter().any(|p| p.matches(name));
        stage.steps.iter().any(|step| {
            step.grants.targets.iter().any(|g| matches(g))
                || crate::targets::spec::granted(&pipeline.targets, &step.grants)
                    .iter()
                    .any(|t| matches(&t.name) || matches(&t.group))
        })
    }
}

/// The kinds of a stage: from its plugins (`builtin:build` → `build`; unit-test,
/// load-test → `test`; deploy or a `targets` grant → `deploy`), `production` when
/// protected, and those whose `[kinds]` patterns match its name. Without a policy,
/// only the inferred kinds and `protected = true`.
pub fn stage_kinds(policy: Option<&Policy>, pipeline: &Pipeline, stage: &Stage) -> Vec<String> {
    let mut kinds: Vec<String> = Vec::new();
    let mut add = |kind: &str| {
        if !kinds.iter().any(|k| k == kind) {
            kinds.push(kind.to_string());
        }
    };
    let uses = |names: &[&str]| {
        stage
            .steps
            .iter()
            .any(|s| matches!(&s.uses, PluginRef::Builtin(n) if names.contains(&n.as_str())))
    };
    if uses(&["build"]) {
        add("build");
    }
    if uses(&["unit-test", "load-test"]) {
        add("test");
    }
    if uses(&["deploy"]) || stage.steps.iter().any(|s| !s.grants.targets.is_empty()) {
        add("deploy");
    }
    let protected = match policy {
        Some(p) => p.is_protected(pipeline, stage),
        None => stage.protected,
    };
    if protected {
        add("production");
    }
    if let Some(policy) = policy {
        for (kind, patterns) in &policy.kinds {
            if patterns.iter().any(|p| p.matches(&stage.name)) {
                add(kind);
            }
        }
    }
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicyRef, spec};
    use std::path::Path;

    const PIPELINE: &str = r#"[pipeline]
name = "web"

[[target]]
name = "eu-1"
group = "prod-eu"
local = ".fleet/eu-1"

[[target]]
name = "canary-1"
group = "canary"
local = ".fleet/canary-1"

[[stage]]
name = "compile"
[[stage.step]]
id = "build"
uses = "builtin:build"
with = { toolchain = "rust" }

[[stage]]
name = "checks"
[[stage.step]]
id = "unit"
uses = "builtin:unit-test"
with = { runner = "cargo" }

[[stage]]
name = "canary"
[[stage.step]]
id = "canary-deploy"
uses = "builtin:command"
with = { program = "true" }
[stage.step.grants]
targets = ["canary"]

[[stage]]
name = "eu"
[[stage.step]]
id = "eu-deploy"
uses = "builtin:command"
with = { program = "true" }
[stage.step.grants]
targets = ["eu-1"]

[[stage]]
name = "final"
protected = true
[[stage.step]]
id = "announce"
uses = "builtin:command"
with = { program = "true" }
"#;

    fn pipeline() -> Pipeline {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        let (p, _errors) = crate::config::parse_lenient(&path, PIPELINE.to_string()).unwrap();
        p
    }

    fn policy(text: &str) -> Policy {
        spec::parse(
            Path::new("policy.toml"),
            text.to_string(),
            PolicyRef::File("policy.toml".into()),
        )
        .unwrap()
    }

    fn kinds(policy: Option<&Policy>, p: &Pipeline) -> Vec<(String, Vec<String>)> {
        p.stages
            .iter()
            .map(|s| (s.name.clone(), stage_kinds(policy, p, s)))
            .collect()
    }

    #[test]
    fn stages_are_protected_when_marked_named_or_deploying_to_protected_targets() {
        let p = pipeline();
        let policy = policy(
            "[policy]\nname = \"p\"\n[protect]\nstages = [\"check?\"]\ntargets = [\"prod*\"]\n",
        );
        let protected: Vec<&str> = p
            .stages
            .iter()
            .filter(|s| policy.is_protected(&p, s))
            .map(|s| s.name.as_str())
            .collect();
        // `checks` by name, `eu` by its target's group, `final` by its own mark.
        assert_eq!(protected, ["checks", "eu", "final"]);
    }

    #[test]
    fn a_protected_target_is_matched_by_its_own_name_too() {
        let p = pipeline();
        let policy = policy("[policy]\nname = \"p\"\n[protect]\ntargets = [\"canary-*\"]\n");
        let canary = &p.stages[2];
        assert!(policy.is_protected(&p, canary));
        assert!(!policy.is_protected(&p, &p.stages[3]));
    }

    #[test]
    fn stage_kinds_are_inferred_and_named_by_the_policy() {
        let p = pipeline();
        let expected = |extra: &[(&str, &[&str])]| -> Vec<(String, Vec<String>)> {
            extra
                .iter()
                .map(|(s, k)| (s.to_string(), k.iter().map(|k| k.to_string()).collect()))
                .collect()
        };
        assert_eq!(
            kinds(None, &p),
            expected(&[
                ("compile", &["build"]),
                ("checks", &["test"]),
                ("canary", &["deploy"]),
                ("eu", &["deploy"]),
                ("final", &["production"]),
            ])
        );
        let policy = policy(
            "[policy]\nname = \"p\"\n[protect]\ntargets = [\"prod-*\"]\n[kinds]\nverify = [\"check*\", \"canary\"]\nbuild = [\"compile\"]\n",
        );
        assert_eq!(
            kinds(Some(&policy), &p),
            expected(&[
                ("compile", &["build"]),
                ("checks", &["test", "verify"]),
                ("canary", &["deploy", "verify"]),
                ("eu", &["deploy", "production"]),
                ("final", &["production"]),
            ])
        );
    }
}
