//! Host-side bindings generated from `wit/`, the single source of truth for the
//! contract. The only `bindgen!` in the runner.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "step",
    imports: {
        // Running a native program waits on it; everything else returns at once.
        "sluice:plugin/process.run": async,
        default: tracing,
    },
    exports: { default: async },
    // Reports are stored in the run's folder as JSON.
    additional_derives: [serde::Serialize],
});

pub use self::exports::sluice::plugin::plugin::Guest as PluginExports;
pub use self::sluice::plugin::types;
