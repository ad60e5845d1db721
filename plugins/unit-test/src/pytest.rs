//! pytest specifics: turning a JUnit test case back into the node id pytest selects it
//! by, and the command line that re-runs exactly the failed node ids.
//!
//! pytest's JUnit writer (`_pytest.junitxml.mangle_test_address`) turns the node id
//! `tests/test_calc.py::TestOuter::TestInner::test_nested[b\xe4d]` into
//! `classname="tests.test_calc.TestOuter.TestInner"` and `name="test_nested[b\xe4d]"`:
//! the path's `/` become `.`, a trailing `.py` is dropped, the classes follow, and the
//! parametrization stays in the name, untouched. Going back is ambiguous only in where
//! the path ends (a folder may contain dots: `tests/v1.2/test_x.py`), so the file is
//! found on disk, relative to the project folder, which is where pytest resolves the
//! node ids given on its command line.

use std::path::{Path, PathBuf};

use sluice_sdk::TestCase;

/// The option that keeps pytest away from its cache folder (`.pytest_cache`), which a
/// step usually may not write, and whose `--lf` is unreliable under a sandbox.
pub const NO_CACHE: [&str; 2] = ["-p", "no:cacheprovider"];

/// Options that use pytest's cache; with them in the command, the cache stays on.
const CACHE_OPTIONS: &[&str] = &[
    "--lf",
    "--last-failed",
    "--ff",
    "--failed-first",
    "--nf",
    "--new-first",
    "--sw",
    "--stepwise",
    "--sw-skip",
    "--stepwise-skip",
    "--lfnf",
    "--last-failed-no-failures",
    "--cache-show",
    "--cache-clear",
    "no:cacheprovider",
];

/// pytest options (its own and common plugins') whose value is the next word: that word
/// is never a test selection, even when it names an existing path.
const OPTIONS_WITH_VALUE: &[&str] = &[
    "-k",
    "-m",
    "-c",
    "-p",
    "-o",
    "-r",
    "-W",
    "--rootdir",
    "--ignore",
    "--ignore-glob",
    "--deselect",
    "--confcutdir",
    "--basetemp",
    "--override-ini",
    "--config-file",
    "--junit-prefix",
    "--log-file",
    "--import-mode",
    "--tb",
    "--maxfail",
    "--durations",
    "--capture",
    "--cov",
    "--cov-report",
    "--cov-config",
    "--html",
    "-n",
    "--numprocesses",
    "--dist",
    "--timeout",
];

/// Whether `command` may run pytest with its cache provider switched off: only when
/// nothing in it relies on the cache.
pub fn can_disable_cache(command: &[String]) -> bool {
    !command.iter().any(|word| {
        let option = word.split('=').next().unwrap_or(word);
        CACHE_OPTIONS.contains(&option) || word.ends_with("no:cacheprovider")
    })
}

/// What a path inside the project is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Entry {
    File,
    Folder,
    Missing,
}

/// [`Entry`] of `relative` under `folder`, from the file system.
pub fn entry_on_disk(folder: &Path, relative: &str) -> Entry {
    match std::fs::metadata(folder.join(relative)) {
        Ok(meta) if meta.is_dir() => Entry::Folder,
        Ok(_) => Entry::File,
        Err(_) => Entry::Missing,
    }
}

/// The project folder pytest runs in, and the outermost folder that may be its rootdir
/// (the pipeline's folder): node ids in the JUnit file are relative to the rootdir,
/// which is an ancestor of the project when the pytest configuration is higher up (a
/// monorepo's `pyproject.toml`), while node ids on the command line are relative to
/// the project.
pub struct ProjectFiles {
    pub project: PathBuf,
    pub top: PathBuf,
}

impl ProjectFiles {
    /// What `relative` (to the project) is.
    pub fn entry(&self, relative: &str) -> Entry {
        entry_on_disk(&self.project, relative)
    }

    /// The node id of `case`, relative to the project: the test file is looked up from
    /// the project, then from each folder above it up to `top`, as pytest's rootdir.
    pub fn node_id(&self, case: &TestCase) -> Result<String, String> {
        let mut root = self.project.as_path();
        let mut inside = PathBuf::new();
        loop {
            let entry = |relative: &str| entry_on_disk(root, relative);
            if let Ok(id) = node_id(case, &entry) {
                let prefix = inside.to_string_lossy();
                if prefix.is_empty() {
                    return Ok(id);
                }
                if let Some(own) = id.strip_prefix(&format!("{prefix}/")) {
                    return Ok(own.to_owned());
                }
            }
            if root == self.top {
                break;
            }
            let (Some(parent), Some(name)) = (root.parent(), root.file_name()) else {
                break;
            };
            if !parent.starts_with(&self.top) {
                break;
            }
            inside = if inside.as_os_str().is_empty() {
                PathBuf::from(name)
            } else {
                Path::new(name).join(&inside)
            };
            root = parent;
        }
        Err(format!(
            "no test file in the project folder matches pytest's class name `{}`",
            case.suite
        ))
    }
}

