//! What the template tests share: a plugin project made by `sluice plugin new` in a
//! temporary folder outside this workspace (so Cargo, npm or Go do not see the
//! repository around it), its scripts run as a new author runs them, toolchains taken
//! from or installed into one cache folder, and the time from nothing to a passing test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Outcome, cache_dir, sluice_bin};

/// The cache of toolchains the templates' scripts install (componentize-py, pytest, Go,
/// npm packages...): `$SLUICE_TEST_TOOLS`, default `target/test-tools/`, shared by
/// every test and every CI run of this checkout.
pub fn tools_dir() -> PathBuf {
    let dir = match std::env::var_os("SLUICE_TEST_TOOLS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(sluice_tests::WORKSPACE_ROOT)
            .join("target")
            .join("test-tools"),
    };
    std::fs::create_dir_all(&dir).expect("create the test tools folder");
    dir
}

/// A project written by `sluice plugin new`, in a folder of its own.
pub struct Scaffolded {
    /// Holds the project; removed on drop.
    pub _temp: tempfile::TempDir,
    /// The project folder (`<temp>/<name>`).
    pub dir: PathBuf,
    /// What `sluice plugin new` printed.
    pub output: String,
    /// When the project was started: the clock of "from nothing to a passing test".
    pub started: Instant,
}

impl Scaffolded {
    /// `sluice plugin new NAME --lang LANG --dir <temp>/NAME`, which must succeed.
    pub fn new(name: &str, lang: &str) -> Scaffolded {
        let started = Instant::now();
        let temp = tempfile::Builder::new()
            .prefix(&format!("sluice-template-{lang}-"))
            .tempdir_in(std::env::temp_dir())
            .expect("create a temp folder");
        let dir = temp.path().join(name);
        let dir_text = dir.display().to_string();
        let out = Outcome::of(
            Command::new(sluice_bin())
                .args(["plugin", "new", name, "--lang", lang, "--dir", &dir_text])
                .current_dir(temp.path()),
        );
        out.expect_code(0);
        Scaffolded {
            output: out.stdout.replace(&dir_text, "[DIR]"),
            _temp: temp,
            dir,
            started,
        }
    }

    /// Run one of the project's scripts (`./build.sh`, `./test.sh`) under a hard time
    /// cap, with `sluice` as `$SLUICE` and the tools cache as `$SLUICE_TOOLS`; panic
    /// with its output unless it succeeds.
    pub fn script(&self, script: &str, env: &[(&str, &str)]) -> Outcome {
        let out = self.script_outcome(script, env);
        assert_eq!(
            out.code,
            0,
            "{script} failed in {}\n--- stdout\n{}\n--- stderr\n{}",
            self.dir.display(),
            out.stdout,
            out.stderr
        );
        out
    }

    /// Like [`Scaffolded::script`], whatever the outcome.
    pub fn script_outcome(&self, script: &str, env: &[(&str, &str)]) -> Outcome {
        let mut command = Command::new("timeout");
        command
            .args(["--kill-after=10", "1500", script])
            .current_dir(&self.dir)
            .env("SLUICE", sluice_bin())
            .env("SLUICE_TOOLS", tools_dir())
            .env("SLUICE_CACHE_DIR", cache_dir())
            .env_remove("SLUICE_LOG");
        for (key, value) in env {
            command.env(key, value);
        }
        Outcome::of(&mut command)
    }

    /// `sluice <args>` in the project folder.
    pub fn sluice(&self, args: &[&str]) -> Outcome {
        crate::support::sluice_in(&self.dir, args)
    }

    /// Print and return the time since [`Scaffolded::new`].
    pub fn report_time(&self, what: &str) -> Duration {
        let took = self.started.elapsed();
        println!(
            "TEMPLATE TIME {what}: {:.1} s from `sluice plugin new` to a passing test",
            took.as_secs_f64()
        );
        took
    }

