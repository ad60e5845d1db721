//! `sluice.lock`: every plugin a pipeline uses, pinned to a digest, as Cargo.lock pins
//! crates. `sluice lock` writes it next to `sluice.toml`; `sluice run` and `validate`
//! refuse a plugin whose digest differs from the lock, naming the command that updates
//! it. An OCI reference by tag is pulled by the digest the lock pins, so a moved tag
//! changes nothing until `sluice lock --update`.
//!
//! Built-in plugins are not locked: the runner binary pins them.
//!
//! The format (TOML, written only by `sluice lock`):
//! ```toml
//! # This file is written by sluice lock; do not edit.
//! version = 1
//!
//! [[plugin]]
//! uses = "plugins/lint.wasm"
//! digest = "sha256:..."
//! ```
//! one `[[plugin]]` per distinct non-built-in `uses` of the pipeline's steps and
//! monitors, sorted by `uses`. A file's `uses` is its path relative to the pipeline's
//! folder; an OCI reference is `oci://HOST/NS/NAME:TAG` (or `@sha256:...` when it
//! names no tag). See [`lock_key`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_spanned::Spanned;

use crate::config::{ConfigError, PathSegment, Pipeline, PluginRef, SourceFile};
use crate::host::plugin::LoadedPlugin;

/// The lock file's name, next to a pipeline file named `sluice.toml`. A pipeline
/// file with another name (`release.toml`) has its own lock (`release.lock`): two
/// pipelines in one folder never share one.
pub const LOCK_FILE: &str = "sluice.lock";

/// The lock format this runner reads and writes.
pub const LOCK_VERSION: i64 = 1;

/// The first line of every lock file.
pub const LOCK_HEADER: &str = "# This file is written by sluice lock; do not edit.";

/// A lock file, read and checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lock {
    /// Where it was read from.
    pub path: PathBuf,
    /// One entry per distinct `uses` (steps, monitors), sorted.
    pub plugins: Vec<Locked>,
}

/// One pinned plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    /// The `uses` value as the lock names it ([`lock_key`]: `plugins/lint.wasm`,
    /// `oci://HOST/NS/NAME:TAG`).
    pub uses: String,
    /// `sha256:HEX` of the component's bytes.
    pub digest: String,
}

impl Lock {
    /// The digest the lock pins for a `uses` value as the lock names it.
    pub fn pinned(&self, uses: &str) -> Option<&str> {
        self.plugins
            .iter()
            .find(|l| l.uses == uses)
            .map(|l| l.digest.as_str())
    }

    /// The digest the lock pins for a plugin of a pipeline whose folder is `base`
    /// (`None` for built-ins, which are never locked).
    pub fn pinned_ref(&self, reference: &PluginRef, base: &Path) -> Option<&str> {
        self.pinned(&lock_key(reference, base)?)
    }

