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

mod pull;
mod push;
mod reference;
mod store;
mod transport;

use std::path::{Path, PathBuf};

pub use pull::Resolved;
pub use push::{Pushed, annotation};
pub use reference::{OCI_SCHEME, OciRef};
pub use transport::{INSECURE_VAR, plain_http};

use crate::config::{ConfigError, PathSegment, Pipeline, PluginRef};

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
}

/// Pull every `oci://` plugin the pipeline uses (steps and monitors) into the cache
/// and record its component's digest in the reference (`OciRef::component`, and the
/// manifest it came through in `OciRef::manifest`). The digest pulled: the one the
/// reference names after `@`, else the one `lock` pins for the reference as written,
/// else the one its tag points at now; a component already in the cache under that
/// digest (verified) is not pulled again, and no registry is asked. Every failure is
/// reported at the `uses` key that named it.
pub async fn resolve(
    pipeline: &mut Pipeline,
    lock: Option<&crate::lockfile::Lock>,
) -> Result<(), Vec<ConfigError>> {
    // Each distinct reference once, however many steps and monitors use it.
    let mut wanted: Vec<OciRef> = Vec::new();
    let mut want = |r: &OciRef| {
        if !wanted.contains(r) {
            wanted.push(r.clone());
        }
    };
    for step in pipeline.stages.iter().flat_map(|s| &s.steps) {
        if let PluginRef::Oci(r) = &step.uses {
            want(r);
        }
    }
    for monitor in &pipeline.monitors {
        if let Some(PluginRef::Oci(r)) = &monitor.uses {
            want(r);
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let base = pipeline.dir.clone();
    let results = futures::future::join_all(wanted.iter().map(|r| {
        let pin = lock.and_then(|l| l.pinned_ref(&PluginRef::Oci(r.clone()), &base));
        pull::plugin(r, pin)
    }))
    .await;
    let resolved: Vec<(OciRef, Result<Resolved, RegistryError>)> =
        wanted.into_iter().zip(results).collect();
    let outcome = |r: &OciRef| {
        resolved
            .iter()
            .find(|(w, _)| w == r)
            .map(|(_, result)| result)
    };

    let mut errors = Vec::new();
    let source = pipeline.source.clone();
    for stage in &mut pipeline.stages {
        for step in &mut stage.steps {
            let PluginRef::Oci(r) = &mut step.uses else {
                continue;
            };
            match outcome(r) {
                Some(Ok(found)) => apply(r, found),
                Some(Err(e)) => {
                    let span = source.span_of(&step.key_path(&[PathSegment::Key("uses".into())]));
                    errors.push(source.error(
                        span.map_or(0, |s| s.start),
                        format!("step `{}`: `uses`: {e}", step.id),
                    ));
                }
                None => {}
            }
        }
    }
    for monitor in &mut pipeline.monitors {
        let Some(PluginRef::Oci(r)) = &mut monitor.uses else {
            continue;
        };
        match outcome(r) {
            Some(Ok(found)) => apply(r, found),
            Some(Err(e)) => errors.push(source.error(
                monitor.uses_offset,
                format!("monitor `{}`: `uses`: {e}", monitor.id),
            )),
            None => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Resolve one plugin reference (`sluice plugin info oci://...`, a custom check's
/// `uses` in a policy): pull it as [`resolve`] does and record its component's
/// digest. `lock_pin` is what a lock pins for it, if anything.
pub async fn resolve_plugin(
    reference: &mut PluginRef,
    lock_pin: Option<&str>,
) -> Result<(), RegistryError> {
    if let PluginRef::Oci(r) = reference {
        let found = pull::plugin(r, lock_pin).await?;
        apply(r, &found);
    }
    Ok(())
}

fn apply(reference: &mut OciRef, found: &Resolved) {
    reference.component = Some(found.component.clone());
    reference.manifest = found.manifest.clone();
}

/// Where the component with this digest (`sha256:HEX`) lies in the cache, whether or
/// not it is there yet.
pub fn component_path(digest: &str) -> Option<PathBuf> {
    let hex = digest.strip_prefix("sha256:")?;
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(cache_dir()?.join("blobs").join("sha256").join(hex))
}

/// The signature pulled with the component of this digest, when the registry had one.
pub fn cached_signature(digest: &str) -> Option<PathBuf> {
    let path = component_path(digest)?.with_extension("minisig");
    path.is_file().then_some(path)
}

/// The tag a component's signature artifact has beside it: `sha256-HEX.sig` for the
/// component `sha256:HEX`.
pub fn signature_tag(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    Some(format!("sha256-{hex}.sig"))
}

/// Pull a policy file published with `sluice policy push` (or any artifact whose one
/// layer is [`POLICY_LAYER_MEDIA_TYPE`]); returns its text and digest (the sha256 of
/// its bytes). A policy pinned by manifest digest and already in the cache is read
/// from the cache alone.
pub async fn pull_policy(reference: &OciRef) -> Result<(String, String), RegistryError> {
    pull::policy(reference).await
}

/// The cache of pulled artifacts: `$SLUICE_OCI_CACHE`, else `oci/` under the
/// runner's cache folder.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SLUICE_OCI_CACHE").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    crate::host::cache::default_cache_root().map(|root| root.join("oci"))
}

/// `sluice plugin push FILE oci://...`: publish a component with its `describe()`
/// answer as annotations (and `FILE.minisig` as its signature when there is one).
/// `created` is recorded in the config and the annotations; `author` in the config.
pub async fn push_plugin(
    host: &crate::host::plugin::PluginHost,
    file: &Path,
    reference: &OciRef,
    created: jiff::Timestamp,
    author: Option<&str>,
) -> Result<Pushed, RegistryError> {
    push::plugin(host, file, reference, created, author).await
}

/// `sluice policy push FILE oci://...`: publish a policy's text (checked by the
/// caller), named by its `[policy] name` and `version`.
pub async fn push_policy(
    text: &str,
    name: &str,
    version: Option<&str>,
    reference: &OciRef,
    created: jiff::Timestamp,
) -> Result<Pushed, RegistryError> {
    push::policy(text, name, version, reference, created).await
}
