//! The WebAssembly host: one engine ([`engine`]) and the instance slots it holds
//! ([`capacity`]), the compiled-component cache
//! ([`cache`]), the bindings generated from `wit/` ([`bindings`]), plugin loading
//! ([`plugin`]), the running of one step attempt ([`step`]), and the watchdog that
//! interrupts host calls blocked past an attempt's deadline ([`watchdog`]).

pub mod bindings;
pub mod cache;
pub mod capacity;
pub mod engine;
pub mod monitor;
pub mod plugin;
pub mod step;
pub mod watchdog;
