//! Loading plugins: from the built-in set or a `.wasm` file, through the compiled
//! component cache (or compiled in memory when there is none), to an `InstancePre`
//! that every step of that plugin shares, plus the plugin's `describe()` answer and
//! its compiled config schema.
//!
//! A component file is opened once, without blocking (a FIFO cannot hang the
//! runner), must be a regular file of at most [`limits::MAX_COMPONENT_BYTES`], and is
//! read only through that handle.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

use crate::builtins;
use crate::config::PluginRef;
use crate::host::bindings::{StepPre, types};
use crate::host::cache::{CacheError, CacheRoot, ComponentCache, sha256_digest};
use crate::host::capacity::{InstanceNeeds, InstanceSlots};
use crate::host::engine::{
    EngineProfile, MAX_MEMORIES_PER_COMPONENT, build_engine, spawn_epoch_ticker,
};
use crate::host::step::{StepFailure, StepState, describe};
use crate::host::worlds::World;
use crate::limits;

/// Why a plugin cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("unknown plugin `builtin:{name}`; the built-in plugins are: {available}")]
    UnknownBuiltin { name: String, available: String },
    #[error("cannot read plugin {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin {} is {kind}, not a regular file; `uses` must name a .wasm component file", path.display())]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("plugin {} is {size} bytes, larger than the {} a component may be", path.display(), limits::show_size(limits::MAX_COMPONENT_BYTES))]
    TooLarge { path: PathBuf, size: u64 },
    #[error("cannot load plugin {name}: {reason}")]
    Internal { name: String, reason: String },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(
        "plugin {name} does not fit the sluice:plugin@0.1 `step` world (0.1.0 to 0.1.7): {reason}"
    )]
    Incompatible { name: String, reason: String },
    /// A component of the other world: a monitor used as a step, or the reverse.
    #[error("plugin {name} is {is}, not what is asked for here; {fix}")]
    WrongWorld {
        name: String,
        is: &'static str,
        fix: &'static str,
    },
    #[error("plugin {name} failed in describe(): {failure}")]
    Describe { name: String, failure: StepFailure },
    #[error("plugin {name} returned a config schema that is not valid JSON Schema: {reason}")]
    BadSchema { name: String, reason: String },
}

/// Why the plugin host could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot start the WebAssembly engine: {0}")]
    Engine(String),
    /// The cache folders under the root are unusable (a configuration problem).
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// A component file opened for loading: opened once with `O_NONBLOCK` (so a FIFO
/// never blocks), checked through the handle to be a regular file within
/// [`limits::MAX_COMPONENT_BYTES`], and read only through that handle.
struct ComponentFile {
    path: PathBuf,
    file: std::fs::File,
    meta: std::fs::Metadata,
}