    /// The lock file's text: header, version, entries sorted by `uses`.
    pub fn to_toml(&self) -> String {
        let mut plugins = self.plugins.clone();
        plugins.sort_by(|a, b| a.uses.cmp(&b.uses));
        let mut text = format!("{LOCK_HEADER}\nversion = {LOCK_VERSION}\n");
        for p in &plugins {
            text.push_str(&format!(
                "\n[[plugin]]\nuses = {}\ndigest = {}\n",
                toml_string(&p.uses),
                toml_string(&p.digest)
            ));
        }
        text
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// How the lock names a plugin: a file by its path relative to the pipeline's
/// folder (`base`), absolute when outside it; an OCI reference by repository and tag
/// (`oci://HOST/NS/NAME:TAG`), or by digest when it names no tag. A built-in has
/// none: the runner binary pins it.
pub fn lock_key(reference: &PluginRef, base: &Path) -> Option<String> {
    match reference {
        PluginRef::Builtin(_) => None,
        PluginRef::File(_) => Some(reference.policy_name(base)),
        PluginRef::Oci(r) => Some(match (&r.tag, &r.digest) {
            (Some(tag), _) => format!("{}:{tag}", r.repository_url()),
            (None, Some(d)) => format!("{}@{d}", r.repository_url()),
            (None, None) => r.repository_url(),
        }),
    }
}

/// The lock file of a pipeline file: `sluice.lock` beside `sluice.toml`,
/// `NAME.lock` beside any other `NAME.toml`.
pub fn lock_path(pipeline_file: &Path) -> PathBuf {
    let dir = pipeline_file.parent().unwrap_or(Path::new("."));
    match pipeline_file.file_name().and_then(|n| n.to_str()) {
        Some("sluice.toml") | None => dir.join(LOCK_FILE),
        Some(_) => pipeline_file.with_extension("lock"),
    }
}

/// Where in the pipeline file a plugin is named: each step's and monitor's `uses`,
/// with its lock key and the byte offset of the `uses` value.
pub struct Use<'a> {
    pub key: String,
    pub reference: &'a PluginRef,
    pub offset: usize,
    /// `step `ID`` or `monitor `ID``, for messages.
    pub what: String,
}

/// Every non-built-in plugin the pipeline's steps and monitors name, in file order.
pub fn uses_of(pipeline: &Pipeline) -> Vec<Use<'_>> {
    let mut out = Vec::new();
    for stage in &pipeline.stages {
        for step in &stage.steps {
            if let Some(key) = lock_key(&step.uses, &pipeline.dir) {
                let span = pipeline
                    .source
                    .span_of(&step.key_path(&[PathSegment::Key("uses".into())]));
                out.push(Use {
                    key,
                    reference: &step.uses,
                    offset: span.map_or(0, |s| s.start),
                    what: format!("step `{}`", step.id),
                });
            }
        }
    }
    for (i, monitor) in pipeline.monitors.iter().enumerate() {
        let Some(reference) = &monitor.uses else {
            continue;
        };
        if let Some(key) = lock_key(reference, &pipeline.dir) {
            let span = pipeline.source.span_of(&[
                PathSegment::Key("monitor".into()),
                PathSegment::Index(i),
                PathSegment::Key("uses".into()),
            ]);
            out.push(Use {
                key,
                reference,
                offset: span.map_or(0, |s| s.start),
                what: format!("monitor `{}`", monitor.id),
            });
        }
    }
    out
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLock {
    version: Option<Spanned<i64>>,
    #[serde(default)]
    plugin: Vec<Spanned<RawLocked>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocked {
    uses: Spanned<String>,
    digest: Spanned<String>,
}

/// Whether a digest is `sha256:` and 64 lowercase hex digits.
pub fn is_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Read and check a lock file's text; problems are at its line and column.
pub fn parse(path: &Path, text: String) -> Result<Lock, Vec<ConfigError>> {
    let source = SourceFile {
        path: path.to_path_buf(),
        text,
    };
    let raw: RawLock = toml::from_str(&source.text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        vec![source.error(
            offset,
            format!(
                "{}; this file is written by `sluice lock`: delete it and run `sluice lock` to write it again",
                e.message().trim_end()
            ),
        )]
    })?;
    let mut errors = Vec::new();
    match &raw.version {
        None => errors.push(source.error(
            0,
            format!("no `version`; a lock file starts with `version = {LOCK_VERSION}` (run `sluice lock` to write it again)"),
        )),
        Some(v) if *v.get_ref() != LOCK_VERSION => errors.push(source.error(
            v.span().start,
            format!(
                "lock format version {} is not one this sluice reads (it reads version {LOCK_VERSION}); run `sluice lock` with the sluice that wrote it, or delete the file and run `sluice lock`",
                v.get_ref()
            ),
        )),
        Some(_) => {}
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut plugins = Vec::new();
    for entry in &raw.plugin {
        let entry = entry.get_ref();
        let uses = entry.uses.get_ref();
        let digest = entry.digest.get_ref();
        if let Some(first_line) = seen.get(uses) {
            errors.push(source.error(
                entry.uses.span().start,
                format!(
                    "`{uses}` is locked twice (first at line {first_line}); run `sluice lock` to write the file again"
                ),
            ));
            continue;
        }
        seen.insert(uses.clone(), source.pos(entry.uses.span().start).line);
        if !is_digest(digest) {
            errors.push(source.error(
                entry.digest.span().start,
                format!(
                    "`{digest}` is not a digest (`sha256:` and 64 lowercase hex digits); run `sluice lock --update {uses}` to pin it again"
                ),
            ));
            continue;
        }
        plugins.push(Locked {
            uses: uses.clone(),
            digest: digest.clone(),
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    plugins.sort_by(|a, b| a.uses.cmp(&b.uses));
    Ok(Lock {
        path: path.to_path_buf(),
        plugins,
    })
}

/// Read the lock file next to the pipeline file, if there is one. Problems are at
/// the lock file's line and column.
pub fn read_for(
    pipeline: &Pipeline,
    pipeline_file: &Path,
) -> Result<Option<Lock>, Vec<ConfigError>> {
    let _ = pipeline;
    let path = lock_path(pipeline_file);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&path, text).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(vec![ConfigError {
            pos: crate::config::SourcePos {
                file: path.clone(),
                line: 1,
                column: 1,
            },
            message: format!("cannot read the lock file: {e}"),
        }]),
    }
}

/// The `sluice lock` command a message names: with the pipeline file when it is not
/// `sluice.toml`.
fn lock_command(pipeline: &Pipeline, rest: &str) -> String {
    let file = &pipeline.source.path;
    let named = match file.file_name().and_then(|n| n.to_str()) {
        Some("sluice.toml") => String::new(),
        _ => format!(" {}", file.display()),
    };
    format!("sluice lock{named}{rest}")
}

/// Every plugin whose loaded digest differs from the lock, or that the lock lacks
/// while a lock exists; each at the step's `uses`, with the `sluice lock` command
/// that updates the lock.
pub fn check(
    pipeline: &Pipeline,
    plugins: &HashMap<PluginRef, Arc<LoadedPlugin>>,
    lock: Option<&Lock>,
) -> Vec<ConfigError> {
    let Some(lock) = lock else {
        return Vec::new();
    };
    let lock_name = lock
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| LOCK_FILE.to_string());
    let mut errors = Vec::new();
    let mut reported = std::collections::HashSet::new();
    for u in uses_of(pipeline) {
        let Some(loaded) = plugins.get(u.reference) else {
            continue;
        };
        match lock.pinned(&u.key) {
            Some(pinned) if pinned == loaded.digest() => {}
            Some(pinned) => errors.push(pipeline.source.error(
                u.offset,
                format!(
                    "{}: plugin `{}` is {} but {lock_name} pins {pinned}; if this change is intended, run `{}`",
                    u.what,
                    u.key,
                    loaded.digest(),
                    lock_command(pipeline, &format!(" --update {}", u.key))
                ),
            )),
            None if reported.insert(u.key.clone()) => errors.push(pipeline.source.error(
                u.offset,
                format!(
                    "{}: plugin `{}` is not in {lock_name}; run `{}` to pin it",
                    u.what,
                    u.key,
                    lock_command(pipeline, "")
                ),
            )),
            None => {}
        }
    }
    errors
}

/// What `sluice lock` changes in a lock: entries added, re-pinned and dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockDiff {
    pub added: Vec<Locked>,
    /// `(uses, old digest, new digest)`.
    pub updated: Vec<(String, String, String)>,
    pub removed: Vec<Locked>,
}

impl LockDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.updated.is_empty() && self.removed.is_empty()
    }

    /// `+ uses digest`, `~ uses A → B`, `- uses`, sorted by `uses`.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<(String, String)> = Vec::new();
        for a in &self.added {
            lines.push((a.uses.clone(), format!("+ {} {}", a.uses, a.digest)));
        }
        for (uses, old, new) in &self.updated {
            lines.push((uses.clone(), format!("~ {uses} {old} → {new}")));
        }
        for r in &self.removed {
            lines.push((r.uses.clone(), format!("- {} {}", r.uses, r.digest)));
        }
        lines.sort();
        lines.into_iter().map(|(_, l)| l).collect()
    }
}

