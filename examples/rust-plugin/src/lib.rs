//! `file-budget`: an example Sluice plugin written with `sluice-sdk`. It checks that
//! files stay under a size budget, the way teams guard the size of a WebAssembly
//! bundle, a container layer or a CLI binary:
//!
//! ```toml
//! [[stage.step]]
//! id = "budget"
//! uses = "../../target/wasm/wasm32-wasip2/release/sluice_example_file_budget.wasm"
//! with = { files = ["dist/*.wasm", "Cargo.lock"], max-bytes = 2097152, warn-bytes = 1572864 }
//! [stage.step.grants]
//! read = ["."]
//! ```
//!
//! It reports a `file.size` metric per file, a finding per file over a limit, fails when
//! any file is over `max-bytes` and warns when any is over `warn-bytes`.

mod glob;

use std::io;
use std::path::Path;

use sluice_sdk::fs::{Access, Error as FsError};
use sluice_sdk::{
    Capability, Finding, Metric, Plugin, Report, RunError, Severity, Status, StepContext, log,
    progress,
};

/// The step's `with` table.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    /// Files to check, relative to the pipeline's folder. `*` and `?` match within one
    /// path segment and `**` matches any number of folders, e.g. `dist/**/*.js`.
    files: Vec<String>,
    /// Fail when a file is larger than this many bytes.
    max_bytes: u64,
    /// Warn when a file is larger than this many bytes (and not over `max-bytes`).
    warn_bytes: Option<u64>,
}

struct FileBudget;

/// One file that was measured.
struct Measured {
    path: String,
    bytes: u64,
}

impl Plugin for FileBudget {
    type Config = Config;
    const NAME: &'static str = "file-budget";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SUMMARY: &'static str = "Fails the step when files grow past a size budget.";

    fn capabilities() -> Vec<Capability> {
        vec![Capability::ReadFiles]
    }

    fn run(config: Config, ctx: &StepContext) -> Result<Report, RunError> {
        if config.files.is_empty() {
            return Err(RunError::invalid_config(
                "`files` is empty: list at least one file or pattern to check",
            ));
        }
        if let Some(warn) = config.warn_bytes
            && warn > config.max_bytes
        {
            return Err(RunError::invalid_config(format!(
                "`warn-bytes` ({warn}) is larger than `max-bytes` ({}), so it could never warn",
                config.max_bytes
            )));
        }

        let mut findings = Vec::new();
        let mut status = Status::Passed;
        let mut measured: Vec<Measured> = Vec::new();

        for pattern in &config.files {
            let paths = glob::expand(ctx.workdir(), pattern)
                .map_err(|(path, err)| denied_or_failed(&path, err))?;
            if paths.is_empty() {
                status = status.worse(Status::Failed);
                let (rule, message) = if glob::is_pattern(pattern) {
                    (
                        "file-budget/no-match",
                        format!("`{pattern}` matches no file"),
                    )
                } else {
                    ("file-budget/missing", format!("{pattern} does not exist"))
                };
                findings.push(Finding::new(rule, Severity::High, message).at(
                    pattern.as_str(),
                    None,
                    None,
                ));
                continue;
            }
            for path in paths {
                if measured.iter().any(|seen| seen.path == path) {
                    continue;
                }
                let metadata = std::fs::metadata(ctx.resolve(&path))
                    .map_err(|err| denied_or_failed(&path, err))?;
                measured.push(Measured {
                    path,
                    bytes: metadata.len(),
                });
                progress(
                    measured.len() as u64,
                    None,
                    format!("measured {}", measured.last().map_or("", |m| &m.path)),
                );
            }
        }

        let mut over_max = Vec::new();
        let mut over_warn = Vec::new();
        for file in &measured {
            if file.bytes > config.max_bytes {
                status = status.worse(Status::Failed);
                over_max.push(file);
                findings.push(
                    Finding::new(
                        "file-budget/over-max",
                        Severity::High,
                        format!(
                            "{} is {}, over its budget of {} by {}",
                            file.path,
                            human_bytes(file.bytes),
                            human_bytes(config.max_bytes),
                            human_bytes(file.bytes - config.max_bytes)
                        ),
                    )
                    .at(file.path.as_str(), None, None),
                );
            } else if let Some(warn) = config.warn_bytes
                && file.bytes > warn
            {
                status = status.worse(Status::Warned);
                over_warn.push(file);
                findings.push(
                    Finding::new(
                        "file-budget/over-warn",
                        Severity::Medium,
                        format!(
                            "{} is {}, past the warning line of {} (budget {})",
                            file.path,
                            human_bytes(file.bytes),
                            human_bytes(warn),
                            human_bytes(config.max_bytes)
                        ),
                    )
                    .at(file.path.as_str(), None, None),
                );
            }
        }
        log::info(format!("measured {} files", measured.len()));

        let summary = summarize(
            &measured,
            &over_max,
            &over_warn,
            &findings,
            config.max_bytes,
        );
        let total: u64 = measured.iter().map(|file| file.bytes).sum();
        let largest = measured.iter().max_by_key(|file| file.bytes);
        let mut report = Report::new(status, summary)
            .with_findings(findings)
            .with_metrics(measured.iter().map(|file| {
                Metric::new("file.size", file.bytes as f64, "bytes").tag("path", &file.path)
            }))
            .with_output("total-bytes", total)
            .with_output("files", measured.len());
        if let Some(largest) = largest {
            report = report.with_output("largest", &largest.path);
        }
        Ok(report)
    }
}

