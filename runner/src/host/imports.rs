//! What a component imports against what this runner provides, and the refusal a
//! person can act on when they differ: the interface named, the interfaces the runner
//! does provide, and how to build without it (for componentize-js: the template's world
//! and `--disable fetch-event`).
//! A component of another contract version (`sluice:plugin@0.2.0`) is told the version
//! this runner speaks.
//!
//! [`PROVIDED`] is the list of what `host::plugin::PluginHost::new` links (wasmtime-wasi's
//! `p2::add_to_linker_async`, `capabilities::http::add_to_linker` and the contract's
//! own interfaces); a test checks each entry against `wit/`. wasmtime matches an import
//! to a definition of any semver-compatible version (`0.2.y` for `0.2.x`), so each
//! entry names a package, its compatible version line, and its interfaces.

use wasmtime::component::Component;

/// The contract version this runner speaks; components built for `0.1.0` up to it load.
pub const CONTRACT: &str = "sluice:plugin@0.1.7";

/// `(package, version line, interfaces)` of every interface the runner links.
pub const PROVIDED: &[(&str, &str, &[&str])] = &[
    (
        "wasi:cli",
        "0.2",
        &[
            "environment",
            "exit",
            "stdin",
            "stdout",
            "stderr",
            "terminal-input",
            "terminal-output",
            "terminal-stdin",
            "terminal-stdout",
            "terminal-stderr",
        ],
    ),
    ("wasi:clocks", "0.2", &["monotonic-clock", "wall-clock"]),
    ("wasi:filesystem", "0.2", &["types", "preopens"]),
    ("wasi:io", "0.2", &["error", "poll", "streams"]),
    (
        "wasi:random",
        "0.2",
        &["random", "insecure", "insecure-seed"],
    ),
    (
        "wasi:sockets",
        "0.2",
        &[
            "network",
            "instance-network",
            "ip-name-lookup",
            "tcp",
            "tcp-create-socket",
            "udp",
            "udp-create-socket",
        ],
    ),
    ("wasi:http", "0.2", &["types", "outgoing-handler"]),
    (
        "sluice:plugin",
        "0.1",
        &[
            "types",
            "log",
            "process",
            "secrets",
            "deploy-targets",
            "grants",
            "load-generator",
        ],
    ),
];

/// An import name split: `wasi:http/incoming-handler@0.2.3` is package `wasi:http`,
/// interface `incoming-handler`, version `0.2.3`.
#[derive(Debug, PartialEq, Eq)]
struct ImportName<'a> {
    package: &'a str,
    interface: &'a str,
    version: Option<&'a str>,
}

fn split(name: &str) -> Option<ImportName<'_>> {
    let (path, version) = match name.split_once('@') {
        Some((path, version)) => (path, Some(version)),
        None => (name, None),
    };
    let (package, interface) = path.split_once('/')?;
    Some(ImportName {
        package,
        interface,
        version,
    })
}

/// `0.2.3` → `0.2`, `1.4.0` → `1`: what semver-compatible versions share.
fn version_line(version: &str) -> String {
    let mut parts = version.split('.');
    let major = parts.next().unwrap_or("");
    match (major, parts.next()) {
        ("0", Some(minor)) => format!("0.{minor}"),
        _ => major.to_owned(),
    }
}

/// Whether the runner links the interface `name` (an import of a component).
pub fn provided(name: &str) -> bool {
    let Some(import) = split(name) else {
        return false;
    };
    PROVIDED.iter().any(|(package, line, interfaces)| {
        *package == import.package
            && interfaces.contains(&import.interface)
            && import.version.is_some_and(|v| version_line(v) == *line)
    })
}

/// The interfaces the runner provides, in short: `wasi:cli, … (0.2.x)`.
pub fn provided_summary() -> String {
    let wasi: Vec<&str> = PROVIDED
        .iter()
        .filter(|(package, _, _)| package.starts_with("wasi:") && *package != "wasi:http")
        .map(|(package, _, _)| *package)
        .collect();
    format!(
        "{} (0.2.x, as wasmtime 48 ships them), wasi:http/outgoing-handler and wasi:http/types \
         (0.2.x), and sluice:plugin's types, log, process, secrets, deploy-targets, grants \
         and load-generator (0.1.x)",
        wasi.join(", ")
    )
}