/// Which entries `sluice lock` re-pins.
#[derive(Debug, Clone)]
pub enum Update {
    /// None: entries already locked keep their digests (`sluice lock`).
    Nothing,
    /// Every entry (`sluice lock --update`).
    All,
    /// These `uses` values (`sluice lock --update X Y`).
    Only(Vec<String>),
}

impl Update {
    pub fn covers(&self, uses: &str) -> bool {
        match self {
            Update::Nothing => false,
            Update::All => true,
            Update::Only(list) => list.iter().any(|u| u == uses),
        }
    }
}

/// The lock `sluice lock` writes: one entry per plugin in `current` (lock key →
/// digest now), keeping the old lock's digest unless `update` covers it; entries no
/// longer used are dropped. Returns the new lock and what changed.
pub fn relock(
    old: Option<&Lock>,
    current: &BTreeMap<String, String>,
    update: &Update,
    path: PathBuf,
) -> (Lock, LockDiff) {
    let mut diff = LockDiff::default();
    let mut plugins = Vec::new();
    for (uses, digest) in current {
        let pinned = old.and_then(|l| l.pinned(uses));
        let digest = match pinned {
            Some(p) if !update.covers(uses) => p.to_string(),
            Some(p) => {
                if p != digest {
                    diff.updated
                        .push((uses.clone(), p.to_string(), digest.clone()));
                }
                digest.clone()
            }
            None => {
                diff.added.push(Locked {
                    uses: uses.clone(),
                    digest: digest.clone(),
                });
                digest.clone()
            }
        };
        plugins.push(Locked {
            uses: uses.clone(),
            digest,
        });
    }
    if let Some(old) = old {
        for l in &old.plugins {
            if !current.contains_key(&l.uses) {
                diff.removed.push(l.clone());
            }
        }
    }
    (Lock { path, plugins }, diff)
}

