//! The dependency closure of a built target: the packages its artifact contains, with
//! the edges between them, read from the tool that knows the real graph.
//!
//! - Rust: `cargo metadata --format-version 1 --filter-platform <triple>` ([`cargo_metadata`]).
//!   Starting from the project's package, normal dependency edges are followed: those
//!   packages are [`Scope::Required`]. Build dependencies (and what they pull in) run
//!   only while building and are [`Scope::Build`]. Dev dependencies are not part of the
//!   artifact and are left out. This is the package set `cargo tree -e normal` prints.
//! - npm: a package-lock.json ([`package_lock`]): the root's `dependencies`,
//!   `optionalDependencies` and `peerDependencies`, followed through the lock's install
//!   tree; `devDependencies` and what only they pull in are left out, like
//!   `npm ls --omit=dev`.
//! - Go: `go list -deps -json ./...` ([`go_list`]): the modules of the packages the
//!   main packages import, transitively (no test imports), with an edge from a module to
//!   each module it imports a package from.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

use serde::Deserialize;

use crate::versions::Ecosystem;
use crate::{PackageRef, Parsed};

/// Why a closure could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ClosureError {
    /// The tool's output is not what it documents.
    #[error("cannot read the output of `{tool}`: {message}")]
    Output {
        /// The command whose output was read.
        tool: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The output does not say what the project builds.
    #[error("`{tool}` does not list the project at {project}: {hint}")]
    NoRoot {
        /// The command whose output was read.
        tool: &'static str,
        /// The project folder.
        project: String,
        /// What to check.
        hint: &'static str,
    },
}

/// How a component takes part in the artifact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Linked into (or shipped with) the artifact.
    Required,
    /// Used only to build it (Cargo build dependencies and their dependencies).
    Build,
}

/// One package of the closure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Component {
    /// Its ecosystem.
    pub ecosystem: Ecosystem,
    /// Name and exact version.
    pub id: PackageRef,
    /// Where it comes from as the tool says (`registry+https://...`, `git+...`); `None`
    /// for a local (path or workspace) package.
    pub source: Option<String>,
    /// Required or build-only.
    pub scope: Scope,
    /// The components it depends on (in this closure).
    pub dependencies: Vec<PackageRef>,
}

/// The closure of a project's built target(s).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Closure {
    /// The project's own packages that were built (usually one).
    pub roots: Vec<PackageRef>,
    /// What each root depends on directly.
    pub root_dependencies: BTreeMap<PackageRef, Vec<PackageRef>>,
    /// Every other package, sorted by name and version.
    pub components: Vec<Component>,
}

impl Closure {
    /// The components of `scope`.
    pub fn scoped(&self, scope: Scope) -> impl Iterator<Item = &Component> {
        self.components.iter().filter(move |c| c.scope == scope)
    }
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<MetadataPackage>,
    #[serde(default)]
    workspace_default_members: Option<Vec<String>>,
    workspace_members: Vec<String>,
    resolve: Option<Resolve>,
}

#[derive(Deserialize)]
struct MetadataPackage {
    id: String,
    name: String,
    version: String,
    source: Option<String>,
    manifest_path: String,
}

#[derive(Deserialize)]
struct Resolve {
    nodes: Vec<Node>,
    root: Option<String>,
}

#[derive(Deserialize)]
struct Node {
    id: String,
    #[serde(default)]
    deps: Vec<NodeDep>,
}

#[derive(Deserialize)]
struct NodeDep {
    pkg: String,
    #[serde(default)]
    dep_kinds: Vec<DepKind>,
}

#[derive(Deserialize)]
struct DepKind {
    /// `null` for normal, `"dev"`, `"build"`.
    kind: Option<String>,
}

const CARGO_METADATA: &str = "cargo metadata";

