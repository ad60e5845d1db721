//! Unit tests of the state store, on real SQLite files in temporary folders.

use std::path::{Path, PathBuf};

use super::*;

const FIXTURE_PASSED_RUN: &str = "20261102T090000.000Z-aaaaaa";
const FIXTURE_KILLED_RUN: &str = "20261102T091000.000Z-bbbbbb";

fn t(seconds: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_793_610_000 + seconds).unwrap()
}

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".sluice").join("state.db");
    (dir, path)
}

fn new_run(run_id: &str, pipeline: &str, at: jiff::Timestamp) -> NewRun {
    NewRun {
        run_id: run_id.into(),
        pipeline: pipeline.into(),
        pipeline_file: PathBuf::from("/srv/app/sluice.toml"),
        pipeline_digest: "d1".into(),
        run_dir: PathBuf::from(format!("/srv/app/.sluice/runs/{run_id}")),
        trigger: Trigger {
            actor: "alice".into(),
            ci: vec![("GITHUB_SHA".into(), "0123abcd".into())],
            git_commit: Some("0123abcd".into()),
        },
        started_at: at,
    }
}

/// A holder whose process has exited: a child that ran `true` and was waited for.
fn dead_holder() -> Holder {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    Holder {
        pid,
        ..Holder::current()
    }
}

fn sql_of_schema(path: &Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut statement = conn
        .prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap()
}

fn load_fixture(path: &Path) {
    write_schema_1_fixture(path).unwrap();
    assert!(
        write_schema_1_fixture(path).is_err(),
        "never over an existing file"
    );
}

fn count(path: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(sql, [], |row| row.get(0))
        .unwrap()
}

#[test]
fn a_new_database_gets_every_migration_and_write_ahead_logging() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 4);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // Opening again applies nothing twice.
    drop(store);
    let again = Store::open(&path).unwrap();
    assert_eq!(again.schema_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn the_schema_1_fixture_is_what_migration_1_creates() {
    let (_dir, fresh) = temp_db();
    drop(schema::open_at_version(&fresh, 1).unwrap());
    let fixture = fresh.with_file_name("fixture.db");
    load_fixture(&fixture);
    assert_eq!(sql_of_schema(&fixture), sql_of_schema(&fresh));
}

#[test]
fn looking_at_a_missing_database_says_so_and_creates_nothing() {
    let (_dir, path) = temp_db();
    let err = Store::open_existing(&path).unwrap_err();
    assert!(
        err.to_string().contains("no run was recorded here yet"),
        "{err}"
    );
    assert!(!path.exists());
    assert!(!path.parent().unwrap().exists());
    drop(Store::open(&path).unwrap());
    Store::open_existing(&path).unwrap();
}

#[test]
fn a_file_that_is_not_a_database_is_refused_naming_it() {
    let (_dir, path) = temp_db();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "[pipeline]\nname = \"oops\"\n".repeat(100)).unwrap();
    let err = Store::open(&path).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, StateError::Open { .. }), "{err:?}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("not a database"), "{message}");
}

#[test]
fn a_schema_1_database_is_migrated_with_its_data_intact() {
    let (_dir, path) = temp_db();
    load_fixture(&path);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);

    let passed = store.run(FIXTURE_PASSED_RUN).unwrap();
    assert_eq!(passed.state, RunState::Passed);
    assert_eq!(passed.trigger.actor, "alice");
    assert_eq!(
        passed.trigger.ci,
        vec![
            ("GITHUB_SHA".to_string(), "0123abcd".to_string()),
            ("GITHUB_RUN_ID".to_string(), "77".to_string())
        ]
    );
    assert_eq!(passed.started_at, t(0));
    assert_eq!(passed.finished_at, Some(t(120)));
    assert_eq!(
        passed.artifact.as_ref().unwrap().version.as_deref(),
        Some("1.4.0")
    );
    assert_eq!(passed.superseded_by, None);
    let stages = store.stages(FIXTURE_PASSED_RUN).unwrap();
    assert_eq!(
        stages
            .iter()
            .map(|s| (s.stage.as_str(), s.status.as_deref()))
            .collect::<Vec<_>>(),
        [("build", Some("passed")), ("test", Some("passed"))]
    );
    let attempts = store.attempts(FIXTURE_PASSED_RUN).unwrap();
    assert_eq!(attempts.len(), 3);
    assert_eq!(
        attempts[0].report.as_deref().map(parsed),
        Some(serde_json::json!({"artifact": "app"}))
    );
    assert_eq!(attempts[2].attempt, 2);
    let steps = store.finished_steps(FIXTURE_PASSED_RUN).unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[1].attempts, 2);
    assert_eq!(
        parsed(&steps[1].record),
        serde_json::json!({"id": "unit", "status": "passed"})
    );

    // The killed run: its unfinished attempt is still there; its holder is on another
    // host, so it counts as alive: not reaped, and resume is refused naming it.
    let killed = store.run(FIXTURE_KILLED_RUN).unwrap();
    assert_eq!(killed.state, RunState::Running);
    assert_eq!(killed.current_stage.as_deref(), Some("test"));
    let open_attempts: Vec<_> = store
        .attempts(FIXTURE_KILLED_RUN)
        .unwrap()
        .into_iter()
        .filter(|a| a.finished_at.is_none())
        .collect();
    assert_eq!(open_attempts.len(), 1);
    assert_eq!(open_attempts[0].step, "unit");
    assert!(store.reap_dead_runs(t(700)).unwrap().is_empty());
    let err = store
        .claim_run(FIXTURE_KILLED_RUN, &Holder::current())
        .unwrap_err();
    assert!(
        err.to_string().contains("pid 4194303 on host build-7"),
        "{err}"
    );

    // What schema 2 added works on the migrated runs.
    let found = store.runs_with_version("release", "1.5.0").unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].run_id, FIXTURE_KILLED_RUN);
    store
        .record_approval(&ApprovalRow {
            run_id: FIXTURE_KILLED_RUN.into(),
            stage: "prod".into(),
            action: "approve".into(),
            actor: "carol".into(),
            reason: "release notes checked".into(),
            at: t(800),
        })
        .unwrap();
    assert_eq!(
        store.approvals(FIXTURE_KILLED_RUN, "prod").unwrap().len(),
        1
    );
}

#[test]
fn a_database_from_a_newer_sluice_is_refused_and_left_untouched() {
    let (_dir, path) = temp_db();
    drop(Store::open(&path).unwrap());
    let newer = SCHEMA_VERSION + 1;
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(err, StateError::TooNew { found, supported, .. } if found == newer && supported == SCHEMA_VERSION),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("newer Sluice"), "{message}");
    assert_eq!(count(&path, "PRAGMA user_version"), i64::from(newer));
}

