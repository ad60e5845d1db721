//! The pipeline model: a pipeline as the JSON document custom checks receive (and
//! `sluice policy report --format json` embeds). Its shape is versioned
//! (`model-version`) and documented in docs/policy/model.md, with a JSON Schema in
//! docs/policy/model.schema.json that every example pipeline's model is tested
//! against.
//!
//! The model says what the pipeline file says, resolved the way the runner resolves
//! it: stages in order with their kinds and whether they are protected (by the
//! policy, when there is one), gates with their settings, bakes, steps with their
//! plugin (`uses` as written, its policy name and digest), `with`, grants and limits,
//! monitors, targets and denylists. Durations are whole seconds; paths beneath the
//! pipeline's folder are relative to it. It never holds a secret's value (only names).
//! A field is added, never renamed or removed, within one `model-version`.

use std::path::Path;

use serde_json::{Value, json};

use super::Policy;
use crate::config::{GateSpec, Grants, Pipeline, PluginRef, Stage, Step};
use crate::gates::spec::GateKind;

/// The version of the model's shape; a check may refuse a version it does not know.
pub const MODEL_VERSION: u64 = 1;

/// The model of `pipeline`, with kinds and protection as `policy` decides them
/// (without one: inferred kinds and `protected = true` only).
pub fn model(pipeline: &Pipeline, policy: Option<&Policy>) -> Value {
    let base = pipeline.dir.as_path();
    let stages: Vec<Value> = pipeline
        .stages
        .iter()
        .enumerate()
        .map(|(index, stage)| stage_model(pipeline, policy, index, stage))
        .collect();
    let monitors: Vec<Value> = pipeline
        .monitors
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "uses": m.uses.as_ref().map(|u| u.to_string()),
                "policy-name": m.uses.as_ref().map(|u| u.policy_name(base)),
                "with": m.with,
                "interval-seconds": m.interval.as_secs(),
                "timeout-seconds": m.timeout.as_secs(),
                "alarm": {
                    "evaluation-periods": m.evaluation_periods,
                    "datapoints-to-alarm": m.datapoints_to_alarm,
                    "missing-data": m.missing.as_str(),
                },
                "grants": grants_model(&m.grants, base),
            })
        })
        .collect();
    let targets: Vec<Value> = pipeline
        .targets
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "group": t.group,
                "kind": t.kind.as_str(),
            })
        })
        .collect();
    json!({
        "model-version": MODEL_VERSION,
        "pipeline": {
            "name": pipeline.name,
            "file": shown_path(&pipeline.source.path, base),
        },
        "policy": policy.map(|p| json!({
            "name": p.name,
            "version": p.version,
            "digest": p.digest,
        })),
        "stages": stages,
        "monitors": monitors,
        "targets": targets,
        "denylists": pipeline
            .denylists
            .iter()
            .map(|d| shown_path(d, base))
            .collect::<Vec<_>>(),
    })
}

fn stage_model(pipeline: &Pipeline, policy: Option<&Policy>, index: usize, stage: &Stage) -> Value {
    let base = pipeline.dir.as_path();
    let protected = match policy {
        Some(p) => p.is_protected(pipeline, stage),
        None => stage.protected,
    };
    let mut kinds = super::protect::stage_kinds(policy, pipeline, stage);
    if protected && !kinds.iter().any(|k| k == "production") {
        kinds.push("production".into());
    }
    json!({
        "name": stage.name,
        "index": index,
        "kinds": kinds,
        "protected": protected,
        "line": stage.pos.line,
        "gates": stage.gates.iter().map(gate_model).collect::<Vec<_>>(),
        "bake": stage.bake.as_ref().map(|b| json!({
            "duration-seconds": b.duration.as_secs(),
            "positive": b.positive,
            "monitors": b.monitors,
            "timeout-seconds": b.timeout.map(|t| t.as_secs()),
        })),
        "steps": stage.steps.iter().map(|s| step_model(s, base)).collect::<Vec<_>>(),
    })
}

fn gate_model(gate: &GateSpec) -> Value {
    let settings = match &gate.kind {
        GateKind::Approval(a) => json!({ "required": a.required }),
        GateKind::Window(w) => json!({
            "timezone": w.zone_name,
            "periods": w.periods.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "blackout": w.blackout.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }),
        GateKind::Alarms(a) => json!({ "alarms": a.alarms }),
    };
    json!({
        "id": gate.id,
        "kind": gate.kind_name(),
        "settings": settings,
    })
}

fn step_model(step: &Step, base: &Path) -> Value {
    json!({
        "id": step.id,
        "uses": step.uses_display(),
        "policy-name": step.uses.policy_name(base),
        "digest": digest_of(&step.uses),
        "with": step.with,
        "needs": step.needs,
        "allow-failure": step.allow_failure,
        "retries": step.retries,
        "timeout-seconds": step.timeout.as_secs(),
        "memory-bytes": step.memory,
        "grants": grants_model(&step.grants, base),
    })
}

fn grants_model(grants: &Grants, base: &Path) -> Value {
    json!({
        "read": grants.read.iter().map(|p| shown_path(p, base)).collect::<Vec<_>>(),
        "write": grants.write.iter().map(|p| shown_path(p, base)).collect::<Vec<_>>(),
        "exec": grants.exec,
        "net": grants.net.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "env": grants.env,
        "secrets": grants.secrets.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        "targets": grants.targets,
        "toolchains": grants
            .toolchains
            .iter()
            .map(|t| t.toolchain.name())
            .collect::<Vec<_>>(),
    })
}

