//! The dependency scan proper, independent of the plugin interface (the benchmark and
//! tests drive it directly): match a lockfile's packages against a [`Database`], apply
//! the ignore list (an ignore matches an advisory id or any of its aliases and stops
//! applying the day after its expiry date), and check the denylist.

use std::sync::Arc;

use crate::denylist::{self, GitRefEntry, Hit, PackageEntry};
use crate::lockfiles::Package;
use crate::osv::{Advisory, Database};

/// An entry of the ignore list.
#[derive(Clone, Debug)]
pub struct Ignore {
    /// Advisory id or alias.
    pub id: String,
    /// Why it is ignored.
    pub reason: String,
    /// Last day (days since the Unix epoch) on which it applies; `None`: no expiry.
    pub expires: Option<i64>,
}

/// A package found vulnerable.
#[derive(Clone, Debug)]
pub struct VulnHit {
    /// The package.
    pub package: Package,
    /// The advisory.
    pub advisory: Arc<Advisory>,
    /// Index of the matching `affected` entry.
    pub affected_index: usize,
}

/// The result of scanning one lockfile's packages.
#[derive(Debug, Default)]
pub struct DependencyScan {
    /// Vulnerable packages that are not ignored.
    pub vulnerabilities: Vec<VulnHit>,
    /// Vulnerabilities dropped by a live ignore entry: (hit, reason).
    pub ignored: Vec<(VulnHit, String)>,
    /// Denylist hits.
    pub blocked: Vec<(Package, Hit)>,
    /// Things that could not be judged (an unparseable version or range).
    pub problems: Vec<String>,
    /// Ignore entries that matched but had expired: (id, expiry day).
    pub expired_ignores: Vec<(String, i64)>,
}

/// Scan packages. `today` is days since the Unix epoch.
pub fn scan_packages(
    db: &Database,
    packages: &[Package],
    ignores: &[Ignore],
    deny_packages: &[PackageEntry],
    deny_refs: &[GitRefEntry],
    today: i64,
) -> DependencyScan {
    let mut out = DependencyScan::default();
    for package in packages {
        for hit in denylist::check(package, deny_packages, deny_refs) {
            out.blocked.push((package.clone(), hit));
        }
        if package.git.is_some() && package.version == "0" {
            continue; // no version to match (a git checkout without one)
        }
        let (matches, problems) =
            match db.matches(package.ecosystem, &package.name, &package.version) {
                Ok(found) => found,
                Err(e) => {
                    if !db
                        .advisories_for(package.ecosystem, &package.name)
                        .is_empty()
                    {
                        out.problems
                            .push(format!("{} {}: {e}", package.name, package.version));
                    }
                    continue;
                }
            };
        out.problems.extend(
            problems
                .into_iter()
                .map(|p| format!("{} {}: {p}", package.name, package.version)),
        );
        for (advisory, affected_index) in matches {
            let hit = VulnHit {
                package: package.clone(),
                advisory,
                affected_index,
            };
            let ignore = ignores
                .iter()
                .find(|i| i.id == hit.advisory.id || hit.advisory.aliases.contains(&i.id));
            match ignore {
                Some(i) if i.expires.is_none_or(|day| today <= day) => {
                    out.ignored.push((hit, i.reason.clone()))
                }
                Some(i) => {
                    if let Some(day) = i.expires {
                        out.expired_ignores.push((i.id.clone(), day));
                    }
                    out.vulnerabilities.push(hit);
                }
                None => out.vulnerabilities.push(hit),
            }
        }
    }
    out
}

/// Days since the Unix epoch, now.
pub fn today() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    i64::try_from(secs / 86_400).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::osv::parse_date;
    use crate::versions::Ecosystem;

    fn db() -> Database {
        let mut db = Database::default();
        db.add_json(br#"{"id":"GHSA-aaaa","aliases":["CVE-2020-1"],"modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"lodash"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"4.17.19"}]}]}]}"#, "a").unwrap();
        db
    }

    #[test]
    fn ignores_apply_until_they_expire() {
        let db = db();
        let pkgs = [
            Package::new(Ecosystem::Npm, "lodash", "4.17.15", Some(10)),
            Package::new(Ecosystem::Npm, "lodash", "4.17.21", Some(20)),
        ];
        let day = parse_date("2026-01-10").unwrap();
        let plain = scan_packages(&db, &pkgs, &[], &[], &[], day);
        assert_eq!(plain.vulnerabilities.len(), 1);
        assert_eq!(plain.vulnerabilities[0].package.line, Some(10));
        let ignore = |expires: &str| {
            [Ignore {
                id: "CVE-2020-1".into(),
                reason: "not reachable".into(),
                expires: parse_date(expires),
            }]
        };
        let live = scan_packages(&db, &pkgs, &ignore("2026-01-10"), &[], &[], day);
        assert_eq!((live.vulnerabilities.len(), live.ignored.len()), (0, 1));
        let expired = scan_packages(&db, &pkgs, &ignore("2026-01-09"), &[], &[], day);
        assert_eq!(
            (
                expired.vulnerabilities.len(),
                expired.ignored.len(),
                expired.expired_ignores.len()
            ),
            (1, 0, 1)
        );
    }

    #[test]
    fn unparseable_versions_of_known_packages_are_problems() {
        let db = db();
        let out = scan_packages(
            &db,
            &[
                Package::new(Ecosystem::Npm, "lodash", "latest", None),
                Package::new(Ecosystem::Npm, "other", "latest", None),
            ],
            &[],
            &[],
            &[],
            0,
        );
        assert_eq!(out.problems.len(), 1, "{:?}", out.problems);
    }
}
