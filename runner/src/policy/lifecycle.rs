//! The life of an organisation check at an instant: before `warn-from` it is silent,
//! from `warn-from` a violation warns (saying when it will be enforced), from
//! `enforce-from` it blocks (the run, or promotion into protected stages); an
//! exemption lets a pipeline through until it expires, and an expired one says so.

use serde::Serialize;

use super::checks::{CheckResult, Findings};
use super::{Blocks, CheckSpec, Exemption, Policy};

/// Where a check stands for one pipeline at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "standing", rename_all = "kebab-case")]
pub enum Standing {
    /// No violation.
    Passes,
    /// Violated, but before `warn-from`: not shown to engineers (reports show it).
    Announced { warn_from: jiff::civil::Date },
    /// Violated, in the warning period; enforced from `enforce_from` when set.
    Warns {
        enforce_from: Option<jiff::civil::Date>,
    },
    /// Violated and enforced.
    Enforced { blocks: BlocksName },
    /// Violated, enforced or warning, but an exemption lets the pipeline through.
    Exempt {
        approved_by: String,
        reason: String,
        expires: Option<jiff::civil::Date>,
    },
    /// The custom check could not run (its plugin failed); shown, never blocking.
    Failed { reason: String },
}

/// [`Blocks`] as reports spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlocksName {
    Run,
    Promotion,
}

impl From<Blocks> for BlocksName {
    fn from(b: Blocks) -> Self {
        match b {
            Blocks::Run => BlocksName::Run,
            Blocks::Promotion => BlocksName::Promotion,
        }
    }
}

/// One check's standing for a pipeline, with what it found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckStatus {
    pub check: String,
    pub message: String,
    pub standing: Standing,
    /// The violations (empty when it passes).
    pub violations: Vec<super::checks::Violation>,
    /// An exemption of this pipeline from this check that has expired, if any: it
    /// no longer applies, and the status says so.
    pub expired_exemption: Option<jiff::civil::Date>,
}

/// Something to show engineers where they look (run and validate output, the GitHub
/// job summary, `sluice explain`): a warning with its enforcement date, an exemption
/// in use, an exemption that expired.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub check: String,
    /// One line, e.g. "check `prod-bake` (enforced from 2027-01-15): production
    /// stages bake for at least 1h with 3 data points; stage `prod` bakes 10m".
    pub text: String,
    pub status: CheckStatus,
}

/// The day (UTC) of an instant: warn-from, enforce-from and expires are UTC dates, so
/// a check warns from 00:00 UTC of `warn-from`, and an exemption applies through
/// 23:59:59 UTC of `expires`.
pub fn utc_day(now: jiff::Timestamp) -> jiff::civil::Date {
    now.to_zoned(jiff::tz::TimeZone::UTC).date()
}

/// Every check's standing for the pipeline at `now`, in the policy's order (checks
/// without a result in `findings` are left out).
pub fn status_at(policy: &Policy, findings: &Findings, now: jiff::Timestamp) -> Vec<CheckStatus> {
    let today = utc_day(now);
    policy
        .checks
        .iter()
        .filter_map(|check| {
            let result = findings.results.iter().find(|r| r.check == check.id)?;
            Some(standing_of(
                policy,
                check,
                result,
                &findings.pipeline,
                today,
            ))
        })
        .collect()
}

fn standing_of(
    policy: &Policy,
    check: &CheckSpec,
    result: &CheckResult,
    pipeline: &str,
    today: jiff::civil::Date,
) -> CheckStatus {
    let exemptions: Vec<&Exemption> = policy
        .exemptions
        .iter()
        .filter(|e| e.check == check.id && e.pipeline.matches(pipeline))
        .collect();
    // A permanent exemption, or the one that lasts longest.
    let active = exemptions
        .iter()
        .filter(|e| e.expires.is_none_or(|last| today <= last))
        .max_by_key(|e| e.expires.map_or((1, None), |d| (0, Some(d))))
        .copied();
    let expired_exemption = match active {
        Some(_) => None,
        None => exemptions.iter().filter_map(|e| e.expires).max(),
    };
    let standing = if let Some(reason) = &result.error {
        Standing::Failed {
            reason: reason.clone(),
        }
    } else if result.violations.is_empty() {
        Standing::Passes
    } else if let Some(e) = active {
        Standing::Exempt {
            approved_by: e.approved_by.clone(),
            reason: match &e.ticket {
                Some(ticket) => format!("{}; {ticket}", e.reason),
                None => e.reason.clone(),
            },
            expires: e.expires,
        }
    } else if check.enforce_from.is_some_and(|d| today >= d) {
        Standing::Enforced {
            blocks: check.blocks.into(),
        }
    } else if let Some(warn_from) = check.warn_from.filter(|d| today < *d) {
        Standing::Announced { warn_from }
    } else {
        Standing::Warns {
            enforce_from: check.enforce_from,
        }
    };
    CheckStatus {
        check: check.id.clone(),
        message: check.message.clone(),
        standing,
        violations: result.violations.clone(),
        expired_exemption,
    }
}

