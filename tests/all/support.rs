//! Helpers shared by the end-to-end tests: a scratch project folder with a pipeline
//! file, a way to run the real `sluice` binary on it, and readers for what a run
//! leaves behind.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The `sluice` binary under test.
pub fn sluice_bin() -> &'static str {
    env!("CARGO_BIN_EXE_sluice")
}

/// One compiled-component cache for the whole test run, so each fixture compiles once.
pub fn cache_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sluice-test-cache");
        std::fs::create_dir_all(&d).expect("create the test cache folder");
        // Sluice refuses a cache folder others can write, whatever the umask made.
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .expect("make the test cache folder private");
        d
    })
    .clone()
}

/// The adversarial fixture component, as an absolute path.
pub fn adversary() -> &'static str {
    sluice_tests::ADVERSARY
}

/// `sluice <args>` run in `dir`, with the shared cache.
pub fn sluice_in(dir: &Path, args: &[&str]) -> Outcome {
    Outcome::of(&mut command_in(dir, args))
}

/// The command `sluice <args>` in `dir`, with the shared cache, to adjust (e.g. a
/// cache of its own) before running it with [`Outcome::of`].
pub fn command_in(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(sluice_bin());
    cmd.args(args)
        .current_dir(dir)
        .env("SLUICE_CACHE_DIR", cache_dir())
        .env_remove("SLUICE_LOG");
    cmd
}

/// A throwaway project folder holding a `sluice.toml`.
pub struct Project {
    pub dir: tempfile::TempDir,
}

/// What one `sluice` invocation did.
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Run `cmd` to its end and collect what it did.
    pub fn of(cmd: &mut Command) -> Outcome {
        Outcome::from(cmd.output().expect("run sluice"))
    }

    /// Collect what a spawned child (with piped stdout and stderr) did; it has ended.
    pub fn from_child(child: std::process::Child) -> Outcome {
        Outcome::from(child.wait_with_output().expect("collect sluice's output"))
    }

    fn from(out: Output) -> Outcome {
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panic with both streams unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Outcome {
        assert_eq!(
            self.code, code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Project {
    /// A project whose pipeline file is `toml`, with `{adversary}` replaced by the
    /// fixture's path.
    pub fn new(toml: &str) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("sluice-e2e-")
            .tempdir()
            .expect("create a temp folder");
        let p = Project { dir };
        p.write("sluice.toml", &toml.replace("{adversary}", adversary()));
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write a file (folders created) relative to the project.
    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("a file has a folder")).expect("create folders");
        std::fs::write(p, content).expect("write a project file");
    }

    /// `sluice <args>` in the project folder, with the shared cache.
    pub fn sluice(&self, args: &[&str]) -> Outcome {
        sluice_in(self.path(), args)
    }

    /// The command `sluice <args>` in the project folder, to adjust before running.
    pub fn command(&self, args: &[&str]) -> Command {
        command_in(self.path(), args)
    }

    /// `sluice run --format plain` plus `extra` arguments.
    pub fn run(&self, extra: &[&str]) -> Outcome {
        let mut args = vec!["run", "--format", "plain"];
        args.extend_from_slice(extra);
        self.sluice(&args)
    }

    /// The `run.json` of the only run so far.
    pub fn run_record(&self) -> serde_json::Value {
        let runs = self.path().join(".sluice").join("runs");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&runs)
            .expect("the run folder exists")
            .map(|e| e.expect("list runs").path())
            .collect();
        dirs.sort();
        let last = dirs.last().expect("at least one run");
        let text = std::fs::read_to_string(last.join("run.json")).expect("run.json exists");
        serde_json::from_str(&text).expect("run.json is JSON")
    }

    /// The record of step `id` in the last run.
    pub fn step(&self, id: &str) -> serde_json::Value {
        let run = self.run_record();
        run["steps"]
            .as_array()
            .expect("steps is a list")
            .iter()
            .find(|s| s["step"] == id)
            .unwrap_or_else(|| panic!("no step {id} in {run:#}"))
            .clone()
    }

    /// The full log of step `id` in the last run.
    pub fn step_log(&self, id: &str) -> String {
        let step = self.step(id);
        let path = step["log"]
            .as_str()
            .unwrap_or_else(|| panic!("step {id} has no log: {step:#}"));
        std::fs::read_to_string(path).expect("read the step log")
    }
}

/// The value of output `name` of a step record.
pub fn output(step: &serde_json::Value, name: &str) -> String {
    step["report"]["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|pair| pair[0] == name))
        .and_then(|pair| pair[1].as_str())
        .unwrap_or_else(|| panic!("no output {name} in {step:#}"))
        .to_string()
}

/// Replace what changes from run to run (times, run ids, temp paths) in text that is
/// compared to a snapshot.
pub fn normalize(text: &str, project: &Path) -> String {
    let text = text.replace(&project.display().to_string(), "[PROJECT]");
    let text = text.replace(adversary(), "[ADVERSARY]");
    let re_time = regex::Regex::new(r"\[\d+(\.\d+)?(ms|s|m\d+s)\]").expect("valid regex");
    let re_run = regex::Regex::new(r"\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}").expect("valid regex");
    let re_dur = regex::Regex::new(r" in \d+(\.\d+)?(ms|s|m\d+s)").expect("valid regex");
    let text = re_time.replace_all(&text, "[TIME]");
    let text = re_run.replace_all(&text, "[RUN]");
    re_dur.replace_all(&text, " in [TIME]").into_owned()
}

/// The first `name` on PATH, if any.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Fail (never skip) a test that needs root, saying why; CI runs the tests as root.
#[track_caller]
pub fn require_root(why: &str) {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "this test must run as root {why}; run `cargo test` as root (CI does)"
    );
}

