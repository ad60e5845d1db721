//! Folding retries into the first run's results: a failed test that passes on a later
//! attempt becomes [`TestStatus::Flaky`], with each failed attempt kept as a
//! [`TestAttempt`]; one that keeps failing stays failed.

use std::time::Duration;

use sluice_sdk::{TestAttempt, TestCase, TestStatus};

/// Merge the results of one retry into `cases`. Only tests that are failed in `cases`
/// are touched; `retried` may contain more (a whole re-run), which are ignored.
/// Returns how many of the failed tests the retry reported on.
pub fn merge(cases: &mut [TestCase], retried: &[TestCase]) -> usize {
    let mut seen = 0;
    for case in cases
        .iter_mut()
        .filter(|case| case.status == TestStatus::Failed)
    {
        let Some(again) = retried
            .iter()
            .find(|again| again.suite == case.suite && again.name == case.name)
        else {
            continue;
        };
        seen += 1;
        let failed_attempt = TestAttempt::new(
            case.message.clone().unwrap_or_else(|| "failed".into()),
            case.output.clone().unwrap_or_default(),
            Duration::from_millis(case.duration_ms),
        );
        match again.status {
            TestStatus::Passed | TestStatus::Flaky => {
                let mut flaky = again.clone();
                flaky.status = TestStatus::Flaky;
                flaky.message = None;
                let mut attempts = std::mem::take(&mut case.flaky_attempts);
                attempts.push(failed_attempt);
                attempts.extend(again.flaky_attempts.iter().cloned());
                flaky.flaky_attempts = attempts;
                *case = flaky;
            }
            TestStatus::Failed => {
                // Keep the history in case a later retry passes.
                let mut attempts = std::mem::take(&mut case.flaky_attempts);
                attempts.push(failed_attempt);
                *case = again.clone();
                case.flaky_attempts = attempts;
            }
            TestStatus::Skipped => {}
        }
    }
    seen
}

/// After the last retry: a test that failed every attempt keeps its history only in
/// its message (the contract reserves attempts for flaky tests).
pub fn settle(cases: &mut [TestCase]) {
    for case in cases
        .iter_mut()
        .filter(|case| case.status == TestStatus::Failed)
    {
        if !case.flaky_attempts.is_empty() {
            let attempts = case.flaky_attempts.len() + 1;
            case.flaky_attempts.clear();
            let message = case.message.take().unwrap_or_else(|| "failed".into());
            case.message = Some(format!("{message} (failed all {attempts} attempts)"));
        }
    }
}
