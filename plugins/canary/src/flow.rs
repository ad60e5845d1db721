//! One attempt of a check: send its requests in order, fill each from the values the
//! earlier ones captured, and judge each response; stop at the first failed assertion
//! and say, readably, what was asserted and what was seen
//! (`get-cart: $.items.length() expected >= 1, got 0`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_json::Value;
use sluice_sdk::RunError;
use sluice_sdk::http::{self, Request, Response};
use sluice_sdk::monitor::{Comparison, excerpt, format_number};

use crate::config::{Body, Capture, Check, Expect, JsonCheck, Step};
use crate::template::{Values, render_json};

/// What a check needs from the world: HTTP, a pause between retries, secrets.
/// The component uses the host's; unit tests a scripted one.
pub trait Environment {
    /// Send a request and time it.
    fn send(&mut self, request: &Request) -> (Result<Response, http::Error>, Duration);
    /// Wait before a retry.
    fn pause(&mut self, duration: Duration);
    /// A secret granted to the monitor.
    fn secret(&self, name: &str) -> Result<String, RunError>;
}

/// The first assertion of an attempt that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The request's name.
    pub request: String,
    /// What was asserted and what was seen.
    pub what: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.request, self.what)
    }
}

/// What one attempt observed.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// `(request name, latency)` of every request that got a response or failed.
    pub latencies: Vec<(String, Duration)>,
    /// Why the attempt failed; `None`: every assertion held.
    pub failure: Option<Failure>,
}

/// Captured values and secrets, for templates.
struct Scope<'a> {
    captured: &'a BTreeMap<String, String>,
    secrets: &'a BTreeMap<String, String>,
}

impl Values for Scope<'_> {
    fn value(&self, name: &str) -> Result<String, String> {
        if let Some(secret) = name.strip_prefix("secret.") {
            return self
                .secrets
                .get(secret)
                .cloned()
                .ok_or_else(|| format!("secret `{secret}` was not read"));
        }
        self.captured
            .get(name)
            .cloned()
            .ok_or_else(|| format!("`{{{{{name}}}}}` was not captured"))
    }
}

/// The secrets a check's templates use, read once before its first attempt.
pub fn read_secrets(
    check: &Check,
    env: &dyn Environment,
) -> Result<BTreeMap<String, String>, RunError> {
    let mut names = Vec::new();
    for step in &check.requests {
        names.extend(step.url.names().map(str::to_owned));
        for (_, h) in &step.headers {
            names.extend(h.names().map(str::to_owned));
        }
        match &step.body {
            Body::Text(t) => names.extend(t.names().map(str::to_owned)),
            Body::Json(v) => json_names(v, &mut names),
            Body::None => {}
        }
    }
    let mut secrets = BTreeMap::new();
    for name in names {
        if let Some(secret) = name.strip_prefix("secret.")
            && !secrets.contains_key(secret)
        {
            secrets.insert(secret.to_owned(), env.secret(secret)?);
        }
    }
    Ok(secrets)
}

fn json_names(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            if let Ok(t) = crate::template::Template::parse(s) {
                out.extend(t.names().map(str::to_owned));
            }
        }
        Value::Array(items) => items.iter().for_each(|v| json_names(v, out)),
        Value::Object(map) => map.values().for_each(|v| json_names(v, out)),
        _ => {}
    }
}

/// Run every request of `check` once. `Err` only when the monitor may not send a
/// request (the `net` grant) or a template cannot be filled: nothing was observed.
pub fn attempt(
    check: &Check,
    secrets: &BTreeMap<String, String>,
    env: &mut dyn Environment,
) -> Result<Attempt, RunError> {
    let mut captured = BTreeMap::new();
    let mut latencies = Vec::new();
    for step in &check.requests {
        let request = build_request(step, &captured, secrets).map_err(|e| {
            RunError::failed(format!(
                "check `{}`, request `{}`: {e}",
                check.name, step.name
            ))
        })?;
        let (outcome, latency) = env.send(&request);
        latencies.push((step.name.clone(), latency));
        let fail = |what: String| Failure {
            request: step.name.clone(),
            what,
        };
        let response = match outcome {
            Ok(response) => response,
            Err(http::Error::Denied { origin }) => {
                return Err(RunError::denied(format!(
                    "check `{}`, request `{}`: HTTP request to {origin} denied: add \"{origin}\" under the monitor's grants, `net`",
                    check.name, step.name
                )));
            }
            Err(e) => {
                return Ok(Attempt {
                    latencies,
                    failure: Some(fail(no_answer(&request, &e))),
                });
            }
        };
        if let Some(what) = judge(&step.expect, &response, latency, needs_json(step)) {
            return Ok(Attempt {
                latencies,
                failure: Some(fail(what)),
            });
        }
        for (name, capture) in &step.captures {
            match capture_value(capture, &response) {
                Ok(value) => {
                    captured.insert(name.clone(), value);
                }
                Err(why) => {
                    return Ok(Attempt {
                        latencies,
                        failure: Some(fail(format!("capture `{name}`: {why}"))),
                    });
                }
            }
        }
    }
    Ok(Attempt {
        latencies,
        failure: None,
    })
}

/// The request of `step`, its templates filled.
pub fn build_request(
    step: &Step,
    captured: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, String>,
) -> Result<Request, String> {
    let scope = Scope { captured, secrets };
    let mut request = Request::new(step.method.clone(), step.url.render(&scope)?);
    for (name, value) in &step.headers {
        request = request.header(name, value.render(&scope)?);
    }
    match &step.body {
        Body::None => {}
        Body::Text(t) => request = request.body(t.render(&scope)?.into_bytes()),
        Body::Json(v) => {
            let filled = render_json(v, &scope)?;
            request = request.body(filled.to_string().into_bytes());
        }
    }
    if let Some(timeout) = step.timeout {
        request = request.timeout(timeout);
    }
    Ok(request)
}

