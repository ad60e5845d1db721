//! Pulling: a plugin reference resolved to a component in the cache (by the digest
//! written, the lock's pin, or the tag's manifest now), every blob hashed as it is
//! written and refused when it is not the one its descriptor names; a plugin's
//! signature artifact beside it; a policy file.

use futures::StreamExt as _;
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor};

use super::store::{Store, sha256_digest};
use super::transport::{Connection, is_unknown};
use super::{
    OciRef, POLICY_LAYER_MEDIA_TYPE, RegistryError, SIGNATURE_LAYER_MEDIA_TYPE,
    WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE,
};

/// The manifest media types the runner asks for (and accepts).
const MANIFEST_TYPES: &[&str] = &[OCI_IMAGE_MEDIA_TYPE];
/// The largest manifest the runner reads.
const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// The largest signature file the runner keeps (a minisign signature is < 1 KiB).
const MAX_SIGNATURE_BYTES: u64 = 64 << 10;
/// The largest policy file the runner pulls.
const MAX_POLICY_BYTES: u64 = 4 << 20;

/// Where a plugin reference led.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// `sha256:HEX` of the component's bytes, in the cache.
    pub component: String,
    /// The manifest it was found through, when there was one.
    pub manifest: Option<String>,
    /// Whether the registry was asked (false: everything came from the cache).
    pub pulled: bool,
}

/// Resolve a plugin reference into the cache. The digest it goes by: the one written
/// after `@` (a manifest's, or a component's), else `lock_pin` (a component's digest,
/// as `sluice.lock` pins it), else the manifest its tag names now. Nothing is asked
/// of the registry when the cache already holds that digest's verified component.
pub async fn plugin(reference: &OciRef, lock_pin: Option<&str>) -> Result<Resolved, RegistryError> {
    let store = Store::open()?;
    let pin = reference.digest.as_deref().or(lock_pin);
    if let Some(pin) = pin
        && let Some(found) = cached(&store, reference, pin)?
    {
        return Ok(found);
    }
    let conn = Connection::to(reference);
    if reference.digest.is_none()
        && let Some(component) = lock_pin
    {
        // The lock pins the component itself: pull it straight by that digest.
        pull_component(&conn, &store, reference, component, None).await?;
        pull_signature(&conn, &store, reference, component).await;
        return Ok(Resolved {
            component: component.to_string(),
            manifest: None,
            pulled: true,
        });
    }
    let manifest = match &reference.digest {
        Some(written) => {
            match fetch_manifest(&conn, reference, &conn.at_digest(reference, written)).await {
                Ok(m) => m,
                Err(ManifestError::Unknown(why) | ManifestError::Answered(_, why)) => {
                    // Not a manifest (some registries answer 500 for a blob asked for
                    // as a manifest): perhaps the component's own digest, as the lock
                    // pins it.
                    return match pull_component(&conn, &store, reference, written, None).await {
                        Ok(()) => {
                            pull_signature(&conn, &store, reference, written).await;
                            Ok(Resolved {
                                component: written.clone(),
                                manifest: None,
                                pulled: true,
                            })
                        }
                        Err(_) => Err(RegistryError::Pull {
                            reference: reference.to_string(),
                            reason: format!(
                                "the registry has no manifest and no blob {written} in `{}` ({why})",
                                reference.repository
                            ),
                        }),
                    };
                }
                Err(e) => return Err(e.into_error(reference, "such manifest")),
            }
        }
        None => {
            let tag = reference.tag.as_deref().unwrap_or("latest");
            match fetch_manifest(&conn, reference, &conn.tagged(reference, tag)).await {
                Ok(m) => m,
                Err(ManifestError::Unknown(why)) => {
                    return Err(RegistryError::Pull {
                        reference: reference.to_string(),
                        reason: format!(
                            "the registry has no tag `{tag}` in `{}` ({why})",
                            reference.repository
                        ),
                    });
                }
                Err(e) => return Err(e.into_error(reference, "such manifest")),
            }
        }
    };
    let (bytes, manifest_digest) = manifest;
    let layer = plugin_layer(reference, &bytes)?;
    store.put_manifest(&manifest_digest, &bytes)?;
    if store.verified_blob(&layer.digest).is_none() {
        pull_component(&conn, &store, reference, &layer.digest, Some(&layer)).await?;
    }
    pull_signature(&conn, &store, reference, &layer.digest).await;
    Ok(Resolved {
        component: layer.digest,
        manifest: Some(manifest_digest),
        pulled: true,
    })
}

