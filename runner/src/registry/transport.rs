//! How the runner talks to a registry: an `oci_client::Client` per registry host,
//! HTTPS unless the host is loopback or listed in `SLUICE_INSECURE_REGISTRIES`;
//! credentials from Docker's `config.json` (`auths` entries only) or none; and the
//! client's errors turned into sentences that name the host and what it answered.

use std::path::PathBuf;
use std::time::Duration;

use oci_client::Reference;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;

use super::OciRef;

/// The variable listing registries (`HOST:PORT,...`) reached over plain HTTP.
pub const INSECURE_VAR: &str = "SLUICE_INSECURE_REGISTRIES";

/// How long connecting to a registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a registry may stay silent while it sends an answer.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A client for one registry host, and the credentials to give it.
pub(super) struct Connection {
    pub client: oci_client::Client,
    pub auth: RegistryAuth,
    /// `http` or `https`, for messages.
    pub scheme: &'static str,
    /// `HOST[:PORT]`.
    pub registry: String,
}

impl Connection {
    /// A client for the registry `reference` names.
    pub fn to(reference: &OciRef) -> Connection {
        // reqwest's rustls needs a process-wide provider; the runner uses ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let insecure = plain_http(&reference.registry);
        let config = ClientConfig {
            protocol: if insecure {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            // A plugin is one image manifest; an index is refused, not resolved.
            platform_resolver: None,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            user_agent: concat!("sluice/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        Connection {
            client: oci_client::Client::new(config),
            auth: docker_credentials(&reference.registry).unwrap_or(RegistryAuth::Anonymous),
            scheme: if insecure { "http" } else { "https" },
            registry: reference.registry.clone(),
        }
    }

    /// The client's reference for `reference`'s repository at `tag`.
    pub fn tagged(&self, reference: &OciRef, tag: &str) -> Reference {
        Reference::with_tag(
            reference.registry.clone(),
            reference.repository.clone(),
            tag.to_string(),
        )
    }

    /// The client's reference for `reference`'s repository at `digest`.
    pub fn at_digest(&self, reference: &OciRef, digest: &str) -> Reference {
        Reference::with_digest(
            reference.registry.clone(),
            reference.repository.clone(),
            digest.to_string(),
        )
    }

    /// The client's error as a sentence: an unreachable registry names its address,
    /// a refusal names the registry's error codes and messages.
    pub fn explain(&self, error: &OciDistributionError) -> String {
        match error {
            OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
                format!(
                    "cannot reach the registry at {} ({}): {}",
                    self.registry,
                    self.scheme,
                    chain(e)
                )
            }
            OciDistributionError::RequestError(e) => format!(
                "the request to the registry at {} ({}) failed: {}",
                self.registry,
                self.scheme,
                chain(e)
            ),
            OciDistributionError::RegistryError { envelope, url } => {
                let errors: Vec<String> = envelope
                    .errors
                    .iter()
                    .map(|e| {
                        if e.message.is_empty() {
                            format!("{:?}", e.code)
                        } else {
                            format!("{:?}: {}", e.code, e.message)
                        }
                    })
                    .collect();
                format!(
                    "the registry at {} answered {} for {url}",
                    self.registry,
                    errors.join("; ")
                )
            }
            OciDistributionError::ServerError { code, url, message } => format!(
                "the registry at {} answered HTTP {code} for {url}: {}",
                self.registry,
                message.trim()
            ),
            OciDistributionError::UnauthorizedError { url } => format!(
                "the registry at {} refused {url} as unauthorized ({}); add credentials with `docker login {}` (an `auths` entry in ~/.docker/config.json)",
                self.registry,
                match self.auth {
                    RegistryAuth::Anonymous => "no credentials were sent",
                    _ => "the credentials from the Docker config were sent",
                },
                self.registry
            ),
            OciDistributionError::AuthenticationFailure(reason) => format!(
                "authenticating to the registry at {} failed: {reason}",
                self.registry
            ),
            other => format!("the registry at {}: {other}", self.registry),
        }
    }
}

/// Whether the registry is known not to match a manifest or blob (as opposed to any
/// other failure).
pub(super) fn is_unknown(error: &OciDistributionError) -> bool {
    match error {
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                oci_client::errors::OciErrorCode::ManifestUnknown
                    | oci_client::errors::OciErrorCode::BlobUnknown
                    | oci_client::errors::OciErrorCode::NameUnknown
                    | oci_client::errors::OciErrorCode::NotFound
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        _ => false,
    }
}

/// An error and its sources, one sentence.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Whether `registry` (`HOST[:PORT]`) is reached over plain HTTP: loopback hosts
/// (`127.0.0.0/8`, `::1`, `localhost`) and those `SLUICE_INSECURE_REGISTRIES` lists.
pub fn plain_http(registry: &str) -> bool {
    let host = host_of(registry);
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    loopback
        || std::env::var(INSECURE_VAR).is_ok_and(|list| {
            list.split(',')
                .map(str::trim)
                .any(|entry| !entry.is_empty() && entry.eq_ignore_ascii_case(registry))
        })
}

/// `HOST` of `HOST[:PORT]` (brackets of an IPv6 address removed).
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => registry,
    }
}

/// Docker's client config: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".docker").join("config.json"))
}

/// Basic credentials for `registry` from the `auths` of Docker's config (as `docker
/// login` writes them: `auth` = base64 of `user:password`, or `username` and
/// `password`). Credential helpers (`credsStore`, `credHelpers`) are not run.
fn docker_credentials(registry: &str) -> Option<RegistryAuth> {
    let text = std::fs::read_to_string(docker_config_path()?).ok()?;
    credentials_in(&text, registry)
}

fn credentials_in(config_json: &str, registry: &str) -> Option<RegistryAuth> {
    let config: serde_json::Value = serde_json::from_str(config_json).ok()?;
    let auths = config.get("auths")?.as_object()?;
    let entry = auths.iter().find_map(|(key, entry)| {
        let key = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let key = key.split('/').next().unwrap_or(key);
        key.eq_ignore_ascii_case(registry).then_some(entry)
    })?;
    if let Some(encoded) = entry.get("auth").and_then(|a| a.as_str()) {
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        return Some(RegistryAuth::Basic(user.to_string(), password.to_string()));
    }
    let user = entry.get("username")?.as_str()?;
    let password = entry.get("password")?.as_str()?;
    Some(RegistryAuth::Basic(user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_reached_over_http() {
        assert!(plain_http("127.0.0.1:5000"));
        assert!(plain_http("127.8.0.1"));
        assert!(plain_http("localhost:5000"));
        assert!(plain_http("[::1]:5000"));
        assert!(!plain_http("registry.acme.example"));
        assert!(!plain_http("10.0.0.1:5000"));
    }

    #[test]
    fn docker_auths_give_basic_credentials() {
        let config = r#"{"auths": {
            "https://registry.acme.example/v1/": {"auth": "ZGFuYTpzM2NyZXQ="},
            "ghcr.io": {"username": "bot", "password": "tok"}
        }, "credsStore": "desktop"}"#;
        assert_eq!(
            credentials_in(config, "registry.acme.example"),
            Some(RegistryAuth::Basic("dana".into(), "s3cret".into()))
        );
        assert_eq!(
            credentials_in(config, "ghcr.io"),
            Some(RegistryAuth::Basic("bot".into(), "tok".into()))
        );
        assert_eq!(credentials_in(config, "quay.io"), None);
    }
}