fn needs_json(step: &Step) -> bool {
    !step.expect.json.is_empty()
        || step
            .captures
            .iter()
            .any(|(_, c)| matches!(c, Capture::JsonPath(..)))
}

fn no_answer(request: &Request, error: &http::Error) -> String {
    let why = match error {
        http::Error::Timeout { .. } => "timed out".to_owned(),
        http::Error::ConnectionRefused { .. } => "connection refused".to_owned(),
        http::Error::Invalid { reason, .. } => format!("invalid request ({reason})"),
        http::Error::Other { message, .. } => format!("no response ({message})"),
        http::Error::Denied { .. } => error.to_string(),
    };
    format!("{why} ({} {})", request.method, request.url)
}

/// The first assertion of `expect` that `response` breaks, in the order status,
/// latency, headers, body, JSON paths.
pub fn judge(
    expect: &Expect,
    response: &Response,
    latency: Duration,
    parse_json: bool,
) -> Option<String> {
    if let Some(what) = expect.response.first_failure(response, latency) {
        return Some(what);
    }
    if parse_json && !expect.json.is_empty() {
        let body = response.text();
        let json: Value = match serde_json::from_str(&body) {
            Ok(v) => v,
            Err(e) => return Some(format!("body is not JSON ({e}): {}", excerpt(&body))),
        };
        for check in &expect.json {
            if let Some(what) = judge_json(check, &json) {
                return Some(what);
            }
        }
    }
    None
}

/// The first broken rule of a JSON path assertion.
pub fn judge_json(check: &JsonCheck, json: &Value) -> Option<String> {
    let nodes = check.path.query(json).all();
    let path = &check.text;
    if let Some(count) = check.count
        && !count.holds(nodes.len() as f64)
    {
        return Some(format!(
            "count({path}) expected {count}, got {}",
            nodes.len()
        ));
    }
    match (check.exists, nodes.first()) {
        (Some(false), None) => return None,
        (Some(false), Some(node)) => {
            return Some(format!(
                "{path} expected to select nothing, got {}",
                show(node)
            ));
        }
        (_, None) => {
            let asked = check.exists == Some(true)
                || check.equals.is_some()
                || check.length.is_some()
                || check.value.is_some()
                || check.matches.is_some()
                || check.count.is_none();
            return asked.then(|| format!("{path} selected nothing"));
        }
        (_, Some(_)) => {}
    }
    let node = nodes[0];
    if let Some(want) = &check.equals
        && node != want
    {
        return Some(format!(
            "{path} expected {}, got {}",
            show(want),
            show(node)
        ));
    }
    if let Some(cmp) = check.length {
        let length = match node {
            Value::Array(a) => Some(a.len()),
            Value::Object(o) => Some(o.len()),
            Value::String(s) => Some(s.chars().count()),
            _ => None,
        };
        match length {
            Some(n) if cmp.holds(n as f64) => {}
            Some(n) => return Some(format!("{path}.length() expected {cmp}, got {n}")),
            None => {
                return Some(format!(
                    "{path}.length() expected {cmp}, got {} (no length)",
                    show(node)
                ));
            }
        }
    }
    if let Some(cmp) = check.value
        && let Some(what) = judge_number(path, cmp, node)
    {
        return Some(what);
    }
    if let Some(re) = &check.matches {
        match node {
            Value::String(s) if re.is_match(s) => {}
            other => {
                return Some(format!(
                    "{path} expected to match /{}/, got {}",
                    re.as_str(),
                    show(other)
                ));
            }
        }
    }
    None
}

fn judge_number(path: &str, cmp: Comparison, node: &Value) -> Option<String> {
    match node.as_f64() {
        Some(v) if cmp.holds(v) => None,
        Some(v) => Some(format!("{path} expected {cmp}, got {}", format_number(v))),
        None => Some(format!(
            "{path} expected a number {cmp}, got {}",
            show(node)
        )),
    }
}

/// The value of a capture, or why there is none.
pub fn capture_value(capture: &Capture, response: &Response) -> Result<String, String> {
    match capture {
        Capture::JsonPath(path, text) => {
            let json: Value = serde_json::from_str(&response.text())
                .map_err(|e| format!("body is not JSON ({e})"))?;
            let nodes = path.query(&json).all();
            match nodes.first() {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Ok(other.to_string()),
                None => Err(format!("{text} selected nothing")),
            }
        }
        Capture::Header(name, regex) => {
            let value = response
                .header(name)
                .ok_or_else(|| format!("header {name} missing"))?;
            match regex {
                None => Ok(value.to_owned()),
                Some(re) => first_group(re, value).ok_or_else(|| {
                    format!("header {name} {value:?} does not match /{}/", re.as_str())
                }),
            }
        }
        Capture::BodyRegex(re) => {
            let body = response.text();
            first_group(re, &body).ok_or_else(|| {
                format!(
                    "body does not match /{}/ (body: {})",
                    re.as_str(),
                    excerpt(&body)
                )
            })
        }
    }
}

fn first_group(re: &regex::Regex, text: &str) -> Option<String> {
    let caps = re.captures(text)?;
    caps.get(1)
        .or_else(|| caps.get(0))
        .map(|m| m.as_str().to_owned())
}

/// A JSON value, compact and cut, for a detail line.
fn show(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}
