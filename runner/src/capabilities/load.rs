//! The `load-generator` import (contract 0.1.7): a whole HTTP load test, handed over by
//! the plugin and run by the host.
//!
//! `start` reads the test (`sluice-loadgen`'s `TestSpec` as JSON), checks every request
//! template's origin against the step's `net` grant through the outgoing-HTTP
//! capability's own check ([`HttpClient::check`]: the name resolved on the host, the
//! resolved address checked; a refusal names the grant to add and goes to the step
//! log), prepares each template's request bytes once, and runs the engine
//! ([`sluice_loadgen::Run`], unchanged: the model, dropped iterations, the
//! coordinated-omission correction and the thresholds are all its own) on an OS thread
//! of its own with a current-thread tokio runtime: the driver, its connections and its
//! timers share that one thread, so nothing on the hot path wakes another thread.
//!
//! The exchange is a minimal HTTP/1.1 client over keep-alive connections: the prepared
//! bytes are written, the response head is parsed in place with `httparse`, and the
//! body is read to its end by `Content-Length`, chunked framing or the connection's
//! close; a response with `Connection: close` (or HTTP/1.0 without keep-alive) ends its
//! connection. No redirect is followed. Connections: at most one per slot of the model
//! (the closed model's most VUs, the open model's `max-in-flight`), so an open-model
//! iteration that finds every connection busy is dropped by the engine, never delayed.
//! Timeouts: connect, first byte and between bytes, from the plugin's `timeout-ms`
//! (or 10 s and 60 s), never past the step's deadline. `https://` goes through the step's
//! rustls configuration (the system's roots), as outgoing `wasi:http` does.
//!
//! The plugin polls (`progress`, fed by the driver every 100 ms), may `stop`, and
//! `finish` returns the engine's report as JSON (`Report::to_wire`). A run whose
//! resource is dropped (the attempt ended) stops within 100 ms.
//! Why the loop moved across the boundary: docs/design/0036-load-generator-on-the-host.md.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use sluice_loadgen::{ModelKind, Next, Outcome, Progress, Report, RequestId, Run, TestSpec};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use wasmtime::component::{Resource, ResourceTable};

use crate::capabilities::http::{HttpClient, MAX_CONNECTIONS};
use crate::capabilities::logs::{Source, StepLog};
use crate::host::bindings::sluice::plugin::load_generator as wit;

/// Connect timeout when the plugin sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// First-byte and between-bytes timeout when the plugin sets none.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the driver publishes its progress (and notices `stop`).
const PUBLISH_EVERY: Duration = Duration::from_millis(100);
/// Largest response head read.
const MAX_HEAD: usize = 64 << 10;
/// Most header lines in a response head.
const MAX_HEADERS: usize = 64;

/// A test the host is running: the `load-run` resource.
pub struct LoadRun {
    shared: Arc<Shared>,
    snapshots: tokio::sync::watch::Receiver<Snapshot>,
    /// The test's elapsed time the next `progress` waits for.
    due: Duration,
    result: Option<tokio::sync::oneshot::Receiver<Result<String, String>>>,
}

/// What the driver publishes every [`PUBLISH_EVERY`] of the test's time.
#[derive(Clone, Default)]
struct Snapshot {
    progress: Option<Progress>,
    done: bool,
}

impl Drop for LoadRun {
    /// A run nobody will finish stops (its thread ends within [`PUBLISH_EVERY`]).
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// What the driver thread and the plugin's calls share besides the snapshots.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    total: Option<Duration>,
}

/// The load generator of one attempt.
pub struct LoadAccess {
    /// The step's outgoing-HTTP client, whose grant check and TLS setup are used; `None`
    /// denies every test (`describe`).
    client: Option<Arc<HttpClient>>,
    log: StepLog,
    deadline: Instant,
    runs: ResourceTable,
    /// The last test started: one at a time.
    last: Option<tokio::sync::watch::Receiver<Snapshot>>,
}

impl LoadAccess {
    /// The load generator of a step whose outgoing HTTP is `client`, until `deadline`.
    pub fn new(client: Option<Arc<HttpClient>>, log: StepLog, deadline: Instant) -> LoadAccess {
        LoadAccess {
            client,
            log,
            deadline,
            runs: ResourceTable::new(),
            last: None,
        }
    }

