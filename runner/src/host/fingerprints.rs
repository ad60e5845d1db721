//! Host-computed fingerprints (contract 0.1.5): every finding a plugin returns with an
//! empty fingerprint gets the contract's one (the `sluice-fingerprint` crate, the same
//! code the Rust SDK runs inside a plugin), so that a plugin in any language may leave
//! it to the host and one finding has one identity whatever language reported it.
//!
//! The source lines the algorithm hashes are read only through the step's own `read`
//! and `write` grants, as the plugin itself would read them: a path is resolved against
//! the pipeline's folder, `..` lexically, then opened beneath the granted folder that
//! holds it with cap-std's resolution (no `..` or symbolic link leads out of it). A
//! file the step could not read, a FIFO or a device gives the message fallback.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::host::bindings::types;

/// Give every finding of `report` whose fingerprint is empty its automatic one.
/// `workdir` is the pipeline's folder (relative paths are relative to it), `granted`
/// the step's read and write folders (canonical, absolute).
pub fn fill(report: &mut types::Report, workdir: &Path, granted: &[PathBuf]) {
    let pending: Vec<usize> = report
        .findings
        .iter()
        .enumerate()
        .filter(|(_, finding)| finding.fingerprint.is_empty())
        .map(|(index, _)| index)
        .collect();
    if pending.is_empty() {
        return;
    }
    let keys: Vec<sluice_fingerprint::FindingKey<'_>> = pending
        .iter()
        .map(|&index| {
            let finding = &report.findings[index];
            let location = finding.location.as_ref();
            sluice_fingerprint::FindingKey {
                rule_id: &finding.rule_id,
                message: &finding.message,
                path: location.map(|location| location.path.as_str()),
                line: location.and_then(|location| location.line),
                column: location.and_then(|location| location.column),
            }
        })
        .collect();
    let mut reader = GrantedReader::new(workdir, granted);
    let prints = sluice_fingerprint::fingerprints(&keys, |path| reader.read(path));
    for (index, print) in pending.into_iter().zip(prints) {
        report.findings[index].fingerprint = print;
    }
}

/// Reads files beneath the step's granted folders only, each folder opened once.
struct GrantedReader<'a> {
    workdir: &'a Path,
    granted: &'a [PathBuf],
    handles: HashMap<PathBuf, Option<std::fs::File>>,
}

impl<'a> GrantedReader<'a> {
    fn new(workdir: &'a Path, granted: &'a [PathBuf]) -> Self {
        GrantedReader {
            workdir,
            granted,
            handles: HashMap::new(),
        }
    }

    /// The bytes of `path` (as a finding gave it), at most one byte past the
    /// algorithm's bound; `None` when the step could not read it.
    fn read(&mut self, path: &str) -> Option<Vec<u8>> {
        let absolute = normalize(&self.workdir.join(path));
        // The innermost grant holding it, as wasi-libc picks among preopens.
        let grant = self
            .granted
            .iter()
            .filter(|grant| absolute.starts_with(grant))
            .max_by_key(|grant| grant.components().count())?;
        let inside = absolute.strip_prefix(grant).ok()?.to_path_buf();
        if inside.as_os_str().is_empty() {
            return None;
        }
        let folder = self
            .handles
            .entry(grant.clone())
            .or_insert_with(|| {
                cap_primitives::fs::open_ambient_dir(grant, cap_primitives::ambient_authority())
                    .ok()
            })
            .as_ref()?;
        let mut options = cap_primitives::fs::OpenOptions::new();
        // Non-blocking, so that a FIFO the step left behind cannot hold the runner up
        // (it is then refused below, as anything but a regular file is).
        options.read(true)._cap_fs_ext_nonblock(true);
        let file = cap_primitives::fs::open(folder, &inside, &options).ok()?;
        if !file.metadata().ok()?.is_file() {
            return None;
        }
        let limit = u64::try_from(sluice_fingerprint::MAX_SOURCE_BYTES).unwrap_or(u64::MAX);
        let mut bytes = Vec::new();
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .ok()?;
        Some(bytes)
    }
}

