//! Build workspace crates as `wasm32-wasip2` components from a build script.
//!
//! The runner embeds the built-in plugins, and the end-to-end tests need their fixture
//! plugins, so their build scripts compile those crates for WebAssembly with a nested
//! `cargo build`:
//!
//! ```no_run
//! // build.rs
//! use std::path::Path;
//! let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
//! sluice_component_build::ensure_wasm_target().unwrap_or_else(|err| panic!("{err}"));
//! let target_dir = sluice_component_build::wasm_target_dir(root);
//! let components =
//!     sluice_component_build::build_components(root, &target_dir, &["sluice-plugin-command"])
//!         .unwrap_or_else(|err| panic!("{err}"));
//! for component in components {
//!     println!("cargo:rustc-env=PLUGIN_{}={}", component.package, component.wasm.display());
//! }
//! ```
//!
//! The nested build gets its own target directory (so it neither waits on nor
//! invalidates the outer build's), none of the outer build's per-target settings, and the
//! outer build's jobserver, so both together never run more jobs than `-j` allows.
//!
//! This crate has no dependencies on purpose: it runs in every build script that uses it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The rustc target every Sluice component is built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// One built component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// The workspace package it was built from, e.g. `sluice-plugin-command`.
    pub package: String,
    /// The component file, e.g. `.../wasm32-wasip2/release/sluice_plugin_command.wasm`.
    pub wasm: PathBuf,
}

/// Ensure the `wasm32-wasip2` rustc target is installed: if `rustc --print sysroot`
/// lacks `lib/rustlib/wasm32-wasip2`, run `rustup target add wasm32-wasip2` when rustup
/// is on PATH; otherwise fail with a message that tells the user to run that command.
pub fn ensure_wasm_target() -> Result<(), String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|err| {
            format!(
                "cannot run `{} --print sysroot`: {err}",
                rustc.to_string_lossy()
            )
        })?;
    if !sysroot.status.success() {
        return Err(format!(
            "`{} --print sysroot` failed: {}",
            rustc.to_string_lossy(),
            String::from_utf8_lossy(&sysroot.stderr).trim()
        ));
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(WASM_TARGET).is_dir() {
        return Ok(());
    }

    let install_hint = format!(
        "the Rust target {WASM_TARGET} is not installed in {} and is needed to build Sluice's \
         plugins; install it with `rustup target add {WASM_TARGET}`",
        sysroot.display()
    );
    // Without rustup on PATH, the call fails to start: explain what to install.
    let added = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .output();
    match added {
        Err(_) => Err(install_hint),
        Ok(output) if !output.status.success() => Err(format!(
            "{install_hint}; running it here failed: {}",
            tail(&String::from_utf8_lossy(&output.stderr), 20)
        )),
        Ok(_) if !sysroot.join("lib/rustlib").join(WASM_TARGET).is_dir() => Err(format!(
            "{install_hint}; `rustup target add {WASM_TARGET}` succeeded but installed it into another \
             toolchain than the one at {}",
            sysroot.display()
        )),
        Ok(_) => Ok(()),
    }
}

/// Where nested component builds put their output: `$CARGO_TARGET_DIR/wasm` if that
/// variable is set, else `<workspace_root>/target/wasm`.
pub fn wasm_target_dir(workspace_root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            // A relative CARGO_TARGET_DIR is relative to where cargo was started,
            // which for a workspace build is (almost always) its root.
            if dir.is_relative() {
                workspace_root.join(dir).join("wasm")
            } else {
                dir.join("wasm")
            }
        }
        _ => workspace_root.join("target").join("wasm"),
    }
}

/// Variables that carry the outer build's settings into every process it starts. The
/// nested build targets wasm32 and must not inherit them.
const LEAKING_VARS: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "CARGO_BUILD_TARGET",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    // `cargo clippy` / `cargo check` tooling would lint or check the nested crates too.
    "RUSTC_WORKSPACE_WRAPPER",
    "OUT_DIR",
    "TARGET",
    "HOST",
    "PROFILE",
    "OPT_LEVEL",
    "DEBUG",
    "NUM_JOBS",
    "RUSTC_LINKER",
    "CARGO_RUSTC_CURRENT_DIR",
    "CARGO_SBOM_PATH",
];

/// Prefixes of variables the outer build sets for its own build script.
const LEAKING_PREFIXES: &[&str] = &[
    "CARGO_CFG_",
    "CARGO_FEATURE_",
    "CARGO_PKG_",
    "CARGO_MANIFEST_",
    "DEP_",
    "CARGO_BIN_EXE_",
];

