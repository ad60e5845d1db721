//! The runner's own capacity for plugin instances, owned by the host so that it can
//! never fail a step: every instance (a step attempt's or a `describe()` call's) first
//! takes a slot here, and a step that finds every slot taken waits for one, with a
//! note in its log, before its timeout starts.
//!
//! The engine ([`super::engine`]) decides how many instances it can hold at once
//! (the pooling allocator's slots, or what the address space allows on demand) and
//! how many linear memories they may have between them; this module hands out
//! exactly that. A component takes one instance slot and as many memory slots as it
//! declares memories ([`InstanceNeeds`]), so that no pool total (component
//! instances, memories, and through the per-component maxima core instances, tables
//! and stacks) is ever exceeded: the allocator never has to refuse an instance.

use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

/// How the engine allocates instances, and so what bounds the slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// The pooling allocator: address space reserved up front for `slots` instances.
    Pooled,
    /// On-demand allocation with small memory reservations, because the address
    /// space (e.g. `ulimit -v`) cannot hold a pool; `slots` is what it can hold.
    OnDemand,
}

/// What the engine can hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub allocation: Allocation,
    /// Instances (steps or `describe()` calls) at once.
    pub instances: u32,
    /// Linear memories of those instances together.
    pub memories: u32,
    /// The `--jobs` the engine was sized for (more than `instances` when the address
    /// space could not hold that many).
    pub wanted: u32,
}

impl std::fmt::Display for Capacity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match self.allocation {
            Allocation::Pooled => "pooling allocator",
            Allocation::OnDemand => "on-demand allocation",
        };
        write!(
            f,
            "{} instances with {} linear memories between them ({how})",
            self.instances, self.memories
        )
    }
}

/// The resources one instance of a component takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceNeeds {
    /// Its linear memories (at least one is counted, so that every instance holds a
    /// memory slot even when it declares none).
    pub memories: u32,
}

impl InstanceNeeds {
    /// What an instance of `component` takes, from the memories its core modules
    /// declare; a component whose needs cannot be known statically (it imports core
    /// modules) is counted at the per-component maximum.
    pub fn of(component: &wasmtime::component::Component, max_memories: u32) -> InstanceNeeds {
        let memories = component
            .resources_required()
            .map_or(max_memories, |r| r.num_memories);
        InstanceNeeds {
            memories: memories.clamp(1, max_memories.max(1)),
        }
    }
}

/// The slots of one engine.
#[derive(Debug)]
pub struct InstanceSlots {
    capacity: Capacity,
    instances: Semaphore,
    memories: Semaphore,
}

/// A held slot; dropping it frees the slot. It must outlive the store it admitted.
#[derive(Debug)]
pub struct Slot<'a> {
    _instance: SemaphorePermit<'a>,
    _memories: SemaphorePermit<'a>,
    /// How long the holder waited for it.
    pub waited: Duration,
}

impl InstanceSlots {
    /// Slots for `capacity`.
    pub fn new(capacity: Capacity) -> InstanceSlots {
        InstanceSlots {
            capacity,
            instances: Semaphore::new(capacity.instances.max(1) as usize),
            memories: Semaphore::new(capacity.memories.max(1) as usize),
        }
    }

    /// What the engine can hold.
    pub fn capacity(&self) -> Capacity {
        self.capacity
    }

    /// Instance slots free right now.
    pub fn free_instances(&self) -> usize {
        self.instances.available_permits()
    }