    /// Tests started from now on end by `deadline`.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    async fn start_test(
        &mut self,
        spec: &str,
        variables: Vec<(String, String)>,
        timeout_ms: u32,
    ) -> Result<LoadRun, wit::StartError> {
        let Some(client) = self.client.clone() else {
            return Err(wit::StartError::Denied(
                "no load test while describing".into(),
            ));
        };
        if self.last.as_ref().is_some_and(|last| !last.borrow().done) {
            return Err(wit::StartError::Failed(
                "a load test is already running in this step; finish it first".into(),
            ));
        }
        let spec: TestSpec =
            serde_json::from_str(spec).map_err(|e| wit::StartError::Invalid(e.to_string()))?;
        let run = spec
            .build(&variables.into_iter().collect())
            .map_err(|e| wit::StartError::Invalid(e.to_string()))?;
        let mut origins: Vec<Origin> = Vec::new();
        let mut targets = Vec::new();
        for (i, request) in run.requests().iter().enumerate() {
            let prepared = Prepared::of(request, i).map_err(wit::StartError::Invalid)?;
            let origin = match origins.iter().position(|o| o.key == prepared.key) {
                Some(at) => at,
                None => {
                    let addrs = match client.check(&prepared.uri).await {
                        Ok(addrs) => addrs,
                        Err(why) => {
                            self.log.line(
                                Source::Runner,
                                &format!("denied HTTP {} {}: {why}", request.method, request.url),
                            );
                            return Err(wit::StartError::Denied(why));
                        }
                    };
                    let tls = match prepared.tls {
                        true => Some(client.tls_config().map_err(|e| {
                            wit::StartError::Failed(format!("{}: TLS setup: {e}", prepared.key))
                        })?),
                        false => None,
                    };
                    origins.push(Origin {
                        key: prepared.key.clone(),
                        host: prepared.host.clone(),
                        addrs,
                        tls,
                    });
                    origins.len() - 1
                }
            };
            targets.push(Target {
                origin,
                bytes: prepared.bytes,
                head: request.method.eq_ignore_ascii_case("HEAD"),
            });
        }
        let slots = slots(&run);
        if slots > MAX_CONNECTIONS {
            let key = match run.plan().model {
                ModelKind::Open => "max-in-flight",
                ModelKind::Closed => "vus",
            };
            return Err(wit::StartError::Invalid(format!(
                "{key}: {slots} connections at once; the load generator opens at most \
                 {MAX_CONNECTIONS}"
            )));
        }
        let timeout = (timeout_ms > 0).then(|| Duration::from_millis(u64::from(timeout_ms)));
        let settings = Settings {
            connect: timeout.unwrap_or(CONNECT_TIMEOUT),
            read: timeout.unwrap_or(READ_TIMEOUT),
            deadline: self.deadline,
            connections: slots.max(1),
        };
        let run = spawn(run, origins, targets, settings).map_err(wit::StartError::Failed)?;
        self.last = Some(run.snapshots.clone());
        Ok(run)
    }
}

/// Connections a run may need at once: one per slot of its model.
fn slots(run: &Run) -> usize {
    let plan = run.plan();
    match plan.model {
        ModelKind::Open => plan.max_in_flight as usize,
        ModelKind::Closed => plan
            .segments
            .iter()
            .map(|r| r.from.max(r.to).ceil() as usize)
            .max()
            .unwrap_or(0),
    }
}

impl wit::Host for LoadAccess {
    async fn start(
        &mut self,
        spec: String,
        variables: Vec<(String, String)>,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<Resource<LoadRun>, wit::StartError>> {
        match self.start_test(&spec, variables, timeout_ms).await {
            Ok(run) => Ok(Ok(self.runs.push(run)?)),
            Err(e) => Ok(Err(e)),
        }
    }
}

impl wit::HostLoadRun for LoadAccess {
    async fn progress(
        &mut self,
        run: Resource<LoadRun>,
        wait_ms: u32,
    ) -> wasmtime::Result<wit::Progress> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let run = self.runs.get_mut(&run)?;
        let wait = Duration::from_millis(u64::from(wait_ms));
        // Due at the test's own time, so that a plugin asking every second sees the
        // snapshots of 1.0 s, 2.0 s... (the driver publishes on that grid).
        run.due += wait;
        let due = run.due;
        let mut snapshots = run.snapshots.clone();
        let ready = |s: &Snapshot| s.done || s.progress.as_ref().is_some_and(|p| p.elapsed >= due);
        let bound = (wait + Duration::from_secs(1)).min(left);
        let _ = tokio::time::timeout(bound, async {
            let _ = snapshots.wait_for(ready).await;
        })
        .await;
        let Snapshot {
            progress: p,
            done: finished,
        } = snapshots.borrow().clone();
        let total_ms = run.shared.total.map(|t| t.as_millis() as u64);
        Ok(match p {
            Some(p) => wit::Progress {
                elapsed_ms: p.elapsed.as_millis() as u64,
                warming_up: p.warming_up,
                requests: p.requests,
                rate: p.rate,
                target: p.target,
                errors: p.errors,
                dropped: p.dropped,
                in_flight: u32::try_from(p.in_flight).unwrap_or(u32::MAX),
                p99_ms: p.p99_ms,
                total_ms,
                done: finished,
            },
            None => wit::Progress {
                elapsed_ms: 0,
                warming_up: false,
                requests: 0,
                rate: 0.0,
                target: 0.0,
                errors: 0,
                dropped: 0,
                in_flight: 0,
                p99_ms: None,
                total_ms,
                done: finished,
            },
        })
    }

