//! Secrets reach only the steps granted them, and never leave the runner in clear:
//! not on the console (any format), in logs, records, run.json, reports or the GitHub
//! job summary, in any of the usual encodings. Plugin text cannot pose as a workflow
//! command or a runner line, nor drive the terminal.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;

use crate::support::{Outcome, Project, cache_dir, sluice_bin};

/// A value with characters that JSON, URL and shell encodings all change.
const TOKEN: &str = r#"s3cr3t "va\lue"/with+sym=bols&more"#;
const MULTI_LINE: &str = "first-line-of-secret\nsecond-line-of-secret";
const FROM_COMMAND: &str = "commandsecret-12345";

fn pipeline(extra: &str) -> Project {
    let p = Project::new(&format!(
        r#"
[pipeline]
name = "secrets"

[secrets]
token = {{ env = "SLUICE_E2E_TOKEN" }}
multi = {{ file = "multi.txt" }}
cmd = {{ command = ["printf", "%s", "{FROM_COMMAND}"] }}

[[stage]]
name = "leak"

[[stage.step]]
id = "plugin-token"
uses = "{{adversary}}"
with = {{ mode = "leak", name = "token" }}
allow-failure = true
[stage.step.grants]
secrets = ["token"]

[[stage.step]]
id = "plugin-multi"
uses = "{{adversary}}"
with = {{ mode = "leak", name = "multi" }}
allow-failure = true
[stage.step.grants]
secrets = ["multi"]

[[stage.step]]
id = "plugin-cmd"
uses = "{{adversary}}"
with = {{ mode = "leak", name = "cmd" }}
allow-failure = true
[stage.step.grants]
secrets = ["cmd"]

[[stage.step]]
id = "program"
uses = "{{adversary}}"
with = {{ mode = "exec", program = "bash", args = ["-c", '''
echo "env $TOKEN"; cat "$TMPDIR/multi-file"; echo
printf %s "split ${{TOKEN:0:9}}"; sleep 0.2; printf '%s\n' "${{TOKEN:9}}"
printf %s "$TOKEN" | base64 -w0; echo; printf %s "x$TOKEN" | base64 -w0; echo; printf %s "xy$TOKEN" | base64 -w0; echo
printf %s "$TOKEN" | od -An -tx1 | tr -d ' \n'; echo
perl -e 'print join("", map {{ /[A-Za-z0-9\-._~]/ ? $_ : sprintf("%%%02X", ord) }} split //, $ENV{{TOKEN}}), "\n"'
perl -MJSON::PP -e 'print encode_json([$ENV{{TOKEN}}]), "\n"'
ls -l "$TMPDIR/multi-file"
'''] }}
[stage.step.grants]
exec = ["bash"]
secrets = [{{ name = "token", env = "TOKEN" }}, {{ name = "multi", file = "multi-file" }}]

[[stage.step]]
id = "not-granted"
uses = "{{adversary}}"
with = {{ mode = "leak", name = "token" }}
allow-failure = true
{extra}
"#
    ));
    p.write("multi.txt", &format!("{MULTI_LINE}\n"));
    p
}

/// Run with the secrets in place, inside (pretend) GitHub Actions.
fn run(p: &Project, format: &str, summary: &Path) -> Outcome {
    Outcome::of(
        Command::new(sluice_bin())
            .args(["run", "--verbose", "--format", format])
            .current_dir(p.path())
            .env("SLUICE_CACHE_DIR", cache_dir())
            .env("SLUICE_E2E_TOKEN", TOKEN)
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", summary),
    )
}