impl CheckStatus {
    /// Whether it stops the run before any step: enforced, blocking the run.
    pub fn blocks_run(&self) -> bool {
        matches!(
            self.standing,
            Standing::Enforced {
                blocks: BlocksName::Run
            }
        )
    }

    /// Whether it denies entry into protected stages: enforced, blocking promotion.
    pub fn blocks_promotion(&self) -> bool {
        matches!(
            self.standing,
            Standing::Enforced {
                blocks: BlocksName::Promotion
            }
        )
    }

    /// Where the check stands, in words: "will be enforced from 2027-01-15",
    /// "enforced since 2027-01-15; blocks the run", "exempt until 2027-03-01 (approved
    /// by dana@acme.example: reason; REL-1234)". `None` when it passes.
    pub fn phase(&self, check: &CheckSpec) -> Option<String> {
        let phase = match &self.standing {
            Standing::Passes => return None,
            Standing::Announced { warn_from } => format!("will warn from {warn_from}"),
            Standing::Warns {
                enforce_from: Some(d),
            } => format!("will be enforced from {d}"),
            Standing::Warns { enforce_from: None } => "warning only, not enforced".to_string(),
            Standing::Enforced { blocks } => {
                let since = check
                    .enforce_from
                    .map(|d| format!("enforced since {d}"))
                    .unwrap_or_else(|| "enforced".into());
                match blocks {
                    BlocksName::Run => format!("{since}; blocks the run"),
                    BlocksName::Promotion => {
                        format!("{since}; blocks promotion into protected stages")
                    }
                }
            }
            Standing::Exempt {
                approved_by,
                reason,
                expires,
            } => {
                let until = match expires {
                    Some(d) => format!("exempt until {d}"),
                    None => "exempt permanently".to_string(),
                };
                format!("{until} (approved by {approved_by}: {reason})")
            }
            Standing::Failed { reason } => format!("could not run: {reason}"),
        };
        Some(match self.expired_exemption {
            Some(d) => format!("exemption expired on {d}; the check applies again; {phase}"),
            None => phase,
        })
    }

