//! The canary's `with` table as written ([`Config`], with its JSON Schema for
//! `describe`), and [`prepare`], which checks what the schema cannot (regexes compile,
//! JSON paths parse, every `{{name}}` is captured by an earlier request) and names the
//! key at fault (`checks[0].requests[1].headers.authorization`).

use std::collections::BTreeMap;

use regex::Regex;
use serde_json_path::JsonPath;
use sluice_sdk::monitor::expect::{HeaderCheck, ResponseExpect};
use sluice_sdk::monitor::{Comparison, StatusSet};
use sluice_sdk::{HumanDuration, RunError};

use crate::template::Template;

/// The monitor's `with` table.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// The synthetic checks, each a flow of requests. Every check run is one data
    /// point named after the check.
    pub checks: Vec<CheckSpec>,
    /// Retries of a failed check (each check may override it); default 0.
    #[serde(default)]
    pub retries: u32,
    /// Pause before a retry; default `1s`.
    pub retry_delay: Option<HumanDuration>,
}

/// One synthetic check: requests sent in order, values captured from one response
/// for the next.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CheckSpec {
    /// Names the check's data points and metrics, e.g. `login-and-cart`.
    pub name: String,
    /// The requests of the flow, in order.
    pub requests: Vec<RequestSpec>,
    /// Retries of this check when it fails; default the table's `retries`.
    pub retries: Option<u32>,
    /// Pause before a retry; default the table's `retry-delay`.
    pub retry_delay: Option<HumanDuration>,
}

/// One request of a flow. `url`, header values, `body` and the strings of `json` may
/// hold `{{name}}`: a value captured by an earlier request of the flow, or
/// `{{secret.NAME}}`, a secret granted to the monitor.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RequestSpec {
    /// Names the request in details and metrics; default `request-N` (1-based).
    pub name: Option<String>,
    /// Default `GET`.
    #[serde(default = "default_method")]
    pub method: String,
    /// An `http://` or `https://` URL; its origin must be in the monitor's `net` grant.
    pub url: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body, as text.
    pub body: Option<String>,
    /// The body as JSON (sends `content-type: application/json` unless a header says
    /// otherwise).
    pub json: Option<serde_json::Value>,
    /// Bound on connecting, the first byte and between bytes.
    pub timeout: Option<HumanDuration>,
    /// Values to capture from the response, by name: `{ token = { json-path = "$.token" } }`.
    #[serde(default)]
    pub capture: BTreeMap<String, CaptureSpec>,
    /// What the response must be; without it, any 2xx passes.
    #[serde(default)]
    pub expect: ExpectSpec,
}

fn default_method() -> String {
    "GET".into()
}

/// Where a captured value comes from: a JSON path in the body, a header, or a regex
/// (over the header when `header` is given, else over the body) whose first group (or
/// whole match, without groups) is the value.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CaptureSpec {
    /// RFC 9535 JSONPath into the JSON body, e.g. `$.token` or `$.items[0].id`; the
    /// first node is the value (a string as is, anything else as JSON text).
    pub json_path: Option<String>,
    /// A response header (any case).
    pub header: Option<String>,
    /// A regular expression (Rust `regex` syntax); its first group is the value.
    pub regex: Option<String>,
}

/// Assertions on a response. Every one given must hold.
#[derive(Debug, Clone, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExpectSpec {
    /// The statuses that pass: `200`, `"2xx"`, `"200-299"` or a list; default `"2xx"`.
    pub status: Option<StatusSet>,
    /// The longest the whole response may take, e.g. `"300ms"`.
    pub max_latency: Option<HumanDuration>,
    /// Headers: a text the value must equal, or a table with `contains`, `matches`
    /// (regex) or `present = false`.
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderExpect>,
    /// Text the body must contain (one or a list).
    #[serde(default, deserialize_with = "sluice_sdk::one_or_many")]
    #[schemars(with = "sluice_sdk::OneOrMany")]
    pub body_contains: Vec<String>,
    /// Text the body must not contain (one or a list).
    #[serde(default, deserialize_with = "sluice_sdk::one_or_many")]
    #[schemars(with = "sluice_sdk::OneOrMany")]
    pub body_not_contains: Vec<String>,
    /// A regular expression the body must match.
    pub body_matches: Option<String>,
    /// Assertions on JSON path values of the body.
    #[serde(default)]
    pub json: Vec<JsonExpect>,
}