/// The component `pin` leads to in the cache alone: `pin` is a cached component, or a
/// cached manifest whose component is cached.
fn cached(store: &Store, reference: &OciRef, pin: &str) -> Result<Option<Resolved>, RegistryError> {
    if store.verified_blob(pin).is_some() && store.manifest(pin).is_none() {
        return Ok(Some(Resolved {
            component: pin.to_string(),
            manifest: None,
            pulled: false,
        }));
    }
    if let Some(bytes) = store.manifest(pin) {
        let layer = plugin_layer(reference, &bytes)?;
        if store.verified_blob(&layer.digest).is_some() {
            return Ok(Some(Resolved {
                component: layer.digest,
                manifest: Some(pin.to_string()),
                pulled: false,
            }));
        }
    }
    Ok(None)
}

/// Pull a policy file: its text and the digest of its bytes.
pub async fn policy(reference: &OciRef) -> Result<(String, String), RegistryError> {
    let store = Store::open()?;
    if let Some(written) = &reference.digest
        && let Some(bytes) = store.manifest(written)
        && let Ok(layer) = policy_layer(reference, &bytes)
        && let Some(path) = store.verified_blob(&layer.digest)
    {
        return read_policy(reference, &path, layer.digest);
    }
    let conn = Connection::to(reference);
    let client_ref = match (&reference.digest, &reference.tag) {
        (Some(d), _) => conn.at_digest(reference, d),
        (None, tag) => conn.tagged(reference, tag.as_deref().unwrap_or("latest")),
    };
    let (bytes, manifest_digest) = match fetch_manifest(&conn, reference, &client_ref).await {
        Ok(m) => m,
        Err(ManifestError::Unknown(why)) => {
            return Err(RegistryError::Pull {
                reference: reference.to_string(),
                reason: format!(
                    "the registry has no policy `{}` in `{}` ({why})",
                    client_ref.digest().or(client_ref.tag()).unwrap_or_default(),
                    reference.repository
                ),
            });
        }
        Err(e) => return Err(e.into_error(reference, "such policy")),
    };
    let layer = policy_layer(reference, &bytes)?;
    store.put_manifest(&manifest_digest, &bytes)?;
    let path = match store.verified_blob(&layer.digest) {
        Some(path) => path,
        None => pull_blob(&conn, &store, reference, &layer.digest, MAX_POLICY_BYTES).await?,
    };
    read_policy(reference, &path, layer.digest)
}

fn read_policy(
    reference: &OciRef,
    path: &std::path::Path,
    digest: String,
) -> Result<(String, String), RegistryError> {
    let bytes = std::fs::read(path).map_err(|source| RegistryError::Cache {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| RegistryError::Pull {
        reference: reference.to_string(),
        reason: "the policy is not UTF-8 text".into(),
    })?;
    Ok((text, digest))
}

/// Why a manifest could not be had.
enum ManifestError {
    /// The registry does not know it (its answer).
    Unknown(String),
    /// The registry answered with another error (the error, and its answer).
    Answered(RegistryError, String),
    Other(RegistryError),
}

impl ManifestError {
    /// As an error of the pull, whatever the registry said.
    fn into_error(self, reference: &OciRef, what: &str) -> RegistryError {
        match self {
            ManifestError::Unknown(why) => RegistryError::Pull {
                reference: reference.to_string(),
                reason: format!("the registry has no {what} ({why})"),
            },
            ManifestError::Answered(e, _) | ManifestError::Other(e) => e,
        }
    }
}

/// A manifest's bytes and digest, checked: the bytes hash to the digest asked for.
async fn fetch_manifest(
    conn: &Connection,
    reference: &OciRef,
    client_ref: &oci_client::Reference,
) -> Result<(Vec<u8>, String), ManifestError> {
    let (body, _) = conn
        .client
        .pull_manifest_raw(client_ref, &conn.auth, MANIFEST_TYPES)
        .await
        .map_err(|e| {
            let why = conn.explain(&e);
            let error = RegistryError::Pull {
                reference: reference.to_string(),
                reason: why.clone(),
            };
            if is_unknown(&e) {
                ManifestError::Unknown(why)
            } else if matches!(
                e,
                oci_client::errors::OciDistributionError::RegistryError { .. }
                    | oci_client::errors::OciDistributionError::ServerError { .. }
            ) {
                ManifestError::Answered(error, why)
            } else {
                ManifestError::Other(error)
            }
        })?;
    if body.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::Other(RegistryError::Pull {
            reference: reference.to_string(),
            reason: format!(
                "its manifest is {} bytes; the limit is {MAX_MANIFEST_BYTES}",
                body.len()
            ),
        }));
    }
    let digest = sha256_digest(&body);
    if let Some(expected) = client_ref.digest()
        && expected != digest
    {
        return Err(ManifestError::Other(RegistryError::DigestMismatch {
            reference: reference.to_string(),
            expected: expected.to_string(),
            actual: digest,
        }));
    }
    Ok((body.to_vec(), digest))
}

