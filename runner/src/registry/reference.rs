//! `oci://` references: parsed, checked, and shown as written.

use std::fmt;

/// The scheme of an OCI reference in `uses` or `policy`.
pub const OCI_SCHEME: &str = "oci://";

/// `oci://HOST[:PORT]/NS/NAME[:TAG][@sha256:HEX]`.
///
/// `registry`, `repository`, `tag` and `digest` are the reference as written (and
/// [`Display`](fmt::Display) shows it so: it is how `sluice.lock` and messages name
/// it). [`crate::registry::resolve`] fills in `component` and `manifest`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OciRef {
    /// `HOST[:PORT]`.
    pub registry: String,
    /// `NS/NAME` (one or more path components, lowercase).
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:HEX` as written after `@`: the digest of the artifact's manifest (what
    /// `sluice plugin push` prints), or of the component itself.
    pub digest: Option<String>,
    /// After resolution: `sha256:HEX` of the component's bytes (the artifact's one
    /// `application/wasm` layer). The host loads [`crate::registry::component_path`]
    /// of it and hashes it again; the lock and the policy pin this digest.
    pub component: Option<String>,
    /// After resolution: the digest of the manifest the component was found through,
    /// when it was pulled or found through one (not when the lock's digest named the
    /// component directly).
    pub manifest: Option<String>,
}

impl OciRef {
    /// Parse `oci://...`; the error says what is wrong, for a message at the key.
    pub fn parse(text: &str) -> Result<OciRef, String> {
        let rest = text
            .strip_prefix(OCI_SCHEME)
            .ok_or_else(|| format!("an OCI reference starts with `{OCI_SCHEME}`"))?;
        let (rest, digest) = match rest.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (rest, None),
        };
        if let Some(d) = &digest {
            let hex = d
                .strip_prefix("sha256:")
                .ok_or_else(|| format!("the digest `{d}` is not `sha256:` and 64 hex digits"))?;
            if hex.len() != 64
                || !hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                return Err(format!(
                    "the digest `{d}` is not `sha256:` and 64 lowercase hex digits"
                ));
            }
        }
        let (registry, path) = rest.split_once('/').ok_or_else(|| {
            "expected oci://HOST[:PORT]/NAMESPACE/NAME[:TAG][@sha256:DIGEST]".to_string()
        })?;
        if registry.is_empty()
            || !registry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        {
            return Err(format!(
                "`{registry}` is not a registry host (HOST or HOST:PORT)"
            ));
        }
        // A tag follows the last `:` of the last path component.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_string())),
            _ => (path, None),
        };
        if repository.is_empty()
            || repository.split('/').any(|c| {
                c.is_empty()
                    || !c.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            })
        {
            return Err(format!(
                "`{repository}` is not a repository name (lowercase letters, digits, `.`, `_`, `-`, separated by `/`)"
            ));
        }
        if let Some(t) = &tag
            && (t.is_empty()
                || t.len() > 128
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
        {
            return Err(format!(
                "`{t}` is not a tag (letters, digits, `.`, `_`, `-`; at most 128)"
            ));
        }
        if tag.is_none() && digest.is_none() {
            return Err("name a tag (`:1.2.0`) or a digest (`@sha256:...`)".to_string());
        }
        Ok(OciRef {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
            component: None,
            manifest: None,
        })
    }

    /// Whether the reference as written pins a digest (`@sha256:...`).
    pub fn pinned(&self) -> bool {
        self.digest.is_some()
    }

    /// `oci://HOST/NS/NAME`: the repository, without tag or digest (how the policy
    /// and the lock file name the plugin).
    pub fn repository_url(&self) -> String {
        format!("{OCI_SCHEME}{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for OciRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository_url())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tag_digest_and_port() {
        let r = OciRef::parse("oci://127.0.0.1:5000/acme/lint:1.2.0").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "acme/lint");
        assert_eq!(r.tag.as_deref(), Some("1.2.0"));
        assert_eq!(r.to_string(), "oci://127.0.0.1:5000/acme/lint:1.2.0");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = OciRef::parse(&format!("oci://ghcr.io/acme/lint@{d}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.tag, None);
    }

    #[test]
    fn refuses_malformed_references() {
        for bad in [
            "oci://",
            "oci://host",
            "oci://host/acme/lint",
            "oci://host/Acme/lint:1",
            "oci://host/acme/lint@sha256:abc",
            "oci://host/acme//lint:1",
        ] {
            assert!(OciRef::parse(bad).is_err(), "{bad}");
        }
    }
}