/// Why the runner cannot link `component`, when the reason is one this module can
/// name: a contract version it does not speak, or imports it does not provide. `None`
/// when every import looks provided (the linker's own error then says what is wrong).
pub fn refusal(engine: &wasmtime::Engine, component: &Component) -> Option<String> {
    let ty = component.component_type();
    let imports: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    if let Some(other) = imports
        .iter()
        .chain(&exports)
        .filter_map(|name| split(name))
        .find(|name| {
            name.package == "sluice:plugin"
                && name.version.is_some_and(|v| version_line(v) != "0.1")
        })
    {
        return Some(format!(
            "it is built for the contract sluice:plugin@{}, and this runner speaks {CONTRACT} \
             (components built for 0.1.0 to 0.1.7 load); rebuild it against this runner's \
             contract (`sluice plugin wit --out DIR` writes it)",
            other.version.unwrap_or("?")
        ));
    }
    let missing: Vec<&String> = imports.iter().filter(|name| !provided(name)).collect();
    if missing.is_empty() {
        return None;
    }
    let names: Vec<String> = missing.iter().map(|name| format!("`{name}`")).collect();
    let (subject, verb) = if names.len() == 1 {
        ("an interface", "it")
    } else {
        ("interfaces", "them")
    };
    let mut text = format!(
        "it imports {subject} this runner does not provide: {}. The runner provides {}. \
         Build the component without {verb}: do not import {verb}",
        names.join(", "),
        provided_summary()
    );
    if missing.iter().any(|name| name.starts_with("wasi:http/")) {
        text.push_str(
            " (componentize-js: build for the world of `sluice plugin new --lang js` with \
             `--disable fetch-event`; a step is called through its `plugin` export, never as an \
             HTTP handler; outgoing requests use wasi:http/outgoing-handler)",
        );
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIT: &[(&str, &str)] = &[
        ("wasi:cli", include_str!("../../../wit/deps/cli.wit")),
        ("wasi:clocks", include_str!("../../../wit/deps/clocks.wit")),
        (
            "wasi:filesystem",
            include_str!("../../../wit/deps/filesystem.wit"),
        ),
        ("wasi:io", include_str!("../../../wit/deps/io.wit")),
        ("wasi:random", include_str!("../../../wit/deps/random.wit")),
        (
            "wasi:sockets",
            include_str!("../../../wit/deps/sockets.wit"),
        ),
        ("wasi:http", include_str!("../../../wit/deps/http.wit")),
        ("sluice:plugin", include_str!("../../../wit/plugin.wit")),
    ];

    #[test]
    fn every_provided_interface_is_in_the_contracts_wit() {
        for (package, line, interfaces) in PROVIDED {
            let (_, text) = WIT
                .iter()
                .find(|(name, _)| name == package)
                .unwrap_or_else(|| panic!("{package} is not in wit/"));
            let declared = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("package "))
                .unwrap();
            assert!(
                declared.starts_with(&format!("{package}@{line}.")),
                "{declared} is not {package}@{line}.x"
            );
            for interface in *interfaces {
                assert!(
                    text.lines()
                        .any(|l| l.trim() == format!("interface {interface} {{")),
                    "{package} has no interface {interface}"
                );
            }
        }
        assert_eq!(CONTRACT, format!("sluice:plugin@{}", "0.1.7"));
        assert!(WIT[7].1.contains(&format!("package {CONTRACT};")));
    }

    /// The top-level imports of a component binary.
    fn imports_of(component: &[u8]) -> Vec<String> {
        let mut depth = 0_u32;
        let mut names = Vec::new();
        for payload in wasmparser::Parser::new(0).parse_all(component) {
            match payload.expect("a valid component") {
                wasmparser::Payload::ModuleSection { .. }
                | wasmparser::Payload::ComponentSection { .. } => depth += 1,
                wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
                wasmparser::Payload::ComponentImportSection(reader) if depth == 0 => {
                    for import in reader {
                        names.push(import.expect("a valid import").name.name.to_owned());
                    }
                }
                _ => {}
            }
        }
        names
    }

    #[test]
    fn every_import_of_every_builtin_is_provided() {
        let mut seen = 0;
        for name in crate::builtins::names() {
            let component = crate::builtins::find(name).unwrap();
            for import in imports_of(component) {
                assert!(
                    provided(&import),
                    "builtin:{name} imports {import}, not in PROVIDED"
                );
                seen += 1;
            }
        }
        assert!(seen > 20, "only {seen} imports seen");
    }

    #[test]
    fn provided_matches_semver_compatible_versions_only() {
        assert!(provided("wasi:cli/environment@0.2.0"));
        assert!(provided("wasi:http/outgoing-handler@0.2.12"));
        assert!(provided("sluice:plugin/log@0.1.0"));
        assert!(!provided("wasi:http/incoming-handler@0.2.3"));
        assert!(!provided("wasi:cli/environment@0.3.0"));
        assert!(!provided("sluice:plugin/log@0.2.0"));
        assert!(!provided("example:missing/thing@0.1.0"));
        assert!(!provided("unversioned"));
    }
}
