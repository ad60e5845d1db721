//! Expanding the `files` patterns: `*` and `?` within one path segment, `**` for any
//! number of folders. Paths are `/`-separated and relative to the pipeline's folder
//! (absolute ones are allowed too); results come back sorted, in the same form.

use std::io;
use std::path::{Path, PathBuf};

/// Whether `pattern` has wildcards (otherwise it names one file).
pub fn is_pattern(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

/// The files `pattern` matches, resolved against `workdir`. A missing folder matches
/// nothing; any other I/O error comes back with the path it happened on.
pub fn expand(workdir: &Path, pattern: &str) -> Result<Vec<String>, (String, io::Error)> {
    let absolute = pattern.starts_with('/');
    let segments: Vec<&str> = pattern
        .split('/')
        .filter(|segment| !segment.is_empty() && *segment != ".")
        .collect();
    let (start_dir, start_rel) = if absolute {
        (PathBuf::from("/"), "/".to_owned())
    } else {
        (workdir.to_path_buf(), String::new())
    };
    let mut found = Vec::new();
    walk(&start_dir, &start_rel, &segments, &mut found).map_err(|(path, err)| {
        // For a plain path, name the file the user listed rather than the first folder
        // on the way to it that could not be seen.
        if is_pattern(pattern) {
            (path, err)
        } else {
            (pattern.to_owned(), err)
        }
    })?;
    found.sort();
    found.dedup();
    Ok(found)
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() || rel.ends_with('/') {
        format!("{rel}{name}")
    } else {
        format!("{rel}/{name}")
    }
}

fn walk(
    dir: &Path,
    rel: &str,
    segments: &[&str],
    found: &mut Vec<String>,
) -> Result<(), (String, io::Error)> {
    let Some((segment, rest)) = segments.split_first() else {
        if dir.is_file() {
            found.push(rel.to_owned());
        }
        return Ok(());
    };
    if *segment == "**" {
        // Zero folders, then one more level with `**` still in front.
        walk(dir, rel, rest, found)?;
        for (name, path) in entries(dir, rel)? {
            if path.is_dir() {
                walk(&path, &join(rel, &name), segments, found)?;
            }
        }
        return Ok(());
    }
    if is_pattern(segment) {
        for (name, path) in entries(dir, rel)? {
            if matches(segment, &name) {
                walk(&path, &join(rel, &name), rest, found)?;
            }
        }
        return Ok(());
    }
    let path = dir.join(segment);
    match std::fs::symlink_metadata(&path) {
        Ok(_) => walk(&path, &join(rel, segment), rest, found),
        Err(err) if err.kind() == io::ErrorKind::NotFound && any_ancestor_visible(&path) => Ok(()),
        Err(err) => Err((join(rel, segment), err)),
    }
}

/// A file missing inside a visible folder is just missing; with no visible ancestor the
/// path lies outside every grant, which the caller must hear about.
fn any_ancestor_visible(path: &Path) -> bool {
    path.ancestors()
        .skip(1)
        .any(|ancestor| ancestor != Path::new("/") && ancestor.exists())
}

/// The entries of `dir`, skipping hidden ones (as shells do), sorted by name.
fn entries(dir: &Path, rel: &str) -> Result<Vec<(String, PathBuf)>, (String, io::Error)> {
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(err) if err.kind() == io::ErrorKind::NotFound && any_ancestor_visible(dir) => {
            return Ok(Vec::new());
        }
        Err(err) if err.kind() == io::ErrorKind::NotADirectory => return Ok(Vec::new()),
        Err(err) => {
            return Err((
                if rel.is_empty() {
                    ".".to_owned()
                } else {
                    rel.to_owned()
                },
                err,
            ));
        }
    };
    let mut entries = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|err| (rel.to_owned(), err))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            entries.push((name, entry.path()));
        }
    }
    entries.sort();
    Ok(entries)
}

/// Whether `name` matches one pattern segment with `*` (any run of characters) and `?`
/// (one character).
fn matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            backtrack = Some((p, n));
            p += 1;
        } else if let Some((star, consumed)) = backtrack {
            p = star + 1;
            n = consumed + 1;
            backtrack = Some((star, consumed + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_segments() {
        assert!(matches("*.wasm", "app.wasm"));
        assert!(matches("a?c", "abc"));
        assert!(matches("*", "x"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("*.wasm", "app.wasm.map"));
        assert!(!matches("a?c", "ac"));
    }

    #[test]
    fn literal_and_missing_paths() {
        let dir = std::env::temp_dir().join(format!("file-budget-glob-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/b/c.txt"), "x").unwrap();
        std::fs::write(dir.join("a/.hidden.txt"), "x").unwrap();
        assert_eq!(expand(&dir, "a/b/c.txt").unwrap(), ["a/b/c.txt"]);
        assert_eq!(expand(&dir, "./a/**/*.txt").unwrap(), ["a/b/c.txt"]);
        assert_eq!(expand(&dir, "a/*.txt").unwrap(), Vec::<String>::new());
        assert_eq!(expand(&dir, "nope/*.txt").unwrap(), Vec::<String>::new());
        let _ = std::fs::remove_dir_all(dir);
    }
}
