//! Assertions on one HTTP response, shared by the built-in monitors that request a
//! service (`builtin:http-check`, and each request of `builtin:canary`): the allowed
//! statuses, a latency bound, headers, and texts or a regular expression the body must
//! (not) contain. [`ResponseExpect::first_failure`] checks them in that order and names
//! the first that does not hold, in the words a data point's detail uses.

use std::time::Duration;

use regex::Regex;

use super::{StatusSet, excerpt, format_duration};
use crate::HumanDuration;
use crate::http::Response;

/// What a response must look like to count as healthy.
#[derive(Debug)]
pub struct ResponseExpect {
    /// Allowed statuses.
    pub status: StatusSet,
    /// The longest the whole response may take.
    pub max_latency: Option<HumanDuration>,
    /// Header assertions, checked in this order.
    pub headers: Vec<(String, HeaderCheck)>,
    /// Texts the body must contain.
    pub body_contains: Vec<String>,
    /// Texts the body must not contain.
    pub body_not_contains: Vec<String>,
    /// A regular expression the body must match.
    pub body_matches: Option<Regex>,
}

impl Default for ResponseExpect {
    /// Any 2xx status, nothing else asked.
    fn default() -> ResponseExpect {
        ResponseExpect {
            status: StatusSet::success(),
            max_latency: None,
            headers: Vec::new(),
            body_contains: Vec::new(),
            body_not_contains: Vec::new(),
            body_matches: None,
        }
    }
}

/// An assertion on one header.
#[derive(Debug)]
pub enum HeaderCheck {
    /// The value must equal this text.
    Equals(String),
    /// Present (and then containing, matching) or absent.
    Rule {
        /// The value must contain this text.
        contains: Option<String>,
        /// The value must match this regular expression.
        matches: Option<Regex>,
        /// Must be present (true) or absent (false).
        present: bool,
    },
}

impl ResponseExpect {
    /// The first assertion `response` (which took `latency`) breaks, in the order
    /// status, latency, headers, body; `None` when every one holds.
    pub fn first_failure(&self, response: &Response, latency: Duration) -> Option<String> {
        if !self.status.contains(response.status) {
            return Some(format!(
                "status {}, expected {}",
                response.status, self.status
            ));
        }
        if let Some(max) = self.max_latency
            && latency > max.0
        {
            return Some(format!(
                "latency {}, expected at most {max}",
                format_duration(latency)
            ));
        }
        for (name, check) in &self.headers {
            if let Some(what) = check.failure(name, response.header(name)) {
                return Some(what);
            }
        }
        if self.body_contains.is_empty()
            && self.body_not_contains.is_empty()
            && self.body_matches.is_none()
        {
            return None;
        }
        let body = response.text();
        for needle in &self.body_contains {
            if !body.contains(needle.as_str()) {
                return Some(format!(
                    "body does not contain {needle:?} (body: {})",
                    excerpt(&body)
                ));
            }
        }
        for needle in &self.body_not_contains {
            if body.contains(needle.as_str()) {
                return Some(format!("body contains {needle:?}"));
            }
        }
        if let Some(re) = &self.body_matches
            && !re.is_match(&body)
        {
            return Some(format!(
                "body does not match /{}/ (body: {})",
                re.as_str(),
                excerpt(&body)
            ));
        }
        None
    }
}

impl HeaderCheck {
    /// Why header `name` with `value` (`None`: absent) breaks this check.
    pub fn failure(&self, name: &str, value: Option<&str>) -> Option<String> {
        match (self, value) {
            (HeaderCheck::Equals(want), Some(got)) if got == want => None,
            (HeaderCheck::Equals(want), Some(got)) => {
                Some(format!("header {name} expected {want:?}, got {got:?}"))
            }
            (HeaderCheck::Equals(_), None) => Some(format!("header {name} missing")),
            (HeaderCheck::Rule { present: false, .. }, None) => None,
            (HeaderCheck::Rule { present: false, .. }, Some(got)) => {
                Some(format!("header {name} expected absent, got {got:?}"))
            }
            (HeaderCheck::Rule { .. }, None) => Some(format!("header {name} missing")),
            (
                HeaderCheck::Rule {
                    contains, matches, ..
                },
                Some(got),
            ) => {
                if let Some(c) = contains
                    && !got.contains(c.as_str())
                {
                    return Some(format!(
                        "header {name} expected to contain {c:?}, got {got:?}"
                    ));
                }
                if let Some(re) = matches
                    && !re.is_match(got)
                {
                    return Some(format!(
                        "header {name} expected to match /{}/, got {got:?}",
                        re.as_str()
                    ));
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn assertions_are_checked_in_order_and_the_first_broken_one_is_named() {
        let expect = ResponseExpect {
            max_latency: Some(HumanDuration(Duration::from_millis(300))),
            headers: vec![(
                "content-type".into(),
                HeaderCheck::Equals("text/plain".into()),
            )],
            body_contains: vec!["ok".into()],
            body_not_contains: vec!["error".into()],
            body_matches: Some(Regex::new("^ok").unwrap()),
            ..ResponseExpect::default()
        };
        let good = response(200, &[("content-type", "text/plain")], "ok");
        assert_eq!(expect.first_failure(&good, Duration::from_millis(10)), None);
        let cases = [
            (response(503, &[], "ok"), 10, "status 503, expected 2xx"),
            (
                response(200, &[("content-type", "text/plain")], "ok"),
                400,
                "latency 400ms, expected at most 300ms",
            ),
            (response(200, &[], "ok"), 10, "header content-type missing"),
            (
                response(200, &[("content-type", "text/plain")], "fine"),
                10,
                "body does not contain \"ok\" (body: \"fine\")",
            ),
            (
                response(200, &[("content-type", "text/plain")], "ok, error"),
                10,
                "body contains \"error\"",
            ),
            (
                response(200, &[("content-type", "text/plain")], "not ok"),
                10,
                "body does not match /^ok/ (body: \"not ok\")",
            ),
        ];
        for (r, ms, want) in cases {
            assert_eq!(
                expect
                    .first_failure(&r, Duration::from_millis(ms))
                    .as_deref(),
                Some(want)
            );
        }
    }

    #[test]
    fn header_rules_cover_absence_contains_and_regex() {
        let absent = HeaderCheck::Rule {
            contains: None,
            matches: None,
            present: false,
        };
        assert_eq!(absent.failure("x-debug", None), None);
        assert_eq!(
            absent.failure("x-debug", Some("1")).as_deref(),
            Some("header x-debug expected absent, got \"1\"")
        );
        let rule = HeaderCheck::Rule {
            contains: Some("json".into()),
            matches: Some(Regex::new("^application/").unwrap()),
            present: true,
        };
        assert_eq!(rule.failure("content-type", Some("application/json")), None);
        assert_eq!(
            rule.failure("content-type", Some("text/html")).as_deref(),
            Some("header content-type expected to contain \"json\", got \"text/html\"")
        );
        assert_eq!(
            rule.failure("content-type", Some("text/json")).as_deref(),
            Some("header content-type expected to match /^application//, got \"text/json\"")
        );
    }
}
