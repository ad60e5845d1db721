//! Request templates and outcomes: what each iteration sends (a template chosen by weight
//! with a seeded generator, its `{{variables}}` substituted once up front), which statuses
//! it expects, and how a finished request is classified.

use std::collections::BTreeMap;

/// One request template as the pipeline writes it.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RequestSpec {
    /// A name for reports; defaults to `METHOD url`.
    #[serde(default)]
    pub name: Option<String>,
    /// HTTP method, `GET` unless given.
    #[serde(default = "default_method")]
    pub method: String,
    /// The URL; may contain `{{variable}}`s such as `{{version}}`.
    pub url: String,
    /// Request headers; values may contain `{{variable}}`s.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body; may contain `{{variable}}`s.
    #[serde(default)]
    pub body: Option<String>,
    /// Relative share of iterations that send this request (default 1).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Status classes or codes that count as success: `"2xx"`, `"3xx"`, `"404"`
    /// (default `["2xx", "3xx"]`, as k6's `expected_response`).
    #[serde(default = "default_expect")]
    pub expect: Vec<String>,
}

fn default_method() -> String {
    "GET".to_string()
}
fn default_weight() -> u32 {
    1
}
fn default_expect() -> Vec<String> {
    vec!["2xx".to_string(), "3xx".to_string()]
}

/// A template that could not be prepared.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// No request templates at all.
    #[error(
        "requests: at least one request is needed, e.g. requests = [{{ url = \"http://127.0.0.1:8080/\" }}]"
    )]
    Empty,
    /// Every weight is zero, or their sum overflows.
    #[error(
        "requests: the weights add up to {0}; give at least one request a weight of 1 or more (and keep the sum below 2^32)"
    )]
    Weights(u64),
    /// A `{{variable}}` that is not defined.
    #[error("requests[{index}].{field}: unknown variable {{{{{name}}}}}; defined: {defined}")]
    UnknownVariable {
        /// Index of the template.
        index: usize,
        /// `url`, `body` or `headers.<name>`.
        field: String,
        /// The variable.
        name: String,
        /// Variables that are defined.
        defined: String,
    },
    /// A `{{` without its `}}`.
    #[error("requests[{index}].{field}: \"{{{{\" is not closed by \"}}}}\"")]
    Unclosed {
        /// Index of the template.
        index: usize,
        /// `url`, `body` or `headers.<name>`.
        field: String,
    },
    /// An `expect` entry that is neither a class nor a code.
    #[error(
        "requests[{index}].expect: \"{entry}\" is not a status class or code; valid: \"1xx\" to \"5xx\" or a code from 100 to 599"
    )]
    Expect {
        /// Index of the template.
        index: usize,
        /// The entry.
        entry: String,
    },
    /// An empty or malformed method or URL.
    #[error("requests[{index}].{field}: {problem}")]
    Invalid {
        /// Index of the template.
        index: usize,
        /// The field.
        field: String,
        /// What is wrong.
        problem: String,
    },
}

/// What a template accepts as success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// A whole class: 2 means 200-299.
    Class(u16),
    /// One status code.
    Code(u16),
}

impl Expected {
    fn parse(entry: &str) -> Option<Expected> {
        let e = entry.trim().to_ascii_lowercase();
        if let Some(d) = e.strip_suffix("xx") {
            return match d {
                "1" | "2" | "3" | "4" | "5" => Some(Expected::Class(d.parse().ok()?)),
                _ => None,
            };
        }
        let code: u16 = e.parse().ok()?;
        (100..=599).contains(&code).then_some(Expected::Code(code))
    }

    fn matches(self, status: u16) -> bool {
        match self {
            Expected::Class(c) => status / 100 == c,
            Expected::Code(c) => status == c,
        }
    }
}

/// A template ready to send: variables substituted.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Name for reports.
    pub name: String,
    /// HTTP method.
    pub method: String,
    /// The URL.
    pub url: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Body, if any.
    pub body: Option<String>,
    /// Relative weight.
    pub weight: u32,
    /// What counts as success.
    pub expect: Vec<Expected>,
}

impl Request {
    /// Whether `status` is one this request expects.
    pub fn expects(&self, status: u16) -> bool {
        self.expect.iter().any(|e| e.matches(status))
    }
}

/// The prepared templates and the seeded weighted choice among them.
#[derive(Debug, Clone)]
pub struct Templates {
    requests: Vec<Request>,
    /// Cumulative weights, for a binary search.
    cumulative: Vec<u64>,
    total: u64,
    rng: SplitMix64,
}

