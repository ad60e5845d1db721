//! The one place that builds the wasmtime [`Config`] and [`Engine`], and the epoch
//! ticker that turns wall-clock time into interruption points.
//!
//! Every knob is here, with the reason it has the value it has. Nothing else in the
//! tree names `Config` or `PoolingAllocationConfig`. The engine is sized here for the
//! steps that run at once and the address space the process may use; what it holds
//! ([`Capacity`]) is handed out by [`super::capacity`].

use std::time::Duration;

use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig, Strategy,
};

use super::capacity::{Allocation, Capacity};

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
const POOL_MAX_MEMORY: u64 = 4 << 30;

/// Guard region after each linear memory (wasmtime's default on 64-bit hosts, stated
/// because the address space a pool reserves is computed from it). With the 4 GiB
/// reservation it removes nearly every bounds check.
const MEMORY_GUARD: u64 = 32 << 20;

/// Most linear memories, tables and core instances one component may have. Components
/// built by componentize-py hold a few dozen core instances and several memories and
/// tables; Rust components hold a handful of instances and one memory.
pub const MAX_MEMORIES_PER_COMPONENT: u32 = 8;
const MAX_TABLES_PER_COMPONENT: u32 = 32;
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 64;
/// Most elements of one table.
const TABLE_ELEMENTS: usize = 100_000;
/// Bytes the table pool reserves per element (wasmtime's nominal element size: a
/// pointer).
const TABLE_ELEMENT_BYTES: u64 = 8;

/// Linear memories budgeted per instance slot: a memory slot of the pool reserves
/// 4 GiB of address space, so the pool does not reserve the per-component maximum for
/// every instance. Components with more memories take more memory slots
/// ([`super::capacity::InstanceNeeds`]); a pool always has room for one component of
/// [`MAX_MEMORIES_PER_COMPONENT`].
const MEMORIES_PER_SLOT: u32 = 2;

/// Linear memory reservation and growth room on demand (when the address space cannot
/// hold a pool): small, so that a tight `ulimit -v` still holds several instances.
/// Memories then need bounds checks and move when they outgrow their reservation.
const ON_DEMAND_MEMORY_RESERVATION: u64 = 64 << 20;
const ON_DEMAND_MEMORY_GUARD: u64 = 64 << 10;

/// Address space left to the runner itself (its heap, threads, compiled code, log
/// buffers) when the rest is budgeted for instances.
const RUNNER_HEADROOM: u64 = 1 << 30;

/// The user address space assumed when no `ulimit -v` bounds it: 47 bits, as on
/// x86-64 and on 48-bit arm64. Pools take at most half of it. A smaller space (e.g.
/// 39-bit arm64) makes building the pool fail; the pool is then halved until it fits.
const USER_ADDRESS_SPACE: u64 = 1 << 47;

/// What the engine is sized for.
#[derive(Debug, Clone, Copy)]
pub struct EngineProfile {
    /// Steps that may run at the same time: the engine holds this many instances when
    /// the address space allows (see [`build_engine`]).
    pub max_concurrent_steps: u32,
    /// Use the pooling allocator (fast, bounded instantiation) when the address space
    /// it reserves is available.
    pub pooling: bool,
}

impl EngineProfile {
    /// An engine for `jobs` steps at once, pooled when the address space allows.
    pub fn for_jobs(jobs: usize) -> EngineProfile {
        EngineProfile {
            max_concurrent_steps: u32::try_from(jobs).unwrap_or(u32::MAX).max(1),
            pooling: true,
        }
    }
}

impl Default for EngineProfile {
    fn default() -> Self {
        EngineProfile {
            max_concurrent_steps: 16,
            pooling: true,
        }
    }
}

