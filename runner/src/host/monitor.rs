//! The host side of the `monitor` world: loading a monitor component (built-in or
//! file, through the same cache as steps), checking that it is one (a step component
//! used as a monitor, or the reverse, is refused with an error naming the plugin),
//! and [`MonitorInstance`], the ONE instance a monitor keeps between its checks.
//!
//! A monitor's store holds the same state type as a step's ([`StepState`]), made
//! without the `process` capability; it gets the monitor's `read` grant as preopens,
//! its secrets, and outgoing HTTP under its `net` grant. Raw sockets are not given:
//! a monitor looks at a service through HTTP. Each check runs under the monitor's
//! timeout (the store's deadline is moved for every check); an instance that traps or
//! times out is dropped and a fresh one made for the next check.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::Store;

use crate::capabilities::egress::NetAccess;
use crate::capabilities::files::FileAccess;
use crate::capabilities::http::{HttpClient, StepHttp};
use crate::capabilities::logs::{Source, StepLog};
use crate::capabilities::secrets::SecretAccess;
use crate::config::{Grants, PluginRef};
use crate::host::bindings::monitor::{Monitor, MonitorPre};
use crate::host::bindings::types;
use crate::host::capacity::{InstanceNeeds, InstanceSlots};
use crate::host::engine::MAX_MEMORIES_PER_COMPONENT;
use crate::host::plugin::{PluginError, PluginHost};
use crate::host::step::{AttemptLimits, StepFailure, StepState, classify, new_store};
use crate::host::worlds::{self, World};

/// The interface a monitor exports.
const HEALTH_CHECK: &str = "sluice:plugin/health-check@0.1.7";

/// Memory a monitor's instance may use, all linear memories together.
pub const MONITOR_MEMORY: u64 = 256 << 20;
/// Time allowed past a check's deadline for a blocked host call to end.
const DEADLINE_GRACE: Duration = Duration::from_secs(5);
/// Most bytes of log a monitor keeps (its tail explains a failed check).
const MONITOR_LOG_BYTES: u64 = 64 << 10;

/// A monitor ready to check.
pub struct LoadedMonitor {
    reference: PluginRef,
    digest: String,
    engine: wasmtime::Engine,
    pre: MonitorPre<StepState>,
    slots: Arc<InstanceSlots>,
    needs: InstanceNeeds,
    descriptor: types::Descriptor,
    schema: serde_json::Value,
    validator: jsonschema::Validator,
}

impl LoadedMonitor {
    pub fn reference(&self) -> &PluginRef {
        &self.reference
    }
    /// `sha256:<hex>` of the component.
    pub fn digest(&self) -> &str {
        &self.digest
    }
    pub fn descriptor(&self) -> &types::Descriptor {
        &self.descriptor
    }
    pub fn schema(&self) -> &serde_json::Value {
        &self.schema
    }
    pub fn validator(&self) -> &jsonschema::Validator {
        &self.validator
    }
    /// The engine's instance slots; a monitor holds one for as long as it runs.
    pub fn slots(&self) -> &InstanceSlots {
        &self.slots
    }
    pub fn needs(&self) -> InstanceNeeds {
        self.needs
    }
}

