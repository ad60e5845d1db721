//! The on-disk cache of compiled components, and the only place that turns bytes into
//! native code without compiling them ([`load_trusted_cwasm`]).
//!
//! Compiling a component with Cranelift takes from tens of milliseconds (a small Rust
//! plugin) to many seconds (a Python one). Entries live at
//! `<root>/v2/wasmtime-<version>/<engine-hash>/<sha256-of-wasm>.cwasm`, so a new
//! wasmtime release or a changed engine setting never loads a stale artifact; the
//! stat index of component files (see [`ComponentCache::index_lookup`]) lives in
//! `index/` beside them.
//!
//! A compiled component is native code, so the cache is defended, not trusted:
//! - [`CacheRoot::open`] (run early, before any async runtime) checks that the root is
//!   a folder owned by the effective user and not writable by group or others, and
//!   holds it open; every later access goes through directory handles opened from it,
//!   never through a path, and never follows a symbolic link inside the cache. Every
//!   folder Sluice creates in it has mode 0700 and is checked the same way.
//! - `<root>/key` holds 32 random bytes (mode 0600, created once, never replaced).
//!   Every `.cwasm` and every index entry carries a keyed BLAKE3 MAC over what it is
//!   (engine, digest or index name) and its content. A file that is missing its MAC,
//!   whose MAC does not verify (changed, truncated, from another key), that is a
//!   symbolic link or not a regular file is never used: it is recompiled (or
//!   re-hashed) and replaced, with one `warning:` line on stderr.

use std::hash::Hasher;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::console;
use crate::limits;

/// Version of the layout under the root; older layouts are left alone (delete them).
const LAYOUT: &str = "v2";

/// Length of the cache key and of every MAC.
const KEY_LEN: usize = 32;

/// Problems with the cache itself. A broken cache *entry* is not an error: it is
/// recompiled, never trusted.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot use {} as the cache of compiled plugins: {source}; choose another folder with --cache-dir DIR", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the cache {what} {} {problem}; {fix}", path.display())]
    Insecure {
        what: &'static str,
        path: PathBuf,
        problem: String,
        fix: String,
    },
    #[error("the cache key {} holds {len} bytes instead of {KEY_LEN}; delete it (a new key is made and every plugin is compiled again)", path.display())]
    BadKey { path: PathBuf, len: usize },
    #[error("plugin {name} is not a valid WebAssembly component: {reason}")]
    Compile { name: String, reason: String },
}

/// The default cache root: `$SLUICE_CACHE_DIR`, else `$XDG_CACHE_HOME/sluice`, else
/// `$HOME/.cache/sluice`; `None` when none of them is set (then there is no disk
/// cache). Empty values count as unset, and so does a relative `XDG_CACHE_HOME` or
/// `HOME`, as the XDG base directory specification says.
pub fn default_cache_root() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(d) = var("SLUICE_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    let absolute = |name: &str| var(name).map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(d) = absolute("XDG_CACHE_HOME") {
        return Some(d.join("sluice"));
    }
    absolute("HOME").map(|h| h.join(".cache").join("sluice"))
}

/// An open, checked cache root and its key. Open it with [`CacheRoot::open`] before
/// anything else runs; afterwards nothing opens a cache file by path.
#[derive(Debug, Clone)]
pub struct CacheRoot {
    path: PathBuf,
    dir: Arc<OwnedFd>,
    key: [u8; KEY_LEN],
}

impl CacheRoot {
    /// Create `path` (mode 0700) if it is missing, check that it is a folder owned by
    /// the effective user and not writable by group or others (a symbolic link the
    /// user chose is followed, and the folder it leads to is checked), hold it open,
    /// and read its key, creating it on first use.
    pub fn open(path: &Path) -> Result<CacheRoot, CacheError> {
        let open_err = |source: std::io::Error| CacheError::Open {
            path: path.to_path_buf(),
            source,
        };
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(open_err)?;
        }
        let dir = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| open_err(e.into()))?;
        check_private(&dir, path, "folder")?;
        let key = read_or_create_key(&dir, path)?;
        Ok(CacheRoot {
            path: path.to_path_buf(),
            dir: Arc::new(dir),
            key,
        })
    }

    /// The root, as the user named it (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The handle it is held by (the runner hides the folder behind it from steps).
    pub fn handle(&self) -> &OwnedFd {
        &self.dir
    }
}