    async fn stop(&mut self, run: Resource<LoadRun>) -> wasmtime::Result<()> {
        self.runs
            .get(&run)?
            .shared
            .stop
            .store(true, Ordering::Relaxed);
        Ok(())
    }

    async fn finish(&mut self, run: Resource<LoadRun>) -> wasmtime::Result<Result<String, String>> {
        let Some(result) = self.runs.get_mut(&run)?.result.take() else {
            return Ok(Err("this load test was already finished".into()));
        };
        Ok(result
            .await
            .unwrap_or_else(|_| Err("the load generator ended without a report".into())))
    }

    async fn drop(&mut self, run: Resource<LoadRun>) -> wasmtime::Result<()> {
        self.runs.delete(run)?;
        Ok(())
    }
}

/// A request template ready to go: its origin and its bytes on the wire.
struct Prepared {
    uri: http::Uri,
    /// `scheme://authority`.
    key: String,
    /// The host name (for TLS).
    host: String,
    tls: bool,
    bytes: Vec<u8>,
}

impl Prepared {
    /// The request line, `Host`, the template's headers, `Content-Length` and the body;
    /// an error names `requests[index]` and what is wrong.
    fn of(request: &sluice_loadgen::Request, index: usize) -> Result<Prepared, String> {
        let at = format!("requests[{index}]");
        let uri: http::Uri = request
            .url
            .parse()
            .map_err(|e| format!("{at}.url: {:?} is not a URL: {e}", request.url))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(format!(
                    "{at}.url: {:?}: the load generator sends http:// and https:// only",
                    request.url
                ));
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{at}.url: {:?} has no host", request.url))?
            .clone();
        let method = http::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| format!("{at}.method: {:?} is not an HTTP method", request.method))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let path = if path.is_empty() { "/" } else { path };
        let mut bytes = Vec::with_capacity(128);
        bytes.extend_from_slice(format!("{method} {path} HTTP/1.1\r\n").as_bytes());
        let mut host_given = false;
        let mut length_given = false;
        for (name, value) in &request.headers {
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{at}.headers: {name:?} is not a header name"))?;
            http::HeaderValue::from_str(value)
                .map_err(|_| format!("{at}.headers.{name}: the value is not a header value"))?;
            host_given |= name == http::header::HOST;
            length_given |= name == http::header::CONTENT_LENGTH;
            if name == http::header::TRANSFER_ENCODING {
                return Err(format!(
                    "{at}.headers: `transfer-encoding` is set by the load generator (the \
                     body is sent with its length)"
                ));
            }
            bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if !host_given {
            bytes.extend_from_slice(format!("host: {authority}\r\n").as_bytes());
        }
        let body = request.body.as_deref().unwrap_or_default();
        let needs_length = !body.is_empty()
            || matches!(
                method,
                http::Method::POST | http::Method::PUT | http::Method::PATCH
            );
        if needs_length && !length_given {
            bytes.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(body.as_bytes());
        Ok(Prepared {
            key: format!("{}://{authority}", uri.scheme_str().unwrap_or("http")),
            host: uri.host().unwrap_or_default().to_string(),
            tls,
            uri,
            bytes,
        })
    }
}

/// An origin of the test, with the addresses its grant check allowed.
struct Origin {
    key: String,
    host: String,
    addrs: Vec<SocketAddr>,
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
}

/// A template as the driver sends it.
struct Target {
    origin: usize,
    bytes: Vec<u8>,
    /// A `HEAD` request: its response has no body whatever its headers say.
    head: bool,
}

/// Bounds of one test.
#[derive(Clone, Copy)]
struct Settings {
    connect: Duration,
    read: Duration,
    deadline: Instant,
    /// Most connections open at once (all origins together).
    connections: usize,
}

/// Starts the driver thread.
fn spawn(
    run: Run,
    origins: Vec<Origin>,
    targets: Vec<Target>,
    settings: Settings,
) -> Result<LoadRun, String> {
    let shared = Arc::new(Shared {
        total: run.plan().end(),
        ..Shared::default()
    });
    let (snapshot_tx, snapshot_rx) = tokio::sync::watch::channel(Snapshot::default());
    let (result_tx, result_rx) = tokio::sync::oneshot::channel();
    let driver_shared = shared.clone();
    std::thread::Builder::new()
        .name("sluice-load".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let result = match runtime {
                Ok(rt) => {
                    let env = Env {
                        origins,
                        targets,
                        settings,
                    };
                    let report = rt.block_on(drive(run, &env, &driver_shared, &snapshot_tx));
                    Ok(report.to_wire())
                }
                Err(e) => Err(format!("cannot start the load generator's runtime: {e}")),
            };
            // Done before the report is handed over: a `progress` after `finish` says so.
            snapshot_tx.send_modify(|s| s.done = true);
            let _ = result_tx.send(result);
        })
        .map_err(|e| format!("cannot start the load generator's thread: {e}"))?;
    Ok(LoadRun {
        shared,
        snapshots: snapshot_rx,
        due: Duration::ZERO,
        result: Some(result_rx),
    })
}