/// Load a monitor (once per process; later calls share it).
pub async fn load_monitor(
    host: &PluginHost,
    reference: &PluginRef,
) -> Result<Arc<LoadedMonitor>, PluginError> {
    let mut loaded = host.loaded_monitors().lock().await;
    if let Some(m) = loaded.get(reference) {
        return Ok(m.clone());
    }
    let name = reference.to_string();
    let (digest, component, _) = host.component(reference).await?;
    let engine = host.engine().clone();
    if !World::Monitor.exported_by(&engine, &component) {
        if let Some(refusal) = World::of(&engine, &component)
            .and_then(|found| worlds::wrong_world(&name, found, World::Monitor))
        {
            return Err(refusal);
        }
        return Err(PluginError::Incompatible {
            name,
            reason: format!("it does not export `{HEALTH_CHECK}`"),
        });
    }
    let pre = host
        .linker()
        .instantiate_pre(&component)
        .and_then(MonitorPre::new)
        .map_err(|e| PluginError::Incompatible {
            name: name.clone(),
            reason: crate::host::imports::refusal(&engine, &component)
                .unwrap_or_else(|| format!("{e:#}")),
        })?;
    let needs = InstanceNeeds::of(&component, MAX_MEMORIES_PER_COMPONENT);
    let slots = host.shared_slots().clone();
    let descriptor = describe(&engine, &pre, &slots, needs)
        .await
        .map_err(|failure| PluginError::Describe {
            name: name.clone(),
            failure,
        })?;
    let schema: serde_json::Value =
        serde_json::from_str(&descriptor.config_schema).map_err(|e| PluginError::BadSchema {
            name: name.clone(),
            reason: e.to_string(),
        })?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| PluginError::BadSchema {
        name: name.clone(),
        reason: e.to_string(),
    })?;
    let monitor = Arc::new(LoadedMonitor {
        reference: reference.clone(),
        digest,
        engine,
        pre,
        slots,
        needs,
        descriptor,
        schema,
        validator,
    });
    loaded.insert(reference.clone(), monitor.clone());
    Ok(monitor)
}

/// `describe` on a fresh instance with no capabilities.
async fn describe(
    engine: &wasmtime::Engine,
    pre: &MonitorPre<StepState>,
    slots: &InstanceSlots,
    needs: InstanceNeeds,
) -> Result<types::Descriptor, StepFailure> {
    let _slot = slots.acquire(needs, |_| {}).await;
    let limits = AttemptLimits {
        timeout: Duration::from_secs(10),
        memory: MONITOR_MEMORY,
    };
    let deadline = Instant::now() + limits.timeout;
    let log = StepLog::in_memory(MONITOR_LOG_BYTES, Default::default());
    let mut b = wasmtime_wasi::WasiCtxBuilder::new();
    b.stdout(log.stream(Source::Stdout));
    b.stderr(log.stream(Source::Stderr));
    let mut store = new_store(engine, b.build(), log, None, limits, deadline);
    let call = async {
        let instance = pre.instantiate_async(&mut store).await?;
        instance
            .sluice_plugin_health_check()
            .call_describe(&mut store)
            .await
    };
    match tokio::time::timeout(limits.timeout + DEADLINE_GRACE, call).await {
        Err(_) => Err(StepFailure::Timeout(limits.timeout)),
        Ok(Err(e)) => Err(classify(e, &store, limits)),
        Ok(Ok(d)) => Ok(d),
    }
}

/// What a monitor's instance is given: its grants, resolved once.
pub struct MonitorGrants {
    files: FileAccess,
    http: Arc<HttpClient>,
    secrets: Arc<SecretAccess>,
}

impl MonitorGrants {
    /// Resolve a monitor's `read`, `net` and `secrets` grants (`secrets` already
    /// resolved against the run's values).
    pub fn resolve(
        grants: &Grants,
        secrets: Arc<SecretAccess>,
        log: &StepLog,
    ) -> Result<MonitorGrants, crate::capabilities::GrantError> {
        Ok(MonitorGrants {
            files: FileAccess::resolve(&grants.read, &[], log)?,
            http: Arc::new(HttpClient::new(Arc::new(NetAccess::resolve(
                &grants.net,
                log,
            )))),
            secrets,
        })
    }
}

/// The one instance of a monitor, kept between its checks.
pub struct MonitorInstance {
    plugin: Arc<LoadedMonitor>,
    grants: MonitorGrants,
    log: StepLog,
    live: Option<(Store<StepState>, Monitor)>,
    /// Checks this instance ran (the next one's `sequence` is this + 1).
    sequence: u64,
}

impl MonitorInstance {
    /// An instance of `plugin` with these grants; made at its first check.
    pub fn new(plugin: Arc<LoadedMonitor>, grants: MonitorGrants, log: StepLog) -> Self {
        MonitorInstance {
            plugin,
            grants,
            log,
            live: None,
            sequence: 0,
        }
    }

    pub fn plugin(&self) -> &Arc<LoadedMonitor> {
        &self.plugin
    }

    /// The last lines the monitor logged.
    pub fn log_tail(&self) -> Vec<String> {
        self.log.tail()
    }