#[test]
fn a_database_opened_ahead_is_taken_over_and_a_newer_one_still_refused() {
    let (dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    store
        .create_run(&new_run("r1", "release", t(0)), &Holder::current())
        .unwrap();
    drop(store);
    // Opened ahead, then taken over through another spelling of the same file.
    let ahead = Store::open_ahead(&path).expect("an existing database opens ahead");
    assert!(ahead.conn.is_some());
    let spelled = path
        .parent()
        .unwrap()
        .join(".")
        .join(path.file_name().unwrap());
    let store = Store::open_after(&spelled, Some(ahead)).unwrap();
    assert_eq!(store.run("r1").unwrap().pipeline, "release");
    drop(store);
    // What was opened ahead for another file is not used for this one.
    let (_other_dir, other) = temp_db();
    drop(Store::open(&other).unwrap());
    let store = Store::open_after(&path, Store::open_ahead(&other)).unwrap();
    assert_eq!(store.run("r1").unwrap().pipeline, "release");
    drop(store);
    // A missing database is not opened ahead (nor created).
    let missing = dir.path().join("missing.db");
    assert!(Store::open_ahead(&missing).is_none());
    assert!(!missing.exists());
    // A newer database cannot be opened ahead; opening it after says why.
    let newer = SCHEMA_VERSION + 1;
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    let ahead = Store::open_ahead(&path).expect("its checkpoints still start");
    assert!(ahead.conn.is_none());
    let err = Store::open_after(&path, Some(ahead)).unwrap_err();
    assert!(matches!(err, StateError::TooNew { .. }), "{err:?}");
}

#[test]
fn every_statement_prepared_ahead_compiles_and_stays_in_the_cache() {
    let (_dir, path) = temp_db();
    drop(Store::open(&path).unwrap());
    let conn = connect(&path).unwrap();
    prepare_run_statements(&conn).expect("every statement of a run compiles");
    // All of them are kept: none is compiled again on the run's path.
    let prepared = run_statements().count();
    assert!(
        prepared <= STATEMENTS_KEPT / 2,
        "{prepared} statements: keep more"
    );
}

#[test]
fn a_write_that_panicked_leaves_no_transaction_open_for_the_next() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = store.write(|_| -> Result<(), Failure> { panic!("a bug inside a store call") });
    }));
    assert!(panicked.is_err());
    store
        .create_run(&new_run("r", "p", t(0)), &Holder::current())
        .unwrap();
    assert_eq!(store.run("r").unwrap().pipeline, "p");
    // And a write that fails is undone: nothing of it stays.
    let failed = store.write(|tx| -> Result<(), Failure> {
        tx.execute(
            "UPDATE runs SET pipeline = 'changed' WHERE run_id = 'r'",
            [],
        )?;
        Err(Failure::Sql(rusqlite::Error::InvalidQuery))
    });
    assert!(failed.is_err());
    assert_eq!(store.run("r").unwrap().pipeline, "p");
}

#[test]
fn a_transition_offered_while_the_store_is_in_use_is_handed_back_unrecorded() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    store
        .create_run(&new_run("r", "p", t(0)), &Holder::current())
        .unwrap();
    let started = StepTransition::AttemptStarted {
        run_id: "r".into(),
        stage: "s".into(),
        step: "a".into(),
        attempt: 1,
        at: t(1),
    };
    let in_use = store.lock();
    assert!(
        store
            .record_step_transitions_if_free(std::slice::from_ref(&started))
            .is_none()
    );
    drop(in_use);
    assert_eq!(store.attempts("r").unwrap().len(), 0);
    assert!(matches!(
        store
            .record_step_transitions_if_free(std::slice::from_ref(&started))
            .as_deref(),
        Some([Ok(())])
    ));
    assert_eq!(store.attempts("r").unwrap().len(), 1);
    // Refusals come back like any write's.
    let unknown = StepTransition::AttemptStarted {
        run_id: "missing".into(),
        stage: "s".into(),
        step: "a".into(),
        attempt: 1,
        at: t(1),
    };
    assert!(matches!(
        store.record_step_transitions_if_free(&[unknown]).as_deref(),
        Some([Err(StateError::NoSuchRun { .. })])
    ));
}

#[test]
fn a_run_is_recorded_with_its_trigger_state_and_artifact() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    let me = Holder::current();
    store
        .create_run(&new_run("r1", "release", t(0)), &me)
        .unwrap();
    let run = store.run("r1").unwrap();
    assert_eq!(run.state, RunState::Running);
    assert_eq!(run.holder.as_ref(), Some(&me));
    assert_eq!(run.trigger.git_commit.as_deref(), Some("0123abcd"));
    assert_eq!(run.started_at, t(0));

    let twice = store
        .create_run(&new_run("r1", "release", t(1)), &me)
        .unwrap_err();
    assert!(twice.to_string().contains("already recorded"), "{twice}");

    let artifact = ArtifactRow {
        name: "app".into(),
        version: Some("2.0.0".into()),
        digest: "sha256:ab".into(),
    };
    store.set_run_artifact("r1", &artifact).unwrap();
    store
        .set_run_state("r1", RunState::Failed, Some("stage `test` failed"), t(30))
        .unwrap();
    let run = store.run("r1").unwrap();
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(run.reason.as_deref(), Some("stage `test` failed"));
    assert_eq!(run.finished_at, Some(t(30)));
    assert_eq!(run.holder, None);
    assert_eq!(run.artifact.unwrap().digest, "sha256:ab");
    assert_eq!(store.latest_run("release").unwrap().unwrap().run_id, "r1");
    assert!(store.latest_run("other").unwrap().is_none());
    assert!(matches!(
        store.run("nope").unwrap_err(),
        StateError::NoSuchRun { .. }
    ));
}