/// What every exchange of a test reads.
struct Env {
    origins: Vec<Origin>,
    targets: Vec<Target>,
    settings: Settings,
}

/// A keep-alive connection and its read buffer.
struct Conn {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
    origin: usize,
}

trait Stream: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Stream for T {}

/// A finished exchange: the connection to keep (if it may be reused), the outcome and
/// when the response ended.
struct Done {
    id: RequestId,
    conn: Option<Conn>,
    outcome: Outcome,
    at: Instant,
}

/// The poll loop: report what finished, ask the engine, send or wait; returns the report.
async fn drive(
    mut run: Run,
    env: &Env,
    shared: &Shared,
    snapshots: &tokio::sync::watch::Sender<Snapshot>,
) -> Report {
    let start = Instant::now();
    let since = |t: Instant| t.saturating_duration_since(start);
    let mut idle: Vec<Vec<Conn>> = env.origins.iter().map(|_| Vec::new()).collect();
    let mut open = 0usize;
    let mut in_flight = FuturesUnordered::new();
    let mut next_publish = start;
    let sleep = tokio::time::sleep_until(start.into());
    tokio::pin!(sleep);
    let mut sleep_at = start;
    let deadline = env.settings.deadline;
    let settle = |done: Done, run: &mut Run, idle: &mut Vec<Vec<Conn>>, open: &mut usize| {
        // The ids are the run's own, so this cannot fail.
        let _ = run.finished(done.id, since(done.at), &done.outcome);
        match done.conn {
            Some(conn) => idle[conn.origin].push(conn),
            None => *open -= 1,
        }
    };
    let end = loop {
        // 1. Every exchange that already finished.
        while let Some(Some(done)) = in_flight.next().now_or_never() {
            settle(done, &mut run, &mut idle, &mut open);
        }
        let now_instant = Instant::now();
        if now_instant >= next_publish {
            let p = run.progress(since(now_instant));
            snapshots.send_modify(|s| s.progress = Some(p));
            // On the grid of the test's time (0.1 s, 0.2 s...), skipping missed ticks.
            while next_publish <= now_instant {
                next_publish += PUBLISH_EVERY;
            }
            if shared.stop.load(Ordering::Relaxed) {
                break now_instant;
            }
        }
        if now_instant >= deadline {
            break now_instant;
        }
        // 2. What to do.
        match run.next(since(now_instant)) {
            Next::Send { id, template, .. } => {
                let target = &env.targets[template];
                let conn = idle[target.origin].pop();
                if conn.is_none() {
                    if open >= env.settings.connections {
                        // Every connection is open: close an idle one to another origin.
                        if let Some(list) = idle.iter_mut().find(|l| !l.is_empty()) {
                            list.pop();
                            open -= 1;
                        }
                    }
                    open += 1;
                }
                in_flight.push(exchange(env, id, template, conn, now_instant));
            }
            Next::Wait { until } => {
                let wake = until
                    .map(|u| start + u)
                    .map_or(next_publish, |u| u.min(next_publish))
                    .min(deadline);
                if wake != sleep_at {
                    sleep.as_mut().reset(wake.into());
                    sleep_at = wake;
                }
                if in_flight.is_empty() {
                    (&mut sleep).await;
                } else {
                    tokio::select! {
                        biased;
                        Some(done) = in_flight.next() => settle(done, &mut run, &mut idle, &mut open),
                        () = &mut sleep => {}
                    }
                }
            }
            Next::Done => break Instant::now(),
        }
    };
    drop(in_flight);
    let p = run.progress(since(end));
    snapshots.send_modify(|s| s.progress = Some(p));
    run.finish(since(end))
}

/// One request on `conn` (or a new connection), retried once on a new connection when
/// a reused one turns out closed by the server before any byte of the response.
async fn exchange(
    env: &Env,
    id: RequestId,
    template: usize,
    conn: Option<Conn>,
    sent: Instant,
) -> Done {
    let target = &env.targets[template];
    let reads = Reads {
        timeout: env.settings.read,
        deadline: env.settings.deadline,
    };
    let reused = conn.is_some();
    let mut conn = match conn {
        Some(conn) => conn,
        None => match connect(env, target.origin).await {
            Ok(conn) => conn,
            Err(outcome) => return failed(id, outcome),
        },
    };
    // A new connection's first byte is due a timeout after it connected.
    let sent = if reused { sent } else { Instant::now() };
    let mut result = roundtrip(&mut conn, target, reads, sent).await;
    if reused && matches!(result, Err(Failure::Stale)) {
        conn = match connect(env, target.origin).await {
            Ok(conn) => conn,
            Err(outcome) => return failed(id, outcome),
        };
        result = roundtrip(&mut conn, target, reads, Instant::now()).await;
    }
    let at = Instant::now();
    match result {
        Ok((status, keep)) => Done {
            id,
            conn: keep.then_some(conn),
            outcome: Outcome::Status(status),
            at,
        },
        Err(failure) => Done {
            id,
            conn: None,
            outcome: failure.outcome(),
            at,
        },
    }
}