/// The manifest's parts as the runner checks them.
struct Parts {
    config_type: String,
    layers: Vec<OciDescriptor>,
}

fn parts(reference: &OciRef, bytes: &[u8]) -> Result<Parts, RegistryError> {
    let not_manifest = |why: String| RegistryError::Pull {
        reference: reference.to_string(),
        reason: format!("its manifest is not an OCI image manifest: {why}"),
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| not_manifest(e.to_string()))?;
    if let Some(t) = value.get("mediaType").and_then(|t| t.as_str())
        && t != OCI_IMAGE_MEDIA_TYPE
    {
        return Err(not_manifest(format!("its media type is `{t}`")));
    }
    let manifest: oci_client::manifest::OciImageManifest =
        serde_json::from_value(value).map_err(|e| not_manifest(e.to_string()))?;
    Ok(Parts {
        config_type: manifest.config.media_type,
        layers: manifest.layers,
    })
}

/// The one `application/wasm` layer of a plugin artifact (config
/// `application/vnd.wasm.config.v0+json`); anything else is refused with the media
/// types found.
fn plugin_layer(reference: &OciRef, bytes: &[u8]) -> Result<OciDescriptor, RegistryError> {
    let parts = parts(reference, bytes)?;
    let layer_types: Vec<&str> = parts.layers.iter().map(|l| l.media_type.as_str()).collect();
    if parts.config_type != WASM_CONFIG_MEDIA_TYPE || layer_types != [WASM_LAYER_MEDIA_TYPE] {
        return Err(RegistryError::Pull {
            reference: reference.to_string(),
            reason: format!(
                "it is not a WebAssembly plugin: a plugin's manifest has config `{WASM_CONFIG_MEDIA_TYPE}` and one layer `{WASM_LAYER_MEDIA_TYPE}`; this one has config `{}` and layers [{}]",
                parts.config_type,
                layer_types
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Ok(parts.layers.into_iter().next().expect("one layer"))
}

/// The one layer of a policy artifact (`application/vnd.sluice.policy.v1+toml`).
fn policy_layer(reference: &OciRef, bytes: &[u8]) -> Result<OciDescriptor, RegistryError> {
    let parts = parts(reference, bytes)?;
    let layer_types: Vec<&str> = parts.layers.iter().map(|l| l.media_type.as_str()).collect();
    if layer_types != [POLICY_LAYER_MEDIA_TYPE] {
        return Err(RegistryError::Pull {
            reference: reference.to_string(),
            reason: format!(
                "it is not a policy: a policy's manifest has one layer `{POLICY_LAYER_MEDIA_TYPE}`; this one has layers [{}] (config `{}`)",
                layer_types
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                parts.config_type
            ),
        });
    }
    Ok(parts.layers.into_iter().next().expect("one layer"))
}

/// Pull the component `digest` into the cache (its descriptor, when known, bounds
/// its size).
async fn pull_component(
    conn: &Connection,
    store: &Store,
    reference: &OciRef,
    digest: &str,
    descriptor: Option<&OciDescriptor>,
) -> Result<(), RegistryError> {
    let limit = crate::limits::MAX_COMPONENT_BYTES;
    if let Some(d) = descriptor
        && (d.size < 0 || d.size as u64 > limit)
    {
        return Err(RegistryError::Pull {
            reference: reference.to_string(),
            reason: format!("its component is {} bytes; the limit is {limit}", d.size),
        });
    }
    let limit = descriptor.map_or(limit, |d| d.size as u64);
    pull_blob(conn, store, reference, digest, limit).await?;
    Ok(())
}

/// Pull the blob `digest` into the cache: hashed while it is written, refused unless
/// it hashes to `digest` and stays within `limit` bytes.
async fn pull_blob(
    conn: &Connection,
    store: &Store,
    reference: &OciRef,
    digest: &str,
    limit: u64,
) -> Result<std::path::PathBuf, RegistryError> {
    let pull_err = |reason: String| RegistryError::Pull {
        reference: reference.to_string(),
        reason,
    };
    let client_ref = conn.at_digest(reference, digest);
    let mut stream = conn
        .client
        .pull_blob_stream(&client_ref, digest)
        .await
        .map_err(|e| pull_err(format!("blob {digest}: {}", conn.explain(&e))))?;
    let mut writer = store.blob_writer()?;
    let mut broke = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                if writer.written() + bytes.len() as u64 > limit {
                    return Err(pull_err(format!(
                        "blob {digest} is larger than {limit} bytes (what its descriptor or the runner's limit allows); refusing it"
                    )));
                }
                writer.write(&bytes)?;
            }
            Err(e) => {
                // The client's own digest check fails at the end of the stream; the
                // hash of what arrived tells a tampered blob from a broken transfer.
                broke = Some(e);
                break;
            }
        }
    }
    let written = writer.written();
    match writer.finish(digest)? {
        Ok(path) => Ok(path),
        Err(actual) => match broke {
            Some(e) if !is_digest_error(&e) => Err(pull_err(format!(
                "blob {digest}: the transfer broke after {written} bytes: {e}"
            ))),
            _ => Err(RegistryError::DigestMismatch {
                reference: reference.to_string(),
                expected: digest.to_string(),
                actual,
            }),
        },
    }
}

/// Whether a stream error is the client's digest verification failing.
fn is_digest_error(e: &std::io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<oci_client::errors::DigestError>())
}