/// Build the engine and say how many instances it holds at once.
///
/// With `profile.pooling`, the pool gets one slot per concurrent step, as many as the
/// address space available to the process holds (`ulimit -v`, or half of a 47-bit
/// space): a slot reserves [`MEMORIES_PER_SLOT`] memories of 4 GiB plus guard, its
/// tables and a stack, about 8 GiB. When the kernel refuses that reservation the pool
/// is halved and tried again. When no pool fits, instances are allocated on demand
/// with small memory reservations, and the number held at once is what the address
/// space allows. Steps beyond what the engine holds wait for a slot
/// ([`super::capacity::InstanceSlots`]); none fails for it.
pub fn build_engine(profile: EngineProfile) -> wasmtime::Result<(Engine, Capacity)> {
    let wanted = profile.max_concurrent_steps.max(1);
    let budget = address_space_budget();
    if profile.pooling {
        let mut candidate = pooled_capacity(wanted, wanted, budget);
        while let Some(capacity) = candidate {
            match Engine::new(&config(Some(capacity))) {
                Ok(engine) => return Ok((engine, capacity)),
                Err(e) => {
                    tracing::debug!(
                        slots = capacity.instances,
                        "pooling allocator refused: {e:#}; trying a smaller pool"
                    );
                    candidate = match capacity.instances / 2 {
                        0 => None,
                        half => pooled_capacity(wanted, half, budget),
                    };
                }
            }
        }
        tracing::debug!("no pool fits the address space; using on-demand instance allocation");
    }
    let capacity = on_demand_capacity(wanted, budget);
    Ok((Engine::new(&config(None))?, capacity))
}

/// Address space the process may still reserve for instances: what `ulimit -v`
/// leaves beyond what is mapped now and the runner's own headroom, or half of the
/// user address space when there is no limit.
fn address_space_budget() -> u64 {
    let limit = rustix::process::getrlimit(rustix::process::Resource::As).current;
    match limit {
        None => USER_ADDRESS_SPACE / 2,
        Some(limit) => limit
            .saturating_sub(mapped_now())
            .saturating_sub(RUNNER_HEADROOM),
    }
}

/// The process's mapped address space (VmSize), 0 when /proc cannot say.
fn mapped_now() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |pages| pages * rustix::param::page_size() as u64)
}

/// Memories of a pool (or an on-demand engine) holding `instances`.
fn memories_for(instances: u32) -> u32 {
    instances
        .saturating_mul(MEMORIES_PER_SLOT)
        .max(MAX_MEMORIES_PER_COMPONENT)
}

/// Address space the pooling allocator reserves for `instances` slots: memories
/// (each its maximum size plus a guard, and one guard before the first), tables,
/// and async stacks (each with a guard page).
fn pool_bytes(instances: u32) -> u64 {
    let page = 4096;
    let memory = POOL_MAX_MEMORY + MEMORY_GUARD;
    let table = (TABLE_ELEMENTS as u64 * TABLE_ELEMENT_BYTES).next_multiple_of(page);
    let stack = ASYNC_STACK as u64 + page;
    let n = u64::from(instances);
    u64::from(memories_for(instances)) * memory
        + MEMORY_GUARD
        + n * u64::from(MAX_TABLES_PER_COMPONENT) * table
        + n * stack
}

/// The largest pool of at most `at_most` slots that fits in `budget`, if any.
fn pooled_capacity(wanted: u32, at_most: u32, budget: u64) -> Option<Capacity> {
    // Past the first few slots (which share the per-component minimum of memories),
    // every slot adds the same.
    let per_slot = pool_bytes(101) - pool_bytes(100);
    let mut n = at_most.min(u32::try_from(budget / per_slot).unwrap_or(u32::MAX));
    while n > 0 && pool_bytes(n) > budget {
        n -= 1;
    }
    (n > 0).then(|| Capacity {
        allocation: Allocation::Pooled,
        instances: n,
        memories: memories_for(n),
        wanted,
    })
}

