//! Outgoing HTTP over `wasi:http`, without touching its resources.
//!
//! The host sends every request under the step's `net` grant: a request to a host the
//! step was not granted fails with [`Error::Denied`], which names the grant to add.
//! The host never follows redirects: a `3xx` comes back as a [`Response`], and a plugin
//! that wants to follow it sends a new request (checked again).
//!
//! One request at a time, blocking:
//!
//! ```no_run
//! use std::time::Duration;
//! use sluice_sdk::http::{self, Request};
//!
//! let health = http::get("http://127.0.0.1:8080/health")?;
//! assert_eq!(health.status, 200);
//!
//! let created = Request::post("https://api.example.com/deployments")
//!     .header("content-type", "application/json")
//!     .body(r#"{"version":"1.2.3"}"#)
//!     .timeout(Duration::from_secs(5))
//!     .send()?;
//! println!("{} {}", created.status, created.text());
//! # Ok::<(), sluice_sdk::http::Error>(())
//! ```
//!
//! Many requests in flight, finishing in any order ([`Client`]); each [`Completion`]
//! says when its request was sent, when its response began and when it ended:
//!
//! ```no_run
//! use std::time::{Duration, Instant};
//! use sluice_sdk::http::{Client, Request};
//!
//! let mut client = Client::new();
//! let request = Request::get("http://127.0.0.1:8080/");
//! for _ in 0..16 {
//!     client.start(&request)?;
//! }
//! let deadline = Instant::now() + Duration::from_secs(10);
//! while let Some(done) = client.wait(Some(deadline)) {
//!     let latency = done.finished - done.sent;
//!     match done.result {
//!         Ok(response) => println!("{} in {latency:?}", response.status),
//!         Err(e) => println!("{e}"),
//!     }
//! }
//! # Ok::<(), sluice_sdk::http::Error>(())
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// Why a request did not produce a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The step's `net` grant does not allow this origin.
    Denied {
        /// `scheme://host:port` of the request.
        origin: String,
    },
    /// Connecting, the first byte or the next byte took longer than allowed.
    Timeout {
        /// The request's URL.
        url: String,
    },
    /// Nothing listens at the address (the connection was refused).
    ConnectionRefused {
        /// The request's URL.
        url: String,
    },
    /// The URL, a header or the method is not valid.
    Invalid {
        /// The request's URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// Anything else (the connection broke, a protocol error, TLS...).
    Other {
        /// The request's URL.
        url: String,
        /// The `wasi:http` error code, as text.
        message: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Denied { origin } => write!(
                f,
                "HTTP request to {origin} denied: add \"{origin}\" under the step's grants, `net`"
            ),
            Error::Timeout { url } => write!(f, "HTTP request to {url} timed out"),
            Error::ConnectionRefused { url } => {
                write!(f, "HTTP request to {url}: connection refused")
            }
            Error::Invalid { url, reason } => write!(f, "HTTP request to {url}: {reason}"),
            Error::Other { url, message } => write!(f, "HTTP request to {url} failed: {message}"),
        }
    }
}

impl std::error::Error for Error {}

/// A request to send: method, URL, headers, body and timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`... (any token).
    pub method: String,
    /// An absolute `http://` or `https://` URL.
    pub url: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body; empty sends none.
    pub body: Vec<u8>,
    /// Bound on connecting, on the first byte and between bytes (each); the host
    /// clamps it to the time the step has left.
    pub timeout: Option<Duration>,
}

impl Request {
    /// A request with `method` to `url`.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Request {
        Request {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        }
    }

    /// A `GET` of `url`.
    pub fn get(url: impl Into<String>) -> Request {
        Request::new("GET", url)
    }

    /// A `POST` to `url`.
    pub fn post(url: impl Into<String>) -> Request {
        Request::new("POST", url)
    }

    /// Add a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Set the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Bound connecting, the first byte and the time between bytes.
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// Send the request and wait for the whole response.
    pub fn send(&self) -> Result<Response, Error> {
        let mut client = Client::new();
        client.start(self)?;
        match client.wait(None) {
            Some(done) => done.result,
            None => Err(Error::Other {
                url: self.url.clone(),
                message: "no response".into(),
            }),
        }
    }
}

/// `GET url` and wait for the whole response.
pub fn get(url: &str) -> Result<Response, Error> {
    Request::get(url).send()
}

/// A whole response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Identifies a request started on a [`Client`].
pub type RequestId = u64;