fn failed(id: RequestId, outcome: Outcome) -> Done {
    Done {
        id,
        conn: None,
        outcome,
        at: Instant::now(),
    }
}

/// A new connection to an origin's checked addresses (and nothing else).
async fn connect(env: &Env, origin: usize) -> Result<Conn, Outcome> {
    let o = &env.origins[origin];
    let bound = env.settings.connect.min(
        env.settings
            .deadline
            .saturating_duration_since(Instant::now()),
    );
    let mut last = Outcome::Other(format!("{} has no checked address", o.key));
    let mut tcp = None;
    for addr in &o.addrs {
        match tokio::time::timeout(bound, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                tcp = Some(s);
                break;
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = Outcome::ConnectRefused;
            }
            Ok(Err(e)) => last = Outcome::Other(format!("cannot connect to {addr}: {e}")),
            Err(_) => last = Outcome::Timeout,
        }
    }
    let Some(tcp) = tcp else {
        return Err(last);
    };
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Stream> = match &o.tls {
        None => Box::new(tcp),
        Some(config) => {
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(
                o.host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            )
            .map_err(|e| Outcome::Other(format!("{}: {e}", o.key)))?;
            let tls = tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp);
            match tokio::time::timeout(bound, tls).await {
                Ok(Ok(s)) => Box::new(s),
                Ok(Err(e)) => return Err(Outcome::Other(format!("TLS with {}: {e}", o.key))),
                Err(_) => return Err(Outcome::Timeout),
            }
        }
    };
    Ok(Conn {
        stream,
        buf: Vec::with_capacity(8 << 10),
        origin,
    })
}

/// Why an exchange failed.
#[derive(Debug)]
enum Failure {
    /// The connection was closed before any byte of the response (a reused connection
    /// the server had closed: worth one retry on a new connection).
    Stale,
    /// Closed in the middle of the response.
    Closed,
    /// No byte within the first-byte or between-bytes timeout.
    Timeout,
    /// An I/O error.
    Io(std::io::Error),
    /// Not an HTTP/1.x response.
    Protocol(String),
}

impl Failure {
    fn outcome(self) -> Outcome {
        match self {
            Failure::Timeout => Outcome::Timeout,
            Failure::Stale | Failure::Closed => {
                Outcome::Other("the server closed the connection before the response ended".into())
            }
            Failure::Io(e) => Outcome::Other(format!("connection error: {e}")),
            Failure::Protocol(why) => Outcome::Other(format!("invalid response: {why}")),
        }
    }
}

/// The first-byte and between-bytes bound of an exchange.
#[derive(Clone, Copy)]
struct Reads {
    timeout: Duration,
    /// The step's deadline, which no read outlasts.
    deadline: Instant,
}

impl Reads {
    /// When a read that starts waiting at `from` times out.
    fn until(&self, from: Instant) -> Instant {
        (from + self.timeout).min(self.deadline)
    }
}

/// Reads more of the response into the buffer, failing at `until`; 0 at the end of
/// the stream.
async fn read_more(conn: &mut Conn, until: Instant) -> Result<usize, Failure> {
    conn.buf.reserve(4 << 10);
    match tokio::time::timeout_at(until.into(), conn.stream.read_buf(&mut conn.buf)).await {
        Err(_) => Err(Failure::Timeout),
        Ok(Err(e)) if is_reset(&e) => Ok(0),
        Ok(Err(e)) => Err(Failure::Io(e)),
        Ok(Ok(n)) => Ok(n),
    }
}

fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
    )
}

/// How a response's body ends.
enum Framing {
    /// No body (`HEAD`, 204, 304).
    None,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked(ChunkedBody),
    /// Neither: the body ends with the connection.
    Close,
}

