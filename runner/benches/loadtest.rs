//! `builtin:load-test` against wrk, both against the same local nginx: prints the
//! request rates, their ratio and the CPU each client used. Run with
//! `cargo bench -p sluice --bench loadtest`.
//!
//! Two comparisons, each run one after the other (wrk first, then the plugin through the
//! real `sluice` binary, a closed-model pipeline), with the same number of connections
//! and the same duration:
//!
//! 1. throughput: `SLUICE_BENCH_CONNECTIONS` connections (default 16), the target being
//!    at least 0.9x wrk's requests per second;
//! 2. the runner's own overhead on a trivial GET: one connection, one request at a time,
//!    so the rate is the inverse of the round trip, and the difference of the two mean
//!    round trips is what Sluice (the host's load generator driving the engine, see
//!    docs/design/0036-load-generator-on-the-host.md) adds to each request.
//!
//! `SLUICE_BENCH_SECONDS` (default 5) sets each measurement's duration and
//! `SLUICE_BENCH_ROUNDS` (default 2) how many times each pair runs; the machine is
//! shared, so every round is printed, then the best of each client.
//!
//! nginx runs with `worker_processes 1`: one server process, so both clients meet the
//! same fixed server capacity, and on a 2-core machine the client under test keeps a
//! core of its own (with `auto`, two nginx workers would compete with the client for
//! both cores and the figures would measure the scheduler). It is started from a
//! configuration written into a temporary folder (loopback port, `access_log off`, a
//! 6-byte static file, `keepalive_requests` high enough that no connection is ever
//! closed during a run) and stopped by its PID when the bench ends or panics.
//!
//! If nginx or wrk is missing, the bench says how to install them and exits 0.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The file nginx serves, and its body.
const FILE: &str = "hello.txt";
const BODY: &str = "hello\n";

/// A program found on `PATH` (or in the sbin folders, where Debian puts nginx).
fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: expected a whole number")),
        Err(_) => default,
    }
}

/// A free loopback port (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// The nginx serving the bench, stopped by its PID when dropped (also on panic).
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(program: &Path) -> Nginx {
        let dir = tempfile::tempdir().expect("a temporary folder for nginx");
        let root = dir.path().to_path_buf();
        let root = root.as_path();
        // As root, nginx's worker runs as `nobody`, which must read the served file.
        std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("let nginx's worker read the folder");
        std::fs::write(root.join(FILE), BODY).expect("write the served file");
        let port = free_port();
        let r = root.display();
        let conf = format!(
            "daemon off;
worker_processes 1;
pid {r}/nginx.pid;
error_log {r}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {r}/body;
    proxy_temp_path {r}/proxy;
    fastcgi_temp_path {r}/fastcgi;
    uwsgi_temp_path {r}/uwsgi;
    scgi_temp_path {r}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    default_type text/plain;
    server {{
        listen 127.0.0.1:{port};
        root {r};
        location / {{ }}
    }}
}}
"
        );
        let conf_path = root.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(program)
            .arg("-p")
            .arg(root)
            .arg("-e")
            .arg(root.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let nginx = Nginx {
            child,
            port,
            _dir: dir,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < until,
                "nginx did not listen on {addr} within 10 s: {}",
                std::fs::read_to_string(root.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/{FILE}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its worker and exits; SIGKILL only if it hangs.
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: `pid` is our own child, not yet waited for, so it names no other process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
            }
        }
    }
}

/// CPU time (user + system) of the children waited for so far.
fn children_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// One client's figures.
#[derive(Clone, Copy)]
struct Figures {
    requests_per_s: f64,
    mean_ms: f64,
    /// CPU time of the client process per request.
    cpu_us_per_request: f64,
}

/// `wrk -t1 -c<connections> -d<seconds>s`.
fn wrk(program: &Path, url: &str, connections: u64, seconds: u64) -> Figures {
    let cpu = children_cpu();
    let out = Command::new(program)
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .arg(url)
        .output()
        .expect("run wrk");
    let cpu = children_cpu() - cpu;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |prefix: &str| -> &str {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in wrk's output:\n{text}"))
            .trim()
    };
    let requests_per_s: f64 = field("Requests/sec:").parse().expect("a rate");
    // `76586 requests in 3.02s, 17.60MB read`
    let total: f64 = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk's output:\n{text}"));
    // `Latency   1.76ms  3.24ms ...`: the first figure is the mean.
    let mean = field("Latency").split_whitespace().next().unwrap_or("0ms");
    Figures {
        requests_per_s,
        mean_ms: wrk_ms(mean),
        cpu_us_per_request: cpu.as_secs_f64() * 1e6 / total.max(1.0),
    }
}

/// wrk's `812.00us`, `1.76ms`, `2.01s` in milliseconds.
fn wrk_ms(text: &str) -> f64 {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => f64::NAN,
    }
}

