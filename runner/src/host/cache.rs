//! The on-disk cache of compiled components.
//!
//! Compiling a component with Cranelift takes from tens of milliseconds (a small Rust
//! plugin) to many seconds (a Python one); loading the compiled artifact takes about a
//! millisecond because it is memory-mapped. Entries live at
//! `<cache>/wasmtime-<version>/<engine-hash>/<sha256-of-wasm>.cwasm`, so a new wasmtime
//! release or a changed engine setting never loads a stale artifact.
//!
//! The cache directory is created with mode 0700 and written only by the runner, with
//! write-to-temporary-then-rename. That is the trust boundary for the one `unsafe`
//! call in the runner: [`load_trusted_cwasm`].

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Precompiled};

/// Problems with the cache itself; a broken cache entry is recompiled, never trusted.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot create the component cache at {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin {name} is not a valid WebAssembly component: {reason}")]
    Compile { name: String, reason: String },
    #[error("cannot write to the component cache at {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where compiled components are kept, for one engine.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

/// The default cache root: `$SLUICE_CACHE_DIR`, else `$XDG_CACHE_HOME/sluice`, else
/// `~/.cache/sluice`, else a folder under the system's temporary directory.
pub fn default_cache_root() -> PathBuf {
    if let Some(d) = std::env::var_os("SLUICE_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("sluice");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".cache").join("sluice");
    }
    std::env::temp_dir().join("sluice-cache")
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

impl ComponentCache {
    /// The cache for `engine` under `root`, created if missing.
    pub fn open(root: &Path, engine: &Engine) -> Result<ComponentCache, CacheError> {
        let mut hasher = Sha256Hasher(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        let engine_hash = hex::encode(&hasher.0.finalize()[..12]);
        let dir = root
            .join(format!("wasmtime-{}", wasmtime_version()))
            .join(engine_hash);
        create_private_dir(&dir).map_err(|source| CacheError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        Ok(ComponentCache { dir })
    }

    /// The folder holding this engine's entries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `sha256:<hex>` of a component file. The digest is remembered against the file's
    /// device, inode, size, modification and change times (as git's index does), so an
    /// unchanged file is not read again; any change to the file changes its ctime.
    pub fn file_digest(&self, path: &Path) -> std::io::Result<String> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path)?;
        let stamp = format!(
            "{} {} {} {}.{} {}.{}",
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec()
        );
        let canonical = std::fs::canonicalize(path)?;
        let key = hex::encode(Sha256::digest(canonical.as_os_str().as_encoded_bytes()));
        let index = self.dir.join("index").join(&key[..32]);
        if let Ok(entry) = std::fs::read_to_string(&index) {
            if let Some(digest) = entry
                .strip_prefix(&stamp)
                .and_then(|rest| rest.strip_prefix(' '))
            {
                return Ok(digest.trim().to_string());
            }
        }
        let digest = sha256_digest(&std::fs::read(path)?);
        if let Some(dir) = index.parent() {
            let _ = create_private_dir(dir)
                .and_then(|()| write_atomically(&index, format!("{stamp} {digest}\n").as_bytes()));
        }
        Ok(digest)
    }

    /// Load the component whose digest is `digest` (`sha256:<hex>`), compiling `wasm()`
    /// and storing the result on a miss. `name` is only used in error messages.
    pub fn load(
        &self,
        engine: &Engine,
        name: &str,
        digest: &str,
        wasm: impl FnOnce() -> std::io::Result<std::borrow::Cow<'static, [u8]>>,
    ) -> Result<Component, CacheError> {
        let hex_digest = digest.strip_prefix("sha256:").unwrap_or(digest);
        let path = self.dir.join(format!("{hex_digest}.cwasm"));
        if matches!(
            Engine::detect_precompiled_file(&path),
            Ok(Some(Precompiled::Component))
        ) {
            match load_trusted_cwasm(engine, &path) {
                Ok(c) => return Ok(c),
                Err(e) => tracing::warn!(
                    "recompiling {name}: cached artifact {} unusable: {e}",
                    path.display()
                ),
            }
        }
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
        let compiled = engine
            .precompile_component(&wasm)
            .map_err(|e| CacheError::Compile {
                name: name.to_string(),
                reason: format!("{e:#}"),
            })?;
        write_atomically(&path, &compiled).map_err(|source| CacheError::Write {
            path: path.clone(),
            source,
        })?;
        load_trusted_cwasm(engine, &path).map_err(|e| CacheError::Compile {
            name: name.to_string(),
            reason: format!("the artifact just compiled does not load: {e:#}"),
        })
    }
}

/// The wasmtime version compiled into this runner.
fn wasmtime_version() -> &'static str {
    // Bumping the wasmtime dependency changes the engine hash too; the version in the
    // path only keeps old entries easy to find and delete.
    "48"
}

/// Load a compiled component that this runner wrote into its private cache.
fn load_trusted_cwasm(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize_file` trusts its input to be wasmtime's own
    // output. Only files in the runner's 0700 cache directory reach this point; the
    // runner wrote them itself (temporary file + rename) from `precompile_component`,
    // under a name that is the sha256 of the source, for this engine's compatibility
    // hash. Plugin authors and the network never supply `.cwasm` files.
    unsafe { Component::deserialize_file(engine, path) }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
