//! The two documents the step writes: a CycloneDX 1.5 JSON SBOM of what the built
//! target ships (its dependency closure, with edges and scopes), and an in-toto
//! Statement v1 carrying a SLSA Provenance v1 predicate for the artifacts.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sluice_lockfiles::closure::{Closure, Scope};
use sluice_lockfiles::versions::Ecosystem;
use sluice_lockfiles::{Package, PackageRef};

/// The project an SBOM describes.
pub struct Subject<'a> {
    pub name: &'a str,
    pub version: Option<&'a str>,
    /// purl of the project, when it has a package identity.
    pub purl: Option<String>,
}

/// A CycloneDX 1.5 BOM of `closures`: each closure's packages are components, `scope`
/// `required` when they ship and `excluded` (with the property `sluice:dependency-kind`
/// = `build`) when they only run while building; dev dependencies are not in a closure.
/// Hashes, licenses and sources come from the `locked` packages of the lockfiles.
/// Every component gets a `dependencies` entry (an empty `dependsOn` says it depends on
/// nothing). `serial_seed` makes the serial number (a name-based UUID) stable for the
/// same run and inputs; `timestamp` is RFC 3339.
pub fn cyclonedx(
    subject: &Subject<'_>,
    closures: &[Closure],
    locked: &[Package],
    serial_seed: &str,
    timestamp: &str,
    tool_version: &str,
) -> Value {
    let subject_ref = subject
        .purl
        .clone()
        .unwrap_or_else(|| subject.name.to_owned());
    let mut component =
        json!({"type": "application", "name": subject.name, "bom-ref": subject_ref});
    if let Some(version) = subject.version {
        component["version"] = json!(version);
    }
    if let Some(purl) = &subject.purl {
        component["purl"] = json!(purl);
    }
    let locked: BTreeMap<(Ecosystem, &str, &str), &Package> = locked
        .iter()
        .map(|p| ((p.ecosystem, p.name.as_str(), p.version.as_str()), p))
        .collect();
    let mut components: BTreeMap<String, Value> = BTreeMap::new();
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut subject_edges: Vec<String> = Vec::new();
    for closure in closures {
        let ecosystem = closure
            .components
            .first()
            .map(|c| c.ecosystem)
            .unwrap_or(Ecosystem::CratesIo);
        let purl_of = |id: &PackageRef| sluice_lockfiles::purl(ecosystem, &id.name, &id.version);
        for root in &closure.roots {
            // By name: a Go main module has no version, and `version` may set one.
            let is_subject = root.name == subject.name;
            let direct: Vec<String> = closure.root_dependencies[root]
                .iter()
                .map(purl_of)
                .collect();
            if is_subject {
                subject_edges.extend(direct);
            } else {
                // Another package of the project (a workspace member): it ships too.
                let purl = purl_of(root);
                components.insert(
                    purl.clone(),
                    json!({"type": "library", "bom-ref": purl, "name": root.name, "version": root.version, "purl": purl, "scope": "required", "properties": [{"name": "sluice:source", "value": "local"}]}),
                );
                edges.insert(purl.clone(), direct);
                subject_edges.push(purl);
            }
        }
        for part in &closure.components {
            let purl = purl_of(&part.id);
            let mut entry = json!({
                "type": "library",
                "bom-ref": purl,
                "name": part.id.name,
                "version": part.id.version,
                "purl": purl,
                "scope": match part.scope {
                    Scope::Required => "required",
                    Scope::Build => "excluded",
                },
            });
            let lock = locked.get(&(
                part.ecosystem,
                part.id.name.as_str(),
                part.id.version.as_str(),
            ));
            let mut properties = Vec::new();
            if let Some(lock) = lock {
                let hashes: Vec<Value> = lock
                    .checksums
                    .iter()
                    .filter_map(|sum| {
                        let alg = sum.algorithm.cyclonedx_name()?;
                        Some(json!({"alg": alg, "content": sum.value}))
                    })
                    .collect();
                if !hashes.is_empty() {
                    entry["hashes"] = json!(hashes);
                }
                for sum in &lock.checksums {
                    if sum.algorithm == sluice_lockfiles::ChecksumAlgorithm::GoH1 {
                        properties.push(json!({"name": "sluice:go-h1", "value": sum.value}));
                    }
                }
                if let Some(license) = &lock.license {
                    entry["licenses"] = json!([{"expression": license}]);
                }
            }
            let source = part
                .source
                .clone()
                .or_else(|| lock.and_then(|lock| lock.source.clone()));
            properties.push(
                json!({"name": "sluice:source", "value": source.as_deref().unwrap_or("local")}),
            );
            if part.scope == Scope::Build {
                properties.push(json!({"name": "sluice:dependency-kind", "value": "build"}));
            }
            entry["properties"] = json!(properties);
            components.insert(purl.clone(), entry);
            edges.insert(purl, part.dependencies.iter().map(purl_of).collect());
        }
    }
    subject_edges.sort();
    subject_edges.dedup();
    let mut dependencies = vec![json!({"ref": subject_ref, "dependsOn": subject_edges})];
    dependencies.extend(
        edges
            .into_iter()
            .map(|(from, to)| json!({"ref": from, "dependsOn": to})),
    );
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{}", name_uuid(serial_seed)),
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {"components": [{"type": "application", "name": "sluice-plugin-build", "version": tool_version}]},
            "component": component,
        },
        "components": components.into_values().collect::<Vec<_>>(),
        "dependencies": dependencies,
    })
}

