//! The crate against `vectors.json`, the table every other language's helper checks its
//! own implementation against: if this test fails, either the algorithm changed (which
//! reopens every tracked finding) or the table is wrong.

use std::collections::HashMap;

use serde_json::Value;
use sluice_fingerprint::{FindingKey, fingerprints, hash, normalize_line};

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors.json")).expect("vectors.json is JSON")
}

fn text(value: &Value) -> &str {
    value.as_str().expect("a string")
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&hex[at..at + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn hashes_match_the_vectors() {
    for vector in vectors()["hashes"].as_array().unwrap() {
        let parts: Vec<&[u8]> = vector["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|part| text(part).as_bytes())
            .collect();
        assert_eq!(hash(&parts), text(&vector["hash"]), "{vector}");
    }
}

#[test]
fn normalized_lines_match_the_vectors() {
    for vector in vectors()["normalize"].as_array().unwrap() {
        assert_eq!(
            normalize_line(text(&vector["line"])),
            text(&vector["normalized"]),
            "{vector}"
        );
    }
}

#[test]
fn fingerprints_match_the_vectors() {
    let vectors = vectors();
    let cases = vectors["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let files: HashMap<&str, Vec<u8>> = case["files"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(path, content)| {
                let bytes = match (content.get("text"), content.get("hex")) {
                    (Some(text), None) => text.as_str().unwrap().as_bytes().to_vec(),
                    (None, Some(hex)) => hex_bytes(hex.as_str().unwrap()),
                    _ => panic!("a file is `text` or `hex`: {content}"),
                };
                (path.as_str(), bytes)
            })
            .collect();
        let findings: Vec<FindingKey<'_>> = case["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|finding| FindingKey {
                rule_id: text(&finding["rule_id"]),
                message: text(&finding["message"]),
                path: finding.get("path").map(text),
                line: finding
                    .get("line")
                    .map(|line| u32::try_from(line.as_u64().unwrap()).unwrap()),
                column: finding
                    .get("column")
                    .map(|column| u32::try_from(column.as_u64().unwrap()).unwrap()),
            })
            .collect();
        let expected: Vec<&str> = case["fingerprints"]
            .as_array()
            .unwrap()
            .iter()
            .map(text)
            .collect();
        let got = fingerprints(&findings, |path| files.get(path).cloned());
        assert_eq!(got, expected, "case {}", case["name"]);
    }
}
