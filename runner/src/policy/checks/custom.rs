//! Custom organisation checks: components of the `policy-check` world, given the
//! pipeline model ([`crate::policy::model`]) as JSON and their `with` config, returning
//! violations. A platform team writes them in any language the author kit supports.
//!
//! [`run`] loads the check's component through [`crate::host::policy_check`], checks
//! the `[[check]]`'s `with` against the schema the check's `describe()` returns, calls
//! `check`, and places each violation at its stage (or step) in `sluice.toml`.
//! Whatever goes wrong (the file is missing, the component is of another world, it
//! traps, times out, returns `err` or malformed output, `with` does not fit its
//! schema) comes back as the result's `error`, naming the policy file's `[[check]]`
//! and the plugin: a check that cannot run never crashes the runner.

use super::{CheckResult, SourcePosShown, Violation};
use crate::config::{PathSegment, Pipeline};
use crate::host::plugin::PluginHost;
use crate::policy::{CheckKind, CheckSpec, Policy};

/// Run one custom check (`CheckKind::Custom`) over the pipeline: load its component
/// (world `policy-check`), give it the model and its `with`, collect its violations.
/// A check that fails to load or run comes back with `error` set, never a panic.
pub async fn run(
    check: &CheckSpec,
    policy: &Policy,
    pipeline: &Pipeline,
    host: &PluginHost,
) -> CheckResult {
    let failed = |error: String| CheckResult {
        check: check.id.clone(),
        violations: Vec::new(),
        error: Some(error),
    };
    let at = format!(
        "{}:{}:{}: [[check]] `{}`",
        check.pos.file.display(),
        check.pos.line,
        check.pos.column,
        check.id
    );
    let CheckKind::Custom { uses, with } = &check.kind else {
        return failed(format!("{at}: is a built-in check, not a plugin"));
    };
    // An `oci://` check is pulled like a step's plugin: by its `@sha256:` when it
    // names one (no network on a cache hit), else by its tag now.
    let mut uses = uses.clone();
    if let Err(e) = crate::registry::resolve_plugin(&mut uses, None).await {
        return failed(format!("{at}: {e}"));
    }
    let uses = &uses;
    let loaded = match crate::host::policy_check::load_check(host, uses).await {
        Ok(loaded) => loaded,
        Err(e) => return failed(format!("{at}: {e}")),
    };
    let config_errors: Vec<String> = loaded
        .validator()
        .iter_errors(with)
        .map(|err| {
            let path = err.instance_path().to_string();
            let key = if path.is_empty() {
                "with".to_string()
            } else {
                format!("with{}", path.replace('/', "."))
            };
            format!("`{key}`: {err}")
        })
        .collect();
    if !config_errors.is_empty() {
        return failed(format!(
            "{at} ({uses}): its `with` does not fit the check's schema: {}",
            config_errors.join("; ")
        ));
    }
    let model = crate::policy::model::model(pipeline, Some(policy));
    let model_text = model.to_string();
    let config_text = with.to_string();
    match loaded.check(&model_text, &config_text).await {
        Err(e) => failed(format!("{at}: {e}")),
        Ok(found) => {
            let mut violations = Vec::with_capacity(found.len());
            for v in found {
                match place(pipeline, v.stage.as_deref(), v.step.as_deref()) {
                    Ok(at_pos) => violations.push(Violation {
                        message: v.message,
                        stage: v.stage,
                        step: v.step,
                        at: at_pos,
                    }),
                    Err(reason) => {
                        return failed(format!(
                            "{at}: check plugin {uses} returned malformed output: {reason}"
                        ));
                    }
                }
            }
            CheckResult {
                check: check.id.clone(),
                violations,
                error: None,
            }
        }
    }
}