/// Pull the signature artifact of the component `digest` (tag `sha256-HEX.sig`), when
/// the registry has one, into the cache beside the component. A missing signature is
/// not an error here (a policy that requires one refuses the plugin); any other
/// failure is logged and leaves the plugin unsigned.
async fn pull_signature(conn: &Connection, store: &Store, reference: &OciRef, digest: &str) {
    let Some(tag) = super::signature_tag(digest) else {
        return;
    };
    let client_ref = conn.tagged(reference, &tag);
    let result = async {
        let (bytes, _) = match fetch_manifest(conn, reference, &client_ref).await {
            Ok(m) => m,
            Err(ManifestError::Unknown(_)) => return Ok(None),
            Err(e) => return Err(e.into_error(reference, "signature")),
        };
        let parts = parts(reference, &bytes)?;
        let layer = match parts.layers.as_slice() {
            [l] if l.media_type == SIGNATURE_LAYER_MEDIA_TYPE => l.clone(),
            _ => {
                return Err(RegistryError::Pull {
                    reference: format!("{}:{tag}", reference.repository_url()),
                    reason: format!(
                        "it is not a signature (one layer `{SIGNATURE_LAYER_MEDIA_TYPE}`)"
                    ),
                });
            }
        };
        let path = pull_blob(conn, store, reference, &layer.digest, MAX_SIGNATURE_BYTES).await?;
        let signature = std::fs::read(&path).map_err(|source| RegistryError::Cache {
            path: path.clone(),
            source,
        })?;
        store.put_signature(digest, &signature).map(Some)
    }
    .await;
    match result {
        Ok(Some(path)) => tracing::debug!(%reference, path = %path.display(), "signature pulled"),
        Ok(None) => tracing::debug!(%reference, "no signature in the registry"),
        Err(e) => tracing::warn!(%reference, "the plugin's signature could not be pulled: {e}"),
    }
}
