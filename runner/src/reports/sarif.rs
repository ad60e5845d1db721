//! `results.sarif`: every finding of the run as SARIF 2.1.0, shaped for GitHub code
//! scanning (see `reference/plugins.md` §2.6).
//!
//! - One SARIF run per analysis step: a step that reported findings, or whose report
//!   publishes a `findings` output (the count, as `builtin:lint` does) and was not
//!   skipped. A clean analysis still gets its (empty) run, so that code scanning closes
//!   the alerts it no longer reports. Its tool is the step's plugin (plus, as a tool
//!   extension, the program the step ran when the report publishes it as `tool`), and
//!   `automationDetails.id` (`<pipeline>/<stage>/<step>/`) keeps the categories apart.
//!   A report that analysed only part of the code says so with a `scope` output (lint's
//!   `changed-since`); its run gets the category `<pipeline>/<stage>/<step>/partial/`, so
//!   that its silence about the rest never closes the alerts of the full analyses.
//! - Rules are listed once per run with a stable `ruleId`; a rule's
//!   `security-severity` is the highest CVSS score of its findings.
//! - Locations are URIs relative to the repository root (the folder holding `.git`
//!   above the pipeline), or to the pipeline's folder outside a repository, with
//!   `uriBaseId` `%SRCROOT%`.
//! - Each result carries the finding's fingerprint in `partialFingerprints`, under
//!   [`FINGERPRINT_KEY`]; the key's version changes whenever the SDK's scheme does
//!   (docs/design/0007-sarif-fingerprints.md).

use serde_json::{Map, Value, json};

use super::{relative_to, repository_root, severity_name};
use crate::executor::RunResult;
use crate::host::bindings::types::{Finding, Report, Severity, Status};

/// The schema URI written into the log.
pub const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// The `partialFingerprints` key of Sluice's fingerprints. Version 2: the hash of the
/// rule, path and finding's line text with an occurrence index (version 1 hashed the
/// message instead of the line, and let repeated findings collide).
pub const FINGERPRINT_KEY: &str = "sluiceFingerprint/v2";

/// The output by which a report says it is an analysis (its value: how many findings).
pub const FINDINGS_OUTPUT: &str = "findings";

/// The output naming the program an analysis step ran (e.g. `clippy`).
pub const TOOL_OUTPUT: &str = "tool";

/// The output by which a report says it analysed only part of the code (its value says
/// which part, e.g. `files changed since origin/main`).
pub const SCOPE_OUTPUT: &str = "scope";

/// Whether `report` gets a SARIF run: it has findings, or it is an analysis that ran
/// (a `findings` output and not skipped), even a clean one.
pub fn is_analysis(report: &Report) -> bool {
    !report.findings.is_empty()
        || (report.status != Status::Skipped
            && report
                .outputs
                .iter()
                .any(|(name, _)| name == FINDINGS_OUTPUT))
}

/// SARIF `level` of a severity: info and low are notes, medium a warning, high and
/// critical errors.
pub fn level(s: Severity) -> &'static str {
    match s {
        Severity::Info | Severity::Low => "note",
        Severity::Medium => "warning",
        Severity::High | Severity::Critical => "error",
    }
}

/// Render the run's findings as a SARIF 2.1.0 log.
pub fn render(run: &RunResult) -> String {
    let base = repository_root(&run.workdir).unwrap_or_else(|| run.workdir.clone());
    let mut runs = Vec::new();
    for step in &run.steps {
        let Some(report) = &step.report else { continue };
        if !is_analysis(report) {
            continue;
        }
        let mut rules: Vec<(String, Value, Option<f64>, Severity)> = Vec::new();
        let mut results = Vec::new();
        for f in &report.findings {
            let index = match rules.iter().position(|(id, ..)| *id == f.rule_id) {
                Some(i) => {
                    let entry = &mut rules[i];
                    entry.2 = max_score(entry.2, f.security_severity);
                    if super::severity_rank(f.severity) < super::severity_rank(entry.3) {
                        entry.3 = f.severity;
                    }
                    i
                }
                None => {
                    rules.push((f.rule_id.clone(), rule(f), f.security_severity, f.severity));
                    rules.len() - 1
                }
            };
            results.push(result(f, index, &base, run));
        }
        let rules: Vec<Value> = rules
            .into_iter()
            .map(|(_, mut r, score, severity)| {
                let props = r["properties"]
                    .as_object_mut()
                    .expect("rules carry a property bag");
                if let Some(score) = score {
                    props.insert("security-severity".into(), json!(format!("{score:.1}")));
                }
                r["defaultConfiguration"] = json!({ "level": level(severity) });
                r
            })
            .collect();
        let name = step
            .plugin_name
            .clone()
            .unwrap_or_else(|| step.uses.clone());
        let mut driver = json!({
            "name": format!("sluice {name}"),
            "informationUri": "https://github.com/sluice-ci/sluice",
            "rules": rules,
        });
        if let Some(v) = &step.plugin_version {
            driver["semanticVersion"] = json!(v);
            driver["version"] = json!(v);
        }
        let mut tool = json!({ "driver": driver });
        if let Some((_, program)) = report
            .outputs
            .iter()
            .find(|(name, value)| name == TOOL_OUTPUT && !value.is_empty())
        {
            tool["extensions"] = json!([{ "name": program }]);
        }
        runs.push(json!({
            "tool": tool,
            "automationDetails": { "id": category(&run.pipeline, &step.stage, &step.step, report) },
            "originalUriBaseIds": {
                "%SRCROOT%": { "uri": format!("file://{}/", base.display()) }
            },
            "results": results,
            "properties": {
                "sluice": { "run": run.run_id, "stage": step.stage, "step": step.step, "uses": step.uses, "plugin-digest": step.plugin_digest }
            }
        }));
    }
    let log = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": runs,
    });
    let mut text = serde_json::to_string_pretty(&log).expect("JSON values serialise");
    text.push('\n');
    text
}

