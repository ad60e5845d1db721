//! `sluice plugin check REF`: the conformance kit. The checks every plugin must pass,
//! runnable by any author and by CI on every built-in, each ending `pass`, `fail` or
//! `warn` with a reason (`skip` where it does not apply: a monitor has no `run()`):
//!
//! - `schema-valid`: `describe()`'s config schema is valid JSON Schema (draft 2020-12,
//!   checked against its meta-schema);
//! - `schema-closed`: every object schema in it, recursively, closes its keys:
//!   `additionalProperties` (or `unevaluatedProperties`) is `false`, or a schema that
//!   constrains the extra values (a map of names to strings); an object schema is one
//!   with `"type": "object"` or `properties`;
//! - `schema-examples`: the schema has `examples` (warn when none: the run checks need
//!   them);
//! - `examples-valid`: each example matches the schema;
//! - `example-runs`: `run()` with each example, under the `--grant`s and `--workdir`,
//!   returns a well-formed report: a summary, findings whose locations are relative
//!   paths inside the working folder, no two findings with one fingerprint;
//! - `denied-without-grants`: the first example run with no grant at all ends in
//!   `run-error::denied` whose message names a grant kind (`read`, `write`, `exec`,
//!   `net`, `env`, `secrets`, `targets`), not in a trap or another error (warn when it
//!   returns a report: the example then needs no access at all);
//! - `stable-fingerprints`: the first example run again gives the same fingerprints,
//!   none empty (the host fills those the plugin left empty);
//! - `no-output-flood`: the step log of every example run stays under
//!   [`FLOOD_BOUND`] (1 MiB);
//! - `describe-pure`: two more calls of `describe()` answer exactly as the first.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::AuthoringError;
use super::once::{Grant, Invocation, Outcome, Session};
use crate::config::PluginRef;
use crate::host::bindings::types;
use crate::host::plugin::PluginError;

/// The most step log an example run may write: more is an output flood.
pub const FLOOD_BOUND: u64 = 1 << 20;

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
    Skip,
}

/// One check's verdict and why.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub reason: String,
}

fn check(name: &'static str, verdict: Verdict, reason: impl Into<String>) -> Check {
    Check {
        name,
        verdict,
        reason: reason.into(),
    }
}

/// Everything `plugin check` found about one plugin.
#[derive(Debug, Clone, Serialize)]
pub struct Conformance {
    pub plugin: String,
    /// `step` or `monitor`.
    pub world: &'static str,
    pub checks: Vec<Check>,
}

impl Conformance {
    /// Whether no check failed (warnings allowed).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.verdict != Verdict::Fail)
    }

    /// `9 checks: 8 passed, 0 failed, 1 warned` (and `, N skipped`).
    pub fn summary_line(&self) -> String {
        let count = |v| self.checks.iter().filter(|c| c.verdict == v).count();
        let mut line = format!(
            "{} checks: {} passed, {} failed, {} warned",
            self.checks.len(),
            count(Verdict::Pass),
            count(Verdict::Fail),
            count(Verdict::Warn)
        );
        let skipped = count(Verdict::Skip);
        if skipped > 0 {
            line.push_str(&format!(", {skipped} skipped"));
        }
        line
    }

    /// For people: a line per check, then the summary line.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut t = String::new();
        let _ = writeln!(t, "plugin: {} (world {})", self.plugin, self.world);
        for c in &self.checks {
            let tag = match c.verdict {
                Verdict::Pass => "pass",
                Verdict::Warn => "warn",
                Verdict::Fail => "FAIL",
                Verdict::Skip => "skip",
            };
            let _ = writeln!(
                t,
                "{tag:4} {:22} {}",
                c.name,
                crate::render::shown(&c.reason)
            );
        }
        let _ = writeln!(t, "{}", self.summary_line());
        t
    }
}

/// What the example runs get.
pub struct CheckSetup {
    pub grants: Vec<Grant>,
    pub workdir: std::path::PathBuf,
}

