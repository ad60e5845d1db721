//! The built-in plugins: every crate under `plugins/`, compiled for wasm32-wasip2 by
//! the build script and embedded in the binary. `builtin:<name>` refers to them.

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// The component of a built-in plugin.
pub fn find(name: &str) -> Option<&'static [u8]> {
    BUILTINS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, wasm)| *wasm)
}

/// Names of all built-in plugins, sorted.
pub fn names() -> Vec<&'static str> {
    let mut v: Vec<&str> = BUILTINS.iter().map(|(n, _)| *n).collect();
    v.sort_unstable();
    v
}