#[test]
fn two_stores_on_one_file_write_concurrently_without_losing_a_record() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    store
        .create_run(&new_run("r1", "release", t(0)), &Holder::current())
        .unwrap();
    drop(store);
    let writers: Vec<_> = (0..2)
        .map(|writer| {
            let path = path.clone();
            std::thread::spawn(move || {
                let store = Store::open(&path).unwrap();
                for i in 0..150 {
                    let step = format!("w{writer}-s{i}");
                    store.start_attempt("r1", "build", &step, 1, t(i)).unwrap();
                    store
                        .finish_step(&StepRow {
                            run_id: "r1".into(),
                            stage: "build".into(),
                            step,
                            status: "passed".into(),
                            summary: String::new(),
                            attempts: 1,
                            record: raw(serde_json::json!({})),
                            finished_at: t(i),
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.finished_steps("r1").unwrap().len(), 300);
    assert_eq!(store.attempts("r1").unwrap().len(), 300);
}

#[test]
fn resume_is_refused_while_the_runner_lives_and_allowed_once_it_died() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    let me = Holder::current();
    let mut live_other = me.clone();
    live_other.pid = std::os::unix::process::parent_id();
    live_other.start_ticks = 0;
    store
        .create_run(&new_run("alive", "p", t(0)), &live_other)
        .unwrap();
    let err = store.claim_run("alive", &me).unwrap_err();
    assert!(matches!(err, StateError::RunHeld { pid, .. } if pid == live_other.pid));
    assert!(err.to_string().contains("is being driven by pid"), "{err}");

    store
        .create_run(&new_run("orphan", "p", t(1)), &dead_holder())
        .unwrap();
    let claimed = store.claim_run("orphan", &me).unwrap();
    assert_eq!(claimed.state, RunState::Running);
    assert_eq!(claimed.holder.as_ref(), Some(&me));
    // The same process claiming again is no conflict.
    store.claim_run("orphan", &me).unwrap();

    store
        .set_run_state(
            "orphan",
            RunState::Waiting,
            Some("waiting for approval"),
            t(2),
        )
        .unwrap();
    assert_eq!(store.run("orphan").unwrap().holder.as_ref(), Some(&me));
    assert_eq!(
        store.claim_run("orphan", &me).unwrap().state,
        RunState::Running
    );

    store
        .set_run_state("orphan", RunState::Passed, None, t(3))
        .unwrap();
    assert_eq!(store.run("orphan").unwrap().holder, None);
    assert!(matches!(
        store.claim_run("orphan", &me).unwrap_err(),
        StateError::RunEnded {
            state: RunState::Passed,
            ..
        }
    ));
}

#[test]
fn running_runs_of_dead_runners_are_reaped_as_interrupted() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    store
        .create_run(&new_run("live", "p", t(0)), &Holder::current())
        .unwrap();
    store
        .create_run(&new_run("dead", "p", t(1)), &dead_holder())
        .unwrap();
    assert_eq!(store.reap_dead_runs(t(5)).unwrap(), ["dead"]);
    let dead = store.run("dead").unwrap();
    assert_eq!(dead.state, RunState::Interrupted);
    assert!(
        dead.reason
            .unwrap()
            .contains("without having recorded an end")
    );
    assert_eq!(store.run("live").unwrap().state, RunState::Running);
    assert!(store.reap_dead_runs(t(6)).unwrap().is_empty());
}

#[test]
fn a_stage_holds_one_run_and_a_dead_holder_is_taken_over() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    let me = Holder::current();
    let mut live_other = me.clone();
    live_other.pid = std::os::unix::process::parent_id();
    live_other.start_ticks = 0;
    store
        .create_run(&new_run("a", "p", t(0)), &live_other)
        .unwrap();
    store.create_run(&new_run("b", "p", t(1)), &me).unwrap();
    store
        .create_run(&new_run("c", "other-pipeline", t(1)), &me)
        .unwrap();

    assert_eq!(
        store.claim_stage("a", "prod", &live_other, t(10)).unwrap(),
        StageClaim::Held
    );
    assert_eq!(
        store.claim_stage("b", "prod", &me, t(11)).unwrap(),
        StageClaim::Busy {
            holder_run: "a".into()
        }
    );
    // Another pipeline's stage of the same name is another stage.
    assert_eq!(
        store.claim_stage("c", "prod", &me, t(11)).unwrap(),
        StageClaim::Held
    );
    // Claiming again is idempotent and keeps the entry time.
    assert_eq!(
        store.claim_stage("a", "prod", &live_other, t(12)).unwrap(),
        StageClaim::Held
    );
    let occupancy = store.stage_occupancy("p", "prod").unwrap();
    let holder = occupancy.holder.unwrap();
    assert_eq!(holder.run_id, "a");
    assert!(holder.alive);
    assert_eq!(holder.claimed_at, t(10));

    store.exit_stage("a", "prod", "passed", t(20)).unwrap();
    assert_eq!(
        store.claim_stage("b", "prod", &me, t(21)).unwrap(),
        StageClaim::Held
    );
    let stages = store.stages("b").unwrap();
    assert_eq!(stages[0].entered_at, Some(t(21)));

    // b's runner dies inside the stage: the next run takes it over, and b is interrupted.
    store.create_run(&new_run("d", "p", t(2)), &me).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let dead = dead_holder();
    conn.execute(
        "UPDATE stage_claims SET holder_pid = ?1 WHERE run_id = 'b'",
        [dead.pid],
    )
    .unwrap();
    conn.execute(
        "UPDATE runs SET holder_pid = ?1 WHERE run_id = 'b'",
        [dead.pid],
    )
    .unwrap();
    assert_eq!(
        store.claim_stage("d", "prod", &me, t(30)).unwrap(),
        StageClaim::Held
    );
    let b = store.run("b").unwrap();
    assert_eq!(b.state, RunState::Interrupted);
    assert!(b.reason.unwrap().contains("took the stage over"));
    let a_stages = store.stages("a").unwrap();
    assert_eq!(a_stages[0].status.as_deref(), Some("passed"));
    assert_eq!(a_stages[0].exited_at, Some(t(20)));
}

#[test]
fn a_newer_run_waiting_for_a_stage_supersedes_the_older_one() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    let me = Holder::current();
    for (i, id) in ["old", "mid", "new"].iter().enumerate() {
        store
            .create_run(&new_run(id, "p", t(i as i64)), &me)
            .unwrap();
    }
    store
        .create_run(&new_run("elsewhere", "q", t(3)), &me)
        .unwrap();
    assert!(
        store
            .queue_for_stage("old", "prod", t(10))
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .queue_for_stage("elsewhere", "prod", t(10))
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.stage_occupancy("p", "prod").unwrap().queue, ["old"]);
    assert_eq!(
        store.queue_for_stage("new", "prod", t(11)).unwrap(),
        ["old"]
    );

    let old = store.run("old").unwrap();
    assert_eq!(old.state, RunState::Superseded);
    assert_eq!(old.superseded_by.as_deref(), Some("new"));
    assert_eq!(old.finished_at, Some(t(11)));
    assert_eq!(
        store.stages("old").unwrap()[0].status.as_deref(),
        Some("superseded")
    );
    // Its waiting process learns it at its next attempt to enter.
    assert_eq!(
        store.claim_stage("old", "prod", &me, t(12)).unwrap(),
        StageClaim::Superseded { by: "new".into() }
    );
    // The other pipeline's run is not touched.
    assert_eq!(store.run("elsewhere").unwrap().state, RunState::Running);

    // A run older than one already waiting is superseded as soon as it arrives.
    assert_eq!(
        store.queue_for_stage("mid", "prod", t(13)).unwrap(),
        ["mid"]
    );
    assert_eq!(
        store.run("mid").unwrap().superseded_by.as_deref(),
        Some("new")
    );
    assert_eq!(store.stage_occupancy("p", "prod").unwrap().queue, ["new"]);

    // Queueing again (resume) keeps the first queued time and supersedes no one.
    assert!(
        store
            .queue_for_stage("new", "prod", t(14))
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.stages("new").unwrap()[0].queued_at, t(11));
    assert_eq!(
        store.claim_stage("new", "prod", &me, t(15)).unwrap(),
        StageClaim::Held
    );
    // Asking again tells the superseded run so, and changes nothing.
    assert_eq!(
        store.queue_for_stage("old", "prod", t(16)).unwrap(),
        ["old"]
    );
    assert_eq!(store.run("old").unwrap().finished_at, Some(t(11)));
    store
        .set_run_state("new", RunState::Failed, Some("deploy failed"), t(17))
        .unwrap();
    // A run that ends releases the stage it held.
    assert!(store.stage_occupancy("p", "prod").unwrap().holder.is_none());
    assert!(matches!(
        store.queue_for_stage("new", "staging", t(18)).unwrap_err(),
        StateError::RunEnded {
            state: RunState::Failed,
            ..
        }
    ));
}

#[test]
fn a_finished_step_is_recorded_once_and_an_interrupted_attempt_stays_visible() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    store
        .create_run(&new_run("r", "p", t(0)), &Holder::current())
        .unwrap();
    store
        .start_attempt("r", "build", "compile", 1, t(1))
        .unwrap();
    // The runner is killed; resume starts the attempt again.
    store
        .start_attempt("r", "build", "compile", 1, t(5))
        .unwrap();
    store
        .finish_attempt(&AttemptRow {
            run_id: "r".into(),
            stage: "build".into(),
            step: "compile".into(),
            attempt: 1,
            started_at: t(5),
            finished_at: Some(t(9)),
            status: Some("passed".into()),
            summary: Some("ok".into()),
            report: Some(raw(serde_json::json!({"tests": 3}))),
            log: Some("logs/compile.log".into()),
        })
        .unwrap();
    let attempts = store.attempts("r").unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].finished_at, None, "the interrupted attempt");
    assert_eq!(attempts[1].started_at, t(5));
    assert_eq!(attempts[1].finished_at, Some(t(9)));
    assert_eq!(
        attempts[1].report.as_deref().map(parsed),
        Some(serde_json::json!({"tests": 3}))
    );

    let step = StepRow {
        run_id: "r".into(),
        stage: "build".into(),
        step: "compile".into(),
        status: "passed".into(),
        summary: "ok".into(),
        attempts: 1,
        record: raw(serde_json::json!({"id": "compile"})),
        finished_at: t(9),
    };
    store.finish_step(&step).unwrap();
    let again = store.finish_step(&step).unwrap_err();
    assert!(
        again.to_string().contains("already has a final record"),
        "{again}"
    );
    assert_eq!(store.finished_steps("r").unwrap().len(), 1);

    // Both in one transaction: a refused step record leaves the attempt unfinished too.
    store
        .start_attempt("r", "build", "compile", 2, t(10))
        .unwrap();
    let second = AttemptRow {
        attempt: 2,
        started_at: t(10),
        finished_at: Some(t(11)),
        ..attempts[1].clone()
    };
    assert!(store.finish_attempt_and_step(&second, &step).is_err());
    assert_eq!(store.attempts("r").unwrap()[2].finished_at, None);
    let test_step = StepRow {
        step: "test".into(),
        ..step.clone()
    };
    let test_attempt = AttemptRow {
        step: "test".into(),
        ..second.clone()
    };
    store.start_attempt("r", "build", "test", 2, t(10)).unwrap();
    store
        .finish_attempt_and_step(&test_attempt, &test_step)
        .unwrap();
    assert_eq!(store.attempts("r").unwrap()[3].finished_at, Some(t(11)));
    assert_eq!(store.finished_steps("r").unwrap().len(), 2);
    assert!(matches!(
        store
            .start_attempt("missing", "build", "x", 1, t(1))
            .unwrap_err(),
        StateError::NoSuchRun { .. }
    ));
}

