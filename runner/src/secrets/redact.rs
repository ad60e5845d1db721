//! Redaction: every secret value of a run, and the usual ways it is transformed, is
//! replaced with `***` wherever text leaves the runner.
//!
//! For each secret the patterns are: the value; each line of a multi-line value; its
//! JSON string escaping; its URL encodings (RFC 3986 unreserved characters kept, `/`
//! kept as Python's `quote` does, or every non-alphanumeric encoded; spaces also as
//! `+` as forms do; upper- and lower-case hex); its hex (both cases); and its base64 in the standard and URL-safe alphabets at
//! each of the three offsets the value can have in a longer encoded stream (only the
//! characters the value alone determines, so no padding, no neighbouring bytes). All
//! patterns of all secrets go into one Aho-Corasick automaton (`aho-corasick`, the
//! engine behind `regex`), searched leftmost-longest.
//!
//! Text that arrives in pieces goes through a [`StreamRedactor`], which holds back the
//! last `longest pattern - 1` bytes until the next piece, so a secret split across two
//! writes is still found.

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, AhoCorasickKind, Anchored, Input, MatchKind, Span, StartKind};
use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use super::MIN_SECRET_LEN;
use crate::host::bindings::types;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// The redactor of one run.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    automaton: Option<AhoCorasick>,
    /// SIMD searchers (Teddy) over groups of the patterns: most text holds no secret,
    /// and these say so several times faster than the automaton. Empty where the
    /// processor lacks the instructions; then the automaton answers.
    detectors: Vec<aho_corasick::packed::Searcher>,
    longest: usize,
}

/// Patterns per SIMD searcher.
const DETECTOR_GROUP: usize = 32;

/// RFC 3986 unreserved characters stay as they are.
const URL_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// As Python's `urllib.parse.quote`: `/` stays too.
const URL_PATH: &AsciiSet = &URL_UNRESERVED.remove(b'/');

/// Every form a secret is looked for in.
pub fn patterns(secret: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut add = |p: Vec<u8>| {
        if p.len() >= MIN_SECRET_LEN && !out.contains(&p) {
            out.push(p);
        }
    };
    add(secret.as_bytes().to_vec());
    for line in secret.lines() {
        add(line.trim_end_matches('\r').as_bytes().to_vec());
    }
    let json = serde_json::to_string(secret).expect("a string serialises");
    add(json.as_bytes()[1..json.len() - 1].to_vec());
    for set in [URL_UNRESERVED, URL_PATH, NON_ALPHANUMERIC] {
        let upper = percent_encoding::utf8_percent_encode(secret, set).to_string();
        add(upper.replace("%20", "+").into_bytes());
        add(lower_hex_escapes(&upper).into_bytes());
        add(upper.into_bytes());
    }
    add(hex::encode(secret).into_bytes());
    add(hex::encode_upper(secret).into_bytes());
    let bytes = secret.as_bytes();
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        // The value may start at any of three offsets in a 3-byte group; from its
        // first whole group on, the encoding depends on the value alone.
        for skip in 0..3 {
            if bytes.len() <= skip {
                break;
            }
            let rest = &bytes[skip..];
            let whole = rest.len() - rest.len() % 3;
            add(engine.encode(&rest[..whole]).into_bytes());
        }
    }
    out
}

fn lower_hex_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            for h in chars.by_ref().take(2) {
                out.push(h.to_ascii_lowercase());
            }
        }
    }
    out
}