/// Check an open cache folder or file: owned by the effective user and not writable
/// by group or others (the key: not even readable by them).
fn check_private(fd: &OwnedFd, path: &Path, what: &'static str) -> Result<(), CacheError> {
    let st = rustix::fs::fstat(fd).map_err(|e| CacheError::Open {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    let mode = st.st_mode & 0o7777;
    let owner = st.st_uid;
    let me = rustix::process::geteuid().as_raw();
    let is_key = what == "key";
    let insecure = |problem: String, fix: String| CacheError::Insecure {
        what,
        path: path.to_path_buf(),
        problem,
        fix,
    };
    if owner != me {
        return Err(insecure(
            format!("belongs to uid {owner} (mode {mode:04o}), not to you (uid {me})"),
            "choose a folder of your own with --cache-dir DIR or $SLUICE_CACHE_DIR".into(),
        ));
    }
    let denied = if is_key { 0o077 } else { 0o022 };
    if mode & denied != 0 {
        let who = match (mode & denied & 0o070 != 0, mode & denied & 0o007 != 0) {
            (true, true) => "group and others",
            (true, false) => "its group",
            _ => "others",
        };
        return Err(if is_key {
            insecure(
                format!("can be read or written by {who} (owner uid {owner}, mode {mode:04o})"),
                format!("run `chmod 600 {}`", path.display()),
            )
        } else {
            insecure(
                format!(
                    "is writable by {who} (owner uid {owner}, mode {mode:04o}), who could replace compiled plugins"
                ),
                format!(
                    "run `chmod go-w {}`, or choose another folder with --cache-dir DIR",
                    path.display()
                ),
            )
        });
    }
    Ok(())
}

/// The cache key in `<root>/key`, created on first use: written under a temporary
/// name opened with `O_EXCL` (mode 0600), then linked into place, which fails rather
/// than replace a key another process made first.
fn read_or_create_key(root: &OwnedFd, root_path: &Path) -> Result<[u8; KEY_LEN], CacheError> {
    let path = root_path.join("key");
    let io_err = |source: std::io::Error| CacheError::Open {
        path: path.clone(),
        source,
    };
    for _ in 0..3 {
        match rustix::fs::openat(
            root,
            "key",
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => {
                if !is_regular(&fd) {
                    return Err(not_a_file("key", &path));
                }
                check_private(&fd, &path, "key")?;
                let mut bytes = Vec::with_capacity(KEY_LEN + 1);
                std::fs::File::from(fd)
                    .take(KEY_LEN as u64 + 1)
                    .read_to_end(&mut bytes)
                    .map_err(io_err)?;
                return <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
                    CacheError::BadKey {
                        path: path.clone(),
                        len: bytes.len(),
                    }
                });
            }
            Err(Errno::LOOP) => return Err(not_a_file("key", &path)),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(io_err(e.into())),
        }
        let mut key = [0u8; KEY_LEN];
        rustix::rand::getrandom(&mut key[..], rustix::rand::GetRandomFlags::empty())
            .map_err(|e| io_err(e.into()))?;
        let tmp = temporary_name("key");
        let (fd, tmp) = create_exclusive(root, tmp).map_err(io_err)?;
        let written = {
            let mut f = std::fs::File::from(fd);
            f.write_all(&key).and_then(|()| f.sync_all())
        };
        let linked = written.map_err(io_err).and_then(|()| {
            match rustix::fs::linkat(root, &tmp, root, "key", AtFlags::empty()) {
                Ok(()) => Ok(true),
                Err(Errno::EXIST) => Ok(false),
                Err(e) => Err(io_err(e.into())),
            }
        });
        let _ = rustix::fs::unlinkat(root, &tmp, AtFlags::empty());
        if linked? {
            return Ok(key);
        }
        // Another process made the key first; read theirs.
    }
    Err(io_err(std::io::Error::other(
        "the key keeps appearing and disappearing",
    )))
}

fn not_a_file(what: &'static str, path: &Path) -> CacheError {
    CacheError::Insecure {
        what,
        path: path.to_path_buf(),
        problem: "is a symbolic link or not a regular file".into(),
        fix: format!(
            "remove it, or choose another folder with --cache-dir DIR ({})",
            path.display()
        ),
    }
}

fn is_regular(fd: &OwnedFd) -> bool {
    rustix::fs::fstat(fd)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
}