/// `path` with `.` removed and `..` resolved lexically, as the SDK resolves a path
/// before it hands it to WASI.
fn normalize(path: &Path) -> PathBuf {
    let mut resolved = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                resolved.pop();
            }
            other => resolved.push(other),
        }
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(rule: &str, path: &str, line: u32, fingerprint: &str) -> types::Finding {
        types::Finding {
            rule_id: rule.into(),
            severity: types::Severity::Low,
            message: "TODO left".into(),
            location: Some(types::Location {
                path: path.into(),
                line: Some(line),
                column: Some(1),
                end_line: None,
                end_column: None,
            }),
            fingerprint: fingerprint.into(),
            security_severity: None,
            help_uri: None,
            properties: Vec::new(),
        }
    }

    fn report(findings: Vec<types::Finding>) -> types::Report {
        types::Report {
            status: types::Status::Warned,
            summary: String::new(),
            findings,
            test_cases: Vec::new(),
            metrics: Vec::new(),
            data_points: Vec::new(),
            artifacts: Vec::new(),
            outputs: Vec::new(),
        }
    }

    fn line_print(rule: &str, path: &str, text: &str) -> String {
        format!("{}:1", sluice_fingerprint::line_hash(rule, path, text))
    }

    fn message_print(rule: &str, path: &str) -> String {
        format!(
            "{}:1",
            sluice_fingerprint::message_hash(rule, Some(path), "TODO left")
        )
    }

    #[test]
    fn empty_fingerprints_are_filled_from_granted_files_and_set_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("src/a.rs"), "x\n  // TODO one\n").unwrap();
        let mut report = report(vec![
            finding("r", "src/a.rs", 2, ""),
            finding("r", "./src/../src/a.rs", 2, ""),
            finding("r", "src/a.rs", 1, "kept:1"),
        ]);
        fill(&mut report, &root, &[root.join("src")]);
        assert_eq!(
            report.findings[0].fingerprint,
            line_print("r", "src/a.rs", "//TODOone")
        );
        // The path is part of the hash as the plugin spelled it.
        assert_eq!(
            report.findings[1].fingerprint,
            line_print("r", "./src/../src/a.rs", "//TODOone")
        );
        assert_eq!(report.findings[2].fingerprint, "kept:1");
    }

    #[test]
    fn files_outside_the_grants_are_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        for folder in ["granted", "secret"] {
            std::fs::create_dir_all(root.join(folder)).unwrap();
            std::fs::write(root.join(folder).join("f.txt"), "TODO\n").unwrap();
        }
        std::os::unix::fs::symlink(root.join("secret/f.txt"), root.join("granted/link.txt"))
            .unwrap();
        let absolute = root.join("secret/f.txt").display().to_string();
        let mut report = report(vec![
            finding("r", "secret/f.txt", 1, ""),
            finding("r", "granted/../secret/f.txt", 1, ""),
            finding("r", "granted/link.txt", 1, ""),
            finding("r", &absolute, 1, ""),
            finding("r", "granted/f.txt", 1, ""),
        ]);
        fill(&mut report, &root, &[root.join("granted")]);
        let prints: Vec<&str> = report
            .findings
            .iter()
            .map(|finding| finding.fingerprint.as_str())
            .collect();
        assert_eq!(
            prints,
            [
                message_print("r", "secret/f.txt"),
                message_print("r", "granted/../secret/f.txt"),
                message_print("r", "granted/link.txt"),
                message_print("r", &absolute),
                line_print("r", "granted/f.txt", "TODO"),
            ]
        );
    }

    #[test]
    fn a_fifo_in_a_grant_does_not_block_and_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("pipe"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let mut report = report(vec![finding("r", "pipe", 1, "")]);
        fill(&mut report, &root, std::slice::from_ref(&root));
        assert_eq!(report.findings[0].fingerprint, message_print("r", "pipe"));
    }
}
