//! The life of an organisation check at an instant: before `warn-from` it is silent,
//! from `warn-from` a violation warns (saying when it will be enforced), from
//! `enforce-from` it blocks (the run, or promotion into protected stages); an
//! exemption lets a pipeline through until it expires, and an expired one says so.

use serde::Serialize;

use super::checks::Findings;
use super::{Blocks, Policy};

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

/// Every check's standing for the pipeline at `now`.
pub fn status_at(policy: &Policy, findings: &Findings, now: jiff::Timestamp) -> Vec<CheckStatus> {
    let _ = (policy, findings, now);
    Vec::new()
}
