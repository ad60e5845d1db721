//! End-to-end tests: each drives the real `sluice` binary on a real pipeline whose
//! steps are real components built from source (`tests/fixtures`, `examples/`).
//! One test binary, so the fixtures and the compiled-component cache are shared.

mod bake;
mod blocked;
mod cache;
mod canary;
mod capacity;
mod ci_plugins;
mod cli;
mod deploy;
mod deploy_capability;
mod deploy_plugin;
mod deploy_ssh;
mod deploy_views;
mod durable;
mod escapes;
mod examples;
mod health_prometheus;
mod http;
mod limits;
mod lint_sarif;
mod load_test;
mod monitors;
mod pipeline;
mod plugin_contract;
mod plugin_kit;
mod plugin_new;
mod policy_report;
mod prometheus;
mod reports;
mod sandbox;
mod sbom;
mod scaffolded;
mod secrets;
mod security_scan;
mod sshd;
mod support;
mod template_c;
mod template_go;
mod template_js;
mod template_python;
mod template_rust;
mod toolchains;
mod unit_test;
mod validation;