/// A name no other writer uses: `<base>.tmp-<pid>-<counter>`.
fn temporary_name(base: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{base}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Create `name` in `dir` with `O_CREAT | O_EXCL` (which never follows a symbolic
/// link), mode 0600. A leftover of a crashed process with the same name is removed
/// once.
fn create_exclusive(dir: &OwnedFd, name: String) -> std::io::Result<(OwnedFd, String)> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(dir, &name, flags, Mode::from_raw_mode(0o600)) {
        Ok(fd) => Ok((fd, name)),
        Err(Errno::EXIST) => {
            let _ = rustix::fs::unlinkat(dir, &name, AtFlags::empty());
            let fd = rustix::fs::openat(dir, &name, flags, Mode::from_raw_mode(0o600))?;
            Ok((fd, name))
        }
        Err(e) => Err(e.into()),
    }
}

/// Open (creating it with mode 0700 if missing) the folder `name` inside `parent`,
/// without following a symbolic link, and check it like the root.
fn private_subdir(
    parent: &OwnedFd,
    parent_path: &Path,
    name: &str,
) -> Result<(OwnedFd, PathBuf), CacheError> {
    let path = parent_path.join(name);
    let io_err = |e: Errno| CacheError::Open {
        path: path.clone(),
        source: e.into(),
    };
    match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(io_err(e)),
    }
    let fd = match rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::LOOP | Errno::NOTDIR) => {
            return Err(CacheError::Insecure {
                what: "folder",
                path: path.clone(),
                problem: "is a symbolic link or not a folder".into(),
                fix: format!("remove it (`rm {}`)", path.display()),
            });
        }
        Err(e) => return Err(io_err(e)),
    };
    check_private(&fd, &path, "folder")?;
    Ok((fd, path))
}

/// Feeds wasmtime's engine-compatibility hash into SHA-256, which (unlike the standard
/// library's hasher) is stable across Rust releases.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        unreachable!("only the full digest is read")
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The compiled components of one engine, reached only through directory handles.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Arc<OwnedFd>,
    index: Arc<OwnedFd>,
    /// For messages only; never opened.
    dir_path: PathBuf,
    index_path: PathBuf,
    engine_hash: String,
    key: [u8; KEY_LEN],
}

/// Why a cache file was not used.
type Rejected = String;

impl ComponentCache {
    /// The cache for `engine` under `root`; its folders are created (mode 0700) and
    /// checked on the way down.
    pub fn open(root: &CacheRoot, engine: &Engine) -> Result<ComponentCache, CacheError> {
        let mut hasher = Sha256Hasher(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        let engine_hash = hex::encode(&hasher.0.finalize()[..12]);
        let (layout, layout_path) = private_subdir(&root.dir, &root.path, LAYOUT)?;
        let version = format!("wasmtime-{}", wasmtime_version());
        let (wasmtime, wasmtime_path) = private_subdir(&layout, &layout_path, &version)?;
        let (dir, dir_path) = private_subdir(&wasmtime, &wasmtime_path, &engine_hash)?;
        let (index, index_path) = private_subdir(&dir, &dir_path, "index")?;
        Ok(ComponentCache {
            dir: Arc::new(dir),
            index: Arc::new(index),
            dir_path,
            index_path,
            engine_hash,
            key: root.key,
        })
    }

    /// The folder holding this engine's entries (for messages; never opened by path).
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// The MAC of a `.cwasm` entry: what it is (this engine, the component's digest)
    /// and its content.
    fn cwasm_mac(&self, hex_digest: &str, compiled: &[u8]) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(b"sluice cwasm v2\0");
        h.update(self.engine_hash.as_bytes());
        h.update(b"\0");
        h.update(hex_digest.as_bytes());
        h.update(b"\0");
        h.update(compiled);
        h.finalize()
    }

