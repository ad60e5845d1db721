//! Throughput of secret redaction, which every line a step prints goes through. Prints
//! its figures; run with `cargo bench -p sluice --bench redact`.
//!
//! 256 MiB of build-like output with 10 secrets (and some of their encodings) planted
//! at random places, redacted line by line (as the step log does) and as a stream of
//! random-sized pieces. Target: at least 500 MB/s, so that a noisy build is not slowed
//! down.

use std::time::Instant;

use sluice::secrets::redact::Redactor;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let secrets: Vec<String> = (0..10)
        .map(|i| format!("tok_{i}_a8F3kQ9zLmN2pR7wXy4vB6cD"))
        .collect();
    let redactor = Redactor::new(secrets.iter().map(String::as_str));
    let mut rng: u64 = 0x2545f4914f6cdd1d;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let lines = [
        "   Compiling serde_derive v1.0.228",
        "warning: unused variable: `config` --> src/lib.rs:42:9",
        "test tests::parses_the_lockfile ... ok",
        "npm WARN deprecated inflight@1.0.6: This module is not supported, and leaks memory.",
        "[INFO] Building jar: /workspace/target/app-1.2.3.jar",
    ];
    let mut text = String::with_capacity(256 << 20);
    let mut planted = 0;
    while text.len() < 256 << 20 {
        let line = lines[(next() % lines.len() as u64) as usize];
        if next() % 200 == 0 {
            text.push_str(&format!(
                "{line} token={}\n",
                secrets[(next() % 10) as usize]
            ));
            planted += 1;
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    let mb = text.len() as f64 / 1e6;

    let started = Instant::now();
    let mut out_len = 0usize;
    for line in text.lines() {
        out_len += redactor.redact(line).len();
    }
    let took = started.elapsed();
    assert!(out_len > 0);
    println!(
        "{:<44} {:>8.0} MB/s ({mb:.0} MB, {planted} secrets, {:.2?})",
        "redact line by line, 10 secrets",
        mb / took.as_secs_f64(),
        took
    );

    let started = Instant::now();
    let mut stream = redactor.stream();
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let n = ((next() as usize) % 65536 + 1).min(bytes.len() - at);
        stream.push(&bytes[at..at + n], &mut out);
        at += n;
    }
    stream.finish(&mut out);
    let took = started.elapsed();
    let shown = String::from_utf8(out).unwrap();
    assert!(!secrets.iter().any(|s| shown.contains(s.as_str())));
    println!(
        "{:<44} {:>8.0} MB/s ({mb:.0} MB, {:.2?})",
        "redact a stream of pieces, 10 secrets",
        mb / took.as_secs_f64(),
        took
    );
}