impl ComponentFile {
    fn open(path: &Path) -> Result<ComponentFile, PluginError> {
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        let unreadable = |source| PluginError::Unreadable {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(unreadable)?;
        let meta = file.metadata().map_err(unreadable)?;
        let t = meta.file_type();
        let kind = if t.is_file() {
            None
        } else if t.is_dir() {
            Some("a folder")
        } else if t.is_fifo() {
            Some("a named pipe (FIFO)")
        } else if t.is_char_device() {
            Some("a character device")
        } else if t.is_block_device() {
            Some("a block device")
        } else if t.is_socket() {
            Some("a socket")
        } else {
            Some("not a file")
        };
        if let Some(kind) = kind {
            return Err(PluginError::NotAFile {
                path: path.to_path_buf(),
                kind,
            });
        }
        if meta.len() > limits::MAX_COMPONENT_BYTES {
            return Err(PluginError::TooLarge {
                path: path.to_path_buf(),
                size: meta.len(),
            });
        }
        Ok(ComponentFile {
            path: path.to_path_buf(),
            file,
            meta,
        })
    }

    /// The whole file, from the start, at most the cap.
    fn read(&mut self) -> std::io::Result<Vec<u8>> {
        self.file.rewind()?;
        let mut bytes = Vec::with_capacity(self.meta.len() as usize);
        (&mut self.file)
            .take(limits::MAX_COMPONENT_BYTES + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limits::MAX_COMPONENT_BYTES {
            return Err(std::io::Error::other(format!(
                "it grew past the {} a component may be",
                limits::show_size(limits::MAX_COMPONENT_BYTES)
            )));
        }
        Ok(bytes)
    }
}

/// Reads a component's bytes when they are needed for compiling.
type WasmSource = Box<dyn FnOnce() -> std::io::Result<Cow<'static, [u8]>> + Send>;

/// Name of the threads that hash and compile plugins.
const LOAD_THREAD: &str = "sluice-load";

/// Run `job` on a thread of its own and wait for it without blocking the async
/// workers. Unlike tokio's `spawn_blocking`, a thread the OS refuses to start is an
/// error, not a panic or a task that waits for a thread forever. A panic in `job`
/// (wasmtime's compiler panics when the OS refuses the threads of its parallel
/// compilation) becomes an error carrying the panic's message, not printed as a panic.
async fn on_own_thread<T: Send + 'static>(
    name: &str,
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PluginError> {
    static QUIET_LOAD_PANICS: std::sync::Once = std::sync::Once::new();
    QUIET_LOAD_PANICS.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() != Some(LOAD_THREAD) {
                previous(info);
            }
        }));
    });
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)));
    };
    // Kept outside the closure handed to the OS, so that a refused thread can be
    // asked for again.
    let slot = Arc::new(std::sync::Mutex::new(Some(job)));
    // A thread that just ended (the previous plugin's) may still count against the
    // user's limit for a moment; a refusal is retried for up to half a second.
    let mut tries = 0;
    loop {
        let mine = slot.clone();
        let spawned = std::thread::Builder::new()
            .name(LOAD_THREAD.into())
            .spawn(move || {
                let job = mine.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(job) = job {
                    job();
                }
            });
        match spawned {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && tries < 20 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Err(e) => {
                return Err(PluginError::Internal {
                    name: name.to_string(),
                    reason: format!("cannot start a thread to compile it: {e}"),
                });
            }
        }
    }
    let internal = |reason: String| PluginError::Internal {
        name: name.to_string(),
        reason,
    };
    match rx.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(panic)) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(internal(format!("compiling it failed: {what}")))
        }
        Err(_) => Err(internal(
            "the compile thread ended without an answer".into(),
        )),
    }
}

/// A plugin ready to run steps.
pub struct LoadedPlugin {
    reference: PluginRef,
    digest: String,
    engine: Engine,
    pre: StepPre<StepState>,
    /// The engine's instance slots, and what one instance of this plugin takes.
    slots: Arc<InstanceSlots>,
    needs: InstanceNeeds,
    descriptor: types::Descriptor,
    schema: serde_json::Value,
    validator: jsonschema::Validator,
    load_time: Duration,
}

impl LoadedPlugin {
    /// Where it came from.
    pub fn reference(&self) -> &PluginRef {
        &self.reference
    }
    /// `sha256:<hex>` of the component bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }
    /// What `describe()` returned.
    pub fn descriptor(&self) -> &types::Descriptor {
        &self.descriptor
    }
    /// The config schema, parsed.
    pub fn schema(&self) -> &serde_json::Value {
        &self.schema
    }
    /// The config schema, compiled.
    pub fn validator(&self) -> &jsonschema::Validator {
        &self.validator
    }
    /// How long loading (cache lookup or compile, instantiate-pre, describe) took.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }
    pub(crate) fn pre(&self) -> &StepPre<StepState> {
        &self.pre
    }
    /// The engine's instance slots, which every instance of this plugin takes one of.
    pub(crate) fn slots(&self) -> &InstanceSlots {
        &self.slots
    }
    /// What one instance of this plugin takes of the engine's slots.
    pub fn needs(&self) -> InstanceNeeds {
        self.needs
    }
}

/// The engine, the linker with every import the contract offers, the compiled-component
/// cache, and the plugins loaded so far.
pub struct PluginHost {
    engine: Engine,
    /// What the engine holds at once, handed out to every instance.
    slots: Arc<InstanceSlots>,
    linker: Linker<StepState>,
    /// `None`: no disk cache; plugins are compiled in memory on every run.
    cache: Option<ComponentCache>,
    loaded: Mutex<HashMap<PluginRef, Arc<LoadedPlugin>>>,
    /// The monitors (world `monitor`) loaded so far.
    monitors: Mutex<HashMap<PluginRef, Arc<crate::host::monitor::LoadedMonitor>>>,
    /// The organisation checks (world `policy-check`) loaded so far.
    checks: crate::host::policy_check::LoadedChecks,
}