impl Templates {
    /// Prepares `specs` with `variables` (e.g. `version` → the artifact's version) and a
    /// seed for the weighted choice: the same seed gives the same sequence of templates.
    pub fn new(
        specs: &[RequestSpec],
        variables: &BTreeMap<String, String>,
        seed: u64,
    ) -> Result<Templates, TemplateError> {
        if specs.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut requests = Vec::with_capacity(specs.len());
        for (index, spec) in specs.iter().enumerate() {
            let invalid = |field: &str, problem: &str| TemplateError::Invalid {
                index,
                field: field.to_string(),
                problem: problem.to_string(),
            };
            let method = spec.method.trim().to_ascii_uppercase();
            if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(invalid(
                    "method",
                    "a method is letters only, e.g. GET or POST",
                ));
            }
            let url = substitute(&spec.url, variables, index, "url")?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    "url",
                    &format!("\"{url}\" does not start with http:// or https://"),
                ));
            }
            let mut headers = Vec::with_capacity(spec.headers.len());
            for (name, value) in &spec.headers {
                let field = format!("headers.{name}");
                headers.push((name.clone(), substitute(value, variables, index, &field)?));
            }
            let body = match &spec.body {
                Some(b) => Some(substitute(b, variables, index, "body")?),
                None => None,
            };
            let mut expect = Vec::with_capacity(spec.expect.len());
            for entry in &spec.expect {
                expect.push(Expected::parse(entry).ok_or_else(|| TemplateError::Expect {
                    index,
                    entry: entry.clone(),
                })?);
            }
            if expect.is_empty() {
                return Err(invalid(
                    "expect",
                    "list at least one status class, e.g. [\"2xx\"]",
                ));
            }
            let name = spec
                .name
                .clone()
                .unwrap_or_else(|| format!("{method} {url}"));
            requests.push(Request {
                name,
                method,
                url,
                headers,
                body,
                weight: spec.weight,
                expect,
            });
        }
        let mut cumulative = Vec::with_capacity(requests.len());
        let mut total = 0u64;
        for r in &requests {
            total += u64::from(r.weight);
            cumulative.push(total);
        }
        if total == 0 || total > u64::from(u32::MAX) {
            return Err(TemplateError::Weights(total));
        }
        Ok(Templates {
            requests,
            cumulative,
            total,
            rng: SplitMix64(seed),
        })
    }

    /// The prepared requests, by index.
    pub fn requests(&self) -> &[Request] {
        &self.requests
    }

    /// Chooses the next template by weight.
    pub fn pick(&mut self) -> usize {
        if self.requests.len() == 1 {
            return 0;
        }
        let x = self.rng.below(self.total);
        self.cumulative.partition_point(|&c| c <= x)
    }
}

/// Replaces every `{{ name }}` in `text`.
fn substitute(
    text: &str,
    variables: &BTreeMap<String, String>,
    index: usize,
    field: &str,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| TemplateError::Unclosed {
            index,
            field: field.to_string(),
        })?;
        let name = after[..close].trim();
        let value = variables
            .get(name)
            .ok_or_else(|| TemplateError::UnknownVariable {
                index,
                field: field.to_string(),
                name: name.to_string(),
                defined: if variables.is_empty() {
                    "none".to_string()
                } else {
                    variables.keys().cloned().collect::<Vec<_>>().join(", ")
                },
            })?;
        out.push_str(value);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fast generator whose sequence for a seed
/// never changes with a dependency's version, which is what a reproducible mix needs.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias for n < 2^32 is below 2^-32).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// How a request ended, as the transport saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A response with this status.
    Status(u16),
    /// No (complete) response within the timeout.
    Timeout,
    /// The connection was refused or reset while connecting.
    ConnectRefused,
    /// The egress policy refused the address (the message names the grant to add).
    Denied(String),
    /// Any other transport error.
    Other(String),
}

/// The class a finished request is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// 1xx.
    #[serde(rename = "1xx")]
    Informational,
    /// 2xx.
    #[serde(rename = "2xx")]
    Success,
    /// 3xx.
    #[serde(rename = "3xx")]
    Redirect,
    /// 4xx.
    #[serde(rename = "4xx")]
    ClientError,
    /// 5xx.
    #[serde(rename = "5xx")]
    ServerError,
    /// A status outside 100-599.
    #[serde(rename = "invalid-status")]
    InvalidStatus,
    /// Timed out.
    Timeout,
    /// Connection refused.
    ConnectRefused,
    /// Denied by the egress policy.
    Denied,
    /// Other transport error.
    Other,
}

impl Class {
    /// The class's name in reports: `2xx`, `timeout`, `connect-refused`...
    pub fn name(self) -> &'static str {
        match self {
            Class::Informational => "1xx",
            Class::Success => "2xx",
            Class::Redirect => "3xx",
            Class::ClientError => "4xx",
            Class::ServerError => "5xx",
            Class::InvalidStatus => "invalid-status",
            Class::Timeout => "timeout",
            Class::ConnectRefused => "connect-refused",
            Class::Denied => "denied",
            Class::Other => "other",
        }
    }
}

