//! Parsers for linters' machine-readable output, each turning it into findings with a
//! rule id, a severity, a message and an exact location relative to the pipeline's
//! folder:
//!
//! - [`clippy`]: `cargo clippy --message-format=json` (cargo's JSON lines; the
//!   `compiler-message` entries, rustc lints and compile errors included);
//! - [`eslint`]: `eslint -f json`;
//! - [`ruff`]: `ruff check --output-format json`;
//! - [`go_vet`]: `go vet -json` (which prints to stderr);
//! - [`sarif`]: SARIF 2.1.0 files, from any tool.
//!
//! Severities: what the tool calls an error is `high`, a warning `medium`, a note or
//! help `low`.

use std::collections::HashSet;

use serde_json::Value;
use sluice_sdk::{Finding, Severity};

use crate::paths::Anchor;

/// `cargo clippy --message-format=json`. Messages without a primary span (the
/// "aborting due to" and "N warnings emitted" summaries) are left out, and the same
/// diagnostic reported for two targets (lib and lib test) is kept once.
pub fn clippy(stream: &str, anchor: &Anchor) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut seen = HashSet::new();
    for line in stream.lines() {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if entry["reason"] != "compiler-message" {
            continue;
        }
        let message = &entry["message"];
        let Some(span) = message["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find(|span| span["is_primary"] == true))
        else {
            continue;
        };
        let level = message["level"].as_str().unwrap_or("warning");
        let severity = match level {
            "error" | "error: internal compiler error" => Severity::High,
            "warning" => Severity::Medium,
            _ => Severity::Low,
        };
        let rule = message["code"]["code"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("rustc::{level}"));
        let text = message["message"].as_str().unwrap_or_default().to_owned();
        let path = anchor.relative(span["file_name"].as_str().unwrap_or_default());
        let line_start = number(&span["line_start"]);
        let column_start = number(&span["column_start"]);
        let key = (
            rule.clone(),
            path.clone(),
            line_start,
            column_start,
            text.clone(),
        );
        if !seen.insert(key) {
            continue;
        }
        let mut finding = Finding::new(rule, severity, text)
            .at(path, line_start, column_start)
            .with_end(
                number(&span["line_end"]),
                inclusive_end(number(&span["column_end"])),
            );
        let children = message["children"].as_array().into_iter().flatten();
        for child in children {
            let child_text = child["message"].as_str().unwrap_or_default();
            if let Some(at) = child_text.find("https://") {
                finding = finding.with_help_uri(child_text[at..].trim());
            } else if child["level"] == "help" && !child_text.is_empty() {
                finding = finding.with_property("help", child_text);
            }
        }
        findings.push(finding);
    }
    findings
}

/// `eslint -f json`: severity 2 is an error, 1 a warning. A parse error (`fatal`,
/// without a rule) gets the rule id `eslint::parse-error`.
pub fn eslint(json: &str, anchor: &Anchor) -> Result<Vec<Finding>, String> {
    let files: Vec<Value> = serde_json::from_str(json.trim())
        .map_err(|err| format!("not eslint JSON output: {err}"))?;
    let mut findings = Vec::new();
    for file in &files {
        let path = anchor.relative(file["filePath"].as_str().unwrap_or_default());
        for message in file["messages"].as_array().into_iter().flatten() {
            let severity = match message["severity"].as_u64() {
                Some(2) => Severity::High,
                Some(1) => Severity::Medium,
                _ => Severity::Low,
            };
            let rule = match message["ruleId"].as_str() {
                Some(rule) => rule.to_owned(),
                None if message["fatal"] == true => "eslint::parse-error".to_owned(),
                None => "eslint".to_owned(),
            };
            let mut finding = Finding::new(
                rule.clone(),
                severity,
                message["message"].as_str().unwrap_or_default(),
            )
            .at(
                path.clone(),
                number(&message["line"]),
                number(&message["column"]),
            );
            if message.get("endLine").is_some() {
                // eslint's end column is exclusive.
                finding = finding.with_end(
                    number(&message["endLine"]),
                    inclusive_end(number(&message["endColumn"])),
                );
            }
            if message["ruleId"].is_string() && !rule.contains('/') {
                finding =
                    finding.with_help_uri(format!("https://eslint.org/docs/latest/rules/{rule}"));
            }
            findings.push(finding);
        }
    }
    Ok(findings)
}

