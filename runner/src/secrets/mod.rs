//! Secrets: their values, read once when a run starts from the sources declared under
//! `[secrets]` (an environment variable, a file, or a command such as `pass show ...`
//! or `gh auth token`), for the secrets some step is granted; and the run's
//! [`redact::Redactor`], which masks every one of them wherever text leaves the runner.
//!
//! A secret shorter than [`MIN_SECRET_LEN`] is refused: masking every occurrence of a
//! short string ("test") would mask ordinary output and hide nothing worth hiding.

pub mod redact;

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::{Pipeline, SecretSource, SourcePos};

/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 8;

/// Longest a secret's command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest secret value, in bytes.
const MAX_SECRET_LEN: usize = 64 << 10;

/// A secret that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{pos}: secret `{name}`: {reason}")]
pub struct SecretError {
    pub pos: SourcePos,
    pub name: String,
    pub reason: String,
}

/// The values of the secrets granted to some step of a run.
#[derive(Default)]
pub struct SecretValues {
    values: BTreeMap<String, String>,
}

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: a value must never reach a log through a debug print.
        f.debug_list().entries(self.values.keys()).finish()
    }
}

impl SecretValues {
    /// Read every secret some step of `pipeline` is granted, as a secret or as the
    /// key of its `ssh` grant (`identity`, which the plugin never sees). Blocking (a
    /// command may run); every problem is reported.
    pub fn resolve(pipeline: &Pipeline) -> Result<SecretValues, Vec<SecretError>> {
        let steps = || pipeline.stages.iter().flat_map(|s| &s.steps);
        let granted: std::collections::BTreeSet<&str> = steps()
            .flat_map(|s| &s.grants.secrets)
            .map(|g| g.name.as_str())
            .chain(steps().filter_map(|s| s.grants.ssh.as_ref()?.identity.as_deref()))
            .collect();
        let mut values = BTreeMap::new();
        let mut errors = Vec::new();
        for decl in pipeline
            .secrets
            .iter()
            .filter(|d| granted.contains(d.name.as_str()))
        {
            let fail = |reason: String| SecretError {
                pos: decl.pos.clone(),
                name: decl.name.clone(),
                reason,
            };
            match read(&decl.source).and_then(check) {
                Ok(value) => {
                    values.insert(decl.name.clone(), value);
                }
                Err(reason) => errors.push(fail(reason)),
            }
        }
        if errors.is_empty() {
            Ok(SecretValues { values })
        } else {
            Err(errors)
        }
    }

    /// The value of secret `name`, if it was read.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The redactor of all these values.
    pub fn redactor(&self) -> redact::Redactor {
        redact::Redactor::new(self.values.values().map(String::as_str))
    }
}

/// The value from its source, less one trailing newline.
fn read(source: &SecretSource) -> Result<String, String> {
    let mut value = match source {
        SecretSource::Env(var) => std::env::var(var)
            .map_err(|_| format!("environment variable `{var}` is not set (or not UTF-8)"))?,
        SecretSource::File(path) => {
            let mut text = String::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_SECRET_LEN as u64 + 1).read_to_string(&mut text))
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            text
        }
        SecretSource::Command(argv) => run(argv)?,
    };
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    Ok(value)
}

fn check(value: String) -> Result<String, String> {
    if value.len() < MIN_SECRET_LEN {
        return Err(format!(
            "the value is {} bytes long; secrets must be at least {MIN_SECRET_LEN} (a shorter one would mask ordinary output)",
            value.len()
        ));
    }
    if value.len() > MAX_SECRET_LEN {
        return Err(format!(
            "the value is longer than {} KiB",
            MAX_SECRET_LEN >> 10
        ));
    }
    Ok(value)
}

/// Run a secret's command (the user's own, with the runner's environment) and take
/// what it prints.
fn run(argv: &[String]) -> Result<String, String> {
    let shown = argv.join(" ");
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    // A thread the OS refuses is an error of this secret, not a panic.
    let reader = |what: &str| std::thread::Builder::new().name(format!("secret-{what}"));
    let out = reader("stdout").spawn(move || {
        let mut v = Vec::new();
        let _ = (&mut stdout)
            .take(MAX_SECRET_LEN as u64 + 1)
            .read_to_end(&mut v);
        v
    });
    let err = reader("stderr").spawn(move || {
        let mut v = Vec::new();
        let _ = (&mut stderr).take(4096).read_to_end(&mut v);
        v
    });
    let (Ok(out), Ok(err)) = (out, err) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "cannot read the output of `{shown}`: the system refused a thread (see `ulimit -u`)"
        ));
    };
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{shown}` did not finish within {}s",
                    COMMAND_TIMEOUT.as_secs()
                ));
            }
        }
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if !status.success() {
        // Its error output is shown: it is the command's message, not the secret.
        return Err(format!(
            "`{shown}` failed ({status}): {}",
            String::from_utf8_lossy(&err).trim()
        ));
    }
    String::from_utf8(out).map_err(|_| format!("`{shown}` printed something that is not UTF-8"))
}
