//! The cache of pulled artifacts, addressed by digest, under
//! [`cache_dir`](super::cache_dir):
//!
//! - `blobs/sha256/HEX`: a component's (or a policy's) bytes, whose sha256 is HEX;
//! - `blobs/sha256/HEX.minisig`: the signature pulled with the component HEX;
//! - `manifests/sha256/HEX`: a manifest's bytes, whose sha256 is HEX.
//!
//! Nothing is trusted for being in the cache: a blob or manifest counts as present
//! only when its bytes hash to its name (checked on every lookup), and the host hashes
//! a component again when it loads it. A blob is written to a temporary file in its
//! folder while it is hashed and renamed into place only when the hash is the one
//! expected, so a reader never sees half a blob and concurrent pulls of the same
//! digest are harmless. Folders are made 0755 and files 0644 (less what the umask
//! removes): a cache may be shared read-only between users; whoever can write to it
//! can only make lookups miss, never make a wrong blob load.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use super::RegistryError;

/// The cache, opened at a folder.
pub(super) struct Store {
    root: PathBuf,
}

/// A blob being written: the temporary file and the hash of what went in so far.
pub(super) struct BlobWriter {
    file: tempfile::NamedTempFile,
    hasher: sha2::Sha256,
    written: u64,
    folder: PathBuf,
}

impl Store {
    /// The cache at [`super::cache_dir`].
    pub fn open() -> Result<Store, RegistryError> {
        let root = super::cache_dir().ok_or_else(|| RegistryError::Cache {
            path: PathBuf::from("$SLUICE_OCI_CACHE"),
            source: std::io::Error::other(
                "no cache folder for pulled plugins: set SLUICE_OCI_CACHE (or HOME)",
            ),
        })?;
        Ok(Store { root })
    }

    /// Where the blob `sha256:HEX` lies, whether or not it is there.
    pub fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        Some(self.blobs().join(hex_of(digest)?))
    }

    fn blobs(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn manifests(&self) -> PathBuf {
        self.root.join("manifests").join("sha256")
    }

    /// The blob `digest`, when the cache holds it and its bytes hash to `digest`.
    pub fn verified_blob(&self, digest: &str) -> Option<PathBuf> {
        let path = self.blob_path(digest)?;
        let file = std::fs::File::open(&path).ok()?;
        (hash_reader(file).ok()? == digest).then_some(path)
    }

    /// The manifest `digest`'s bytes, when the cache holds it and they hash to it.
    pub fn manifest(&self, digest: &str) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.manifests().join(hex_of(digest)?)).ok()?;
        (sha256_digest(&bytes) == digest).then_some(bytes)
    }

    /// Keep a manifest that hashes to `digest` (checked by the caller).
    pub fn put_manifest(&self, digest: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        let folder = self.manifests();
        let name = hex_of(digest).ok_or_else(|| not_sha256(&folder, digest))?;
        write_atomically(&folder, name, bytes)
    }

    /// Keep the signature pulled for the component `digest`, replacing an older one.
    pub fn put_signature(&self, component: &str, bytes: &[u8]) -> Result<PathBuf, RegistryError> {
        let folder = self.blobs();
        let name = hex_of(component).ok_or_else(|| not_sha256(&folder, component))?;
        let name = format!("{name}.minisig");
        write_atomically(&folder, &name, bytes)?;
        Ok(folder.join(name))
    }

    /// Start writing a blob into the blob folder.
    pub fn blob_writer(&self) -> Result<BlobWriter, RegistryError> {
        let folder = self.blobs();
        make_folder(&folder)?;
        let file = tempfile::Builder::new()
            .prefix(".pull-")
            .tempfile_in(&folder)
            .map_err(|source| RegistryError::Cache {
                path: folder.clone(),
                source,
            })?;
        Ok(BlobWriter {
            file,
            hasher: sha2::Sha256::new(),
            written: 0,
            folder,
        })
    }
}