/// A UUID (version 8, "custom") made from the SHA-256 of `seed`.
pub fn name_uuid(seed: &str) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = sluice_lockfiles::hex(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// One artifact with its digest, as an in-toto subject.
pub struct Digested {
    pub name: String,
    pub sha256: String,
}

/// Everything the provenance records.
pub struct Provenance<'a> {
    pub subjects: &'a [Digested],
    pub build_type: &'a str,
    /// `externalParameters`: pipeline, stage, step, command, config.
    pub external: Value,
    /// `internalParameters`.
    pub internal: Value,
    /// `resolvedDependencies`: git commit and lockfiles, as ResourceDescriptors.
    pub dependencies: Vec<Value>,
    pub builder_id: String,
    /// The plugins that ran: `builderDependencies`.
    pub plugins: Vec<Value>,
    pub byproducts: Vec<Value>,
    pub invocation_id: &'a str,
    pub started_on: &'a str,
    pub finished_on: &'a str,
}

/// The in-toto Statement v1 with its SLSA Provenance v1 predicate.
pub fn statement(provenance: &Provenance<'_>, plugin_version: &str) -> Value {
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": provenance.subjects.iter().map(|subject| json!({"name": subject.name, "digest": {"sha256": subject.sha256}})).collect::<Vec<_>>(),
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": provenance.build_type,
                "externalParameters": provenance.external,
                "internalParameters": provenance.internal,
                "resolvedDependencies": provenance.dependencies,
            },
            "runDetails": {
                "builder": {
                    "id": provenance.builder_id,
                    "version": {"sluice-plugin-build": plugin_version},
                    "builderDependencies": provenance.plugins,
                },
                "metadata": {
                    "invocationId": provenance.invocation_id,
                    "startedOn": provenance.started_on,
                    "finishedOn": provenance.finished_on,
                },
                "byproducts": provenance.byproducts,
            },
        },
    })
}

/// `sha256:<hex>` (the host's form) as a DigestSet `{"sha256": "<hex>"}`.
pub fn digest_set(digest: &str) -> Value {
    match digest.split_once(':') {
        Some((alg, hex)) => json!({ alg: hex }),
        None => json!({"sha256": digest}),
    }
}

/// RFC 3339 UTC time (`2026-11-22T16:33:07Z`) for seconds since the Unix epoch.
pub fn rfc3339(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let secs = unix_seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}
