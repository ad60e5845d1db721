//! Plugin signatures: minisign (Ed25519) signatures over a component's bytes, made
//! with `sluice plugin sign`, kept as `FILE.minisig` beside a component file or pushed
//! beside it in an OCI registry, and verified at load against the keys a policy
//! trusts (`[[key]]`). See docs/design/0034-lock-and-signatures.md for why minisign,
//! and docs/plugins/signing.md for how keys rotate.
//!
//! A signing key is a minisign key pair made without a password (CI signs
//! unattended): the secret key file is a standard unencrypted minisign secret key box
//! whose untrusted comment carries the key's policy id; the `.pub` file is a standard
//! minisign public key box. A signature's trusted comment (signed with it) names the
//! component's sha256 digest and the signing key's policy id.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use crate::config::PluginRef;
use crate::policy::TrustedKey;

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
    /// The component's bytes could not be read to check them.
    #[error("cannot read its component {}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    /// The bytes on disk are no longer the ones that were loaded.
    #[error("its component {} changed since it was loaded (now {now}, loaded as {loaded})", path.display())]
    Changed {
        path: PathBuf,
        loaded: String,
        now: String,
    },
}

/// Where the signature of a loaded plugin is: `FILE.minisig` for a file, the pulled
/// signature for an OCI plugin, none for a built-in.
pub fn signature_path(reference: &PluginRef, digest: &str) -> Option<PathBuf> {
    match reference {
        PluginRef::Builtin(_) => None,
        PluginRef::File(p) => Some(signature_file_for(p)),
        PluginRef::Oci(_) => crate::registry::cached_signature(digest),
    }
}

/// `FILE.minisig`: where `sluice plugin sign FILE` writes the signature.
pub fn signature_file_for(component: &Path) -> PathBuf {
    let mut s = component.as_os_str().to_owned();
    s.push(".minisig");
    PathBuf::from(s)
}

/// Where the bytes of a loaded plugin are (a built-in has none to check).
fn component_file(reference: &PluginRef, digest: &str) -> Option<PathBuf> {
    match reference {
        PluginRef::Builtin(_) => None,
        PluginRef::File(p) => Some(p.clone()),
        PluginRef::Oci(_) => crate::registry::component_path(digest),
    }
}

/// A minisign key id as minisign prints it: 16 uppercase hex digits of the 8-byte
/// key number read little-endian.
pub fn key_id_hex(keynum: &[u8]) -> String {
    let mut bytes = [0u8; 8];
    let n = keynum.len().min(8);
    bytes[..n].copy_from_slice(&keynum[..n]);
    format!("{:016X}", u64::from_le_bytes(bytes))
}

/// Verify the plugin with this reference and digest against the policy's trusted
/// keys at `today`; on success, the id of the key that signed it.
///
/// The steps: find the signature ([`signature_path`]); read the component's bytes
/// and check they still hash to `digest`; pick the trusted key whose minisign key id
/// the signature names; verify the signature (and its trusted comment) over the
/// bytes; then check the key's `not-before`/`not-after` window against `today`.
pub fn verify(
    reference: &PluginRef,
    digest: &str,
    keys: &[TrustedKey],
    today: jiff::civil::Date,
) -> Result<String, SignatureError> {
    let Some(sig_path) = signature_path(reference, digest) else {
        let missing = match reference {
            PluginRef::Oci(_) => crate::registry::component_path(digest)
                .map(|p| p.with_extension("minisig"))
                .unwrap_or_else(|| PathBuf::from(format!("{reference} signature"))),
            _ => PathBuf::from(format!("{reference} signature")),
        };
        return Err(SignatureError::Missing(missing));
    };
    let sig_text = match std::fs::read_to_string(&sig_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SignatureError::Missing(sig_path));
        }
        Err(e) => {
            return Err(SignatureError::Malformed(format!(
                "cannot read {}: {e}",
                sig_path.display()
            )));
        }
    };
    let signature = minisign::SignatureBox::from_string(&sig_text).map_err(|e| {
        SignatureError::Malformed(format!(
            "{} is not a minisign signature: {e}",
            sig_path.display()
        ))
    })?;

    let component =
        component_file(reference, digest).ok_or_else(|| SignatureError::Unreadable {
            path: PathBuf::from(reference.to_string()),
            reason: "no component file to check".into(),
        })?;
    let bytes = std::fs::read(&component).map_err(|e| SignatureError::Unreadable {
        path: component.clone(),
        reason: e.to_string(),
    })?;
    let now = crate::host::cache::sha256_digest(&bytes);
    if now != digest {
        return Err(SignatureError::Changed {
            path: component,
            loaded: digest.to_string(),
            now,
        });
    }

    let signed_by = key_id_hex(signature.keynum());
    let mut parse_problems = Vec::new();
    let trusted =
        keys.iter().find_map(
            |k| match minisign::PublicKey::from_base64(k.public_key.trim()) {
                Ok(pk) if key_id_hex(pk.keynum()) == signed_by => Some((k, pk)),
                Ok(_) => None,
                Err(e) => {
                    parse_problems.push(format!("`{}` ({e})", k.id));
                    None
                }
            },
        );
    let Some((key, public_key)) = trusted else {
        let trusted: Vec<String> = keys
            .iter()
            .filter_map(|k| {
                minisign::PublicKey::from_base64(k.public_key.trim())
                    .ok()
                    .map(|pk| format!("`{}` ({})", k.id, key_id_hex(pk.keynum())))
            })
            .collect();
        let mut trusted = if trusted.is_empty() {
            "none".to_string()
        } else {
            trusted.join(", ")
        };
        if !parse_problems.is_empty() {
            trusted.push_str(&format!(
                "; unreadable public keys: {}",
                parse_problems.join(", ")
            ));
        }
        return Err(SignatureError::UntrustedKey {
            key_id: signed_by,
            trusted,
        });
    };

    if minisign::verify(
        &public_key,
        &signature,
        Cursor::new(&bytes),
        true,
        false,
        false,
    )
    .is_err()
    {
        return Err(SignatureError::BadSignature {
            key: key.id.clone(),
        });
    }

    let too_early = key.not_before.is_some_and(|from| today < from);
    let too_late = key.not_after.is_some_and(|until| today > until);
    if too_early || too_late {
        let window = match (key.not_before, key.not_after) {
            (Some(from), Some(until)) => format!("from {from} through {until} (today is {today})"),
            (Some(from), None) => format!("from {from} (today is {today})"),
            (None, Some(until)) => format!("through {until} (today is {today})"),
            (None, None) => unreachable!("outside a window needs a bound"),
        };
        return Err(SignatureError::OutsideValidity {
            key: key.id.clone(),
            window,
        });
    }
    Ok(key.id.clone())
}