impl BlobWriter {
    /// Append bytes (hashed as they go).
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), RegistryError> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        self.file
            .write_all(bytes)
            .map_err(|source| RegistryError::Cache {
                path: self.file.path().to_path_buf(),
                source,
            })
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// `sha256:HEX` of what was written so far.
    pub fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.clone().finalize()))
    }

    /// Put the blob in place when it hashes to `expected`; else drop it and return
    /// the digest it has (`Err(actual)`).
    pub fn finish(self, expected: &str) -> Result<Result<PathBuf, String>, RegistryError> {
        let actual = self.digest();
        if actual != expected {
            return Ok(Err(actual));
        }
        let Some(name) = hex_of(expected) else {
            return Err(not_sha256(&self.folder, expected));
        };
        let target = self.folder.join(name);
        let cache_err = |source| RegistryError::Cache {
            path: target.clone(),
            source,
        };
        self.file.as_file().sync_all().map_err(cache_err)?;
        self.file
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(cache_err)?;
        self.file.persist(&target).map_err(|e| cache_err(e.error))?;
        Ok(Ok(target))
    }
}

/// `sha256:HEX` of some bytes.
pub(super) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// `sha256:HEX` of what a reader yields.
fn hash_reader(mut reader: impl Read) -> std::io::Result<String> {
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

/// HEX of `sha256:HEX`, when it is 64 lowercase hex digits (so it is a safe file name).
fn hex_of(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

fn not_sha256(folder: &Path, digest: &str) -> RegistryError {
    RegistryError::Cache {
        path: folder.to_path_buf(),
        source: std::io::Error::other(format!("`{digest}` is not a sha256 digest")),
    }
}

fn make_folder(folder: &Path) -> Result<(), RegistryError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(folder)
        .map_err(|source| RegistryError::Cache {
            path: folder.to_path_buf(),
            source,
        })
}

/// Write `bytes` as `folder/name` through a temporary file renamed into place.
fn write_atomically(folder: &Path, name: &str, bytes: &[u8]) -> Result<(), RegistryError> {
    make_folder(folder)?;
    let target = folder.join(name);
    let cache_err = |source| RegistryError::Cache {
        path: target.clone(),
        source,
    };
    let mut file = tempfile::Builder::new()
        .prefix(".pull-")
        .tempfile_in(folder)
        .map_err(cache_err)?;
    file.write_all(bytes).map_err(cache_err)?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(cache_err)?;
    file.persist(&target).map_err(|e| cache_err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store {
            root: dir.path().join("oci"),
        };
        (dir, store)
    }

    #[test]
    fn a_blob_is_kept_only_when_it_hashes_to_its_digest() {
        let (_dir, store) = store();
        let good = sha256_digest(b"component bytes");
        let mut w = store.blob_writer().unwrap();
        w.write(b"component ").unwrap();
        w.write(b"bytes").unwrap();
        let path = w.finish(&good).unwrap().unwrap();
        assert_eq!(store.verified_blob(&good), Some(path.clone()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);

        let other = sha256_digest(b"something else");
        let mut w = store.blob_writer().unwrap();
        w.write(b"tampered bytes!").unwrap();
        assert_eq!(
            w.finish(&other).unwrap(),
            Err(sha256_digest(b"tampered bytes!"))
        );
        assert_eq!(store.verified_blob(&other), None);
        // Nothing half-written is left behind.
        let left: Vec<_> = std::fs::read_dir(store.blobs()).unwrap().collect();
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn a_cached_blob_changed_on_disk_is_a_miss() {
        let (_dir, store) = store();
        let digest = sha256_digest(b"abc");
        let mut w = store.blob_writer().unwrap();
        w.write(b"abc").unwrap();
        let path = w.finish(&digest).unwrap().unwrap();
        std::fs::write(&path, b"abd").unwrap();
        assert_eq!(store.verified_blob(&digest), None);
    }

    #[test]
    fn manifests_are_checked_on_lookup() {
        let (_dir, store) = store();
        let digest = sha256_digest(b"{}");
        store.put_manifest(&digest, b"{}").unwrap();
        assert_eq!(store.manifest(&digest).as_deref(), Some(&b"{}"[..]));
        store.put_manifest(&digest, b"[]").unwrap();
        assert_eq!(store.manifest(&digest), None);
        assert!(store.put_manifest("sha256:../../etc", b"{}").is_err());
    }
}
