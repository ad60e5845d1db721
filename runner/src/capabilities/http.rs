//! Outgoing HTTP: `wasi:http/outgoing-handler` under the step's `net` grant.
//!
//! Every request a plugin sends goes through [`StepHttp::send_request`]:
//!
//! 1. the scheme, host and port are checked against the step's grants (`host:port`
//!    allows both schemes, an origin grant `http://host:port` only its own);
//! 2. the host name is resolved here, on the host, and only addresses that a matching
//!    grant resolved to when the step started are kept: a DNS answer cannot point the
//!    plugin at an address it was not granted, and a name granted by name is pinned to
//!    the addresses it had at step start (no rebinding between check and connect);
//! 3. the request goes out over the step's one pool of keep-alive connections
//!    ([`HttpClient`]: hyper's HTTP/1 connections, [`Pool`], over our own [`Connector`],
//!    which connects only to the addresses step 2 checked), with a per-step connection
//!    limit;
//! 4. connect, first-byte and between-bytes timeouts are the plugin's own or ours,
//!    clamped to the time the step has left;
//! 5. redirects are returned to the plugin as they are, never followed here: a plugin
//!    that follows one sends a new request, checked again.
//!
//! A denied request fails with `error-code.HTTP-request-denied`, and the step log says
//! which grant to add.
//!
//! [`add_to_linker`] links `wasi:http` with our own `outgoing-handler.handle`, which
//! frees the `request-options` a plugin passes (wasmtime-wasi-http 48's never does, so a
//! step sending options with every request ran out of resource slots).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Uri;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::bindings::http::{outgoing_handler, types as http_types};
use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, HostOutgoingRequest};
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use crate::capabilities::egress::NetAccess;
use crate::capabilities::logs::{Source, StepLog};

/// Most connections one step may have open at once (all hosts together).
pub const MAX_CONNECTIONS: usize = 1024;
/// Connect timeout when the plugin sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// First-byte and between-bytes timeouts when the plugin sets none.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

/// The `wasi:http` version whose `outgoing-handler` we link (that of wasmtime-wasi-http
/// 48's WIT; guests importing an older 0.2 match it by semver).
const OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler@0.2.12";

/// Links `wasi:http/types` as wasmtime-wasi-http has it, and our own
/// `wasi:http/outgoing-handler.handle` (in place of `add_only_http_to_linker_async`):
/// wasmtime-wasi-http's `handle` (which builds the request and calls
/// [`StepHttp::send_request`]), after which the `request-options` it was given are
/// deleted from the step's resource table.
pub fn add_to_linker<T: WasiHttpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let options = http_types::LinkOptions::default();
    http_types::add_to_linker::<T, wasmtime_wasi_http::WasiHttp>(linker, &options, T::http)?;
    linker.instance(OUTGOING_HANDLER)?.func_wrap(
        "handle",
        |mut store: StoreContextMut<'_, T>,
         (request, options): (
            Resource<HostOutgoingRequest>,
            Option<Resource<RequestOptions>>,
        )| {
            let mut view = store.data_mut().http();
            Ok((handle(&mut view, request, options)?,))
        },
    )?;
    Ok(())
}

/// `outgoing-handler.handle`: the stock one, then the options are freed; an error code
/// goes back to the guest, any other error traps.
fn handle(
    view: &mut WasiHttpCtxView<'_>,
    request: Resource<HostOutgoingRequest>,
    options: Option<Resource<RequestOptions>>,
) -> wasmtime::Result<Result<Resource<HostFutureIncomingResponse>, ErrorCode>> {
    // The stock `handle` reads (a copy of) the options and leaves them in the table; it
    // is lent the same entry, deleted here whatever the outcome.
    let lent = options.as_ref().map(|o| Resource::new_own(o.rep()));
    let result = outgoing_handler::Host::handle(view, request, lent);
    if let Some(options) = options {
        // The guest gave its handle up, so nothing else refers to the entry; one that is
        // already gone (it cannot be) leaves nothing to free.
        let _ = view.table.delete(options);
    }
    match result {
        Ok(future) => Ok(Ok(future)),
        Err(e) => Ok(Err(http_types::Host::convert_error_code(view, e)?)),
    }
}

