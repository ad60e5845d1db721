//! `sluice plugin new NAME --lang LANG`: write a new plugin project from the templates
//! embedded in the binary.
//!
//! A project is `templates/<lang>/` (a step plugin, world `step`) or
//! `templates/<lang>-<world>/` (`--world policy-check`: an organisation check) with its
//! placeholders filled in, the contract
//! (`wit/`, with the WASI packages it uses) and the language's SDK helper, copied as
//! `templates/<lang>/template.toml` says. Nothing is overwritten: the target folder
//! must not exist, or be empty.
//!
//! Placeholders, in every text file and in file names:
//! - `{{name}}`: the plugin's name as given (`todo-scan`);
//! - `{{name_snake}}`: with `_` for `-` (`todo_scan`), for identifiers;
//! - `{{name_camel}}`: `TodoScan`;
//! - `{{sluice_version}}`: this runner's version;
//! - `{{contract}}`: the contract's package version (`0.1.7`).
//!
//! `template.toml` (not copied into the project):
//! ```toml
//! summary = "one line shown by `sluice plugin new --help`"
//! build = "./build.sh"              # shown as the next step
//! test = "./test.sh"                # shown as the next step
//! [[copy]]                          # embedded folders copied into the project
//! from = "sdk/python"               # relative to the workspace root
//! to = "sluice_plugin"              # relative to the project
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::toolkit::ContractWorld;
use super::{AuthoringError, embedded};

/// The languages a project can be made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
    Go,
    C,
}

impl Lang {
    /// The template folder's name under `templates/`.
    pub fn folder(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::Go => "go",
            Lang::C => "c",
        }
    }
}

/// The template folder under `templates/` of a project of `lang` for `world`:
/// `python` for a step, `python-policy-check` for an organisation check.
fn template_folder(lang: Lang, world: ContractWorld) -> String {
    match world {
        ContractWorld::Step => lang.folder().to_string(),
        other => format!("{}-{}", lang.folder(), other.name()),
    }
}

/// The languages with a template for `world` (besides the step templates, which
/// every language has).
pub fn languages_for(world: ContractWorld) -> Vec<Lang> {
    use clap::ValueEnum;
    Lang::value_variants()
        .iter()
        .copied()
        .filter(|lang| has_template(*lang, world))
        .collect()
}

/// Whether this build embeds a template of `lang` for `world`.
fn has_template(lang: Lang, world: ContractWorld) -> bool {
    let prefix = format!("templates/{}", template_folder(lang, world));
    embedded::under(&prefix).any(|(p, _)| p == "template.toml")
}

/// `template.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateManifest {
    summary: String,
    build: String,
    test: String,
    #[serde(default)]
    copy: Vec<CopySpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CopySpec {
    from: String,
    to: String,
}

/// What `new` made, for the command to show.
#[derive(Debug)]
pub struct Scaffolded {
    pub name: String,
    pub lang: Lang,
    pub world: ContractWorld,
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    pub build: String,
    pub test: String,
}

impl Scaffolded {
    /// What `sluice plugin new` prints: what was made, then exactly the commands that
    /// take the project to a passing test and a pipeline run.
    pub fn next_steps(&self) -> String {
        let shown = self.dir.display().to_string();
        let width = [self.build.as_str(), self.test.as_str(), "sluice run"]
            .iter()
            .map(|command| command.len())
            .max()
            .unwrap_or(0);
        let step = |command: &str, why: &str| format!("  {command:<width$}  # {why}\n");
        let what = match self.world {
            ContractWorld::Step => "plugin",
            ContractWorld::Monitor => "monitor",
            ContractWorld::PolicyCheck => "organisation check",
        };
        let mut text = format!(
            "created the {} {what} `{}` in {} ({} files)\n\nnext:\n",
            self.lang.folder(),
            self.name,
            shown,
            self.files.len()
        );
        text.push_str(&format!("  cd {}\n", shell_word(&shown)));
        text.push_str(&step(&self.build, &format!("build {}.wasm", self.name)));
        if self.world == ContractWorld::PolicyCheck {
            text.push_str(&step(
                &self.test,
                "unit tests, then `sluice policy check` on fixtures/",
            ));
            text.push_str(
                "\nfixtures/policy.toml runs the check; copy its [[check]] into your policy file.\n",
            );
        } else {
            text.push_str(&step(
                &self.test,
                "unit tests, `sluice plugin check`, the cases in cases/",
            ));
            text.push_str(&step(
                "sluice run",
                "the sample pipeline (sluice.toml) on fixtures/",
            ));
        }
        text.push_str("\nREADME.md says how to get the toolchain; the scripts run `sluice` from PATH, or $SLUICE.\n");
        text
    }
}

