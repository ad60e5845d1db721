//! Deployment configurations and scheduling, as pure functions: the minimum healthy
//! hosts of a configuration with CodeDeploy's rounding, how many targets may be down
//! at once, the order in which a wave's targets are taken (unhealthy, then unknown,
//! then old revision), and the batches of a wave.

use std::fmt;

use sluice_sdk::deploy::{HostState, TargetRecord};

/// A deployment configuration (CodeDeploy's `CodeDeployDefault.*` and custom minimum
/// healthy hosts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Minimum 99% healthy, one target at a time (the default).
    OneAtATime,
    /// Minimum 50% healthy: up to half the targets at a time, rounded down.
    HalfAtATime,
    /// Minimum 0: every target at once.
    AllAtOnce,
    /// At least this many targets stay healthy.
    HostCount(u64),
    /// At least this percentage of the fleet stays healthy (0 to 99), converted to a
    /// count at the start and rounded up.
    FleetPercent(u64),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::OneAtATime => f.write_str("OneAtATime"),
            Rule::HalfAtATime => f.write_str("HalfAtATime"),
            Rule::AllAtOnce => f.write_str("AllAtOnce"),
            Rule::HostCount(n) => write!(f, "minimum {n} healthy hosts"),
            Rule::FleetPercent(p) => write!(f, "minimum {p}% healthy hosts"),
        }
    }
}

/// What a configuration means for one fleet: how many targets must stay healthy and
/// how many may be deployed to at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub rule: Rule,
    pub fleet: usize,
    pub minimum_healthy: usize,
    pub batch_size: usize,
}

impl Plan {
    /// The configuration as people read it, e.g. `OneAtATime (minimum 4 of 5 healthy)`.
    pub fn describe(&self) -> String {
        format!(
            "{} (minimum {} of {} healthy, {} at a time)",
            self.rule, self.minimum_healthy, self.fleet, self.batch_size
        )
    }
}

/// Apply `rule` to a fleet of `fleet` targets. A minimum that equals or exceeds the
/// fleet leaves nothing to deploy to and is refused with the numbers (OneAtATime
/// excepted: it always deploys one at a time), as CodeDeploy refuses it.
pub fn plan(rule: Rule, fleet: usize) -> Result<Plan, String> {
    let n = fleet;
    let minimum = match rule {
        Rule::OneAtATime => n.saturating_sub(1),
        // Half at a time, rounded down, at least one: the rest stay healthy.
        Rule::HalfAtATime => n - (n / 2).max(1).min(n),
        Rule::AllAtOnce => 0,
        Rule::HostCount(count) => usize::try_from(count).unwrap_or(usize::MAX),
        Rule::FleetPercent(percent) => {
            if percent > 99 {
                return Err(format!(
                    "FLEET_PERCENT {percent}: the minimum healthy percentage is 0 to 99"
                ));
            }
            (percent as usize * n).div_ceil(100)
        }
    };
    if n > 0 && minimum >= n && rule != Rule::OneAtATime {
        let how = match rule {
            Rule::FleetPercent(p) => format!("{p}% of {n} targets, rounded up, is {minimum}"),
            _ => format!("the minimum is {minimum}"),
        };
        return Err(format!(
            "{rule} cannot deploy to a fleet of {n} targets: {how}, which leaves no target to deploy to; lower the minimum below {n}"
        ));
    }
    let batch_size = if minimum == 0 {
        n.max(1)
    } else {
        (n - minimum).max(1)
    };
    Ok(Plan {
        rule,
        fleet: n,
        minimum_healthy: minimum,
        batch_size,
    })
}

/// Where a target stands before a deployment, for scheduling and skipping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Standing {
    /// Its current revision failed: deployed to first.
    Unhealthy,
    /// A deployment was under way (the runner died) or it was never deployed to.
    Unknown,
    /// Healthy on another revision.
    OldRevision,
    /// Healthy on the revision being deployed: skipped unless forced.
    CurrentRevision,
}

/// Where a target with `record` stands against a revision of `digest`.
pub fn standing(record: &TargetRecord, digest: &str) -> Standing {
    match record.state {
        HostState::Failed => Standing::Unhealthy,
        HostState::Fresh | HostState::Installing => Standing::Unknown,
        HostState::Healthy => match &record.current {
            Some(current) if current.digest == digest => Standing::CurrentRevision,
            Some(_) => Standing::OldRevision,
            None => Standing::Unknown,
        },
    }
}

/// The order CodeDeploy takes instances in: unhealthy, then unknown, then old
/// revision, then current revision; the declaration order within each. `items` pairs a
/// target with its standing; the sort is stable.
pub fn order<T>(mut items: Vec<(T, Standing)>) -> Vec<(T, Standing)> {
    items.sort_by_key(|(_, standing)| *standing);
    items
}