/// The step's outgoing-HTTP client: one per step, shared by its attempts, so that
/// connections are reused across requests.
pub struct HttpClient {
    net: Arc<NetAccess>,
    connector: Connector,
    /// Idle keep-alive connections by `scheme://host:port`.
    pool: Arc<Pool>,
    /// Addresses checked for each `host:port`, read by the connector.
    checked: Checked,
    /// `scheme://authority` of the requests already allowed whose host a grant names (or
    /// an address literal a grant names): those always get the addresses resolved at
    /// step start, so the grants are not searched again for every request of a load
    /// test. Names resolved per request are not kept here.
    allowed: Mutex<HashMap<String, Vec<SocketAddr>>>,
}

type Checked = Arc<Mutex<HashMap<String, Vec<SocketAddr>>>>;

impl HttpClient {
    /// The client of a step with these network grants.
    pub fn new(net: Arc<NetAccess>) -> HttpClient {
        let checked: Checked = Arc::default();
        let connector = Connector {
            checked: checked.clone(),
            limit: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            tls: Arc::new(OnceTls::default()),
        };
        HttpClient {
            net,
            connector,
            pool: Arc::default(),
            checked,
            allowed: Mutex::default(),
        }
    }

    /// The addresses `uri` may be sent to, or the reason it may not (naming the grant
    /// to add). The load generator ([`super::load`]) checks its origins here too.
    pub(crate) async fn check(&self, uri: &Uri) -> Result<Vec<SocketAddr>, String> {
        let key = match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => Some(format!("{scheme}://{authority}")),
            _ => None,
        };
        if let Some(key) = &key
            && let Some(addrs) = self
                .allowed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(key)
        {
            return Ok(addrs.clone());
        }
        let (addrs, by_name) = self.check_grants(uri).await?;
        if by_name && let Some(key) = key {
            self.allowed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, addrs.clone());
        }
        Ok(addrs)
    }

    /// [`HttpClient::check`] against the grants; the flag says the addresses are those
    /// of a grant naming the host (fixed for the step), not of a resolution now.
    async fn check_grants(&self, uri: &Uri) -> Result<(Vec<SocketAddr>, bool), String> {
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri
            .host()
            .ok_or_else(|| format!("{uri} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        let shown = if host.contains(':') {
            format!("{scheme}://[{host}]:{port}")
        } else {
            format!("{scheme}://{host}:{port}")
        };
        let hint = format!("add \"{shown}\" under the step's grants, `net`");
        let matching: Vec<&(crate::config::NetGrant, Vec<SocketAddr>)> = self
            .net
            .resolved_grants()
            .iter()
            .filter(|(g, _)| g.allows_http(&scheme, port))
            .collect();
        if matching.is_empty() {
            return Err(format!("{shown} is not in the step's `net` grant ({hint})"));
        }
        // Granted by name: the addresses the name had when the step started.
        if let Some((_, addrs)) = matching
            .iter()
            .find(|(g, _)| g.host.trim_end_matches('.').eq_ignore_ascii_case(&host))
        {
            if addrs.is_empty() {
                return Err(format!("{shown} did not resolve when the step started"));
            }
            return Ok((addrs.clone(), true));
        }
        // Otherwise the name is resolved here and only granted addresses are kept.
        let resolved: Vec<SocketAddr> = match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(found) => found.collect(),
            Err(e) => return Err(format!("{host} does not resolve: {e}")),
        };
        let allowed: Vec<SocketAddr> = resolved
            .iter()
            .copied()
            .filter(|a| matching.iter().any(|(_, addrs)| addrs.contains(a)))
            .collect();
        if allowed.is_empty() {
            let list: Vec<String> = resolved.iter().map(|a| a.ip().to_string()).collect();
            return Err(format!(
                "{host} resolves to {}, which no `net` grant names ({hint})",
                list.join(", ")
            ));
        }
        Ok((allowed, false))
    }
}