/// Run every check on `reference`.
pub async fn check_plugin(
    session: &Session,
    reference: &str,
    setup: &CheckSetup,
) -> Result<Conformance, AuthoringError> {
    let cwd = std::env::current_dir()
        .map_err(|e| AuthoringError::Internal(format!("the current folder: {e}")))?;
    let plugin_ref = PluginRef::parse(reference, &cwd).map_err(AuthoringError::Usage)?;
    let mut checks = Vec::new();
    let step_plugin = match session.host().load(&plugin_ref).await {
        Ok(p) => Some(p),
        // An organisation check has no step or monitor to conform as: say how to test it.
        Err(e @ PluginError::WrongWorld { .. })
            if e.to_string().contains("world `policy-check`") =>
        {
            return Err(AuthoringError::Usage(format!(
                "{e}. `sluice plugin check` checks steps and monitors; test an organisation check with \
                 `sluice policy check --policy POLICY PIPELINE` on pipelines that pass and fail it \
                 (docs/plugins/policy-checks.md)"
            )));
        }
        Err(PluginError::WrongWorld { .. }) => None,
        Err(e @ PluginError::Internal { .. }) => {
            return Err(AuthoringError::Internal(e.to_string()));
        }
        Err(e) => return Err(AuthoringError::Usage(e.to_string())),
    };
    let (world, descriptor, schema) = match &step_plugin {
        Some(p) => ("step", p.descriptor().clone(), p.schema().clone()),
        None => {
            let m = crate::host::monitor::load_monitor(session.host(), &plugin_ref)
                .await
                .map_err(|e| AuthoringError::Usage(e.to_string()))?;
            ("monitor", m.descriptor().clone(), m.schema().clone())
        }
    };
    checks.push(match jsonschema::meta::validate(&schema) {
        Ok(()) => check("schema-valid", Verdict::Pass, "valid JSON Schema"),
        Err(e) => check(
            "schema-valid",
            Verdict::Fail,
            format!("not valid JSON Schema at `{}`: {e}", e.schema_path()),
        ),
    });
    let open = open_objects(&schema);
    checks.push(if open.is_empty() {
        check(
            "schema-closed",
            Verdict::Pass,
            "every object schema sets additionalProperties",
        )
    } else {
        check(
            "schema-closed",
            Verdict::Fail,
            format!(
                "object schemas that accept any key (add \"additionalProperties\": false): {}",
                open.join(", ")
            ),
        )
    });
    let examples: Vec<Value> = match schema.get("examples") {
        Some(Value::Array(a)) => a.clone(),
        _ => vec![],
    };
    checks.push(if examples.is_empty() {
        check(
            "schema-examples",
            Verdict::Warn,
            "the schema has no `examples`: add one or more `with` tables, so that authors see one and this kit can run the plugin",
        )
    } else {
        check(
            "schema-examples",
            Verdict::Pass,
            format!("{} example(s)", examples.len()),
        )
    });
    let validator = jsonschema::validator_for(&schema).ok();
    let invalid: Vec<String> = examples
        .iter()
        .enumerate()
        .filter_map(|(i, ex)| {
            let v = validator.as_ref()?;
            let errors: Vec<String> = v
                .iter_errors(ex)
                .map(|e| format!("`{}`: {e}", e.instance_path()))
                .collect();
            (!errors.is_empty()).then(|| format!("example {}: {}", i + 1, errors.join("; ")))
        })
        .collect();
    checks.push(if examples.is_empty() {
        check("examples-valid", Verdict::Skip, "no examples")
    } else if invalid.is_empty() {
        check(
            "examples-valid",
            Verdict::Pass,
            "every example matches the schema",
        )
    } else {
        check("examples-valid", Verdict::Fail, invalid.join("; "))
    });
    match &step_plugin {
        None => {
            for name in [
                "example-runs",
                "denied-without-grants",
                "stable-fingerprints",
                "no-output-flood",
            ] {
                checks.push(check(
                    name,
                    Verdict::Skip,
                    "a monitor (world `monitor`) has no run(); its checks run under `sluice canary`",
                ));
            }
        }
        Some(_) if examples.is_empty() || !invalid.is_empty() => {
            for name in [
                "example-runs",
                "denied-without-grants",
                "stable-fingerprints",
                "no-output-flood",
            ] {
                checks.push(check(
                    name,
                    Verdict::Skip,
                    "needs valid examples in the schema",
                ));
            }
        }
        Some(_) => {
            run_checks(session, reference, setup, &examples, &mut checks).await?;
        }
    }
    checks.push(match &step_plugin {
        Some(p) => describe_pure(p, &descriptor).await,
        None => check(
            "describe-pure",
            Verdict::Skip,
            "a monitor is described once when it is loaded",
        ),
    });
    Ok(Conformance {
        plugin: format!("{reference} ({} {})", descriptor.name, descriptor.version),
        world,
        checks,
    })
}