#[test]
fn transitions_committed_together_are_each_recorded_or_refused_alone() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    store
        .create_run(&new_run("r", "p", t(0)), &Holder::current())
        .unwrap();
    let started = |step: &str| StepTransition::AttemptStarted {
        run_id: "r".into(),
        stage: "s".into(),
        step: step.into(),
        attempt: 1,
        at: t(1),
    };
    let attempt = |step: &str| AttemptRow {
        run_id: "r".into(),
        stage: "s".into(),
        step: step.into(),
        attempt: 1,
        started_at: t(1),
        finished_at: Some(t(2)),
        status: Some("passed".into()),
        summary: Some("ok".into()),
        report: None,
        log: None,
    };
    let result = |step: &str| StepRow {
        run_id: "r".into(),
        stage: "s".into(),
        step: step.into(),
        status: "passed".into(),
        summary: "ok".into(),
        attempts: 1,
        record: raw(serde_json::json!({ "step": step })),
        finished_at: t(2),
    };
    let outcomes = store.record_step_transitions(&[
        started("a"),
        started("b"),
        StepTransition::LastAttemptAndStepFinished(attempt("a"), result("a")),
        // `a` finishing twice is refused, and only its own part is undone.
        StepTransition::LastAttemptAndStepFinished(attempt("a"), result("a")),
        StepTransition::AttemptStarted {
            run_id: "missing".into(),
            stage: "s".into(),
            step: "c".into(),
            attempt: 1,
            at: t(1),
        },
        StepTransition::AttemptFinished(attempt("b")),
        StepTransition::StepFinished(result("b")),
    ]);
    let failed: Vec<usize> = (0..outcomes.len())
        .filter(|i| outcomes[*i].is_err())
        .collect();
    assert_eq!(failed, [3, 4], "{outcomes:?}");
    assert!(
        outcomes[3]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("already has a final record")
    );
    assert!(matches!(outcomes[4], Err(StateError::NoSuchRun { .. })));
    let attempts = store.attempts("r").unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(attempts.iter().all(|a| a.finished_at == Some(t(2))));
    let finished: Vec<String> = store
        .finished_steps("r")
        .unwrap()
        .into_iter()
        .map(|s| s.step)
        .collect();
    assert_eq!(finished, ["a", "b"]);
    assert!(store.consistency_problems().unwrap().is_empty());
}

fn evaluation(gate: &str, decision: &str, at: jiff::Timestamp) -> GateEvaluationRow {
    GateEvaluationRow {
        run_id: "r".into(),
        stage: "prod".into(),
        gate: gate.into(),
        kind: "window".into(),
        evaluated_at: at,
        decision: decision.into(),
        reason: format!("{decision} at {at}"),
        until: None,
        evidence: serde_json::json!({"zone": "Europe/Berlin"}),
        since: at,
    }
}

#[test]
fn a_gate_decision_stands_since_the_first_of_an_unbroken_series() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    store
        .create_run(&new_run("r", "p", t(0)), &Holder::current())
        .unwrap();
    store
        .record_gate_evaluations(&[
            evaluation("window", "wait", t(10)),
            evaluation("approval", "wait", t(10)),
        ])
        .unwrap();
    store
        .record_gate_evaluations(&[
            evaluation("window", "wait", t(20)),
            evaluation("approval", "allow", t(20)),
        ])
        .unwrap();
    store
        .record_gate_evaluations(&[
            evaluation("window", "allow", t(30)),
            evaluation("approval", "allow", t(30)),
        ])
        .unwrap();
    store
        .record_gate_evaluations(&[
            evaluation("window", "wait", t(40)),
            evaluation("approval", "allow", t(40)),
        ])
        .unwrap();
    let latest = store.latest_gate_evaluations("r", "prod").unwrap();
    let summary: Vec<_> = latest
        .iter()
        .map(|e| {
            (
                e.gate.as_str(),
                e.decision.as_str(),
                e.since,
                e.evaluated_at,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("window", "wait", t(40), t(40)),
            ("approval", "allow", t(20), t(40))
        ]
    );
    assert_eq!(
        latest[0].evidence,
        serde_json::json!({"zone": "Europe/Berlin"})
    );
    let ledger = store.gate_evaluations("r", "prod").unwrap();
    assert_eq!(ledger.len(), 8);
    assert_eq!(ledger[2].since, t(10), "window waited since 10 at 20");
    assert!(
        store
            .latest_gate_evaluations("r", "staging")
            .unwrap()
            .is_empty()
    );
}

fn override_row(
    gate: &str,
    stage: Option<&str>,
    expires_at: Option<jiff::Timestamp>,
) -> OverrideRow {
    OverrideRow {
        id: 0,
        run_id: "r".into(),
        gate: gate.into(),
        stage: stage.map(Into::into),
        actor: "alice".into(),
        reason: "hotfix for INC-42".into(),
        created_at: t(0),
        expires_at,
        used_at: None,
    }
}