/// The same load through `sluice run`: `builtin:load-test`, closed model, `vus`
/// connections for `seconds`.
fn plugin(sluice: &Path, cache: &Path, url: &str, port: u16, vus: u64, seconds: u64) -> Figures {
    let project = tempfile::tempdir().expect("a project folder");
    let toml = format!(
        r#"[pipeline]
name = "bench"

[[stage]]
name = "load"

[[stage.step]]
id = "load"
uses = "builtin:load-test"
timeout = "{timeout}s"
with = {{ model = "closed", vus = {vus}, duration = "{seconds}s", requests = [{{ url = "{url}", expect = ["2xx"] }}], thresholds = {{ http_req_failed = ["rate==0"] }} }}

[stage.step.grants]
net = ["http://127.0.0.1:{port}"]
write = ["load-test"]
"#,
        timeout = seconds + 60,
    );
    let mut f = std::fs::File::create(project.path().join("sluice.toml")).expect("sluice.toml");
    f.write_all(toml.as_bytes()).expect("write sluice.toml");
    let cpu = children_cpu();
    let out = Command::new(sluice)
        .args(["run", "--format", "plain"])
        .current_dir(project.path())
        .env("SLUICE_CACHE_DIR", cache)
        .env_remove("SLUICE_LOG")
        .output()
        .expect("run sluice");
    let cpu = children_cpu() - cpu;
    assert!(
        out.status.success(),
        "the load test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let runs = project.path().join(".sluice/runs");
    let run = std::fs::read_dir(&runs)
        .expect("the runs folder")
        .map(|e| e.expect("a run").path())
        .max()
        .expect("one run");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).expect("run.json"))
            .expect("run.json is JSON");
    let metrics = record["steps"][0]["report"]["metrics"]
        .as_array()
        .expect("the step's metrics")
        .clone();
    let metric = |name: &str| {
        metrics
            .iter()
            .find(|m| m["name"] == name)
            .and_then(|m| m["value"].as_f64())
            .unwrap_or_else(|| panic!("no metric {name}"))
    };
    Figures {
        requests_per_s: metric("achieved_rate"),
        mean_ms: metric("latency.mean"),
        // The whole `sluice run`: startup, instantiation and the report included.
        cpu_us_per_request: cpu.as_secs_f64() * 1e6 / metric("requests").max(1.0),
    }
}

fn line(what: &str, f: Figures) {
    println!(
        "  {what:<30} {:>10.0} requests/s   mean {:>7.3} ms   {:>6.1} µs CPU/request",
        f.requests_per_s, f.mean_ms, f.cpu_us_per_request
    );
}

/// Runs both clients `rounds` times, prints each round and the best of each.
fn compare(
    title: &str,
    rounds: u64,
    mut run_wrk: impl FnMut() -> Figures,
    mut run_plugin: impl FnMut() -> Figures,
) -> (Figures, Figures) {
    println!("{title}");
    let mut best: Option<(Figures, Figures)> = None;
    for round in 1..=rounds {
        let w = run_wrk();
        let p = run_plugin();
        line(&format!("round {round}: wrk"), w);
        line(&format!("round {round}: builtin:load-test"), p);
        println!(
            "  {:<30} {:>10.2}x",
            format!("round {round}: ratio"),
            p.requests_per_s / w.requests_per_s
        );
        best = Some(match best {
            None => (w, p),
            Some((bw, bp)) => (
                if w.requests_per_s > bw.requests_per_s {
                    w
                } else {
                    bw
                },
                if p.requests_per_s > bp.requests_per_s {
                    p
                } else {
                    bp
                },
            ),
        });
    }
    let (w, p) = best.expect("at least one round");
    line("best: wrk", w);
    line("best: builtin:load-test", p);
    println!(
        "  {:<30} {:>10.2}x wrk's requests/s",
        "best ratio",
        p.requests_per_s / w.requests_per_s
    );
    (w, p)
}

fn main() {
    // `cargo test` runs benches in test mode without `--bench`: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let (Some(nginx), Some(wrk_program)) = (find("nginx"), find("wrk")) else {
        println!(
            "loadtest bench skipped: it needs nginx and wrk (Debian: `apt-get install nginx-light wrk`)"
        );
        return;
    };
    let sluice = PathBuf::from(env!("CARGO_BIN_EXE_sluice"));
    let seconds = env_number("SLUICE_BENCH_SECONDS", 5).max(1);
    let connections = env_number("SLUICE_BENCH_CONNECTIONS", 16).max(1);
    let rounds = env_number("SLUICE_BENCH_ROUNDS", 2).max(1);
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sluice-bench-cache");
    std::fs::create_dir_all(&cache).expect("create the bench's cache folder");
    std::fs::set_permissions(&cache, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("make the bench's cache private");

    let server = Nginx::start(&nginx);
    let url = server.url();
    println!(
        "nginx ({}, worker_processes 1) at {url}, {seconds} s per measurement, {rounds} round(s)",
        nginx.display()
    );
    // Warm-up: compile the plugin into the cache, fault in nginx's and the kernel's paths.
    let _ = plugin(&sluice, &cache, &url, server.port, 2, 1);

    let (w, p) = compare(
        &format!("closed model, {connections} connections"),
        rounds,
        || wrk(&wrk_program, &url, connections, seconds),
        || plugin(&sluice, &cache, &url, server.port, connections, seconds),
    );
    let ratio = p.requests_per_s / w.requests_per_s;
    println!(
        "  target: 0.90x; {}",
        if ratio >= 0.9 { "met" } else { "NOT met" }
    );

    let (w1, p1) = compare(
        "runner overhead on a trivial GET: 1 connection, one request at a time",
        rounds,
        || wrk(&wrk_program, &url, 1, seconds),
        || plugin(&sluice, &cache, &url, server.port, 1, seconds),
    );
    let round_trip = |f: Figures| 1e6 / f.requests_per_s;
    println!(
        "  round trip: wrk {:.1} µs, builtin:load-test {:.1} µs: Sluice adds {:.1} µs per request",
        round_trip(w1),
        round_trip(p1),
        round_trip(p1) - round_trip(w1)
    );
    drop(server);
}
