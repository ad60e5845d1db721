//! The step log: everything a step prints (its WASI stdout and stderr, its `log` and
//! `progress` calls, and the output of native programs it runs) goes into one log file
//! per step, with a size cap.
//!
//! Once the cap is reached one `[output truncated after N bytes]` marker is written and
//! the rest is dropped while the step keeps running, so a plugin that floods its output
//! costs the runner neither memory nor disk beyond the cap.
//!
//! Every line is redacted (the run's secrets become `***`) before it is written, kept
//! for the tail, or sent as an event. Output is assembled into whole lines first, so a
//! secret split across writes is caught; a line longer than [`MAX_LINE`] is cut only
//! where no secret can straddle the cut. Multi-line messages of the `log` import are
//! split, each line tagged as the plugin's.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::events::{Event, EventSink};
use crate::host::bindings::sluice::plugin::log as wit_log;
use crate::secrets::redact::Redactor;

/// Default cap of one step's log.
pub const DEFAULT_LOG_LIMIT: u64 = 16 << 20;

/// Lines kept in memory to show under a failed step.
const TAIL_LINES: usize = 40;

/// Longest line kept as one; longer ones are split.
const MAX_LINE: usize = 16 << 10;

/// How much of the guest's latest standard error is kept apart (also past the cap),
/// for a trap's summary to name the guest's last error line (`host::trap`).
const STDERR_TAIL_BYTES: usize = 8 << 10;

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Stdout,
    Stderr,
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    /// A native program's standard output, through the `process` capability.
    Exec,
    /// A native program's standard error.
    ExecStderr,
    /// The runner itself (retries, denials, limits).
    Runner,
}

impl Source {
    /// The tag written in front of the line in the log file.
    pub fn tag(self) -> &'static str {
        match self {
            Source::Stdout => "stdout",
            Source::Stderr => "stderr",
            Source::Trace => "trace",
            Source::Debug => "debug",
            Source::Info => "info",
            Source::Warn => "warn",
            Source::Error => "error",
            Source::Exec => "exec",
            Source::ExecStderr => "exec:stderr",
            Source::Runner => "sluice",
        }
    }
}

/// A handle to one step's log; clones share it.
#[derive(Clone)]
pub struct StepLog {
    inner: Arc<Mutex<LogInner>>,
}

struct LogInner {
    path: Option<PathBuf>,
    file: Option<BufWriter<File>>,
    written: u64,
    limit: u64,
    truncated: bool,
    tail: VecDeque<String>,
    /// Unfinished last line of each raw output stream.
    partial: HashMap<Source, Vec<u8>>,
    /// The last [`STDERR_TAIL_BYTES`] the guest wrote to its stderr, unredacted (it is
    /// redacted when read).
    stderr_tail: VecDeque<u8>,
    events: Option<(EventSink, String, String)>,
    redactor: Arc<Redactor>,
}

impl StepLog {
    /// A log written to `file` (found at `path`), capped at `limit` bytes, with the
    /// run's secrets masked. Lines are also sent as [`Event::StepLog`] when `events`
    /// is given.
    pub fn create(
        file: File,
        path: PathBuf,
        limit: u64,
        events: Option<(EventSink, String, String)>,
        redactor: Arc<Redactor>,
    ) -> StepLog {
        StepLog::with_file(
            Some(path),
            Some(BufWriter::new(file)),
            limit,
            events,
            redactor,
        )
    }

    /// A log that keeps only its tail in memory (used for `describe` calls), with the
    /// run's secrets masked.
    pub fn in_memory(limit: u64, redactor: Arc<Redactor>) -> StepLog {
        StepLog::with_file(None, None, limit, None, redactor)
    }