/// Build workspace packages (by package name) as `wasm32-wasip2` components, in release
/// mode, with debug info stripped, by running
/// `cargo build --release --target wasm32-wasip2 -p A -p B --target-dir <target_dir>`
/// in `workspace_root` (with `$CARGO` as cargo when set).
///
/// Returns, in the order asked for, each package's
/// `<target_dir>/wasm32-wasip2/release/<crate_name>.wasm` (the package name with `-`
/// turned into `_`; the packages must not rename their `[lib]`). On failure the error
/// holds the tail of cargo's output. Also prints `cargo:rerun-if-changed=` for each
/// package's folder, `<workspace_root>/wit`, `<workspace_root>/sdk/src`, the SDK's
/// manifest and `Cargo.lock`; a build script that uses this must print its own
/// `cargo:rerun-if-changed=build.rs`.
pub fn build_components(
    workspace_root: &Path,
    target_dir: &Path,
    packages: &[&str],
) -> Result<Vec<Component>, String> {
    if packages.is_empty() {
        return Ok(Vec::new());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));

    for package in packages {
        let dir = package_dir(&cargo, workspace_root, package)?;
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    for watched in ["wit", "sdk/src", "sdk/Cargo.toml", "Cargo.lock"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace_root.join(watched).display()
        );
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    let mut command = Command::new(&cargo);
    command
        .current_dir(workspace_root)
        .args([
            "build",
            "--release",
            "--target",
            WASM_TARGET,
            "--target-dir",
        ])
        .arg(target_dir)
        .args(packages.iter().flat_map(|package| ["-p", package]))
        // Line tables are useless in an embedded component; names stay for backtraces.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
        .env("CARGO_TERM_COLOR", "never")
        .env("CARGO_TERM_PROGRESS_WHEN", "never");
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if LEAKING_VARS.contains(&name)
            || LEAKING_PREFIXES
                .iter()
                .any(|prefix| name.starts_with(prefix))
        {
            command.env_remove(name);
        }
    }

    let output = command
        .output()
        .map_err(|err| format!("cannot run {}: {err}", cargo.to_string_lossy()))?;
    if !output.status.success() {
        return Err(format!(
            "building the WebAssembly components {} failed ({}):\n{}",
            packages.join(", "),
            output.status,
            tail(&String::from_utf8_lossy(&output.stderr), 60)
        ));
    }

    let release_dir = target_dir.join(WASM_TARGET).join("release");
    packages
        .iter()
        .map(|package| {
            let wasm = release_dir.join(format!("{}.wasm", package.replace('-', "_")));
            if wasm.is_file() {
                Ok(Component { package: (*package).to_owned(), wasm })
            } else {
                Err(format!(
                    "cargo built {package} but {} does not exist; is it a `cdylib` crate without a renamed [lib]?",
                    wasm.display()
                ))
            }
        })
        .collect()
}

/// The folder of a workspace package, from `cargo pkgid -p <package>`, which prints
/// e.g. `path+file:///repo/plugins/command#sluice-plugin-command@0.1.0`.
fn package_dir(cargo: &OsString, workspace_root: &Path, package: &str) -> Result<PathBuf, String> {
    let output = Command::new(cargo)
        .current_dir(workspace_root)
        .args(["pkgid", "--offline", "-p", package])
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .map_err(|err| format!("cannot run {}: {err}", cargo.to_string_lossy()))?;
    if !output.status.success() {
        return Err(format!(
            "`cargo pkgid -p {package}` failed; is {package} a member of the workspace at {}?\n{}",
            workspace_root.display(),
            tail(&String::from_utf8_lossy(&output.stderr), 20)
        ));
    }
    let pkgid = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    parse_pkgid_dir(&pkgid).ok_or_else(|| {
        format!("`cargo pkgid -p {package}` printed `{pkgid}`, which is not a local package")
    })
}

/// The directory in a `path+file://` package id, percent-decoded.
fn parse_pkgid_dir(pkgid: &str) -> Option<PathBuf> {
    let url = pkgid
        .strip_prefix("path+file://")
        .or_else(|| pkgid.strip_prefix("file://"))?;
    let path = url.split(['#', '?']).next()?;
    Some(PathBuf::from(percent_decode(path)?))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_package_ids() {
        assert_eq!(
            parse_pkgid_dir("path+file:///repo/plugins/command#sluice-plugin-command@0.1.0"),
            Some(PathBuf::from("/repo/plugins/command"))
        );
        assert_eq!(
            parse_pkgid_dir("path+file:///my%20repo/sdk#0.1.0"),
            Some(PathBuf::from("/my repo/sdk"))
        );
        assert_eq!(
            parse_pkgid_dir("registry+https://github.com/rust-lang/crates.io-index#serde@1.0.0"),
            None
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