#[test]
fn an_override_is_used_once_and_not_after_it_expires() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    store
        .create_run(&new_run("r", "p", t(0)), &Holder::current())
        .unwrap();
    let once = store
        .record_override(&override_row("business-hours", Some("prod"), None))
        .unwrap();
    let expiring = store
        .record_override(&override_row("approval", None, Some(t(3600))))
        .unwrap();
    let other_stage = store
        .record_override(&override_row("approval", Some("staging"), None))
        .unwrap();
    let active: Vec<i64> = store
        .active_overrides("r", "prod", t(60))
        .unwrap()
        .iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(active, [once, expiring]);
    // Expired an hour later; the stage-less one applies to any stage.
    let later: Vec<i64> = store
        .active_overrides("r", "staging", t(3600))
        .unwrap()
        .iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(later, [other_stage]);

    store.use_override(once, t(100)).unwrap();
    let err = store.use_override(once, t(101)).unwrap_err();
    assert!(err.to_string().contains("already used"), "{err}");
    assert!(
        store
            .use_override(9999, t(101))
            .unwrap_err()
            .to_string()
            .contains("no override 9999")
    );
    let active: Vec<i64> = store
        .active_overrides("r", "prod", t(200))
        .unwrap()
        .iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(active, [expiring]);
    let all = store.overrides("r").unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].used_at, Some(t(100)));
    assert_eq!(all[0].reason, "hotfix for INC-42");
    assert_eq!(all[1].expires_at, Some(t(3600)));
}

#[test]
fn approvals_and_rejections_are_kept_in_order_and_checked() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    store
        .create_run(&new_run("r", "p", t(0)), &Holder::current())
        .unwrap();
    for (action, actor) in [("approve", "alice"), ("reject", "bob")] {
        store
            .record_approval(&ApprovalRow {
                run_id: "r".into(),
                stage: "prod".into(),
                action: action.into(),
                actor: actor.into(),
                reason: "looked at it".into(),
                at: t(5),
            })
            .unwrap();
    }
    let rows = store.approvals("r", "prod").unwrap();
    assert_eq!(
        rows.iter()
            .map(|a| (a.action.as_str(), a.actor.as_str()))
            .collect::<Vec<_>>(),
        [("approve", "alice"), ("reject", "bob")]
    );
    let bad = ApprovalRow {
        action: "maybe".into(),
        ..rows[0].clone()
    };
    assert!(store.record_approval(&bad).is_err());
    let missing = ApprovalRow {
        run_id: "missing".into(),
        ..rows[0].clone()
    };
    assert!(matches!(
        store.record_approval(&missing).unwrap_err(),
        StateError::NoSuchRun { .. }
    ));
}

#[test]
fn history_is_newest_first_and_filters_by_pipeline_and_stage() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    let me = Holder::current();
    for i in 0..6 {
        let id = format!("r{i}");
        let pipeline = if i % 3 == 2 { "other" } else { "release" };
        store
            .create_run(&new_run(&id, pipeline, t(i)), &me)
            .unwrap();
        store
            .set_run_artifact(
                &id,
                &ArtifactRow {
                    name: "app".into(),
                    version: Some(format!("1.{}.0", i % 2)),
                    digest: format!("sha256:{i}"),
                },
            )
            .unwrap();
        store.claim_stage(&id, "build", &me, t(i)).unwrap();
        store.exit_stage(&id, "build", "passed", t(i)).unwrap();
        if i % 2 == 0 {
            store.claim_stage(&id, "prod", &me, t(i)).unwrap();
            store.exit_stage(&id, "prod", "passed", t(i)).unwrap();
        }
        store
            .set_run_state(&id, RunState::Passed, None, t(i))
            .unwrap();
    }
    let ids = |filter: HistoryFilter| -> Vec<String> {
        store
            .history(&filter)
            .unwrap()
            .into_iter()
            .map(|r| r.run_id)
            .collect()
    };
    assert_eq!(
        ids(HistoryFilter::default()),
        ["r5", "r4", "r3", "r2", "r1", "r0"]
    );
    assert_eq!(
        ids(HistoryFilter {
            limit: 2,
            ..Default::default()
        }),
        ["r5", "r4"]
    );
    assert_eq!(
        ids(HistoryFilter {
            pipeline: Some("release".into()),
            ..Default::default()
        }),
        ["r4", "r3", "r1", "r0"]
    );
    assert_eq!(
        ids(HistoryFilter {
            pipeline: Some("release".into()),
            stage: Some("prod".into()),
            limit: 1,
        }),
        ["r4"]
    );
    assert_eq!(
        ids(HistoryFilter {
            stage: Some("prod".into()),
            ..Default::default()
        }),
        ["r4", "r2", "r0"]
    );
    let with_version: Vec<String> = store
        .runs_with_version("release", "1.1.0")
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(with_version, ["r3", "r1"]);
}

/// Child processes of the tests below: the test binary runs itself with
/// `--exact state::tests::stage_claim_child --ignored`; without the variables set by
/// those tests it does nothing.
#[test]
#[ignore = "run by the multi-process tests as a child process"]
fn stage_claim_child() {
    let (Some(db), Some(run), Some(log), Some(mode)) = (
        std::env::var_os("SLUICE_STATE_CHILD_DB"),
        std::env::var("SLUICE_STATE_CHILD_RUN").ok(),
        std::env::var_os("SLUICE_STATE_CHILD_LOG"),
        std::env::var("SLUICE_STATE_CHILD_MODE").ok(),
    ) else {
        return;
    };
    let append = |line: String| {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&log)
            .unwrap();
        file.write_all(format!("{line}\n").as_bytes()).unwrap();
    };
    let store = Store::open(Path::new(&db)).unwrap();
    let me = Holder::current();
    store.claim_run(&run, &me).unwrap();
    if mode == "record-forever" {
        record_steps_until_killed(&store, &run);
        return;
    }
    loop {
        match store.claim_stage(&run, "prod", &me, t(1)).unwrap() {
            StageClaim::Held => break,
            StageClaim::Busy { .. } => std::thread::sleep(std::time::Duration::from_millis(2)),
            StageClaim::Superseded { by } => {
                append(format!("superseded {run} {by}"));
                return;
            }
        }
    }
    append(format!("enter {run}"));
    if mode == "hold-forever" {
        std::thread::sleep(std::time::Duration::from_secs(120));
    }
    std::thread::sleep(std::time::Duration::from_millis(25));
    append(format!("exit {run}"));
    store.exit_stage(&run, "prod", "passed", t(2)).unwrap();
    store
        .set_run_state(&run, RunState::Passed, None, t(3))
        .unwrap();
}

/// A child process, killed and reaped when the test ends, even by a panic.
struct ChildGuard(std::process::Child);

