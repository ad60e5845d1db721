//! Compiles every plugin under `plugins/` to a wasm32-wasip2 component and generates
//! `builtins.rs`, which embeds them in the runner as `builtin:<folder name>`.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let root = manifest
        .parent()
        .expect("runner/ sits in the workspace")
        .to_path_buf();
    let plugins = plugin_packages(&root.join("plugins"));
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", root.join("plugins").display());
    if let Err(e) = sluice_component_build::ensure_wasm_target() {
        panic!("\n\n{e}\n\n");
    }
    let packages: Vec<&str> = plugins.iter().map(|(_, p)| p.as_str()).collect();
    let target_dir = sluice_component_build::wasm_target_dir(&root);
    let built = match sluice_component_build::build_components(&root, &target_dir, &packages) {
        Ok(b) => b,
        Err(e) => panic!("\n\nbuilding the built-in plugins failed:\n{e}\n\n"),
    };
    let mut out = String::from(
        "/// `(name, component bytes)` of every built-in plugin.\npub static BUILTINS: &[(&str, &[u8])] = &[\n",
    );
    for (name, package) in &plugins {
        let wasm = &built
            .iter()
            .find(|c| &c.package == package)
            .unwrap_or_else(|| panic!("no component was built for {package}"))
            .wasm;
        out.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            wasm.display().to_string()
        ));
    }
    out.push_str("];\n");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out_dir.join("builtins.rs"), out).expect("OUT_DIR is writable");
}

/// `(builtin name, package name)` for each plugin folder, sorted by name.
fn plugin_packages(dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries.flatten() {
        let manifest = entry.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let package = text
            .lines()
            .find_map(|l| {
                let l = l.trim();
                let rest = l.strip_prefix("name")?.trim_start().strip_prefix('=')?;
                Some(rest.trim().trim_matches('"').to_string())
            })
            .unwrap_or_else(|| panic!("{} has no package name", manifest.display()));
        found.push((entry.file_name().to_string_lossy().into_owned(), package));
    }
    found.sort();
    found
}