async fn describe_pure(
    plugin: &crate::host::plugin::LoadedPlugin,
    first: &types::Descriptor,
) -> Check {
    let mut differences = Vec::new();
    for call in 2..=3 {
        match crate::host::step::describe(
            plugin.pre(),
            plugin.engine(),
            plugin.slots(),
            plugin.needs(),
        )
        .await
        {
            Err(e) => {
                return check(
                    "describe-pure",
                    Verdict::Fail,
                    format!("call {call} of describe() failed: {e}"),
                );
            }
            Ok(d) => {
                let fields = [
                    ("name", d.name == first.name),
                    ("version", d.version == first.version),
                    ("summary", d.summary == first.summary),
                    ("config-schema", d.config_schema == first.config_schema),
                    ("capabilities", d.capabilities == first.capabilities),
                ];
                for (field, same) in fields {
                    if !same {
                        differences.push(format!("call {call} changed `{field}`"));
                    }
                }
            }
        }
    }
    if differences.is_empty() {
        check(
            "describe-pure",
            Verdict::Pass,
            "three calls of describe() gave the same answer",
        )
    } else {
        check("describe-pure", Verdict::Fail, differences.join("; "))
    }
}

async fn run_checks(
    session: &Session,
    reference: &str,
    setup: &CheckSetup,
    examples: &[Value],
    checks: &mut Vec<Check>,
) -> Result<(), AuthoringError> {
    let invocation = |with: &Value, grants: Vec<Grant>| Invocation {
        reference: reference.to_string(),
        with: with.clone(),
        grants,
        workdir: setup.workdir.clone(),
        timeout: None,
    };
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut problems = Vec::new();
    for (i, example) in examples.iter().enumerate() {
        let outcome = session
            .run(&invocation(example, setup.grants.clone()))
            .await?;
        problems.extend(
            report_problems(&outcome, &setup.workdir)
                .into_iter()
                .map(|p| format!("example {}: {p}", i + 1)),
        );
        outcomes.push(outcome);
    }
    checks.push(if problems.is_empty() {
        let statuses: Vec<String> = outcomes
            .iter()
            .map(|o| {
                o.report
                    .as_ref()
                    .map_or("?", |r| super::once::status_name(r.status))
                    .to_string()
            })
            .collect();
        check(
            "example-runs",
            Verdict::Pass,
            format!(
                "{} example run(s) returned well-formed reports ({})",
                outcomes.len(),
                statuses.join(", ")
            ),
        )
    } else {
        check("example-runs", Verdict::Fail, problems.join("; "))
    });

    let denied = session.run(&invocation(&examples[0], vec![])).await?;
    checks.push(denied_check(&denied));
    outcomes_flood(&outcomes, &denied, checks);

    let again = session
        .run(&invocation(&examples[0], setup.grants.clone()))
        .await?;
    checks.push(stability(&outcomes[0], &again));
    Ok(())
}

fn outcomes_flood(outcomes: &[Outcome], denied: &Outcome, checks: &mut Vec<Check>) {
    let largest = outcomes
        .iter()
        .chain(std::iter::once(denied))
        .map(|o| o.log_bytes)
        .max()
        .unwrap_or(0);
    let bound = bytesize::ByteSize::b(FLOOD_BOUND);
    checks.push(if largest > FLOOD_BOUND {
        check(
            "no-output-flood",
            Verdict::Fail,
            format!(
                "an example run logged {} (more than {bound}); log a summary, not every detail",
                bytesize::ByteSize::b(largest)
            ),
        )
    } else {
        check(
            "no-output-flood",
            Verdict::Pass,
            format!(
                "largest step log {} (bound {bound})",
                bytesize::ByteSize::b(largest)
            ),
        )
    });
}

