//! `sluice plugin new` at the command line: the languages in `--help`, and errors a
//! user can act on for a bad name, an unknown language and a folder in use.

use crate::support::{Outcome, sluice_bin};

fn new_in(dir: &std::path::Path, args: &[&str]) -> Outcome {
    let mut all = vec!["plugin", "new"];
    all.extend_from_slice(args);
    Outcome::of(
        std::process::Command::new(sluice_bin())
            .args(&all)
            .current_dir(dir),
    )
}

#[test]
fn plugin_new_help_lists_the_languages_with_their_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let out = new_in(dir.path(), &["--help"]);
    out.expect_code(0);
    assert!(out.stdout.contains("Languages:"), "{}", out.stdout);
    for (lang, needle) in [
        ("rust", "Rust with the Sluice SDK"),
        ("python", "Python 3.10+ with componentize-py"),
    ] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(lang))
            .unwrap_or_else(|| panic!("no {lang} line in:\n{}", out.stdout));
        assert!(line.contains(needle), "{line}");
    }
    for lang in ["js", "go", "c"] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{lang} "))),
            "{lang} is listed (with its summary, or as missing from this build):\n{}",
            out.stdout
        );
    }
}

#[test]
fn plugin_new_refuses_a_bad_name_with_the_closest_allowed_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = new_in(dir.path(), &["Todo_Scan", "--lang", "python"]);
    out.expect_code(2);
    insta::assert_snapshot!(out.stderr.trim_end());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn plugin_new_refuses_an_unknown_language_listing_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = new_in(dir.path(), &["todo-scan", "--lang", "cobol"]);
    out.expect_code(2);
    insta::assert_snapshot!(out.stderr.trim_end());
}

#[test]
fn plugin_new_leaves_a_non_empty_folder_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("todo-scan")).unwrap();
    std::fs::write(dir.path().join("todo-scan/mine.txt"), "keep me").unwrap();
    let out = new_in(dir.path(), &["todo-scan", "--lang", "rust"]);
    out.expect_code(2);
    insta::assert_snapshot!(out.stderr.trim_end());
    let left: Vec<_> = std::fs::read_dir(dir.path().join("todo-scan"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("mine.txt")]);
}

#[test]
fn plugin_new_writes_the_project_and_says_the_next_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = new_in(dir.path(), &["todo-scan", "--lang", "python"]);
    out.expect_code(0);
    insta::assert_snapshot!(out.stdout);
    let project = dir.path().join("todo-scan");
    for file in [
        "README.md",
        "build.sh",
        "test.sh",
        "sluice.toml",
        "todo_scan.py",
        "app.py",
        "sluice_plugin/__init__.py",
        "cases/basic/case.toml",
        "wit/plugin.wit",
        "wit/deps/http.wit",
    ] {
        assert!(project.join(file).is_file(), "{file} is missing");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(project.join("build.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "build.sh is executable");
    let text = std::fs::read_to_string(project.join("todo_scan.py")).unwrap();
    assert!(text.contains("class TodoScan(sp.Plugin)"), "{text}");
    assert!(!text.contains("{{"), "a placeholder was left:\n{text}");
}
