//! A real OCI registry for the end-to-end tests: Debian's `docker-registry` (the CNCF
//! Distribution registry, 2.8) serving a temporary storage folder on a free loopback
//! port, killed by PID when the handle drops (and by its parent-death signal if the
//! test process dies without dropping it).
//!
//! ```ignore
//! let registry = Registry::start();
//! let uses = format!("oci://{}/acme/lint:1.0", registry.url());
//! ```

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::which;

/// Where Debian's package installs the registry.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// How long the registry may take to answer `GET /v2/` after it starts.
const STARTUP: Duration = Duration::from_secs(20);

/// A running `docker-registry` with storage of its own.
pub struct Registry {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Start a registry on a free loopback port with an empty temporary storage, and
    /// wait until `GET /v2/` answers. Panics (saying to install Debian's
    /// `docker-registry`) when the binary is missing.
    pub fn start() -> Registry {
        let bin = Path::new(REGISTRY_BIN);
        assert!(
            bin.is_file(),
            "{REGISTRY_BIN} is missing: install Debian's registry (`apt-get install docker-registry`); .ci/run does"
        );
        let dir = tempfile::Builder::new()
            .prefix("sluice-registry-")
            .tempdir()
            .expect("create a folder for the registry");
        std::fs::create_dir_all(dir.path().join("storage")).expect("create the storage folder");
        let mut registry = Registry {
            child: None,
            port: 0,
            dir,
        };
        // A port picked by binding port 0 can be taken again before the registry binds
        // it: try a few.
        let mut last_log = String::new();
        for _ in 0..3 {
            registry.port = free_port();
            std::fs::write(
                registry.config_path(),
                config(&registry.storage(), registry.port),
            )
            .expect("write the registry's config");
            registry.child = Some(spawn(bin, registry.dir.path(), &registry.config_path()));
            match registry.wait_ready() {
                Ok(()) => return registry,
                Err(log) => {
                    last_log = log;
                    registry.stop();
                }
            }
        }
        panic!("docker-registry did not become ready; its log:\n{last_log}");
    }

    /// `127.0.0.1:PORT`: the host part of an `oci://` reference.
    pub fn url(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's storage folder (`storage.filesystem.rootdirectory`).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The file holding the bytes of the blob `sha256:HEX` in the storage (the
    /// filesystem driver's layout), whether or not it exists.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest
            .strip_prefix("sha256:")
            .unwrap_or_else(|| panic!("`{digest}` is not a sha256 digest"));
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// What the registry logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// `GET path` (e.g. `/v2/acme/lint/manifests/1.0`) with an `Accept` header: the
    /// status, the response headers (names lowercase) and the body.
    pub fn get(&self, path: &str, accept: &str) -> Response {
        http_get(self.port, path, accept)
            .unwrap_or_else(|| panic!("GET {path} on the registry: no answer\n{}", self.log()))
    }

    /// The manifest of `repository:tag_or_digest` as the registry serves it (OCI image
    /// manifest), parsed.
    pub fn manifest(&self, repository: &str, reference: &str) -> serde_json::Value {
        let (status, _, body) = self.get(
            &format!("/v2/{repository}/manifests/{reference}"),
            "application/vnd.oci.image.manifest.v1+json",
        );
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 200, "manifest {repository}:{reference}: {text}");
        serde_json::from_str(&text).expect("the manifest is JSON")
    }

    /// Upload a blob into `repository` (the two-request monolithic upload of the
    /// distribution API); its digest.
    pub fn put_blob(&self, repository: &str, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        let (status, headers, body) = http_request(
            self.port,
            "POST",
            &format!("/v2/{repository}/blobs/uploads/"),
            &[],
            &[],
        )
        .expect("the registry answers an upload request");
        assert_eq!(
            status,
            202,
            "start an upload: {}",
            String::from_utf8_lossy(&body)
        );
        let location = header(&headers, "location").expect("an upload location");
        let location = location
            .strip_prefix(&format!("http://{}", self.url()))
            .unwrap_or(&location)
            .to_string();
        let sep = if location.contains('?') { '&' } else { '?' };
        let (status, _, body) = http_request(
            self.port,
            "PUT",
            &format!("{location}{sep}digest={digest}"),
            &[("Content-Type", "application/octet-stream")],
            bytes,
        )
        .expect("the registry answers an upload");
        assert_eq!(
            status,
            201,
            "upload a blob: {}",
            String::from_utf8_lossy(&body)
        );
        digest
    }

    /// Put a manifest (its JSON text, of `media_type`) at `repository:tag`; its digest.
    pub fn put_manifest(
        &self,
        repository: &str,
        tag: &str,
        media_type: &str,
        json: &str,
    ) -> String {
        let (status, _, body) = http_request(
            self.port,
            "PUT",
            &format!("/v2/{repository}/manifests/{tag}"),
            &[("Content-Type", media_type)],
            json.as_bytes(),
        )
        .expect("the registry answers a manifest upload");
        assert_eq!(
            status,
            201,
            "put a manifest: {}",
            String::from_utf8_lossy(&body)
        );
        sha256_digest(json.as_bytes())
    }

    /// Kill it by PID and reap it (idempotent). Its storage stays until the handle
    /// drops.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yml")
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP;
        loop {
            let child = self.child.as_mut().expect("running");
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("(exited with {status})\n{}", self.log()));
            }
            if http_get(self.port, "/v2/", "*/*").is_some_and(|(s, _, _)| s == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("(not ready after {STARTUP:?})\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The registry's configuration: filesystem storage with deletes enabled, loopback
/// only, no authentication, logs to its output (a file).
fn config(storage: &Path, port: u16) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: info\n  formatter: text\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: sluice-test-registry\n",
        storage.display()
    )
}

fn spawn(bin: &Path, dir: &Path, config: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("registry.log"))
        .expect("create the registry's log");
    // The parent-death signal kills the registry if the test process dies without
    // running the handle's drop (an abort, a kill -9 of the test binary).
    let mut cmd = match which("setpriv") {
        Some(setpriv) => {
            let mut c = Command::new(setpriv);
            c.args(["--pdeathsig", "KILL", "--"]).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.arg("serve")
        .arg(config)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone the log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// `GET path` on `127.0.0.1:port`, or `None` when nothing answers.
fn http_get(port: u16, path: &str, accept: &str) -> Option<Response> {
    http_request(port, "GET", path, &[("Accept", accept)], &[])
}

/// A response: status, headers (names lowercase), body.
pub type Response = (u16, Vec<(String, String)>, Vec<u8>);

/// `METHOD path` on `127.0.0.1:port` over HTTP/1.0 (the body ends at the close), or
/// `None` when nothing answers.
fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let body = response[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some((status, headers, body))
}

/// The value of header `name` (lowercase) in a response's headers.
pub fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// `sha256:HEX` of some bytes (with coreutils' `sha256sum`, so the tests need no
/// hashing crate of their own).
pub fn sha256_digest(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    child
        .stdin
        .take()
        .expect("sha256sum's input")
        .write_all(bytes)
        .expect("feed sha256sum");
    let out = child.wait_with_output().expect("sha256sum ends");
    let text = String::from_utf8_lossy(&out.stdout);
    format!("sha256:{}", text.split_whitespace().next().expect("a hash"))
}
