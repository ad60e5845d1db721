//! The step's `with` table: what to deploy (a bundle folder with `appspec.yml`), where
//! (waves of target groups), how (the deployment configuration), and what to do between
//! waves (bake) and after each target (health check).

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use sluice_sdk::HumanDuration;

use crate::schedule::Rule;

/// `builtin:deploy`'s `with` table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// The revision: a folder (in the step's `read` grant) with `appspec.yml` at its root.
    pub bundle: String,
    /// CodeDeploy's application name (APPLICATION_NAME); default: the pipeline's name.
    pub application: Option<String>,
    /// The deployment group (DEPLOYMENT_GROUP_NAME); default: the stage's name.
    pub deployment_group: Option<String>,
    /// `OneAtATime` (the default), `HalfAtATime`, `AllAtOnce`, or
    /// `{ minimum-healthy-hosts = { type = "HOST_COUNT" | "FLEET_PERCENT", value = 2 } }`.
    #[serde(default)]
    pub config: DeploymentConfig,
    /// Target groups in the order they are deployed to, e.g. `["one-box", "zone-a",
    /// "rest"]`; default: the granted groups in the pipeline's order.
    pub waves: Option<Vec<String>>,
    /// A bake after every wave but the last; a failed bake stops the rollout.
    pub bake_between_waves: Option<BakeConfig>,
    /// After ValidateService, GET `<target url><path>` until it answers as expected.
    pub health_check: Option<HealthCheck>,
    /// Go on when the previous revision's ApplicationStop hooks fail.
    #[serde(default)]
    pub ignore_application_stop_failures: bool,
    /// Deploy even to targets that already run this revision, healthy.
    #[serde(default)]
    pub force: bool,
    /// Roll every touched target back to its last good revision when the deployment
    /// fails or an alarm fires (default true).
    #[serde(default = "yes")]
    pub rollback: bool,
}

fn yes() -> bool {
    true
}

/// A deployment configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum DeploymentConfig {
    /// One of CodeDeploy's predefined configurations.
    Named(NamedConfig),
    /// A custom minimum of healthy hosts.
    Custom(CustomConfig),
}

impl Default for DeploymentConfig {
    fn default() -> Self {
        DeploymentConfig::Named(NamedConfig::OneAtATime)
    }
}

impl DeploymentConfig {
    /// The scheduling rule it stands for.
    pub fn rule(&self) -> Rule {
        match self {
            DeploymentConfig::Named(NamedConfig::OneAtATime) => Rule::OneAtATime,
            DeploymentConfig::Named(NamedConfig::HalfAtATime) => Rule::HalfAtATime,
            DeploymentConfig::Named(NamedConfig::AllAtOnce) => Rule::AllAtOnce,
            DeploymentConfig::Custom(c) => match c.minimum_healthy_hosts.kind {
                MinimumKind::HostCount => Rule::HostCount(c.minimum_healthy_hosts.value),
                MinimumKind::FleetPercent => Rule::FleetPercent(c.minimum_healthy_hosts.value),
            },
        }
    }
}

/// CodeDeploy's predefined in-place configurations.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
pub enum NamedConfig {
    /// Minimum 99% healthy: one target at a time.
    #[serde(alias = "CodeDeployDefault.OneAtATime")]
    OneAtATime,
    /// Minimum 50% healthy: half the targets at a time, rounded down.
    #[serde(alias = "CodeDeployDefault.HalfAtATime")]
    HalfAtATime,
    /// Minimum 0: every target at once.
    #[serde(alias = "CodeDeployDefault.AllAtOnce")]
    AllAtOnce,
}

/// `{ minimum-healthy-hosts = { type, value } }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CustomConfig {
    pub minimum_healthy_hosts: MinimumHealthyHosts,
}

/// How many targets must stay healthy.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MinimumHealthyHosts {
    /// `HOST_COUNT` (a number of targets) or `FLEET_PERCENT` (0 to 99, rounded up).
    #[serde(rename = "type")]
    pub kind: MinimumKind,
    pub value: u64,
}

/// The unit of a minimum.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
pub enum MinimumKind {
    #[serde(rename = "HOST_COUNT")]
    HostCount,
    #[serde(rename = "FLEET_PERCENT")]
    FleetPercent,
}

/// `bake-between-waves`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BakeConfig {
    /// At least this long, e.g. `3s` or `10m`.
    pub duration: HumanDuration,
    /// At least this many positive data points of the monitors (default 1).
    #[serde(default = "one")]
    pub positive: u64,
    /// Ids of the pipeline's `[[monitor]]`s to watch.
    pub monitors: Vec<String>,
    /// Fail the bake when it is not done after this long.
    pub timeout: Option<HumanDuration>,
}

fn one() -> u64 {
    1
}

/// `health-check`: after ValidateService, GET `<target url><path>`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HealthCheck {
    /// Path appended to the target's `url`, e.g. `/health` (default `/`).
    #[serde(default = "root_path")]
    pub path: String,
    /// The status that counts as healthy (default 200).
    #[serde(default = "ok_status")]
    pub expect_status: u16,
    /// Timeout of one request (default `2s`).
    #[serde(default = "two_seconds")]
    pub timeout: HumanDuration,
    /// Requests before the target counts as unhealthy (default 10).
    #[serde(default = "ten")]
    pub attempts: u32,
    /// Pause between requests (default `200ms`).
    #[serde(default = "fifth_of_a_second")]
    pub interval: HumanDuration,
}

fn root_path() -> String {
    "/".into()
}
fn ok_status() -> u16 {
    200
}
fn two_seconds() -> HumanDuration {
    HumanDuration(Duration::from_secs(2))
}
fn ten() -> u32 {
    10
}
fn fifth_of_a_second() -> HumanDuration {
    HumanDuration(Duration::from_millis(200))
}
