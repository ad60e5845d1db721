//! The runner's own capacity never fails a step: a thousand steps at once each get an
//! instance, and when the engine holds fewer instances than `--jobs` (a tight
//! `ulimit -v`), the rest wait for a slot, outside their timeout, with a note in their
//! log, and none is reported as crashed.

use std::path::Path;

use crate::support::{Outcome, Project, output};

/// A pipeline of `steps` independent steps, each sleeping `ms` through WASI's clocks
/// (pure WebAssembly: no native program), with `extra` added to every step.
fn sleepers(steps: usize, ms: u64, extra: &str) -> Project {
    let mut toml = String::from("[pipeline]\nname = \"capacity\"\n\n[[stage]]\nname = \"sleep\"\n");
    for i in 0..steps {
        toml.push_str(&format!(
            "\n[[stage.step]]\nid = \"s{i:04}\"\nuses = \"{{adversary}}\"\n\
             with = {{ mode = \"sleep\", ms = {ms} }}\n{extra}"
        ));
    }
    Project::new(&toml)
}

/// The records of every step of the last run.
fn steps(p: &Project) -> Vec<serde_json::Value> {
    p.run_record()["steps"]
        .as_array()
        .expect("steps is a list")
        .clone()
}

fn millis(step: &serde_json::Value, name: &str) -> u64 {
    output(step, name)
        .parse()
        .expect("a timestamp in milliseconds")
}

/// Checks that every one of `count` steps passed, and that nothing in the output
/// calls any of them crashed.
#[track_caller]
fn all_passed(p: &Project, out: &Outcome, count: usize) -> Vec<serde_json::Value> {
    out.expect_code(0);
    for text in [&out.stdout, &out.stderr] {
        assert!(
            !text.contains("crashed") && !text.contains("concurrent limit"),
            "{text}"
        );
    }
    let steps = steps(p);
    assert_eq!(steps.len(), count);
    for s in &steps {
        assert_eq!(s["status"], "passed", "{s:#}");
    }
    steps
}

/// `sluice run` of `p` with the address space limited to `gib` GiB (`ulimit -v`).
fn run_with_address_space(p: &Project, gib: u64, args: &str) -> Outcome {
    let kib = gib << 20;
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -v {kib} && exec \"$0\" run --format plain {args}"
        ))
        .arg(crate::support::sluice_bin())
        .current_dir(p.path())
        .env("SLUICE_CACHE_DIR", crate::support::cache_dir())
        .env_remove("SLUICE_LOG");
    Outcome::of(&mut cmd)
}

fn log_of(step: &serde_json::Value) -> String {
    let path = step["log"].as_str().expect("the step has a log");
    std::fs::read_to_string(Path::new(path)).expect("read the step log")
}

#[test]
fn a_thousand_concurrent_sleeping_steps_all_pass_with_jobs_1000() {
    // Two seconds each, so that many run at once even when starting a thousand steps
    // takes a second or two on a loaded machine.
    let p = sleepers(1000, 2000, "");
    let out = p.run(&["--jobs", "1000"]);
    let steps = all_passed(&p, &out, 1000);
    // No step waited for another's instance.
    for s in &steps {
        assert!(
            !log_of(s).contains("waiting for a free instance slot"),
            "{s:#}"
        );
    }
    // Far more ran at once than the 256 instances the engine used to hold.
    let spans: Vec<(u64, u64)> = steps
        .iter()
        .map(|s| (millis(s, "started-ms"), millis(s, "finished-ms")))
        .collect();
    let most_at_once = spans
        .iter()
        .map(|&(start, _)| {
            spans
                .iter()
                .filter(|&&(s, f)| s <= start && start < f)
                .count()
        })
        .max()
        .unwrap();
    assert!(
        most_at_once > 256,
        "at most {most_at_once} steps ran at once"
    );
}

#[test]
fn steps_beyond_what_the_engine_holds_wait_for_a_slot_instead_of_crashing() {
    // 3 GiB of address space holds no pool and only about fifteen instances on
    // demand; forty steps at once must queue for them.
    let p = sleepers(40, 300, "");
    let out = run_with_address_space(&p, 3, "--jobs 40");
    let steps = all_passed(&p, &out, 40);
    let waited: Vec<String> = steps
        .iter()
        .map(log_of)
        .filter(|log| log.contains("waiting for a free instance slot"))
        .collect();
    assert!(!waited.is_empty(), "some steps waited for a slot");
    assert!(waited.len() < 40, "some steps got a slot at once");
    let note = waited[0]
        .lines()
        .find(|l| l.contains("waiting for a free instance slot"))
        .unwrap();
    let note = regex::Regex::new(r"\d+")
        .unwrap()
        .replace_all(note, "N")
        .into_owned();
    insta::assert_snapshot!(note);
    assert!(waited[0].contains("got an instance slot after waiting"));
}

#[test]
fn waiting_for_a_slot_does_not_count_against_the_step_timeout() {
    // Fifteen to twenty instances at once (depending on what the runner has mapped
    // by then) for eighty steps of 400 ms: four waves or more, so the last waits past
    // its 1 s timeout before it starts, and still passes.
    let p = sleepers(80, 400, "timeout = \"1s\"\n");
    let out = run_with_address_space(&p, 3, "--jobs 80");
    let steps = all_passed(&p, &out, 80);
    let first_start = steps.iter().map(|s| millis(s, "started-ms")).min().unwrap();
    let last_start = steps.iter().map(|s| millis(s, "started-ms")).max().unwrap();
    assert!(
        last_start - first_start > 1000,
        "the last step started more than its timeout after the first: {}ms",
        last_start - first_start
    );
}

#[test]
fn a_small_pipeline_runs_with_a_few_gib_of_address_space() {
    // Before the engine sized itself from the address space, one 4 GiB memory
    // reservation did not fit, and `describe()` of the first plugin failed.
    for gib in [2, 4] {
        let p = sleepers(3, 10, "");
        let out = run_with_address_space(&p, gib, "--jobs 3");
        all_passed(&p, &out, 3);
    }
}
