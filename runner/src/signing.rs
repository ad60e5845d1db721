//! Plugin signatures: minisign (Ed25519) signatures over a component's bytes, made
//! with `sluice plugin sign`, kept as `FILE.minisig` beside a component file or pushed
//! beside it in an OCI registry, and verified at load against the keys a policy
//! trusts (`[[key]]`). See docs/design/ for why minisign, and how keys rotate.

use std::path::PathBuf;

/// Why a plugin's signature does not satisfy the policy.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("it is not signed (no {})", .0.display())]
    Missing(PathBuf),
    #[error("its signature is malformed: {0}")]
    Malformed(String),
    #[error(
        "its signature is by key {key_id}, which the policy does not trust; trusted keys: {trusted}"
    )]
    UntrustedKey { key_id: String, trusted: String },
    #[error(
        "its signature by `{key}` does not verify: the component's bytes are not the ones signed"
    )]
    BadSignature { key: String },
    #[error("its signature is by `{key}`, which the policy trusts only {window}")]
    OutsideValidity { key: String, window: String },
    #[error("signatures are not supported yet")]
    Unsupported,
}

/// Where the signature of a loaded plugin is: `FILE.minisig` for a file, the pulled
/// signature for an OCI plugin, none for a built-in.
pub fn signature_path(reference: &crate::config::PluginRef, digest: &str) -> Option<PathBuf> {
    match reference {
        crate::config::PluginRef::Builtin(_) => None,
        crate::config::PluginRef::File(p) => {
            let mut s = p.as_os_str().to_owned();
            s.push(".minisig");
            Some(PathBuf::from(s))
        }
        crate::config::PluginRef::Oci(_) => crate::registry::cached_signature(digest),
    }
}

/// Verify the plugin with this reference and digest against the policy's trusted
/// keys at `today`; on success, the id of the key that signed it.
pub fn verify(
    reference: &crate::config::PluginRef,
    digest: &str,
    keys: &[crate::policy::TrustedKey],
    today: jiff::civil::Date,
) -> Result<String, SignatureError> {
    let _ = (reference, digest, keys, today);
    Err(SignatureError::Unsupported)
}