/// What is wrong with the outcome of an example run (nothing for a well-formed report).
fn report_problems(outcome: &Outcome, workdir: &Path) -> Vec<String> {
    let Some(report) = &outcome.report else {
        let (kind, message) = outcome
            .failure
            .as_ref()
            .map_or(("failed", outcome.summary.as_str()), |f| {
                (f.kind.as_str(), f.message.as_str())
            });
        return vec![format!(
            "no report but `{kind}`: {message}; give the example runs the grants and folder they need with --grant and --workdir"
        )];
    };
    let mut problems = Vec::new();
    if report.summary.trim().is_empty() {
        problems.push("the report's summary is empty".into());
    }
    let mut seen = BTreeSet::new();
    for (i, f) in report.findings.iter().enumerate() {
        if f.rule_id.trim().is_empty() {
            problems.push(format!("finding {}: empty rule-id", i + 1));
        }
        if let Some(loc) = &f.location {
            if let Some(why) = location_problem(&loc.path, workdir) {
                problems.push(format!("finding {} ({}): {why}", i + 1, f.rule_id));
            }
            if loc.line == Some(0) || loc.column == Some(0) {
                problems.push(format!(
                    "finding {} ({}): lines and columns count from 1",
                    i + 1,
                    f.rule_id
                ));
            }
        }
        if !f.fingerprint.is_empty() && !seen.insert(f.fingerprint.clone()) {
            problems.push(format!(
                "finding {} ({}): fingerprint {} is also another finding's",
                i + 1,
                f.rule_id,
                f.fingerprint
            ));
        }
    }
    problems
}

/// Why a finding's path is not a path relative to the working folder, inside it.
fn location_problem(path: &str, workdir: &Path) -> Option<String> {
    if path.is_empty() {
        return Some("empty location path".into());
    }
    let p = Path::new(path);
    if p.is_absolute() {
        return Some(format!(
            "location `{path}` is absolute; report paths relative to the working folder"
        ));
    }
    let mut depth: i64 = 0;
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => depth -= 1,
            std::path::Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return Some(format!(
                "location `{path}` leaves the working folder {}",
                workdir.display()
            ));
        }
    }
    None
}

/// The names a denial message may give for the grant to add.
const GRANT_WORDS: [&str; 7] = ["read", "write", "exec", "net", "env", "secret", "target"];

fn denied_check(outcome: &Outcome) -> Check {
    const NAME: &str = "denied-without-grants";
    match (&outcome.report, &outcome.failure) {
        (Some(r), _) => check(
            NAME,
            Verdict::Warn,
            format!(
                "with no grant at all, example 1 returned a report ({}: {}): it needs no access, so a denial could not be seen",
                super::once::status_name(r.status),
                r.summary
            ),
        ),
        (None, Some(f)) if f.kind == "denied" => {
            let lower = f.message.to_lowercase();
            match GRANT_WORDS.iter().find(|w| lower.contains(*w)) {
                Some(w) => check(
                    NAME,
                    Verdict::Pass,
                    format!("run-error::denied naming `{w}`: {}", f.message),
                ),
                None => check(
                    NAME,
                    Verdict::Fail,
                    format!(
                        "run-error::denied, but its message names no grant (read, write, exec, net, env...): {}",
                        f.message
                    ),
                ),
            }
        }
        (None, f) => {
            let kind = f.as_ref().map_or("failed", |f| f.kind.as_str());
            check(
                NAME,
                Verdict::Fail,
                format!(
                    "with no grant at all, example 1 ended in `{kind}`, not run-error::denied naming the grant to add: {}",
                    outcome.summary
                ),
            )
        }
    }
}

