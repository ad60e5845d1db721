//! Publishing: a plugin as a CNCF WebAssembly artifact (config
//! `application/vnd.wasm.config.v0+json`, one `application/wasm` layer) whose manifest
//! carries the plugin's `describe()` answer as annotations, its `FILE.minisig` as a
//! signature artifact tagged `sha256-HEX.sig`; a policy file as a one-layer artifact.

use std::collections::BTreeMap;
use std::path::Path;

use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest};

use super::store::sha256_digest;
use super::transport::Connection;
use super::{
    OciRef, POLICY_LAYER_MEDIA_TYPE, RegistryError, SIGNATURE_LAYER_MEDIA_TYPE,
    WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE,
};
use crate::config::PluginRef;
use crate::host::plugin::{PluginError, PluginHost};

/// The OCI "empty" config (`{}`), for artifacts that need no config of their own.
const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// Annotation keys of a pushed plugin's manifest.
pub mod annotation {
    pub const TITLE: &str = "org.opencontainers.image.title";
    pub const VERSION: &str = "org.opencontainers.image.version";
    pub const DESCRIPTION: &str = "org.opencontainers.image.description";
    pub const CREATED: &str = "org.opencontainers.image.created";
    pub const NAME: &str = "dev.sluice.plugin.name";
    pub const PLUGIN_VERSION: &str = "dev.sluice.plugin.version";
    pub const SUMMARY: &str = "dev.sluice.plugin.summary";
    pub const WORLD: &str = "dev.sluice.plugin.world";
    /// A JSON list of capability names (`["read-files","exec"]`).
    pub const CAPABILITIES: &str = "dev.sluice.plugin.capabilities";
    /// The plugin's config JSON Schema, compact.
    pub const CONFIG_SCHEMA: &str = "dev.sluice.plugin.config-schema";
    /// The policy's `[policy] name`.
    pub const POLICY_NAME: &str = "dev.sluice.policy.name";
}

/// What a push published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// `sha256:HEX` of the manifest: what `@sha256:` pins.
    pub manifest: String,
    /// `sha256:HEX` of the pushed file (the component's digest, or the policy's).
    pub content: String,
    /// `oci://HOST/NS/NAME:TAG@sha256:MANIFEST`: the reference to pin.
    pub pinned: String,
    /// The signature's tag, when `FILE.minisig` was pushed too.
    pub signature_tag: Option<String>,
}

/// A loaded plugin's description, whichever world it is.
struct Description {
    world: &'static str,
    name: String,
    version: String,
    summary: String,
    capabilities: Vec<&'static str>,
    schema: serde_json::Value,
    digest: String,
}

