//! The built-in organisation checks: production stages bake at least T with N data
//! points, alarms on every deploy stage, a security scan before the first production
//! stage, waves that start with one box, minimum healthy hosts at least P%, no
//! `allow-failure` in test stages, a time window on production.
//!
//! Each check reads the typed pipeline (stages, gates, bakes, steps' `uses`/`with`/
//! `grants`, targets) and the policy's view of it (which stages are protected, each
//! stage's kinds: [`crate::policy::protect`]), and returns its violations, each at its
//! place in `sluice.toml` and saying what is wrong in numbers. [`check_with`] checks a
//! check's `with` table when the policy file is read.

use std::time::Duration;

use serde_json::Value;

use super::{SourcePosShown, Violation};
use crate::config::{PathSegment, Pipeline, PluginRef, Stage, Step};
use crate::gates::GateKind;
use crate::policy::{Pattern, Policy, protect};

/// `production-bake`: every production stage bakes at least `duration` with at least
/// `positive` positive data points.
pub const PRODUCTION_BAKE: &str = "production-bake";
/// `deploy-alarms`: every deploy stage, or the stage after it, has an alarms gate.
pub const DEPLOY_ALARMS: &str = "deploy-alarms";
/// `scan-before-production`: a security scan runs in a stage before the first
/// production stage.
pub const SCAN_BEFORE_PRODUCTION: &str = "scan-before-production";
/// `one-box-first`: every deploy's first wave is one target.
pub const ONE_BOX_FIRST: &str = "one-box-first";
/// `minimum-healthy-hosts`: every deploy keeps at least `percent`% of its fleet healthy.
pub const MINIMUM_HEALTHY_HOSTS: &str = "minimum-healthy-hosts";
/// `no-allow-failure-in-tests`: no step of a test stage has `allow-failure = true`.
pub const NO_ALLOW_FAILURE_IN_TESTS: &str = "no-allow-failure-in-tests";
/// `production-window`: every production stage has a window gate.
pub const PRODUCTION_WINDOW: &str = "production-window";

/// The names of the built-in checks, as `builtin = "..."` spells them.
pub const NAMES: &[&str] = &[
    PRODUCTION_BAKE,
    DEPLOY_ALARMS,
    SCAN_BEFORE_PRODUCTION,
    ONE_BOX_FIRST,
    MINIMUM_HEALTHY_HOSTS,
    NO_ALLOW_FAILURE_IN_TESTS,
    PRODUCTION_WINDOW,
];

/// The plugin a deploy step uses, whose `with` one-box-first and minimum-healthy-hosts
/// read.
const DEPLOY_PLUGIN: &str = "deploy";
/// The plugin that counts as a security scan for scan-before-production.
const SCAN_PLUGIN: &str = "builtin:security-scan";

/// The keys of each check's `with` table: (key, what it takes, required).
fn with_keys(name: &str) -> Option<&'static [(&'static str, &'static str, bool)]> {
    Some(match name {
        PRODUCTION_BAKE => &[
            ("duration", "a duration such as \"1h\" or \"30m\"", true),
            ("positive", "a whole number of positive data points", false),
        ],
        SCAN_BEFORE_PRODUCTION => &[(
            "plugins",
            "a list of plugin names or patterns (e.g. [\"oci://registry.example/sec/*\"])",
            false,
        )],
        MINIMUM_HEALTHY_HOSTS => &[("percent", "a whole number from 0 to 100", true)],
        DEPLOY_ALARMS | ONE_BOX_FIRST | NO_ALLOW_FAILURE_IN_TESTS | PRODUCTION_WINDOW => &[],
        _ => return None,
    })
}