/// The closure of the package whose manifest is `project/Cargo.toml`, from the JSON of
/// `cargo metadata --format-version 1 --filter-platform <target>` run there. When
/// `project` holds a virtual workspace, its default members are the roots.
pub fn cargo_metadata(json: &str, project: &Path) -> Result<Closure, ClosureError> {
    let output = |message: String| ClosureError::Output {
        tool: CARGO_METADATA,
        message,
    };
    let metadata: Metadata = serde_json::from_str(json).map_err(|e| output(e.to_string()))?;
    let resolve = metadata.resolve.ok_or_else(|| {
        output("it has no `resolve` graph (was it run with --no-deps?)".to_owned())
    })?;
    let packages: BTreeMap<&str, &MetadataPackage> = metadata
        .packages
        .iter()
        .map(|p| (p.id.as_str(), p))
        .collect();
    let nodes: BTreeMap<&str, &Node> = resolve.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let manifest = project.join("Cargo.toml");
    let own = metadata
        .packages
        .iter()
        .find(|p| Path::new(&p.manifest_path) == manifest)
        .map(|p| vec![p.id.clone()]);
    let roots: Vec<String> = match own {
        Some(roots) => roots,
        None => match (&resolve.root, &metadata.workspace_default_members) {
            (Some(root), _) => vec![root.clone()],
            (None, Some(members)) if !members.is_empty() => members.clone(),
            _ => metadata.workspace_members.clone(),
        },
    };
    if roots.is_empty() {
        return Err(ClosureError::NoRoot {
            tool: CARGO_METADATA,
            project: project.display().to_string(),
            hint: "it has no workspace members",
        });
    }
    let reference = |id: &str| -> Result<PackageRef, ClosureError> {
        let package = packages.get(id).ok_or_else(|| {
            output(format!(
                "package `{id}` is in `resolve` but not in `packages`"
            ))
        })?;
        Ok(PackageRef {
            name: package.name.clone(),
            version: package.version.clone(),
        })
    };
    // Edges of `id` of the given kinds (`None` = normal).
    let edges = |id: &str, kinds: &[Option<&str>]| -> Vec<&str> {
        nodes
            .get(id)
            .map(|node| {
                node.deps
                    .iter()
                    .filter(|dep| {
                        dep.dep_kinds
                            .iter()
                            .any(|k| kinds.contains(&k.kind.as_deref()))
                    })
                    .map(|dep| dep.pkg.as_str())
                    .collect()
            })
            .unwrap_or_default()
    };
    const NORMAL: &[Option<&str>] = &[None];
    const BUILD: &[Option<&str>] = &[Some("build")];
    const NORMAL_OR_BUILD: &[Option<&str>] = &[None, Some("build")];

    let root_ids: BTreeSet<&str> = roots.iter().map(String::as_str).collect();
    let required = reachable(root_ids.iter().copied(), |id| edges(id, NORMAL));
    // Build scripts of anything in the artifact, and what they need.
    let build_starts: Vec<&str> = required
        .iter()
        .flat_map(|id| edges(id, BUILD))
        .filter(|id| !required.contains(id))
        .collect();
    let build = reachable(build_starts, |id| edges(id, NORMAL_OR_BUILD));

    let mut closure = Closure::default();
    for root in &root_ids {
        let id = reference(root)?;
        let direct = edges(root, NORMAL)
            .into_iter()
            .chain(edges(root, BUILD))
            .map(reference)
            .collect::<Result<Vec<_>, _>>()?;
        closure.roots.push(id.clone());
        closure.root_dependencies.insert(id, direct);
    }
    for (set, scope, kinds) in [
        (&required, Scope::Required, NORMAL),
        (&build, Scope::Build, NORMAL_OR_BUILD),
    ] {
        for id in set.iter().filter(|id| !root_ids.contains(*id)) {
            if scope == Scope::Build && required.contains(id) {
                continue;
            }
            let package = packages.get(id).ok_or_else(|| {
                output(format!(
                    "package `{id}` is in `resolve` but not in `packages`"
                ))
            })?;
            let mut dependencies = edges(id, kinds)
                .into_iter()
                .map(reference)
                .collect::<Result<Vec<_>, _>>()?;
            if scope == Scope::Required {
                // A required package's build dependencies are build-time components.
                dependencies.extend(
                    edges(id, BUILD)
                        .into_iter()
                        .map(reference)
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
            dependencies.sort();
            dependencies.dedup();
            closure.components.push(Component {
                ecosystem: Ecosystem::CratesIo,
                id: reference(id)?,
                source: package.source.clone(),
                scope,
                dependencies,
            });
        }
    }
    closure.components.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(closure)
}

/// Every id reachable from `starts` (included) through `next`.
fn reachable<'a, I, F>(starts: I, next: F) -> BTreeSet<&'a str>
where
    I: IntoIterator<Item = &'a str>,
    F: Fn(&'a str) -> Vec<&'a str>,
{
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<&str> = starts.into_iter().collect();
    while let Some(id) = queue.pop_front() {
        if seen.insert(id) {
            queue.extend(next(id));
        }
    }
    seen
}

/// The runtime closure of a parsed package-lock.json: from the root's runtime
/// dependencies ([`Parsed::direct`]) through each package's edges. `root` names the
/// project (from the lock's `name` and `version`).
pub fn package_lock(parsed: &Parsed, root: PackageRef) -> Closure {
    let by_ref: BTreeMap<PackageRef, &crate::Package> = parsed
        .packages
        .iter()
        .map(|p| {
            (
                PackageRef {
                    name: p.name.clone(),
                    version: p.version.clone(),
                },
                p,
            )
        })
        .collect();
    let mut seen: BTreeSet<PackageRef> = BTreeSet::new();
    let mut queue: VecDeque<PackageRef> = parsed.direct.iter().cloned().collect();
    let mut closure = Closure::default();
    while let Some(id) = queue.pop_front() {
        if !seen.insert(id.clone()) {
            continue;
        }
        // Several install paths of one name@version may list different (resolved)
        // edges; their union is what the copies need.
        let mut dependencies: Vec<PackageRef> = parsed
            .packages
            .iter()
            .filter(|p| p.name == id.name && p.version == id.version)
            .flat_map(|p| p.dependencies.iter().cloned())
            .collect();
        dependencies.sort();
        dependencies.dedup();
        queue.extend(dependencies.iter().cloned());
        closure.components.push(Component {
            ecosystem: Ecosystem::Npm,
            source: by_ref.get(&id).and_then(|p| p.source.clone()),
            id,
            scope: Scope::Required,
            dependencies,
        });
    }
    closure.components.sort_by(|a, b| a.id.cmp(&b.id));
    closure
        .root_dependencies
        .insert(root.clone(), parsed.direct.clone());
    closure.roots.push(root);
    closure
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GoPackage {
    #[serde(default)]
    standard: bool,
    module: Option<GoModule>,
    #[serde(default)]
    imports: Vec<String>,
    import_path: String,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "PascalCase")]
struct GoModule {
    path: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    main: bool,
    replace: Option<Box<GoModule>>,
}

const GO_LIST: &str = "go list -deps -json ./...";

/// The closure from the output of `go list -deps -json ./...` (a stream of JSON
/// objects, one per package): each non-standard package's module, with an edge from a
/// module to each module it imports a package from. The main module is the root. A
/// replaced module is listed as its replacement when that is another module version;
/// a module replaced by a local folder keeps its own path and has no source.
pub fn go_list(json: &str) -> Result<Closure, ClosureError> {
    let mut by_import: BTreeMap<String, GoPackage> = BTreeMap::new();
    for package in serde_json::Deserializer::from_str(json).into_iter::<GoPackage>() {
        let package = package.map_err(|e| ClosureError::Output {
            tool: GO_LIST,
            message: e.to_string(),
        })?;
        by_import.insert(package.import_path.clone(), package);
    }
    let identity = |module: &GoModule| -> (PackageRef, Option<String>) {
        match &module.replace {
            Some(replacement) if !replacement.version.is_empty() => (
                PackageRef {
                    name: replacement.path.clone(),
                    version: replacement.version.clone(),
                },
                Some(format!("proxy:{}", replacement.path)),
            ),
            Some(_) => (
                PackageRef {
                    name: module.path.clone(),
                    version: module.version.clone(),
                },
                None,
            ),
            None => (
                PackageRef {
                    name: module.path.clone(),
                    version: module.version.clone(),
                },
                Some(format!("proxy:{}", module.path)),
            ),
        }
    };
    let mut modules: BTreeMap<PackageRef, (bool, Option<String>, BTreeSet<PackageRef>)> =
        BTreeMap::new();
    for package in by_import.values().filter(|p| !p.standard) {
        let Some(module) = &package.module else {
            continue;
        };
        let (id, source) = identity(module);
        let mut edges = BTreeSet::new();
        for import in &package.imports {
            let Some(imported) = by_import.get(import).filter(|p| !p.standard) else {
                continue;
            };
            if let Some(other) = &imported.module {
                let (other, _) = identity(other);
                if other != id {
                    edges.insert(other);
                }
            }
        }
        let entry = modules
            .entry(id)
            .or_insert_with(|| (module.main, source, BTreeSet::new()));
        entry.2.extend(edges);
    }
    let mut closure = Closure::default();
    for (id, (main, source, edges)) in modules {
        if main {
            closure.roots.push(id.clone());
            closure
                .root_dependencies
                .insert(id, edges.into_iter().collect());
        } else {
            closure.components.push(Component {
                ecosystem: Ecosystem::Go,
                id,
                source,
                scope: Scope::Required,
                dependencies: edges.into_iter().collect(),
            });
        }
    }
    if closure.roots.is_empty() {
        return Err(ClosureError::NoRoot {
            tool: GO_LIST,
            project: "the project folder".to_owned(),
            hint: "no package of the main module was listed (is there a go.mod with Go files?)",
        });
    }
    Ok(closure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(closure: &Closure, scope: Scope) -> Vec<String> {
        closure
            .scoped(scope)
            .map(|c| format!("{} {}", c.id.name, c.id.version))
            .collect()
    }

    #[test]
    fn go_list_modules_and_edges() {
        let json = r#"{"ImportPath":"fmt","Standard":true}
{"ImportPath":"golang.org/x/text/language","Module":{"Path":"golang.org/x/text","Version":"v0.7.0"},"Imports":["fmt"]}
{"ImportPath":"github.com/pkg/errors","Module":{"Path":"github.com/pkg/errors","Version":"v0.9.1"},"Imports":["golang.org/x/text/language"]}
{"ImportPath":"example.com/app","Module":{"Path":"example.com/app","Main":true},"Imports":["fmt","github.com/pkg/errors"]}"#;
        let closure = go_list(json).unwrap();
        assert_eq!(closure.roots[0].name, "example.com/app");
        assert_eq!(
            names(&closure, Scope::Required),
            ["github.com/pkg/errors v0.9.1", "golang.org/x/text v0.7.0"]
        );
        assert_eq!(
            closure.components[0].dependencies[0].name,
            "golang.org/x/text"
        );
        assert_eq!(
            closure.root_dependencies[&closure.roots[0]][0].name,
            "github.com/pkg/errors"
        );
    }
}