    /// Take a slot for an instance needing `needs`, waiting as long as it takes.
    /// When none is free at once, `on_wait` is told why (once) before the wait.
    pub async fn acquire(&self, needs: InstanceNeeds, on_wait: impl FnOnce(&str)) -> Slot<'_> {
        let memories = needs.memories.clamp(1, self.capacity.memories.max(1));
        if let (Ok(instance), Ok(mems)) = (
            self.instances.try_acquire(),
            self.memories.try_acquire_many(memories),
        ) {
            return Slot {
                _instance: instance,
                _memories: mems,
                waited: Duration::ZERO,
            };
        }
        // One of the two may have been taken above; it is dropped before waiting, so
        // that every waiter takes its slots in the same order (instance, memories)
        // and nobody holds one while queueing for the other out of turn.
        on_wait(&self.wait_note(needs));
        let started = Instant::now();
        // The semaphores are never closed.
        let instance = self
            .instances
            .acquire()
            .await
            .expect("instance slots are never closed");
        let mems = self
            .memories
            .acquire_many(memories)
            .await
            .expect("memory slots are never closed");
        Slot {
            _instance: instance,
            _memories: mems,
            waited: started.elapsed(),
        }
    }

    /// Why a step waits, for its log.
    fn wait_note(&self, needs: InstanceNeeds) -> String {
        let c = self.capacity;
        let mut note = format!(
            "note: waiting for a free instance slot: the engine holds {c}, all in use \
             (this step needs one instance and {} memor{})",
            needs.memories,
            if needs.memories == 1 { "y" } else { "ies" }
        );
        if c.instances < c.wanted {
            note.push_str(&format!(
                "; it was sized for {} steps at once, but the address space the runner \
                 may use (see `ulimit -v`) holds only {}",
                c.wanted, c.instances
            ));
        }
        note.push_str(". The wait does not count against the step's timeout.");
        note
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(instances: u32, memories: u32) -> InstanceSlots {
        InstanceSlots::new(Capacity {
            allocation: Allocation::Pooled,
            instances,
            memories,
            wanted: instances,
        })
    }

    #[tokio::test]
    async fn a_free_slot_is_taken_without_a_note() {
        let s = slots(2, 4);
        let slot = s
            .acquire(InstanceNeeds { memories: 1 }, |n| panic!("noted: {n}"))
            .await;
        assert_eq!(slot.waited, Duration::ZERO);
        assert_eq!(s.free_instances(), 1);
        drop(slot);
        assert_eq!(s.free_instances(), 2);
    }

    #[tokio::test]
    async fn a_full_engine_makes_the_next_instance_wait_with_a_note() {
        let s = std::sync::Arc::new(slots(1, 8));
        let first = s.acquire(InstanceNeeds { memories: 1 }, |_| {}).await;
        let waiter = {
            let s = s.clone();
            tokio::spawn(async move {
                let mut note = String::new();
                let slot = s
                    .acquire(InstanceNeeds { memories: 1 }, |n| note = n.to_string())
                    .await;
                (note, slot.waited)
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "the second instance waits");
        drop(first);
        let (note, waited) = waiter.await.unwrap();
        assert!(note.contains("waiting for a free instance slot"), "{note}");
        assert!(note.contains("does not count against the step's timeout"));
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
    }

    #[tokio::test]
    async fn memories_are_counted_per_component() {
        // Room for four instances but only four memories: a component of three
        // memories leaves room for one of one memory, not for a second of three.
        let s = slots(4, 4);
        let big = s.acquire(InstanceNeeds { memories: 3 }, |_| {}).await;
        let small = s
            .acquire(InstanceNeeds { memories: 1 }, |n| panic!("noted: {n}"))
            .await;
        let noted = std::cell::Cell::new(false);
        let wait = s.acquire(InstanceNeeds { memories: 3 }, |_| noted.set(true));
        tokio::pin!(wait);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut wait)
                .await
                .is_err()
        );
        drop(big);
        drop(small);
        let _third = wait.await;
        assert!(noted.get());
    }

    #[test]
    fn the_note_says_when_the_address_space_held_fewer_slots_than_wanted() {
        let s = InstanceSlots::new(Capacity {
            allocation: Allocation::OnDemand,
            instances: 3,
            memories: 6,
            wanted: 1000,
        });
        let note = s.wait_note(InstanceNeeds { memories: 2 });
        insta::assert_snapshot!("wait_note_when_the_address_space_is_short", note);
    }
}