/// An assertion on a header.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum HeaderExpect {
    /// The value must equal this text.
    Equals(String),
    /// Finer rules.
    Rule(HeaderRule),
}

/// Finer rules on a header.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HeaderRule {
    /// Text the value must contain.
    pub contains: Option<String>,
    /// A regular expression the value must match.
    pub matches: Option<String>,
    /// `false`: the header must be absent; `true` (the default): present.
    pub present: Option<bool>,
}

/// An assertion on the nodes a JSON path selects in the body. Give `path` and one or
/// more of the rest; with none, the path must select something.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JsonExpect {
    /// RFC 9535 JSONPath, e.g. `$.status` or `$.items`.
    pub path: String,
    /// The first node must equal this JSON value.
    pub equals: Option<serde_json::Value>,
    /// `true`: the path must select something; `false`: nothing.
    pub exists: Option<bool>,
    /// The first node's length (array items, object members, string characters)
    /// compared, e.g. `">= 1"`.
    pub length: Option<Comparison>,
    /// The first node, a number, compared, e.g. `"< 100"`.
    pub value: Option<Comparison>,
    /// The first node, a string, must match this regular expression.
    pub matches: Option<String>,
    /// How many nodes the path selects, compared, e.g. `"== 3"`.
    pub count: Option<Comparison>,
}

/// A configuration ready to run: templates parsed, regexes compiled, paths parsed.
#[derive(Debug)]
pub struct Prepared {
    /// The checks, in order.
    pub checks: Vec<Check>,
}

/// A check ready to run.
#[derive(Debug)]
pub struct Check {
    /// Its name.
    pub name: String,
    /// Its requests, in order.
    pub requests: Vec<Step>,
    /// How many times it is retried after a failure.
    pub retries: u32,
    /// The pause before a retry.
    pub retry_delay: std::time::Duration,
}

/// A request ready to run.
#[derive(Debug)]
pub struct Step {
    /// Its name.
    pub name: String,
    /// Upper-case method.
    pub method: String,
    /// The URL template.
    pub url: Template,
    /// Header templates.
    pub headers: Vec<(String, Template)>,
    /// The body: a text template, or JSON whose strings are templates.
    pub body: Body,
    /// Per-request timeout.
    pub timeout: Option<std::time::Duration>,
    /// Captures, in name order.
    pub captures: Vec<(String, Capture)>,
    /// Assertions, in the order they are checked.
    pub expect: Expect,
}

/// A request's body.
#[derive(Debug)]
pub enum Body {
    /// No body.
    None,
    /// Text.
    Text(Template),
    /// JSON; its strings are templates.
    Json(serde_json::Value),
}

/// A capture ready to run.
#[derive(Debug)]
pub enum Capture {
    /// The first node of a JSON path (its text as written).
    JsonPath(JsonPath, String),
    /// A header, maybe through a regex.
    Header(String, Option<Regex>),
    /// A regex over the body.
    BodyRegex(Regex),
}

/// Assertions ready to run: those on the response (shared with `builtin:http-check`,
/// in the SDK), then JSON paths of its body.
#[derive(Debug)]
pub struct Expect {
    /// Status, latency, headers and body texts.
    pub response: ResponseExpect,
    /// JSON path assertions.
    pub json: Vec<JsonCheck>,
}

