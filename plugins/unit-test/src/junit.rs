//! JUnit XML, in the dialects real tools write: the Jenkins/Ant shape
//! (`<testsuites>` ⊃ `<testsuite>` ⊃ `<testcase>`, suites may nest, `<testsuites>` may
//! be missing), with the Surefire/nextest rerun extensions `<flakyFailure>`,
//! `<flakyError>`, `<rerunFailure>` and `<rerunError>`.
//!
//! A test case passes when it has no result element; `<failure>` and `<error>` fail
//! it; `<skipped>` skips it; `<flakyFailure>`/`<flakyError>` without a final failure
//! make it flaky, each one a failed attempt.

use std::time::Duration;

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use sluice_sdk::{TestAttempt, TestCase, TestStatus};

/// Parse a JUnit XML document into test cases. The suite of a case is its `classname`
/// when it has one (pytest, Surefire, nextest all set it), else the enclosing
/// `<testsuite>`'s name.
pub fn parse(xml: &str) -> Result<Vec<TestCase>, String> {
    let mut reader = Reader::from_str(xml);
    let mut suites: Vec<String> = Vec::new();
    let mut cases = Vec::new();
    let mut current: Option<CaseBuilder> = None;
    // The element whose text is being collected, inside the current case.
    let mut element: Option<Element> = None;
    let mut text = String::new();

    loop {
        let event = reader
            .read_event()
            .map_err(|err| format!("invalid XML at byte {}: {err}", reader.error_position()))?;
        match event {
            Event::Start(start) => {
                open(&start, &mut suites, &mut current, &mut element, &mut text)?;
            }
            Event::Empty(start) => {
                open(&start, &mut suites, &mut current, &mut element, &mut text)?;
                if start.name().as_ref() == "testcase" {
                    if let Some(case) = current.take() {
                        cases.push(case.finish());
                    }
                } else if start.name().as_ref() == "testsuite" {
                    suites.pop();
                } else {
                    close_element(&mut current, &mut element, &mut text);
                }
            }
            Event::End(end) => match end.name().as_ref() {
                "testsuite" => {
                    suites.pop();
                }
                "testcase" => {
                    if let Some(case) = current.take() {
                        cases.push(case.finish());
                    }
                }
                name => {
                    if element.as_ref().is_some_and(|open| open.tag == name) {
                        close_element(&mut current, &mut element, &mut text);
                    }
                }
            },
            Event::Text(content) if element.is_some() => {
                text.push_str(&content.xml10_content());
            }
            Event::CData(content) if element.is_some() => {
                text.push_str(&content.xml10_content());
            }
            Event::GeneralRef(reference) if element.is_some() => {
                if let Ok(Some(ch)) = reference.resolve_char_ref() {
                    text.push(ch);
                } else {
                    let name = reference.xml10_content();
                    match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(value) => text.push_str(value),
                        None => {
                            text.push('&');
                            text.push_str(&name);
                            text.push(';');
                        }
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if current.is_some() {
        return Err("the document ends inside a <testcase>".into());
    }
    Ok(cases)
}

/// An element inside a `<testcase>` whose text matters.
struct Element {
    tag: String,
    kind: Kind,
    message: Option<String>,
    /// Set for `system-out`/`system-err` nested in a rerun element.
    nested_in_rerun: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Failure,
    Skipped,
    Flaky,
    Rerun,
    SystemOut,
    SystemErr,
}

/// A `<flakyFailure>`-like element being read.
struct Rerun {
    tag: String,
    kind: Kind,
    message: Option<String>,
    duration: Duration,
    detail: String,
}

struct CaseBuilder {
    suite: String,
    name: String,
    duration: Duration,
    failure: Option<(Option<String>, String)>,
    skipped: Option<Option<String>>,
    flaky: Vec<TestAttempt>,
    reruns: Vec<TestAttempt>,
    stdout: String,
    stderr: String,
    /// The rerun element being read, whose nested system-out/err belong to it.
    open_rerun: Option<Rerun>,
}

impl CaseBuilder {
    fn finish(self) -> TestCase {
        let mut output = String::new();
        let mut status = TestStatus::Passed;
        let mut message = None;
        if let Some((failure_message, detail)) = self.failure {
            status = TestStatus::Failed;
            message = failure_message.or_else(|| first_line(&detail));
            output.push_str(detail.trim_end());
        } else if let Some(skip_message) = self.skipped {
            status = TestStatus::Skipped;
            message = skip_message;
        } else if !self.flaky.is_empty() {
            status = TestStatus::Flaky;
        }
        for stream in [&self.stdout, &self.stderr] {
            if !stream.trim().is_empty() {
                if !output.is_empty() {
                    output.push_str("\n\n");
                }
                output.push_str(stream.trim_end());
            }
        }
        let mut case = TestCase::new(self.suite, self.name, status).with_duration(self.duration);
        case.message = message;
        if !output.is_empty() {
            case.output = Some(output);
        }
        // A test that failed its reruns too is still a failure; its earlier attempts
        // are in `reruns` and only a flaky test carries attempts.
        if status == TestStatus::Flaky {
            case.flaky_attempts = self.flaky;
        } else if status == TestStatus::Failed && !self.reruns.is_empty() {
            let runs = self.reruns.len() + 1;
            case.message = Some(format!(
                "{} (failed all {runs} attempts)",
                case.message.unwrap_or_else(|| "failed".into())
            ));
        }
        case
    }
}

fn open(
    start: &BytesStart<'_>,
    suites: &mut Vec<String>,
    current: &mut Option<CaseBuilder>,
    element: &mut Option<Element>,
    text: &mut String,
) -> Result<(), String> {
    let tag = start.name().as_ref().to_owned();
    let attr = |key: &str| -> Result<Option<String>, String> {
        for attribute in start.attributes() {
            let attribute =
                attribute.map_err(|err| format!("invalid attribute in <{tag}>: {err}"))?;
            if attribute.key.as_ref() == key {
                let value = attribute
                    .normalized_value(XmlVersion::Implicit1_0)
                    .map_err(|err| format!("invalid `{key}` in <{tag}>: {err}"))?;
                return Ok(Some(value.into_owned()));
            }
        }
        Ok(None)
    };
    match tag.as_str() {
        "testsuite" => suites.push(attr("name")?.unwrap_or_default()),
        "testcase" => {
            let name = attr("name")?.ok_or("a <testcase> has no `name`")?;
            let suite = attr("classname")?
                .filter(|classname| !classname.is_empty())
                .or_else(|| suites.last().cloned().filter(|suite| !suite.is_empty()))
                .unwrap_or_else(|| "tests".into());
            *current = Some(CaseBuilder {
                suite,
                name,
                duration: seconds(attr("time")?.as_deref()),
                failure: None,
                skipped: None,
                flaky: Vec::new(),
                reruns: Vec::new(),
                stdout: String::new(),
                stderr: String::new(),
                open_rerun: None,
            });
        }
        _ => {
            let Some(case) = current.as_mut() else {
                return Ok(());
            };
            let kind = match tag.as_str() {
                "failure" | "error" => Kind::Failure,
                "skipped" => Kind::Skipped,
                "flakyFailure" | "flakyError" => Kind::Flaky,
                "rerunFailure" | "rerunError" => Kind::Rerun,
                "system-out" => Kind::SystemOut,
                "system-err" => Kind::SystemErr,
                _ => return Ok(()),
            };
            let message = attr("message")?;
            let duration = seconds(attr("time")?.as_deref());
            if matches!(kind, Kind::Flaky | Kind::Rerun) {
                case.open_rerun = Some(Rerun {
                    tag: tag.clone(),
                    kind,
                    message: message.clone(),
                    duration,
                    detail: String::new(),
                });
            }
            let nested_in_rerun =
                matches!(kind, Kind::SystemOut | Kind::SystemErr) && case.open_rerun.is_some();
            // Text of the enclosing rerun element read so far stays with it.
            if nested_in_rerun && let Some(rerun) = case.open_rerun.as_mut() {
                rerun.detail.push_str(text);
            }
            text.clear();
            *element = Some(Element {
                tag,
                kind,
                message,
                nested_in_rerun,
            });
        }
    }
    Ok(())
}

fn close_element(
    current: &mut Option<CaseBuilder>,
    element: &mut Option<Element>,
    text: &mut String,
) {
    let (Some(case), Some(open)) = (current.as_mut(), element.take()) else {
        text.clear();
        return;
    };
    let body = std::mem::take(text);
    match open.kind {
        Kind::Failure => case.failure = Some((open.message, body)),
        Kind::Skipped => {
            case.skipped = Some(open.message.or_else(|| first_line(&body)));
        }
        Kind::SystemOut | Kind::SystemErr if open.nested_in_rerun => {
            if let Some(rerun) = case.open_rerun.as_mut() {
                if !body.trim().is_empty() {
                    rerun.detail.push('\n');
                    rerun.detail.push_str(body.trim_end());
                }
                // The rerun element is still open: collect the rest of its text.
                *element = Some(Element {
                    tag: rerun.tag.clone(),
                    kind: rerun.kind,
                    message: rerun.message.clone(),
                    nested_in_rerun: false,
                });
            }
        }
        Kind::SystemOut => case.stdout.push_str(&body),
        Kind::SystemErr => case.stderr.push_str(&body),
        Kind::Flaky | Kind::Rerun => {
            let Some(mut rerun) = case.open_rerun.take() else {
                return;
            };
            rerun.detail.push_str(&body);
            let message = rerun
                .message
                .or_else(|| first_line(&rerun.detail))
                .unwrap_or_default();
            let attempt = TestAttempt::new(message, rerun.detail.trim().to_owned(), rerun.duration);
            if rerun.kind == Kind::Flaky {
                case.flaky.push(attempt);
            } else {
                case.reruns.push(attempt);
            }
        }
    }
}

fn seconds(text: Option<&str>) -> Duration {
    text.and_then(|text| text.trim().replace(',', "").parse::<f64>().ok())
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .unwrap_or_default()
}

fn first_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_owned)
}