/// Cut a wave's targets (already ordered) into batches of at most `batch_size`.
/// Batches never cross a wave: call this once per wave.
pub fn batches<T: Clone>(wave: &[T], batch_size: usize) -> Vec<Vec<T>> {
    wave.chunks(batch_size.max(1)).map(<[T]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::deploy::Revision;

    fn min(rule: Rule, n: usize) -> (usize, usize) {
        let p = plan(rule, n).unwrap();
        (p.minimum_healthy, p.batch_size)
    }

    #[test]
    fn half_at_a_time_of_nine_deploys_four_at_a_time_and_keeps_five() {
        assert_eq!(min(Rule::HalfAtATime, 9), (5, 4));
        assert_eq!(min(Rule::HalfAtATime, 10), (5, 5));
        assert_eq!(min(Rule::HalfAtATime, 2), (1, 1));
        assert_eq!(min(Rule::HalfAtATime, 1), (0, 1));
    }

    #[test]
    fn one_at_a_time_always_deploys_one_target() {
        assert_eq!(min(Rule::OneAtATime, 1), (0, 1));
        assert_eq!(min(Rule::OneAtATime, 5), (4, 1));
        assert_eq!(min(Rule::OneAtATime, 100), (99, 1));
    }

    #[test]
    fn all_at_once_and_a_zero_minimum_deploy_everything() {
        assert_eq!(min(Rule::AllAtOnce, 7), (0, 7));
        assert_eq!(min(Rule::HostCount(0), 7), (0, 7));
        assert_eq!(min(Rule::FleetPercent(0), 7), (0, 7));
    }

    #[test]
    fn fleet_percent_is_rounded_up() {
        // The reference's table: percent of a fleet, converted at the start, rounded up.
        assert_eq!(min(Rule::FleetPercent(50), 9), (5, 4));
        assert_eq!(min(Rule::FleetPercent(75), 10), (8, 2));
        assert_eq!(min(Rule::FleetPercent(30), 4), (2, 2));
        assert_eq!(min(Rule::FleetPercent(1), 10), (1, 9));
        assert_eq!(min(Rule::FleetPercent(90), 10), (9, 1));
        assert_eq!(min(Rule::FleetPercent(66), 3), (2, 1));
    }

    #[test]
    fn ninety_five_percent_of_ten_fails_at_once_with_the_numbers() {
        let err = plan(Rule::FleetPercent(95), 10).unwrap_err();
        assert!(
            err.contains("95% of 10 targets, rounded up, is 10"),
            "{err}"
        );
        let err = plan(Rule::HostCount(3), 3).unwrap_err();
        assert!(err.contains("fleet of 3 targets"), "{err}");
        assert!(plan(Rule::HostCount(4), 3).is_err());
        assert!(plan(Rule::FleetPercent(100), 10).is_err());
        assert_eq!(min(Rule::HostCount(2), 3), (2, 1));
    }

    fn record(state: HostState, digest: Option<&str>) -> TargetRecord {
        TargetRecord {
            current: digest.map(|d| Revision {
                deployment_id: "d-1".into(),
                label: "1.0".into(),
                digest: d.into(),
                archive: "/a".into(),
                installed: vec![],
                run_id: "r".into(),
            }),
            last_good: None,
            state,
        }
    }

    #[test]
    fn targets_are_taken_unhealthy_then_unknown_then_old_revision() {
        let items = vec![
            (
                "current",
                standing(&record(HostState::Healthy, Some("new")), "new"),
            ),
            (
                "old-1",
                standing(&record(HostState::Healthy, Some("old")), "new"),
            ),
            ("fresh", standing(&record(HostState::Fresh, None), "new")),
            (
                "failed",
                standing(&record(HostState::Failed, Some("old")), "new"),
            ),
            (
                "old-2",
                standing(&record(HostState::Healthy, Some("old")), "new"),
            ),
            (
                "installing",
                standing(&record(HostState::Installing, Some("new")), "new"),
            ),
        ];
        let names: Vec<_> = order(items).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["failed", "fresh", "installing", "old-1", "old-2", "current"]
        );
    }

    #[test]
    fn batches_never_exceed_the_batch_size() {
        let wave = ["a", "b", "c", "d", "e"];
        assert_eq!(
            batches(&wave, 2),
            vec![vec!["a", "b"], vec!["c", "d"], vec!["e"]]
        );
        assert_eq!(batches(&wave, 9), vec![wave.to_vec()]);
    }
}