/// A JSON assertion ready to run.
#[derive(Debug)]
pub struct JsonCheck {
    /// The path as written.
    pub text: String,
    /// The parsed path.
    pub path: JsonPath,
    /// See [`JsonExpect`].
    pub equals: Option<serde_json::Value>,
    /// See [`JsonExpect`].
    pub exists: Option<bool>,
    /// See [`JsonExpect`].
    pub length: Option<Comparison>,
    /// See [`JsonExpect`].
    pub value: Option<Comparison>,
    /// See [`JsonExpect`].
    pub matches: Option<Regex>,
    /// See [`JsonExpect`].
    pub count: Option<Comparison>,
}

fn invalid(at: &str, message: impl std::fmt::Display) -> RunError {
    RunError::invalid_config(format!("with.{at}: {message}"))
}

fn regex_at(at: &str, text: &str) -> Result<Regex, RunError> {
    Regex::new(text).map_err(|e| invalid(at, format!("invalid regex: {e}")))
}

fn path_at(at: &str, text: &str) -> Result<JsonPath, RunError> {
    JsonPath::parse(text).map_err(|e| invalid(at, format!("invalid JSONPath `{text}`: {e}")))
}

/// Check `config` beyond its schema and make it ready to run.
pub fn prepare(config: &Config) -> Result<Prepared, RunError> {
    if config.checks.is_empty() {
        return Err(invalid(
            "checks",
            "no checks: add at least one `[[checks]]`",
        ));
    }
    let default_delay = config
        .retry_delay
        .map(|d| d.0)
        .unwrap_or(std::time::Duration::from_secs(1));
    let mut names = std::collections::BTreeSet::new();
    let mut checks = Vec::new();
    for (ci, check) in config.checks.iter().enumerate() {
        let at = format!("checks[{ci}]");
        if check.name.trim().is_empty() {
            return Err(invalid(&format!("{at}.name"), "the name is empty"));
        }
        if !names.insert(check.name.clone()) {
            return Err(invalid(
                &format!("{at}.name"),
                format!("two checks are named `{}`", check.name),
            ));
        }
        if check.requests.is_empty() {
            return Err(invalid(
                &format!("{at}.requests"),
                "the check has no requests",
            ));
        }
        let mut captured: Vec<String> = Vec::new();
        let mut steps = Vec::new();
        for (ri, request) in check.requests.iter().enumerate() {
            let at = format!("{at}.requests[{ri}]");
            steps.push(prepare_step(request, ri, &at, &mut captured)?);
        }
        checks.push(Check {
            name: check.name.clone(),
            requests: steps,
            retries: check.retries.unwrap_or(config.retries),
            retry_delay: check.retry_delay.map(|d| d.0).unwrap_or(default_delay),
        });
    }
    Ok(Prepared { checks })
}