/// `word` as one shell word: as it is when it needs no quoting, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./+,:@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The contract's package version, read from the embedded `wit/plugin.wit`.
pub fn contract_version() -> String {
    embedded::under("wit")
        .find(|(p, _)| *p == "plugin.wit")
        .and_then(|(_, bytes)| {
            let text = std::str::from_utf8(bytes).ok()?;
            let line = text
                .lines()
                .find(|l| l.starts_with("package sluice:plugin@"))?;
            Some(
                line.trim_start_matches("package sluice:plugin@")
                    .trim_end_matches(';')
                    .to_string(),
            )
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// Check a plugin name: lowercase ASCII letters, digits and `-`, starting with a
/// letter, at most 64 characters (it becomes a package, crate and module name).
pub fn check_name(name: &str) -> Result<(), AuthoringError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        return Ok(());
    }
    let hint = match suggested_name(name) {
        Some(suggestion) => format!("; did you mean `{suggestion}`?"),
        None => " (e.g. `todo-scan`)".to_string(),
    };
    Err(AuthoringError::Usage(format!(
        "plugin name `{name}` is not allowed: use lowercase letters, digits and single `-`, starting with a letter, at most 64 characters{hint}"
    )))
}

/// The allowed name closest to `name`: lowercase, `_`, spaces and `.` as `-`, other
/// characters dropped. `None` when nothing usable is left.
fn suggested_name(name: &str) -> Option<String> {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if matches!(c, '-' | '_' | ' ' | '.') && !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_start_matches(|c: char| c.is_ascii_digit() || c == '-');
    let out: String = out.chars().take(64).collect();
    let out = out.trim_end_matches('-').to_string();
    (!out.is_empty() && out != name).then_some(out)
}

fn camel(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn fill(text: &str, name: &str) -> String {
    text.replace("{{name}}", name)
        .replace("{{name_snake}}", &name.replace('-', "_"))
        .replace("{{name_camel}}", &camel(name))
        .replace("{{sluice_version}}", env!("CARGO_PKG_VERSION"))
        .replace("{{contract}}", &contract_version())
}

/// The languages with a template in this build, and each one's summary.
pub fn languages() -> Vec<(Lang, String)> {
    use clap::ValueEnum;
    Lang::value_variants()
        .iter()
        .filter_map(|lang| {
            manifest(*lang, ContractWorld::Step)
                .ok()
                .map(|m| (*lang, m.summary))
        })
        .collect()
}

/// The languages for `sluice plugin new --help`: one line each, with its template's
/// summary, or a note when this build has no template for it.
pub fn languages_help() -> String {
    use clap::ValueEnum;
    let known = languages();
    let mut text = String::from("Languages:\n");
    for lang in Lang::value_variants() {
        let summary = known
            .iter()
            .find(|(l, _)| l == lang)
            .map(|(_, summary)| summary.as_str())
            .unwrap_or("(no template in this build)");
        text.push_str(&format!("  {:<8}{summary}\n", lang.folder()));
    }
    let checks: Vec<&str> = languages_for(ContractWorld::PolicyCheck)
        .into_iter()
        .map(Lang::folder)
        .collect();
    text.push_str(&format!(
        "\nWorlds (--world): step (the default: a pipeline step), policy-check (an organisation\ncheck over the pipeline model; templates: {}).",
        checks.join(", ")
    ));
    text.push_str(
        "\n\nThe project builds with one command (./build.sh) and tests with another (./test.sh);\nits README.md says how to get the language's toolchain on a fresh machine.",
    );
    text
}

fn manifest(lang: Lang, world: ContractWorld) -> Result<TemplateManifest, AuthoringError> {
    let folder = template_folder(lang, world);
    let prefix = format!("templates/{folder}");
    let bytes = embedded::under(&prefix)
        .find(|(p, _)| *p == "template.toml")
        .map(|(_, b)| b)
        .ok_or_else(|| {
            AuthoringError::Usage(match world {
                ContractWorld::Step => {
                    format!("this build of sluice has no {} template", lang.folder())
                }
                other => {
                    let have: Vec<&str> =
                        languages_for(other).into_iter().map(Lang::folder).collect();
                    format!(
                        "this build of sluice has no {} template for world `{}`; it has one in: {}",
                        lang.folder(),
                        other.name(),
                        if have.is_empty() {
                            "no language".to_string()
                        } else {
                            have.join(", ")
                        }
                    )
                }
            })
        })?;
    let text = String::from_utf8_lossy(bytes);
    toml::from_str(&text).map_err(|e| {
        AuthoringError::Usage(format!(
            "templates/{folder}/template.toml is broken (a bug in this build): {e}"
        ))
    })
}

/// Write a new project for plugin `name` in `lang`, of `world`, into `dir`.
pub fn new_project(
    name: &str,
    lang: Lang,
    world: ContractWorld,
    dir: &Path,
) -> Result<Scaffolded, AuthoringError> {
    check_name(name)?;
    let manifest = manifest(lang, world)?;
    check_target(dir)?;
    let mut planned: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let template = format!("templates/{}", template_folder(lang, world));
    for (path, bytes) in embedded::under(&template) {
        if path == "template.toml" {
            continue;
        }
        planned.push((PathBuf::from(fill(path, name)), fill_bytes(bytes, name)));
    }
    for (path, bytes) in embedded::under("wit") {
        planned.push((Path::new("wit").join(path), bytes.to_vec()));
    }
    for copy in &manifest.copy {
        let mut any = false;
        for (path, bytes) in embedded::under(&copy.from) {
            any = true;
            planned.push((Path::new(&copy.to).join(path), bytes.to_vec()));
        }
        if !any {
            return Err(AuthoringError::Usage(format!(
                "templates/{}/template.toml copies `{}`, which this build did not embed (a bug in this build)",
                template_folder(lang, world),
                copy.from
            )));
        }
    }
    let mut files = Vec::new();
    for (relative, bytes) in planned {
        let path = dir.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| AuthoringError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, &bytes).map_err(|source| AuthoringError::Io {
            path: path.clone(),
            source,
        })?;
        if is_script(&relative, &bytes) {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
        }
        files.push(relative);
    }
    files.sort();
    Ok(Scaffolded {
        name: name.to_string(),
        lang,
        world,
        dir: dir.to_path_buf(),
        files,
        build: manifest.build,
        test: manifest.test,
    })
}

/// The project folder must not exist, or be an empty folder: `new` never overwrites.
fn check_target(dir: &Path) -> Result<(), AuthoringError> {
    match std::fs::symlink_metadata(dir) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(AuthoringError::Io {
            path: dir.to_path_buf(),
            source,
        }),
        Ok(meta) if !meta.is_dir() => Err(AuthoringError::Usage(format!(
            "{} already exists and is not a folder; choose another place with --dir",
            dir.display()
        ))),
        Ok(_) => {
            let mut entries = std::fs::read_dir(dir).map_err(|source| AuthoringError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            if entries.next().is_some() {
                Err(AuthoringError::Usage(format!(
                    "{} already exists and is not empty; choose another folder with --dir, or remove it",
                    dir.display()
                )))
            } else {
                Ok(())
            }
        }
    }
}

/// Text files get their placeholders filled; anything that is not UTF-8 is copied.
fn fill_bytes(bytes: &[u8], name: &str) -> Vec<u8> {
    match std::str::from_utf8(bytes) {
        Ok(text) => fill(text, name).into_bytes(),
        Err(_) => bytes.to_vec(),
    }
}

/// Scripts (a `#!` first line, or `.sh`) are written executable.
fn is_script(path: &Path, bytes: &[u8]) -> bool {
    bytes.starts_with(b"#!") || path.extension().is_some_and(|e| e == "sh")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_usable_as_identifiers() {
        assert!(check_name("todo-scan").is_ok());
        assert!(check_name("scan2").is_ok());
        for bad in [
            "",
            "Todo",
            "2scan",
            "todo_scan",
            "todo-",
            "a--b",
            "todo scan",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_bad_name_gets_the_closest_allowed_one() {
        let err = check_name("Todo_Scan").unwrap_err().to_string();
        assert!(err.contains("did you mean `todo-scan`?"), "{err}");
        let err = check_name("2").unwrap_err().to_string();
        assert!(err.contains("(e.g. `todo-scan`)"), "{err}");
        assert_eq!(
            suggested_name("my plugin.v2"),
            Some("my-plugin-v2".to_string())
        );
        assert_eq!(suggested_name("--"), None);
    }

    #[test]
    fn an_existing_folder_is_used_only_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_target(&dir.path().join("new")).is_ok());
        assert!(check_target(dir.path()).is_ok());
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let err = check_target(dir.path()).unwrap_err().to_string();
        assert!(err.contains("already exists and is not empty"), "{err}");
        let err = check_target(&dir.path().join("keep.txt"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("already exists and is not a folder"), "{err}");
    }

    #[test]
    fn new_refuses_a_non_empty_folder_and_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let err =
            new_project("todo-scan", Lang::Rust, ContractWorld::Step, dir.path()).unwrap_err();
        assert!(matches!(err, AuthoringError::Usage(_)), "{err}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn next_steps_name_the_exact_commands() {
        let made = Scaffolded {
            name: "todo-scan".to_string(),
            lang: Lang::Python,
            world: ContractWorld::Step,
            dir: PathBuf::from("plugins dir/todo-scan"),
            files: vec![PathBuf::from("app.py"); 12],
            build: "./build.sh".to_string(),
            test: "./test.sh".to_string(),
        };
        insta::assert_snapshot!(made.next_steps());
    }

    #[test]
    fn help_lists_every_language_with_its_summary() {
        let help = languages_help();
        for (lang, summary) in languages() {
            assert!(
                help.contains(&format!("  {:<8}{summary}", lang.folder())),
                "{help}"
            );
        }
        assert!(help.contains("rust"), "{help}");
    }

    #[test]
    fn policy_check_projects_come_in_python_and_rust_and_other_languages_are_refused_by_name() {
        assert_eq!(
            languages_for(ContractWorld::PolicyCheck),
            vec![Lang::Rust, Lang::Python]
        );
        let dir = tempfile::tempdir().unwrap();
        let made = new_project(
            "no-yolo",
            Lang::Python,
            ContractWorld::PolicyCheck,
            &dir.path().join("no-yolo"),
        )
        .unwrap();
        assert!(
            made.files.contains(&PathBuf::from("no_yolo.py")),
            "{:?}",
            made.files
        );
        assert!(
            made.files
                .contains(&PathBuf::from("sluice_plugin/policy_component.py"))
        );
        let build = std::fs::read_to_string(dir.path().join("no-yolo/build.sh")).unwrap();
        assert!(
            build.contains("-w policy-check componentize app"),
            "{build}"
        );
        assert!(made.next_steps().contains("organisation check"));

        let err = new_project(
            "no-yolo",
            Lang::Go,
            ContractWorld::PolicyCheck,
            &dir.path().join("go"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("no go template for world `policy-check`"),
            "{text}"
        );
        assert!(text.contains("rust, python"), "{text}");
    }

    #[test]
    fn the_rust_template_vendors_every_dependency_of_the_sdk() {
        // The project's copy of the SDK cannot inherit from this workspace: its manifest
        // (templates/rust/sluice-sdk/Cargo.toml) names each dependency itself.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let sdk: toml::Table =
            toml::from_str(&std::fs::read_to_string(root.join("sdk/Cargo.toml")).unwrap()).unwrap();
        let vendored: toml::Table = toml::from_str(
            &std::fs::read_to_string(root.join("templates/rust/sluice-sdk/Cargo.toml")).unwrap(),
        )
        .unwrap();
        let names = |t: &toml::Table| -> Vec<String> {
            let mut v: Vec<String> = t["dependencies"]
                .as_table()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&sdk), names(&vendored));
    }

    #[test]
    fn placeholders_are_filled() {
        let text = fill("{{name}} {{name_snake}} {{name_camel}}", "todo-scan");
        assert_eq!(text, "todo-scan todo_scan TodoScan");
    }

    #[test]
    fn the_contract_version_is_the_embedded_package_version() {
        let version = contract_version();
        assert!(version.starts_with("0.1."), "{version}");
    }
}
