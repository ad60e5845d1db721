//! The one place that builds the wasmtime [`Config`] and [`Engine`], and the epoch
//! ticker that turns wall-clock time into interruption points.
//!
//! Every knob is here, with the reason it has the value it has. Nothing else in the
//! tree names `Config` or `PoolingAllocationConfig`.

use std::time::Duration;

use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig, Strategy,
};

/// How often the epoch advances. A step's timeout is checked (and the step yields to
/// other tasks) once per tick, so this is also the timeout's precision.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Size of wasm stacks. 512 KiB is wasmtime's default; stated so it is part of the
/// cache key on purpose.
const MAX_WASM_STACK: usize = 512 << 10;

/// Size of the native stack an async call runs on: the wasm stack plus 1.5 MiB for
/// host functions, which must stay shallow.
const ASYNC_STACK: usize = 2 << 20;

/// Upper bound of one linear memory when the pooling allocator is used. The per-step
/// limit (the step's `memory`) is enforced below this by the store's limiter.
const POOL_MAX_MEMORY: usize = 4 << 30;

/// What the engine is sized for.
#[derive(Debug, Clone, Copy)]
pub struct EngineProfile {
    /// Steps that may run at the same time; the pool holds this many instances.
    pub max_concurrent_steps: u32,
    /// Use the pooling allocator (fast, bounded instantiation) when the address space
    /// it reserves is available.
    pub pooling: bool,
}

impl Default for EngineProfile {
    fn default() -> Self {
        EngineProfile {
            max_concurrent_steps: 16,
            pooling: true,
        }
    }
}

/// Build the engine. With `profile.pooling`, falls back to on-demand allocation when
/// the pool cannot reserve its address space (as in a tight `ulimit -v`).
pub fn build_engine(profile: EngineProfile) -> wasmtime::Result<Engine> {
    if profile.pooling {
        if let Ok(engine) = Engine::new(&config(Some(profile.max_concurrent_steps))) {
            return Ok(engine);
        }
        tracing::debug!("pooling allocator unavailable; using on-demand instance allocation");
    }
    Engine::new(&config(None))
}

fn config(pool_slots: Option<u32>) -> Config {
    let mut c = Config::new();
    // Cranelift is the most scrutinised compiler; Winch had sandbox-escape advisories.
    c.strategy(Strategy::Cranelift);
    c.cranelift_opt_level(OptLevel::Speed);
    c.wasm_component_model(true);
    // Wall-clock timeouts: the ticker advances the epoch, each store decides per tick
    // whether to yield or stop. Cheaper than fuel (about 10% against 2-3x).
    c.epoch_interruption(true);
    c.consume_fuel(false);
    c.max_wasm_stack(MAX_WASM_STACK);
    c.async_stack_size(ASYNC_STACK);
    // Reused pooled stacks never leak one step's data into the next.
    c.async_stack_zeroing(true);
    // Plugins do not need GC; leaving it off shrinks the attack surface (threads are
    // not even compiled in).
    c.wasm_gc(false);
    // Backtraces name plugin functions in trap messages without reading env vars.
    c.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Disable);
    if let Some(n) = pool_slots {
        let n = n.max(1);
        let mut pool = PoolingAllocationConfig::default();
        // Components built by componentize-py hold a few dozen core instances and
        // several memories and tables; Rust components hold a handful.
        pool.total_component_instances(n)
            .total_core_instances(64 * n)
            .total_memories(8 * n)
            .total_tables(32 * n)
            .total_stacks(n)
            .max_core_instances_per_component(64)
            .max_memories_per_component(8)
            .max_tables_per_component(32)
            .max_component_instance_size(10 << 20)
            .max_core_instance_size(10 << 20)
            .table_elements(100_000)
            .max_memory_size(POOL_MAX_MEMORY)
            .linear_memory_keep_resident(2 << 20)
            .table_keep_resident(512 << 10);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    c
}

/// Advance the engine's epoch every [`EPOCH_TICK`] on a background thread, for as long
/// as the engine lives. One ticker per engine. Fails when the OS refuses the thread.
pub fn spawn_epoch_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("sluice-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(drop)
}
