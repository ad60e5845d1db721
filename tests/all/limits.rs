//! Plugins that misbehave (loop, eat memory, flood output, trap, panic, lie in their
//! report) fail their own step with a clear reason; the runner and the other steps
//! carry on.

use crate::support::Project;

fn one_step(with: &str, extra: &str) -> Project {
    Project::new(&format!(
        r#"
[pipeline]
name = "limits"

[[stage]]
name = "limits"

[[stage.step]]
id = "bad"
uses = "{{adversary}}"
with = {{ {with} }}
{extra}

[[stage.step]]
id = "bystander"
uses = "{{adversary}}"
with = {{ mode = "sleep", ms = 100 }}
"#
    ))
}

fn summary(p: &Project, id: &str) -> String {
    p.step(id)["summary"].as_str().unwrap().to_string()
}

#[test]
fn infinite_loop_times_out() {
    let p = one_step(r#"mode = "spin""#, r#"timeout = "1s""#);
    p.run(&[]).expect_code(1);
    assert_eq!(summary(&p, "bad"), "timed out after 1s");
    assert_eq!(p.step("bystander")["status"], "passed");
}

#[test]
fn memory_bomb_hits_the_limit() {
    let p = one_step(r#"mode = "memory-bomb""#, r#"memory = "64MiB""#);
    p.run(&[]).expect_code(1);
    assert_eq!(summary(&p, "bad"), "exceeded its memory limit of 64.0 MiB");
    assert_eq!(p.step("bystander")["status"], "passed");
}

#[test]
fn output_flood_is_truncated() {
    let p = one_step(r#"mode = "flood", bytes = 50000000"#, "");
    p.run(&["--log-limit", "1MiB"]).expect_code(0);
    let log_path = p.step("bad")["log"].as_str().unwrap().to_string();
    let size = std::fs::metadata(&log_path).unwrap().len();
    assert!(size < (1 << 20) + 200, "log is capped, got {size} bytes");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.trim_end().ends_with("bytes]"),
        "{}",
        &log[log.len() - 200..]
    );
    assert!(log.contains("[sluice] [output truncated after "));
}

#[test]
fn endless_flood_is_truncated_then_timed_out() {
    let p = one_step(r#"mode = "flood""#, r#"timeout = "2s""#);
    p.run(&["--log-limit", "256KiB"]).expect_code(1);
    assert_eq!(summary(&p, "bad"), "timed out after 2s");
    let log = p.step_log("bad");
    assert!(log.len() < (256 << 10) + 200);
    assert!(log.contains("[output truncated after "));
}

#[test]
fn trap_fails_the_step() {
    let p = one_step(r#"mode = "trap""#, "");
    let out = p.run(&[]);
    out.expect_code(1);
    let s = summary(&p, "bad");
    assert!(s.starts_with("plugin trapped: "), "{s}");
    assert!(s.contains("unreachable"), "{s}");
    assert_eq!(p.step("bystander")["status"], "passed");
}

#[test]
fn panic_message_reaches_the_log() {
    let p = one_step(r#"mode = "panic""#, "");
    let out = p.run(&[]);
    out.expect_code(1);
    assert!(
        p.step_log("bad").contains("fixture panic"),
        "{}",
        p.step_log("bad")
    );
    assert!(
        out.stderr.contains("fixture panic"),
        "the failed step's log tail is shown: {}",
        out.stderr
    );
}

#[test]
fn artifact_outside_grants_is_rejected() {
    let p = one_step(
        r#"mode = "bad-artifact""#,
        r#"[stage.step.grants]
read = ["."]"#,
    );
    p.run(&[]).expect_code(1);
    let s = summary(&p, "bad");
    assert!(s.contains("../../../etc/passwd"), "{s}");
}

#[test]
fn many_findings_are_kept() {
    let p = one_step(r#"mode = "many-findings", count = 5000"#, "");
    p.run(&[]).expect_code(0);
    assert_eq!(
        p.step("bad")["report"]["findings"]
            .as_array()
            .unwrap()
            .len(),
        5000
    );
}

#[test]
fn a_50_mb_summary_is_capped() {
    let p = one_step(r#"mode = "big-summary", bytes = 50000000"#, "");
    p.run(&[]).expect_code(0);
    let step = p.step("bad");
    assert_eq!(step["status"], "passed");
    let summary = step["summary"].as_str().unwrap();
    assert!(summary.len() < 4200, "{} bytes", summary.len());
    assert!(
        summary.ends_with(" … [truncated 49995904 bytes]"),
        "{}",
        &summary[summary.len() - 60..]
    );
    assert_eq!(step["report"]["summary"], step["summary"]);
    let run_dir = std::path::PathBuf::from(p.run_record()["run_dir"].as_str().unwrap());
    for file in [
        run_dir.join("run.json"),
        run_dir.join("steps").join("bad.json"),
    ] {
        let size = std::fs::metadata(&file).unwrap().len();
        assert!(size < 64 << 10, "{} is {size} bytes", file.display());
    }
    assert!(
        p.step_log("bad")
            .contains("the report's summary (50000000 bytes) was cut to 4KiB"),
        "{}",
        p.step_log("bad")
    );
}