impl HttpClient {
    /// The step's TLS client configuration (the system's roots, read once per step).
    pub(crate) fn tls_config(&self) -> Result<Arc<tokio_rustls::rustls::ClientConfig>, String> {
        self.connector.tls.get()
    }

    /// Sends `request` over an idle pooled connection to its origin, or a new one; the
    /// connection goes back to the pool when the response body has been read to its end.
    async fn request(
        &self,
        mut request: http::Request<WasiBody>,
    ) -> Result<http::Response<PooledBody>, HttpError> {
        let uri = request.uri().clone();
        let key = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("https"),
            uri.authority().map(|a| a.as_str()).unwrap_or_default()
        );
        // HTTP/1.1 to an origin server: the request line carries the path only.
        let path = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        *request.uri_mut() = Uri::from(path);
        // A connection handed back may wait for its task to see the end of the last
        // response before it takes the next request.
        let idle = match self.pool.take(&key) {
            Some(mut sender) => sender.ready().await.is_ok().then_some(sender),
            None => None,
        };
        let mut sender = match idle {
            Some(sender) => sender,
            None => self.connect(uri).await?,
        };
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| hyper_error(&e))?;
        let pool = Arc::downgrade(&self.pool);
        Ok(response.map(|body| PooledBody {
            body,
            home: Some((sender, key, pool)),
        }))
    }

    /// A new connection to `uri`'s origin, its HTTP/1 handshake done and its task spawned.
    async fn connect(&self, uri: Uri) -> Result<http1::SendRequest<WasiBody>, HttpError> {
        use tower_service::Service;
        let conn = self
            .connector
            .clone()
            .call(uri)
            .await
            .map_err(|e| connect_error(&e))?;
        let (sender, connection) = http1::handshake(conn).await.map_err(|e| hyper_error(&e))?;
        // Ends when the server closes the connection or every sender is dropped (the
        // step's client with its pool, and responses in flight).
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("outgoing HTTP connection ended: {e}");
            }
        });
        Ok(sender)
    }
}

/// A step's idle HTTP/1 keep-alive connections, by origin, most recently used last.
/// An idle connection lives until the server closes it or the step ends (the pool is
/// the step's), under the step's connection limit.
#[derive(Default)]
struct Pool(Mutex<HashMap<String, Vec<http1::SendRequest<WasiBody>>>>);

