//! The runner's notion of "now" for everything durable: gate decisions, approvals,
//! overrides and their expiry, time windows, stage entries.
//!
//! In production it is the system clock. Tests control it: with
//! `SLUICE_TEST_CLOCK=<file>`, the file holds one RFC 3339 instant
//! (`2026-11-30T08:00:00Z`), re-read on every [`Clock::now`]; a test moves time by
//! rewriting the file, never by sleeping. How often a waiting run re-evaluates its gates
//! is real time: [`Clock::poll_interval`], 10 s by default, `SLUICE_GATE_POLL_MS` in
//! tests.
//!
//! A test should rewrite the clock file atomically (write a temporary file, rename it
//! over the clock file). A read that finds the file torn or unreadable is retried
//! briefly; if it stays bad, the clock keeps the last instant it read and logs a
//! warning, so a running pipeline never jumps to a made-up time.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The variable naming the test clock's file.
pub const TEST_CLOCK_VAR: &str = "SLUICE_TEST_CLOCK";
/// The variable setting the gate poll interval, in milliseconds.
pub const POLL_MS_VAR: &str = "SLUICE_GATE_POLL_MS";
/// How often a waiting run re-evaluates its gates unless `SLUICE_GATE_POLL_MS` says
/// otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// Where the current time comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> jiff::Timestamp;
    /// How long a waiting run sleeps (real time) before it evaluates its gates again.
    fn poll_interval(&self) -> Duration;
}

/// The clock a command uses: the test clock when `SLUICE_TEST_CLOCK` is set, else the
/// system clock. An unreadable or malformed test clock file is an error naming the file.
pub fn from_env() -> Result<Arc<dyn Clock>, String> {
    from_vars(
        std::env::var_os(TEST_CLOCK_VAR),
        std::env::var_os(POLL_MS_VAR),
    )
}

/// [`from_env`] with the two variables' values given (for tests and callers that read
/// the environment elsewhere).
pub fn from_vars(
    test_clock: Option<OsString>,
    poll_ms: Option<OsString>,
) -> Result<Arc<dyn Clock>, String> {
    let poll = match poll_ms {
        None => DEFAULT_POLL_INTERVAL,
        Some(value) => parse_poll_ms(&value)?,
    };
    match test_clock {
        None => Ok(Arc::new(SystemClock { poll })),
        Some(path) if path.is_empty() => Err(format!(
            "{TEST_CLOCK_VAR} is set but empty; set it to a file holding one RFC 3339 instant, e.g. 2026-11-30T08:00:00Z, or unset it"
        )),
        Some(path) => {
            let path = PathBuf::from(path);
            let first = read_clock_file(&path)?;
            Ok(Arc::new(FileClock {
                path,
                poll,
                last: Mutex::new(first),
            }))
        }
    }
}

fn parse_poll_ms(value: &OsString) -> Result<Duration, String> {
    let text = value.to_string_lossy();
    match text.trim().parse::<u64>() {
        Ok(0) => Err(format!(
            "{POLL_MS_VAR}=0: the gate poll interval must be at least 1 millisecond"
        )),
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(_) => Err(format!(
            "{POLL_MS_VAR}=`{text}` is not a whole number of milliseconds (e.g. {POLL_MS_VAR}=200)"
        )),
    }
}

/// Read and parse the test clock file.
fn read_clock_file(path: &Path) -> Result<jiff::Timestamp, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the test clock file {} ({TEST_CLOCK_VAR}): {e}",
            path.display()
        )
    })?;
    let instant = text.trim();
    instant.parse::<jiff::Timestamp>().map_err(|_| {
        let shown: String = instant.chars().take(60).collect();
        format!(
            "the test clock file {} ({TEST_CLOCK_VAR}) holds `{shown}`, which is not an instant; write one RFC 3339 instant such as 2026-11-30T08:00:00Z",
            path.display()
        )
    })
}

/// The machine's clock.
#[derive(Debug)]
struct SystemClock {
    poll: Duration,
}

impl Clock for SystemClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
    fn poll_interval(&self) -> Duration {
        self.poll
    }
}

