//! One attempt of one step: a slot of the engine ([`super::capacity`]), then a fresh
//! [`Store`] from the plugin's cached `InstancePre`, with the step's capabilities and
//! limits, and the classification of everything that can go wrong into a
//! [`StepFailure`] a person can act on. The runner's own capacity is never one of
//! them: an attempt waits for its slot before its timeout starts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::capabilities::deploy::DeployAccess;
use crate::capabilities::exec::ExecAccess;
use crate::capabilities::http::StepHttp;
use crate::capabilities::load::LoadAccess;
use crate::capabilities::logs::{Source, StepLog};
use crate::capabilities::secrets::SecretAccess;
use crate::host::bindings::types;
use crate::host::capacity::{InstanceNeeds, InstanceSlots};
use crate::host::plugin::LoadedPlugin;

/// Most data a single guest-to-host call may make the host allocate.
const HOSTCALL_FUEL: usize = 64 << 20;
/// Most resources (streams, files, sockets...) a step may hold at once.
const MAX_RESOURCES: usize = 100_000;
/// Time allowed past the deadline for a host call (e.g. a program being killed) to end.
const DEADLINE_GRACE: Duration = Duration::from_secs(5);
/// Most table elements and instances a step may create.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;
const MAX_INSTANCES: usize = 1_000;

/// The data of a step's store: its capabilities and limits.
pub struct StepState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: MemoryLimiter,
    pub(crate) log: StepLog,
    /// The `process` capability; absent for `describe`.
    pub(crate) exec: Option<ExecAccess>,
    /// The `secrets` capability (none for `describe`).
    pub(crate) secrets: Arc<SecretAccess>,
    /// The `deploy-targets` capability; absent for `describe` and for steps without a
    /// `targets` grant.
    pub(crate) deploy: Option<Arc<DeployAccess>>,
    /// What the `grants` import answers (nothing for `describe`).
    pub(crate) grants: crate::capabilities::grants::SharedGrants,
    /// `wasi:http` settings and our `send_request` (denies everything for `describe`).
    http_ctx: WasiHttpCtx,
    http: StepHttp,
    /// The `load-generator` import (denies every test for `describe`).
    pub(crate) load: LoadAccess,
    deadline: Instant,
}

impl WasiHttpView for StepState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http_ctx,
            table: &mut self.table,
            hooks: &mut self.http,
        }
    }
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The `types` interface has no functions; its host side is empty.
impl crate::host::bindings::types::Host for StepState {}

/// Caps the total of all linear memories of a step (a component may have several),
/// and remembers that the cap was hit so the failure can say so.
struct MemoryLimiter {
    limit: usize,
    used: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let next = self.used.saturating_sub(current).saturating_add(desired);
        if next > self.limit {
            self.hit = true;
            return Ok(false);
        }
        self.used = next;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_INSTANCES
    }
}

impl StepState {
    /// Move the deadline of the store (and of its outgoing HTTP): a monitor's one
    /// instance serves many checks, each under its own timeout.
    pub(crate) fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
        self.http.set_deadline(deadline);
        self.load.set_deadline(deadline);
    }

    /// Give a monitor's store its capabilities: secrets and outgoing HTTP, never
    /// `process` (a store made without capabilities denies all three).
    pub(crate) fn grant_monitor(&mut self, secrets: Arc<SecretAccess>, http: StepHttp) {
        self.secrets = secrets;
        self.http = http;
    }

    /// Whether the memory limit was hit (and forget it, for the next check).
    pub(crate) fn take_memory_hit(&mut self) -> bool {
        std::mem::take(&mut self.limits.hit)
    }
}

/// Marker error raised from the epoch callback when the deadline passes.
#[derive(Debug, thiserror::Error)]
#[error("step deadline passed")]
struct DeadlinePassed;

/// Why a step attempt did not produce a report.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StepFailure {
    #[error("timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("exceeded its memory limit of {}", bytesize::ByteSize::b(*.0))]
    MemoryLimit(u64),
    /// The guest trapped (a panic, an uncaught exception, `exit`): the text is the
    /// whole summary, `plugin trapped: <the guest's last error line> (<the trap>;
    /// backtrace in the step log)`.
    #[error("{0}")]
    Trap(String),
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    #[error("denied: {0}")]
    Denied(String),
    #[error("{0}")]
    Plugin(String),
    #[error("could not start: {0}")]
    Setup(String),
    /// A native program of the step ran into the step's limits.
    #[error("{0}")]
    Limits(String),
}