    fn with_file(
        path: Option<PathBuf>,
        file: Option<BufWriter<File>>,
        limit: u64,
        events: Option<(EventSink, String, String)>,
        redactor: Arc<Redactor>,
    ) -> StepLog {
        StepLog {
            inner: Arc::new(Mutex::new(LogInner {
                path,
                file,
                written: 0,
                limit,
                truncated: false,
                tail: VecDeque::with_capacity(TAIL_LINES),
                partial: HashMap::new(),
                stderr_tail: VecDeque::new(),
                events,
                redactor,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        // A panic while holding the lock cannot leave the log inconsistent in a way
        // that matters more than losing it; keep logging.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write one complete line.
    pub fn line(&self, source: Source, text: &str) {
        self.lock().push_line(source, text);
    }

    /// Write raw output, split into lines; an unfinished last line waits for more.
    pub fn output(&self, source: Source, bytes: &[u8]) {
        let mut inner = self.lock();
        if source == Source::Stderr {
            let keep = &bytes[bytes.len().saturating_sub(STDERR_TAIL_BYTES)..];
            let tail = &mut inner.stderr_tail;
            tail.extend(keep);
            let excess = tail.len().saturating_sub(STDERR_TAIL_BYTES);
            tail.drain(..excess);
        }
        if inner.truncated {
            return;
        }
        let mut rest = bytes;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            let mut line = inner.partial.remove(&source).unwrap_or_default();
            line.extend_from_slice(&rest[..nl]);
            rest = &rest[nl + 1..];
            let text = String::from_utf8_lossy(&line);
            let text = text.strip_suffix('\r').unwrap_or(&text).to_string();
            inner.push_line(source, &text);
        }
        if rest.is_empty() {
            return;
        }
        let partial = inner.partial.entry(source).or_default();
        partial.extend_from_slice(rest);
        if partial.len() > MAX_LINE {
            // Cut the long line where no secret can straddle the cut; the rest waits.
            let mut partial = inner.partial.remove(&source).unwrap_or_default();
            let mut head = Vec::with_capacity(partial.len());
            let cut = inner.redactor.final_part(&partial, &mut head);
            partial.drain(..cut);
            inner.partial.insert(source, partial);
            inner.push_redacted_line(source, &String::from_utf8_lossy(&head));
        }
    }

    /// Flush unfinished lines and the file.
    pub fn finish(&self) {
        let mut inner = self.lock();
        let mut partial: Vec<(Source, Vec<u8>)> = inner.partial.drain().collect();
        partial.sort_by_key(|(s, _)| s.tag());
        for (source, line) in partial {
            if !line.is_empty() {
                inner.push_line(source, &String::from_utf8_lossy(&line));
            }
        }
        if let Some(f) = inner.file.as_mut() {
            let _ = f.flush();
        }
    }

    /// The last lines written, oldest first.
    pub fn tail(&self) -> Vec<String> {
        self.lock().tail.iter().cloned().collect()
    }

    /// The last few KiB the guest wrote to its standard error (kept even once the log
    /// reached its cap), with the run's secrets masked: where a trapped guest's last
    /// error line is found.
    pub fn guest_stderr_tail(&self) -> String {
        let inner = self.lock();
        let mut bytes: Vec<u8> = inner.stderr_tail.iter().copied().collect();
        // A first line cut by the bound could hold part of a secret the redactor no
        // longer recognizes: it is dropped.
        if bytes.len() == STDERR_TAIL_BYTES {
            let first_end = bytes
                .iter()
                .position(|b| *b == b'\n')
                .map_or(bytes.len(), |at| at + 1);
            bytes.drain(..first_end);
        }
        inner
            .redactor
            .redact(&String::from_utf8_lossy(&bytes))
            .into_owned()
    }

    /// Whether the cap was reached.
    pub fn truncated(&self) -> bool {
        self.lock().truncated
    }

    /// The log file, if this log has one.
    pub fn path(&self) -> Option<PathBuf> {
        self.lock().path.clone()
    }

    /// Send a progress event.
    pub fn progress(&self, done: u64, total: Option<u64>, message: &str) {
        let inner = self.lock();
        if let Some((sink, stage, step)) = &inner.events {
            sink.send(Event::StepProgress {
                stage: stage.clone(),
                step: step.clone(),
                done,
                total,
                message: message.to_string(),
            });
        }
    }

    /// A WASI output stream that writes into this log.
    pub fn stream(&self, source: Source) -> LogStream {
        LogStream {
            log: self.clone(),
            source,
        }
    }
}

impl LogInner {
    fn push_line(&mut self, source: Source, text: &str) {
        if self.truncated {
            return;
        }
        let redacted = self.redactor.clone();
        let text = redacted.redact(text);
        self.push_redacted_line(source, &text);
    }

    fn push_redacted_line(&mut self, source: Source, text: &str) {
        if self.truncated {
            return;
        }
        let tag = source.tag();
        let cost = (text.len() + tag.len() + 4) as u64;
        if self.written + cost > self.limit {
            self.truncated = true;
            let marker = format!("[output truncated after {} bytes]", self.written);
            if let Some(f) = self.file.as_mut() {
                let _ = writeln!(f, "[sluice] {marker}");
            }
            self.remember(marker.clone());
            self.emit(Source::Runner, &marker);
            return;
        }
        self.written += cost;
        if let Some(f) = self.file.as_mut() {
            let _ = writeln!(f, "[{tag}] {text}");
        }
        self.remember(format!("[{tag}] {text}"));
        self.emit(source, text);
    }

    fn remember(&mut self, line: String) {
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    fn emit(&self, source: Source, text: &str) {
        if let Some((sink, stage, step)) = &self.events
            && sink.wants_log_lines()
        {
            sink.send(Event::StepLog {
                stage: stage.clone(),
                step: step.clone(),
                source: source.tag().to_string(),
                line: text.to_string(),
            });
        }
    }
}

/// The guest's stdout or stderr, writing into a [`StepLog`].
pub struct LogStream {
    log: StepLog,
    source: Source,
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LogStream {
            log: self.log.clone(),
            source: self.source,
        })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LogStream {
            log: self.log.clone(),
            source: self.source,
        })
    }
}

/// Largest write the guest is invited to make at once.
const WRITE_PERMIT: usize = 64 << 10;

impl OutputStream for LogStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.log.output(self.source, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.log.output(self.source, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The `log` import: structured lines and progress from the plugin.
impl wit_log::Host for crate::host::step::StepState {
    fn write(&mut self, level: wit_log::Level, message: String, fields: Vec<(String, String)>) {
        let source = match level {
            wit_log::Level::Trace => Source::Trace,
            wit_log::Level::Debug => Source::Debug,
            wit_log::Level::Info => Source::Info,
            wit_log::Level::Warn => Source::Warn,
            wit_log::Level::Error => Source::Error,
        };
        let text = if fields.is_empty() {
            message
        } else {
            let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            format!("{message} {}", fields.join(" "))
        };
        // Each line of a multi-line message is a line of its own, tagged as the
        // plugin's: a message cannot make a line look like the runner's.
        for line in text.split('\n') {
            self.log
                .line(source, line.strip_suffix('\r').unwrap_or(line));
        }
    }

    fn progress(&mut self, done: u64, total: Option<u64>, message: String) {
        self.log.progress(done, total, &message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_stderr_tail_outlives_the_cap_and_drops_a_cut_first_line() {
        let log = StepLog::in_memory(32, Default::default());
        log.output(Source::Stdout, &[b'x'; 100]);
        log.output(
            Source::Stderr,
            b"Traceback (most recent call last):\nValueError: boom\n",
        );
        assert!(log.truncated());
        assert_eq!(
            log.guest_stderr_tail(),
            "Traceback (most recent call last):\nValueError: boom\n"
        );
        let mut flood = vec![b'y'; STDERR_TAIL_BYTES];
        flood.extend_from_slice(b"\npanic: late\n");
        log.output(Source::Stderr, &flood);
        assert_eq!(log.guest_stderr_tail(), "panic: late\n");
    }

    #[test]
    fn output_is_split_into_lines_and_capped() {
        let log = StepLog::in_memory(64, Default::default());
        log.output(Source::Stdout, b"hello\nwor");
        log.output(Source::Stdout, b"ld\n");
        assert_eq!(log.tail(), vec!["[stdout] hello", "[stdout] world"]);
        for _ in 0..10 {
            log.output(Source::Stdout, b"0123456789\n");
        }
        assert!(log.truncated());
        let tail = log.tail();
        assert!(
            tail.last().unwrap().starts_with("[output truncated after "),
            "{tail:?}"
        );
    }
}