/// Why a key could not be made or a file signed.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} already exists; remove it first or choose another --out (a key is never overwritten)", .0.display())]
    Exists(PathBuf),
    #[error("`{0}` is not a key id: use letters, digits, `.`, `_` and `-` (e.g. `release-2026`)")]
    BadId(String),
    #[error("{}: not an unencrypted minisign secret key ({reason}); make one with `sluice plugin keygen --out KEY --id ID`", path.display())]
    BadSecretKey { path: PathBuf, reason: String },
    #[error("minisign: {0}")]
    Minisign(String),
}

/// A key pair written by [`keygen`].
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The policy id it was made for.
    pub id: String,
    /// The minisign key id (16 hex digits).
    pub key_id: String,
    /// The base64 public key, as a policy's `[[key]] public-key` takes it.
    pub public_key: String,
    pub secret_path: PathBuf,
    pub public_path: PathBuf,
}

/// The untrusted comment of a sluice secret key: it names the policy id.
const SECRET_KEY_COMMENT_PREFIX: &str = "sluice signing key id=";

/// Make a key pair without a password (`KeyPair::generate_unencrypted_keypair`: CI
/// signs unattended; protect the file instead, it is written with mode 0600): the
/// secret key at `out`, the public key at `out.pub`. Neither may exist yet.
pub fn keygen(out: &Path, id: &str) -> Result<GeneratedKey, SigningError> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(SigningError::BadId(id.to_string()));
    }
    let public_path = {
        let mut s = out.as_os_str().to_owned();
        s.push(".pub");
        PathBuf::from(s)
    };
    for p in [out, public_path.as_path()] {
        if p.exists() {
            return Err(SigningError::Exists(p.to_path_buf()));
        }
    }
    let pair = minisign::KeyPair::generate_unencrypted_keypair()
        .map_err(|e| SigningError::Minisign(e.to_string()))?;
    let key_id = key_id_hex(pair.pk.keynum());
    let secret_box = pair
        .sk
        .to_box(Some(&format!(
            "{SECRET_KEY_COMMENT_PREFIX}{id} (minisign secret key {key_id}, unencrypted)"
        )))
        .map_err(|e| SigningError::Minisign(e.to_string()))?;
    let public_key = pair.pk.to_base64();
    // The standard minisign public key file; the comment also names the policy id.
    let public_text = format!(
        "untrusted comment: minisign public key {key_id} (sluice key id={id})\n{public_key}\n"
    );
    write_new(out, secret_box.to_string().as_bytes(), 0o600)?;
    write_new(&public_path, public_text.as_bytes(), 0o644)?;
    Ok(GeneratedKey {
        id: id.to_string(),
        key_id,
        public_key,
        secret_path: out.to_path_buf(),
        public_path,
    })
}

