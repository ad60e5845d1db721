//! Each lockfile reader on a real lockfile produced by its own tool (see
//! data/README.md for the commands). Expected counts are computed from the files with
//! a different method (a JSON/YAML/TOML parse or a plain text count) than the reader's.

mod common;

use sluice_lockfiles::versions::Ecosystem;
use sluice_lockfiles::{Format, Package, Parsed};

fn parse(path: &str) -> Parsed {
    let format = Format::detect(&common::data(path))
        .unwrap_or_else(|| panic!("{path}: format not detected"));
    format
        .parse(&common::read(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn find<'a>(parsed: &'a Parsed, name: &str) -> &'a Package {
    parsed
        .packages
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("{name} not found"))
}

/// The 1-based line of the first line of `path` that equals `line` once trimmed.
fn line_of(path: &str, line: &str) -> u32 {
    common::read(path)
        .lines()
        .position(|l| l.trim() == line)
        .map(|i| i as u32 + 1)
        .unwrap_or_else(|| panic!("{line:?} not in {path}"))
}

#[test]
fn package_lock_v2_and_v3() {
    for dir in ["package-lock-v2", "package-lock-v3"] {
        let path = format!("{dir}/package-lock.json");
        let parsed = parse(&path);
        let json: serde_json::Value = serde_json::from_str(&common::read(&path)).unwrap();
        let keys = json["packages"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with("node_modules/"))
            .count();
        assert_eq!(parsed.packages.len(), keys, "{dir}");
        let lodash = find(&parsed, "lodash");
        assert_eq!(
            (lodash.version.as_str(), lodash.ecosystem),
            ("4.17.15", Ecosystem::Npm)
        );
        assert_eq!(
            lodash.line,
            Some(line_of(&path, "\"node_modules/lodash\": {"))
        );
        assert_eq!(find(&parsed, "express").version, "4.17.1");
        assert_eq!(find(&parsed, "minimist").version, "1.2.0");
        assert!(parsed.packages.iter().all(|p| p.line.is_some()));
    }
}

#[test]
fn yarn_v1() {
    let path = "yarn/yarn.lock";
    let parsed = parse(path);
    let headers = common::read(path)
        .lines()
        .filter(|l| !l.starts_with([' ', '#']) && l.ends_with(':'))
        .count();
    assert_eq!(parsed.packages.len(), headers);
    let lodash = find(&parsed, "lodash");
    assert_eq!(
        (lodash.version.as_str(), lodash.line),
        ("4.17.15", Some(line_of(path, "lodash@4.17.15:")))
    );
    assert_eq!(find(&parsed, "express").version, "4.17.1");
}

#[test]
fn pnpm_v9() {
    let path = "pnpm/pnpm-lock.yaml";
    let parsed = parse(path);
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&common::read(path)).unwrap();
    assert_eq!(
        parsed.packages.len(),
        yaml["packages"].as_mapping().unwrap().len()
    );
    let lodash = find(&parsed, "lodash");
    assert_eq!(
        (lodash.version.as_str(), lodash.line),
        ("4.17.15", Some(line_of(path, "lodash@4.17.15:")))
    );
    assert_eq!(find(&parsed, "express").version, "4.17.1");
    // pnpm resolves the tree itself: it picked a second http-errors next to npm's.
    let versions: Vec<&str> = parsed
        .packages
        .iter()
        .filter(|p| p.name == "http-errors")
        .map(|p| p.version.as_str())
        .collect();
    assert_eq!(versions, ["1.7.2", "1.7.3"]);
}

#[test]
fn requirements_from_pip_freeze() {
    let path = "requirements/requirements.txt";
    let parsed = parse(path);
    let pins = common::read(path)
        .lines()
        .filter(|l| l.contains("=="))
        .count();
    assert_eq!(parsed.packages.len(), pins);
    assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
    let jinja = find(&parsed, "Jinja2");
    assert_eq!(
        (jinja.version.as_str(), jinja.ecosystem, jinja.line),
        ("2.10", Ecosystem::PyPI, Some(line_of(path, "Jinja2==2.10")))
    );
}