/// Check a built-in check's `with` table (as JSON; `null` when absent): the name must
/// be one of [`NAMES`], and its keys known and of the right type. The error says what
/// is wrong, with a "did you mean" for a mistyped name or key.
pub fn check_with(name: &str, with: &Value) -> Result<(), String> {
    let Some(keys) = with_keys(name) else {
        let mut message = format!(
            "no built-in check `{name}`; the built-in checks are {}",
            NAMES.join(", ")
        );
        if let Some(meant) = crate::suggest::closest(name, NAMES.iter().copied()) {
            message.push_str(&format!("; did you mean `{meant}`?"));
        }
        return Err(message);
    };
    let empty = serde_json::Map::new();
    let table = match with {
        Value::Null => &empty,
        Value::Object(map) => map,
        other => {
            return Err(format!(
                "`with` of check `{name}` must be a table, not {other}"
            ));
        }
    };
    for key in table.keys() {
        if !keys.iter().any(|(k, _, _)| k == key) {
            let mut message = if keys.is_empty() {
                format!("check `{name}` takes no `with` keys; `{key}` is not one")
            } else {
                format!(
                    "check `{name}` has no `with` key `{key}`; its keys are {}",
                    keys.iter()
                        .map(|(k, _, _)| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            if let Some(meant) = crate::suggest::closest(key, keys.iter().map(|(k, _, _)| *k)) {
                message.push_str(&format!("; did you mean `{meant}`?"));
            }
            return Err(message);
        }
    }
    for (key, what, required) in keys {
        if *required && !table.contains_key(*key) {
            return Err(format!("check `{name}` needs `with.{key}`: {what}"));
        }
    }
    match name {
        PRODUCTION_BAKE => {
            BakeAsked::read(table)?;
        }
        MINIMUM_HEALTHY_HOSTS => {
            percent_asked(table)?;
        }
        SCAN_BEFORE_PRODUCTION => {
            scanners_named(table)?;
        }
        _ => {}
    }
    Ok(())
}

/// Run the built-in check `name` with its `with` table over the pipeline; `Err` when
/// `with` is not valid for it (the policy parser reports that earlier).
pub fn run(
    name: &str,
    with: &Value,
    policy: &Policy,
    pipeline: &Pipeline,
) -> Result<Vec<Violation>, String> {
    check_with(name, with)?;
    let empty = serde_json::Map::new();
    let table = with.as_object().unwrap_or(&empty);
    let view = View::new(policy, pipeline);
    Ok(match name {
        PRODUCTION_BAKE => production_bake(&view, &BakeAsked::read(table)?),
        DEPLOY_ALARMS => deploy_alarms(&view),
        SCAN_BEFORE_PRODUCTION => scan_before_production(&view, &scanners_named(table)?),
        ONE_BOX_FIRST => one_box_first(&view),
        MINIMUM_HEALTHY_HOSTS => minimum_healthy_hosts(&view, percent_asked(table)?),
        NO_ALLOW_FAILURE_IN_TESTS => no_allow_failure_in_tests(&view),
        PRODUCTION_WINDOW => production_window(&view),
        _ => unreachable!("check_with accepted only the names of NAMES"),
    })
}

/// The pipeline as the checks see it: each stage with its kinds and protection.
struct View<'a> {
    pipeline: &'a Pipeline,
    kinds: Vec<Vec<String>>,
}

impl<'a> View<'a> {
    fn new(policy: &'a Policy, pipeline: &'a Pipeline) -> Self {
        let kinds = pipeline
            .stages
            .iter()
            .map(|stage| {
                let mut kinds = protect::stage_kinds(Some(policy), pipeline, stage);
                if policy.is_protected(pipeline, stage) && !kinds.iter().any(|k| k == "production")
                {
                    kinds.push("production".into());
                }
                kinds
            })
            .collect();
        View { pipeline, kinds }
    }

    fn is(&self, index: usize, kind: &str) -> bool {
        self.kinds[index].iter().any(|k| k == kind)
    }

    /// The stages of a kind, with their index.
    fn stages_of(&self, kind: &'a str) -> impl Iterator<Item = (usize, &'a Stage)> + '_ {
        self.pipeline
            .stages
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.is(*i, kind))
    }

    /// The deploy steps (`builtin:deploy`) of every stage.
    fn deploy_steps(&self) -> impl Iterator<Item = (&'a Stage, &'a Step)> + '_ {
        self.pipeline.stages.iter().flat_map(|stage| {
            stage
                .steps
                .iter()
                .filter(|step| matches!(&step.uses, PluginRef::Builtin(n) if n == DEPLOY_PLUGIN))
                .map(move |step| (stage, step))
        })
    }

    fn stage_violation(&self, stage: &Stage, message: String) -> Violation {
        Violation {
            message,
            stage: Some(stage.name.clone()),
            step: None,
            at: Some(SourcePosShown::from(&stage.pos)),
        }
    }

    /// A violation at a key of a step (`uses` when `keys` is empty).
    fn step_violation(
        &self,
        stage: &Stage,
        step: &Step,
        keys: &[&str],
        message: String,
    ) -> Violation {
        let keys: Vec<PathSegment> = if keys.is_empty() {
            vec![PathSegment::Key("uses".into())]
        } else {
            keys.iter().map(|k| PathSegment::Key((*k).into())).collect()
        };
        let pos = self
            .pipeline
            .source
            .span_of(&step.key_path(&keys))
            .map_or_else(
                || stage.pos.clone(),
                |span| self.pipeline.source.pos(span.start),
            );
        Violation {
            message,
            stage: Some(stage.name.clone()),
            step: Some(step.id.clone()),
            at: Some(SourcePosShown::from(&pos)),
        }
    }
}

