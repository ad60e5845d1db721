//! `{{name}}`: a Sluice plugin that finds the lines matching a pattern in the files
//! under `paths`, one finding per match (rule `{{name}}/match`).
//!
//! The scanning is plain Rust ([`scan`]), unit-tested natively with `cargo test`;
//! [`{{name_camel}}`] wraps it as a plugin and `export_plugin!` makes it the
//! component's `plugin` export. Build the component with `./build.sh`.

use std::path::{Path, PathBuf};

use sluice_sdk::{Capability, Finding, Plugin, Report, RunError, Severity, StepContext};

/// The step's `with` table. Its JSON Schema (what `sluice plugin info` shows and the
/// runner checks every pipeline against) is derived from this struct: the doc comments
/// become descriptions, `deny_unknown_fields` closes the object.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = Config::default())]
pub struct Config {
    /// Files or folders to scan, relative to the pipeline's folder.
    #[serde(default = "default_paths")]
    pub paths: Vec<String>,
    /// The text to look for: a literal, not a regular expression.
    #[serde(default = "default_pattern")]
    #[schemars(length(min = 1))]
    pub pattern: String,
}

fn default_paths() -> Vec<String> {
    vec![".".to_string()]
}

fn default_pattern() -> String {
    "TODO".to_string()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            paths: default_paths(),
            pattern: default_pattern(),
        }
    }
}

/// The plugin itself.
pub struct {{name_camel}};

impl Plugin for {{name_camel}} {
    type Config = Config;
    const NAME: &'static str = "{{name}}";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SUMMARY: &'static str = "Finds the lines matching a pattern in the files under `paths`.";

    fn capabilities() -> Vec<Capability> {
        vec![Capability::ReadFiles]
    }

    fn run(config: Config, ctx: &StepContext) -> Result<Report, RunError> {
        if config.pattern.is_empty() {
            return Err(RunError::InvalidConfig(
                "`pattern` is empty: give the text to look for".to_string(),
            ));
        }
        scan(&config, ctx.workdir(), granted_folders().as_deref())
    }
}

sluice_sdk::export_plugin!({{name_camel}});

/// The folders the step may read (its `read` and `write` grants), from the `grants`
/// import. Natively there is no host to ask: `None` lets every path through.
fn granted_folders() -> Option<Vec<PathBuf>> {
    #[cfg(target_arch = "wasm32")]
    {
        let granted = sluice_sdk::bindings::sluice::plugin::grants::current();
        Some(
            granted
                .read
                .into_iter()
                .chain(granted.write)
                .map(PathBuf::from)
                .collect(),
        )
    }
    #[cfg(not(target_arch = "wasm32"))]
    None
}

/// Scan `config.paths` (relative to `workdir`) for `config.pattern`. `granted`, when
/// known, lists the folders the step may read: a path outside all of them is
/// `RunError::Denied`, naming the grant to add.
pub fn scan(config: &Config, workdir: &Path, granted: Option<&[PathBuf]>) -> Result<Report, RunError> {
    let mut files = Vec::new();
    for path in &config.paths {
        let absolute = sluice_sdk::fs::normalize(&workdir.join(path));
        let metadata = match std::fs::metadata(&absolute) {
            Ok(metadata) => metadata,
            Err(err) => {
                let covered = granted
                    .is_none_or(|folders| folders.iter().any(|folder| absolute.starts_with(folder)));
                return Err(if !covered {
                    RunError::Denied(format!(
                        "cannot read `{path}`: the step has no read grant covering it; add `read = [\"{path}\"]` to the step's grants"
                    ))
                } else if err.kind() == std::io::ErrorKind::NotFound {
                    RunError::Failed(format!("cannot read `{path}`: no such file or folder"))
                } else {
                    RunError::Failed(format!("cannot read `{path}`: {err}"))
                });
            }
        };
        if metadata.is_dir() {
            walk(&absolute, &mut files).map_err(RunError::Failed)?;
        } else {
            files.push(absolute);
        }
    }
    let mut findings = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file)
            .map_err(|err| RunError::Failed(format!("cannot read {}: {err}", file.display())))?;
        let shown = shown_path(file, workdir);
        findings.extend(matches(&String::from_utf8_lossy(&bytes), &config.pattern).map(
            |(line, column)| {
                Finding::new(
                    "{{name}}/match",
                    Severity::Info,
                    format!("`{}` found", config.pattern),
                )
                .at(&shown, Some(line), Some(column))
            },
        ));
    }
    let count = findings.len();
    let in_files = plural(files.len(), "file", "files");
    let report = if count == 0 {
        Report::passed(format!("no `{}` in {in_files}", config.pattern))
    } else {
        Report::warned(format!(
            "{} of `{}` in {in_files}",
            plural(count, "match", "matches"),
            config.pattern
        ))
    };
    Ok(report.with_findings(findings).with_output("matches", count))
}