/// `sha256:<hex>` of the plugin when it can be known without loading it: a built-in's
/// embedded bytes, a file's bytes, an OCI plugin's resolved digest. `None` for a file
/// that cannot be read or an OCI plugin not yet pulled.
fn digest_of(uses: &PluginRef) -> Option<String> {
    match uses {
        PluginRef::Builtin(name) => {
            crate::builtins::find(name).map(crate::host::cache::sha256_digest)
        }
        PluginRef::File(path) => {
            let meta = std::fs::metadata(path).ok()?;
            if !meta.is_file() || meta.len() > crate::limits::MAX_COMPONENT_BYTES {
                return None;
            }
            std::fs::read(path)
                .ok()
                .map(|b| crate::host::cache::sha256_digest(&b))
        }
        PluginRef::Oci(r) => r.digest.clone(),
    }
}

/// A path as the model shows it: relative to the pipeline's folder when beneath it.
fn shown_path(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .map(|p| {
            if p.as_os_str().is_empty() {
                ".".into()
            } else {
                p.display().to_string()
            }
        })
        .unwrap_or_else(|_| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(text: &str) -> (tempfile::TempDir, Pipeline) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, text).unwrap();
        let pipeline = crate::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        (dir, pipeline)
    }

    #[test]
    fn the_model_lists_stages_gates_bakes_and_steps_in_order() {
        let (_dir, p) = pipeline(
            r#"
[pipeline]
name = "shop"

[[monitor]]
id = "health"
uses = "builtin:http-check"
with = { url = "http://127.0.0.1:9/health" }
interval = "30s"
grants = { net = ["127.0.0.1:9"] }

[[stage]]
name = "build"
[[stage.step]]
id = "compile"
uses = "builtin:command"
with = { run = ["true"] }
allow-failure = true
retries = 2
grants = { exec = ["true"], read = ["."] }

[[stage]]
name = "prod"
protected = true
[stage.gates.approve]
kind = "approval"
required = 2
[stage.gates.alarms]
kind = "alarms"
alarms = ["health"]
[stage.bake]
duration = "1h"
positive = 3
monitors = ["health"]
[[stage.step]]
id = "ship"
uses = "builtin:command"
with = { run = ["true"] }
grants = { exec = ["true"] }
"#,
        );
        let m = model(&p, None);
        assert_eq!(m["model-version"], 1);
        assert_eq!(m["pipeline"]["name"], "shop");
        assert_eq!(m["pipeline"]["file"], "sluice.toml");
        let stages = m["stages"].as_array().unwrap();
        assert_eq!(stages.len(), 2);
        assert_eq!(stages[0]["name"], "build");
        assert_eq!(stages[0]["index"], 0);
        assert_eq!(stages[0]["protected"], false);
        let step = &stages[0]["steps"][0];
        assert_eq!(step["id"], "compile");
        assert_eq!(step["uses"], "builtin:command");
        assert_eq!(step["policy-name"], "builtin:command");
        assert!(step["digest"].as_str().unwrap().starts_with("sha256:"));
        assert_eq!(step["allow-failure"], true);
        assert_eq!(step["retries"], 2);
        assert_eq!(step["grants"]["exec"], json!(["true"]));
        assert_eq!(step["grants"]["read"], json!(["."]));
        assert_eq!(stages[1]["protected"], true);
        assert!(
            stages[1]["kinds"]
                .as_array()
                .unwrap()
                .contains(&json!("production"))
        );
        assert_eq!(stages[1]["gates"][0]["id"], "approve");
        assert_eq!(stages[1]["gates"][0]["kind"], "approval");
        assert_eq!(stages[1]["gates"][0]["settings"]["required"], 2);
        assert_eq!(
            stages[1]["gates"][1]["settings"]["alarms"],
            json!(["health"])
        );
        assert_eq!(stages[1]["bake"]["duration-seconds"], 3600);
        assert_eq!(stages[1]["bake"]["positive"], 3);
        assert_eq!(m["monitors"][0]["id"], "health");
        assert_eq!(m["monitors"][0]["interval-seconds"], 30);
        assert_eq!(m["monitors"][0]["grants"]["net"], json!(["127.0.0.1:9"]));
        assert_eq!(m["policy"], Value::Null);
    }

    #[test]
    fn every_example_pipelines_model_fits_the_documented_schema() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let schema: Value = serde_json::from_str(
            &std::fs::read_to_string(root.join("docs/policy/model.schema.json")).unwrap(),
        )
        .unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let mut checked = 0;
        let mut stack = vec![root.join("examples")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "toml")
                    && std::fs::read_to_string(&path)
                        .is_ok_and(|t| t.lines().any(|l| l.trim() == "[[stage]]"))
                {
                    let Ok(pipeline) = crate::config::load(&path) else {
                        continue;
                    };
                    let m = model(&pipeline, None);
                    let errors: Vec<String> = validator
                        .iter_errors(&m)
                        .map(|e| format!("{}: {e}", e.instance_path()))
                        .collect();
                    assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
                    checked += 1;
                }
            }
        }
        assert!(checked >= 5, "only {checked} example pipelines checked");
    }
}