/// `production-bake`'s `with`: the least bake a production stage may have.
struct BakeAsked {
    duration: Duration,
    duration_text: String,
    positive: u64,
}

impl BakeAsked {
    fn read(table: &serde_json::Map<String, Value>) -> Result<Self, String> {
        let duration_text = match table.get("duration") {
            Some(Value::String(s)) => s.trim().to_string(),
            Some(other) => {
                return Err(format!(
                    "`with.duration` must be a duration such as \"1h\", not {other}"
                ));
            }
            None => return Err("check `production-bake` needs `with.duration`".into()),
        };
        let duration = humantime::parse_duration(&duration_text).map_err(|e| {
            format!("`with.duration` = \"{duration_text}\" is not a duration ({e}); write e.g. \"1h\" or \"30m\"")
        })?;
        let positive = match table.get("positive") {
            None => 1,
            Some(v) => v.as_u64().ok_or_else(|| {
                format!("`with.positive` must be a whole number of data points, not {v}")
            })?,
        };
        Ok(BakeAsked {
            duration,
            duration_text,
            positive,
        })
    }
}

fn percent_asked(table: &serde_json::Map<String, Value>) -> Result<u64, String> {
    match table.get("percent") {
        Some(v) => match v.as_u64() {
            Some(p) if p <= 100 => Ok(p),
            _ => Err(format!(
                "`with.percent` must be a whole number from 0 to 100, not {v}"
            )),
        },
        None => Err("check `minimum-healthy-hosts` needs `with.percent`".into()),
    }
}

/// `scan-before-production`'s `with.plugins`: what counts as a scan besides
/// `builtin:security-scan`.
fn scanners_named(table: &serde_json::Map<String, Value>) -> Result<Vec<Pattern>, String> {
    match table.get("plugins") {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(Pattern(s.clone())),
                other => Err(format!(
                    "`with.plugins` lists plugin names (strings), not {other}"
                )),
            })
            .collect(),
        Some(other) => Err(format!(
            "`with.plugins` must be a list of plugin names, not {other}"
        )),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string().replace(' ', "")
}

fn production_bake(view: &View<'_>, asked: &BakeAsked) -> Vec<Violation> {
    let wanted = format!(
        "at least {} with {}",
        asked.duration_text,
        plural(
            asked.positive,
            "positive data point",
            "positive data points"
        )
    );
    view.stages_of("production")
        .filter_map(|(_, stage)| match &stage.bake {
            None => Some(view.stage_violation(
                stage,
                format!(
                    "production stage `{}` has no bake; the policy asks for {wanted} ([stage.bake] duration, positive)",
                    stage.name
                ),
            )),
            Some(bake) if bake.duration < asked.duration || bake.positive < asked.positive => {
                let mut v = view.stage_violation(
                    stage,
                    format!(
                        "stage `{}` bakes {} with {}; the policy asks for at least {} and {}",
                        stage.name,
                        human(bake.duration),
                        plural(bake.positive, "positive data point", "positive data points"),
                        asked.duration_text,
                        asked.positive
                    ),
                );
                v.at = Some(SourcePosShown::from(&bake.pos));
                Some(v)
            }
            Some(_) => None,
        })
        .collect()
}