/// Write a lock file atomically (a temporary file beside it, renamed over it).
pub fn write(lock: &Lock) -> std::io::Result<()> {
    let dir = lock.path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, lock.to_toml().as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(&lock.path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn a_lock_round_trips_sorted_with_its_header() {
        let lock = Lock {
            path: PathBuf::from("sluice.lock"),
            plugins: vec![
                Locked {
                    uses: "plugins/z.wasm".into(),
                    digest: digest('b'),
                },
                Locked {
                    uses: "oci://127.0.0.1:5000/acme/lint:1.0".into(),
                    digest: digest('a'),
                },
            ],
        };
        let text = lock.to_toml();
        assert!(text.starts_with(LOCK_HEADER), "{text}");
        let read = parse(Path::new("sluice.lock"), text).unwrap();
        assert_eq!(read.plugins[0].uses, "oci://127.0.0.1:5000/acme/lint:1.0");
        assert_eq!(read.pinned("plugins/z.wasm"), Some(digest('b').as_str()));
    }

    #[test]
    fn lock_errors_are_at_their_line_and_column() {
        let text = format!(
            "version = 1\n\n[[plugin]]\nuses = \"a.wasm\"\ndigest = \"sha256:abc\"\n\n[[plugin]]\nuses = \"b.wasm\"\ndigest = \"{}\"\n\n[[plugin]]\nuses = \"b.wasm\"\ndigest = \"{}\"\n",
            digest('a'),
            digest('a')
        );
        let errors = parse(Path::new("sluice.lock"), text).unwrap_err();
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            shown[0].starts_with("sluice.lock:5:10: `sha256:abc` is not a digest"),
            "{shown:?}"
        );
        assert!(
            shown[1].starts_with("sluice.lock:12:8: `b.wasm` is locked twice (first at line 8)"),
            "{shown:?}"
        );
        let errors = parse(Path::new("sluice.lock"), "version = 2\n".into()).unwrap_err();
        assert!(
            errors[0]
                .to_string()
                .starts_with("sluice.lock:1:11: lock format version 2"),
            "{}",
            errors[0]
        );
        let errors = parse(
            Path::new("sluice.lock"),
            "version = 1\nextra = true\n".into(),
        )
        .unwrap_err();
        assert!(
            errors[0]
                .to_string()
                .starts_with("sluice.lock:2:1: unknown field `extra`"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn relock_keeps_pins_unless_updated_and_drops_unused_entries() {
        let old = Lock {
            path: PathBuf::from("sluice.lock"),
            plugins: vec![
                Locked {
                    uses: "a.wasm".into(),
                    digest: digest('a'),
                },
                Locked {
                    uses: "gone.wasm".into(),
                    digest: digest('c'),
                },
            ],
        };
        let current: BTreeMap<String, String> = [
            ("a.wasm".to_string(), digest('b')),
            ("new.wasm".to_string(), digest('d')),
        ]
        .into();
        let (kept, diff) = relock(Some(&old), &current, &Update::Nothing, old.path.clone());
        assert_eq!(kept.pinned("a.wasm"), Some(digest('a').as_str()));
        assert_eq!(
            diff.lines(),
            vec![
                format!("- gone.wasm {}", digest('c')),
                format!("+ new.wasm {}", digest('d')),
            ]
        );
        let (updated, diff) = relock(
            Some(&old),
            &current,
            &Update::Only(vec!["a.wasm".into()]),
            old.path.clone(),
        );
        assert_eq!(updated.pinned("a.wasm"), Some(digest('b').as_str()));
        assert!(
            diff.lines()
                .contains(&format!("~ a.wasm {} → {}", digest('a'), digest('b')))
        );
    }

    #[test]
    fn lock_keys_name_files_relative_and_oci_by_tag() {
        let base = Path::new("/p");
        assert_eq!(
            lock_key(&PluginRef::File("/p/./plugins/x.wasm".into()), base).as_deref(),
            Some("plugins/x.wasm")
        );
        assert_eq!(lock_key(&PluginRef::Builtin("lint".into()), base), None);
        let mut r = crate::registry::OciRef::parse("oci://h:5000/acme/lint:1.2").unwrap();
        r.digest = Some(digest('a'));
        assert_eq!(
            lock_key(&PluginRef::Oci(r), base).as_deref(),
            Some("oci://h:5000/acme/lint:1.2")
        );
        assert_eq!(
            lock_path(Path::new("/p/sluice.toml")),
            PathBuf::from("/p/sluice.lock")
        );
        assert_eq!(
            lock_path(Path::new("/p/release.toml")),
            PathBuf::from("/p/release.lock")
        );
    }
}
