//! What a trapped guest said last: the line of its standard error that names the error
//! (a Rust panic's message, a Python exception, a Go panic, a JavaScript error, a C
//! assertion), so that a trap's summary reads `plugin trapped: ValueError: boom (wasm
//! trap: unreachable; backtrace in the step log)` instead of a bare `wasm trap:
//! unreachable`, while the wasm frames go to the step log.
//!
//! Which line counts, precisely (lines split at `\n`, a trailing `\r` dropped; of all
//! the candidates below, the one that starts last in the text wins):
//! - Rust: a line containing `panicked at ` (std's panic hook: `thread '…' panicked at
//!   FILE:LINE:COL:` with the message on the next lines); the summary is `panicked at
//!   FILE:LINE:COL: MESSAGE`, the message's lines joined by spaces up to a `note:` or
//!   `stack backtrace:` line. Before Rust 1.73 the message was on the same line
//!   (`panicked at 'boom', src/lib.rs:3:5`), which is kept as it is;
//! - Go: a line starting with `panic: ` or `fatal error: ` (the runtime's report),
//!   itself;
//! - Python: after a line starting with `Traceback (most recent call last):`, the first
//!   line that does not start with whitespace: the exception, e.g. `ValueError: boom`;
//! - JavaScript and other languages: a line, not indented, that starts with a name
//!   ending in `Error` or `Exception` followed by `:` or the end of the line
//!   (`Error: boom`, `TypeError: x is not a function`), optionally after `Uncaught `,
//!   `Error while running ` … — see [`is_error_name_line`];
//! - componentize-js, whose `run` turns a thrown error into an invalid `run-error`: in
//!   a line containing ``(received `…`)``, the received text when it is such an error
//!   line (``invalid variant tag value `undefined` (received `TypeError: boom`)
//!   specified for `RunError` `` gives `TypeError: boom`);
//! - C: a line starting with `Assertion failed:` (wasi-libc's `assert`).
//!
//! A Rust panic of a language runtime that only reports that the guest's own code
//! failed (componentize-py's `Python function threw an unexpected exception`, after the
//! traceback) is not a candidate: see [`RUNTIME_WRAPPERS`]. A line is cut to
//! [`MAX_LINE_CHARS`] characters. Nothing matching: no line, and the
//! summary is the trap alone.

/// Panic messages of language runtimes written in Rust that follow the guest's own
/// error report and say nothing more: they never name the error.
pub const RUNTIME_WRAPPERS: &[&str] = &[
    // componentize-py's runtime, after printing the Python traceback.
    "Python function threw an unexpected exception",
];

/// The longest guest line a summary carries.
pub const MAX_LINE_CHARS: usize = 300;

/// The line of `stderr` (a trapped guest's last standard error output) that names its
/// error, if any; see the module documentation for which.
pub fn guest_error_line(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .collect();
    let mut best: Option<(usize, String)> = None;
    let mut consider = |start: usize, text: String| {
        let text = text.trim().to_owned();
        if text.is_empty() {
            return;
        }
        if best.as_ref().is_none_or(|(at, _)| start >= *at) {
            best = Some((start, text));
        }
    };
    let mut index = 0;
    while let Some(line) = lines.get(index) {
        let start = index;
        index += 1;
        if let Some(at) = line.find("panicked at ") {
            let (text, used) = rust_panic(&line[at..], &lines[index..]);
            // The message lines belong to the panic, whatever they look like.
            index += used;
            if !RUNTIME_WRAPPERS
                .iter()
                .any(|wrapper| text.ends_with(wrapper))
            {
                consider(start, text);
            }
        } else if line.starts_with("panic: ") || line.starts_with("fatal error: ") {
            consider(start, (*line).to_owned());
        } else if line.starts_with("Traceback (most recent call last):") {
            if let Some(offset) = lines[index..]
                .iter()
                .position(|line| !line.is_empty() && !line.starts_with(char::is_whitespace))
            {
                index += offset + 1;
                consider(start, lines[index - 1].to_owned());
            }
        } else if let Some(received) = received_error(line) {
            consider(start, received.to_owned());
        } else if line.starts_with("Assertion failed:") || is_error_name_line(line) {
            consider(start, (*line).to_owned());
        }
    }
    best.map(|(_, text)| cut(&text))
}

/// `panicked at …` and the message lines that follow it, and how many lines of `rest`
/// that message took.
fn rust_panic(head: &str, rest: &[&str]) -> (String, usize) {
    let head = head.trim_end();
    // Rust ≥ 1.73: `panicked at src/lib.rs:3:5:` and the message below.
    let Some(place) = head.strip_suffix(':') else {
        return (head.to_owned(), 0);
    };
    let used = rest
        .iter()
        .take_while(|line| !line.starts_with("note: ") && !line.starts_with("stack backtrace:"))
        .count();
    let message: Vec<&str> = rest[..used]
        .iter()
        .map(|line| line.trim())
        .filter(|line| !line.is_empty())
        .collect();
    if message.is_empty() {
        (place.to_owned(), used)
    } else {
        (format!("{place}: {}", message.join(" ")), used)
    }
}