/// The run's `automationDetails.id`: `<pipeline>/<stage>/<step>/`, or
/// `<pipeline>/<stage>/<step>/partial/` when the report analysed only part of the code.
/// Code scanning's category is everything up to the last `/`, so the two never mix.
fn category(pipeline: &str, stage: &str, step: &str, report: &Report) -> String {
    let partial = report
        .outputs
        .iter()
        .any(|(name, value)| name == SCOPE_OUTPUT && !value.is_empty());
    let mut id = format!("{pipeline}/{stage}/{step}/");
    if partial {
        id.push_str("partial/");
    }
    id
}

fn max_score(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn rule(f: &Finding) -> Value {
    let mut r = json!({
        "id": f.rule_id,
        "shortDescription": { "text": f.rule_id },
        "properties": { "tags": [severity_name(f.severity)] },
    });
    if let Some(uri) = &f.help_uri {
        r["helpUri"] = json!(uri);
    }
    r
}

fn result(f: &Finding, rule_index: usize, base: &std::path::Path, run: &RunResult) -> Value {
    let mut r = json!({
        "ruleId": f.rule_id,
        "ruleIndex": rule_index,
        "level": level(f.severity),
        "message": { "text": if f.message.is_empty() { f.rule_id.clone() } else { f.message.clone() } },
        "partialFingerprints": { FINGERPRINT_KEY: f.fingerprint },
    });
    if let Some(loc) = &f.location {
        let mut region = Map::new();
        // SARIF lines and columns start at 1; a 0 from a plugin means "unknown".
        let mut put = |k: &str, v: Option<u32>| {
            if let Some(v) = v.filter(|v| *v > 0) {
                region.insert(k.into(), json!(v));
            }
        };
        put("startLine", loc.line);
        put("startColumn", loc.column);
        put("endLine", loc.end_line);
        // SARIF's end column is the column after the region; ours is its last.
        put("endColumn", loc.end_column.map(|c| c + 1));
        let mut physical = json!({
            "artifactLocation": { "uri": relative_to(base, &run.workdir, &loc.path), "uriBaseId": "%SRCROOT%" },
        });
        if region.contains_key("startLine") {
            physical["region"] = Value::Object(region);
        }
        r["locations"] = json!([{ "physicalLocation": physical }]);
    }
    let mut props = Map::new();
    props.insert("severity".into(), json!(severity_name(f.severity)));
    if let Some(score) = f.security_severity {
        props.insert("security-severity".into(), json!(format!("{score:.1}")));
    }
    for (k, v) in &f.properties {
        props.insert(k.clone(), json!(v));
    }
    r["properties"] = Value::Object(props);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: Status, outputs: &[(&str, &str)]) -> Report {
        Report {
            status,
            summary: String::new(),
            findings: Vec::new(),
            test_cases: Vec::new(),
            metrics: Vec::new(),
            data_points: Vec::new(),
            artifacts: Vec::new(),
            outputs: outputs
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn analyses_get_a_run_even_when_clean() {
        assert!(is_analysis(&report(Status::Passed, &[("findings", "0")])));
        assert!(is_analysis(&report(Status::Failed, &[("findings", "0")])));
        // Nothing was analysed: an empty run would close every alert of the category.
        assert!(!is_analysis(&report(Status::Skipped, &[("findings", "0")])));
        // Not an analysis at all (a build, a test step).
        assert!(!is_analysis(&report(
            Status::Passed,
            &[("tests-total", "3")]
        )));
    }

    #[test]
    fn a_partial_analysis_has_a_category_of_its_own() {
        let full = report(Status::Passed, &[("findings", "0")]);
        let partial = report(
            Status::Passed,
            &[
                ("findings", "0"),
                ("scope", "files changed since origin/main"),
            ],
        );
        assert_eq!(category("p", "lint", "clippy", &full), "p/lint/clippy/");
        assert_eq!(
            category("p", "lint", "clippy", &partial),
            "p/lint/clippy/partial/"
        );
    }
}