impl StepFailure {
    /// Whether retrying could help (it cannot for bad configuration or denials).
    pub fn retryable(&self) -> bool {
        !matches!(
            self,
            StepFailure::InvalidConfig(_) | StepFailure::Denied(_) | StepFailure::Setup(_)
        )
    }
}

/// The capabilities of one attempt that are host functions (WASI is set up apart).
pub struct AttemptCapabilities {
    pub exec: ExecAccess,
    pub secrets: Arc<SecretAccess>,
    pub http: StepHttp,
    pub load: LoadAccess,
    pub deploy: Option<Arc<DeployAccess>>,
    pub grants: crate::capabilities::grants::SharedGrants,
}

/// Limits of one attempt.
#[derive(Debug, Clone, Copy)]
pub struct AttemptLimits {
    pub timeout: Duration,
    pub memory: u64,
}

pub(crate) fn new_store(
    engine: &wasmtime::Engine,
    wasi: WasiCtx,
    log: StepLog,
    caps: Option<AttemptCapabilities>,
    limits: AttemptLimits,
    deadline: Instant,
) -> Store<StepState> {
    let (exec, secrets, http, load, deploy, grants) = match caps {
        Some(c) => (Some(c.exec), c.secrets, c.http, c.load, c.deploy, c.grants),
        None => (
            None,
            Arc::new(SecretAccess::default()),
            StepHttp::new(None, log.clone(), deadline),
            LoadAccess::new(None, log.clone(), deadline),
            None,
            Default::default(),
        ),
    };
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_RESOURCES);
    let state = StepState {
        wasi,
        table,
        limits: MemoryLimiter {
            limit: usize::try_from(limits.memory).unwrap_or(usize::MAX),
            used: 0,
            hit: false,
        },
        log,
        exec,
        secrets,
        deploy,
        grants,
        http_ctx: WasiHttpCtx::new(),
        http,
        load,
        deadline,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limits);
    store.set_hostcall_fuel(HOSTCALL_FUEL);
    store.set_epoch_deadline(1);
    // Yield to other steps every tick; stop once the wall-clock deadline has passed.
    store.epoch_deadline_callback(|cx| {
        if Instant::now() >= cx.data().deadline {
            return Err(wasmtime::Error::new(DeadlinePassed));
        }
        Ok(UpdateDeadline::Yield(1))
    });
    store
}

