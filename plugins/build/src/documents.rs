//! The two documents the step writes: a CycloneDX 1.5 JSON SBOM of the locked
//! dependency closure, and an in-toto Statement v1 carrying a SLSA Provenance v1
//! predicate for the artifacts.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::lockfiles::Package;

/// The project an SBOM describes.
pub struct Subject<'a> {
    pub name: &'a str,
    pub version: Option<&'a str>,
    /// purl of the project, when it has a package identity.
    pub purl: Option<String>,
}

/// A CycloneDX 1.5 BOM. `serial_seed` makes the serial number (a name-based UUID) stable
/// for the same run and inputs; `timestamp` is RFC 3339.
pub fn cyclonedx(
    subject: &Subject<'_>,
    packages: &[Package],
    serial_seed: &str,
    timestamp: &str,
    tool_version: &str,
) -> Value {
    let mut component = json!({"type": "application", "name": subject.name, "bom-ref": subject.purl.clone().unwrap_or_else(|| subject.name.to_owned())});
    if let Some(version) = subject.version {
        component["version"] = json!(version);
    }
    if let Some(purl) = &subject.purl {
        component["purl"] = json!(purl);
    }
    let components: Vec<Value> = packages
        .iter()
        .map(|package| {
            let purl = package.purl();
            let mut entry = json!({
                "type": "library",
                "bom-ref": purl,
                "name": package.name,
                "version": package.version,
                "purl": purl,
            });
            if !package.hashes.is_empty() {
                entry["hashes"] = package
                    .hashes
                    .iter()
                    .map(|(alg, content)| json!({"alg": alg, "content": content}))
                    .collect();
            }
            if let Some(license) = package.properties.get("license") {
                entry["licenses"] = json!([{"expression": license}]);
            }
            if package
                .properties
                .get("scope")
                .is_some_and(|scope| scope == "dev")
            {
                entry["scope"] = json!("excluded");
            }
            let properties: Vec<Value> = package
                .properties
                .iter()
                .filter(|(key, _)| !matches!(key.as_str(), "license" | "scope"))
                .map(|(key, value)| json!({"name": format!("sluice:{key}"), "value": value}))
                .collect();
            if !properties.is_empty() {
                entry["properties"] = json!(properties);
            }
            entry
        })
        .collect();
    let dependencies: Vec<Value> = packages
        .iter()
        .filter(|package| !package.depends_on.is_empty())
        .map(|package| json!({"ref": package.purl(), "dependsOn": package.depends_on}))
        .collect();
    let mut bom = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{}", name_uuid(serial_seed)),
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {"components": [{"type": "application", "name": "sluice-plugin-build", "version": tool_version}]},
            "component": component,
        },
        "components": components,
    });
    if !dependencies.is_empty() {
        bom["dependencies"] = json!(dependencies);
    }
    bom
}

/// A UUID (version 8, "custom") made from the SHA-256 of `seed`.
pub fn name_uuid(seed: &str) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = crate::lockfiles::hex(&bytes);
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