/// `sluice plugin push FILE oci://...`: publish the component in `file` (loaded
/// through `host` first: a file that is not a plugin this runner loads is refused)
/// and its `FILE.minisig` when there is one. `created` is the instant recorded in the
/// config and annotations; `author` goes into the config when given.
pub async fn plugin(
    host: &PluginHost,
    file: &Path,
    reference: &OciRef,
    created: jiff::Timestamp,
    author: Option<&str>,
) -> Result<Pushed, RegistryError> {
    let push_err = |reason: String| RegistryError::Push {
        reference: reference.to_string(),
        reason,
    };
    let tag = push_tag(reference)?;
    let file =
        std::path::absolute(file).map_err(|e| push_err(format!("{}: {e}", file.display())))?;
    let bytes = read_bounded(&file, crate::limits::MAX_COMPONENT_BYTES)
        .map_err(|e| push_err(format!("{}: {e}", file.display())))?;
    let layer_digest = sha256_digest(&bytes);
    let plugin_ref = PluginRef::File(file.clone());
    let described = describe(host, &plugin_ref).await.map_err(|e| {
        push_err(format!(
            "{} is not a plugin this runner loads, so it is not pushed: {e}",
            file.display()
        ))
    })?;
    if described.digest != layer_digest {
        return Err(push_err(format!(
            "{} changed while it was being pushed; push it again",
            file.display()
        )));
    }
    let (_, component, _) = host
        .component(&plugin_ref)
        .await
        .map_err(|e| push_err(e.to_string()))?;
    let component_type = component.component_type();
    let engine = host.engine();
    let imports: Vec<String> = component_type
        .imports(engine)
        .map(|(n, _)| n.to_string())
        .collect();
    let exports: Vec<String> = component_type
        .exports(engine)
        .map(|(n, _)| n.to_string())
        .collect();
    let created_text = created.to_string();
    let config = wasm_config(
        &created_text,
        author,
        &layer_digest,
        &imports,
        &exports,
        described.world,
    );
    let config_bytes = serde_json::to_vec(&config).map_err(|e| push_err(e.to_string()))?;

    let mut annotations = BTreeMap::new();
    annotations.insert(annotation::TITLE.into(), described.name.clone());
    annotations.insert(annotation::VERSION.into(), described.version.clone());
    annotations.insert(annotation::DESCRIPTION.into(), described.summary.clone());
    annotations.insert(annotation::CREATED.into(), created_text.clone());
    annotations.insert(annotation::NAME.into(), described.name);
    annotations.insert(annotation::PLUGIN_VERSION.into(), described.version);
    annotations.insert(annotation::SUMMARY.into(), described.summary);
    annotations.insert(annotation::WORLD.into(), described.world.into());
    annotations.insert(
        annotation::CAPABILITIES.into(),
        serde_json::to_string(&described.capabilities).unwrap_or_default(),
    );
    annotations.insert(
        annotation::CONFIG_SCHEMA.into(),
        serde_json::to_string(&described.schema).unwrap_or_default(),
    );

    let conn = Connection::to(reference);
    let manifest = publish(
        &conn,
        reference,
        &tag,
        (WASM_CONFIG_MEDIA_TYPE, config_bytes),
        (WASM_LAYER_MEDIA_TYPE, bytes),
        None,
        annotations,
    )
    .await?;

    let mut signature_tag = None;
    let mut sig_path = file.into_os_string();
    sig_path.push(".minisig");
    let sig_path = std::path::PathBuf::from(sig_path);
    if sig_path.is_file() {
        let signature = read_bounded(&sig_path, 64 << 10)
            .map_err(|e| push_err(format!("{}: {e}", sig_path.display())))?;
        let text = String::from_utf8_lossy(&signature);
        minisign::SignatureBox::from_string(&text).map_err(|e| {
            push_err(format!(
                "{} is not a minisign signature ({e}); sign the plugin again with `sluice plugin sign`",
                sig_path.display()
            ))
        })?;
        let sig_tag = super::signature_tag(&layer_digest).expect("a sha256 digest");
        let mut sig_annotations = BTreeMap::new();
        sig_annotations.insert(annotation::CREATED.into(), created_text);
        sig_annotations.insert(
            annotation::DESCRIPTION.into(),
            format!("minisign signature of {layer_digest}"),
        );
        publish(
            &conn,
            reference,
            &sig_tag,
            (EMPTY_CONFIG_MEDIA_TYPE, b"{}".to_vec()),
            (SIGNATURE_LAYER_MEDIA_TYPE, signature),
            Some(SIGNATURE_LAYER_MEDIA_TYPE),
            sig_annotations,
        )
        .await?;
        signature_tag = Some(sig_tag);
    }
    Ok(Pushed {
        pinned: format!("{}:{tag}@{manifest}", reference.repository_url()),
        manifest,
        content: layer_digest,
        signature_tag,
    })
}