impl Pool {
    /// An idle connection to `key` that the server has not closed.
    fn take(&self, key: &str) -> Option<http1::SendRequest<WasiBody>> {
        let mut idle = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(key)?;
        while let Some(sender) = list.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn give_back(&self, key: String, sender: http1::SendRequest<WasiBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.0.lock().unwrap_or_else(|e| e.into_inner());
        idle.entry(key).or_default().push(sender);
    }
}

/// A response body that hands its connection back to the pool once read to its end
/// (a body dropped before its end leaves the connection to close).
struct PooledBody {
    body: hyper::body::Incoming,
    home: Option<(http1::SendRequest<WasiBody>, String, std::sync::Weak<Pool>)>,
}

impl PooledBody {
    fn go_home(&mut self) {
        if let Some((sender, key, pool)) = self.home.take()
            && let Some(pool) = pool.upgrade()
        {
            pool.give_back(key, sender);
        }
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if self.body.is_end_stream() {
            self.go_home();
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        let frame = match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(frame) => frame,
        };
        match &frame {
            None => this.go_home(),
            Some(Ok(_)) if this.body.is_end_stream() => this.go_home(),
            Some(Err(_)) => this.home = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame.map(|f| f.map_err(HttpError::Hyper)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The `wasi:http` hooks of one attempt.
pub struct StepHttp {
    client: Option<Arc<HttpClient>>,
    log: StepLog,
    deadline: Instant,
}

impl StepHttp {
    /// Hooks sending through `client` until `deadline`; `None` denies every request.
    pub fn new(client: Option<Arc<HttpClient>>, log: StepLog, deadline: Instant) -> StepHttp {
        StepHttp {
            client,
            log,
            deadline,
        }
    }

    /// Requests sent from now on end by `deadline` (a monitor's next check).
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }
}

/// A timeout asked for by the plugin (or ours), no later than the step's deadline.
fn clamp(asked: Option<Duration>, default: Duration, deadline: Instant) -> Duration {
    let left = deadline.saturating_duration_since(Instant::now());
    asked.unwrap_or(default).min(left)
}

impl WasiHttpHooks for StepHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let client = self.client.clone();
        let log = self.log.clone();
        let deadline = self.deadline;
        let options = options.unwrap_or_default();
        let Some(client) = client else {
            log.line(
                Source::Runner,
                &format!(
                    "denied HTTP {} {}: no outgoing HTTP while describing",
                    request.method(),
                    request.uri()
                ),
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        };
        Box::new(send(client, request, options, log, deadline))
    }
}

/// Checks and sends one request over the step's pooled client.
async fn send(
    client: Arc<HttpClient>,
    request: http::Request<WasiBody>,
    options: RequestOptions,
    log: StepLog,
    deadline: Instant,
) -> SendResult {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let addrs = match client.check(&uri).await {
        Ok(a) => a,
        Err(why) => {
            log.line(
                Source::Runner,
                &format!("denied HTTP {method} {uri}: {why}"),
            );
            return Err(HttpError::HttpRequestDenied);
        }
    };
    if let Some(key) = authority_key(&uri) {
        let mut checked = client.checked.lock().unwrap_or_else(|e| e.into_inner());
        if checked.get(&key) != Some(&addrs) {
            checked.insert(key, addrs);
        }
    }
    let connect = clamp(options.connect_timeout, CONNECT_TIMEOUT, deadline);
    let first_byte = clamp(options.first_byte_timeout, READ_TIMEOUT, deadline);
    let between = clamp(options.between_bytes_timeout, READ_TIMEOUT, deadline);
    // The pooled client connects inside `request` (or reuses a connection), so
    // connect and first byte share one bound, never past the step's deadline;
    // the connector bounds each connection attempt by `CONNECT_TIMEOUT` too.
    let left = deadline.saturating_duration_since(Instant::now());
    let bound = (connect + first_byte).min(left);
    let response = match tokio::time::timeout(bound, client.request(request)).await {
        Err(_) => return Err(HttpError::ConnectionReadTimeout),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(r)) => r,
    };
    let response = response.map(|body| BetweenBytes::new(body, between).boxed_unsync());
    let io: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send> =
        Box::new(async { Ok(()) });
    Ok((response, io))
}

/// `host:port` of `uri`, as the connector looks it up.
fn authority_key(uri: &Uri) -> Option<String> {
    let host = uri.host()?.to_ascii_lowercase();
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("http") {
            80
        } else {
            443
        });
    Some(format!("{host}:{port}"))
}

/// Why the connector could not connect.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("{0} was not checked against the step's grants")]
    Unchecked(String),
    #[error("connection refused by {0}")]
    Refused(String),
    #[error("connecting to {0} timed out")]
    Timeout(String),
    #[error("cannot connect to {0}: {1}")]
    Io(String, std::io::Error),
    #[error("TLS with {0}: {1}")]
    Tls(String, std::io::Error),
    #[error("TLS setup: {0}")]
    TlsSetup(String),
}

/// The `error-code` of a connection that could not be made.
fn connect_error(e: &ConnectError) -> HttpError {
    match e {
        ConnectError::Unchecked(_) => HttpError::HttpRequestDenied,
        ConnectError::Refused(_) => HttpError::ConnectionRefused,
        ConnectError::Timeout(_) => HttpError::ConnectionTimeout,
        ConnectError::Io(..) => HttpError::DestinationUnavailable,
        ConnectError::Tls(_, e) if e.kind() == std::io::ErrorKind::InvalidData => {
            HttpError::TlsCertificateError
        }
        ConnectError::Tls(..) | ConnectError::TlsSetup(_) => HttpError::TlsProtocolError,
    }
}

/// The `error-code` of a failed HTTP exchange.
fn hyper_error(e: &hyper::Error) -> HttpError {
    if e.is_timeout() {
        return HttpError::ConnectionReadTimeout;
    }
    if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        return HttpError::ConnectionTerminated;
    }
    HttpError::HttpProtocolError
}

