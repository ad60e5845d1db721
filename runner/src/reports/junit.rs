//! `junit.xml`: every test case of the run, in the de-facto JUnit XML schema that CI
//! test tabs read (see `reference/plugins.md` §4.2).
//!
//! One `<testsuite>` per (step, suite), named `<stage>/<step>/<suite>`. A flaky test
//! (failed, then passed on a retry) is a passing `<testcase>` with one
//! `<flakyFailure>` per failed attempt, as Maven Surefire writes reruns; it does not
//! count as a failure.

use std::io::Cursor;

use quick_xml::Writer;
use quick_xml::events::{BytesCData, BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use crate::executor::RunResult;
use crate::host::bindings::types::{TestCase, TestStatus};

/// Counts of a group of test cases.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub tests: usize,
    pub failures: usize,
    pub skipped: usize,
    pub flaky: usize,
    pub duration_ms: u64,
}

impl Counts {
    /// Counts of `cases`.
    pub fn of<'a>(cases: impl IntoIterator<Item = &'a TestCase>) -> Counts {
        let mut c = Counts::default();
        for t in cases {
            c.tests += 1;
            c.duration_ms += t.duration_ms;
            match t.status {
                TestStatus::Failed => c.failures += 1,
                TestStatus::Skipped => c.skipped += 1,
                TestStatus::Flaky => c.flaky += 1,
                TestStatus::Passed => {}
            }
        }
        c
    }

    fn add(&mut self, other: Counts) {
        self.tests += other.tests;
        self.failures += other.failures;
        self.skipped += other.skipped;
        self.flaky += other.flaky;
        self.duration_ms += other.duration_ms;
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// Text that XML 1.0 can hold: control characters other than tab, newline and
/// carriage return are replaced (test output often contains ANSI escapes).
fn xml_text(s: &str) -> String {
    s.chars()
        .map(|c| {
            if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

/// CDATA cannot contain `]]>`; split it across two sections.
fn write_cdata(w: &mut Writer<Cursor<Vec<u8>>>, text: &str) {
    let text = xml_text(text);
    let mut parts = text.split("]]>").peekable();
    while let Some(part) = parts.next() {
        let chunk = if parts.peek().is_some() {
            format!("{part}]]")
        } else {
            part.to_string()
        };
        let rest_prefix = parts.peek().is_some();
        w.write_event(Event::CData(BytesCData::new(chunk)))
            .expect("writing to memory");
        if rest_prefix {
            w.write_event(Event::Text(BytesText::new(">")))
                .expect("writing to memory");
        }
    }
}

fn element<'a>(name: &'a str, attrs: &[(&str, String)]) -> BytesStart<'a> {
    let mut e = BytesStart::new(name);
    for (k, v) in attrs {
        e.push_attribute((*k, xml_text(v).as_str()));
    }
    e
}

/// Render the run's test cases as JUnit XML.
pub fn render(run: &RunResult) -> String {
    let mut suites: Vec<(String, Vec<&TestCase>)> = Vec::new();
    for step in &run.steps {
        let Some(report) = &step.report else { continue };
        for t in &report.test_cases {
            let name = if t.suite.is_empty() {
                format!("{}/{}", step.stage, step.step)
            } else {
                format!("{}/{}/{}", step.stage, step.step, t.suite)
            };
            match suites.iter_mut().find(|(n, _)| *n == name) {
                Some((_, cases)) => cases.push(t),
                None => suites.push((name, vec![t])),
            }
        }
    }
    let mut total = Counts::default();
    let counted: Vec<Counts> = suites
        .iter()
        .map(|(_, cases)| Counts::of(cases.iter().copied()))
        .collect();
    for c in &counted {
        total.add(*c);
    }
    let mut w = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 2);
    let ok = "writing to memory";
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .expect(ok);
    w.write_event(Event::Start(element(
        "testsuites",
        &[
            ("name", run.pipeline.clone()),
            ("tests", total.tests.to_string()),
            ("failures", total.failures.to_string()),
            ("errors", "0".into()),
            ("skipped", total.skipped.to_string()),
            ("time", seconds(total.duration_ms)),
            ("timestamp", run.started_at.clone()),
        ],
    )))
    .expect(ok);
    for ((name, cases), counts) in suites.iter().zip(counted) {
        w.write_event(Event::Start(element(
            "testsuite",
            &[
                ("name", name.clone()),
                ("tests", counts.tests.to_string()),
                ("failures", counts.failures.to_string()),
                ("errors", "0".into()),
                ("skipped", counts.skipped.to_string()),
                ("time", seconds(counts.duration_ms)),
                ("timestamp", run.started_at.clone()),
            ],
        )))
        .expect(ok);
        for t in cases {
            write_case(&mut w, name, t);
        }
        w.write_event(Event::End(BytesEnd::new("testsuite")))
            .expect(ok);
    }
    w.write_event(Event::End(BytesEnd::new("testsuites")))
        .expect(ok);
    let mut text = String::from_utf8(w.into_inner().into_inner()).expect("the writer wrote UTF-8");
    text.push('\n');
    text
}

fn write_case(w: &mut Writer<Cursor<Vec<u8>>>, suite: &str, t: &TestCase) {
    let ok = "writing to memory";
    let classname = if t.suite.is_empty() {
        suite.to_string()
    } else {
        t.suite.clone()
    };
    let start = element(
        "testcase",
        &[
            ("name", t.name.clone()),
            ("classname", classname),
            ("time", seconds(t.duration_ms)),
        ],
    );
    let has_children = !matches!(t.status, TestStatus::Passed)
        || t.output.is_some()
        || !t.flaky_attempts.is_empty();
    if !has_children {
        w.write_event(Event::Empty(start)).expect(ok);
        return;
    }
    w.write_event(Event::Start(start)).expect(ok);
    let message = t.message.clone().unwrap_or_default();
    match t.status {
        TestStatus::Failed => {
            let first = message.lines().next().unwrap_or("").to_string();
            w.write_event(Event::Start(element(
                "failure",
                &[("message", first), ("type", "failure".into())],
            )))
            .expect(ok);
            write_cdata(w, &message);
            w.write_event(Event::End(BytesEnd::new("failure")))
                .expect(ok);
        }
        TestStatus::Skipped => {
            w.write_event(Event::Empty(element("skipped", &[("message", message)])))
                .expect(ok);
        }
        TestStatus::Flaky | TestStatus::Passed => {}
    }
    for attempt in &t.flaky_attempts {
        let first = attempt.message.lines().next().unwrap_or("").to_string();
        w.write_event(Event::Start(element(
            "flakyFailure",
            &[
                ("message", first),
                ("type", "failure".into()),
                ("time", seconds(attempt.duration_ms)),
            ],
        )))
        .expect(ok);
        w.write_event(Event::Start(BytesStart::new("stackTrace")))
            .expect(ok);
        write_cdata(w, &attempt.message);
        w.write_event(Event::End(BytesEnd::new("stackTrace")))
            .expect(ok);
        if !attempt.output.is_empty() {
            w.write_event(Event::Start(BytesStart::new("system-out")))
                .expect(ok);
            write_cdata(w, &attempt.output);
            w.write_event(Event::End(BytesEnd::new("system-out")))
                .expect(ok);
        }
        w.write_event(Event::End(BytesEnd::new("flakyFailure")))
            .expect(ok);
    }
    if let Some(out) = &t.output {
        w.write_event(Event::Start(BytesStart::new("system-out")))
            .expect(ok);
        write_cdata(w, out);
        w.write_event(Event::End(BytesEnd::new("system-out")))
            .expect(ok);
    }
    w.write_event(Event::End(BytesEnd::new("testcase")))
        .expect(ok);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdata_terminator_is_split() {
        let mut w = Writer::new(Cursor::new(Vec::new()));
        write_cdata(&mut w, "a]]>b");
        let s = String::from_utf8(w.into_inner().into_inner()).unwrap();
        assert_eq!(s, "<![CDATA[a]]]]>&gt;<![CDATA[b]]>");
    }

    #[test]
    fn control_characters_are_replaced() {
        assert_eq!(xml_text("a\u{1b}[31mb\n"), "a\u{FFFD}[31mb\n");
    }
}