    /// The MAC of a stat-index entry: its name and its text.
    fn index_mac(&self, name: &str, text: &str) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(b"sluice index v2\0");
        h.update(name.as_bytes());
        h.update(b"\0");
        h.update(text.as_bytes());
        h.finalize()
    }

    /// The digest remembered for a component file, if its index entry verifies and
    /// the file's device, inode, size, modification and change times (as git's index
    /// does; any change to a file changes its ctime) still match. `canonical` is the
    /// file's resolved path and `meta` what `fstat` says of the open file.
    pub fn index_lookup(&self, canonical: &Path, meta: &std::fs::Metadata) -> Option<String> {
        let name = index_name(canonical);
        let bytes = match read_entry(&self.index, &name, 4 << 10) {
            Ok(Some(b)) => b,
            Ok(None) => return None,
            Err(why) => {
                warn_rejected(
                    &self.index_path.join(&name),
                    &why,
                    "hashing the plugin again",
                );
                return None;
            }
        };
        let checked = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| text.trim_end().rsplit_once(' '))
            .filter(|(body, mac)| {
                blake3::Hash::from_hex(mac).is_ok_and(|mac| mac == self.index_mac(&name, body))
            })
            .map(|(body, _)| body.to_string());
        let Some(body) = checked else {
            warn_rejected(
                &self.index_path.join(&name),
                "its authentication code does not match: it was changed, truncated or written with another key",
                "hashing the plugin again",
            );
            return None;
        };
        body.strip_prefix(&stamp(meta))
            .and_then(|rest| rest.strip_prefix(' '))
            .map(str::to_string)
    }

    /// Remember `digest` for a component file (see [`ComponentCache::index_lookup`]).
    /// Failing to write only costs a re-hash next time.
    pub fn index_store(&self, canonical: &Path, meta: &std::fs::Metadata, digest: &str) {
        let name = index_name(canonical);
        let body = format!("{} {digest}", stamp(meta));
        let mac = self.index_mac(&name, &body);
        let text = format!("{body} {}\n", mac.to_hex());
        if let Err(e) = write_entry(&self.index, &name, &[text.as_bytes()]) {
            tracing::debug!("cannot write index entry {name}: {e}");
        }
    }

    /// Load the component whose digest is `digest` (`sha256:<hex>`): from its cache
    /// entry when that verifies, else by compiling `wasm()` and storing the result.
    /// `name` is only used in messages.
    pub fn load(
        &self,
        engine: &Engine,
        name: &str,
        digest: &str,
        wasm: impl FnOnce() -> std::io::Result<std::borrow::Cow<'static, [u8]>>,
    ) -> Result<Component, CacheError> {
        let hex_digest = digest.strip_prefix("sha256:").unwrap_or(digest);
        if hex_digest.len() != 64 || !hex_digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CacheError::Compile {
                name: name.to_string(),
                reason: format!("`{digest}` is not a sha256 digest"),
            });
        }
        let file = format!("{hex_digest}.cwasm");
        let shown = self.dir_path.join(&file);
        let again = format!("compiling {name} again");
        let read_started = std::time::Instant::now();
        let entry = read_entry(&self.dir, &file, limits::MAX_COMPILED_BYTES);
        let read_time = read_started.elapsed();
        match entry {
            Ok(None) => {}
            Err(why) => warn_rejected(&shown, &why, &again),
            Ok(Some(bytes)) => {
                let started = std::time::Instant::now();
                let verified = bytes.len() >= KEY_LEN && {
                    let (mac, compiled) = bytes.split_at(KEY_LEN);
                    let mac = <[u8; KEY_LEN]>::try_from(mac).expect("split at KEY_LEN");
                    blake3::Hash::from_bytes(mac) == self.cwasm_mac(hex_digest, compiled)
                };
                let verify_time = started.elapsed();
                if verified {
                    let loaded = load_trusted_cwasm(engine, &bytes[KEY_LEN..]);
                    tracing::debug!(
                        plugin = name,
                        bytes = bytes.len(),
                        read = ?read_time,
                        verify = ?verify_time,
                        deserialize = ?(started.elapsed() - verify_time),
                        "cache entry loaded"
                    );
                    match loaded {
                        Ok(c) => return Ok(c),
                        Err(e) => warn_rejected(
                            &shown,
                            &format!("wasmtime cannot load it: {e:#}"),
                            &again,
                        ),
                    }
                } else {
                    warn_rejected(
                        &shown,
                        "its authentication code does not match: it was changed, truncated or written with another key",
                        &again,
                    );
                }
            }
        }
        let compiled = compile(engine, name, digest, wasm)?;
        let mac = self.cwasm_mac(hex_digest, &compiled);
        if let Err(e) = write_entry(&self.dir, &file, &[mac.as_bytes(), &compiled]) {
            console::err_line(&format!(
                "warning: cannot store the compiled plugin {name} as {}: {e}; it is compiled again on the next run",
                shown.display()
            ));
        }
        load_trusted_cwasm(engine, &compiled).map_err(|e| CacheError::Compile {
            name: name.to_string(),
            reason: format!("the artifact just compiled does not load: {e:#}"),
        })
    }
}