/// `ruff check --output-format json`. Ruff calls every violation an error unless its
/// JSON says otherwise (newer versions have a `severity` field).
pub fn ruff(json: &str, anchor: &Anchor) -> Result<Vec<Finding>, String> {
    let entries: Vec<Value> =
        serde_json::from_str(json.trim()).map_err(|err| format!("not ruff JSON output: {err}"))?;
    let mut findings = Vec::new();
    for entry in &entries {
        let code = entry["code"].as_str().unwrap_or("syntax-error");
        let severity = match entry["severity"].as_str() {
            Some("warning") => Severity::Medium,
            Some("info" | "note") => Severity::Low,
            _ => Severity::High,
        };
        let mut finding = Finding::new(
            format!("ruff::{code}"),
            severity,
            entry["message"].as_str().unwrap_or_default(),
        )
        .at(
            anchor.relative(entry["filename"].as_str().unwrap_or_default()),
            number(&entry["location"]["row"]),
            number(&entry["location"]["column"]),
        )
        // Ruff's end column is exclusive.
        .with_end(
            number(&entry["end_location"]["row"]),
            inclusive_end(number(&entry["end_location"]["column"])),
        );
        if let Some(url) = entry["url"].as_str() {
            finding = finding.with_help_uri(url);
        }
        if let Some(name) = entry["name"].as_str() {
            finding = finding.with_property("name", name);
        }
        if let Some(fix) = entry["fix"]["message"].as_str() {
            finding = finding.with_property("fix", fix);
        }
        findings.push(finding);
    }
    Ok(findings)
}

/// `go vet -json`: per package a JSON object `{package: {analyzer: [{posn, message}]}}`,
/// after `# package` comment lines. Every vet report is an error for Go (it fails
/// `go test`), so `high`.
pub fn go_vet(text: &str, anchor: &Anchor) -> Result<Vec<Finding>, String> {
    let json: String = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let mut findings = Vec::new();
    for value in serde_json::Deserializer::from_str(&json).into_iter::<Value>() {
        let value = value.map_err(|err| format!("not go vet JSON output: {err}"))?;
        let Some(packages) = value.as_object() else {
            continue;
        };
        for analyzers in packages.values() {
            let Some(analyzers) = analyzers.as_object() else {
                continue;
            };
            for (analyzer, reports) in analyzers {
                if let Some(error) = reports["error"].as_str() {
                    return Err(format!("go vet's {analyzer} analyzer failed: {error}"));
                }
                for report in reports.as_array().into_iter().flatten() {
                    let posn = report["posn"].as_str().unwrap_or_default();
                    let (path, line, column) = split_position(posn);
                    findings.push(
                        Finding::new(
                            format!("go-vet::{analyzer}"),
                            Severity::High,
                            report["message"].as_str().unwrap_or_default(),
                        )
                        .at(anchor.relative(path), line, column),
                    );
                }
            }
        }
    }
    Ok(findings)
}

/// `staticcheck -f json`: one object per line with `code`, `severity` (`error`,
/// `warning`, `ignored`), `location` and `end` (`file`, `line`, `column`; the end column
/// is exclusive, and an end with an empty file is unknown) and `message`. A `compile`
/// code means the package did not type-check.
pub fn staticcheck(stream: &str, anchor: &Anchor) -> Result<Vec<Finding>, String> {
    let mut findings = Vec::new();
    for line in stream
        .lines()
        .filter(|line| line.trim_start().starts_with('{'))
    {
        let entry: Value = serde_json::from_str(line)
            .map_err(|err| format!("not staticcheck JSON output: {err}"))?;
        let code = entry["code"].as_str().unwrap_or("unknown");
        let severity = match entry["severity"].as_str() {
            Some("ignored") => continue,
            Some("warning") => Severity::Medium,
            _ => Severity::High,
        };
        let location = &entry["location"];
        let mut finding = Finding::new(
            format!("staticcheck::{code}"),
            severity,
            entry["message"].as_str().unwrap_or_default(),
        )
        .at(
            anchor.relative(location["file"].as_str().unwrap_or_default()),
            number(&location["line"]),
            number(&location["column"]),
        );
        let end = &entry["end"];
        if end["file"].as_str().is_some_and(|f| !f.is_empty()) {
            finding = finding.with_end(number(&end["line"]), inclusive_end(number(&end["column"])));
        }
        if code != "compile" {
            finding = finding.with_help_uri(format!("https://staticcheck.dev/docs/checks/#{code}"));
        }
        findings.push(finding);
    }
    Ok(findings)
}