/// How many instances on-demand allocation holds in `budget`: each takes
/// [`MEMORIES_PER_SLOT`] small memory reservations and a stack. Always at least one.
fn on_demand_capacity(wanted: u32, budget: u64) -> Capacity {
    let memory = ON_DEMAND_MEMORY_RESERVATION + 2 * ON_DEMAND_MEMORY_GUARD;
    let per_instance = u64::from(MEMORIES_PER_SLOT) * memory + ASYNC_STACK as u64 + 4096;
    let fits = u32::try_from(budget / per_instance).unwrap_or(u32::MAX);
    let instances = wanted.min(fits).max(1);
    Capacity {
        allocation: Allocation::OnDemand,
        instances,
        memories: memories_for(instances),
        wanted,
    }
}

fn config(pool: Option<Capacity>) -> Config {
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
    match pool {
        Some(capacity) => {
            c.memory_reservation(POOL_MAX_MEMORY);
            c.memory_guard_size(MEMORY_GUARD);
            let n = capacity.instances.max(1);
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(n)
                .total_core_instances(MAX_CORE_INSTANCES_PER_COMPONENT * n)
                .total_memories(capacity.memories.max(MAX_MEMORIES_PER_COMPONENT))
                .total_tables(MAX_TABLES_PER_COMPONENT * n)
                .total_stacks(n)
                .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
                .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
                .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
                .max_component_instance_size(10 << 20)
                .max_core_instance_size(10 << 20)
                .table_elements(TABLE_ELEMENTS)
                .max_memory_size(POOL_MAX_MEMORY as usize)
                // A freed slot gives all its pages back: steps last seconds, so
                // re-faulting a few pages costs nothing, while keeping up to 2 MiB
                // per slot resident (wasmtime's serving default) made a thousand
                // finishing steps take a gigabyte.
                .linear_memory_keep_resident(0)
                .table_keep_resident(0);
            c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        None => {
            c.memory_reservation(ON_DEMAND_MEMORY_RESERVATION);
            c.memory_reservation_for_growth(ON_DEMAND_MEMORY_RESERVATION);
            c.memory_guard_size(ON_DEMAND_MEMORY_GUARD);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn a_pool_slot_reserves_about_eight_gib() {
        let per_slot = pool_bytes(101) - pool_bytes(100);
        assert!((8 * GIB..9 * GIB).contains(&per_slot), "{per_slot}");
        // The smallest pool still holds one component of the most memories.
        assert!(pool_bytes(1) > u64::from(MAX_MEMORIES_PER_COMPONENT) * POOL_MAX_MEMORY);
    }

    #[test]
    fn a_thousand_jobs_get_a_thousand_pooled_slots_without_a_limit() {
        let c = pooled_capacity(1000, 1000, USER_ADDRESS_SPACE / 2).unwrap();
        assert_eq!(c.instances, 1000);
        assert_eq!(c.memories, 2000);
        assert!(pool_bytes(1000) <= USER_ADDRESS_SPACE / 2);
    }

    #[test]
    fn a_ulimit_of_a_few_gib_holds_no_pool_but_several_instances_on_demand() {
        assert_eq!(pooled_capacity(4, 4, 3 * GIB), None);
        let c = on_demand_capacity(4, 3 * GIB);
        assert_eq!(c.allocation, Allocation::OnDemand);
        assert_eq!(c.instances, 4);
        let c = on_demand_capacity(1000, 3 * GIB);
        assert!((10..40).contains(&c.instances), "{c:?}");
        assert_eq!(c.wanted, 1000);
    }

    #[test]
    fn a_ulimit_smaller_than_the_jobs_need_shrinks_the_pool_to_fit() {
        let budget = 100 * GIB;
        let c = pooled_capacity(1000, 1000, budget).unwrap();
        assert!(c.instances < 1000 && c.instances > 0, "{c:?}");
        assert!(pool_bytes(c.instances) <= budget);
        assert!(pool_bytes(c.instances + 1) > budget);
    }

    #[test]
    fn on_demand_always_holds_one_instance() {
        assert_eq!(on_demand_capacity(8, 0).instances, 1);
    }
}
