//! `summary.json`: the run at a glance, for scripts and dashboards: status, reason,
//! the artifact under test, and per step its status, test counts and finding counts by
//! severity, and the deployments the run made (rollbacks among them), as recorded.

use serde_json::{Value, json};

use super::deployments::{self, DeploymentStory};
use super::junit::Counts;
use super::severity_name;
use crate::executor::RunResult;

/// Render the run summary as JSON.
pub fn render(run: &RunResult, deployed: &[DeploymentStory]) -> String {
    let mut total_tests = Counts::default();
    let mut total_findings = json!({ "critical": 0, "high": 0, "medium": 0, "low": 0, "info": 0 });
    let steps: Vec<Value> = run
        .steps
        .iter()
        .map(|s| {
            let (tests, findings) = match &s.report {
                Some(r) => {
                    let c = Counts::of(&r.test_cases);
                    let mut by =
                        json!({ "critical": 0, "high": 0, "medium": 0, "low": 0, "info": 0 });
                    for f in &r.findings {
                        let k = severity_name(f.severity);
                        by[k] = json!(by[k].as_u64().unwrap_or(0) + 1);
                        total_findings[k] = json!(total_findings[k].as_u64().unwrap_or(0) + 1);
                    }
                    (c, by)
                }
                None => (Counts::default(), json!({})),
            };
            total_tests.tests += tests.tests;
            total_tests.failures += tests.failures;
            total_tests.skipped += tests.skipped;
            total_tests.flaky += tests.flaky;
            json!({
                "stage": s.stage,
                "step": s.step,
                "uses": s.uses,
                "plugin_digest": s.plugin_digest,
                "status": s.status,
                "summary": s.summary,
                "attempts": s.attempts,
                "duration_ms": s.duration_ms,
                "tests": counts_json(tests),
                "findings": findings,
                "artifacts": s.artifacts,
                "log": s.log,
            })
        })
        .collect();
    let v = json!({
        "run_id": run.run_id,
        "pipeline": run.pipeline,
        "started_at": run.started_at,
        "status": run.status,
        "reason": run.reason,
        "duration_ms": run.duration_ms,
        "artifact": run.artifact,
        "tests": counts_json(total_tests),
        "findings": total_findings,
        "steps": steps,
        "deployments": deployments::to_json(deployed),
        "rollbacks": deployed.iter().filter(|d| d.is_rollback()).count(),
    });
    let mut text = serde_json::to_string_pretty(&v).expect("JSON values serialise");
    text.push('\n');
    text
}

fn counts_json(c: Counts) -> Value {
    json!({
        "total": c.tests,
        "passed": c.tests - c.failures - c.skipped - c.flaky,
        "failed": c.failures,
        "skipped": c.skipped,
        "flaky": c.flaky,
    })
}