impl Outcome {
    /// The class it is counted under.
    pub fn class(&self) -> Class {
        match self {
            Outcome::Status(s) => match s / 100 {
                1 => Class::Informational,
                2 => Class::Success,
                3 => Class::Redirect,
                4 => Class::ClientError,
                5 => Class::ServerError,
                _ => Class::InvalidStatus,
            },
            Outcome::Timeout => Class::Timeout,
            Outcome::ConnectRefused => Class::ConnectRefused,
            Outcome::Denied(_) => Class::Denied,
            Outcome::Other(_) => Class::Other,
        }
    }

    /// Whether `request` counts this outcome as a success.
    pub fn succeeded(&self, request: &Request) -> bool {
        match self {
            Outcome::Status(s) => request.expects(*s),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str, weight: u32) -> RequestSpec {
        RequestSpec {
            name: None,
            method: "get".into(),
            url: url.into(),
            headers: BTreeMap::new(),
            body: None,
            weight,
            expect: default_expect(),
        }
    }

    fn vars() -> BTreeMap<String, String> {
        BTreeMap::from([("version".to_string(), "1.4.2".to_string())])
    }

    #[test]
    fn substitutes_variables_everywhere() {
        let mut s = spec("http://h/{{ version }}/x", 1);
        s.headers.insert("x-version".into(), "v{{version}}".into());
        s.body = Some("{\"v\":\"{{version}}\"}".into());
        let t = Templates::new(&[s], &vars(), 1).unwrap();
        let r = &t.requests()[0];
        assert_eq!(r.url, "http://h/1.4.2/x");
        assert_eq!(r.method, "GET");
        assert_eq!(r.headers, vec![("x-version".into(), "v1.4.2".into())]);
        assert_eq!(r.body.as_deref(), Some("{\"v\":\"1.4.2\"}"));
        assert_eq!(r.name, "GET http://h/1.4.2/x");
    }

    #[test]
    fn template_errors_name_the_request_and_field() {
        let e = Templates::new(
            &[spec("http://h/", 1), spec("http://h/{{commit}}", 1)],
            &vars(),
            1,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("requests[1].url") && e.contains("{{commit}}") && e.contains("version"),
            "{e}"
        );
        let e = Templates::new(&[spec("http://h/{{version", 1)], &vars(), 1).unwrap_err();
        assert!(matches!(e, TemplateError::Unclosed { index: 0, .. }));
        let e = Templates::new(&[spec("ftp://h/", 1)], &vars(), 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("http://"), "{e}");
        let mut s = spec("http://h/", 1);
        s.expect = vec!["2xy".into()];
        let e = Templates::new(&[s], &vars(), 1).unwrap_err().to_string();
        assert!(e.contains("\"2xy\"") && e.contains("1xx"), "{e}");
        assert_eq!(
            Templates::new(&[], &vars(), 1).unwrap_err(),
            TemplateError::Empty
        );
        assert_eq!(
            Templates::new(&[spec("http://h/", 0)], &vars(), 1).unwrap_err(),
            TemplateError::Weights(0)
        );
    }

    #[test]
    fn weights_are_respected_and_the_mix_is_reproducible() {
        let specs = [
            spec("http://h/a", 1),
            spec("http://h/b", 3),
            spec("http://h/c", 0),
            spec("http://h/d", 6),
        ];
        let mut t = Templates::new(&specs, &vars(), 42).unwrap();
        let mut counts = [0u32; 4];
        let picks: Vec<usize> = (0..100_000).map(|_| t.pick()).collect();
        for &p in &picks {
            counts[p] += 1;
        }
        assert_eq!(counts[2], 0, "weight 0 is never chosen");
        for (i, share) in [(0, 0.1), (1, 0.3), (3, 0.6)] {
            let got = f64::from(counts[i]) / 100_000.0;
            assert!((got - share).abs() < 0.01, "template {i}: {got} vs {share}");
        }
        let mut again = Templates::new(&specs, &vars(), 42).unwrap();
        assert!(
            picks.iter().all(|&p| again.pick() == p),
            "same seed, same sequence"
        );
        let mut other = Templates::new(&specs, &vars(), 43).unwrap();
        assert!(picks.iter().take(100).any(|&p| other.pick() != p));
    }

    #[test]
    fn outcomes_are_classified_against_expectations() {
        let mut s = spec("http://h/", 1);
        s.expect = vec!["2xx".into(), "404".into()];
        let t = Templates::new(&[s], &vars(), 1).unwrap();
        let r = &t.requests()[0];
        assert!(Outcome::Status(204).succeeded(r));
        assert!(Outcome::Status(404).succeeded(r));
        assert!(!Outcome::Status(403).succeeded(r));
        assert!(!Outcome::Status(301).succeeded(r));
        assert!(!Outcome::Timeout.succeeded(r));
        assert_eq!(Outcome::Status(503).class().name(), "5xx");
        assert_eq!(Outcome::ConnectRefused.class().name(), "connect-refused");
        assert_eq!(Outcome::Denied("net".into()).class().name(), "denied");
        assert_eq!(Outcome::Status(99).class(), Class::InvalidStatus);
    }
}