/// `path:line:column` (the path may itself contain colons).
fn split_position(posn: &str) -> (&str, Option<u32>, Option<u32>) {
    let mut parts = posn.rsplitn(3, ':');
    let last = parts.next();
    let middle = parts.next();
    let first = parts.next();
    match (
        first,
        middle.and_then(|m| m.parse().ok()),
        last.and_then(|l| l.parse().ok()),
    ) {
        (Some(path), Some(line), Some(column)) => (path, Some(line), Some(column)),
        _ => match posn.rsplit_once(':') {
            Some((path, line)) if line.parse::<u32>().is_ok() => (path, line.parse().ok(), None),
            _ => (posn, None, None),
        },
    }
}

/// SARIF 2.1.0: every result of every run. The rule id is the tool's (`ruleId`, else
/// the rule at `rule.index`); the level comes from the result, else the rule's default
/// configuration, else `warning` (SARIF's default); the tool's own fingerprint is kept
/// when there is one. Relative URIs resolve against `originalUriBaseIds` when they are
/// absolute `file://` URIs, else against the anchor's base.
pub fn sarif(json: &str, anchor: &Anchor) -> Result<Vec<Finding>, String> {
    let log: Value =
        serde_json::from_str(json).map_err(|err| format!("not a SARIF file: {err}"))?;
    let runs = log["runs"]
        .as_array()
        .ok_or("not a SARIF file: no `runs`")?;
    let mut findings = Vec::new();
    for run in runs {
        let tool = run["tool"]["driver"]["name"].as_str().unwrap_or("sarif");
        let rules = run["tool"]["driver"]["rules"].as_array();
        let artifacts = run["artifacts"].as_array();
        for result in run["results"].as_array().into_iter().flatten() {
            let rule_index = result["ruleIndex"]
                .as_u64()
                .or(result["rule"]["index"].as_u64());
            let rule =
                rule_index.and_then(|index| rules.and_then(|rules| rules.get(index as usize)));
            let rule = rule.or_else(|| {
                let id = result["ruleId"].as_str()?;
                rules?.iter().find(|rule| rule["id"] == id)
            });
            let rule_id = result["ruleId"]
                .as_str()
                .or(result["rule"]["id"].as_str())
                .or(rule.and_then(|rule| rule["id"].as_str()))
                .unwrap_or(tool);
            let level = result["level"]
                .as_str()
                .or(rule.and_then(|rule| rule["defaultConfiguration"]["level"].as_str()))
                .unwrap_or("warning");
            let severity = match level {
                "error" => Severity::High,
                "warning" => Severity::Medium,
                "note" => Severity::Low,
                _ => Severity::Info,
            };
            let message = result["message"]["text"]
                .as_str()
                .or(result["message"]["markdown"].as_str())
                .unwrap_or_default();
            let mut finding = Finding::new(rule_id, severity, message);
            let physical = &result["locations"][0]["physicalLocation"];
            let location = &physical["artifactLocation"];
            let uri = location["uri"].as_str().or_else(|| {
                let index = location["index"].as_u64()?;
                artifacts?.get(index as usize)?["location"]["uri"].as_str()
            });
            if let Some(uri) = uri {
                let uri = match location["uriBaseId"].as_str() {
                    Some(base_id) if !uri.starts_with("file:") => {
                        match run["originalUriBaseIds"][base_id]["uri"].as_str() {
                            Some(base) if base.starts_with("file://") => {
                                format!("{}/{uri}", base.trim_end_matches('/'))
                            }
                            _ => uri.to_owned(),
                        }
                    }
                    _ => uri.to_owned(),
                };
                let region = &physical["region"];
                finding = finding
                    .at(
                        anchor.relative(&uri),
                        number(&region["startLine"]),
                        number(&region["startColumn"]),
                    )
                    .with_end(
                        number(&region["endLine"]),
                        inclusive_end(number(&region["endColumn"])),
                    );
            }
            if let Some(help) = rule.and_then(|rule| rule["helpUri"].as_str()) {
                finding = finding.with_help_uri(help);
            }
            let fingerprint = result["partialFingerprints"]
                .as_object()
                .or(result["fingerprints"].as_object())
                .and_then(|prints| prints.values().find_map(Value::as_str));
            if let Some(fingerprint) = fingerprint {
                finding = finding.with_fingerprint(fingerprint);
            }
            finding = finding.with_property("tool", tool);
            findings.push(finding);
        }
    }
    Ok(findings)
}

fn number(value: &Value) -> Option<u32> {
    value.as_u64().and_then(|n| u32::try_from(n).ok())
}

/// Tools give the column just past the end; the contract's end column is inclusive.
fn inclusive_end(column: Option<u32>) -> Option<u32> {
    column.map(|column| column.saturating_sub(1).max(1))
}