    /// The violations in one line, each with its place in `sluice.toml`.
    pub fn violations_text(&self) -> String {
        self.violations
            .iter()
            .map(|v| match &v.at {
                Some(at) => format!("{} ({}:{}:{})", v.message, at.file, at.line, at.column),
                None => v.message.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Notice {
    /// The notice for a check's status, for engineers: every standing but Passes and
    /// Announced (before warn-from a check is silent), e.g. "check `prod-bake` (will be
    /// enforced from 2027-01-15): stage `prod` bakes 10m with 1 positive data point;
    /// the policy asks for at least 1h and 3 (sluice.toml:40:1). Production stages
    /// bake at least 1h with 3 positive data points."
    pub fn for_status(check: &CheckSpec, status: &CheckStatus) -> Option<Notice> {
        if matches!(
            status.standing,
            Standing::Passes | Standing::Announced { .. }
        ) {
            return None;
        }
        let phase = status.phase(check)?;
        let mut text = format!("check `{}` ({phase})", check.id);
        let found = status.violations_text();
        if !found.is_empty() {
            text.push_str(&format!(": {found}"));
        }
        let message = check.message.trim();
        if !message.is_empty() && !matches!(status.standing, Standing::Failed { .. }) {
            text.push_str(&format!(". {message}"));
        }
        Some(Notice {
            check: check.id.clone(),
            text,
            status: status.clone(),
        })
    }
}

/// The notices of every status that does not stop the run (warnings, promotion
/// blocks, exemptions in use or expired, checks that could not run), in the policy's
/// order. Enforced run-blocking statuses are errors instead ([`CheckStatus::blocks_run`]).
pub fn notices(policy: &Policy, statuses: &[CheckStatus]) -> Vec<Notice> {
    statuses
        .iter()
        .filter(|s| !s.blocks_run())
        .filter_map(|s| {
            let check = policy.checks.iter().find(|c| c.id == s.check)?;
            Notice::for_status(check, s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Pattern;
    use crate::policy::checks::testing::{builtin, date, policy, pos};
    use crate::policy::checks::{SourcePosShown, Violation};

    fn bake_check() -> CheckSpec {
        let mut check = builtin(
            "prod-bake",
            "production-bake",
            serde_json::json!({"duration": "1h", "positive": 3}),
        );
        check.message = "Production stages bake at least 1h with 3 positive data points.".into();
        check.warn_from = Some(date("2026-12-01"));
        check.enforce_from = Some(date("2027-01-15"));
        check
    }

    fn exemption(pipeline: &str, expires: Option<&str>) -> Exemption {
        Exemption {
            check: "prod-bake".into(),
            pipeline: Pattern(pipeline.into()),
            reason: "bake monitors land in Q1".into(),
            approved_by: "dana@acme.example".into(),
            ticket: Some("REL-1234".into()),
            expires: expires.map(date),
            pos: pos(),
        }
    }

    fn violated(pipeline: &str) -> Findings {
        Findings {
            pipeline: pipeline.into(),
            results: vec![CheckResult {
                check: "prod-bake".into(),
                violations: vec![Violation {
                    message: "stage `prod` bakes 10m with 1 positive data point; the policy asks for at least 1h and 3".into(),
                    stage: Some("prod".into()),
                    step: None,
                    at: Some(SourcePosShown {
                        file: "sluice.toml".into(),
                        line: 40,
                        column: 1,
                    }),
                }],
                error: None,
            }],
        }
    }

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().expect("an instant")
    }

    fn standing(policy: &Policy, findings: &Findings, now: &str) -> Standing {
        let mut all = status_at(policy, findings, at(now));
        assert_eq!(all.len(), 1);
        all.remove(0).standing
    }

    #[test]
    fn a_check_is_announced_then_warns_then_is_enforced_at_midnight_utc() {
        let policy = policy(vec![bake_check()], Vec::new());
        let findings = violated("shop");
        assert_eq!(
            standing(&policy, &findings, "2026-11-30T23:59:59Z"),
            Standing::Announced {
                warn_from: date("2026-12-01")
            }
        );
        let warns = Standing::Warns {
            enforce_from: Some(date("2027-01-15")),
        };
        assert_eq!(standing(&policy, &findings, "2026-12-01T00:00:00Z"), warns);
        assert_eq!(standing(&policy, &findings, "2027-01-14T23:59:59Z"), warns);
        assert_eq!(
            standing(&policy, &findings, "2027-01-15T00:00:00Z"),
            Standing::Enforced {
                blocks: BlocksName::Run
            }
        );
        // A pipeline that passes passes at every date.
        let passing = Findings {
            pipeline: "shop".into(),
            results: vec![CheckResult {
                check: "prod-bake".into(),
                violations: Vec::new(),
                error: None,
            }],
        };
        assert_eq!(
            standing(&policy, &passing, "2027-01-15T00:00:00Z"),
            Standing::Passes
        );
    }

    #[test]
    fn without_dates_a_check_warns_at_once_and_never_blocks() {
        let mut check = bake_check();
        check.warn_from = None;
        check.enforce_from = None;
        let policy = policy(vec![check], Vec::new());
        assert_eq!(
            standing(&policy, &violated("shop"), "2030-01-01T00:00:00Z"),
            Standing::Warns { enforce_from: None }
        );
    }

    #[test]
    fn an_exemption_applies_through_its_last_day_then_says_it_expired() {
        let policy = policy(
            vec![bake_check()],
            vec![exemption("legacy-*", Some("2027-03-01"))],
        );
        let findings = violated("legacy-shop");
        let last_second = status_at(&policy, &findings, at("2027-03-01T23:59:59Z"));
        assert_eq!(
            last_second[0].standing,
            Standing::Exempt {
                approved_by: "dana@acme.example".into(),
                reason: "bake monitors land in Q1; REL-1234".into(),
                expires: Some(date("2027-03-01")),
            }
        );
        assert_eq!(last_second[0].expired_exemption, None);
        let notices = notices(&policy, &last_second);
        assert_eq!(
            notices[0].text,
            "check `prod-bake` (exempt until 2027-03-01 (approved by dana@acme.example: bake monitors land in Q1; REL-1234)): stage `prod` bakes 10m with 1 positive data point; the policy asks for at least 1h and 3 (sluice.toml:40:1). Production stages bake at least 1h with 3 positive data points."
        );
        let next_day = status_at(&policy, &findings, at("2027-03-02T00:00:00Z"));
        assert_eq!(
            next_day[0].standing,
            Standing::Enforced {
                blocks: BlocksName::Run
            }
        );
        assert!(next_day[0].blocks_run());
        assert_eq!(next_day[0].expired_exemption, Some(date("2027-03-01")));
        assert_eq!(
            next_day[0].phase(&policy.checks[0]).unwrap(),
            "exemption expired on 2027-03-01; the check applies again; enforced since 2027-01-15; blocks the run"
        );
        // Run-blocking statuses are errors, not notices.
        assert!(super::notices(&policy, &next_day).is_empty());
        // The exemption covers only the pipelines its pattern names.
        let other = status_at(&policy, &violated("shop"), at("2027-02-01T00:00:00Z"));
        assert_eq!(
            other[0].standing,
            Standing::Enforced {
                blocks: BlocksName::Run
            }
        );
        assert_eq!(other[0].expired_exemption, None);
    }

    #[test]
    fn an_exemption_covers_the_warning_period_and_a_permanent_one_never_expires() {
        let policy = policy(vec![bake_check()], vec![exemption("shop", None)]);
        for now in ["2026-12-01T00:00:00Z", "2040-01-01T00:00:00Z"] {
            assert_eq!(
                standing(&policy, &violated("shop"), now),
                Standing::Exempt {
                    approved_by: "dana@acme.example".into(),
                    reason: "bake monitors land in Q1; REL-1234".into(),
                    expires: None,
                }
            );
        }
    }

    #[test]
    fn warning_notices_say_when_the_check_will_be_enforced() {
        let policy = policy(vec![bake_check()], Vec::new());
        let statuses = status_at(&policy, &violated("shop"), at("2026-12-24T12:00:00Z"));
        let notices = notices(&policy, &statuses);
        assert_eq!(
            notices[0].text,
            "check `prod-bake` (will be enforced from 2027-01-15): stage `prod` bakes 10m with 1 positive data point; the policy asks for at least 1h and 3 (sluice.toml:40:1). Production stages bake at least 1h with 3 positive data points."
        );
        // Before warn-from, engineers see nothing.
        let early = status_at(&policy, &violated("shop"), at("2026-11-01T00:00:00Z"));
        assert!(super::notices(&policy, &early).is_empty());
    }

    #[test]
    fn a_promotion_check_is_a_notice_and_a_failed_check_never_blocks() {
        let mut check = bake_check();
        check.blocks = Blocks::Promotion;
        let policy = policy(vec![check], Vec::new());
        let statuses = status_at(&policy, &violated("shop"), at("2027-02-01T00:00:00Z"));
        assert!(statuses[0].blocks_promotion() && !statuses[0].blocks_run());
        assert!(
            notices(&policy, &statuses)[0]
                .text
                .starts_with("check `prod-bake` (enforced since 2027-01-15; blocks promotion into protected stages): ")
        );
        let failed = Findings {
            pipeline: "shop".into(),
            results: vec![CheckResult {
                check: "prod-bake".into(),
                violations: Vec::new(),
                error: Some("the plugin trapped: unreachable".into()),
            }],
        };
        let statuses = status_at(&policy, &failed, at("2027-02-01T00:00:00Z"));
        assert!(!statuses[0].blocks_run() && !statuses[0].blocks_promotion());
        assert_eq!(
            notices(&policy, &statuses)[0].text,
            "check `prod-bake` (could not run: the plugin trapped: unreachable)"
        );
    }
}
