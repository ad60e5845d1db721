//! A real Prometheus for the end-to-end tests, and a test service whose metrics the
//! test sets.
//!
//! [`Prometheus::start`] runs Debian's `/usr/bin/prometheus` on a free loopback port with
//! a generated config (a short scrape interval, [`SCRAPE_INTERVAL`]) and storage in a
//! temporary folder, waits until it is ready (`/-/ready`), and kills it by PID when the
//! handle is dropped, whatever the test did. Prometheus hands new targets to its
//! scrapers on a fixed 5 s tick (its discovery manager's throttle, not configurable in
//! 2.42), so a target's first scrape comes about 5 s after the start: a test starts its
//! Prometheus first and does its other set-up before [`Prometheus::wait_target_up`]. It is also started under `setpriv
//! --pdeathsig KILL`, so that a test binary that dies without unwinding takes its
//! Prometheus with it. Where `prometheus` is missing, a test skips with a message
//! outside CI and fails in CI (`CI` set): `.ci/run` installs it.
//!
//! [`MetricsService`] is the scraped side: `/metrics` in the Prometheus text format,
//! holding counters and gauges the test sets, on a loopback port of its own.
//!
//! The HTTP client here is a few lines of HTTP/1.0 over a `TcpStream` (one request per
//! connection, the body ends at the close): the tests only ever talk to loopback
//! servers, and no blocking HTTP client is in the lockfile (the runner's HTTP is hyper
//! inside wasmtime-wasi-http), so a new client crate would cost a build for little.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::which;

/// How often the test Prometheus scrapes its targets.
pub const SCRAPE_INTERVAL: &str = "250ms";

/// How long the harness waits for Prometheus to come up, or for a condition.
const PATIENCE: Duration = Duration::from_secs(30);

/// One scrape job: a name and the `host:port` it scrapes (path `/metrics`).
#[derive(Clone, Debug)]
pub struct ScrapeTarget {
    pub job: String,
    pub address: String,
}

impl ScrapeTarget {
    /// Job `job` scraping `127.0.0.1:port`.
    pub fn loopback(job: &str, port: u16) -> ScrapeTarget {
        ScrapeTarget {
            job: job.to_string(),
            address: format!("127.0.0.1:{port}"),
        }
    }
}

/// A Prometheus server the test started; killed by PID when dropped.
pub struct Prometheus {
    child: Option<Child>,
    /// The loopback port its HTTP API listens on.
    pub port: u16,
    /// Config, storage and log, removed on drop.
    dir: tempfile::TempDir,
}

/// The `prometheus` binary, or `None` (after saying why) when a test should skip; in CI
/// (`CI` set) a missing binary fails the test instead, since `.ci/run` installs it.
/// The test is named by its thread (libtest names each test's thread after it).
#[track_caller]
pub fn prometheus_or_skip() -> Option<PathBuf> {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("this test");
    if let Some(bin) = which("prometheus") {
        return Some(bin);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{test}: `prometheus` is not on PATH, and CI must run this test: \
             .ci/run installs Debian's `prometheus` package"
        );
    }
    eprintln!(
        "SKIPPED {test}: `prometheus` is not on PATH \
         (`apt-get install --no-install-recommends prometheus`, or run .ci/run)"
    );
    None
}