fn stability(first: &Outcome, again: &Outcome) -> Check {
    const NAME: &str = "stable-fingerprints";
    let prints = |o: &Outcome| -> Option<Vec<String>> {
        o.report
            .as_ref()
            .map(|r| r.findings.iter().map(|f| f.fingerprint.clone()).collect())
    };
    match (prints(first), prints(again)) {
        (Some(a), Some(b)) => {
            if a.iter().any(String::is_empty) {
                check(
                    NAME,
                    Verdict::Fail,
                    "a finding has an empty fingerprint after the host filled them",
                )
            } else if a != b {
                check(
                    NAME,
                    Verdict::Fail,
                    format!(
                        "two runs of example 1 gave different fingerprints: {} and {}",
                        a.join(","),
                        b.join(",")
                    ),
                )
            } else if a.is_empty() {
                check(
                    NAME,
                    Verdict::Pass,
                    "example 1 reports no findings (nothing to compare)",
                )
            } else {
                check(
                    NAME,
                    Verdict::Pass,
                    format!("{} fingerprint(s), the same in two runs", a.len()),
                )
            }
        }
        _ => check(
            NAME,
            Verdict::Skip,
            "example 1 returned no report (see example-runs)",
        ),
    }
}

/// JSON pointers (into the schema) of the object schemas that accept any key.
pub fn open_objects(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(schema, String::new(), false, &mut out);
    out
}

fn is_object_schema(map: &serde_json::Map<String, Value>) -> bool {
    let typed = match map.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
        _ => false,
    };
    typed || map.contains_key("properties")
}

fn explicitly_object(map: &serde_json::Map<String, Value>) -> bool {
    match map.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
        _ => false,
    }
}

fn closes(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => !b,
        Some(Value::Object(m)) => !m.is_empty(),
        _ => false,
    }
}