fn has_alarms_gate(stage: &Stage) -> bool {
    stage
        .gates
        .iter()
        .any(|g| matches!(g.kind, GateKind::Alarms(_)))
}

fn deploy_alarms(view: &View<'_>) -> Vec<Violation> {
    let stages = &view.pipeline.stages;
    view.stages_of("deploy")
        .filter(|(i, stage)| {
            !has_alarms_gate(stage) && !stages.get(i + 1).is_some_and(has_alarms_gate)
        })
        .map(|(i, stage)| {
            let next = match stages.get(i + 1) {
                Some(next) => format!("nor has the stage after it (`{}`)", next.name),
                None => "and no stage follows it".to_string(),
            };
            view.stage_violation(
                stage,
                format!(
                    "deploy stage `{}` has no alarms gate, {next}; add `[stage.gates.alarms]` with `alarms = [...]` naming the monitors that watch this deploy",
                    stage.name
                ),
            )
        })
        .collect()
}

fn scan_before_production(view: &View<'_>, scanners: &[Pattern]) -> Vec<Violation> {
    let Some((first, production)) = view.stages_of("production").next() else {
        return Vec::new();
    };
    let is_scan = |step: &Step| {
        let name = step.uses.policy_name(&view.pipeline.dir);
        name == SCAN_PLUGIN || scanners.iter().any(|p| p.matches(&name))
    };
    let scanned = view.pipeline.stages[..first]
        .iter()
        .any(|stage| stage.steps.iter().any(is_scan));
    if scanned {
        return Vec::new();
    }
    let counted = std::iter::once(SCAN_PLUGIN.to_string())
        .chain(scanners.iter().map(|p| p.0.clone()))
        .collect::<Vec<_>>()
        .join(", ");
    vec![view.stage_violation(
        production,
        format!(
            "no security scan runs before the first production stage `{}` (stage {} of {}); add a step using {counted} to an earlier stage",
            production.name,
            first + 1,
            view.pipeline.stages.len()
        ),
    )]
}

/// The targets a deploy step is granted, in the pipeline's order: those named, or in
/// a group named, by its `targets` grant.
fn granted_targets<'a>(pipeline: &'a Pipeline, step: &Step) -> Vec<&'a crate::targets::TargetSpec> {
    pipeline
        .targets
        .iter()
        .filter(|t| {
            step.grants
                .targets
                .iter()
                .any(|g| *g == t.name || *g == t.group)
        })
        .collect()
}

fn one_box_first(view: &View<'_>) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (stage, step) in view.deploy_steps() {
        let granted = granted_targets(view.pipeline, step);
        let Some(first_group) = (match step.with.get("waves").and_then(Value::as_array) {
            Some(waves) => waves.first().and_then(Value::as_str).map(str::to_string),
            None => granted.first().map(|t| t.group.clone()),
        }) else {
            continue;
        };
        let first: Vec<&str> = granted
            .iter()
            .filter(|t| t.group == first_group)
            .map(|t| t.name.as_str())
            .collect();
        if first.len() > 1 {
            let keys: &[&str] = if step.with.get("waves").is_some() {
                &["with", "waves"]
            } else {
                &["grants", "targets"]
            };
            violations.push(view.step_violation(
                stage,
                step,
                keys,
                format!(
                    "step `{}` of stage `{}` deploys its first wave `{first_group}` to {} targets ({}); the policy asks for a first wave of one target (a one-box group first in `waves`)",
                    step.id,
                    stage.name,
                    first.len(),
                    first.join(", ")
                ),
            ));
        }
    }
    violations
}

