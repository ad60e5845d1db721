//! Compiles every plugin under `plugins/` to a wasm32-wasip2 component and generates
//! `builtins.rs`, which embeds them in the runner as `builtin:<folder name>`; and
//! generates `authoring_files.rs`, which embeds what `sluice plugin new` writes (the
//! templates, the contract and the SDK helpers of every language).

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
    embed_authoring_files(&root, &out_dir);
}

/// Folders, relative to the workspace root, whose files `sluice plugin new` can write:
/// the templates, the contract, the Rust SDK's source and the fingerprint crate it uses
/// (not on crates.io: a Rust project gets its own copy, with the manifests in
/// `templates/rust/`), and the SDK helpers of the other languages.
const AUTHORING_FOLDERS: &[&str] = &[
    "templates",
    "wit",
    "sdk/src",
    "crates/fingerprint/src",
    "sdk/python",
    "sdk/js",
    "sdk/go",
    "sdk/c",
];

/// Names never embedded: build output and caches a developer's checkout may hold.
const NOT_EMBEDDED: &[&str] = &[
    "target",
    "node_modules",
    "__pycache__",
    ".pytest_cache",
    ".git",
    "build",
    "dist",
];

/// Write `authoring_files.rs`: `(path relative to the workspace root, bytes)` of every
/// file under [`AUTHORING_FOLDERS`], sorted by path.
fn embed_authoring_files(root: &Path, out_dir: &Path) {
    let mut files = Vec::new();
    for folder in AUTHORING_FOLDERS {
        let dir = root.join(folder);
        println!("cargo:rerun-if-changed={}", dir.display());
        collect_files(&dir, &mut files);
    }
    files.sort();
    let mut out = String::from(
        "/// `(path relative to the workspace root, bytes)` of every file `sluice plugin new` may write.\npub static AUTHORING_FILES: &[(&str, &[u8])] = &[\n",
    );
    for path in files {
        let relative = path
            .strip_prefix(root)
            .expect("collected under the root")
            .to_string_lossy()
            .into_owned();
        out.push_str(&format!(
            "    ({relative:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    out.push_str("];\n");
    std::fs::write(out_dir.join("authoring_files.rs"), out).expect("OUT_DIR is writable");
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if NOT_EMBEDDED.iter().any(|n| name == std::ffi::OsStr::new(n)) {
            continue;
        }
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect_files(&path, files),
            Ok(t) if t.is_file() => files.push(path),
            _ => {}
        }
    }
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