impl Redactor {
    /// A redactor of `secrets` (values).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut all: Vec<Vec<u8>> = Vec::new();
        for s in secrets {
            for p in patterns(s) {
                if !all.contains(&p) {
                    all.push(p);
                }
            }
        }
        if all.is_empty() {
            return Redactor::default();
        }
        let longest = all.iter().map(Vec::len).max().unwrap_or(0);
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .start_kind(StartKind::Both)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&all)
            .or_else(|_| {
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .start_kind(StartKind::Both)
                    .build(&all)
            })
            .expect("secret patterns build an automaton");
        let detectors: Option<Vec<_>> = all
            .chunks(DETECTOR_GROUP)
            .map(|group| {
                aho_corasick::packed::Config::new()
                    .builder()
                    .extend(group)
                    .build()
            })
            .collect();
        Redactor {
            automaton: Some(automaton),
            detectors: detectors.unwrap_or_default(),
            longest,
        }
    }

    /// Calls `found(start, end)` for each secret in `buf`, leftmost-longest, in order,
    /// until it returns false.
    ///
    /// The SIMD detectors find where the next secret starts; the automaton, anchored
    /// there, only measures how long it is. So text without secrets is never walked
    /// by the automaton, and text with some only for their length.
    fn each_secret(&self, buf: &[u8], mut found: impl FnMut(usize, usize) -> bool) {
        let Some(ac) = &self.automaton else { return };
        if self.detectors.is_empty() {
            for m in ac.find_iter(buf) {
                if !found(m.start(), m.end()) {
                    return;
                }
            }
            return;
        }
        let whole = Span::from(0..buf.len());
        let find = |d: &aho_corasick::packed::Searcher, span| {
            d.find_in(buf, span).map_or(usize::MAX, |m| m.start())
        };
        // Most text holds no secret: say so without allocating.
        let Some((first, start)) = self
            .detectors
            .iter()
            .enumerate()
            .find_map(|(i, d)| Some((i, find(d, whole))).filter(|&(_, s)| s != usize::MAX))
        else {
            return;
        };
        // Per detector, where its next secret starts (usize::MAX: none).
        let mut next: Vec<usize> = vec![usize::MAX; first];
        next.push(start);
        next.extend(self.detectors[first + 1..].iter().map(|d| find(d, whole)));
        let mut at = 0;
        loop {
            for (d, n) in self.detectors.iter().zip(next.iter_mut()) {
                if *n < at {
                    *n = find(d, Span::from(at..buf.len()));
                }
            }
            let start = *next.iter().min().expect("there is a detector");
            if start == usize::MAX {
                return;
            }
            let m = ac
                .find(Input::new(buf).range(start..).anchored(Anchored::Yes))
                .expect("what a detector finds is one of the automaton's patterns");
            if !found(m.start(), m.end()) {
                return;
            }
            at = m.end();
        }
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.automaton.is_none()
    }

    /// `text` with every secret replaced.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let bytes = text.as_bytes();
        let mut out: Option<String> = None;
        let mut last = 0;
        self.each_secret(bytes, |start, end| {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            o.push_str(&text[last..start]);
            o.push_str(MASK);
            last = end;
            true
        });
        match out {
            Some(mut o) => {
                o.push_str(&text[last..]);
                Cow::Owned(o)
            }
            None => Cow::Borrowed(text),
        }
    }

    /// Redact `text` in place.
    pub fn redact_in_place(&self, text: &mut String) {
        if let Cow::Owned(clean) = self.redact(text) {
            *text = clean;
        }
    }

    /// The part of `buf` that is final whatever follows: everything but the last
    /// `longest pattern - 1` bytes, extended past any secret that crosses that point.
    /// Appends it, redacted, to `out`, and returns where it ends in `buf`.
    pub fn final_part(&self, buf: &[u8], out: &mut Vec<u8>) -> usize {
        if self.is_empty() {
            out.extend_from_slice(buf);
            return buf.len();
        }
        let keep = self.longest - 1;
        if buf.len() <= keep {
            return 0;
        }
        let mut cut = buf.len() - keep;
        let mut last = 0;
        self.each_secret(buf, |start, end| {
            if start >= cut {
                return false;
            }
            out.extend_from_slice(&buf[last..start]);
            out.extend_from_slice(MASK.as_bytes());
            last = end;
            cut = cut.max(end);
            true
        });
        out.extend_from_slice(&buf[last..cut]);
        cut
    }

    /// Everything in `buf` redacted, appended to `out`.
    fn redact_bytes(&self, buf: &[u8], out: &mut Vec<u8>) {
        let mut last = 0;
        self.each_secret(buf, |start, end| {
            out.extend_from_slice(&buf[last..start]);
            out.extend_from_slice(MASK.as_bytes());
            last = end;
            true
        });
        out.extend_from_slice(&buf[last..]);
    }

    /// Mask secrets in every text of a plugin's report.
    pub fn redact_report(&self, report: &mut types::Report) {
        if self.is_empty() {
            return;
        }
        let r = |s: &mut String| self.redact_in_place(s);
        let pairs = |v: &mut Vec<(String, String)>| {
            for (k, val) in v {
                self.redact_in_place(k);
                self.redact_in_place(val);
            }
        };
        r(&mut report.summary);
        for f in &mut report.findings {
            r(&mut f.rule_id);
            r(&mut f.message);
            r(&mut f.fingerprint);
            if let Some(l) = &mut f.location {
                r(&mut l.path);
            }
            if let Some(h) = &mut f.help_uri {
                r(h);
            }
            pairs(&mut f.properties);
        }
        for t in &mut report.test_cases {
            r(&mut t.suite);
            r(&mut t.name);
            for s in [&mut t.message, &mut t.output].into_iter().flatten() {
                r(s);
            }
            for a in &mut t.flaky_attempts {
                r(&mut a.message);
                r(&mut a.output);
            }
        }
        for m in &mut report.metrics {
            r(&mut m.name);
            r(&mut m.unit);
            pairs(&mut m.tags);
        }
        for d in &mut report.data_points {
            r(&mut d.name);
            r(&mut d.detail);
        }
        for a in &mut report.artifacts {
            r(&mut a.path);
            r(&mut a.media_type);
            for s in [&mut a.name, &mut a.version].into_iter().flatten() {
                r(s);
            }
        }
        pairs(&mut report.outputs);
    }

    /// A redactor for text that arrives in pieces.
    pub fn stream(&self) -> StreamRedactor<'_> {
        StreamRedactor {
            redactor: self,
            held: Vec::new(),
        }
    }
}