/// A finished request: its outcome and its times.
#[derive(Debug)]
pub struct Completion {
    /// What [`Client::start`] returned for it.
    pub id: RequestId,
    /// When it was handed to the host.
    pub sent: Instant,
    /// When its response head arrived (none if it failed before).
    pub first_byte: Option<Instant>,
    /// When its response ended or it failed.
    pub finished: Instant,
    /// The response, or why there is none.
    pub result: Result<Response, Error>,
}

/// Many requests in flight at once. [`Client::start`] sends without waiting;
/// [`Client::wait`] returns whichever request finishes next. The host pools
/// connections per step, so concurrency is bounded by the number of requests in
/// flight, and connections are reused between them.
#[derive(Default)]
pub struct Client {
    next: RequestId,
    flying: Vec<imp::InFlight>,
    done: VecDeque<Completion>,
    /// The timer of the last deadline waited for, reused while the deadline stays the
    /// same (a load test waits for the same progress tick many times a second).
    timer: imp::Timer,
    /// Responses keep only their status ([`Client::status_only`]).
    status_only: bool,
}

impl Client {
    /// A client with nothing in flight.
    pub fn new() -> Client {
        Client::default()
    }

    /// A client whose responses keep only their status: their headers are not copied
    /// into the plugin and their bodies are read to the end but not kept
    /// ([`Response::headers`] and [`Response::body`] stay empty). For callers that only
    /// count and time responses, as a load test does: each response then costs the
    /// plugin no allocation and the host no copy into the plugin's memory.
    pub fn status_only() -> Client {
        Client {
            status_only: true,
            ..Client::default()
        }
    }

    /// Send `request` now; its outcome comes from [`Client::wait`]. An error here
    /// means it never left (a bad URL, or no host to send it).
    pub fn start(&mut self, request: &Request) -> Result<RequestId, Error> {
        let id = self.next;
        self.next += 1;
        match imp::start(id, request, self.status_only)? {
            imp::Started::Flying(f) => self.flying.push(f),
            imp::Started::Done(c) => self.done.push_back(c),
        }
        Ok(id)
    }

    /// How many requests have not been returned by [`Client::wait`] yet.
    pub fn pending(&self) -> usize {
        self.flying.len() + self.done.len()
    }

    /// The next request to finish; `None` when nothing is pending or `deadline`
    /// passed first (requests still in flight stay in flight).
    pub fn wait(&mut self, deadline: Option<Instant>) -> Option<Completion> {
        loop {
            if let Some(c) = self.done.pop_front() {
                return Some(c);
            }
            if self.flying.is_empty() {
                return None;
            }
            if !imp::poll(&mut self.flying, &mut self.done, &mut self.timer, deadline) {
                return self.done.pop_front();
            }
        }
    }
}

/// `scheme`, `authority` and `path?query` of an absolute URL.
fn split_url(url: &str) -> Result<(&str, &str, &str), Error> {
    let invalid = |reason: &str| Error::Invalid {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| invalid("not an absolute URL (`http://host/path`)"))?;
    let rest = rest.split('#').next().unwrap_or_default();
    let cut = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(cut);
    if authority.is_empty() || authority.contains('@') {
        return Err(invalid("the URL needs a host (and no user)"));
    }
    let path = if path.is_empty() { "/" } else { path };
    Ok((scheme, authority, path))
}

