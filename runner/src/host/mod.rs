//! The WebAssembly host: one engine ([`engine`]) and the instance slots it holds
//! ([`capacity`]), the compiled-component cache
//! ([`cache`]), the bindings generated from `wit/` ([`bindings`]), plugin loading
//! ([`plugin`]) and the refusal of a component importing what the runner lacks
//! ([`imports`]), the running of one step attempt ([`step`]) and a trapped guest's last
//! error line ([`trap`]), organisation checks of the `policy-check` world
//! ([`policy_check`]), the fingerprints the host fills into a returned report
//! ([`fingerprints`]), and the watchdog that interrupts host calls blocked past an
//! attempt's deadline ([`watchdog`]).

pub mod bindings;
pub mod cache;
pub mod capacity;
pub mod engine;
pub mod fingerprints;
pub mod imports;
pub mod monitor;
pub mod plugin;
pub mod policy_check;
pub mod step;
pub mod trap;
pub mod watchdog;
pub mod worlds;