/// Writes the request and reads its response to the end: the status and whether the
/// connection may carry another request. The first byte is due `reads.timeout` after
/// `sent` (when the driver sent it: no clock read here on the common path), each
/// further read that long after the one before.
async fn roundtrip(
    conn: &mut Conn,
    target: &Target,
    reads: Reads,
    sent: Instant,
) -> Result<(u16, bool), Failure> {
    conn.buf.clear();
    if let Err(e) = conn.stream.write_all(&target.bytes).await {
        return Err(if is_reset(&e) {
            Failure::Stale
        } else {
            Failure::Io(e)
        });
    }
    conn.stream.flush().await.map_err(Failure::Io)?;
    let mut until = reads.until(sent);
    // The head (after any 1xx interim responses).
    let (status, mut framing, keep) = loop {
        match parse_head(&conn.buf, target.head)? {
            Head::Interim(len) => {
                conn.buf.drain(..len);
                continue;
            }
            Head::Final(len, status, framing, keep) => {
                conn.buf.drain(..len);
                break (status, framing, keep);
            }
            Head::Partial => {}
        }
        let had = conn.buf.len();
        if read_more(conn, until).await? == 0 {
            return Err(if had == 0 {
                Failure::Stale
            } else {
                Failure::Closed
            });
        }
        until = reads.until(Instant::now());
    };
    // The body, consumed as it arrives.
    loop {
        let (used, ended) = match &mut framing {
            Framing::None => (0, true),
            Framing::Length(left) => {
                let take = (*left).min(conn.buf.len() as u64);
                *left -= take;
                (take as usize, *left == 0)
            }
            Framing::Chunked(body) => body.feed(&conn.buf)?,
            Framing::Close => (conn.buf.len(), false),
        };
        if ended {
            // Bytes past the response: the connection is out of step, not reused.
            let clean = used == conn.buf.len();
            conn.buf.clear();
            return Ok((status, keep && clean));
        }
        conn.buf.drain(..used);
        if read_more(conn, until).await? == 0 {
            return match framing {
                Framing::Close => Ok((status, false)),
                _ => Err(Failure::Closed),
            };
        }
        until = reads.until(Instant::now());
    }
}

/// What the buffer holds of a response head.
enum Head {
    /// Not all of it yet.
    Partial,
    /// A 1xx interim response of this length, to skip.
    Interim(usize),
    /// The head's length, the status, the body's framing and whether the connection
    /// stays open.
    Final(usize, u16, Framing, bool),
}

/// Parses a response head in place (kept out of the exchange's future, whose state
/// would otherwise hold the header array across every await).
fn parse_head(buf: &[u8], head_request: bool) -> Result<Head, Failure> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let status = response.code.unwrap_or(0);
            if (100..200).contains(&status) && status != 101 {
                return Ok(Head::Interim(len));
            }
            let (framing, keep) = framing(&response, status, head_request)?;
            Ok(Head::Final(len, status, framing, keep))
        }
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => Err(Failure::Protocol(format!(
            "a response head over {} KiB",
            MAX_HEAD >> 10
        ))),
        Ok(httparse::Status::Partial) => Ok(Head::Partial),
        Err(e) => Err(Failure::Protocol(e.to_string())),
    }
}

/// The body's framing and whether the connection stays open, from the head.
fn framing(
    response: &httparse::Response<'_, '_>,
    status: u16,
    head: bool,
) -> Result<(Framing, bool), Failure> {
    let mut keep = response.version == Some(1);
    let mut length = None;
    let mut chunked = false;
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(h.value).unwrap_or_default().trim();
            let n: u64 = text
                .parse()
                .map_err(|_| Failure::Protocol(format!("content-length {text:?}")))?;
            if length.is_some_and(|l| l != n) {
                return Err(Failure::Protocol("two different content-lengths".into()));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = std::str::from_utf8(h.value)
                .unwrap_or_default()
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in std::str::from_utf8(h.value).unwrap_or_default().split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("close") {
                    keep = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && response.version == Some(0) {
                    keep = true;
                }
            }
        }
    }
    let framing = if head || status == 204 || status == 304 {
        Framing::None
    } else if chunked {
        Framing::Chunked(ChunkedBody::default())
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        keep = false;
        Framing::Close
    };
    Ok((framing, keep))
}

/// A chunked body read as it arrives.
#[derive(Default)]
struct ChunkedBody {
    /// Bytes left of the current chunk's data and its closing CRLF.
    data_left: u64,
    /// Past the last chunk: reading trailer lines up to an empty one.
    trailers: bool,
}