/// Redaction of a stream of bytes; see the module documentation.
pub struct StreamRedactor<'r> {
    redactor: &'r Redactor,
    held: Vec<u8>,
}

impl StreamRedactor<'_> {
    /// Take the next piece; append to `out` what can be shown already.
    pub fn push(&mut self, piece: &[u8], out: &mut Vec<u8>) {
        if self.redactor.is_empty() {
            out.extend_from_slice(piece);
            return;
        }
        self.held.extend_from_slice(piece);
        let cut = self.redactor.final_part(&self.held, out);
        self.held.drain(..cut);
    }

    /// The end of the stream: append the rest.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let rest = std::mem::take(&mut self.held);
        self.redactor.redact_bytes(&rest, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "hunter2-very-secret/token+value";

    fn redactor() -> Redactor {
        Redactor::new([SECRET, "second secret\nwith two lines"])
    }

    #[test]
    fn every_form_of_a_secret_is_masked() {
        let r = redactor();
        let b64 = base64::engine::general_purpose::STANDARD;
        let forms = [
            SECRET.to_string(),
            serde_json::to_string(SECRET).unwrap(),
            percent_encoding::utf8_percent_encode(SECRET, NON_ALPHANUMERIC).to_string(),
            hex::encode(SECRET),
            hex::encode_upper(SECRET),
            b64.encode(SECRET),
            b64.encode(format!("x{SECRET}")),
            b64.encode(format!("xy{SECRET}")),
            base64::engine::general_purpose::URL_SAFE.encode(format!("x{SECRET}")),
            "with two lines".to_string(),
        ];
        for form in forms {
            let text = format!("before {form} after");
            let out = r.redact(&text);
            assert!(out.contains(MASK), "{form} -> {out}");
            assert!(!out.contains("hunter2"), "{out}");
        }
        assert_eq!(r.redact("nothing here"), "nothing here");
    }

    #[test]
    fn a_secret_split_across_pieces_is_masked() {
        let r = redactor();
        let text = format!("aaaa{SECRET}bbbb{SECRET}");
        for split in 0..text.len() {
            let mut s = r.stream();
            let mut out = Vec::new();
            s.push(&text.as_bytes()[..split], &mut out);
            s.push(&text.as_bytes()[split..], &mut out);
            s.finish(&mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "aaaa***bbbb***",
                "split at {split}"
            );
        }
    }

    #[test]
    fn a_gibibyte_with_secrets_at_random_places_leaks_nothing() {
        let secrets: Vec<String> = (0..10)
            .map(|i| format!("secret-{i}-{}", "x".repeat(i + 10)))
            .collect();
        let r = Redactor::new(secrets.iter().map(String::as_str));
        let mut stream = r.stream();
        let mut rng: u64 = 0x9e3779b97f4a7c15;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let filler = b"compiling crate foo v1.2.3 (/src/foo) warning: unused variable `x`\n";
        let mut written = 0usize;
        let mut planted = 0usize;
        let mut out = Vec::with_capacity(1 << 20);
        let mut pending = Vec::new();
        // What was shown is checked with the end of what was shown before, so that a
        // secret shown in two parts would be found too.
        let mut carry: Vec<u8> = Vec::new();
        let mut check = |out: &mut Vec<u8>| {
            let mut shown = std::mem::take(&mut carry);
            shown.extend_from_slice(out);
            assert!(
                !secrets
                    .iter()
                    .any(|s| memchr::memmem::find(&shown, s.as_bytes()).is_some()),
                "a secret leaked"
            );
            carry = shown[shown.len().saturating_sub(64)..].to_vec();
            out.clear();
        };
        while written < 1 << 30 {
            pending.clear();
            while pending.len() < 64 << 10 {
                if next() % 64 == 0 {
                    pending.extend_from_slice(secrets[(next() % 10) as usize].as_bytes());
                    planted += 1;
                } else {
                    let cut = (next() as usize) % filler.len();
                    pending.extend_from_slice(&filler[..cut]);
                }
            }
            // Pieces of random sizes, as writes arrive.
            let mut at = 0;
            while at < pending.len() {
                let n = ((next() as usize) % 8192 + 1).min(pending.len() - at);
                stream.push(&pending[at..at + n], &mut out);
                at += n;
            }
            written += pending.len();
            // Keep the held-back tail with what follows: check only what is final.
            check(&mut out);
        }
        stream.finish(&mut out);
        check(&mut out);
        assert!(planted > 1000);
    }
}