/// The least share of the fleet a deploy keeps healthy, in percent, and how the deploy
/// configuration says so. CodeDeploy's named configurations count as their documented
/// minimums (OneAtATime 99%, HalfAtATime 50%, AllAtOnce 0%); `HOST_COUNT` is taken
/// over the granted targets.
fn healthy_percent(step: &Step, fleet: usize) -> Result<(u64, String), String> {
    let config = step.with.get("config");
    let named = |s: &str| match s.strip_prefix("CodeDeployDefault.").unwrap_or(s) {
        "OneAtATime" => Some(99),
        "HalfAtATime" => Some(50),
        "AllAtOnce" => Some(0),
        _ => None,
    };
    match config {
        None => Ok((99, "OneAtATime, the default".into())),
        Some(Value::String(s)) => named(s)
            .map(|p| (p, s.clone()))
            .ok_or_else(|| format!("unknown deploy config `{s}`")),
        Some(Value::Object(map)) => {
            let minimum = map
                .get("minimum-healthy-hosts")
                .ok_or("config has no minimum-healthy-hosts")?;
            let kind = minimum.get("type").and_then(Value::as_str).unwrap_or("");
            let value = minimum.get("value").and_then(Value::as_u64).unwrap_or(0);
            match kind {
                "FLEET_PERCENT" => Ok((value, format!("FLEET_PERCENT {value}"))),
                "HOST_COUNT" if fleet > 0 => Ok((
                    value.saturating_mul(100) / fleet as u64,
                    format!("HOST_COUNT {value} of {fleet} targets"),
                )),
                "HOST_COUNT" => Err("HOST_COUNT with no granted targets".into()),
                other => Err(format!("unknown minimum-healthy-hosts type `{other}`")),
            }
        }
        Some(other) => Err(format!("config is {other}")),
    }
}

fn minimum_healthy_hosts(view: &View<'_>, percent: u64) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (stage, step) in view.deploy_steps() {
        let fleet = granted_targets(view.pipeline, step).len();
        let keys: &[&str] = if step.with.get("config").is_some() {
            &["with", "config"]
        } else {
            &[]
        };
        match healthy_percent(step, fleet) {
            Ok((kept, how)) if kept < percent => violations.push(view.step_violation(
                stage,
                step,
                keys,
                format!(
                    "step `{}` of stage `{}` keeps at least {kept}% of its targets healthy ({how}); the policy asks for at least {percent}%",
                    step.id, stage.name
                ),
            )),
            Ok(_) => {}
            Err(why) => violations.push(view.step_violation(
                stage,
                step,
                keys,
                format!(
                    "step `{}` of stage `{}`: cannot tell how many targets it keeps healthy ({why}); the policy asks for at least {percent}%",
                    step.id, stage.name
                ),
            )),
        }
    }
    violations
}

fn no_allow_failure_in_tests(view: &View<'_>) -> Vec<Violation> {
    view.stages_of("test")
        .flat_map(|(_, stage)| {
            stage
                .steps
                .iter()
                .filter(|step| step.allow_failure)
                .map(move |step| {
                    view.step_violation(
                        stage,
                        step,
                        &["allow-failure"],
                        format!(
                            "step `{}` of test stage `{}` has allow-failure = true; the policy asks that a failing test fails the stage",
                            step.id, stage.name
                        ),
                    )
                })
        })
        .collect()
}