#[test]
fn pipfile_lock() {
    let path = "pipfile/Pipfile.lock";
    let parsed = parse(path);
    let json: serde_json::Value = serde_json::from_str(&common::read(path)).unwrap();
    let count =
        json["default"].as_object().unwrap().len() + json["develop"].as_object().unwrap().len();
    assert_eq!(parsed.packages.len(), count);
    let jinja = find(&parsed, "jinja2");
    assert_eq!(
        (jinja.version.as_str(), jinja.line),
        ("2.10", Some(line_of(path, "\"jinja2\": {")))
    );
    assert_eq!(find(&parsed, "requests").version, "2.25.0");
}

#[test]
fn poetry_lock() {
    let path = "poetry/poetry.lock";
    let parsed = parse(path);
    let toml: toml::Table = toml::from_str(&common::read(path)).unwrap();
    assert_eq!(
        parsed.packages.len(),
        toml["package"].as_array().unwrap().len()
    );
    assert_eq!(find(&parsed, "jinja2").version, "2.11.2");
    assert_eq!(find(&parsed, "requests").version, "2.25.0");
    let first = &parsed.packages[0];
    assert_eq!(first.line, Some(line_of(path, "[[package]]")));
}

#[test]
fn gemfile_lock() {
    let path = "gemfile/Gemfile.lock";
    let parsed = parse(path);
    let text = common::read(path);
    let specs = text
        .lines()
        .filter(|l| l.starts_with("    ") && !l.starts_with("     "))
        .count();
    assert_eq!(parsed.packages.len(), specs);
    let rack = find(&parsed, "rack");
    assert_eq!(
        (rack.ecosystem, rack.line),
        (
            Ecosystem::RubyGems,
            Some(line_of(path, &format!("rack ({})", rack.version)))
        )
    );
    assert!(find(&parsed, "rspec-core").version.starts_with("3."));
}

#[test]
fn go_mod_and_go_sum() {
    let parsed = parse("gomod/go.mod");
    let got: Vec<_> = parsed
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("github.com/pkg/errors", "v0.9.1"),
            ("golang.org/x/text", "v0.7.0")
        ]
    );
    assert_eq!(
        parsed.packages[1].line,
        Some(line_of("gomod/go.mod", "golang.org/x/text v0.7.0"))
    );
    let sum = parse("gomod/go.sum");
    let got_sum: Vec<_> = sum
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str()))
        .collect();
    assert_eq!(got_sum, got);
}

#[test]
fn cargo_lock() {
    let path = "cargo/vulnerable/Cargo.lock";
    let parsed = parse(path);
    let text = common::read(path);
    let with_source = text.lines().filter(|l| l.starts_with("source = ")).count();
    assert_eq!(parsed.packages.len(), with_source);
    assert_eq!(parsed.skipped.len(), 1, "the root package is local");
    let smallvec = find(&parsed, "smallvec");
    assert_eq!(smallvec.version, "1.6.0");
    assert_eq!(
        smallvec.line,
        Some(line_of(path, "name = \"smallvec\"") - 1)
    );
}

#[test]
fn every_real_lockfile_is_found_by_auto_detection_names() {
    for (dir, name) in [
        ("package-lock-v2", "package-lock.json"),
        ("yarn", "yarn.lock"),
        ("pnpm", "pnpm-lock.yaml"),
        ("requirements", "requirements.txt"),
        ("pipfile", "Pipfile.lock"),
        ("poetry", "poetry.lock"),
        ("gemfile", "Gemfile.lock"),
        ("gomod", "go.mod"),
        ("cargo/patched", "Cargo.lock"),
    ] {
        let path = common::data(&format!("{dir}/{name}"));
        assert!(path.is_file(), "missing fixture {}", path.display());
        assert!(Format::AUTO.iter().any(|(n, _)| *n == name));
    }
}