/// The TLS client configuration, made on first use (reading the system's roots once).
#[derive(Default)]
struct OnceTls(std::sync::OnceLock<Result<Arc<tokio_rustls::rustls::ClientConfig>, String>>);

impl OnceTls {
    fn get(&self) -> Result<Arc<tokio_rustls::rustls::ClientConfig>, String> {
        self.0
            .get_or_init(|| {
                use tokio_rustls::rustls;
                let mut roots = rustls::RootCertStore::empty();
                let found = rustls_native_certs::load_native_certs();
                for cert in found.certs {
                    // A certificate the system lists but rustls cannot use is skipped.
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    return Err(format!(
                        "no usable root certificates on this machine ({} errors reading them)",
                        found.errors.len()
                    ));
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Ok(Arc::new(config))
            })
            .clone()
    }
}

/// Connects to the addresses [`HttpClient::check`] allowed for a `host:port`, and only
/// those, under the step's connection limit.
#[derive(Clone)]
struct Connector {
    checked: Checked,
    limit: Arc<Semaphore>,
    tls: Arc<OnceTls>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = ConnectError;
    type Future = BoxFuture<Result<Conn, ConnectError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let key = authority_key(&uri).unwrap_or_default();
            let addrs = this
                .checked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .cloned()
                .ok_or_else(|| ConnectError::Unchecked(key.clone()))?;
            let permit = tokio::time::timeout(CONNECT_TIMEOUT, this.limit.clone().acquire_owned())
                .await
                .map_err(|_| ConnectError::Timeout(key.clone()))?
                .map_err(|_| ConnectError::Timeout(key.clone()))?;
            let mut last = None;
            let mut tcp = None;
            for addr in &addrs {
                match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                    Ok(Ok(s)) => {
                        tcp = Some(s);
                        break;
                    }
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        last = Some(ConnectError::Refused(addr.to_string()));
                    }
                    Ok(Err(e)) => last = Some(ConnectError::Io(addr.to_string(), e)),
                    Err(_) => last = Some(ConnectError::Timeout(addr.to_string())),
                }
            }
            let Some(tcp) = tcp else {
                return Err(last.unwrap_or(ConnectError::Unchecked(key)));
            };
            let _ = tcp.set_nodelay(true);
            let io: Box<dyn Io> = if uri.scheme_str() == Some("https") {
                let config = this.tls.get().map_err(ConnectError::TlsSetup)?;
                let host = uri.host().unwrap_or_default();
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| ConnectError::TlsSetup(e.to_string()))?;
                let tls = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    tokio_rustls::TlsConnector::from(config).connect(name, tcp),
                )
                .await
                .map_err(|_| ConnectError::Timeout(key.clone()))?
                .map_err(|e| ConnectError::Tls(key.clone(), e))?;
                Box::new(tls)
            } else {
                Box::new(tcp)
            };
            Ok(Conn {
                io: TokioIo::new(io),
                _permit: permit,
            })
        })
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// One connection, holding its place under the step's connection limit.
struct Conn {
    io: TokioIo<Box<dyn Io>>,
    _permit: OwnedSemaphorePermit,
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A response body that fails with `connection-read-timeout` when no data arrives for
/// `timeout`. Its timer is made, and set again, only when the body has to wait (a small
/// response is usually all there when it is first read): no timer per frame.
struct BetweenBytes<B> {
    inner: B,
    timeout: Duration,
    /// Running since the body last had to wait; `None` until it first has to.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A frame came since the timer was set: it starts again at the next wait.
    moved: bool,
}

impl<B> BetweenBytes<B> {
    fn new(inner: B, timeout: Duration) -> Self {
        BetweenBytes {
            inner,
            timeout,
            sleep: None,
            moved: false,
        }
    }
}

impl<B> Body for BetweenBytes<B>
where
    B: Body<Data = Bytes, Error = HttpError> + Unpin,
{
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.moved = true;
            return Poll::Ready(frame);
        }
        let timeout = this.timeout;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if std::mem::take(&mut this.moved) {
            sleep
                .as_mut()
                .reset(tokio::time::Instant::now() + this.timeout);
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