/// Compile `wasm()` for `engine`, after checking it is still what `digest` names.
fn compile(
    engine: &Engine,
    name: &str,
    digest: &str,
    wasm: impl FnOnce() -> std::io::Result<std::borrow::Cow<'static, [u8]>>,
) -> Result<Vec<u8>, CacheError> {
    let wasm = wasm().map_err(|e| CacheError::Compile {
        name: name.to_string(),
        reason: e.to_string(),
    })?;
    if sha256_digest(&wasm) != digest {
        return Err(CacheError::Compile {
            name: name.to_string(),
            reason: "the file changed while it was being loaded".into(),
        });
    }
    engine
        .precompile_component(&wasm)
        .map_err(|e| CacheError::Compile {
            name: name.to_string(),
            reason: format!("{e:#}"),
        })
}

/// One line on stderr saying which cache file was not used, why, and what happens.
fn warn_rejected(path: &Path, why: &str, instead: &str) {
    console::err_line(&format!(
        "warning: cache file {} is not used: {why}; {instead}",
        path.display()
    ));
}

/// The stat-index entry name of a component file: part of the sha256 of its path.
fn index_name(canonical: &Path) -> String {
    let h = hex::encode(Sha256::digest(canonical.as_os_str().as_encoded_bytes()));
    h[..32].to_string()
}

/// What identifies a version of a file without reading it.
fn stamp(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "{} {} {} {}.{} {}.{}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    )
}

/// Read the whole of entry `name` in `dir`, at most `cap` bytes, without following a
/// symbolic link. `Ok(None)`: there is no such entry. `Err`: why it cannot be used.
fn read_entry(dir: &OwnedFd, name: &str, cap: u64) -> Result<Option<Vec<u8>>, Rejected> {
    let fd = match rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(Errno::LOOP) => return Err("it is a symbolic link".into()),
        Err(e) => return Err(format!("it cannot be opened: {e}")),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| format!("it cannot be examined: {e}"))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err("it is not a regular file".into());
    }
    let size = u64::try_from(st.st_size).unwrap_or(0);
    if size > cap {
        return Err(format!("it is larger than {}", limits::show_size(cap)));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    std::fs::File::from(fd)
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("it cannot be read: {e}"))?;
    if bytes.len() as u64 > cap {
        return Err(format!("it is larger than {}", limits::show_size(cap)));
    }
    Ok(Some(bytes))
}

/// Replace entry `name` in `dir` with `parts`, concatenated: written to a new
/// temporary file (mode 0600, `O_EXCL`), synced, then renamed over the entry, which
/// replaces whatever the entry was (a symbolic link included) without following it.
fn write_entry(dir: &OwnedFd, name: &str, parts: &[&[u8]]) -> std::io::Result<()> {
    let (fd, tmp) = create_exclusive(dir, temporary_name(name))?;
    let written = {
        let mut f = std::fs::File::from(fd);
        parts
            .iter()
            .try_for_each(|p| f.write_all(p))
            .and_then(|()| f.sync_all())
    };
    let result = written.and_then(|()| {
        rustix::fs::renameat(dir.as_fd(), &tmp, dir.as_fd(), name).map_err(Into::into)
    });
    if result.is_err() {
        let _ = rustix::fs::unlinkat(dir, &tmp, AtFlags::empty());
    }
    result
}

/// The wasmtime version compiled into this runner.
fn wasmtime_version() -> &'static str {
    // Bumping the wasmtime dependency changes the engine hash too; the version in the
    // path only keeps old entries easy to find and delete.
    "48"
}

/// Turn compiled bytes that this runner produced back into a component.
fn load_trusted_cwasm(engine: &Engine, compiled: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` trusts its input to be wasmtime's own output
    // for this engine. Its callers pass only (a) bytes `precompile_component` just
    // returned in this process, or (b) bytes read whole, through a handle to the
    // runner's private cache folder (owned by this user, not writable by others,
    // reached without following symbolic links), whose keyed BLAKE3 MAC verified
    // against `<root>/key` for this engine and this component digest. Only this
    // runner holds the key and writes MACs, and only over its own
    // `precompile_component` output, so a verified entry is bytes this runner wrote;
    // a file someone else placed or changed fails the MAC and never gets here.
    // wasmtime copies the bytes into its own memory before using them, so nothing
    // can change them after the check.
    unsafe { Component::deserialize(engine, compiled) }
}