/// Where a violation lies in `sluice.toml`: the step's `uses`, else the stage's
/// `name`, else nowhere in particular. A stage or step the pipeline does not have is
/// malformed output.
fn place(
    pipeline: &Pipeline,
    stage: Option<&str>,
    step: Option<&str>,
) -> Result<Option<SourcePosShown>, String> {
    let Some(stage_name) = stage else {
        if let Some(step) = step {
            return Err(format!("a violation names step `{step}` but no stage"));
        }
        return Ok(None);
    };
    let Some(found) = pipeline.stages.iter().find(|s| s.name == stage_name) else {
        return Err(format!(
            "a violation names stage `{stage_name}`, which pipeline `{}` does not have",
            pipeline.name
        ));
    };
    let Some(step_id) = step else {
        return Ok(Some(SourcePosShown::from(&found.pos)));
    };
    let Some(s) = found.steps.iter().find(|s| s.id == step_id) else {
        return Err(format!(
            "a violation names step `{step_id}`, which stage `{stage_name}` does not have"
        ));
    };
    let pos = pipeline
        .source
        .span_of(&s.key_path(&[PathSegment::Key("uses".into())]))
        .map(|span| pipeline.source.pos(span.start))
        .unwrap_or_else(|| found.pos.clone());
    Ok(Some(SourcePosShown::from(&pos)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authoring::toolkit::{ContractWorld, componentize_bytes, contract};
    use crate::config::{PluginRef, SourceFile};
    use crate::host::engine::EngineProfile;
    use crate::policy::{Blocks, PolicyRef, Protection};

    const PIPELINE: &str = r#"
[pipeline]
name = "shop"

[[stage]]
name = "prod"
protected = true
[[stage.step]]
id = "ship"
uses = "builtin:command"
with = { run = ["true"] }
grants = { exec = ["true"] }
"#;

    /// A policy with one custom check using `uses`, and the pipeline above, in `dir`.
    fn setup(dir: &std::path::Path, uses: PluginRef) -> (CheckSpec, Policy, Pipeline) {
        let path = dir.join("sluice.toml");
        std::fs::write(&path, PIPELINE).unwrap();
        let pipeline = crate::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let policy_path = dir.join("policy.toml");
        let text = "[policy]\nname = \"acme\"\n\n[[check]]\nid = \"custom\"\n".to_string();
        let source = SourceFile {
            path: policy_path.clone(),
            text,
        };
        let check = CheckSpec {
            id: "custom".into(),
            kind: CheckKind::Custom {
                uses,
                with: serde_json::json!({}),
            },
            message: "a custom rule".into(),
            warn_from: None,
            enforce_from: None,
            blocks: Blocks::Run,
            pos: source.pos(24),
        };
        let policy = Policy {
            name: "acme".into(),
            version: None,
            source,
            origin: PolicyRef::File(policy_path),
            digest: "sha256:0".into(),
            tiers: vec!["org".into()],
            protect: Protection::default(),
            kinds: Vec::new(),
            plugins: Vec::new(),
            keys: Vec::new(),
            ceilings: Vec::new(),
            checks: vec![check.clone()],
            exemptions: Vec::new(),
        };
        (check, policy, pipeline)
    }

    fn host() -> PluginHost {
        PluginHost::new(EngineProfile::for_jobs(1), None).unwrap()
    }

    /// A component of the `policy-check` world whose every function traps
    /// (`unreachable`): what wit-component's dummy module does.
    fn trapping_check() -> Vec<u8> {
        let contract = contract().unwrap();
        let id = contract.world(ContractWorld::PolicyCheck).unwrap();
        let module = wit_component::dummy_module(
            &contract.resolve,
            id,
            wit_parser::ManglingAndAbi::Legacy(wit_parser::LiftLowerAbi::Sync),
        );
        componentize_bytes(module, ContractWorld::PolicyCheck)
            .unwrap()
            .0
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_trapping_check_is_a_failed_result_naming_the_policy_and_the_plugin() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("trap.wasm");
        std::fs::write(&wasm, trapping_check()).unwrap();
        let (check, policy, pipeline) = setup(dir.path(), PluginRef::File(wasm.clone()));
        let result = run(&check, &policy, &pipeline, &host()).await;
        assert!(result.violations.is_empty());
        let error = result.error.expect("a trapping check fails");
        assert!(
            error.contains("policy.toml:4:1: [[check]] `custom`"),
            "{error}"
        );
        assert!(error.contains(&wasm.display().to_string()), "{error}");
        assert!(error.contains("describe()"), "{error}");
        assert!(error.contains("trapped"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_step_plugin_given_as_a_check_is_refused_naming_its_world() {
        let dir = tempfile::tempdir().unwrap();
        let (check, policy, pipeline) = setup(dir.path(), PluginRef::Builtin("command".into()));
        let result = run(&check, &policy, &pipeline, &host()).await;
        let error = result.error.expect("a step is not a check");
        assert!(error.contains("is a step plugin (world `step`"), "{error}");
        assert!(error.contains("`policy-check` world"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_missing_check_file_is_a_failed_result_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let (check, policy, pipeline) =
            setup(dir.path(), PluginRef::File(dir.path().join("nope.wasm")));
        let result = run(&check, &policy, &pipeline, &host()).await;
        let error = result.error.expect("a missing file fails");
        assert!(error.contains("nope.wasm"), "{error}");
    }

    #[test]
    fn violations_are_placed_at_their_stage_or_step_and_unknown_places_are_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, pipeline) = setup(dir.path(), PluginRef::Builtin("command".into()));
        let stage = place(&pipeline, Some("prod"), None).unwrap().unwrap();
        assert_eq!((stage.line, stage.column), (6, 8));
        let step = place(&pipeline, Some("prod"), Some("ship"))
            .unwrap()
            .unwrap();
        assert_eq!(step.line, 10);
        assert_eq!(place(&pipeline, None, None).unwrap(), None);
        assert!(
            place(&pipeline, Some("qa"), None)
                .unwrap_err()
                .contains("`qa`")
        );
        assert!(
            place(&pipeline, Some("prod"), Some("x"))
                .unwrap_err()
                .contains("`x`")
        );
        assert!(place(&pipeline, None, Some("ship")).is_err());
    }
}