/// `scheme://host:port` of an absolute URL, for the grant to add.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn origin(url: &str) -> String {
    match split_url(url) {
        Ok((scheme, authority, _)) => {
            let has_port = match authority.rfind(']') {
                Some(i) => authority[i..].contains(':'),
                None => authority.contains(':'),
            };
            let port = match (has_port, scheme) {
                (true, _) => String::new(),
                (false, "http") => ":80".into(),
                (false, _) => ":443".into(),
            };
            format!(
                "{}://{}{port}",
                scheme.to_ascii_lowercase(),
                authority.to_ascii_lowercase()
            )
        }
        Err(_) => url.to_owned(),
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::*;
    use crate::bindings::wasi::clocks::monotonic_clock;
    use crate::bindings::wasi::http::outgoing_handler;
    use crate::bindings::wasi::http::types::{
        ErrorCode, Fields, FutureIncomingResponse, IncomingBody, IncomingResponse, Method,
        OutgoingBody, OutgoingRequest, RequestOptions, Scheme, http_error_code,
    };
    use crate::bindings::wasi::io::poll::{Pollable, poll as wasi_poll};
    use crate::bindings::wasi::io::streams::{InputStream, StreamError};

    /// Largest read from a response body at once.
    const READ_CHUNK: u64 = 64 << 10;

    pub(super) enum Started {
        Flying(InFlight),
        Done(Completion),
    }

    /// A request on its way. Fields drop in order: pollables before their parents.
    pub(super) struct InFlight {
        id: RequestId,
        url: String,
        sent: Instant,
        first_byte: Option<Instant>,
        /// Skip the headers and the body's bytes (see [`Client::status_only`]).
        status_only: bool,
        state: State,
    }

    enum State {
        Head {
            ready: Pollable,
            future: FutureIncomingResponse,
        },
        Body {
            status: u16,
            headers: Vec<(String, String)>,
            data: Vec<u8>,
            /// Made only when the body is not all there on the first read (most small
            /// responses are): two host calls less per request.
            ready: Option<Pollable>,
            stream: InputStream,
            body: IncomingBody,
            _response: IncomingResponse,
        },
        Over,
    }

    fn error(url: &str, e: ErrorCode) -> Error {
        let url = url.to_owned();
        match e {
            ErrorCode::HttpRequestDenied => Error::Denied {
                origin: origin(&url),
            },
            ErrorCode::ConnectionRefused => Error::ConnectionRefused { url },
            ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::HttpResponseTimeout => Error::Timeout { url },
            ErrorCode::HttpRequestUriInvalid | ErrorCode::HttpRequestMethodInvalid => {
                Error::Invalid {
                    url,
                    reason: format!("{e:?}"),
                }
            }
            other => Error::Other {
                url,
                message: format!("{other:?}"),
            },
        }
    }

    fn method(m: &str) -> Method {
        match m.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "CONNECT" => Method::Connect,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "PATCH" => Method::Patch,
            _ => Method::Other(m.to_owned()),
        }
    }

    pub(super) fn start(id: RequestId, r: &Request, status_only: bool) -> Result<Started, Error> {
        let invalid = |reason: String| Error::Invalid {
            url: r.url.clone(),
            reason,
        };
        let (scheme, authority, path) = split_url(&r.url)?;
        let mut headers: Vec<(String, Vec<u8>)> = r
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
            .collect();
        // A body of known size says so: without `content-length` it goes out chunked,
        // which many servers refuse (411) or misread.
        if !r.body.is_empty() && !headers.iter().any(|(n, _)| n == "content-length") {
            headers.push((
                "content-length".into(),
                r.body.len().to_string().into_bytes(),
            ));
        }
        let fields = Fields::from_list(&headers)
            .map_err(|e| invalid(format!("header not allowed: {e:?}")))?;
        let req = OutgoingRequest::new(fields);
        let method = method(&r.method);
        // A new request is a GET already: one host call less for the commonest request.
        if !matches!(method, Method::Get) {
            req.set_method(&method)
                .map_err(|()| invalid(format!("invalid method `{}`", r.method)))?;
        }
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(invalid(format!("unsupported scheme `{other}`"))),
        };
        req.set_scheme(Some(&scheme))
            .map_err(|()| invalid("invalid scheme".into()))?;
        req.set_authority(Some(authority))
            .map_err(|()| invalid(format!("invalid host `{authority}`")))?;
        req.set_path_with_query(Some(path))
            .map_err(|()| invalid(format!("invalid path `{path}`")))?;
        let body = if r.body.is_empty() {
            None
        } else {
            Some(req.body().map_err(|()| invalid("no body".into()))?)
        };
        let options = r.timeout.map(|t| {
            let o = RequestOptions::new();
            let ns = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
            let _ = o.set_connect_timeout(Some(ns));
            let _ = o.set_first_byte_timeout(Some(ns));
            let _ = o.set_between_bytes_timeout(Some(ns));
            o
        });
        let sent = Instant::now();
        let over = |e: Error| {
            Ok(Started::Done(Completion {
                id,
                sent,
                first_byte: None,
                finished: Instant::now(),
                result: Err(e),
            }))
        };
        let future = match outgoing_handler::handle(req, options) {
            Ok(f) => f,
            Err(e) => return over(error(&r.url, e)),
        };
        if let Some(body) = body
            && let Err(e) = write_body(body, &r.body)
        {
            return over(Error::Other {
                url: r.url.clone(),
                message: e,
            });
        }
        Ok(Started::Flying(InFlight {
            id,
            url: r.url.clone(),
            sent,
            first_byte: None,
            status_only,
            state: State::Head {
                ready: future.subscribe(),
                future,
            },
        }))
    }

    fn write_body(body: OutgoingBody, data: &[u8]) -> Result<(), String> {
        {
            let out = body.write().map_err(|()| "no body stream".to_string())?;
            for chunk in data.chunks(4096) {
                out.blocking_write_and_flush(chunk)
                    .map_err(|e| format!("writing the body: {e:?}"))?;
            }
        }
        OutgoingBody::finish(body, None).map_err(|e| format!("finishing the body: {e:?}"))
    }

    /// A clock pollable for one deadline.
    #[derive(Default)]
    pub(super) struct Timer(Option<(Instant, Pollable)>);

    impl Timer {
        /// The pollable firing at `deadline`: the last one if it was for the same instant.
        fn at(&mut self, deadline: Instant) -> &Pollable {
            if self.0.as_ref().is_none_or(|(d, _)| *d != deadline) {
                let left = deadline.saturating_duration_since(Instant::now());
                let ns = u64::try_from(left.as_nanos()).unwrap_or(u64::MAX);
                self.0 = Some((deadline, monotonic_clock::subscribe_duration(ns)));
            }
            &self.0.as_ref().expect("set above").1
        }
    }

    /// Wait until at least one request moves on or `deadline` passes; finished ones
    /// go to `done`. Returns false when the deadline passed with nothing finished.
    pub(super) fn poll(
        flying: &mut Vec<InFlight>,
        done: &mut VecDeque<Completion>,
        timer: &mut Timer,
        deadline: Option<Instant>,
    ) -> bool {
        let timer = deadline.map(|d| timer.at(d));
        let ready: Vec<u32> = {
            let mut list: Vec<&Pollable> = flying
                .iter()
                .map(|f| match &f.state {
                    State::Head { ready, .. } => ready,
                    State::Body { ready, .. } => {
                        ready.as_ref().expect("a waiting body has its pollable")
                    }
                    State::Over => unreachable!("finished requests leave the list"),
                })
                .collect();
            if let Some(t) = timer {
                list.push(t);
            }
            wasi_poll(&list)
        };
        let before = done.len();
        let mut finished = Vec::new();
        for i in ready {
            let i = i as usize;
            if i >= flying.len() {
                continue;
            }
            if let Some(c) = advance(&mut flying[i]) {
                done.push_back(c);
                finished.push(i);
            }
        }
        finished.sort_unstable();
        for i in finished.into_iter().rev() {
            flying.swap_remove(i);
        }
        done.len() > before || deadline.is_none_or(|d| Instant::now() < d)
    }

    /// Move one request on after its pollable fired; its completion when it ended.
    fn advance(f: &mut InFlight) -> Option<Completion> {
        loop {
            match std::mem::replace(&mut f.state, State::Over) {
                State::Head { ready, future } => {
                    drop(ready);
                    let outcome = match future.get() {
                        None => {
                            f.state = State::Head {
                                ready: future.subscribe(),
                                future,
                            };
                            return None;
                        }
                        Some(Err(())) => Err(Error::Other {
                            url: f.url.clone(),
                            message: "response taken twice".into(),
                        }),
                        Some(Ok(Err(e))) => Err(error(&f.url, e)),
                        Some(Ok(Ok(response))) => Ok(response),
                    };
                    drop(future);
                    let response = match outcome {
                        Ok(r) => r,
                        Err(e) => return Some(finish(f, Err(e))),
                    };
                    f.first_byte = Some(Instant::now());
                    let status = response.status();
                    let headers = if f.status_only {
                        Vec::new()
                    } else {
                        response
                            .headers()
                            .entries()
                            .into_iter()
                            .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
                            .collect()
                    };
                    let Ok(body) = response.consume() else {
                        return Some(finish(
                            f,
                            Err(Error::Other {
                                url: f.url.clone(),
                                message: "response body taken twice".into(),
                            }),
                        ));
                    };
                    let Ok(stream) = body.stream() else {
                        return Some(finish(
                            f,
                            Err(Error::Other {
                                url: f.url.clone(),
                                message: "response stream taken twice".into(),
                            }),
                        ));
                    };
                    f.state = State::Body {
                        status,
                        headers,
                        data: Vec::new(),
                        ready: None,
                        stream,
                        body,
                        _response: response,
                    };
                }
                State::Body {
                    status,
                    headers,
                    mut data,
                    ready,
                    stream,
                    body,
                    _response,
                } => {
                    // Take everything available now.
                    let mut end = None;
                    loop {
                        let read = if f.status_only {
                            // Discarded on the host: nothing is copied into the plugin.
                            stream.skip(READ_CHUNK).map(|n| n > 0)
                        } else {
                            stream.read(READ_CHUNK).map(|chunk| {
                                data.extend_from_slice(&chunk);
                                !chunk.is_empty()
                            })
                        };
                        match read {
                            Ok(false) => break,
                            Ok(true) => {}
                            Err(StreamError::Closed) => {
                                end = Some(Ok(()));
                                break;
                            }
                            Err(StreamError::LastOperationFailed(e)) => {
                                // wasmtime 48 hands body errors over as text only
                                // (`http-error-code` finds no code in them), so a
                                // timeout is recognised by its message.
                                let message = e.to_debug_string();
                                end = Some(Err(match http_error_code(&e) {
                                    Some(code) => error(&f.url, code),
                                    None if message.to_ascii_lowercase().contains("timeout") => {
                                        Error::Timeout { url: f.url.clone() }
                                    }
                                    None => Error::Other {
                                        url: f.url.clone(),
                                        message,
                                    },
                                }));
                                break;
                            }
                        }
                    }
                    match end {
                        None => {
                            let ready = ready.unwrap_or_else(|| stream.subscribe());
                            f.state = State::Body {
                                status,
                                headers,
                                data,
                                ready: Some(ready),
                                stream,
                                body,
                                _response,
                            };
                            return None;
                        }
                        Some(outcome) => {
                            drop(ready);
                            drop(stream);
                            // Read to its end: dropped without asking for trailers (one
                            // host call less than `finish` and dropping its future).
                            drop(body);
                            drop(_response);
                            let result = match outcome {
                                Ok(()) => Ok(Response {
                                    status,
                                    headers,
                                    body: data,
                                }),
                                Err(e) => Err(e),
                            };
                            return Some(finish(f, result));
                        }
                    }
                }
                State::Over => return None,
            }
        }
    }

    fn finish(f: &InFlight, result: Result<Response, Error>) -> Completion {
        Completion {
            id: f.id,
            sent: f.sent,
            first_byte: f.first_byte,
            finished: Instant::now(),
            result,
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    //! Off wasm there is no host to send requests.
    use super::*;

    // Off wasm nothing starts: `start` always fails.
    #[allow(dead_code)]
    pub(super) enum Started {
        Done(Completion),
        Flying(InFlight),
    }

    pub(super) struct InFlight;

    #[derive(Default)]
    pub(super) struct Timer;

    pub(super) fn start(_id: RequestId, r: &Request, _status_only: bool) -> Result<Started, Error> {
        split_url(&r.url)?;
        Err(Error::Other {
            url: r.url.clone(),
            message: "no Sluice host: HTTP is only available when the plugin runs in a step".into(),
        })
    }

    pub(super) fn poll(
        _flying: &mut Vec<InFlight>,
        _done: &mut VecDeque<Completion>,
        _timer: &mut Timer,
        _deadline: Option<Instant>,
    ) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/a?b=1#frag").unwrap(),
            ("http", "127.0.0.1:8080", "/a?b=1")
        );
        assert_eq!(split_url("https://h").unwrap(), ("https", "h", "/"));
        assert_eq!(split_url("http://h?q").unwrap(), ("http", "h", "?q"));
        assert!(split_url("h/path").is_err());
        assert!(split_url("http://u@h/").is_err());
    }

    #[test]
    fn a_denial_names_the_origin_to_grant() {
        assert_eq!(origin("http://Example.com/x"), "http://example.com:80");
        assert_eq!(origin("https://h:8443/"), "https://h:8443");
        assert_eq!(origin("https://[::1]/"), "https://[::1]:443");
        let e = Error::Denied {
            origin: origin("http://10.0.0.1:81/"),
        };
        assert!(e.to_string().contains("add \"http://10.0.0.1:81\""));
    }

    #[test]
    fn off_wasm_a_request_says_there_is_no_host() {
        let e = get("http://127.0.0.1:1/").unwrap_err();
        assert!(e.to_string().contains("no Sluice host"), "{e}");
    }
}