/// A file-system error as the right `RunError`: a missing grant is `Denied`.
fn denied_or_failed(path: &str, err: io::Error) -> RunError {
    RunError::from(FsError::new(Path::new(path), Access::Read, err))
}

fn summarize(
    measured: &[Measured],
    over_max: &[&Measured],
    over_warn: &[&Measured],
    findings: &[Finding],
    max: u64,
) -> String {
    let count = measured.len();
    let files = if count == 1 { "file" } else { "files" };
    if !over_max.is_empty() {
        let names: Vec<String> = over_max
            .iter()
            .map(|file| format!("{} ({})", file.path, human_bytes(file.bytes)))
            .collect();
        return format!(
            "{} of {count} {files} over the {} budget: {}",
            over_max.len(),
            human_bytes(max),
            names.join(", ")
        );
    }
    let missing = findings
        .iter()
        .filter(|finding| finding.severity == Severity::High)
        .count();
    if missing > 0 {
        return format!("{missing} listed path(s) matched no file; {count} {files} within budget");
    }
    let largest = measured.iter().max_by_key(|file| file.bytes);
    let largest = largest
        .map(|file| format!(" (largest: {} at {})", file.path, human_bytes(file.bytes)))
        .unwrap_or_default();
    if !over_warn.is_empty() {
        return format!(
            "{count} {files} within the {} budget, {} past the warning line{largest}",
            human_bytes(max),
            over_warn.len()
        );
    }
    format!(
        "{count} {files} within the {} budget{largest}",
        human_bytes(max)
    )
}

/// `512 B`, `1.5 KiB`, `2.0 MiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

sluice_sdk::export_plugin!(FileBudget);

#[cfg(test)]
mod tests {
    use super::*;

    fn run_in(dir: &Path, config: serde_json::Value) -> Result<Report, RunError> {
        sluice_sdk::run_plugin::<FileBudget>(sluice_sdk::StepInput {
            run_id: "r".into(),
            pipeline: "p".into(),
            stage: "s".into(),
            step: "budget".into(),
            config: config.to_string(),
            artifact: None,
            outputs: Vec::new(),
            workdir: dir.to_string_lossy().into_owned(),
            attempt: 1,
            plugins: vec![],
        })
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("file-budget-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("dist/nested")).unwrap();
        std::fs::write(dir.join("dist/small.wasm"), vec![0u8; 100]).unwrap();
        std::fs::write(dir.join("dist/nested/big.wasm"), vec![0u8; 3000]).unwrap();
        std::fs::write(dir.join("README.md"), "hi").unwrap();
        dir
    }

    #[test]
    fn passes_warns_and_fails() {
        let dir = scratch("levels");
        let report = run_in(
            &dir,
            serde_json::json!({ "files": ["dist/**/*.wasm"], "max-bytes": 5000 }),
        )
        .unwrap();
        assert_eq!(report.status, Status::Passed, "{}", report.summary);
        assert_eq!(report.metrics.len(), 2);
        assert_eq!(report.output("total-bytes"), Some("3100"));
        assert_eq!(report.output("largest"), Some("dist/nested/big.wasm"));

        let report =
            run_in(&dir, serde_json::json!({ "files": ["dist/**/*.wasm"], "max-bytes": 5000, "warn-bytes": 2000 })).unwrap();
        assert_eq!(report.status, Status::Warned, "{}", report.summary);
        assert_eq!(report.findings.len(), 1);
        assert_eq!(
            report.findings[0].location.as_ref().unwrap().path,
            "dist/nested/big.wasm"
        );

        let report = run_in(&dir, serde_json::json!({ "files": ["dist/*.wasm", "dist/nested/big.wasm"], "max-bytes": 1000 }))
            .unwrap();
        assert_eq!(report.status, Status::Failed);
        assert_eq!(
            report.summary,
            "1 of 2 files over the 1000 B budget: dist/nested/big.wasm (2.9 KiB)"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn missing_files_and_empty_patterns_fail() {
        let dir = scratch("missing");
        let report = run_in(
            &dir,
            serde_json::json!({ "files": ["nope.txt", "dist/*.js", "README.md"], "max-bytes": 10 }),
        )
        .unwrap();
        assert_eq!(report.status, Status::Failed);
        let rules: Vec<&str> = report
            .findings
            .iter()
            .map(|finding| finding.rule_id.as_str())
            .collect();
        assert_eq!(rules, ["file-budget/missing", "file-budget/no-match"]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn rejects_a_warning_line_above_the_budget() {
        let err = run_in(
            Path::new("/"),
            serde_json::json!({ "files": ["x"], "max-bytes": 1, "warn-bytes": 2 }),
        )
        .unwrap_err();
        assert!(matches!(err, RunError::InvalidConfig(_)));
    }

    #[test]
    fn formats_sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(2 * 1024 * 1024), "2.0 MiB");
    }
}
