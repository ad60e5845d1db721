//! [`Command`]: run a native program through the host's `process` import, which checks
//! it against the step's `exec` grant and confines it to the step's other grants.

use std::path::Path;
use std::time::Duration;

use crate::bindings::sluice::plugin::process;
use crate::{HumanDuration, RunError};

pub use process::ProcessError;

/// A program to run, built up like `std::process::Command`:
///
/// ```no_run
/// use std::time::Duration;
/// let output = sluice_sdk::Command::new("cargo")
///     .args(["build", "--release"])
///     .env("CARGO_TERM_COLOR", "never")
///     .timeout(Duration::from_secs(600))
///     .run()?;
/// if !output.success() {
///     eprintln!("{}", output.stderr_text());
/// }
/// # Ok::<(), sluice_sdk::ProcessError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<String>,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
}

impl Command {
    /// A command for `program`: a bare name looked up on PATH, or an absolute path. It
    /// must be named in the step's `exec` grant.
    pub fn new(program: impl Into<String>) -> Self {
        Command {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            stdin: None,
            timeout: None,
        }
    }

    /// Add one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Add several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Set an extra environment variable. The program also gets PATH and the step's
    /// granted variables, and nothing else from the runner's environment.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Set several extra environment variables.
    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env.extend(
            vars.into_iter()
                .map(|(key, value)| (key.into(), value.into())),
        );
        self
    }

    /// Run in this directory instead of the pipeline's folder. It must be inside a grant.
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_string_lossy().into_owned());
        self
    }

    /// Write these bytes to the program's standard input (which is closed otherwise).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Kill the program after this long. The host never lets it outlive the step's own
    /// timeout either way.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The program.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The arguments.
    pub fn get_args(&self) -> &[String] {
        &self.args
    }

    /// The command line as a person would type it in a POSIX shell, for summaries and
    /// log lines: `cargo build --release`, `sh -c 'test -f x'`.
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|word| shell_quote(word))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Run the program to completion and collect what it printed. Each line it prints
    /// is also streamed into the step log as it arrives. `Err` means it never ran to
    /// an exit: no grant, not installed, or it could not start; a non-zero exit is an
    /// `Ok` whose [`Output::success`] is false.
    pub fn run(&self) -> Result<Output, ProcessError> {
        let request = process::Command {
            program: self.program.clone(),
            args: self.args.clone(),
            env: self.env.clone(),
            cwd: self.cwd.clone(),
            stdin: self.stdin.clone(),
            timeout_ms: self
                .timeout
                .map(|timeout| u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
        };
        host::run(&request).map(Output::from)
    }
}

fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&byte));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// What a program did: how it ended and what it printed.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Exit code, absent when a signal ended the program.
    pub exit_code: Option<i32>,
    /// The signal that ended the program, if any.
    pub signal: Option<i32>,
    /// The program was killed because it ran past its timeout.
    pub timed_out: bool,
    /// Captured standard output (capped by the host; see `truncated`).
    pub stdout: Vec<u8>,
    /// Captured standard error (capped by the host; see `truncated`).
    pub stderr: Vec<u8>,
    /// Output was longer than the host's cap and was cut.
    pub truncated: bool,
    /// How long the program ran.
    pub duration: Duration,
}

impl Output {
    /// Whether the program exited with code 0 (and did not time out).
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    /// Standard output as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// How the program ended, for a summary: `exited 0`, `was killed by signal 9
    /// (SIGKILL)`, `timed out after 30s`.
    pub fn describe_exit(&self) -> String {
        if self.timed_out {
            return format!("timed out after {}", HumanDuration(self.duration));
        }
        match (self.exit_code, self.signal) {
            (Some(code), _) => format!("exited {code}"),
            (None, Some(signal)) => match signal_name(signal) {
                Some(name) => format!("was killed by signal {signal} ({name})"),
                None => format!("was killed by signal {signal}"),
            },
            (None, None) => "ended without an exit code".to_owned(),
        }
    }
}

fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        _ => return None,
    })
}

impl From<process::Completed> for Output {
    fn from(completed: process::Completed) -> Self {
        Output {
            exit_code: completed.exit_code,
            signal: completed.signal,
            timed_out: completed.timed_out,
            stdout: completed.stdout,
            stderr: completed.stderr,
            truncated: completed.truncated,
            duration: Duration::from_millis(completed.duration_ms),
        }
    }
}

impl ProcessError {
    /// The host's explanation, without the variant.
    pub fn message(&self) -> &str {
        match self {
            ProcessError::Denied(message)
            | ProcessError::NotFound(message)
            | ProcessError::Failed(message) => message,
        }
    }
}

/// `Denied` stays `Denied` (the step lacks an `exec` grant); `NotFound` and `Failed`
/// become `RunError::Failed`. The host's message is kept as it is.
impl From<ProcessError> for RunError {
    fn from(error: ProcessError) -> Self {
        match error {
            ProcessError::Denied(message) => RunError::Denied(message),
            ProcessError::NotFound(message) | ProcessError::Failed(message) => {
                RunError::Failed(message)
            }
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod host {
    use super::process;

    pub(super) fn run(
        command: &process::Command,
    ) -> Result<process::Completed, process::ProcessError> {
        process::run(command)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod host {
    //! Native stand-in for the `process` import: there is no host to run programs.
    use super::process;

    pub(super) fn run(
        command: &process::Command,
    ) -> Result<process::Completed, process::ProcessError> {
        Err(process::ProcessError::Failed(format!(
            "cannot run `{}`: programs run only through a Sluice host, and this is a native build",
            command.program
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_a_shell_command() {
        let command = Command::new("sh").args(["-c", "test -f sluice.toml", "it's"]);
        assert_eq!(
            command.display(),
            r#"sh -c 'test -f sluice.toml' 'it'\''s'"#
        );
        assert_eq!(
            Command::new("cargo")
                .arg("build")
                .arg("--release")
                .display(),
            "cargo build --release"
        );
    }

    #[test]
    fn describes_how_a_program_ended() {
        let mut output = Output {
            exit_code: Some(2),
            signal: None,
            timed_out: false,
            stdout: Vec::new(),
            stderr: Vec::new(),
            truncated: false,
            duration: Duration::from_millis(1200),
        };
        assert_eq!(output.describe_exit(), "exited 2");
        output.exit_code = None;
        output.signal = Some(9);
        assert_eq!(output.describe_exit(), "was killed by signal 9 (SIGKILL)");
        output.timed_out = true;
        assert_eq!(output.describe_exit(), "timed out after 1.2s");
        assert!(!output.success());
    }

    #[test]
    fn native_builds_explain_that_there_is_no_host() {
        let err = Command::new("true").run().unwrap_err();
        assert!(err.message().contains("native build"), "{err:?}");
    }
}
