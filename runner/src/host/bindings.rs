//! Host-side bindings generated from `wit/`, the single source of truth for the
//! contract. The only `bindgen!` in the runner.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "step",
    imports: {
        // Running a native program waits on it; everything else returns at once.
        "sluice:plugin/process.run": async,
        // Operations on deploy targets copy files, run hooks and wait out bakes.
        "sluice:plugin/deploy-targets.begin": async,
        "sluice:plugin/deploy-targets.finish": async,
        "sluice:plugin/deploy-targets.progress": async,
        "sluice:plugin/deploy-targets.read-record": async,
        "sluice:plugin/deploy-targets.write-record": async,
        "sluice:plugin/deploy-targets.bundle-digest": async,
        "sluice:plugin/deploy-targets.read-archive-file": async,
        "sluice:plugin/deploy-targets.download-bundle": async,
        "sluice:plugin/deploy-targets.install": async,
        "sluice:plugin/deploy-targets.run-hook": async,
        "sluice:plugin/deploy-targets.bake": async,
        // A load test is checked (names resolved) at start and waited on while it runs.
        "sluice:plugin/load-generator.start": async | trappable | tracing,
        "sluice:plugin/load-generator.[method]load-run.progress": async | trappable | tracing,
        "sluice:plugin/load-generator.[method]load-run.stop": async | trappable | tracing,
        "sluice:plugin/load-generator.[method]load-run.finish": async | trappable | tracing,
        "sluice:plugin/load-generator.[drop]load-run": async | trappable | tracing,
        default: tracing,
    },
    exports: { default: async },
    // `wasi:*` are wasmtime's own (linked by `wasmtime_wasi` and `wasmtime_wasi_http`).
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        "sluice:plugin/load-generator.load-run": crate::capabilities::load::LoadRun,
    },
    // Reports are stored in the run's folder and the state store as JSON, and read back
    // when a run resumes.
    additional_derives: [serde::Serialize, serde::Deserialize],
});

pub use self::exports::sluice::plugin::plugin::Guest as PluginExports;
pub use self::sluice::plugin::types;

/// The `monitor` world: a health check run on a schedule. Its `types`, `log` and
/// `secrets` are the step world's own (mapped with `with:`), so one host
/// implementation serves both worlds and a data point is the same type in each.
pub mod monitor {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "monitor",
        imports: { default: tracing },
        exports: { default: async },
        with: {
            "sluice:plugin/types": crate::host::bindings::sluice::plugin::types,
            "sluice:plugin/log": crate::host::bindings::sluice::plugin::log,
            "sluice:plugin/secrets": crate::host::bindings::sluice::plugin::secrets,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });

    pub use self::exports::sluice::plugin::health_check::Guest as HealthCheckExports;
}

/// The `policy-check` world (0.1.6): an organisation check over the pipeline model.
/// Its `log` is the step world's own (mapped with `with:`), so the one host
/// implementation of `log` serves every world.
pub mod policy_check {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "policy-check",
        imports: { default: tracing },
        exports: { default: async },
        with: {
            "sluice:plugin/log": crate::host::bindings::sluice::plugin::log,
        },
    });

    pub use self::exports::sluice::plugin::policy_rule::{CheckDescriptor, Violation};
}