impl PluginHost {
    /// Start the engine (and its epoch ticker) and open this engine's part of the
    /// cache under `cache_root` (opened earlier with [`CacheRoot::open`]); with `None`
    /// plugins are compiled in memory and nothing is written to disk.
    pub fn new(
        profile: EngineProfile,
        cache_root: Option<CacheRoot>,
    ) -> Result<PluginHost, EngineError> {
        let engine_err = |e: wasmtime::Error| EngineError::Engine(format!("{e:#}"));
        let (engine, capacity) = build_engine(profile).map_err(engine_err)?;
        tracing::debug!(%capacity, "engine built");
        spawn_epoch_ticker(&engine).map_err(|e| {
            EngineError::Engine(format!("cannot start the epoch ticker thread: {e}"))
        })?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_err)?;
        // Our own `outgoing-handler`: it frees the request options wasmtime's keeps.
        crate::capabilities::http::add_to_linker(&mut linker).map_err(engine_err)?;
        // Our own interfaces one by one: the world's `add_to_linker` would also add the
        // `wasi:*` ones, already linked above by wasmtime's crates.
        {
            use crate::host::bindings::sluice::plugin::{
                deploy_targets, grants, load_generator, log, process, secrets, types,
            };
            types::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s)
                .map_err(engine_err)?;
            log::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s)
                .map_err(engine_err)?;
            process::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s)
                .map_err(engine_err)?;
            secrets::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s)
                .map_err(engine_err)?;
            deploy_targets::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s)
                .map_err(engine_err)?;
            grants::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s)
                .map_err(engine_err)?;
            // The load generator owns its state: the store lends it that part only.
            load_generator::add_to_linker::<
                StepState,
                HasSelf<crate::capabilities::load::LoadAccess>,
            >(&mut linker, |s| &mut s.load)
            .map_err(engine_err)?;
        }
        let cache = cache_root
            .map(|root| ComponentCache::open(&root, &engine))
            .transpose()?;
        Ok(PluginHost {
            engine,
            slots: Arc::new(InstanceSlots::new(capacity)),
            linker,
            cache,
            loaded: Mutex::new(HashMap::new()),
            monitors: Mutex::new(HashMap::new()),
            checks: Mutex::new(HashMap::new()),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine's instance slots: what it holds at once and how many are free.
    pub fn slots(&self) -> &InstanceSlots {
        &self.slots
    }

    /// Folder of this engine's compiled components, when there is a disk cache.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache.as_ref().map(ComponentCache::dir)
    }

    /// The compiled component of `reference` (built-in or file, through the cache),
    /// its digest, and how long hashing took. Shared by steps and monitors.
    pub(crate) async fn component(
        &self,
        reference: &PluginRef,
    ) -> Result<(String, wasmtime::component::Component, Duration), PluginError> {
        let started = std::time::Instant::now();
        let name = reference.to_string();
        let (engine, cache, job_name, job_ref) = (
            self.engine.clone(),
            self.cache.clone(),
            name.clone(),
            reference.clone(),
        );
        // Hashing and compiling are CPU-bound and may take seconds; keep them off the
        // async workers.
        on_own_thread(&name, move || {
            let (digest, wasm): (String, WasmSource) = match &job_ref {
                PluginRef::Builtin(n) => {
                    let bytes = builtins::find(n).ok_or_else(|| PluginError::UnknownBuiltin {
                        name: n.clone(),
                        available: builtins::names().join(", "),
                    })?;
                    (
                        sha256_digest(bytes),
                        Box::new(move || Ok(Cow::Borrowed(bytes))),
                    )
                }
                PluginRef::File(path) => file_digest(cache.as_ref(), path)?,
                PluginRef::Oci(r) => {
                    // `registry::resolve` pulled it and wrote its component's digest;
                    // the cached blob must still hash to that digest.
                    let path = r
                        .component
                        .as_deref()
                        .and_then(crate::registry::component_path)
                        .ok_or_else(|| PluginError::Unreadable {
                            // Reported at its `uses` by `registry::resolve` already.
                            path: PathBuf::from(&job_name),
                            source: std::io::Error::other("it was not pulled from its registry"),
                        })?;
                    let (digest, wasm) = file_digest(None, &path)?;
                    if Some(&digest) != r.component.as_ref() {
                        return Err(PluginError::Internal {
                            name: job_name.clone(),
                            reason: format!(
                                "the cached blob {} hashes to {digest}; delete it and pull again",
                                path.display()
                            ),
                        });
                    }
                    (digest, wasm)
                }
            };
            let digest_time = started.elapsed();
            let component = match &cache {
                Some(cache) => cache.load(&engine, &job_name, &digest, wasm)?,
                None => compile_in_memory(&engine, &job_name, wasm)?,
            };
            Ok::<_, PluginError>((digest, component, digest_time))
        })
        .await?
    }

    /// The linker every instance is made with (steps and monitors).
    pub(crate) fn linker(&self) -> &Linker<StepState> {
        &self.linker
    }

    /// The engine's instance slots, shared.
    pub(crate) fn shared_slots(&self) -> &Arc<InstanceSlots> {
        &self.slots
    }

    /// The monitors loaded so far (see [`crate::host::monitor`]).
    pub(crate) fn loaded_monitors(
        &self,
    ) -> &Mutex<HashMap<PluginRef, Arc<crate::host::monitor::LoadedMonitor>>> {
        &self.monitors
    }

    /// The organisation checks loaded so far (see [`crate::host::policy_check`]).
    pub(crate) fn loaded_checks(&self) -> &crate::host::policy_check::LoadedChecks {
        &self.checks
    }

    /// Load a plugin (once per process; later calls share it).
    pub async fn load(&self, reference: &PluginRef) -> Result<Arc<LoadedPlugin>, PluginError> {
        let mut loaded = self.loaded.lock().await;
        if let Some(p) = loaded.get(reference) {
            return Ok(p.clone());
        }
        let started = std::time::Instant::now();
        let name = reference.to_string();
        let (digest, component, digest_time) = self.component(reference).await?;
        let compile_time = started.elapsed();
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(StepPre::new)
            .map_err(|e| {
                if let Some(refusal) = World::of(&self.engine, &component)
                    .and_then(|found| crate::host::worlds::wrong_world(&name, found, World::Step))
                {
                    refusal
                } else {
                    PluginError::Incompatible {
                        name: name.clone(),
                        reason: crate::host::imports::refusal(&self.engine, &component)
                            .unwrap_or_else(|| format!("{e:#}")),
                    }
                }
            })?;
        let needs = InstanceNeeds::of(&component, MAX_MEMORIES_PER_COMPONENT);
        let descriptor = describe(&pre, &self.engine, &self.slots, needs)
            .await
            .map_err(|failure| PluginError::Describe {
                name: name.clone(),
                failure,
            })?;
        let schema: serde_json::Value =
            serde_json::from_str(&descriptor.config_schema).map_err(|e| {
                PluginError::BadSchema {
                    name: name.clone(),
                    reason: e.to_string(),
                }
            })?;
        let validator = jsonschema::validator_for(&schema).map_err(|e| PluginError::BadSchema {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        tracing::debug!(
            plugin = %name,
            digest = ?digest_time,
            cache_or_compile = ?(compile_time - digest_time),
            instantiate_pre_and_describe = ?(started.elapsed() - compile_time),
            "plugin loaded"
        );
        let plugin = Arc::new(LoadedPlugin {
            reference: reference.clone(),
            digest,
            engine: self.engine.clone(),
            pre,
            slots: self.slots.clone(),
            needs,
            descriptor,
            schema,
            validator,
            load_time: started.elapsed(),
        });
        loaded.insert(reference.clone(), plugin.clone());
        Ok(plugin)
    }
}

/// The digest of a component file (from the cache's stat index when the file is
/// unchanged) and a way to read its bytes for compiling.
fn file_digest(
    cache: Option<&ComponentCache>,
    path: &Path,
) -> Result<(String, WasmSource), PluginError> {
    let mut file = ComponentFile::open(path)?;
    let unreadable = |source| PluginError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let canonical = std::fs::canonicalize(path).map_err(unreadable)?;
    if let Some(digest) = cache.and_then(|c| c.index_lookup(&canonical, &file.meta)) {
        return Ok((digest, Box::new(move || file.read().map(Cow::Owned))));
    }
    let bytes = file.read().map_err(unreadable)?;
    let digest = sha256_digest(&bytes);
    if let Some(c) = cache {
        c.index_store(&canonical, &file.meta, &digest);
    }
    tracing::debug!(path = %file.path.display(), %digest, "component file hashed");
    Ok((digest, Box::new(move || Ok(Cow::Owned(bytes)))))
}

/// Compile a component without a disk cache (nothing unsafe: no deserialisation).
fn compile_in_memory(
    engine: &Engine,
    name: &str,
    wasm: WasmSource,
) -> Result<wasmtime::component::Component, PluginError> {
    let wasm = wasm().map_err(|e| CacheError::Compile {
        name: name.to_string(),
        reason: e.to_string(),
    })?;
    wasmtime::component::Component::new(engine, &wasm).map_err(|e| {
        PluginError::Cache(CacheError::Compile {
            name: name.to_string(),
            reason: format!("{e:#}"),
        })
    })
}
