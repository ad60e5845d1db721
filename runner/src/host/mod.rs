//! The WebAssembly host: one engine ([`engine`]), the compiled-component cache
//! ([`cache`]), the bindings generated from `wit/` ([`bindings`]), plugin loading
//! ([`plugin`]) and the running of one step attempt ([`step`]).

pub mod bindings;
pub mod cache;
pub mod engine;
pub mod plugin;
pub mod step;
