//! `builtin:deploy`: CodeDeploy-style in-place deployments of a revision bundle to the
//! step's granted targets, in waves across target groups (one box, then a zone, then
//! the rest), with the deployment configuration's minimum healthy hosts, a bake between
//! waves, and an automatic rollback to every touched target's last good revision when
//! anything fails.
//!
//! ```toml
//! [[stage.step]]
//! id = "deploy"
//! uses = "builtin:deploy"
//! [stage.step.with]
//! bundle = "dist/bundle"
//! config = "HalfAtATime"
//! waves = ["one-box", "zone-a", "rest"]
//! bake-between-waves = { duration = "3s", positive = 2, monitors = ["fleet-health"] }
//! health-check = { path = "/health" }
//! [stage.step.grants]
//! read = ["dist"]
//! targets = ["one-box", "zone-a", "rest"]
//! ```
//!
//! Modules: [`config`] is the `with` table, [`appspec`] reads `appspec.yml`,
//! [`schedule`] holds the configurations' rules (pure functions), [`fleet`] is the
//! world behind a trait, [`deployment`] runs a deployment and its rollback. The
//! user-facing reference is plugins/deploy/README.md; the design,
//! docs/design/0022-deploy-plugin.md.

pub mod appspec;
pub mod config;
pub mod deployment;
pub mod fleet;
pub mod schedule;

use std::path::Path;

use sha2::{Digest, Sha256};
use sluice_sdk::deploy::BundleSource;
use sluice_sdk::{Capability, Metric, Plugin, Report, RunError, StepContext};

use config::Config;
use deployment::{BakeSettings, Failure, Incoming, Outcome, Settings};
use fleet::{Fleet, HostFleet};

/// The plugin.
pub struct Deploy;

impl Plugin for Deploy {
    type Config = Config;
    const NAME: &'static str = "deploy";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SUMMARY: &'static str = "CodeDeploy-style in-place deployments: AppSpec lifecycle hooks, waves across target groups with minimum healthy hosts and bakes, automatic rollback to the last good revision.";

    fn capabilities() -> Vec<Capability> {
        vec![Capability::ReadFiles, Capability::Network]
    }

    fn run(config: Config, ctx: &StepContext) -> Result<Report, RunError> {
        run_deploy(&config, ctx, &mut HostFleet)
    }
}

sluice_sdk::export_plugin!(Deploy);

/// Read the bundle's AppSpec, deploy it through `fleet`, and report.
pub fn run_deploy(
    config: &Config,
    ctx: &StepContext,
    fleet: &mut dyn Fleet,
) -> Result<Report, RunError> {
    let bundle = ctx.resolve(&config.bundle);
    let appspec_path = bundle.join("appspec.yml");
    let shown = format!("{}/appspec.yml", config.bundle.trim_end_matches('/'));
    let text = sluice_sdk::fs::read_to_string(&appspec_path).map_err(|e| {
        if e.is_missing_grant() {
            RunError::from(e)
        } else {
            RunError::invalid_config(format!(
                "bundle `{}` has no readable appspec.yml at its root: {}",
                config.bundle,
                e.io_error()
            ))
        }
    })?;
    let appspec = appspec::parse(&shown, &text, &|relative| in_folder(&bundle, relative))
        .map_err(|e| RunError::invalid_config(e.to_string()))?;
    let source = BundleSource::LocalFolder(bundle.to_string_lossy().into_owned());
    let digest = fleet.bundle_digest(&source).map_err(RunError::from)?;
    let label = match ctx.artifact() {
        Some(artifact) if !artifact.version.is_empty() => artifact.version.clone(),
        _ => bundle
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| config.bundle.clone()),
    };
    let settings = settings(config, ctx);
    let outcome = deployment::deploy(
        fleet,
        &settings,
        Incoming {
            label: label.clone(),
            digest,
            source,
            appspec,
        },
    )?;
    Ok(report(&outcome, &label))
}

/// The deployment's settings from the `with` table and the step's context.
pub fn settings(config: &Config, ctx: &StepContext) -> Settings {
    let application = config
        .application
        .clone()
        .unwrap_or_else(|| ctx.pipeline().to_string());
    let deployment_group = config
        .deployment_group
        .clone()
        .unwrap_or_else(|| ctx.stage().to_string());
    Settings {
        deployment_group_id: deployment_group_id(&application, &deployment_group),
        application,
        deployment_group,
        run_id: ctx.run_id().to_string(),
        stage: ctx.stage().to_string(),
        artifact_version: ctx.artifact().map(|a| a.version.clone()),
        artifact_digest: ctx.artifact().map(|a| a.digest.clone()),
        rule: config.config.rule(),
        waves: config.waves.clone(),
        bake: config.bake_between_waves.as_ref().map(|b| BakeSettings {
            duration_ms: b.duration.0.as_millis() as u64,
            positive: b.positive,
            monitors: b.monitors.clone(),
            timeout_ms: b.timeout.map(|t| t.0.as_millis() as u64),
        }),
        health_check: config.health_check.clone(),
        ignore_application_stop_failures: config.ignore_application_stop_failures,
        force: config.force,
        rollback: config.rollback,
    }
}