impl Prometheus {
    /// Start `bin` scraping `targets` every [`SCRAPE_INTERVAL`], and wait until it is
    /// ready to answer queries.
    pub fn start(bin: &std::path::Path, targets: &[ScrapeTarget]) -> Prometheus {
        let mut dir = tempfile::Builder::new()
            .prefix("sluice-prometheus-")
            .tempdir()
            .expect("create a folder for Prometheus");
        std::fs::write(dir.path().join("prometheus.yml"), config(targets))
            .expect("write the Prometheus config");
        // A port picked by binding port 0 can be taken again before Prometheus binds
        // it: try a few.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut p = Prometheus {
                child: Some(spawn(bin, dir.path(), port)),
                port,
                dir,
            };
            match p.wait_ready() {
                Ok(()) => return p,
                Err(log) => {
                    last_log = log;
                    p.stop();
                    dir = std::mem::replace(
                        &mut p.dir,
                        tempfile::tempdir().expect("a placeholder folder"),
                    );
                }
            }
        }
        panic!("Prometheus did not become ready; its log:\n{last_log}");
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `http://127.0.0.1:PORT`, what a monitor's `url` names.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`, what a grant names.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What it logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Wait until job `job`'s target has been scraped successfully (`health: up`).
    pub fn wait_target_up(&self, job: &str) {
        self.wait_until(&format!("the target of job {job} is up"), || {
            let (status, body) = http("GET", self.port, "/api/v1/targets?state=active");
            if status != 200 {
                return false;
            }
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            v["data"]["activeTargets"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t["labels"]["job"] == job && t["health"] == "up")
        });
    }

    /// The result of the instant query `promql`: each series' labels and value.
    pub fn query(&self, promql: &str) -> Vec<(serde_json::Value, f64)> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let (status, body) = http("GET", self.port, &path);
        assert_eq!(status, 200, "query {promql} failed: {body}");
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(v["status"], "success", "query {promql} failed: {body}");
        let data = &v["data"];
        let value_of = |pair: &serde_json::Value| -> f64 {
            pair[1]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("a sample value in {body}"))
        };
        match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .expect("a vector is a list")
                .iter()
                .map(|s| (s["metric"].clone(), value_of(&s["value"])))
                .collect(),
            Some("scalar") => vec![(serde_json::Value::Null, value_of(&data["result"]))],
            other => panic!("query {promql}: unexpected result type {other:?}: {body}"),
        }
    }

    /// Wait until `promql` yields exactly one series whose value is `want`, and return
    /// its labels.
    pub fn wait_value(&self, promql: &str, want: f64) -> serde_json::Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let seen = self.query(promql);
            if let [(labels, v)] = seen.as_slice()
                && *v == want
            {
                return labels.clone();
            }
            assert!(
                Instant::now() < deadline,
                "waited {PATIENCE:?} for {promql} == {want}, last seen {seen:?}; \
                 Prometheus's log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Poll `done` every 50 ms until it holds; fail the test after [`PATIENCE`].
    pub fn wait_until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "waited {PATIENCE:?} for {what}; Prometheus's log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let child = self.child.as_mut().expect("running");
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("(exited with {status})\n{}", self.log()));
            }
            if try_http("GET", self.port, "/-/ready").is_some_and(|(s, _)| s == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("(not ready after {PATIENCE:?})\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kill it by PID and reap it (idempotent).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The config file: every target one job, scraped every [`SCRAPE_INTERVAL`].
fn config(targets: &[ScrapeTarget]) -> String {
    let mut yaml = format!(
        "global:\n  scrape_interval: {SCRAPE_INTERVAL}\n  scrape_timeout: {SCRAPE_INTERVAL}\n\
         scrape_configs:\n"
    );
    for t in targets {
        yaml.push_str(&format!(
            "  - job_name: {:?}\n    static_configs:\n      - targets: [{:?}]\n",
            t.job, t.address
        ));
    }
    if targets.is_empty() {
        yaml.push_str("  []\n");
    }
    yaml
}

fn spawn(bin: &std::path::Path, dir: &std::path::Path, port: u16) -> Child {
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("create the log");
    let args = [
        format!("--config.file={}", dir.join("prometheus.yml").display()),
        format!("--storage.tsdb.path={}", dir.join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--log.level=warn".to_string(),
    ];
    // The parent-death signal kills Prometheus if the test process dies without running
    // the handle's drop (an abort, a kill -9 of the test binary).
    let mut cmd = match which("setpriv") {
        Some(setpriv) => {
            let mut c = Command::new(setpriv);
            c.args(["--pdeathsig", "KILL", "--"]).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(&args)
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

/// `METHOD path` on `127.0.0.1:port`: the status and body; panics when unreachable.
pub fn http(method: &str, port: u16, path: &str) -> (u16, String) {
    try_http(method, port, path)
        .unwrap_or_else(|| panic!("{method} http://127.0.0.1:{port}{path}: no answer"))
}

/// `METHOD path` on `127.0.0.1:port` over HTTP/1.0 (the body ends at the close), or
/// `None` when nothing answers.
pub fn try_http(method: &str, port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(PATIENCE)).ok()?;
    let request =
        format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// `text` as a query-string value (RFC 3986: everything but the unreserved characters
/// percent-encoded).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a metric is, for its `# TYPE` line.
#[derive(Clone, Copy, Debug)]
enum MetricKind {
    Counter,
    Gauge,
}

/// A loopback HTTP service serving `/metrics` (Prometheus text format 0.0.4) with
/// counters and gauges the test sets; stops accepting when dropped.
pub struct MetricsService {
    /// The loopback port it listens on.
    pub port: u16,
    /// Series (name with its labels, e.g. `errors_total{route="/a"}`) and values.
    metrics: Arc<Mutex<BTreeMap<String, (MetricKind, f64)>>>,
    stopping: Arc<AtomicBool>,
}

impl MetricsService {
    /// Listen on a free loopback port, one thread per connection (keep-alive, as
    /// Prometheus scrapes).
    pub fn start() -> MetricsService {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("bound").port();
        let metrics: Arc<Mutex<BTreeMap<String, (MetricKind, f64)>>> = Arc::default();
        let stopping = Arc::new(AtomicBool::new(false));
        let (m, s) = (metrics.clone(), stopping.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (m, s) = (m.clone(), s.clone());
                std::thread::spawn(move || serve_metrics(stream, &m, &s));
            }
        });
        MetricsService {
            port,
            metrics,
            stopping,
        }
    }

    /// Set counter `series` to `value` (a counter only goes up: the test's business).
    pub fn set_counter(&self, series: &str, value: f64) {
        self.set(series, MetricKind::Counter, value);
    }

    /// Add `by` to counter `series` (created at 0).
    pub fn add_counter(&self, series: &str, by: f64) {
        let mut m = self.metrics.lock().unwrap();
        m.entry(series.to_string())
            .or_insert((MetricKind::Counter, 0.0))
            .1 += by;
    }

    /// Set gauge `series` to `value`.
    pub fn set_gauge(&self, series: &str, value: f64) {
        self.set(series, MetricKind::Gauge, value);
    }

    fn set(&self, series: &str, kind: MetricKind, value: f64) {
        self.metrics
            .lock()
            .unwrap()
            .insert(series.to_string(), (kind, value));
    }

    /// The `/metrics` body as it is now.
    pub fn exposition(&self) -> String {
        exposition(&self.metrics.lock().unwrap())
    }
}

impl Drop for MetricsService {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag and ends.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// The text format: one `# TYPE` line per metric name, then its series.
fn exposition(metrics: &BTreeMap<String, (MetricKind, f64)>) -> String {
    let mut out = String::new();
    let mut typed = std::collections::BTreeSet::new();
    for (series, (kind, value)) in metrics {
        let name = series.split('{').next().unwrap_or(series);
        if typed.insert(name.to_string()) {
            let kind = match kind {
                MetricKind::Counter => "counter",
                MetricKind::Gauge => "gauge",
            };
            out.push_str(&format!("# TYPE {name} {kind}\n"));
        }
        out.push_str(&format!("{series} {value}\n"));
    }
    out
}

fn serve_metrics(
    stream: TcpStream,
    metrics: &Mutex<BTreeMap<String, (MetricKind, f64)>>,
    stopping: &AtomicBool,
) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || stopping.load(Ordering::SeqCst) {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header.trim_end().is_empty() {
                break;
            }
        }
        let (status, body) = if path == "/metrics" {
            ("200 OK", exposition(&metrics.lock().unwrap()))
        } else {
            ("404 Not Found", "only /metrics here\n".to_string())
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// The harness itself: Prometheus starts, scrapes the test service, a query returns the
/// value the test set and then the value it changed to, and dropping the handle ends
/// the process.
#[test]
fn prometheus_harness_reads_back_the_values_the_test_service_serves() {
    let Some(bin) = prometheus_or_skip() else {
        return;
    };
    let service = MetricsService::start();
    service.set_counter("sluice_test_errors_total{route=\"/a\"}", 7.0);
    service.set_gauge("sluice_test_queue_depth", 2.5);
    assert!(
        service
            .exposition()
            .contains("# TYPE sluice_test_errors_total counter\n"),
        "{}",
        service.exposition()
    );

    let prometheus = Prometheus::start(&bin, &[ScrapeTarget::loopback("service", service.port)]);
    prometheus.wait_target_up("service");
    let labels = prometheus.wait_value("sluice_test_errors_total", 7.0);
    assert_eq!(labels["route"], "/a", "{labels}");
    assert_eq!(labels["job"], "service", "{labels}");
    prometheus.wait_value("sluice_test_queue_depth", 2.5);

    service.add_counter("sluice_test_errors_total{route=\"/a\"}", 5.0);
    prometheus.wait_value("sluice_test_errors_total", 12.0);
    assert!(
        prometheus.query("no_such_series_yet").is_empty(),
        "a series nobody exposes has no data"
    );

    let pid = prometheus.pid();
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    assert!(proc_dir.exists());
    drop(prometheus);
    assert!(
        !proc_dir.exists(),
        "Prometheus (pid {pid}) is still there after its handle was dropped"
    );
}