/// A listener on a fresh loopback port (accepting until the test ends), and the port.
pub fn tcp_listener() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = l.local_addr().expect("a bound address").port();
    (l, port)
}

/// Copy a folder tree (a real project under `examples/`, say), leaving out its build
/// output (`target`) and its runs (`.sluice`).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy's folder");
    for entry in std::fs::read_dir(from).expect("list the folder to copy") {
        let entry = entry.expect("list the folder to copy");
        let name = entry.file_name();
        if name == "target" || name == ".sluice" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type().expect("a file type").is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy a file");
        }
    }
}

/// A small HTTP/1.1 server with keep-alive, counting connections and requests by path.
///
/// - `/redirect` answers `302` to `/`;
/// - `/slow` answers after 30 s;
/// - `/stall` sends its head and half its body, then nothing for 30 s;
/// - `/sleep` answers `200` after 50 ms;
/// - `/flaky` answers `500` to every tenth request on it (the 10th, 20th...), else `200`;
/// - `/login` answers `200 {"token":"t-7f3a"}` (JSON); `/cart` and `/empty-cart` answer
///   `200` with a JSON list of items (one, none) when the request carries
///   `Authorization: Bearer t-7f3a`, else `401`: a canary's flow with a captured token;
/// - `/third-time` answers `503` to its first two requests, then `200`: retries;
/// - `/api/v1/query?query=...` answers as Prometheus's instant-query API would
///   ([`fake_prometheus_answer`]);
/// - anything else answers `200 hello`.
pub struct HttpServer {
    /// The loopback port it listens on.
    pub port: u16,
    connections: Arc<AtomicUsize>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl HttpServer {
    /// Listen on a free loopback port, one thread per connection.
    pub fn start() -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("bound").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (c, h) = (connections.clone(), hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let h = h.clone();
                std::thread::spawn(move || serve(stream, &h));
            }
        });
        HttpServer {
            port,
            connections,
            hits,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests answered on `path` so far.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn serve(stream: TcpStream, hits: &Mutex<HashMap<String, usize>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut length = 0usize;
        let mut authorization = String::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((n, v)) = header.split_once(':')
                && n.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
            if let Some((n, v)) = header.split_once(':')
                && n.eq_ignore_ascii_case("authorization")
            {
                authorization = v.trim().to_string();
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let count = {
            let mut hits = hits.lock().unwrap();
            let n = hits.entry(path.clone()).or_default();
            *n += 1;
            *n
        };
        let response = match path.as_str() {
            "/redirect" => {
                "HTTP/1.1 302 Found\r\nlocation: /\r\ncontent-length: 0\r\n\r\n".to_string()
            }
            "/stall" => {
                let _ = writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello");
                let _ = writer.flush();
                std::thread::sleep(Duration::from_secs(30));
                return;
            }
            "/slow" => {
                std::thread::sleep(Duration::from_secs(30));
                "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nslow".to_string()
            }
            "/sleep" => {
                std::thread::sleep(Duration::from_millis(50));
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nslept".to_string()
            }
            "/flaky" if count % 10 == 0 => {
                "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\noops".to_string()
            }
            "/login" => json_response(200, r#"{"token":"t-7f3a"}"#),
            "/cart" | "/empty-cart" if authorization == "Bearer t-7f3a" => {
                let items = if path == "/cart" {
                    r#"[{"sku":"a1"}]"#
                } else {
                    "[]"
                };
                json_response(200, &format!(r#"{{"items":{items}}}"#))
            }
            "/cart" | "/empty-cart" => json_response(401, r#"{"error":"no token"}"#),
            "/third-time" if count < 3 => {
                "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy".to_string()
            }
            p if p.starts_with("/api/v1/query?") => {
                let (status, body) = fake_prometheus_answer(p);
                json_response(status, &body)
            }
            _ => "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello".to_string(),
        };
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// A whole HTTP/1.1 response with a JSON body.
fn json_response(status: u16, body: &str) -> String {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        _ => "Status",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// What [`HttpServer`] answers to `/api/v1/query?query=<q>`, as Prometheus would:
/// `errors` is a vector of two series (`job="api"` at 7, `job="web"` at 2), `up` one
/// series at 1, `scalar(1)` a scalar 1, `nothing` an empty vector, anything else a
/// `bad_data` error (status 400).
pub fn fake_prometheus_answer(path_and_query: &str) -> (u16, String) {
    let query = path_and_query
        .split_once("query=")
        .map(|(_, q)| q.split('&').next().unwrap_or(""))
        .unwrap_or("");
    let vector = |series: &str| {
        format!(r#"{{"status":"success","data":{{"resultType":"vector","result":[{series}]}}}}"#)
    };
    match query {
        "errors" => (
            200,
            vector(
                r#"{"metric":{"job":"api"},"value":[1700000000.5,"7"]},{"metric":{"job":"web"},"value":[1700000000.5,"2"]}"#,
            ),
        ),
        "up" => (
            200,
            vector(r#"{"metric":{"__name__":"up","job":"api"},"value":[1700000000.5,"1"]}"#),
        ),
        "scalar%281%29" => (
            200,
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.5,"1"]}}"#
                .to_string(),
        ),
        "nothing" => (200, vector("")),
        other => (
            400,
            format!(
                r#"{{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": parse error in {other}"}}"#
            ),
        ),
    }
}
