//! Every write the `sluice` binary makes to its standard output and standard error.
//!
//! `println!` and `eprintln!` panic when the stream is gone (`sluice plugins | head -1`
//! closes the pipe: EPIPE). The functions here never panic: the first failed write
//! marks the stream closed, later writes to it are dropped, and the command goes on
//! to end with the exit code it would have had. A run keeps running and recording;
//! only its printing stops.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

fn write(closed: &AtomicBool, mut stream: impl Write, text: &str) -> bool {
    if closed.load(Ordering::Relaxed) {
        return false;
    }
    let ok = stream
        .write_all(text.as_bytes())
        .and_then(|()| stream.flush())
        .is_ok();
    if !ok {
        closed.store(true, Ordering::Relaxed);
    }
    ok
}

/// Write `text` (with its own line ends) to stdout. False once stdout is gone.
pub fn out(text: &str) -> bool {
    write(&STDOUT_CLOSED, std::io::stdout().lock(), text)
}

/// Write `text` and a line end to stdout. False once stdout is gone.
pub fn out_line(text: &str) -> bool {
    let mut s = String::with_capacity(text.len() + 1);
    s.push_str(text);
    s.push('\n');
    out(&s)
}

/// Write `text` and a line end to stderr. False once stderr is gone.
pub fn err_line(text: &str) -> bool {
    let mut s = String::with_capacity(text.len() + 1);
    s.push_str(text);
    s.push('\n');
    write(&STDERR_CLOSED, std::io::stderr().lock(), &s)
}

/// Whether stdout is gone (a write to it failed).
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}