/// Every file under `folder`, entries in byte order of their names, skipping names
/// that start with `.`.
fn walk(folder: &Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(folder)
        .map_err(|err| format!("cannot list {}: {err}", folder.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    for name in names {
        let path = folder.join(&name);
        if path.is_dir() {
            walk(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

/// `(line, column)` of every non-overlapping occurrence of `pattern`, both 1-based, the
/// column in characters. Lines end at `\n`; a trailing `\r` is not part of the line.
pub fn matches<'a>(text: &'a str, pattern: &'a str) -> impl Iterator<Item = (u32, u32)> + 'a {
    text.split('\n').enumerate().flat_map(move |(index, line)| {
        let line = line.strip_suffix('\r').unwrap_or(line);
        line.match_indices(pattern).map(move |(at, _)| {
            (
                u32::try_from(index + 1).unwrap_or(u32::MAX),
                u32::try_from(line[..at].chars().count() + 1).unwrap_or(u32::MAX),
            )
        })
    })
}

/// The path a finding shows: relative to the pipeline's folder with `/`, or absolute
/// when the file lies outside it.
fn shown_path(file: &Path, workdir: &Path) -> String {
    match file.strip_prefix(workdir) {
        Ok(relative) => relative
            .components()
            .map(|part| part.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => file.display().to_string(),
    }
}

fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the system's temporary folder, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("{{name}}-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn write(&self, relative: &str, text: &str) {
            let path = self.0.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn config(paths: &[&str]) -> Config {
        Config {
            paths: paths.iter().map(|p| p.to_string()).collect(),
            pattern: "TODO".to_string(),
        }
    }

    #[test]
    fn matches_give_lines_and_character_columns() {
        let found: Vec<_> = matches("a TODO\r\nTODO TODO\né TODO\n", "TODO").collect();
        assert_eq!(found, vec![(1, 3), (2, 1), (2, 6), (3, 3)]);
    }

    #[test]
    fn a_folder_is_scanned_in_name_order_without_hidden_entries() {
        let dir = Scratch::new("order");
        dir.write("src/b.txt", "TODO b\n");
        dir.write("src/a.txt", "x\n// TODO a\n");
        dir.write("src/.hidden/c.txt", "TODO hidden\n");
        dir.write("src/.d.txt", "TODO hidden\n");
        let report = scan(&config(&["src"]), &dir.0, None).unwrap();
        let places: Vec<_> = report
            .findings
            .iter()
            .map(|f| {
                let location = f.location.as_ref().unwrap();
                (location.path.clone(), location.line, location.column)
            })
            .collect();
        assert_eq!(
            places,
            vec![
                ("src/a.txt".to_string(), Some(2), Some(4)),
                ("src/b.txt".to_string(), Some(1), Some(1)),
            ]
        );
        assert_eq!(report.summary, "2 matches of `TODO` in 2 files");
        assert_eq!(report.output("matches"), Some("2"));
        assert!(report.findings.iter().all(|f| f.rule_id == "{{name}}/match"));
    }

    #[test]
    fn no_match_passes() {
        let dir = Scratch::new("none");
        dir.write("notes.md", "nothing to do\n");
        let report = scan(&config(&["."]), &dir.0, None).unwrap();
        assert_eq!(report.status, sluice_sdk::Status::Passed);
        assert_eq!(report.summary, "no `TODO` in 1 file");
    }

    #[test]
    fn a_path_outside_every_grant_is_denied_naming_the_grant() {
        let dir = Scratch::new("denied");
        let granted = vec![dir.0.join("granted")];
        let err = scan(&config(&["elsewhere"]), &dir.0, Some(&granted)).unwrap_err();
        assert_eq!(
            err,
            RunError::Denied(
                "cannot read `elsewhere`: the step has no read grant covering it; add `read = [\"elsewhere\"]` to the step's grants"
                    .to_string()
            )
        );
    }

    #[test]
    fn a_missing_path_inside_a_grant_fails() {
        let dir = Scratch::new("missing");
        let granted = vec![dir.0.clone()];
        let err = scan(&config(&["nowhere"]), &dir.0, Some(&granted)).unwrap_err();
        assert_eq!(
            err,
            RunError::Failed("cannot read `nowhere`: no such file or folder".to_string())
        );
    }

    #[test]
    fn the_schema_closes_the_config_and_has_an_example() {
        let descriptor = sluice_sdk::describe_plugin::<{{name_camel}}>();
        let schema: serde_json::Value = serde_json::from_str(&descriptor.config_schema).unwrap();
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["examples"][0]["pattern"], "TODO");
    }
}
