//! Finding lockfiles under folders: a walk that honours ignore files (.gitignore,
//! .ignore), skips dependency, build and tool folders (`node_modules`, `target`,
//! `vendor`, `.git`, `.venv`, `.sluice`), and skips every path matching one of the
//! `exclude` globs, so that a deliberately broken test fixture is not read at all.
//!
//! `exclude` globs are relative to a base folder (the pipeline's folder) and use
//! gitignore-like rules: `*` and `?` stay within one path component, `**` crosses
//! them, so `tests/fixtures/**` excludes everything under `tests/fixtures` and
//! `**/testdata/**` every `testdata` folder. A glob that matches a folder prunes it.

use std::path::{Component, Path, PathBuf};

use globset::{GlobSet, GlobSetBuilder};

use crate::Format;

/// Folders never searched: installed dependencies, build output and tool state.
pub const SKIPPED_FOLDERS: [&str; 6] = [
    ".git",
    "node_modules",
    "target",
    "vendor",
    ".sluice",
    ".venv",
];

/// Why lockfiles could not be searched for.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// An `exclude` entry is not a valid glob.
    #[error("`exclude` pattern `{pattern}` is not a valid glob: {source}")]
    BadPattern {
        /// The pattern as written.
        pattern: String,
        /// What globset found wrong.
        source: globset::Error,
    },
    /// The walk could not read a folder.
    #[error("cannot search `{root}` for lockfiles: {message}")]
    Walk {
        /// The folder being searched.
        root: PathBuf,
        /// What went wrong, with the path where the walker says.
        message: String,
    },
}

/// A lockfile that was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Its path (under one of the searched roots).
    pub path: PathBuf,
    /// Its format, from its name.
    pub format: Format,
}

/// Lockfile discovery settings: the base folder `exclude` globs are relative to, and
/// the globs.
#[derive(Clone, Debug)]
pub struct Discovery {
    base: PathBuf,
    exclude: GlobSet,
}

impl Discovery {
    /// Discovery relative to `base` that skips paths matching any of `exclude`.
    pub fn new(base: &Path, exclude: &[String]) -> Result<Discovery, DiscoverError> {
        let mut set = GlobSetBuilder::new();
        for pattern in exclude {
            // `./x` and `x/` mean `x`.
            let cleaned = pattern.trim_start_matches("./").trim_end_matches('/');
            let glob = globset::GlobBuilder::new(cleaned)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|source| DiscoverError::BadPattern {
                    pattern: pattern.clone(),
                    source,
                })?;
            set.add(glob);
        }
        let exclude = set.build().map_err(|source| DiscoverError::BadPattern {
            pattern: exclude.join(", "),
            source,
        })?;
        Ok(Discovery {
            base: base.to_path_buf(),
            exclude,
        })
    }

    /// Whether `path` matches an `exclude` glob: its path relative to the base folder
    /// when it is inside it (lexically), else the path as given.
    pub fn is_excluded(&self, path: &Path) -> bool {
        if self.exclude.is_empty() {
            return false;
        }
        let path = lexical(path);
        match path.strip_prefix(lexical(&self.base)) {
            Ok(inside) => !inside.as_os_str().is_empty() && self.exclude.is_match(inside),
            Err(_) => self.exclude.is_match(&path),
        }
    }

    /// Every known lockfile under `roots` (a root may also be a file), sorted by path,
    /// without duplicates. `go.sum` is left out (go.mod holds the build list; name a
    /// go.sum to read it).
    pub fn find(&self, roots: &[PathBuf]) -> Result<Vec<Found>, DiscoverError> {
        let mut found = Vec::new();
        for root in roots {
            let walker = ignore::WalkBuilder::new(root)
                .hidden(false)
                .require_git(false)
                .filter_entry({
                    let discovery = self.clone();
                    move |entry| {
                        let skipped = entry.depth() > 0
                            && entry.file_type().is_some_and(|t| t.is_dir())
                            && entry
                                .file_name()
                                .to_str()
                                .is_some_and(|name| SKIPPED_FOLDERS.contains(&name));
                        !skipped && !discovery.is_excluded(entry.path())
                    }
                })
                .build();
            for entry in walker {
                let entry = entry.map_err(|err| DiscoverError::Walk {
                    root: root.clone(),
                    message: err.to_string(),
                })?;
                if !entry.file_type().is_some_and(|t| t.is_file()) {
                    continue;
                }
                if let Some(format) = Format::detect(entry.path()).filter(|f| *f != Format::GoSum) {
                    found.push(Found {
                        path: entry.into_path(),
                        format,
                    });
                }
            }
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        found.dedup_by(|a, b| a.path == b.path);
        Ok(found)
    }
}

/// `path` without `.` components and with `x/..` folded, without touching the disk
/// (the sandbox may not let us canonicalize).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_by_glob_relative_to_the_base() {
        let d = Discovery::new(
            Path::new("/p"),
            &[
                "tests/fixtures/**".into(),
                "**/testdata".into(),
                "*.lock".into(),
            ],
        )
        .unwrap();
        assert!(d.is_excluded(Path::new("/p/tests/fixtures/broken/Cargo.lock")));
        assert!(d.is_excluded(Path::new("/p/./tests/fixtures/x")));
        assert!(!d.is_excluded(Path::new("/p/tests/Cargo.lock")));
        assert!(d.is_excluded(Path::new("/p/a/b/testdata")));
        // `*` does not cross folders.
        assert!(d.is_excluded(Path::new("/p/Cargo.lock")));
        assert!(!d.is_excluded(Path::new("/p/app/Cargo.lock")));
        assert!(!d.is_excluded(Path::new("/p")));
    }

    #[test]
    fn a_bad_glob_is_named() {
        let err = Discovery::new(Path::new("/p"), &["a/[".into()]).unwrap_err();
        assert!(err.to_string().contains("`a/[`"), "{err}");
    }

    #[test]
    fn finds_lockfiles_except_excluded_and_skipped_folders() {
        let dir = std::env::temp_dir().join(format!("sluice-discover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for file in [
            "Cargo.lock",
            "web/package-lock.json",
            "web/node_modules/x/package-lock.json",
            "tests/fixtures/broken/Cargo.lock",
            "go/go.sum",
            "go/go.mod",
        ] {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
        let d = Discovery::new(&dir, &["tests/fixtures/**".into()]).unwrap();
        let found: Vec<String> = d
            .find(std::slice::from_ref(&dir))
            .unwrap()
            .into_iter()
            .map(|f| f.path.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        let all = Discovery::new(&dir, &[])
            .unwrap()
            .find(std::slice::from_ref(&dir))
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found, ["Cargo.lock", "go/go.mod", "web/package-lock.json"]);
        assert_eq!(all.len(), 4);
    }
}