/// Create a file that must not exist yet, with this mode from the start.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SigningError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |source| SigningError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

/// A signature written by [`sign`].
#[derive(Debug, Clone)]
pub struct Signed {
    pub signature_path: PathBuf,
    pub digest: String,
    /// The policy id of the key (from the secret key file's comment), if it has one.
    pub id: Option<String>,
    pub key_id: String,
}

/// Sign a component with a secret key from [`keygen`] (or any unencrypted minisign
/// secret key): writes `FILE.minisig`, whose trusted comment names the component's
/// digest and the key.
pub fn sign(file: &Path, key: &Path) -> Result<Signed, SigningError> {
    let key_text = std::fs::read_to_string(key).map_err(|source| SigningError::Io {
        path: key.to_path_buf(),
        source,
    })?;
    let id = key_text
        .lines()
        .next()
        .and_then(|l| l.split_once(SECRET_KEY_COMMENT_PREFIX))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .map(str::to_string);
    let secret = minisign::SecretKey::from_unencrypted_box(
        minisign::SecretKeyBox::from_string(&key_text).map_err(|e| SigningError::BadSecretKey {
            path: key.to_path_buf(),
            reason: e.to_string(),
        })?,
    )
    .map_err(|e| SigningError::BadSecretKey {
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    let public =
        minisign::PublicKey::from_secret_key(&secret).map_err(|e| SigningError::BadSecretKey {
            path: key.to_path_buf(),
            reason: e.to_string(),
        })?;
    let key_id = key_id_hex(public.keynum());
    let bytes = std::fs::read(file).map_err(|source| SigningError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    let digest = crate::host::cache::sha256_digest(&bytes);
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let trusted = format!(
        "sluice-plugin file:{name} digest:{digest} key:{} keynum:{key_id}",
        id.as_deref().unwrap_or("-")
    );
    let signature = minisign::sign(
        Some(&public),
        &secret,
        Cursor::new(&bytes),
        Some(&trusted),
        Some(&format!("signature from sluice key {key_id}")),
    )
    .map_err(|e| SigningError::Minisign(e.to_string()))?;
    let signature_path = signature_file_for(file);
    let tmp = signature_path.with_extension("minisig.tmp");
    std::fs::write(&tmp, signature.to_string()).map_err(|source| SigningError::Io {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, &signature_path).map_err(|source| SigningError::Io {
        path: signature_path.clone(),
        source,
    })?;
    Ok(Signed {
        signature_path,
        digest,
        id,
        key_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> jiff::civil::Date {
        s.parse().unwrap()
    }

    fn trusted(id: &str, k: &GeneratedKey) -> TrustedKey {
        TrustedKey {
            id: id.to_string(),
            public_key: k.public_key.clone(),
            not_before: None,
            not_after: None,
            pos: crate::config::SourcePos {
                file: PathBuf::from("policy.toml"),
                line: 1,
                column: 1,
            },
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        component: PathBuf,
        digest: String,
        key: GeneratedKey,
    }

    fn signed_fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let component = dir.path().join("lint.wasm");
        std::fs::write(&component, b"\0asm pretend component bytes").unwrap();
        let key = keygen(&dir.path().join("release.key"), "release-2026").unwrap();
        let signed = sign(&component, &key.secret_path).unwrap();
        Fixture {
            digest: signed.digest,
            component,
            key,
            _dir: dir,
        }
    }

    #[test]
    fn a_signed_component_verifies_with_its_trusted_key() {
        let f = signed_fixture();
        let got = verify(
            &PluginRef::File(f.component.clone()),
            &f.digest,
            &[trusted("release-2026", &f.key)],
            date("2026-11-29"),
        );
        assert_eq!(got, Ok("release-2026".to_string()));
    }

    #[test]
    fn keygen_writes_a_private_secret_key_and_a_minisign_public_key() {
        use std::os::unix::fs::PermissionsExt as _;
        let f = signed_fixture();
        let mode = std::fs::metadata(&f.key.secret_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let public = std::fs::read_to_string(&f.key.public_path).unwrap();
        let pk =
            minisign::PublicKey::from_box(minisign::PublicKeyBox::from_string(&public).unwrap())
                .unwrap();
        assert_eq!(pk.to_base64(), f.key.public_key);
        assert!(f.key.public_key.starts_with("RW"), "{}", f.key.public_key);
        // A key is never overwritten.
        assert!(matches!(
            keygen(&f.key.secret_path, "again"),
            Err(SigningError::Exists(_))
        ));
        let sig = std::fs::read_to_string(signature_file_for(&f.component)).unwrap();
        let sig = minisign::SignatureBox::from_string(&sig).unwrap();
        let comment = sig.trusted_comment().unwrap();
        assert!(comment.contains(&f.digest), "{comment}");
        assert!(comment.contains("key:release-2026"), "{comment}");
    }

    #[test]
    fn a_missing_signature_is_its_own_error() {
        let f = signed_fixture();
        std::fs::remove_file(signature_file_for(&f.component)).unwrap();
        let got = verify(
            &PluginRef::File(f.component.clone()),
            &f.digest,
            &[trusted("release-2026", &f.key)],
            date("2026-11-29"),
        );
        assert_eq!(
            got,
            Err(SignatureError::Missing(signature_file_for(&f.component)))
        );
    }

    #[test]
    fn a_malformed_signature_is_its_own_error() {
        let f = signed_fixture();
        std::fs::write(signature_file_for(&f.component), "not a signature\n").unwrap();
        let got = verify(
            &PluginRef::File(f.component.clone()),
            &f.digest,
            &[trusted("release-2026", &f.key)],
            date("2026-11-29"),
        );
        assert!(matches!(got, Err(SignatureError::Malformed(_))), "{got:?}");
    }

    #[test]
    fn a_signature_by_an_untrusted_key_lists_the_trusted_ones() {
        let f = signed_fixture();
        let other = keygen(&f._dir.path().join("other.key"), "other").unwrap();
        let got = verify(
            &PluginRef::File(f.component.clone()),
            &f.digest,
            &[trusted("other", &other)],
            date("2026-11-29"),
        );
        assert_eq!(
            got,
            Err(SignatureError::UntrustedKey {
                key_id: f.key.key_id.clone(),
                trusted: format!("`other` ({})", other.key_id),
            })
        );
    }

    #[test]
    fn changed_bytes_do_not_verify() {
        let f = signed_fixture();
        let mut bytes = std::fs::read(&f.component).unwrap();
        bytes.push(0);
        std::fs::write(&f.component, &bytes).unwrap();
        // Loaded with its new bytes (new digest), the old signature fails.
        let digest = crate::host::cache::sha256_digest(&bytes);
        let got = verify(
            &PluginRef::File(f.component.clone()),
            &digest,
            &[trusted("release-2026", &f.key)],
            date("2026-11-29"),
        );
        assert_eq!(
            got,
            Err(SignatureError::BadSignature {
                key: "release-2026".into()
            })
        );
        // Loaded with the old digest, the file changed underneath.
        let got = verify(
            &PluginRef::File(f.component.clone()),
            &f.digest,
            &[trusted("release-2026", &f.key)],
            date("2026-11-29"),
        );
        assert!(
            matches!(got, Err(SignatureError::Changed { .. })),
            "{got:?}"
        );
    }

    #[test]
    fn a_key_outside_its_validity_is_refused() {
        let f = signed_fixture();
        let mut key = trusted("release-2026", &f.key);
        key.not_before = Some(date("2026-01-01"));
        key.not_after = Some(date("2026-06-30"));
        let reference = PluginRef::File(f.component.clone());
        let got = verify(&reference, &f.digest, &[key.clone()], date("2026-07-01"));
        assert_eq!(
            got,
            Err(SignatureError::OutsideValidity {
                key: "release-2026".into(),
                window: "from 2026-01-01 through 2026-06-30 (today is 2026-07-01)".into(),
            })
        );
        assert!(verify(&reference, &f.digest, &[key.clone()], date("2025-12-31")).is_err());
        // The last day still counts.
        assert!(verify(&reference, &f.digest, &[key], date("2026-06-30")).is_ok());
    }

    #[test]
    fn a_rotated_key_verifies_while_the_retired_one_does_not() {
        let f = signed_fixture();
        let mut old = trusted("release-2026", &f.key);
        old.not_after = Some(date("2026-06-30"));
        let new_key = keygen(&f._dir.path().join("release-2027.key"), "release-2027").unwrap();
        let new = trusted("release-2027", &new_key);
        let reference = PluginRef::File(f.component.clone());
        let today = date("2026-11-29");
        let keys = [old, new];
        assert!(matches!(
            verify(&reference, &f.digest, &keys, today),
            Err(SignatureError::OutsideValidity { .. })
        ));
        sign(&f.component, &new_key.secret_path).unwrap();
        assert_eq!(
            verify(&reference, &f.digest, &keys, today),
            Ok("release-2027".to_string())
        );
    }

    #[test]
    fn an_encrypted_or_foreign_secret_key_is_refused_with_the_keygen_command() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        std::fs::write(&key, "untrusted comment: x\nnot base64\n").unwrap();
        let component = dir.path().join("c.wasm");
        std::fs::write(&component, b"x").unwrap();
        let err = sign(&component, &key).unwrap_err();
        assert!(err.to_string().contains("sluice plugin keygen"), "{err}");
    }
}
