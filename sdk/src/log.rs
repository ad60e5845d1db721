//! Structured log lines and progress, through the host's `log` import: the runner shows
//! them live and stores them in the step log.
//!
//! ```no_run
//! use sluice_sdk::log;
//! log::info("scanning the lock file");
//! log::write(log::Level::Warn, "slow response", [("url", "http://localhost/"), ("ms", "812")]);
//! sluice_sdk::progress(3, 10, "checked 3 of 10 files");
//! ```
//!
//! Outside a WebAssembly host (a plugin's native unit tests), lines go to stderr.

use std::fmt::Display;

pub use crate::bindings::sluice::plugin::log::Level;

/// Write one log line at `level` with `key`, `value` fields.
pub fn write<K, V>(level: Level, message: impl AsRef<str>, fields: impl IntoIterator<Item = (K, V)>)
where
    K: Into<String>,
    V: Display,
{
    let fields: Vec<(String, String)> = fields
        .into_iter()
        .map(|(key, value)| (key.into(), value.to_string()))
        .collect();
    host::write(level, message.as_ref(), &fields);
}

/// A log line at `trace` level.
pub fn trace(message: impl AsRef<str>) {
    host::write(Level::Trace, message.as_ref(), &[]);
}

/// A log line at `debug` level.
pub fn debug(message: impl AsRef<str>) {
    host::write(Level::Debug, message.as_ref(), &[]);
}

/// A log line at `info` level.
pub fn info(message: impl AsRef<str>) {
    host::write(Level::Info, message.as_ref(), &[]);
}

/// A log line at `warn` level.
pub fn warn(message: impl AsRef<str>) {
    host::write(Level::Warn, message.as_ref(), &[]);
}

/// A log line at `error` level.
pub fn error(message: impl AsRef<str>) {
    host::write(Level::Error, message.as_ref(), &[]);
}

/// Tell the runner how far the step has come: `done` out of `total` units, where
/// `total` is a number or `None` when unknown: `progress(3, 10, "3 of 10 files")`.
pub fn progress(done: u64, total: impl Into<Option<u64>>, message: impl AsRef<str>) {
    host::progress(done, total.into(), message.as_ref());
}

#[cfg(target_arch = "wasm32")]
mod host {
    use super::Level;
    use crate::bindings::sluice::plugin::log;

    pub(super) fn write(level: Level, message: &str, fields: &[(String, String)]) {
        log::write(level, message, fields);
    }

    pub(super) fn progress(done: u64, total: Option<u64>, message: &str) {
        log::progress(done, total, message);
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod host {
    //! Native stand-in for the `log` import, so that plugin code runs in unit tests.
    use super::Level;

    pub(super) fn write(level: Level, message: &str, fields: &[(String, String)]) {
        let fields: String = fields
            .iter()
            .map(|(key, value)| format!(" {key}={value}"))
            .collect();
        let level = match level {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        };
        eprintln!("{level} {message}{fields}");
    }

    pub(super) fn progress(done: u64, total: Option<u64>, message: &str) {
        match total {
            Some(total) => eprintln!("[progress {done}/{total}] {message}"),
            None => eprintln!("[progress {done}] {message}"),
        }
    }
}