/// Turn a wasmtime error from a call into a failure, using what the store saw.
pub(crate) fn classify(
    err: wasmtime::Error,
    store: &Store<StepState>,
    limits: AttemptLimits,
) -> StepFailure {
    if err.downcast_ref::<DeadlinePassed>().is_some() || Instant::now() >= store.data().deadline {
        return StepFailure::Timeout(limits.timeout);
    }
    if store.data().limits.hit {
        return StepFailure::MemoryLimit(limits.memory);
    }
    // The slots make this unreachable; should the allocator still refuse, it is the
    // runner's capacity, not the plugin, and it says so.
    if let Some(full) = err.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        return StepFailure::Setup(format!(
            "the runner had no room for another instance ({full}); this is a bug in \
             Sluice's instance slots, please report it"
        ));
    }
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return StepFailure::Trap(format!(
            "plugin exited: it called exit({}) instead of returning a report",
            exit.0
        ));
    }
    let log = &store.data().log;
    let trap = match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => format!("wasm trap: {trap}"),
        None => first_line(&format!("{err}")).to_owned(),
    };
    let trap = trap
        .strip_prefix("wasm trap: wasm trap: ")
        .map_or(trap.clone(), |rest| format!("wasm trap: {rest}"));
    // The chain (the guest's wasm backtrace) goes to the step log, not the summary.
    let chain = format!("{err:?}");
    let frames: Vec<&str> = chain
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .collect();
    for line in &frames {
        log.line(Source::Runner, line);
    }
    let where_frames = if frames.is_empty() {
        ""
    } else {
        "; backtrace in the step log"
    };
    StepFailure::Trap(
        match super::trap::guest_error_line(&log.guest_stderr_tail()) {
            Some(said) => format!("plugin trapped: {said} ({trap}{where_frames})"),
            None if frames.is_empty() => format!("plugin trapped: {trap}"),
            None => format!("plugin trapped: {trap} (backtrace in the step log)"),
        },
    )
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// Run one attempt of a step: take a slot of the engine (waiting for one, with a note
/// in the step's log, when all are taken), then instantiate `plugin` in a fresh store,
/// await `before_run` (also when instantiating failed) and call `run`. The timeout
/// starts once the slot is held.
pub async fn run_attempt(
    plugin: &LoadedPlugin,
    wasi: WasiCtx,
    log: StepLog,
    caps: impl FnOnce(Instant) -> AttemptCapabilities,
    input: types::StepInput,
    limits: AttemptLimits,
    before_run: impl Future<Output = ()>,
) -> Result<types::Report, StepFailure> {
    // Declared before the store, so dropped after it: the slot is free only once the
    // instance is gone.
    let slot = plugin
        .slots()
        .acquire(plugin.needs(), |note| log.line(Source::Runner, note))
        .await;
    if !slot.waited.is_zero() {
        log.line(
            Source::Runner,
            &format!(
                "got an instance slot after waiting {}",
                humantime::format_duration(round_to_millis(slot.waited))
            ),
        );
    }
    let deadline = Instant::now() + limits.timeout;
    let caps = caps(deadline);
    let granted = caps.grants.readable_folders();
    let mut store = new_store(plugin.engine(), wasi, log, Some(caps), limits, deadline);
    let call = async {
        let instance = plugin.pre().instantiate_async(&mut store).await;
        // Whether or not the instance was made, what the caller does before the
        // plugin runs (the executor: the attempt's start committed and shown) is done.
        before_run.await;
        instance?
            .sluice_plugin_plugin()
            .call_run(&mut store, &input)
            .await
    };
    let outcome = tokio::time::timeout(
        limits.timeout + DEADLINE_GRACE,
        super::watchdog::watch(deadline, call),
    )
    .await;
    // Whatever the plugin made of a call interrupted at the deadline, the step is over.
    if Instant::now() >= deadline {
        return Err(StepFailure::Timeout(limits.timeout));
    }
    match outcome {
        Err(_elapsed) => Err(StepFailure::Timeout(limits.timeout)),
        Ok(Err(e)) => Err(classify(e, &store, limits)),
        Ok(Ok(Ok(mut report))) => {
            // Before anything records or shows it (contract 0.1.5).
            super::fingerprints::fill(&mut report, std::path::Path::new(&input.workdir), &granted);
            Ok(report)
        }
        Ok(Ok(Err(e))) => Err(match e {
            types::RunError::InvalidConfig(m) => StepFailure::InvalidConfig(m),
            types::RunError::Denied(m) => StepFailure::Denied(m),
            types::RunError::Failed(m) => StepFailure::Plugin(m),
        }),
    }
}

/// A duration shown to people: whole milliseconds.
fn round_to_millis(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis().try_into().unwrap_or(u64::MAX))
}

/// Call `describe` on a fresh instance with no capabilities, in a slot of the engine.
pub async fn describe(
    plugin_pre: &crate::host::bindings::StepPre<StepState>,
    engine: &wasmtime::Engine,
    slots: &InstanceSlots,
    needs: InstanceNeeds,
) -> Result<types::Descriptor, StepFailure> {
    let _slot = slots.acquire(needs, |_| {}).await;
    let limits = AttemptLimits {
        timeout: Duration::from_secs(10),
        memory: 512 << 20,
    };
    let deadline = Instant::now() + limits.timeout;
    let log = StepLog::in_memory(64 << 10, Default::default());
    let mut b = wasmtime_wasi::WasiCtxBuilder::new();
    b.stdout(log.stream(crate::capabilities::logs::Source::Stdout));
    b.stderr(log.stream(crate::capabilities::logs::Source::Stderr));
    let mut store = new_store(engine, b.build(), log.clone(), None, limits, deadline);
    let call = async {
        let instance = plugin_pre.instantiate_async(&mut store).await?;
        instance
            .sluice_plugin_plugin()
            .call_describe(&mut store)
            .await
    };
    match tokio::time::timeout(limits.timeout + DEADLINE_GRACE, call).await {
        Err(_) => Err(StepFailure::Timeout(limits.timeout)),
        Ok(Err(e)) => {
            let mut f = classify(e, &store, limits);
            // There is no step log to look in: what `describe` printed, and the frames,
            // come along below the summary.
            if let StepFailure::Trap(t) = &mut f {
                *t = t.replace("backtrace in the step log", "backtrace below");
                for l in log.tail() {
                    t.push('\n');
                    t.push_str(&l);
                }
            }
            Err(f)
        }
        Ok(Ok(d)) => Ok(d),
    }
}