    /// Replace `from` by `to` in the project's file `relative`; `from` must be there.
    pub fn edit(&self, relative: &str, from: &str, to: &str) {
        let path = self.dir.join(relative);
        let text = std::fs::read_to_string(&path).expect("read a project file");
        assert!(text.contains(from), "{relative} has no {from:?}:\n{text}");
        std::fs::write(&path, text.replacen(from, to, 1)).expect("write a project file");
    }
}

/// The findings of a report as JSON, each reduced to what identifies it: rule, path,
/// line, column and fingerprint.
pub fn finding_identities(report: &serde_json::Value) -> Vec<serde_json::Value> {
    report["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("a report with findings: {report:#}"))
        .iter()
        .map(|f| {
            serde_json::json!({
                "rule_id": f["rule_id"],
                "path": f["location"]["path"],
                "line": f["location"]["line"],
                "column": f["location"]["column"],
                "fingerprint": f["fingerprint"],
            })
        })
        .collect()
}

/// The record of step `id` in the only run of the pipeline in `dir`.
pub fn step_record(dir: &Path, id: &str) -> serde_json::Value {
    let runs = dir.join(".sluice").join("runs");
    let mut runs: Vec<PathBuf> = std::fs::read_dir(&runs)
        .unwrap_or_else(|e| panic!("{}: {e}", runs.display()))
        .map(|e| e.expect("list runs").path())
        .collect();
    runs.sort();
    let run = runs.last().expect("a run");
    let text = std::fs::read_to_string(run.join("run.json")).expect("run.json exists");
    let record: serde_json::Value = serde_json::from_str(&text).expect("run.json is JSON");
    record["steps"]
        .as_array()
        .expect("steps is a list")
        .iter()
        .find(|s| s["step"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {record:#}"))
        .clone()
}

/// The contract's fingerprint hash (wit/plugin.wit, `finding.fingerprint`), written
/// here from the spec so that a language's helper is checked against a second
/// implementation, independent of `crates/fingerprint`.
pub fn contract_hash(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            hash ^= 0xff;
            hash = hash.wrapping_mul(0x100_0000_01b3);
        }
        for byte in part.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// The findings every template's sample pipeline reports on its `fixtures/` folder (the
/// plugin named `todo-scan`): the two `TODO`s of `fixtures/src/main.c`, in file order,
/// with the contract's fingerprints as the language's helper computed them.
pub fn assert_sample_findings(step: &serde_json::Value) {
    let findings = step["report"]["findings"].as_array().unwrap();
    let places: Vec<(String, u64, u64)> = findings
        .iter()
        .map(|f| {
            assert_eq!(f["rule_id"], "todo-scan/match", "{f:#}");
            assert_eq!(f["message"], "`TODO` found", "{f:#}");
            let location = &f["location"];
            (
                location["path"].as_str().unwrap().to_string(),
                location["line"].as_u64().unwrap(),
                location["column"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        places,
        vec![
            ("fixtures/src/main.c".to_string(), 2, 8),
            ("fixtures/src/main.c".to_string(), 3, 18),
        ]
    );
    let expected = [
        "//TODO:parsethearguments",
        "return0;/*TODOreturnanexitcode*/",
    ]
    .map(|text| {
        format!(
            "{}:1",
            contract_hash(&["line", "todo-scan/match", "fixtures/src/main.c", text])
        )
    });
    assert_eq!(findings[0]["fingerprint"], expected[0], "{step:#}");
    assert_eq!(findings[1]["fingerprint"], expected[1], "{step:#}");
}

/// `sluice run FILE` in `dir` with its own runs folder (removed afterwards); its outcome
/// and the run's record of step `id`.
pub fn run_pipeline(dir: &Path, file: &str, id: &str) -> (Outcome, serde_json::Value) {
    let runs = dir.join(".runs");
    let out = crate::support::sluice_in(
        dir,
        &[
            "run",
            file,
            "--format",
            "plain",
            "--runs-dir",
            &runs.display().to_string(),
        ],
    );
    let run_dir = std::fs::read_dir(&runs)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .max()
        .expect("a run folder");
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap();
    let step = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["step"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {run:#}"))
        .clone();
    std::fs::remove_dir_all(&runs).unwrap();
    (out, step)
}