/// The node id of a pytest JUnit case (its suite is the JUnit `classname`), looking the
/// test file up with `entry` (paths relative to the project folder, `/`-separated).
pub fn node_id(case: &TestCase, entry: &dyn Fn(&str) -> Entry) -> Result<String, String> {
    let parts: Vec<&str> = case.suite.split('.').collect();
    let (file, used) = find_file(&parts, "", entry).ok_or_else(|| {
        format!(
            "no test file in the project folder matches pytest's class name `{}`",
            case.suite
        )
    })?;
    let mut id = file;
    for class in &parts[used..] {
        id.push_str("::");
        id.push_str(class);
    }
    id.push_str("::");
    id.push_str(&case.name);
    Ok(id)
}

/// Find the file that the leading `parts` of a dotted class name stand for, under
/// `folder` (`""` for the project folder): returns its path and how many parts it took.
/// A part sequence may be a folder (recurse), a `.py` module, or a file whose name
/// keeps its dots (a doctest text file). The shortest module wins: classes cannot
/// contain dots, so the remaining parts are classes.
fn find_file(
    parts: &[&str],
    folder: &str,
    entry: &dyn Fn(&str) -> Entry,
) -> Option<(String, usize)> {
    for take in 1..=parts.len() {
        let name = parts[..take].join(".");
        let path = if folder.is_empty() {
            name
        } else {
            format!("{folder}/{name}")
        };
        if entry(&format!("{path}.py")) == Entry::File {
            return Some((format!("{path}.py"), take));
        }
        match entry(&path) {
            Entry::File => return Some((path, take)),
            Entry::Folder if take < parts.len() => {
                if let Some((file, used)) = find_file(&parts[take..], &path, entry) {
                    return Some((file, take + used));
                }
            }
            _ => {}
        }
    }
    None
}

/// The retry command line: `base` without the words that select tests (paths, node ids:
/// they would select the whole suite again), followed by `node_ids`. `prefix` words of
/// `base` (the program, `-m pytest`) are kept as they are.
pub fn retry_command(
    base: &[String],
    prefix: usize,
    node_ids: &[String],
    entry: &dyn Fn(&str) -> Entry,
) -> Vec<String> {
    let mut command: Vec<String> = base[..prefix.min(base.len())].to_vec();
    let mut takes_value = false;
    for word in &base[prefix.min(base.len())..] {
        if takes_value {
            takes_value = false;
            command.push(word.clone());
            continue;
        }
        if word.starts_with('-') {
            takes_value = !word.contains('=') && OPTIONS_WITH_VALUE.contains(&word.as_str());
            command.push(word.clone());
            continue;
        }
        if is_selection(word, entry) {
            continue;
        }
        command.push(word.clone());
    }
    command.extend(node_ids.iter().cloned());
    command
}

/// Whether a positional word selects tests: a path in the project, maybe with `::`.
fn is_selection(word: &str, entry: &dyn Fn(&str) -> Entry) -> bool {
    let path = word.split("::").next().unwrap_or(word);
    let path = path.trim_end_matches('/');
    let path = path.strip_prefix("./").unwrap_or(path);
    path.is_empty() || path == "." || entry(path) != Entry::Missing
}

/// How many leading words of `command` are the pytest program itself: `pytest`,
/// `py.test`, or `python[3] -m pytest` (with anything in between the interpreter and
/// `-m`). When pytest is not recognised, only the program.
pub fn program_words(command: &[String]) -> usize {
    let base = |word: &str| word.rsplit('/').next().unwrap_or("").to_owned();
    match command.first().map(|word| base(word)) {
        Some(program) if program.starts_with("python") => command
            .windows(2)
            .position(|pair| pair[0] == "-m" && pair[1] == "pytest")
            .map_or(1, |at| at + 2),
        Some(_) => 1,
        None => 0,
    }
}

/// What pytest's exit code means, for a warning: 2 interrupted, 3 internal error,
/// 4 usage error (an unknown option, a node id that matches nothing), 5 no tests.
pub fn exit_meaning(code: i32) -> Option<&'static str> {
    match code {
        2 => Some("the run was interrupted"),
        3 => Some("pytest hit an internal error"),
        4 => Some("pytest refused its command line (usage error)"),
        5 => Some("pytest collected no tests"),
        _ => None,
    }
}