/// `sluice policy push FILE oci://...`: publish a policy file's bytes (checked by the
/// caller) as one `application/vnd.sluice.policy.v1+toml` layer.
pub async fn policy(
    text: &str,
    name: &str,
    version: Option<&str>,
    reference: &OciRef,
    created: jiff::Timestamp,
) -> Result<Pushed, RegistryError> {
    let tag = push_tag(reference)?;
    let bytes = text.as_bytes().to_vec();
    let content = sha256_digest(&bytes);
    let mut annotations = BTreeMap::new();
    annotations.insert(annotation::TITLE.into(), name.to_string());
    annotations.insert(annotation::POLICY_NAME.into(), name.to_string());
    if let Some(v) = version {
        annotations.insert(annotation::VERSION.into(), v.to_string());
    }
    annotations.insert(annotation::CREATED.into(), created.to_string());
    annotations.insert(
        annotation::DESCRIPTION.into(),
        format!("Sluice policy `{name}`"),
    );
    let conn = Connection::to(reference);
    let manifest = publish(
        &conn,
        reference,
        &tag,
        (EMPTY_CONFIG_MEDIA_TYPE, b"{}".to_vec()),
        (POLICY_LAYER_MEDIA_TYPE, bytes),
        Some(POLICY_LAYER_MEDIA_TYPE),
        annotations,
    )
    .await?;
    Ok(Pushed {
        pinned: format!("{}:{tag}@{manifest}", reference.repository_url()),
        manifest,
        content,
        signature_tag: None,
    })
}

/// The tag to push to: a push names a tag, not a digest.
fn push_tag(reference: &OciRef) -> Result<String, RegistryError> {
    match (&reference.tag, &reference.digest) {
        (Some(tag), None) => Ok(tag.clone()),
        _ => Err(RegistryError::Push {
            reference: reference.to_string(),
            reason: "push to a tag (`oci://HOST/NS/NAME:TAG`); the registry gives the digest"
                .into(),
        }),
    }
}

/// Push a config blob, one layer and the manifest tying them (tagged `tag`); the
/// manifest's digest.
async fn publish(
    conn: &Connection,
    reference: &OciRef,
    tag: &str,
    (config_type, config): (&str, Vec<u8>),
    (layer_type, layer): (&str, Vec<u8>),
    artifact_type: Option<&str>,
    annotations: BTreeMap<String, String>,
) -> Result<String, RegistryError> {
    let push_err = |what: &str, e: oci_client::errors::OciDistributionError| RegistryError::Push {
        reference: reference.to_string(),
        reason: format!("{what}: {}", conn.explain(&e)),
    };
    let client_ref = conn.tagged(reference, tag);
    conn.client
        .store_auth_if_needed(client_ref.resolve_registry(), &conn.auth)
        .await;
    let config_desc = descriptor(config_type, &config);
    let layer_desc = descriptor(layer_type, &layer);
    for (what, desc, data) in [
        ("the layer", &layer_desc, layer),
        ("the config", &config_desc, config),
    ] {
        let exists = conn
            .client
            .blob_exists(&client_ref, &desc.digest)
            .await
            .unwrap_or(false);
        if !exists {
            conn.client
                .push_blob(&client_ref, data, &desc.digest)
                .await
                .map_err(|e| push_err(what, e))?;
        }
    }
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_string()),
        config: config_desc,
        layers: vec![layer_desc],
        subject: None,
        artifact_type: artifact_type.map(str::to_string),
        annotations: Some(annotations),
    };
    let body = serde_json::to_vec(&manifest).map_err(|e| RegistryError::Push {
        reference: reference.to_string(),
        reason: e.to_string(),
    })?;
    let digest = sha256_digest(&body);
    conn.client
        .push_manifest_raw(
            &client_ref,
            body,
            http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE),
        )
        .await
        .map_err(|e| push_err("the manifest", e))?;
    Ok(digest)
}

fn descriptor(media_type: &str, data: &[u8]) -> OciDescriptor {
    OciDescriptor {
        media_type: media_type.to_string(),
        digest: sha256_digest(data),
        size: data.len() as i64,
        ..OciDescriptor::default()
    }
}