/// Every form of every secret that must not appear anywhere: the value, each line of
/// it, its JSON, URL and hex encodings, and the part of its base64 that the value
/// alone determines, at each offset.
fn forbidden() -> Vec<String> {
    let mut out = Vec::new();
    let b64 = base64::engine::general_purpose::STANDARD;
    for value in [TOKEN, MULTI_LINE, FROM_COMMAND] {
        out.push(value.to_string());
        out.extend(value.lines().map(str::to_string));
        let json = serde_json::to_string(value).unwrap();
        out.push(json[1..json.len() - 1].to_string());
        out.push(
            value
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect(),
        );
        out.push(value.bytes().map(|b| format!("{b:02x}")).collect());
        for prefix in ["", "x", "xy"] {
            let encoded = b64.encode(format!("{prefix}{value}"));
            // Drop the characters that also depend on the neighbouring bytes.
            out.push(encoded[4..encoded.len() - 4].to_string());
        }
    }
    out
}

/// Every byte the run left: its folder (logs, records, run.json, reports).
fn files_under(dir: &Path, into: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let path = e.path();
        if e.file_type().unwrap().is_dir() {
            files_under(&path, into);
        } else {
            into.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
}

#[test]
fn no_secret_leaves_the_runner_in_any_form() {
    let p = pipeline("");
    let summary_dir = tempfile::tempdir().unwrap();
    let summary = summary_dir.path().join("step_summary.md");
    let mut everything: Vec<(String, Vec<u8>)> = Vec::new();
    for format in ["plain", "json"] {
        let out = run(&p, format, &summary);
        out.expect_code(0);
        everything.push((format!("stdout ({format})"), out.stdout.into_bytes()));
        everything.push((format!("stderr ({format})"), out.stderr.into_bytes()));
    }
    files_under(&p.path().join(".sluice"), &mut everything);
    everything.push(("job summary".into(), std::fs::read(&summary).unwrap()));
    let mut masked = 0;
    for (what, bytes) in &everything {
        let text = String::from_utf8_lossy(bytes);
        for form in forbidden() {
            assert!(
                !text.contains(&form),
                "{what} holds a secret as `{form}`:\n{text}"
            );
        }
        masked += text.matches("***").count();
    }
    assert!(
        masked > 50,
        "secrets were masked where they were printed ({masked})"
    );
    // The program got the secret as a variable and as a private file.
    let log = p.step_log("program");
    assert!(log.contains("[exec] env ***"), "{log}");
    let plugin_log = p.step_log("plugin-token");
    assert!(plugin_log.contains("split ***\n"), "{plugin_log}");
    // Printed in two writes, 200 ms apart: masked whole, not shown in halves.
    assert!(log.contains("[exec] split ***\n"), "{log}");
    assert!(log.contains("-rw------- "), "{log}");
    // A step not granted the secret cannot have it, and is told what to grant.
    let denied = p.step("not-granted")["summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        denied.contains("secret `token` is not in the step's `secrets` grant")
            && denied.contains(r#"add "token" under [stage.step.grants] secrets"#),
        "{denied}"
    );
}

#[test]
fn the_run_names_the_secrets_each_step_is_granted() {
    let p = pipeline("");
    let out = Outcome::of(
        Command::new(sluice_bin())
            .args(["run", "--format", "plain"])
            .current_dir(p.path())
            .env("SLUICE_CACHE_DIR", cache_dir())
            .env("SLUICE_E2E_TOKEN", TOKEN),
    );
    out.expect_code(0);
    assert!(
        out.stderr.contains("secrets for leak/plugin-token: token"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("secrets for leak/program: token, multi"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("secrets for leak/not-granted"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_short_or_missing_secret_is_refused_before_anything_runs() {
    let p = pipeline("");
    let out = Outcome::of(
        Command::new(sluice_bin())
            .args(["run", "--format", "plain"])
            .current_dir(p.path())
            .env("SLUICE_CACHE_DIR", cache_dir())
            .env("SLUICE_E2E_TOKEN", "short"),
    );
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("secret `token`: the value is 5 bytes long; secrets must be at least 8"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("sluice.toml:6:"), "{}", out.stderr);
    assert!(!out.stderr.contains("short\n"));
    let unset = Outcome::of(
        Command::new(sluice_bin())
            .args(["run", "--format", "plain"])
            .current_dir(p.path())
            .env("SLUICE_CACHE_DIR", cache_dir())
            .env_remove("SLUICE_E2E_TOKEN"),
    );
    unset.expect_code(2);
    assert!(
        unset
            .stderr
            .contains("environment variable `SLUICE_E2E_TOKEN` is not set"),
        "{}",
        unset.stderr
    );
}

#[test]
fn a_grant_of_an_undeclared_secret_is_a_config_error() {
    let p = Project::new(
        r#"
[pipeline]
name = "secrets"

[secrets]
declared = { env = "HOME" }

[[stage]]
name = "s"

[[stage.step]]
id = "a"
uses = "{adversary}"
with = { mode = "ok" }
[stage.step.grants]
secrets = ["nope", { name = "declared", file = "../escape" }]
"#,
    );
    let out = p.sluice(&["validate"]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("sluice.toml:16:12: `secrets` grant `nope` is not declared"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(
            "sluice.toml:16:20: `secrets` grant `declared`: `file` = \"../escape\" must be a plain file name"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn plugin_text_cannot_forge_console_lines() {
    let forged = "ok\\n::error file=x::forged\\n[sluice] fake runner line\\n\\u001b[31mred\\u001b]0;title\\u0007 ##[error]legacy";
    let p = Project::new(&format!(
        r#"
[pipeline]
name = "forge"

[[stage]]
name = "s"

[[stage.step]]
id = "say"
uses = "{{adversary}}"
with = {{ mode = "say", summary = "{forged}", message = "{forged}" }}

[[stage.step]]
id = "fail"
uses = "{{adversary}}"
with = {{ mode = "fail", message = "{forged}" }}
allow-failure = true
"#
    ));
    let summary_dir = tempfile::tempdir().unwrap();
    for format in ["plain", "tty", "json"] {
        let mut command = if format == "tty" {
            // Live progress needs a terminal: `script` gives it one.
            let mut c = Command::new("script");
            c.args([
                "-qfec",
                &format!("'{}' run --verbose --format tty", sluice_bin()),
                "/dev/null",
            ]);
            c
        } else {
            let mut c = Command::new(sluice_bin());
            c.args(["run", "--verbose", "--format", format]);
            c
        };
        let out = Outcome::of(
            command
                .current_dir(p.path())
                .env("SLUICE_CACHE_DIR", cache_dir())
                .env("GITHUB_ACTIONS", "true")
                .env("GITHUB_STEP_SUMMARY", summary_dir.path().join("s.md")),
        );
        out.expect_code(0);
        let all = format!("{}{}", out.stdout, out.stderr);
        // The plugin's escape sequences are never sent raw (live progress draws with
        // escape sequences of its own, so only the plugin's are looked for).
        for raw in ["\u{1b}[31mred", "\u{1b}]0;title", "\u{7}"] {
            assert!(!all.contains(raw), "{format}: raw {raw:?}: {all:?}");
        }
        for line in all.lines() {
            let t = line.trim_start();
            assert!(
                !t.starts_with("::error"),
                "{format}: a workflow command: {line}"
            );
            assert!(
                !t.starts_with("[sluice] fake"),
                "{format}: a runner-looking line: {line}"
            );
            assert!(
                !line.contains("##[error]"),
                "{format}: a legacy command: {line}"
            );
        }
        // Everything is fenced: the runner's fence opens first and closes last.
        let first = out
            .stdout
            .lines()
            .next()
            .unwrap_or("")
            .trim_end_matches('\r');
        let token = first
            .strip_prefix("::stop-commands::")
            .unwrap_or_else(|| panic!("{format}: no fence: {}", out.stdout));
        assert!(token.len() >= 32);
        assert!(out.stdout.contains(&format!("::{token}::")), "{format}");
        if format != "json" {
            assert!(
                all.contains(r"\x1b[31mred"),
                "{format}: shown escaped: {all}"
            );
        }
    }
}