/// The error line inside componentize-js's ``(received `…`)``, if that is one.
fn received_error(line: &str) -> Option<&str> {
    let (_, rest) = line.split_once("(received `")?;
    let (received, _) = rest.split_once("`)")?;
    is_error_name_line(received).then_some(received)
}

/// Whether `line` names an error the way JavaScript engines and many languages print
/// one: not indented, an optional `Uncaught ` or `Error while running …: `-style
/// prefix aside, a word of letters, digits, `_`, `.` or `$` that ends in `Error` or
/// `Exception`, then `:` or the end of the line.
pub fn is_error_name_line(line: &str) -> bool {
    if line.starts_with(char::is_whitespace) {
        return false;
    }
    let line = line.strip_prefix("Uncaught ").unwrap_or(line);
    let name_end = line
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '$'))
        .unwrap_or(line.len());
    let (name, after) = line.split_at(name_end);
    let named = (name.ends_with("Error") || name.ends_with("Exception"))
        && name.starts_with(|c: char| c.is_alphabetic());
    named && (after.is_empty() || after.starts_with(':'))
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_LINE_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_panic_today_joins_place_and_message() {
        // A wasm32-wasip2 plugin's panic (tests/fixtures/adversary, `mode = "panic"`).
        let stderr = "\nthread '<unnamed>' panicked at tests/fixtures/adversary/src/lib.rs:409:32:\nfixture panic\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            guest_error_line(stderr).as_deref(),
            Some("panicked at tests/fixtures/adversary/src/lib.rs:409:32: fixture panic")
        );
    }

    #[test]
    fn rust_panic_with_a_backtrace_and_a_thread_id() {
        let stderr = include_str!("trap/rust.txt");
        assert_eq!(
            guest_error_line(stderr).as_deref(),
            Some("panicked at r.rs:1:86: boom")
        );
    }

    #[test]
    fn a_panic_message_that_looks_like_an_error_stays_the_panics() {
        let stderr = "thread '<unnamed>' panicked at src/lib.rs:9:5:\nError: no config\n";
        assert_eq!(
            guest_error_line(stderr).as_deref(),
            Some("panicked at src/lib.rs:9:5: Error: no config")
        );
    }

    #[test]
    fn rust_panic_before_1_73() {
        let stderr =
            "thread 'main' panicked at 'boom', src/lib.rs:3:5\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            guest_error_line(stderr).as_deref(),
            Some("panicked at 'boom', src/lib.rs:3:5")
        );
    }

    #[test]
    fn python_traceback_gives_the_exception_line() {
        assert_eq!(
            guest_error_line(include_str!("trap/python.txt")).as_deref(),
            Some("ValueError: boom")
        );
    }

    #[test]
    fn chained_python_exceptions_give_the_last() {
        assert_eq!(
            guest_error_line(include_str!("trap/python-chained.txt")).as_deref(),
            Some("RuntimeError: while scanning: boom")
        );
    }

    #[test]
    fn componentize_py_uncaught_exception() {
        assert_eq!(
            guest_error_line(include_str!("trap/componentize-py.txt")).as_deref(),
            Some("ValueError: boom")
        );
    }

    #[test]
    fn go_panic() {
        assert_eq!(
            guest_error_line(include_str!("trap/go.txt")).as_deref(),
            Some("panic: boom")
        );
    }

    #[test]
    fn javascript_errors() {
        assert_eq!(
            guest_error_line(include_str!("trap/node.txt")).as_deref(),
            Some("TypeError: boom")
        );
        assert!(is_error_name_line("Error: boom"));
        assert!(is_error_name_line("Uncaught RangeError: bad"));
        assert!(is_error_name_line("MyError"));
        assert!(!is_error_name_line("    at run (app.js:3:9)"));
        assert!(!is_error_name_line("no Error: here"));
        assert!(!is_error_name_line("Errors: 3"));
    }

    #[test]
    fn componentize_js_thrown_error() {
        assert_eq!(
            guest_error_line(include_str!("trap/componentize-js.txt")).as_deref(),
            Some("TypeError: boom")
        );
    }

    #[test]
    fn c_assertion() {
        assert_eq!(
            guest_error_line("scanning\nAssertion failed: n > 0 (plugin.c: run: 12)\n").as_deref(),
            Some("Assertion failed: n > 0 (plugin.c: run: 12)")
        );
    }

    #[test]
    fn the_last_error_wins_and_plain_output_is_no_error() {
        let stderr = "ValueError: early, caught and printed\nworking\npanic: late\n";
        assert_eq!(guest_error_line(stderr).as_deref(), Some("panic: late"));
        assert_eq!(guest_error_line("scanned 3 files\ndone\n"), None);
        assert_eq!(guest_error_line(""), None);
    }

    #[test]
    fn long_lines_are_cut() {
        let line = guest_error_line(&format!("panic: {}", "x".repeat(1000))).unwrap();
        assert_eq!(line.chars().count(), MAX_LINE_CHARS + 1);
        assert!(line.ends_with('…'));
    }
}