/// The test clock: the instant written in a file, re-read on every `now()`.
#[derive(Debug)]
struct FileClock {
    path: PathBuf,
    poll: Duration,
    /// The last instant read successfully, kept for a read that finds the file torn.
    last: Mutex<jiff::Timestamp>,
}

/// How often a bad read of the test clock file is retried, and the pause between.
const TORN_READ_RETRIES: u32 = 5;
const TORN_READ_PAUSE: Duration = Duration::from_millis(2);

impl Clock for FileClock {
    fn now(&self) -> jiff::Timestamp {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let mut error = String::new();
        for attempt in 0..=TORN_READ_RETRIES {
            match read_clock_file(&self.path) {
                Ok(now) => {
                    *last = now;
                    return now;
                }
                Err(e) => error = e,
            }
            if attempt < TORN_READ_RETRIES {
                std::thread::sleep(TORN_READ_PAUSE);
            }
        }
        tracing::warn!("{error}; keeping the last instant read, {}", *last);
        *last
    }
    fn poll_interval(&self) -> Duration {
        self.poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock_file(content: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clock");
        std::fs::write(&path, content).unwrap();
        (dir, path)
    }

    #[test]
    fn without_variables_the_system_clock_ticks_with_the_default_poll() {
        let clock = from_vars(None, None).unwrap();
        let before = jiff::Timestamp::now();
        let now = clock.now();
        assert!(now >= before && now <= jiff::Timestamp::now());
        assert_eq!(clock.poll_interval(), DEFAULT_POLL_INTERVAL);
    }

    #[test]
    fn the_test_clock_is_reread_on_every_now() {
        let (_dir, path) = clock_file("2026-11-30T08:00:00Z\n");
        let clock = from_vars(Some(path.clone().into()), Some("25".into())).unwrap();
        assert_eq!(clock.now().to_string(), "2026-11-30T08:00:00Z");
        assert_eq!(clock.poll_interval(), Duration::from_millis(25));
        std::fs::write(&path, "2026-11-30T10:30:00+01:00").unwrap();
        assert_eq!(clock.now().to_string(), "2026-11-30T09:30:00Z");
    }

    #[test]
    fn a_malformed_test_clock_file_is_an_error_naming_it_and_the_expected_form() {
        let (_dir, path) = clock_file("next tuesday");
        let e = from_vars(Some(path.clone().into()), None).unwrap_err();
        assert_eq!(
            e,
            format!(
                "the test clock file {} (SLUICE_TEST_CLOCK) holds `next tuesday`, which is not an instant; write one RFC 3339 instant such as 2026-11-30T08:00:00Z",
                path.display()
            )
        );
    }

    #[test]
    fn a_missing_test_clock_file_is_an_error_naming_it() {
        let e = from_vars(Some("/nonexistent/clock".into()), None).unwrap_err();
        assert!(
            e.starts_with(
                "cannot read the test clock file /nonexistent/clock (SLUICE_TEST_CLOCK): "
            ),
            "{e}"
        );
        let e = from_vars(Some("".into()), None).unwrap_err();
        assert!(e.starts_with("SLUICE_TEST_CLOCK is set but empty"), "{e}");
    }

    #[test]
    fn a_clock_file_gone_bad_later_keeps_the_last_instant() {
        let (_dir, path) = clock_file("2026-11-30T08:00:00Z");
        let clock = from_vars(Some(path.clone().into()), None).unwrap();
        assert_eq!(clock.now().to_string(), "2026-11-30T08:00:00Z");
        std::fs::write(&path, "").unwrap();
        assert_eq!(clock.now().to_string(), "2026-11-30T08:00:00Z");
    }

    #[test]
    fn the_poll_interval_must_be_a_positive_number_of_milliseconds() {
        assert_eq!(
            from_vars(None, Some("fast".into())).unwrap_err(),
            "SLUICE_GATE_POLL_MS=`fast` is not a whole number of milliseconds (e.g. SLUICE_GATE_POLL_MS=200)"
        );
        assert_eq!(
            from_vars(None, Some("0".into())).unwrap_err(),
            "SLUICE_GATE_POLL_MS=0: the gate poll interval must be at least 1 millisecond"
        );
    }
}
