//! Expanding path globs inside a WASI sandbox.
//!
//! The `glob` crate walks a pattern from the root folder (`/`), which a step cannot list:
//! only its granted folders are preopened. So the literal leading part of a pattern
//! (`/work/app/target/release` of `/work/app/target/release/*.tar.gz`) is taken as it
//! is, and only the components after it are matched, with `glob::Pattern`, by listing
//! folders. `**` matches any number of folders.
//!

use std::path::{Path, PathBuf};

/// Files and folders matching `pattern` (relative patterns resolve under `root`),
/// sorted. An invalid pattern is an error; a folder that cannot be listed is skipped.
pub fn expand(root: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let absolute = crate::fs::normalize(&root.join(pattern));
    let components: Vec<String> = absolute
        .components()
        .map(|component| component.as_os_str().to_string_lossy().into_owned())
        .collect();
    let first_wild = components
        .iter()
        .position(|component| component.contains(['*', '?', '[']));
    let Some(first_wild) = first_wild else {
        return Ok(if absolute.exists() {
            vec![absolute]
        } else {
            Vec::new()
        });
    };
    let base: PathBuf = components[..first_wild].iter().collect();
    let mut patterns = Vec::new();
    for component in &components[first_wild..] {
        if component == "**" {
            patterns.push(None);
        } else {
            let compiled = glob::Pattern::new(component)
                .map_err(|err| format!("invalid pattern `{pattern}`: {err}"))?;
            patterns.push(Some(compiled));
        }
    }
    let mut found = Vec::new();
    walk(&base, &patterns, &mut found);
    found.sort();
    found.dedup();
    Ok(found)
}

fn walk(dir: &Path, patterns: &[Option<glob::Pattern>], found: &mut Vec<PathBuf>) {
    let Some((first, rest)) = patterns.split_first() else {
        found.push(dir.to_path_buf());
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let entries: Vec<(PathBuf, String, bool)> = entries
        .flatten()
        .map(|entry| {
            let is_dir = entry.file_type().map(|kind| kind.is_dir()).unwrap_or(false);
            (
                entry.path(),
                entry.file_name().to_string_lossy().into_owned(),
                is_dir,
            )
        })
        .collect();
    match first {
        None => {
            // `**`: zero folders here, or one more folder and `**` again.
            walk(dir, rest, found);
            for (path, _, is_dir) in &entries {
                if *is_dir {
                    walk(path, patterns, found);
                }
            }
        }
        Some(pattern) => {
            for (path, name, is_dir) in &entries {
                if !pattern.matches(name) {
                    continue;
                }
                if rest.is_empty() {
                    found.push(path.clone());
                } else if *is_dir {
                    walk(path, rest, found);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_literal_prefixes_wildcards_and_double_stars() {
        let root = std::env::temp_dir().join(format!("sluice-files-{}", std::process::id()));
        std::fs::create_dir_all(root.join("a/b/c")).unwrap();
        for file in ["a/x.xml", "a/b/y.xml", "a/b/c/z.xml", "a/b/c/z.txt"] {
            std::fs::write(root.join(file), "").unwrap();
        }
        let names = |pattern: &str| -> Vec<String> {
            expand(&root, pattern)
                .unwrap()
                .iter()
                .map(|path| {
                    path.strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect()
        };
        assert_eq!(names("a/x.xml"), ["a/x.xml"]);
        assert_eq!(names("a/missing.xml"), Vec::<String>::new());
        assert_eq!(names("a/*.xml"), ["a/x.xml"]);
        assert_eq!(names("a/**/*.xml"), ["a/b/c/z.xml", "a/b/y.xml", "a/x.xml"]);
        assert_eq!(names("./a/b/../b/c/z.*"), ["a/b/c/z.txt", "a/b/c/z.xml"]);
        assert!(expand(&root, "a/[.xml").is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