/// Walk a schema. `in_place`: `v` applies to the same instance as its parent (a
/// branch of `allOf`/`anyOf`/`oneOf`, `if`/`then`/`else`, `not`, `dependentSchemas`).
/// Such a branch that only adds `properties` or `required` constrains an object its
/// parent already closes; only one that says `"type": "object"` describes an object of
/// its own (an alternative form) and must close it.
fn walk(v: &Value, at: String, in_place: bool, out: &mut Vec<String>) {
    let Value::Object(map) = v else { return };
    let describes_object = if in_place {
        explicitly_object(map)
    } else {
        is_object_schema(map)
    };
    if describes_object
        && !closes(map.get("additionalProperties"))
        && !closes(map.get("unevaluatedProperties"))
    {
        out.push(if at.is_empty() {
            "/".into()
        } else {
            at.clone()
        });
    }
    let esc = |k: &str| k.replace('~', "~0").replace('/', "~1");
    for (key, child) in map {
        match key.as_str() {
            "properties" | "patternProperties" | "$defs" | "definitions" => {
                if let Value::Object(children) = child {
                    for (name, sub) in children {
                        walk(sub, format!("{at}/{key}/{}", esc(name)), false, out);
                    }
                }
            }
            "dependentSchemas" => {
                if let Value::Object(children) = child {
                    for (name, sub) in children {
                        walk(sub, format!("{at}/{key}/{}", esc(name)), true, out);
                    }
                }
            }
            "allOf" | "anyOf" | "oneOf" => {
                if let Value::Array(items) = child {
                    for (i, sub) in items.iter().enumerate() {
                        walk(sub, format!("{at}/{key}/{i}"), true, out);
                    }
                }
            }
            "prefixItems" => {
                if let Value::Array(items) = child {
                    for (i, sub) in items.iter().enumerate() {
                        walk(sub, format!("{at}/{key}/{i}"), false, out);
                    }
                }
            }
            "not" | "if" | "then" | "else" => walk(child, format!("{at}/{key}"), true, out),
            "items"
            | "additionalProperties"
            | "unevaluatedProperties"
            | "contains"
            | "propertyNames"
            | "unevaluatedItems" => {
                walk(child, format!("{at}/{key}"), false, out);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_without_additional_properties_false_is_named_by_its_pointer() {
        let schema = json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "secrets": {"type": "object", "properties": {"paths": {"type": "array"}}},
                "env": {"type": "object", "additionalProperties": {"type": "string"}},
                "list": {"type": "array", "items": {"properties": {"a": {}}}},
            },
            "$defs": {
                "closed": {"type": "object", "additionalProperties": false},
                "either": {"anyOf": [{"type": "string"}, {"type": "object", "properties": {"t": {}}}]},
            },
            // Conditions on the closed root object: not objects of their own.
            "allOf": [{"if": {"properties": {"tool": {"const": "npm"}}}, "then": {"required": ["junit"], "properties": {"junit": {"minItems": 1}}}}],
        });
        assert_eq!(
            open_objects(&schema),
            vec![
                "/$defs/either/anyOf/1",
                "/properties/list/items",
                "/properties/secrets"
            ]
        );
    }

    fn outcome(report: Option<types::Report>, failure: Option<(&str, &str)>) -> Outcome {
        Outcome {
            plugin: "p 1.0.0".into(),
            status: crate::events::Status::Failed,
            summary: failure.map_or("ok".into(), |(_, m)| m.to_string()),
            report,
            failure: failure.map(|(k, m)| super::super::once::Failure {
                kind: k.into(),
                message: m.into(),
            }),
            log: vec![],
            log_bytes: 0,
            duration_ms: 0,
        }
    }

    fn report(findings: Vec<types::Finding>) -> types::Report {
        types::Report {
            status: types::Status::Passed,
            summary: "done".into(),
            findings,
            test_cases: vec![],
            metrics: vec![],
            data_points: vec![],
            artifacts: vec![],
            outputs: vec![],
        }
    }

    fn finding(path: &str, fingerprint: &str) -> types::Finding {
        types::Finding {
            rule_id: "x/match".into(),
            severity: types::Severity::Low,
            message: "m".into(),
            location: Some(types::Location {
                path: path.into(),
                line: Some(1),
                column: Some(1),
                end_line: None,
                end_column: None,
            }),
            fingerprint: fingerprint.into(),
            security_severity: None,
            help_uri: None,
            properties: vec![],
        }
    }

    #[test]
    fn a_denial_must_be_a_denied_run_error_naming_a_grant() {
        let pass = denied_check(&outcome(
            None,
            Some(("denied", "no `read` grant covers src")),
        ));
        assert_eq!(pass.verdict, Verdict::Pass, "{pass:?}");
        let vague = denied_check(&outcome(None, Some(("denied", "permission denied"))));
        assert_eq!(vague.verdict, Verdict::Fail, "{vague:?}");
        let trap = denied_check(&outcome(None, Some(("trap", "wasm trap: unreachable"))));
        assert_eq!(trap.verdict, Verdict::Fail, "{trap:?}");
        assert!(trap.reason.contains("`trap`"), "{trap:?}");
        let report = denied_check(&outcome(Some(report(vec![])), None));
        assert_eq!(report.verdict, Verdict::Warn, "{report:?}");
    }

    #[test]
    fn absolute_paths_and_shared_fingerprints_make_a_report_ill_formed() {
        let w = Path::new("/w");
        let good = outcome(
            Some(report(vec![
                finding("src/a", "f:1"),
                finding("src/a", "f:2"),
            ])),
            None,
        );
        assert!(report_problems(&good, w).is_empty());
        let bad = outcome(
            Some(report(vec![
                finding("/w/src/a", "f:1"),
                finding("src/a", "f:1"),
            ])),
            None,
        );
        let problems = report_problems(&bad, w);
        assert!(
            problems.iter().any(|p| p.contains("absolute")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("also another finding's")),
            "{problems:?}"
        );
    }

    #[test]
    fn fingerprints_that_change_between_runs_fail_stability() {
        let a = outcome(Some(report(vec![finding("src/a", "f:1")])), None);
        let b = outcome(Some(report(vec![finding("src/a", "g:1")])), None);
        assert_eq!(stability(&a, &a).verdict, Verdict::Pass);
        assert_eq!(stability(&a, &b).verdict, Verdict::Fail);
        let empty = outcome(Some(report(vec![finding("src/a", "")])), None);
        assert_eq!(stability(&empty, &empty).verdict, Verdict::Fail);
    }

    #[test]
    fn a_location_outside_the_working_folder_is_a_problem() {
        let w = Path::new("/w");
        assert!(location_problem("src/a.rs", w).is_none());
        assert!(location_problem("/etc/passwd", w).is_some());
        assert!(location_problem("../x", w).is_some());
        assert!(location_problem("a/../../x", w).is_some());
        assert!(location_problem("a/../x", w).is_none());
    }
}
