//! Sluice: a pipeline runner whose every step is a sandboxed WebAssembly component.
//!
//! The binary (`main.rs`) only calls [`cli::main`]. The pieces, in the order a run
//! uses them:
//! - [`config`] reads `sluice.toml` into a [`config::Pipeline`];
//! - [`host`] owns the wasmtime engine, the compiled-component cache and plugin loading;
//! - [`validate`] loads every plugin and checks each step's `with` against its schema;
//! - [`executor`] runs stages and steps, with [`capabilities`] deciding what each
//!   step may touch and [`sandbox`] isolating the native programs steps start and
//!   the runner's own files ([`folders`]);
//! - [`monitors`] run health checks on a schedule: alarms and bake evidence;
//! - [`gates`] decide whether a run may enter a stage, at the instants [`clock`] gives;
//!   [`state`] records every transition of a run (the only place with SQL), so a
//!   killed runner resumes from the record;
//! - [`events`] and [`render`] show the run, [`reports`] writes it down for CI systems;
//! - [`authoring`] is the plugin-author kit (`sluice plugin new|run|test|check`);
//! - [`policy`] is what a platform team requires of pipelines (approved plugins,
//!   ceilings, organisation checks); [`lockfile`] pins plugins by digest,
//!   [`registry`] pulls and pushes them through OCI registries, [`signing`] verifies
//!   their signatures;
//! - [`limits`] holds every documented bound, [`console`] every write to stdout/stderr.

pub mod authoring;
pub mod builtins;
pub mod capabilities;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod events;
pub mod executor;
pub mod folders;
pub mod gates;
pub mod host;
pub mod limits;
pub mod lockfile;
pub mod monitors;
pub mod policy;
pub mod registry;
pub mod render;
pub mod reports;
pub mod sandbox;
pub mod secrets;
pub mod signing;
/// The state store, its own crate (`crates/state`): the only place with SQL.
pub use sluice_state as state;
pub mod suggest;
pub mod targets;
pub mod toolchains;
pub mod validate;