    /// A fresh store and instance (a free function of the parts it needs: a store is
    /// not `Sync`, so `&self` must not be held across an await).
    async fn instantiate(
        plugin: &LoadedMonitor,
        grants: &MonitorGrants,
        log: &StepLog,
        deadline: Instant,
    ) -> Result<(Store<StepState>, Monitor), StepFailure> {
        let limits = AttemptLimits {
            timeout: deadline.saturating_duration_since(Instant::now()),
            memory: MONITOR_MEMORY,
        };
        let mut b = wasmtime_wasi::WasiCtxBuilder::new();
        b.allow_blocking_current_thread(true);
        grants
            .files
            .preopen(&mut b)
            .map_err(|e| StepFailure::Setup(e.to_string()))?;
        b.envs(&grants.secrets.env());
        b.stdout(log.stream(Source::Stdout));
        b.stderr(log.stream(Source::Stderr));
        let mut store = new_store(
            &plugin.engine,
            b.build(),
            log.clone(),
            None,
            limits,
            deadline,
        );
        store.data_mut().grant_monitor(
            grants.secrets.clone(),
            StepHttp::new(Some(grants.http.clone()), log.clone(), deadline),
        );
        let instance = plugin
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| classify(e, &store, limits))?;
        Ok((store, instance))
    }

    /// Run one check under `timeout`. The instance is kept for the next check unless
    /// this one trapped or timed out.
    pub async fn check(
        &mut self,
        mut input: types::CheckInput,
        timeout: Duration,
    ) -> Result<types::CheckResult, StepFailure> {
        let deadline = Instant::now() + timeout;
        let limits = AttemptLimits {
            timeout,
            memory: MONITOR_MEMORY,
        };
        let (mut store, instance) = match self.live.take() {
            Some(live) => live,
            None => {
                self.sequence = 0;
                Self::instantiate(&self.plugin, &self.grants, &self.log, deadline).await?
            }
        };
        self.sequence += 1;
        input.sequence = self.sequence;
        store.data_mut().set_deadline(deadline);
        let call = instance
            .sluice_plugin_health_check()
            .call_check(&mut store, &input);
        let outcome = tokio::time::timeout(
            timeout + DEADLINE_GRACE,
            super::watchdog::watch(deadline, call),
        )
        .await;
        if Instant::now() >= deadline {
            return Err(StepFailure::Timeout(timeout));
        }
        match outcome {
            Err(_elapsed) => Err(StepFailure::Timeout(timeout)),
            Ok(Err(e)) => Err(classify(e, &store, limits)),
            Ok(Ok(result)) => {
                store.data_mut().take_memory_hit();
                self.live = Some((store, instance));
                result.map_err(|e| match e {
                    types::RunError::InvalidConfig(m) => StepFailure::InvalidConfig(m),
                    types::RunError::Denied(m) => StepFailure::Denied(m),
                    types::RunError::Failed(m) => StepFailure::Plugin(m),
                })
            }
        }
    }
}

/// Load the monitor plugins of `monitors` (those with `uses`) and check each one's
/// `with` against its schema. Errors name the monitor and its place in the file.
pub async fn load_all(
    host: &PluginHost,
    source: &crate::config::SourceFile,
    monitors: &[crate::monitors::MonitorSpec],
) -> Result<HashMap<String, Arc<LoadedMonitor>>, Vec<crate::config::ConfigError>> {
    let mut loaded = HashMap::new();
    let mut errors = Vec::new();
    for m in monitors {
        let Some(uses) = &m.uses else { continue };
        match load_monitor(host, uses).await {
            Ok(plugin) => {
                for err in plugin.validator().iter_errors(&m.with) {
                    let at = err.instance_path().to_string();
                    let at = if at.is_empty() {
                        "with".to_string()
                    } else {
                        format!("with{}", at.replace('/', "."))
                    };
                    errors.push(source.error(
                        m.with_offset,
                        format!("monitor `{}` ({uses}): `{at}`: {err}", m.id),
                    ));
                }
                loaded.insert(m.id.clone(), plugin);
            }
            Err(e) => errors.push(source.error(m.uses_offset, format!("monitor `{}`: {e}", m.id))),
        }
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(errors)
    }
}