/// The config blob of the CNCF WebAssembly artifact layout: when it was made, by
/// whom (when told), `wasm`/`wasip2`, its layer's digest, and what the component
/// imports and exports, with the world it targets.
fn wasm_config(
    created: &str,
    author: Option<&str>,
    layer_digest: &str,
    imports: &[String],
    exports: &[String],
    world: &str,
) -> serde_json::Value {
    let version = imports
        .iter()
        .chain(exports)
        .filter_map(|n| n.strip_prefix("sluice:plugin/"))
        .filter_map(|n| n.split_once('@').map(|(_, v)| v.to_string()))
        .max_by(|a, b| version_key(a).cmp(&version_key(b)))
        .unwrap_or_else(|| {
            crate::host::imports::CONTRACT
                .rsplit_once('@')
                .map_or("0.1.0", |(_, v)| v)
                .to_string()
        });
    let mut config = serde_json::json!({
        "created": created,
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer_digest],
        "component": {
            "exports": exports,
            "imports": imports,
            "target": format!("sluice:plugin/{world}@{version}"),
        },
    });
    if let Some(author) = author {
        config["author"] = serde_json::Value::String(author.to_string());
    }
    config
}

fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// Load the plugin as a step, or as a monitor when it is one.
async fn describe(host: &PluginHost, reference: &PluginRef) -> Result<Description, PluginError> {
    use crate::host::bindings::types::Capability as C;
    let caps = |cs: &[C]| -> Vec<&'static str> {
        cs.iter()
            .map(|c| match c {
                C::ReadFiles => "read-files",
                C::WriteFiles => "write-files",
                C::Exec => "exec",
                C::Network => "network",
                C::Env => "env",
            })
            .collect()
    };
    match host.load(reference).await {
        Ok(p) => {
            let d = p.descriptor();
            Ok(Description {
                world: "step",
                name: d.name.clone(),
                version: d.version.clone(),
                summary: d.summary.clone(),
                capabilities: caps(&d.capabilities),
                schema: p.schema().clone(),
                digest: p.digest().to_string(),
            })
        }
        Err(PluginError::WrongWorld { .. }) => {
            let m = crate::host::monitor::load_monitor(host, reference).await?;
            let d = m.descriptor();
            Ok(Description {
                world: "monitor",
                name: d.name.clone(),
                version: d.version.clone(),
                summary: d.summary.clone(),
                capabilities: caps(&d.capabilities),
                schema: m.schema().clone(),
                digest: m.digest().to_string(),
            })
        }
        Err(e) => Err(e),
    }
}

/// A file's bytes, refused past `limit`.
fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let size = std::fs::metadata(path)?.len();
    if size > limit {
        return Err(std::io::Error::other(format!(
            "it is {size} bytes; the limit is {limit}"
        )));
    }
    std::fs::read(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_the_contract_version_the_component_uses() {
        let config = wasm_config(
            "2026-11-29T12:00:00Z",
            None,
            "sha256:00",
            &[
                "sluice:plugin/log@0.1.0".into(),
                "sluice:plugin/grants@0.1.5".into(),
                "wasi:io/streams@0.2.6".into(),
            ],
            &["sluice:plugin/plugin@0.1.0".into()],
            "step",
        );
        assert_eq!(config["component"]["target"], "sluice:plugin/step@0.1.5");
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["os"], "wasip2");
        assert!(config.get("author").is_none());
        let config = wasm_config("t", Some("acme"), "sha256:00", &[], &[], "monitor");
        assert_eq!(config["author"], "acme");
        assert_eq!(
            config["component"]["target"],
            format!(
                "sluice:plugin/monitor@{}",
                crate::host::imports::CONTRACT.rsplit_once('@').unwrap().1
            )
        );
    }

    #[test]
    fn a_push_names_a_tag() {
        let r = OciRef::parse(&format!("oci://h/acme/x@sha256:{}", "a".repeat(64))).unwrap();
        assert!(push_tag(&r).is_err());
        let r = OciRef::parse("oci://h/acme/x:1.0").unwrap();
        assert_eq!(push_tag(&r).unwrap(), "1.0");
    }
}