impl ChunkedBody {
    /// Consumes what it can of `buf`: how many bytes, and whether the body ended.
    fn feed(&mut self, buf: &[u8]) -> Result<(usize, bool), Failure> {
        let mut pos = 0;
        loop {
            if self.data_left > 0 {
                let take = self.data_left.min((buf.len() - pos) as u64);
                pos += take as usize;
                self.data_left -= take;
                if self.data_left > 0 {
                    return Ok((pos, false));
                }
                continue;
            }
            if self.trailers {
                match buf[pos..].windows(2).position(|w| w == b"\r\n") {
                    None => return Ok((pos, false)),
                    Some(0) => return Ok((pos + 2, true)),
                    Some(line) => pos += line + 2,
                }
                continue;
            }
            match httparse::parse_chunk_size(&buf[pos..]) {
                Ok(httparse::Status::Complete((used, 0))) => {
                    pos += used;
                    self.trailers = true;
                }
                Ok(httparse::Status::Complete((used, size))) => {
                    pos += used;
                    self.data_left = size.saturating_add(2);
                }
                Ok(httparse::Status::Partial) => return Ok((pos, false)),
                Err(_) => return Err(Failure::Protocol("an invalid chunk size".into())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// A server on loopback answering each request on a connection with `answer(n)`
    /// (n counts requests over all connections): the bytes, and whether to close the
    /// connection after them; `None` closes it without an answer.
    fn server(
        answer: impl Fn(usize) -> Option<(Vec<u8>, bool)> + Send + Sync + 'static,
    ) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(answer);
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                accepted.fetch_add(1, Ordering::SeqCst);
                let answer = answer.clone();
                let count = count.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut stream = stream;
                    loop {
                        let mut line = String::new();
                        // The request head, up to its empty line (the tests send no body).
                        loop {
                            line.clear();
                            match reader.read_line(&mut line) {
                                Ok(0) | Err(_) => return,
                                Ok(_) if line == "\r\n" => break,
                                Ok(_) => {}
                            }
                        }
                        let n = count.fetch_add(1, Ordering::SeqCst);
                        match answer(n) {
                            Some((bytes, close)) => {
                                if stream.write_all(&bytes).is_err() || close {
                                    return;
                                }
                            }
                            None => return,
                        }
                    }
                });
            }
        });
        (addr, connections)
    }

    /// Starts `spec` (its `url` is `{{url}}`) against `addr`, as the host runs a test.
    fn start(addr: SocketAddr, spec: &str, read: Duration, deadline: Instant) -> LoadRun {
        let spec: TestSpec =
            serde_json::from_str(&spec.replace("{{url}}", &format!("http://{addr}/"))).unwrap();
        let run = spec.build(&Default::default()).unwrap();
        let prepared = Prepared::of(&run.requests()[0], 0).unwrap();
        let origins = vec![Origin {
            key: prepared.key.clone(),
            host: prepared.host.clone(),
            addrs: vec![addr],
            tls: None,
        }];
        let targets = vec![Target {
            origin: 0,
            bytes: prepared.bytes,
            head: false,
        }];
        let settings = Settings {
            connect: Duration::from_secs(2),
            read,
            deadline,
            connections: slots(&run),
        };
        spawn(run, origins, targets, settings).unwrap()
    }

    /// Waits for a started test's end and returns its report.
    fn report_of(load: &mut LoadRun) -> Report {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let wire = rt.block_on(load.result.take().unwrap()).unwrap().unwrap();
        Report::from_wire(&wire).unwrap()
    }

    /// Runs `spec` (its `url` is `{{url}}`) against `addr` and returns the report.
    fn run(addr: SocketAddr, spec: &str, read: Duration) -> Report {
        let deadline = Instant::now() + Duration::from_secs(30);
        report_of(&mut start(addr, spec, read, deadline))
    }

    /// A closed-model test far longer than any test here waits for.
    const LONG_TEST: &str =
        r#"{"model": "closed", "vus": 2, "duration": "60s", "requests": [{"url": "{{url}}"}]}"#;

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nhello\n";

    #[test]
    fn a_chunked_response_is_read_to_its_end_and_its_connection_reused() {
        let (addr, connections) = server(|_| {
            Some((
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n1;x=y\r\n\n\r\n0\r\nx-trailer: 1\r\n\r\n"
                    .to_vec(),
                false,
            ))
        });
        let report = run(
            addr,
            r#"{"model": "closed", "vus": 2, "iterations": 200, "requests": [{"url": "{{url}}"}]}"#,
            Duration::from_secs(5),
        );
        let s = &report.summary;
        assert_eq!((s.requests, s.failed), (200, 0), "{}", report.text());
        assert_eq!(s.statuses.get(&200), Some(&200));
        assert_eq!(
            connections.load(Ordering::SeqCst),
            2,
            "one connection per VU"
        );
    }

    #[test]
    fn connection_close_ends_the_connection_and_the_next_request_opens_another() {
        // The server keeps the connection open: the client must close it.
        let (addr, connections) = server(|_| {
            Some((
                b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok".to_vec(),
                false,
            ))
        });
        let report = run(
            addr,
            r#"{"model": "closed", "vus": 1, "iterations": 50, "requests": [{"url": "{{url}}"}]}"#,
            Duration::from_secs(5),
        );
        assert_eq!(
            (report.summary.requests, report.summary.failed),
            (50, 0),
            "{}",
            report.text()
        );
        assert_eq!(connections.load(Ordering::SeqCst), 50);
    }

    #[test]
    fn a_body_that_ends_with_the_connection_is_read_to_the_close() {
        // No length, no chunking: the server sends the body and closes.
        let (addr, connections) =
            server(|_| Some((b"HTTP/1.0 200 OK\r\n\r\nuntil the end".to_vec(), true)));
        let report = run(
            addr,
            r#"{"model": "closed", "vus": 1, "iterations": 20, "requests": [{"url": "{{url}}"}]}"#,
            Duration::from_secs(5),
        );
        assert_eq!(report.summary.failed, 0, "{}", report.text());
        assert_eq!(report.summary.requests, 20);
        assert_eq!(connections.load(Ordering::SeqCst), 20);
    }

    #[test]
    fn a_server_that_closes_mid_test_counts_failures_and_the_test_goes_on() {
        // Every 10th request: the server closes the connection without answering
        // (after one retry on a new connection, which it answers, or not).
        let (addr, _) = server(|n| (n % 10 != 9).then(|| (OK.to_vec(), false)));
        let report = run(
            addr,
            r#"{"model": "closed", "vus": 4, "iterations": 400, "requests": [{"url": "{{url}}"}]}"#,
            Duration::from_secs(5),
        );
        let s = &report.summary;
        assert_eq!(s.requests, 400, "{}", report.text());
        assert!(
            s.statuses.get(&200).copied().unwrap_or(0) >= 360,
            "{}",
            report.text()
        );
    }

    #[test]
    fn a_server_that_stops_answering_times_out_each_request() {
        let (addr, _) = server(|n| {
            if n >= 5 {
                std::thread::sleep(Duration::from_secs(3));
            }
            Some((OK.to_vec(), false))
        });
        let started = Instant::now();
        let report = run(
            addr,
            r#"{"model": "closed", "vus": 1, "iterations": 8, "requests": [{"url": "{{url}}"}]}"#,
            Duration::from_millis(200),
        );
        let s = &report.summary;
        assert_eq!(s.statuses.get(&200), Some(&5), "{}", report.text());
        assert_eq!(
            s.errors_by_class.get("timeout"),
            Some(&3),
            "{}",
            report.text()
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_refused_connection_is_counted_as_connect_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let report = run(
            addr,
            r#"{"model": "closed", "vus": 1, "iterations": 3, "requests": [{"url": "{{url}}"}]}"#,
            Duration::from_secs(1),
        );
        assert_eq!(
            report.summary.errors_by_class.get("connect-refused"),
            Some(&3),
            "{}",
            report.text()
        );
    }

    #[test]
    fn stop_ends_a_long_test_at_once_as_interrupted() {
        let (addr, _) = server(|_| Some((OK.to_vec(), false)));
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut load = start(addr, LONG_TEST, Duration::from_secs(2), deadline);
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        load.shared.stop.store(true, Ordering::Relaxed);
        let report = report_of(&mut load);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            report.summary.stopped_by,
            sluice_loadgen::StopReason::Interrupted
        );
        assert!(report.summary.requests > 0, "{}", report.text());
        assert!(load.snapshots.borrow().done);
    }

    #[test]
    fn the_step_deadline_ends_a_longer_test_as_interrupted() {
        let (addr, _) = server(|_| Some((OK.to_vec(), false)));
        let started = Instant::now();
        let deadline = started + Duration::from_millis(400);
        let report = report_of(&mut start(
            addr,
            LONG_TEST,
            Duration::from_secs(2),
            deadline,
        ));
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_millis(900),
            "{took:?}"
        );
        assert_eq!(
            report.summary.stopped_by,
            sluice_loadgen::StopReason::Interrupted
        );
    }

    #[test]
    fn a_template_becomes_its_request_bytes_with_host_and_length() {
        let spec: TestSpec = serde_json::from_str(
            r#"{"rate": 1, "duration": "1s", "requests": [{"method": "POST", "url": "http://h:8080/a?b=1",
                "headers": {"x-k": "v"}, "body": "{}"}]}"#,
        )
        .unwrap();
        let run = spec.build(&Default::default()).unwrap();
        let p = Prepared::of(&run.requests()[0], 0).unwrap();
        assert_eq!(
            String::from_utf8(p.bytes).unwrap(),
            "POST /a?b=1 HTTP/1.1\r\nx-k: v\r\nhost: h:8080\r\ncontent-length: 2\r\n\r\n{}"
        );
        assert_eq!(p.key, "http://h:8080");
        // No header can smuggle a second request in.
        let bad: TestSpec = serde_json::from_str(
            r#"{"rate": 1, "duration": "1s", "requests": [{"url": "http://h/", "headers": {"x": "a\r\n\r\nGET /b"}}]}"#,
        )
        .unwrap();
        let run = bad.build(&Default::default()).unwrap();
        let e = Prepared::of(&run.requests()[0], 0).err().unwrap();
        assert!(e.starts_with("requests[0].headers.x"), "{e}");
    }
}