impl ChildGuard {
    fn kill_now(&mut self) {
        self.0.kill().unwrap(); // SIGKILL
        self.0.wait().unwrap();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(db: &Path, run: &str, log: &Path, mode: &str) -> ChildGuard {
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tests::stage_claim_child",
            "--ignored",
            "--test-threads=1",
            "--quiet",
        ])
        .env("SLUICE_STATE_CHILD_DB", db)
        .env("SLUICE_STATE_CHILD_RUN", run)
        .env("SLUICE_STATE_CHILD_LOG", log)
        .env("SLUICE_STATE_CHILD_MODE", mode)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    ChildGuard(child)
}

#[test]
fn runner_processes_racing_for_one_stage_enter_it_one_at_a_time() {
    let (dir, path) = temp_db();
    let log = dir.path().join("claims.log");
    let store = Store::open(&path).unwrap();
    let runs: Vec<String> = (0..4).map(|i| format!("racer-{i}")).collect();
    for (i, run) in runs.iter().enumerate() {
        store
            .create_run(&new_run(run, "p", t(i as i64)), &dead_holder())
            .unwrap();
    }
    let children: Vec<_> = runs
        .iter()
        .map(|run| spawn_child(&path, run, &log, "pass"))
        .collect();
    for mut child in children {
        assert!(child.0.wait().unwrap().success());
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Every `enter` is followed by the same run's `exit` before anyone else enters.
    let mut inside: Option<&str> = None;
    let mut entered = 0;
    for line in &lines {
        match line.split_once(' ').unwrap() {
            ("enter", run) => {
                assert_eq!(
                    inside, None,
                    "{run} entered while another run held the stage:\n{text}"
                );
                inside = Some(run);
                entered += 1;
            }
            ("exit", run) => {
                assert_eq!(inside, Some(run), "{text}");
                inside = None;
            }
            ("superseded", rest) => {
                // Only an older run is superseded, by a newer one that got in first.
                let (old, new) = rest.split_once(' ').unwrap();
                assert!(old < new, "{text}");
            }
            other => panic!("unexpected line {other:?}"),
        }
    }
    assert!(entered >= 1, "{text}");
    assert_eq!(
        entered + lines.iter().filter(|l| l.starts_with("superseded")).count(),
        4
    );
    assert!(store.stage_occupancy("p", "prod").unwrap().holder.is_none());
}

#[test]
fn a_stage_held_by_a_killed_runner_is_taken_over() {
    let (dir, path) = temp_db();
    let log = dir.path().join("claims.log");
    let store = Store::open(&path).unwrap();
    store
        .create_run(&new_run("killed", "p", t(0)), &dead_holder())
        .unwrap();
    store
        .create_run(&new_run("next", "p", t(1)), &Holder::current())
        .unwrap();
    let mut child = spawn_child(&path, "killed", &log, "hold-forever");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&log).is_ok_and(|t| t.contains("enter killed")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the child never entered the stage"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let me = Holder::current();
    assert_eq!(
        store.claim_stage("next", "prod", &me, t(5)).unwrap(),
        StageClaim::Busy {
            holder_run: "killed".into()
        }
    );
    child.kill_now();
    assert_eq!(
        store.claim_stage("next", "prod", &me, t(6)).unwrap(),
        StageClaim::Held
    );
    let killed = store.run("killed").unwrap();
    assert_eq!(killed.state, RunState::Interrupted);
    assert!(
        killed
            .reason
            .as_deref()
            .unwrap()
            .contains("died while holding stage `prod`"),
        "{killed:?}"
    );
    assert_eq!(
        store
            .stage_occupancy("p", "prod")
            .unwrap()
            .holder
            .unwrap()
            .run_id,
        "next"
    );
}

#[test]
fn the_record_of_killed_and_finished_runs_is_consistent_and_a_broken_one_is_named() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    let me = Holder::current();
    store.create_run(&new_run("done", "p", t(0)), &me).unwrap();
    store.claim_stage("done", "build", &me, t(1)).unwrap();
    store
        .start_attempt("done", "build", "compile", 1, t(1))
        .unwrap();
    store
        .finish_attempt(&AttemptRow {
            run_id: "done".into(),
            stage: "build".into(),
            step: "compile".into(),
            attempt: 1,
            started_at: t(1),
            finished_at: Some(t(2)),
            status: Some("passed".into()),
            summary: None,
            report: None,
            log: None,
        })
        .unwrap();
    for (step, status) in [("compile", "passed"), ("docs", "skipped")] {
        store
            .finish_step(&StepRow {
                run_id: "done".into(),
                stage: "build".into(),
                step: step.into(),
                status: status.into(),
                summary: String::new(),
                attempts: 1,
                record: raw(serde_json::json!({})),
                finished_at: t(2),
            })
            .unwrap();
    }
    store.exit_stage("done", "build", "passed", t(3)).unwrap();
    store
        .set_run_state("done", RunState::Passed, None, t(3))
        .unwrap();
    // Killed in the middle of a stage and of an attempt: not finished, but consistent.
    store
        .create_run(&new_run("killed", "p", t(4)), &dead_holder())
        .unwrap();
    store.claim_stage("killed", "build", &me, t(5)).unwrap();
    store
        .start_attempt("killed", "build", "compile", 1, t(5))
        .unwrap();
    store.create_run(&new_run("new", "p", t(6)), &me).unwrap();
    store.queue_for_stage("new", "prod", t(6)).unwrap();
    store.create_run(&new_run("newer", "p", t(7)), &me).unwrap();
    store.queue_for_stage("newer", "prod", t(7)).unwrap();
    assert_eq!(store.consistency_problems().unwrap(), Vec::<String>::new());

    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "UPDATE runs SET finished_at = NULL WHERE run_id = 'done';
         UPDATE run_stages SET status = NULL WHERE run_id = 'done';
         DELETE FROM step_attempts WHERE run_id = 'done';",
    )
    .unwrap();
    assert_eq!(
        store.consistency_problems().unwrap(),
        [
            "run `done` ended but has no end time or still names a runner process",
            "run `done` stage `build` has an exit time without a status, or a status without an exit time",
            "run `done` step `build.compile` has a final record but no finished attempt (and was not skipped)",
        ]
    );
}

#[test]
fn runners_opening_one_new_database_at_once_migrate_it_once() {
    let (_dir, path) = temp_db();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
    let openers: Vec<_> = (0..4)
        .map(|i| {
            let path = path.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let store = Store::open(&path).unwrap();
                store
                    .create_run(&new_run(&format!("r{i}"), "p", t(i)), &Holder::current())
                    .unwrap();
                store.schema_version().unwrap()
            })
        })
        .collect();
    for opener in openers {
        assert_eq!(opener.join().unwrap(), SCHEMA_VERSION);
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.history(&HistoryFilter::default()).unwrap().len(), 4);
    assert!(store.consistency_problems().unwrap().is_empty());
}

/// A runner's recording, forever: each step's attempt starts, then its end and the
/// step's record are written together; a resumed runner goes on after the last step
/// recorded finished.
fn record_steps_until_killed(store: &Store, run: &str) {
    let mut next = store.finished_steps(run).unwrap().len();
    // Bounded, should the test that kills it die first.
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < give_up {
        let step = format!("step-{next:05}");
        let attempt = store
            .attempts(run)
            .unwrap()
            .iter()
            .filter(|a| a.step == step)
            .count() as u32
            + 1;
        store
            .start_attempt(run, "build", &step, attempt, t(1))
            .unwrap();
        store
            .finish_attempt_and_step(
                &AttemptRow {
                    run_id: run.into(),
                    stage: "build".into(),
                    step: step.clone(),
                    attempt,
                    started_at: t(1),
                    finished_at: Some(t(2)),
                    status: Some("passed".into()),
                    summary: None,
                    report: Some(raw(serde_json::json!({"n": next}))),
                    log: None,
                },
                &StepRow {
                    run_id: run.into(),
                    stage: "build".into(),
                    step,
                    status: "passed".into(),
                    summary: String::new(),
                    attempts: attempt,
                    record: raw(serde_json::json!({"n": next})),
                    finished_at: t(2),
                },
            )
            .unwrap();
        next += 1;
    }
}