fn prepare_step(
    request: &RequestSpec,
    index: usize,
    at: &str,
    captured: &mut Vec<String>,
) -> Result<Step, RunError> {
    let name = request
        .name
        .clone()
        .unwrap_or_else(|| format!("request-{}", index + 1));
    let template = |key: &str, text: &str| -> Result<Template, RunError> {
        let t = Template::parse(text).map_err(|e| invalid(&format!("{at}.{key}"), e))?;
        t.check_names(captured)
            .map_err(|e| invalid(&format!("{at}.{key}"), e))?;
        Ok(t)
    };
    let url = template("url", &request.url)?;
    if !(request.url.starts_with("http://")
        || request.url.starts_with("https://")
        || request.url.starts_with("{{"))
    {
        return Err(invalid(
            &format!("{at}.url"),
            format!("`{}` is not an http:// or https:// URL", request.url),
        ));
    }
    let mut headers = Vec::new();
    for (k, v) in &request.headers {
        headers.push((k.clone(), template(&format!("headers.{k}"), v)?));
    }
    let body = match (&request.body, &request.json) {
        (Some(_), Some(_)) => {
            return Err(invalid(at, "give `body` or `json`, not both"));
        }
        (Some(text), None) => Body::Text(template("body", text)?),
        (None, Some(json)) => {
            check_json_templates(json, &format!("{at}.json"), captured)?;
            if !request
                .headers
                .keys()
                .any(|k| k.eq_ignore_ascii_case("content-type"))
            {
                headers.push((
                    "content-type".into(),
                    Template::parse("application/json").expect("no braces"),
                ));
            }
            Body::Json(json.clone())
        }
        (None, None) => Body::None,
    };
    let mut captures = Vec::new();
    for (cname, spec) in &request.capture {
        let cat = format!("{at}.capture.{cname}");
        if cname.is_empty() || cname.starts_with("secret.") || cname.contains(['{', '}']) {
            return Err(invalid(
                &cat,
                "a capture name must not be empty, start with `secret.` or hold braces",
            ));
        }
        let capture = match (&spec.json_path, &spec.header, &spec.regex) {
            (Some(path), None, None) => {
                Capture::JsonPath(path_at(&format!("{cat}.json-path"), path)?, path.clone())
            }
            (None, Some(header), regex) => Capture::Header(
                header.clone(),
                regex
                    .as_deref()
                    .map(|r| regex_at(&format!("{cat}.regex"), r))
                    .transpose()?,
            ),
            (None, None, Some(regex)) => {
                Capture::BodyRegex(regex_at(&format!("{cat}.regex"), regex)?)
            }
            _ => {
                return Err(invalid(
                    &cat,
                    "give `json-path`, `header` (optionally with `regex`) or `regex`",
                ));
            }
        };
        captures.push((cname.clone(), capture));
    }
    let expect = prepare_expect(&request.expect, &format!("{at}.expect"))?;
    captured.extend(captures.iter().map(|(n, _)| n.clone()));
    Ok(Step {
        name,
        method: request.method.to_ascii_uppercase(),
        url,
        headers,
        body,
        timeout: request.timeout.map(|d| d.0),
        captures,
        expect,
    })
}

fn check_json_templates(
    value: &serde_json::Value,
    at: &str,
    captured: &[String],
) -> Result<(), RunError> {
    match value {
        serde_json::Value::String(s) => {
            let t = Template::parse(s).map_err(|e| invalid(at, e))?;
            t.check_names(captured).map_err(|e| invalid(at, e))
        }
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_json_templates(v, &format!("{at}[{i}]"), captured)),
        serde_json::Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| check_json_templates(v, &format!("{at}.{k}"), captured)),
        _ => Ok(()),
    }
}

fn prepare_expect(expect: &ExpectSpec, at: &str) -> Result<Expect, RunError> {
    let mut headers = Vec::new();
    for (name, rule) in &expect.headers {
        let hat = format!("{at}.headers.{name}");
        let check = match rule {
            HeaderExpect::Equals(text) => HeaderCheck::Equals(text.clone()),
            HeaderExpect::Rule(rule) => HeaderCheck::Rule {
                contains: rule.contains.clone(),
                matches: rule
                    .matches
                    .as_deref()
                    .map(|r| regex_at(&format!("{hat}.matches"), r))
                    .transpose()?,
                present: rule.present.unwrap_or(true),
            },
        };
        headers.push((name.clone(), check));
    }
    let mut json = Vec::new();
    for (i, j) in expect.json.iter().enumerate() {
        let jat = format!("{at}.json[{i}]");
        json.push(JsonCheck {
            text: j.path.clone(),
            path: path_at(&format!("{jat}.path"), &j.path)?,
            equals: j.equals.clone(),
            exists: j.exists,
            length: j.length,
            value: j.value,
            matches: j
                .matches
                .as_deref()
                .map(|r| regex_at(&format!("{jat}.matches"), r))
                .transpose()?,
            count: j.count,
        });
    }
    Ok(Expect {
        response: ResponseExpect {
            status: expect.status.clone().unwrap_or_else(StatusSet::success),
            max_latency: expect.max_latency,
            headers,
            body_contains: expect.body_contains.clone(),
            body_not_contains: expect.body_not_contains.clone(),
            body_matches: expect
                .body_matches
                .as_deref()
                .map(|r| regex_at(&format!("{at}.body-matches"), r))
                .transpose()?,
        },
        json,
    })
}