fn production_window(view: &View<'_>) -> Vec<Violation> {
    view.stages_of("production")
        .filter(|(_, stage)| {
            !stage
                .gates
                .iter()
                .any(|g| matches!(g.kind, GateKind::Window(_)))
        })
        .map(|(_, stage)| {
            view.stage_violation(
                stage,
                format!(
                    "production stage `{}` has no window gate; the policy asks for a time window on every production stage (`[stage.gates.<id>]` with `kind = \"window\"`)",
                    stage.name
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::policy::checks::testing;

    /// A pipeline with a build, a test, a staging deploy and a production deploy, which
    /// each test edits to pass or fail one check.
    const PIPELINE: &str = r#"[pipeline]
name = "shop"

[[target]]
name = "box-1"
group = "one-box"
local = ".fleet/box-1"

[[target]]
name = "box-2"
group = "zone-a"
local = ".fleet/box-2"

[[target]]
name = "box-3"
group = "zone-a"
local = ".fleet/box-3"

[[target]]
name = "stage-1"
group = "staging"
local = ".fleet/stage-1"

[[monitor]]
id = "fleet-health"
uses = "builtin:http-check"
interval = "1s"
[monitor.with]
url = "http://127.0.0.1:18181/health"
[monitor.grants]
net = ["http://127.0.0.1:18181"]

[[stage]]
name = "build"
[[stage.step]]
id = "compile"
uses = "builtin:build"

[[stage]]
name = "test"
[[stage.step]]
id = "unit"
uses = "builtin:unit-test"
allow-failure = false
[[stage.step]]
id = "scan"
uses = "builtin:security-scan"

[[stage]]
name = "staging"
[[stage.step]]
id = "deploy-staging"
uses = "builtin:deploy"
with = { bundle = "dist" }
[stage.step.grants]
targets = ["staging"]

[[stage]]
name = "prod"
[stage.gates.alarms]
alarms = ["fleet-health"]
[stage.gates.hours]
kind = "window"
timezone = "Europe/Berlin"
days = "Mon-Thu"
hours = "09:00-16:00"
[stage.bake]
duration = "1h"
positive = 3
monitors = ["fleet-health"]
[[stage.step]]
id = "deploy"
uses = "builtin:deploy"
[stage.step.with]
bundle = "dist"
config = "OneAtATime"
waves = ["one-box", "zone-a"]
[stage.step.grants]
targets = ["one-box", "zone-a"]
"#;

    fn run_on(name: &str, with: Value, text: &str) -> Vec<Violation> {
        let policy = testing::policy(Vec::new(), Vec::new());
        let pipeline = testing::pipeline(text);
        run(name, &with, &policy, &pipeline).expect("a valid with")
    }

    fn edit(from: &str, to: &str) -> String {
        assert!(PIPELINE.contains(from), "the pipeline has {from:?}");
        PIPELINE.replacen(from, to, 1)
    }

    fn messages(v: &[Violation]) -> Vec<String> {
        v.iter()
            .map(|v| {
                let at = v.at.as_ref().expect("a place");
                format!("{}:{}: {}", at.line, at.column, v.message)
            })
            .collect()
    }

    #[test]
    fn every_check_passes_the_well_kept_pipeline() {
        let withs = [
            (PRODUCTION_BAKE, json!({"duration": "1h", "positive": 3})),
            (DEPLOY_ALARMS, Value::Null),
            (SCAN_BEFORE_PRODUCTION, json!({})),
            (ONE_BOX_FIRST, Value::Null),
            (MINIMUM_HEALTHY_HOSTS, json!({"percent": 75})),
            (NO_ALLOW_FAILURE_IN_TESTS, Value::Null),
            (PRODUCTION_WINDOW, Value::Null),
        ];
        assert_eq!(withs.len(), NAMES.len());
        for (name, with) in withs {
            assert_eq!(run_on(name, with, PIPELINE), Vec::new(), "{name}");
        }
    }

    #[test]
    fn production_bake_says_how_short_the_bake_is() {
        let text = edit(
            "duration = \"1h\"\npositive = 3",
            "duration = \"10m\"\npositive = 1",
        );
        let v = run_on(
            PRODUCTION_BAKE,
            json!({"duration": "1h", "positive": 3}),
            &text,
        );
        assert_eq!(
            messages(&v),
            [
                "67:1: stage `prod` bakes 10m with 1 positive data point; the policy asks for at least 1h and 3"
            ]
        );
        assert_eq!(v[0].stage.as_deref(), Some("prod"));
        // A long enough bake with too few data points fails too.
        let text = edit("positive = 3", "positive = 2");
        let v = run_on(
            PRODUCTION_BAKE,
            json!({"duration": "30m", "positive": 3}),
            &text,
        );
        assert_eq!(v.len(), 1);
        // No bake at all.
        let text = edit(
            "[stage.bake]\nduration = \"1h\"\npositive = 3\nmonitors = [\"fleet-health\"]\n",
            "",
        );
        let v = run_on(PRODUCTION_BAKE, json!({"duration": "1h"}), &text);
        assert_eq!(
            messages(&v),
            [
                "59:8: production stage `prod` has no bake; the policy asks for at least 1h with 1 positive data point ([stage.bake] duration, positive)"
            ]
        );
    }

    #[test]
    fn deploy_alarms_accepts_an_alarms_gate_on_the_next_stage_only() {
        // `staging` deploys and neither it nor `prod` lacks... `prod` has the gate.
        assert!(run_on(DEPLOY_ALARMS, Value::Null, PIPELINE).is_empty());
        // Without the gate on `prod`, both deploy stages are unguarded.
        let text = edit("[stage.gates.alarms]\nalarms = [\"fleet-health\"]\n", "");
        let v = run_on(DEPLOY_ALARMS, Value::Null, &text);
        assert_eq!(
            messages(&v),
            [
                "50:8: deploy stage `staging` has no alarms gate, nor has the stage after it (`prod`); add `[stage.gates.alarms]` with `alarms = [...]` naming the monitors that watch this deploy",
                "59:8: deploy stage `prod` has no alarms gate, and no stage follows it; add `[stage.gates.alarms]` with `alarms = [...]` naming the monitors that watch this deploy",
            ]
        );
    }

    #[test]
    fn scan_before_production_needs_a_scan_in_an_earlier_stage() {
        let text = edit(
            "uses = \"builtin:security-scan\"",
            "uses = \"builtin:lint\"",
        );
        let v = run_on(SCAN_BEFORE_PRODUCTION, json!({}), &text);
        assert_eq!(
            messages(&v),
            [
                "59:8: no security scan runs before the first production stage `prod` (stage 4 of 4); add a step using builtin:security-scan to an earlier stage"
            ]
        );
        // A plugin the policy names counts as a scan.
        let v = run_on(
            SCAN_BEFORE_PRODUCTION,
            json!({"plugins": ["builtin:li*"]}),
            &text,
        );
        assert!(v.is_empty(), "{v:?}");
        // A pipeline without production stages has nothing to scan before.
        let text = text.replace("name = \"prod\"", "name = \"live\"");
        assert!(run_on(SCAN_BEFORE_PRODUCTION, json!({}), &text).is_empty());
    }

    #[test]
    fn one_box_first_counts_the_first_waves_targets() {
        let text = edit(
            "waves = [\"one-box\", \"zone-a\"]",
            "waves = [\"zone-a\", \"one-box\"]",
        );
        let v = run_on(ONE_BOX_FIRST, Value::Null, &text);
        assert_eq!(
            messages(&v),
            [
                "77:9: step `deploy` of stage `prod` deploys its first wave `zone-a` to 2 targets (box-2, box-3); the policy asks for a first wave of one target (a one-box group first in `waves`)"
            ]
        );
        assert_eq!(v[0].step.as_deref(), Some("deploy"));
        // Without `waves`, the granted groups in the pipeline's order are the waves.
        let text = edit("waves = [\"one-box\", \"zone-a\"]\n", "").replace(
            "targets = [\"one-box\", \"zone-a\"]",
            "targets = [\"zone-a\"]",
        );
        let v = run_on(ONE_BOX_FIRST, Value::Null, &text);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].message.contains("first wave `zone-a` to 2 targets"),
            "{v:?}"
        );
    }

    #[test]
    fn minimum_healthy_hosts_reads_the_deploy_config() {
        let check = |config: &str, percent: u64| {
            let text = edit("config = \"OneAtATime\"", config);
            messages(&run_on(
                MINIMUM_HEALTHY_HOSTS,
                json!({ "percent": percent }),
                &text,
            ))
        };
        assert_eq!(
            check("config = \"HalfAtATime\"", 75),
            [
                "76:10: step `deploy` of stage `prod` keeps at least 50% of its targets healthy (HalfAtATime); the policy asks for at least 75%"
            ]
        );
        assert!(check("config = \"CodeDeployDefault.HalfAtATime\"", 50).is_empty());
        assert_eq!(
            check("config = \"AllAtOnce\"", 1)[0],
            "76:10: step `deploy` of stage `prod` keeps at least 0% of its targets healthy (AllAtOnce); the policy asks for at least 1%"
        );
        assert_eq!(
            check(
                "config = { minimum-healthy-hosts = { type = \"HOST_COUNT\", value = 2 } }",
                75
            ),
            [
                "76:10: step `deploy` of stage `prod` keeps at least 66% of its targets healthy (HOST_COUNT 2 of 3 targets); the policy asks for at least 75%"
            ]
        );
        assert!(
            check(
                "config = { minimum-healthy-hosts = { type = \"FLEET_PERCENT\", value = 80 } }",
                75
            )
            .is_empty()
        );
        // Without `config`, the deploy is OneAtATime; the staging deploy has none.
        assert!(check("config = \"OneAtATime\"", 99).is_empty());
        let v = run_on(MINIMUM_HEALTHY_HOSTS, json!({"percent": 100}), PIPELINE);
        assert_eq!(v.len(), 2);
        assert!(v[0].message.contains("(OneAtATime, the default)"), "{v:?}");
    }

    #[test]
    fn no_allow_failure_in_tests_names_the_step() {
        let text = edit("allow-failure = false", "allow-failure = true");
        let v = run_on(NO_ALLOW_FAILURE_IN_TESTS, Value::Null, &text);
        assert_eq!(
            messages(&v),
            [
                "44:17: step `unit` of test stage `test` has allow-failure = true; the policy asks that a failing test fails the stage"
            ]
        );
    }

    #[test]
    fn production_window_needs_a_window_gate_on_production() {
        let text = edit(
            "[stage.gates.hours]\nkind = \"window\"\ntimezone = \"Europe/Berlin\"\ndays = \"Mon-Thu\"\nhours = \"09:00-16:00\"\n",
            "",
        );
        let v = run_on(PRODUCTION_WINDOW, Value::Null, &text);
        assert_eq!(
            messages(&v),
            [
                "59:8: production stage `prod` has no window gate; the policy asks for a time window on every production stage (`[stage.gates.<id>]` with `kind = \"window\"`)"
            ]
        );
    }

    #[test]
    fn a_bad_with_is_refused_with_what_to_write() {
        assert_eq!(
            check_with("production-bak", &Value::Null).unwrap_err(),
            format!(
                "no built-in check `production-bak`; the built-in checks are {}; did you mean `production-bake`?",
                NAMES.join(", ")
            )
        );
        assert_eq!(
            check_with(PRODUCTION_BAKE, &json!({"duraton": "1h"})).unwrap_err(),
            "check `production-bake` has no `with` key `duraton`; its keys are `duration`, `positive`; did you mean `duration`?"
        );
        assert_eq!(
            check_with(PRODUCTION_BAKE, &json!({"positive": 3})).unwrap_err(),
            "check `production-bake` needs `with.duration`: a duration such as \"1h\" or \"30m\""
        );
        assert!(
            check_with(PRODUCTION_BAKE, &json!({"duration": "an hour"}))
                .unwrap_err()
                .starts_with("`with.duration` = \"an hour\" is not a duration")
        );
        assert_eq!(
            check_with(MINIMUM_HEALTHY_HOSTS, &json!({"percent": 150})).unwrap_err(),
            "`with.percent` must be a whole number from 0 to 100, not 150"
        );
        assert_eq!(
            check_with(DEPLOY_ALARMS, &json!({"stages": []})).unwrap_err(),
            "check `deploy-alarms` takes no `with` keys; `stages` is not one"
        );
        assert_eq!(
            check_with(SCAN_BEFORE_PRODUCTION, &json!({"plugins": [1]})).unwrap_err(),
            "`with.plugins` lists plugin names (strings), not 1"
        );
        for name in NAMES {
            let ok = match *name {
                PRODUCTION_BAKE => json!({"duration": "1h"}),
                MINIMUM_HEALTHY_HOSTS => json!({"percent": 90}),
                _ => Value::Null,
            };
            assert!(check_with(name, &ok).is_ok(), "{name}");
        }
    }
}