#[test]
fn a_runner_killed_at_twenty_random_moments_leaves_every_finished_step_recorded_once() {
    let (dir, path) = temp_db();
    let log = dir.path().join("unused.log");
    let store = Store::open(&path).unwrap();
    store
        .create_run(&new_run("chaos", "p", t(0)), &dead_holder())
        .unwrap();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        | 1;
    let mut previous = 0;
    for kill in 0..20 {
        let mut child = spawn_child(&path, "chaos", &log, "record-forever");
        // xorshift: a kill 5 to 45 ms after the child started writing.
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let after = std::time::Duration::from_millis(5 + u64::from(seed % 40));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while store.finished_steps("chaos").unwrap().len() == previous {
            assert!(
                std::time::Instant::now() < deadline,
                "kill {kill}: the child recorded nothing"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::thread::sleep(after);
        child.kill_now();
        let problems = store.consistency_problems().unwrap();
        assert!(problems.is_empty(), "after kill {kill}: {problems:?}");
        let steps = store.finished_steps("chaos").unwrap();
        assert!(steps.len() > previous, "kill {kill}");
        previous = steps.len();
    }
    let steps = store.finished_steps("chaos").unwrap();
    // Exactly once each, in order, with the record its own attempt wrote.
    for (n, step) in steps.iter().enumerate() {
        assert_eq!(step.step, format!("step-{n:05}"));
        assert_eq!(parsed(&step.record), serde_json::json!({"n": n}));
    }
    let attempts = store.attempts("chaos").unwrap();
    let finished = attempts.iter().filter(|a| a.finished_at.is_some()).count();
    assert_eq!(
        finished,
        steps.len(),
        "one finished attempt per finished step"
    );
    // At most one attempt cut short per kill.
    assert!(
        attempts.len() - finished <= 20,
        "{} unfinished attempts",
        attempts.len() - finished
    );
    assert_eq!(store.run("chaos").unwrap().state, RunState::Running);
    assert_eq!(store.reap_dead_runs(t(9)).unwrap(), ["chaos"]);
}

#[test]
fn a_resumed_run_that_lost_its_stage_to_a_newer_run_is_superseded_not_sent_back_in() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    let me = Holder::current();
    store.create_run(&new_run("older", "p", t(0)), &me).unwrap();
    store.create_run(&new_run("newer", "p", t(1)), &me).unwrap();
    store.queue_for_stage("older", "prod", t(2)).unwrap();
    assert_eq!(
        store
            .claim_stage("older", "prod", &dead_holder(), t(3))
            .unwrap(),
        StageClaim::Held
    );
    // Its runner died inside the stage; the newer run takes the stage over and passes.
    store.queue_for_stage("newer", "prod", t(4)).unwrap();
    assert_eq!(
        store.claim_stage("newer", "prod", &me, t(5)).unwrap(),
        StageClaim::Held
    );
    store.exit_stage("newer", "prod", "passed", t(6)).unwrap();
    // The older run is resumed: it must not deploy its older version after the newer.
    store.claim_run("older", &me).unwrap();
    assert_eq!(
        store.claim_stage("older", "prod", &me, t(7)).unwrap(),
        StageClaim::Superseded { by: "newer".into() }
    );
    let older = store.run("older").unwrap();
    assert_eq!(older.state, RunState::Superseded);
    let stage = &store.stages("older").unwrap()[0];
    assert_eq!(stage.entered_at, Some(t(3)));
    assert_eq!(
        (stage.exited_at, stage.status.as_deref()),
        (Some(t(7)), Some("superseded"))
    );
    assert!(store.consistency_problems().unwrap().is_empty());

    // A resumed run that still holds its stage (nobody took it over) goes on in it.
    store.create_run(&new_run("third", "p", t(8)), &me).unwrap();
    store.queue_for_stage("third", "prod", t(9)).unwrap();
    assert_eq!(
        store
            .claim_stage("third", "prod", &dead_holder(), t(10))
            .unwrap(),
        StageClaim::Held
    );
    store
        .create_run(&new_run("fourth", "p", t(11)), &me)
        .unwrap();
    store.queue_for_stage("fourth", "prod", t(12)).unwrap();
    store.claim_run("third", &me).unwrap();
    assert_eq!(
        store.claim_stage("third", "prod", &me, t(13)).unwrap(),
        StageClaim::Held
    );
}

#[test]
fn the_write_ahead_log_is_copied_back_off_the_recording_path() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    store
        .create_run(&new_run("r", "p", t(0)), &Holder::current())
        .unwrap();
    let db_size = || std::fs::metadata(&path).unwrap().len();
    let before = db_size();
    // About 400 pages of WAL: far below the recording connection's own threshold.
    for i in 0..200 {
        store
            .finish_step(&StepRow {
                run_id: "r".into(),
                stage: "build".into(),
                step: format!("s{i}"),
                status: "passed".into(),
                summary: "x".repeat(4000),
                attempts: 1,
                record: raw(serde_json::json!({})),
                finished_at: t(i),
            })
            .unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while db_size() < before + 400_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint copied the WAL back: {} bytes",
            db_size()
        );
        std::thread::sleep(checkpoint::INTERVAL / 5);
    }
    drop(store);
    assert_eq!(
        Store::open(&path)
            .unwrap()
            .finished_steps("r")
            .unwrap()
            .len(),
        200
    );
}

fn check(monitor: &str, at: i64, outcome: CheckOutcome) -> CheckRow {
    CheckRow {
        id: 0,
        monitor: monitor.into(),
        source: "run r1".into(),
        scheduled_at: t(at),
        started_at: t(at),
        finished_at: t(at),
        outcome,
        positive: 0,
        negative: 0,
        summary: String::new(),
    }
}

fn point(monitor: &str, at: i64, positive: bool) -> DataPointRow {
    DataPointRow {
        monitor: monitor.into(),
        name: "probe".into(),
        positive,
        value: Some(1.0),
        detail: if positive {
            "ok".into()
        } else {
            "status 500".into()
        },
        at: t(at),
    }
}

