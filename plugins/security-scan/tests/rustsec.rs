//! The RustSec database against real Cargo.lock files: `data/cargo/vulnerable` pins
//! crates inside known advisories' ranges, `data/cargo/patched` the first fixed
//! versions (both made by `cargo generate-lockfile`, see data/README.md). The expected
//! advisory sets are computed here, independently of the scanner, from the advisories'
//! own `introduced`/`fixed` pairs.

mod common;

use std::collections::BTreeSet;

use semver::Version;
use sluice_plugin_security_scan::lockfiles::Format;
use sluice_plugin_security_scan::osv::Database;
use sluice_plugin_security_scan::scan::scan_packages;

/// `(advisory id, crate, version)` for every advisory whose ranges contain a registry
/// package of `lockfile`, read straight from the JSON files: a version is affected when
/// it lies in `[introduced, next fixed)` or `[introduced, last_affected]` of some range,
/// the events being listed in order as RustSec writes them.
fn expected(lockfile: &str) -> BTreeSet<(String, String, String)> {
    let lock: toml::Table = toml::from_str(lockfile).unwrap();
    let packages: Vec<(String, Version)> = lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p.get("source").is_some())
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                Version::parse(p["version"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(common::rustsec_db()).unwrap() {
        let path = entry.unwrap().path();
        let advisory: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if advisory.get("withdrawn").is_some_and(|w| !w.is_null()) {
            continue;
        }
        for affected in advisory["affected"].as_array().unwrap() {
            let name = affected["package"]["name"].as_str().unwrap();
            for (pkg, version) in packages.iter().filter(|(n, _)| n == name) {
                let mut hit = affected["versions"]
                    .as_array()
                    .is_some_and(|vs| vs.iter().any(|v| v.as_str() == Some(&version.to_string())));
                for range in affected["ranges"].as_array().unwrap() {
                    let mut start: Option<Version> = None;
                    for event in range["events"].as_array().unwrap() {
                        let (kind, value) = event.as_object().unwrap().iter().next().unwrap();
                        let value = value.as_str().unwrap();
                        let v = if value == "0" {
                            Version::new(0, 0, 0)
                        } else {
                            Version::parse(value).unwrap()
                        };
                        match kind.as_str() {
                            "introduced" => start = Some(v),
                            "fixed" => {
                                if let Some(s) = start.take() {
                                    hit |= cmp_le(&s, version) && cmp_lt(version, &v);
                                }
                            }
                            "last_affected" => {
                                if let Some(s) = start.take() {
                                    hit |= cmp_le(&s, version) && cmp_le(version, &v);
                                }
                            }
                            other => panic!("unexpected event {other} in {}", path.display()),
                        }
                    }
                    if let Some(s) = start {
                        hit |= cmp_le(&s, version);
                    }
                }
                if hit {
                    out.insert((
                        advisory["id"].as_str().unwrap().to_owned(),
                        pkg.clone(),
                        version.to_string(),
                    ));
                }
            }
        }
    }
    out
}

fn cmp_lt(a: &Version, b: &Version) -> bool {
    // `0` as introduced means "from the very first version", pre-releases included.
    (a.major, a.minor, a.patch, &a.pre) < (b.major, b.minor, b.patch, &b.pre)
}
fn cmp_le(a: &Version, b: &Version) -> bool {
    !cmp_lt(b, a)
}

fn scanned(db: &Database, lockfile: &str) -> BTreeSet<(String, String, String)> {
    let parsed = Format::Cargo.parse(lockfile).unwrap();
    let result = scan_packages(db, &parsed.packages, &[], &[], &[], 20_000);
    assert!(result.problems.is_empty(), "{:?}", result.problems);
    result
        .vulnerabilities
        .iter()
        .map(|h| {
            (
                h.advisory.id.clone(),
                h.package.name.clone(),
                h.package.version.clone(),
            )
        })
        .collect()
}

#[test]
fn vulnerable_versions_yield_exactly_their_advisories() {
    let db = Database::load(&common::rustsec_db()).unwrap();
    assert!(db.loaded > 1000, "only {} advisories loaded", db.loaded);
    let lockfile = common::read("cargo/vulnerable/Cargo.lock");
    let want = expected(&lockfile);
    let got = scanned(&db, &lockfile);
    assert_eq!(got, want);
    // The advisories the fixture was built around are there.
    let ids: BTreeSet<&str> = got.iter().map(|(id, _, _)| id.as_str()).collect();
    for id in [
        "RUSTSEC-2021-0003",
        "RUSTSEC-2017-0004",
        "RUSTSEC-2022-0013",
        "RUSTSEC-2022-0006",
        "RUSTSEC-2021-0130",
    ] {
        assert!(ids.contains(id), "{id} missing from {ids:?}");
    }
}

#[test]
fn patched_versions_yield_none_of_them() {
    let db = Database::load(&common::rustsec_db()).unwrap();
    let lockfile = common::read("cargo/patched/Cargo.lock");
    let want = expected(&lockfile);
    let got = scanned(&db, &lockfile);
    assert_eq!(got, want);
    let ids: BTreeSet<&str> = got.iter().map(|(id, _, _)| id.as_str()).collect();
    for id in [
        "RUSTSEC-2021-0003",
        "RUSTSEC-2017-0004",
        "RUSTSEC-2022-0013",
        "RUSTSEC-2022-0006",
        "RUSTSEC-2021-0130",
    ] {
        assert!(
            !ids.contains(id),
            "{id} still reported for the patched versions: {ids:?}"
        );
    }
}

#[test]
fn the_database_loads_from_an_all_zip_too() {
    // Pack the real advisories into an OSV-style all.zip and load it.
    let dir = std::env::temp_dir().join(format!("sluice-osv-zip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let zip_path = dir.join("all.zip");
    let mut writer = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut count = 0;
    for entry in std::fs::read_dir(common::rustsec_db()).unwrap() {
        let path = entry.unwrap().path();
        writer
            .start_file(path.file_name().unwrap().to_str().unwrap(), options)
            .unwrap();
        std::io::Write::write_all(&mut writer, &std::fs::read(&path).unwrap()).unwrap();
        count += 1;
    }
    writer.finish().unwrap();
    let from_zip = Database::load(&zip_path).unwrap();
    let from_dir = Database::load(&common::rustsec_db()).unwrap();
    assert_eq!((from_zip.loaded + from_zip.withdrawn), count);
    assert_eq!(
        (from_zip.loaded, from_zip.withdrawn, from_zip.newest_day),
        (from_dir.loaded, from_dir.withdrawn, from_dir.newest_day)
    );
    let lockfile = common::read("cargo/vulnerable/Cargo.lock");
    assert_eq!(scanned(&from_zip, &lockfile), scanned(&from_dir, &lockfile));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_advisory_range_in_the_database_evaluates() {
    // Each range of each real advisory must be evaluable: an unparseable event version
    // would silently hide advisories otherwise.
    let db = Database::load(&common::rustsec_db()).unwrap();
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(common::rustsec_db()).unwrap() {
        let advisory: serde_json::Value =
            serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
        for affected in advisory["affected"].as_array().unwrap() {
            names.insert(affected["package"]["name"].as_str().unwrap().to_owned());
        }
    }
    assert!(names.len() > 500, "{} crates", names.len());
    for name in &names {
        for version in ["0.0.0", "0.1.0", "1.0.0", "99.0.0"] {
            let (_, problems) = db
                .matches(
                    sluice_plugin_security_scan::versions::Ecosystem::CratesIo,
                    name,
                    version,
                )
                .unwrap();
            assert!(problems.is_empty(), "{name} {version}: {problems:?}");
        }
    }
}