/// DEPLOYMENT_GROUP_ID: a UUID-shaped id derived from the application and group, the
/// same in every run.
pub fn deployment_group_id(application: &str, group: &str) -> String {
    let hash = Sha256::digest(format!("{application}\0{group}").as_bytes());
    let hex: String = hash.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn in_folder(folder: &Path, relative: &str) -> bool {
    folder.join(relative).exists()
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// The step's report: passed when the deployment succeeded; otherwise failed with the
/// reason and what the rollback did.
pub fn report(outcome: &Outcome, label: &str) -> Report {
    let waves = plural(outcome.waves.len(), "wave");
    let mut metrics = vec![
        Metric::new("targets.deployed", outcome.deployed.len() as f64, "targets"),
        Metric::new("targets.skipped", outcome.skipped.len() as f64, "targets"),
    ];
    for (target, ms) in &outcome.durations {
        metrics.push(Metric::new("target.duration", *ms as f64, "ms").tag("target", target));
    }
    let report = match &outcome.failure {
        None => {
            let mut summary = if outcome.deployed.is_empty() {
                format!(
                    "{label} already runs on all {}; nothing deployed",
                    plural(outcome.skipped.len(), "target")
                )
            } else {
                format!(
                    "deployed {label} to {} in {waves} ({})",
                    plural(outcome.deployed.len(), "target"),
                    outcome.plan.rule
                )
            };
            if !outcome.deployed.is_empty() && !outcome.skipped.is_empty() {
                summary.push_str(&format!(
                    "; {} already ran it",
                    plural(outcome.skipped.len(), "target")
                ));
            }
            Report::passed(summary)
        }
        Some(failure) => {
            let mut summary = clip(&failure_line(failure), 400);
            let rolled_back = match &outcome.rollback {
                None => {
                    summary.push_str("; not rolled back");
                    0
                }
                Some(rollback) => {
                    if let Some(rollback_failure) = &rollback.failure {
                        summary.push_str(&format!(
                            "; rollback failed too: {}",
                            clip(&failure_line(rollback_failure), 300)
                        ));
                    }
                    if !rollback.restored.is_empty() {
                        summary.push_str(&format!("; {}", restored_line(&rollback.restored)));
                    }
                    rollback.restored.len()
                }
            };
            metrics.push(Metric::new(
                "targets.rolled_back",
                rolled_back as f64,
                "targets",
            ));
            Report::failed(summary)
        }
    };
    let mut report = report
        .with_metrics(metrics)
        .with_output("deployment-id", &outcome.deployment_id)
        .with_output("revision", label);
    if let Some(rollback) = &outcome.rollback {
        report = report.with_output("rollback-deployment-id", &rollback.deployment_id);
    }
    report
}

fn failure_line(failure: &Failure) -> String {
    match failure {
        Failure::Target {
            target,
            event,
            detail,
        } => format!("{event} failed on {target}: {detail}"),
        Failure::Alarm(why) => format!("stopped by an alarm: {why}"),
        Failure::Bake { wave, why } => format!("the bake after wave {wave} failed: {why}"),
    }
}

/// `rolled back 2 targets to 1.1.0`, or per label when they differ.
fn restored_line(restored: &[(String, Option<String>)]) -> String {
    let mut by_label: Vec<(Option<String>, usize)> = Vec::new();
    for (_, label) in restored {
        match by_label.iter_mut().find(|(l, _)| l == label) {
            Some((_, n)) => *n += 1,
            None => by_label.push((label.clone(), 1)),
        }
    }
    let parts: Vec<String> = by_label
        .into_iter()
        .map(|(label, n)| match label {
            Some(label) => format!("{} to {label}", plural(n, "target")),
            None => format!(
                "{} to nothing (no earlier good revision; stopped)",
                plural(n, "target")
            ),
        })
        .collect();
    format!("rolled back {}", parts.join(", "))
}

fn clip(text: &str, max: usize) -> String {
    let one_line = text.replace('\n', " ⏎ ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let cut: String = one_line.chars().take(max).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests;