#[test]
fn checks_and_points_are_counted_per_monitor_and_span() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    store
        .record_check(
            &check("api", 10, CheckOutcome::Data),
            &[point("api", 10, true), point("api", 10, true)],
        )
        .unwrap();
    store
        .record_check(&check("api", 20, CheckOutcome::NoData), &[])
        .unwrap();
    store
        .record_check(
            &check("canary", 30, CheckOutcome::Data),
            &[point("canary", 30, false)],
        )
        .unwrap();
    let recent = store.recent_checks("api", t(100), 5).unwrap();
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[0].outcome, CheckOutcome::NoData, "newest first");
    assert_eq!(
        (recent[1].positive, recent[1].negative),
        (2, 0),
        "counted by the store"
    );
    assert_eq!(
        store.recent_checks("api", t(15), 5).unwrap().len(),
        1,
        "none after `until`"
    );

    let both = ["api".to_string(), "canary".to_string()];
    let counts = store.point_counts(&both, t(0), t(100)).unwrap();
    assert_eq!((counts.positive, counts.negative), (2, 1));
    assert_eq!(counts.first_negative.unwrap().detail, "status 500");
    assert_eq!(counts.latest_at, Some(t(30)));
    let later = store.point_counts(&both, t(11), t(29)).unwrap();
    assert_eq!(
        (later.positive, later.negative, later.latest_at),
        (0, 0, None)
    );
    assert_eq!(store.data_points("api", t(0), t(100), 10).unwrap().len(), 2);
}

#[test]
fn a_bake_is_started_once_and_finished_once() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    store
        .create_run(&new_run("r1", "release", t(0)), &Holder::current())
        .unwrap();
    let first = store.start_bake("r1", "beta", t(5)).unwrap();
    let again = store.start_bake("r1", "beta", t(9)).unwrap();
    assert_eq!(
        again.started_at, first.started_at,
        "a resumed bake continues"
    );
    store.update_bake("r1", "beta", 12, 0, t(7)).unwrap();
    store
        .finish_bake("r1", "beta", "passed", "12 positive", t(8))
        .unwrap();
    store.update_bake("r1", "beta", 99, 1, t(9)).unwrap();
    let row = store.bake("r1", "beta").unwrap().unwrap();
    assert_eq!(
        (row.positive, row.negative),
        (12, 0),
        "a finished bake is not updated"
    );
    assert_eq!(row.outcome.as_deref(), Some("passed"));
    assert!(
        store
            .finish_bake("r1", "gamma", "passed", "", t(9))
            .is_err()
    );
    assert!(store.start_bake("nope", "beta", t(9)).is_err());
}

fn new_deployment(run_id: &str, kind: &str) -> NewDeployment {
    NewDeployment {
        run_id: run_id.into(),
        stage: "prod".into(),
        step: "deploy".into(),
        application: "hello".into(),
        deployment_group: "prod".into(),
        label: "1.2.0".into(),
        digest: "sha256:aa".into(),
        kind: kind.into(),
        rollback_of: None,
        config: "OneAtATime (minimum 99% healthy)".into(),
        targets: vec!["box-1".into(), "box-2".into()],
    }
}

fn revision(deployment: &str, label: &str) -> RevisionRow {
    RevisionRow {
        deployment_id: deployment.into(),
        label: label.into(),
        digest: format!("sha256:{label}"),
        archive: format!("/var/lib/sluice-deploy/hello/{deployment}/deployment-archive"),
        installed: vec!["/opt/hello/hello".into()],
        run_id: "r1".into(),
    }
}

#[test]
fn a_deployment_its_events_and_its_end_are_recorded_and_an_unfinished_one_is_interrupted() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    store
        .create_run(&new_run("r1", "release", t(0)), &Holder::current())
        .unwrap();
    let first = store
        .begin_deployment(&new_deployment("r1", "deploy"), t(1))
        .unwrap();
    assert_eq!(first, "d-r1-1");
    store
        .record_deployment_event(&first, "box-1", "BeforeInstall", "succeeded", "ok", t(2))
        .unwrap();
    // The runner dies; the resumed step begins again: the first is interrupted.
    let second = store
        .begin_deployment(&new_deployment("r1", "deploy"), t(3))
        .unwrap();
    assert_eq!(second, "d-r1-2");
    let d1 = store.deployment(&first).unwrap().unwrap();
    assert_eq!(d1.state, "interrupted");
    assert_eq!(d1.finished_at, Some(t(3)));
    let mut rollback = new_deployment("r1", "rollback");
    rollback.rollback_of = Some(second.clone());
    store
        .finish_deployment(&second, "failed", "ValidateService failed on box-1", t(4))
        .unwrap();
    let third = store.begin_deployment(&rollback, t(5)).unwrap();
    store
        .finish_deployment(&third, "succeeded", "rolled back", t(6))
        .unwrap();
    // A second end does not replace the first.
    store
        .finish_deployment(&third, "failed", "late", t(7))
        .unwrap();
    let all = store.deployments("r1").unwrap();
    assert_eq!(
        all.iter()
            .map(|d| (d.id.as_str(), d.state.as_str()))
            .collect::<Vec<_>>(),
        [
            ("d-r1-1", "interrupted"),
            ("d-r1-2", "failed"),
            ("d-r1-3", "succeeded")
        ]
    );
    assert_eq!(all[2].rollback_of.as_deref(), Some("d-r1-2"));
    assert_eq!(all[2].targets, ["box-1", "box-2"]);
    let events = store.deployment_events(&first).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, "BeforeInstall");
    assert!(
        store
            .record_deployment_event("d-r1-9", "box-1", "Install", "started", "", t(8))
            .is_err()
    );
    assert!(
        store
            .record_deployment_event(&first, "box-1", "Install", "maybe", "", t(8))
            .is_err()
    );
    assert!(
        store
            .finish_deployment(&first, "in-progress", "", t(8))
            .is_err()
    );
    assert!(
        store
            .begin_deployment(&new_deployment("nope", "deploy"), t(8))
            .is_err()
    );
    assert!(
        store
            .begin_deployment(&new_deployment("r1", "redeploy"), t(8))
            .is_err()
    );
}

#[test]
fn a_target_record_keeps_its_last_good_revision_across_stores() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    let fresh = store.target_record("hello", "box-1").unwrap();
    assert_eq!(fresh.state, HostState::Fresh);
    assert!(fresh.current.is_none() && fresh.last_good.is_none());
    let record = TargetRecordRow {
        application: "hello".into(),
        target: "box-1".into(),
        state: HostState::Installing,
        current: Some(revision("d-r1-2", "1.3.0")),
        last_good: Some(revision("d-r1-1", "1.2.0")),
        updated_at: t(0),
    };
    store.write_target_record(&record, t(5)).unwrap();
    drop(store);
    // A new process (a resumed runner) reads the same record.
    let store = Store::open(&path).unwrap();
    let read = store.target_record("hello", "box-1").unwrap();
    assert_eq!(read.state, HostState::Installing);
    assert_eq!(read.current, record.current);
    assert_eq!(read.last_good, record.last_good);
    assert_eq!(read.updated_at, t(5));
    let healthy = TargetRecordRow {
        state: HostState::Healthy,
        last_good: record.current.clone(),
        ..read
    };
    store.write_target_record(&healthy, t(6)).unwrap();
    let all = store.target_records("hello").unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].last_good.as_ref().unwrap().label, "1.3.0");
    assert!(store.target_records("other").unwrap().is_empty());
}

/// A JSON value as the text a row stores.
fn raw(value: serde_json::Value) -> Box<serde_json::value::RawValue> {
    stored_json(&value)
}

/// Stored JSON text, parsed back.
fn parsed(text: &serde_json::value::RawValue) -> serde_json::Value {
    serde_json::from_str(text.get()).expect("stored JSON parses")
}
