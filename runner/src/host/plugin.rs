//! Loading plugins: from the built-in set or a `.wasm` file, through the compiled
//! component cache, to an `InstancePre` that every step of that plugin shares, plus
//! the plugin's `describe()` answer and its compiled config schema.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

use crate::builtins;
use crate::config::PluginRef;
use crate::host::bindings::{Step as StepWorld, StepPre, types};
use crate::host::cache::{CacheError, ComponentCache, sha256_digest};
use crate::host::engine::{EngineProfile, build_engine, spawn_epoch_ticker};
use crate::host::step::{StepFailure, StepState, describe};

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
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("plugin {name} does not fit the sluice:plugin@0.1.0 `step` world: {reason}")]
    Incompatible { name: String, reason: String },
    #[error("plugin {name} failed in describe(): {failure}")]
    Describe { name: String, failure: StepFailure },
    #[error("plugin {name} returned a config schema that is not valid JSON Schema: {reason}")]
    BadSchema { name: String, reason: String },
}

/// The host environment a plugin failed to start in.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the WebAssembly engine: {0}")]
pub struct EngineError(String);

/// A plugin ready to run steps.
pub struct LoadedPlugin {
    reference: PluginRef,
    digest: String,
    engine: Engine,
    pre: StepPre<StepState>,
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
}

/// The engine, the linker with every import the contract offers, the compiled-component
/// cache, and the plugins loaded so far.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<StepState>,
    cache: ComponentCache,
    loaded: Mutex<HashMap<PluginRef, Arc<LoadedPlugin>>>,
}

impl PluginHost {
    /// Start the engine (and its epoch ticker) and open the cache under `cache_root`.
    pub fn new(profile: EngineProfile, cache_root: &Path) -> Result<PluginHost, EngineError> {
        let engine = build_engine(profile).map_err(|e| EngineError(format!("{e:#}")))?;
        spawn_epoch_ticker(&engine);
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| EngineError(format!("{e:#}")))?;
        StepWorld::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s)
            .map_err(|e| EngineError(format!("{e:#}")))?;
        let cache =
            ComponentCache::open(cache_root, &engine).map_err(|e| EngineError(e.to_string()))?;
        Ok(PluginHost {
            engine,
            linker,
            cache,
            loaded: Mutex::new(HashMap::new()),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Folder of the compiled-component cache.
    pub fn cache_dir(&self) -> &Path {
        self.cache.dir()
    }

    /// Load a plugin (once per process; later calls share it).
    pub async fn load(&self, reference: &PluginRef) -> Result<Arc<LoadedPlugin>, PluginError> {
        let mut loaded = self.loaded.lock().await;
        if let Some(p) = loaded.get(reference) {
            return Ok(p.clone());
        }
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
        let (digest, component, digest_time) = tokio::task::spawn_blocking(move || {
            let (digest, wasm): (
                String,
                Box<dyn FnOnce() -> std::io::Result<Cow<'static, [u8]>> + Send>,
            ) = match &job_ref {
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
                PluginRef::File(path) => {
                    let unreadable = |source| PluginError::Unreadable {
                        path: path.clone(),
                        source,
                    };
                    let digest = cache.file_digest(path).map_err(unreadable)?;
                    let path = path.clone();
                    (
                        digest,
                        Box::new(move || std::fs::read(&path).map(Cow::Owned)),
                    )
                }
            };
            let digest_time = started.elapsed();
            let component = cache.load(&engine, &job_name, &digest, wasm)?;
            Ok::<_, PluginError>((digest, component, digest_time))
        })
        .await
        .expect("the compile task does not panic")?;
        let compile_time = started.elapsed();
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(StepPre::new)
            .map_err(|e| PluginError::Incompatible {
                name: name.clone(),
                reason: format!("{e:#}"),
            })?;
        let descriptor =
            describe(&pre, &self.engine)
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
            descriptor,
            schema,
            validator,
            load_time: started.elapsed(),
        });
        loaded.insert(reference.clone(), plugin.clone());
        Ok(plugin)
    }
}
