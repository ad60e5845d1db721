//! Secret scanning with rules in the gitleaks format (`[[rules]]`: `id`, `description`,
//! `regex`, `secretGroup`, `entropy`, `keywords`, `path`, `allowlist`/`allowlists`;
//! top-level `[allowlist]`/`[[allowlists]]` with `targetRules`; `[extend] useDefault`,
//! `disabledRules`). A file is checked rule by rule: the keyword pre-filter
//! (case-insensitive, all keywords in one Aho-Corasick pass), the path filter, then the
//! regex; the secret is the `secretGroup` capture (or the first non-empty group, or the
//! whole match), and must have a Shannon entropy above the rule's `entropy`;
//! allowlists then drop matches.
//! A match is never reported when `gitleaks:allow` stands on any line it spans. The
//! default rules are gitleaks' own configuration, so the behaviour (keywords, entropy,
//! stopwords, allowlists) is gitleaks' as far as a single tree is concerned.
//!
//! The tree is walked with the `ignore` crate, so `.gitignore`, `.ignore` and git's
//! global excludes are honoured even outside a git checkout; binary files (a NUL byte
//! in the first 8 KiB) and files over the size limit are skipped.
//!
//! Findings carry the rule, file, line and column, and a fingerprint (SHA-256 of file,
//! rule and secret); they never carry the secret itself.

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The marker that, anywhere on the lines a match spans (usually in a comment), tells the
/// scan that the value there is not a secret: `api_key = "…" # gitleaks:allow`.
pub const INLINE_ALLOW: &str = "gitleaks:allow";

/// The rules shipped with the plugin: gitleaks' default configuration (see the file's
/// header for its origin and licence).
pub const DEFAULT_RULES: &str = include_str!("default-rules.toml");

/// How the embedded default rules are named in messages (and recognised when a file
/// extends them).
const DEFAULT_ORIGIN: &str = "the default rules";

/// A gitleaks configuration file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    extend: Option<RawExtend>,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    allowlist: Option<RawAllowlist>,
    #[serde(default)]
    allowlists: Vec<RawAllowlist>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawExtend {
    #[serde(default)]
    use_default: bool,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    disabled_rules: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRule {
    id: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    secret_group: usize,
    #[serde(default)]
    entropy: f64,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    allowlist: Option<RawAllowlist>,
    #[serde(default)]
    allowlists: Vec<RawAllowlist>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAllowlist {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    condition: Option<String>,
    #[serde(default)]
    regex_target: Option<String>,
    #[serde(default)]
    regexes: Vec<String>,
    #[serde(default)]
    stopwords: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    commits: Vec<String>,
    #[serde(default)]
    target_rules: Vec<String>,
}

/// What an allowlist's `regexes` are matched against.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    Secret,
    Match,
    Line,
}

/// A compiled allowlist.
#[derive(Debug)]
struct Allowlist {
    all: bool,
    target: Target,
    regexes: Vec<Regex>,
    stopwords: Vec<String>,
    paths: Vec<Regex>,
    target_rules: Vec<String>,
}

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// The rule's id (`aws-access-token`).
    pub id: String,
    /// What it finds.
    pub description: String,
    regex: Option<Regex>,
    secret_group: usize,
    entropy: f64,
    keywords: Vec<String>,
    path: Option<Regex>,
    /// Tags from the rule file.
    pub tags: Vec<String>,
    allowlists: Vec<Allowlist>,
}

/// A compiled rule set.
#[derive(Debug)]
pub struct RuleSet {
    /// The rules, in file order.
    rules: Vec<Rule>,
    allowlists: Vec<Allowlist>,
    keywords: KeywordIndex,
}

/// Which rules a text may concern, by their keywords, found in one pass over the
/// lower-cased text (gitleaks' pre-filter, an Aho-Corasick automaton as in gitleaks).
/// One pass for all keywords instead of a substring search per keyword and rule: with
/// gitleaks' 222 rules that is most of a scan's time under WebAssembly.
#[derive(Debug)]
struct KeywordIndex {
    automaton: aho_corasick::AhoCorasick,
    /// For each pattern of the automaton, the indices of the rules that name it.
    rules_of: Vec<Vec<usize>>,
    /// Rules without keywords, which always run.
    always: Vec<usize>,
}

impl KeywordIndex {
    fn new(rules: &[Rule]) -> KeywordIndex {
        let mut patterns: Vec<&str> = Vec::new();
        let mut rules_of: Vec<Vec<usize>> = Vec::new();
        let mut always = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            if rule.keywords.is_empty() {
                always.push(index);
            }
            for keyword in &rule.keywords {
                match patterns.iter().position(|p| *p == keyword.as_str()) {
                    Some(at) => rules_of[at].push(index),
                    None => {
                        patterns.push(keyword);
                        rules_of.push(vec![index]);
                    }
                }
            }
        }
        KeywordIndex {
            automaton: aho_corasick::AhoCorasick::new(&patterns)
                .expect("keywords are plain strings of bounded size"),
            rules_of,
            always,
        }
    }

    /// Whether each rule may match `lower` (the lower-cased text).
    fn candidates(&self, lower: &str, rule_count: usize) -> Vec<bool> {
        let mut wanted = vec![false; rule_count];
        for &index in &self.always {
            wanted[index] = true;
        }
        let mut seen = vec![false; self.rules_of.len()];
        for found in self.automaton.find_overlapping_iter(lower) {
            let pattern = found.pattern().as_usize();
            if !std::mem::replace(&mut seen[pattern], true) {
                for &index in &self.rules_of[pattern] {
                    wanted[index] = true;
                }
            }
        }
        wanted
    }
}

fn compile(pattern: &str, what: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(&translate_re2(pattern))
        .size_limit(64 << 20)
        .build()
        .map_err(|e| format!("{what}: the regex does not compile: {e}"))
}

/// Give a Go RE2 pattern (what gitleaks rules are written in) its RE2 meaning under
/// Rust's `regex`: the syntax is the same, but RE2's Perl classes `\w`, `\d`, `\s` and
/// `\b` are ASCII-only while Rust's are Unicode-aware (and far larger to compile).
pub fn translate_re2(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        if c == '\\' {
            let Some(next) = chars.next() else {
                out.push(c);
                break;
            };
            let ascii = match next {
                'w' => Some("0-9A-Za-z_"),
                'd' => Some("0-9"),
                's' => Some("\\t\\n\\x0C\\r "),
                _ => None,
            };
            match (ascii, in_class) {
                (Some(set), true) => out.push_str(set),
                (Some(set), false) => {
                    out.push('[');
                    out.push_str(set);
                    out.push(']');
                }
                (None, false) if next == 'b' || next == 'B' => {
                    out.push_str("(?-u:\\");
                    out.push(next);
                    out.push(')');
                }
                _ => {
                    out.push('\\');
                    out.push(next);
                }
            }
            class_start = false;
            continue;
        }
        if in_class {
            if c == ']' && !class_start {
                in_class = false;
            }
            class_start = class_start && c == '^';
        } else if c == '[' {
            in_class = true;
            class_start = true;
        } else if c == '{' && !starts_repetition(chars.clone()) {
            // RE2 reads a `{` that does not open `{n}`, `{n,}` or `{n,m}` as itself
            // (gitleaks' curl rule has `{{[^}]+}}`); Rust's `regex` wants it escaped.
            out.push_str("\\{");
            continue;
        }
        out.push(c);
    }
    out
}

/// Whether the text after a `{` is a repetition's `n}`, `n,}` or `n,m}`.
fn starts_repetition(mut rest: impl Iterator<Item = char>) -> bool {
    let mut digits = 0;
    let mut comma = false;
    for c in rest.by_ref() {
        match c {
            '0'..='9' => digits += 1,
            ',' if !comma && digits > 0 => comma = true,
            '}' => return digits > 0,
            _ => return false,
        }
    }
    false
}

fn compile_allowlist(raw: RawAllowlist, what: &str) -> Result<Allowlist, String> {
    let all = match raw
        .condition
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("OR") => false,
        Some("AND") => true,
        Some(other) => {
            return Err(format!(
                "{what}: allowlist condition `{other}` must be OR or AND"
            ));
        }
    };
    let target = match raw.regex_target.as_deref() {
        None | Some("secret") => Target::Secret,
        Some("match") => Target::Match,
        Some("line") => Target::Line,
        Some(other) => {
            return Err(format!(
                "{what}: regexTarget `{other}` must be secret, match or line"
            ));
        }
    };
    let _ = (&raw.description, &raw.commits); // commits: no git history is scanned
    Ok(Allowlist {
        all,
        target,
        regexes: raw
            .regexes
            .iter()
            .map(|r| compile(r, what))
            .collect::<Result<_, _>>()?,
        stopwords: raw.stopwords.iter().map(|s| s.to_lowercase()).collect(),
        paths: raw
            .paths
            .iter()
            .map(|r| compile(r, what))
            .collect::<Result<_, _>>()?,
        target_rules: raw.target_rules,
    })
}

/// Reads a rule file named by `[extend] path`.
pub type ReadFile = dyn Fn(&str) -> Result<String, String>;

impl RuleSet {
    fn new(rules: Vec<Rule>, allowlists: Vec<Allowlist>) -> RuleSet {
        RuleSet {
            keywords: KeywordIndex::new(&rules),
            rules,
            allowlists,
        }
    }

    /// The rules, in file order (extended rules first).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The default rules.
    pub fn default_rules() -> RuleSet {
        RuleSet::parse(DEFAULT_RULES, DEFAULT_ORIGIN, None)
            .expect("the embedded default rules compile")
    }

    /// Parse a gitleaks TOML config. `[extend] useDefault = true` adds the default
    /// rules; `[extend] path` adds another file, read with `read`.
    pub fn parse(text: &str, origin: &str, read: Option<&ReadFile>) -> Result<RuleSet, String> {
        RuleSet::parse_extending(text, origin, read, false)
    }

    /// Parse a gitleaks TOML config as if it said `[extend] useDefault = true` (the
    /// step's `extend-default`).
    pub fn parse_extending_default(
        text: &str,
        origin: &str,
        read: Option<&ReadFile>,
    ) -> Result<RuleSet, String> {
        RuleSet::parse_extending(text, origin, read, true)
    }

    /// As gitleaks extends a configuration: the extended rules come first, less those
    /// in `disabledRules`; a rule of the file with the id of an extended rule is merged
    /// into it (its description, entropy, secretGroup, regex and path replace the
    /// extended rule's when given; its keywords, tags and allowlists are added), so
    /// that `[[rules]] id = "generic-api-key"` with only an allowlist tunes the default
    /// rule; any other rule of the file needs a `regex` or a `path`.
    fn parse_extending(
        text: &str,
        origin: &str,
        read: Option<&ReadFile>,
        use_default: bool,
    ) -> Result<RuleSet, String> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| format!("{origin} is not a gitleaks rule file: {e}"))?;
        let _ = &raw.title;
        let mut rules: Vec<Rule> = Vec::new();
        let mut allowlists = Vec::new();
        let extend = raw.extend.unwrap_or_default();
        if (use_default || extend.use_default) && origin != DEFAULT_ORIGIN {
            let base = RuleSet::default_rules();
            rules.extend(base.rules);
            allowlists.extend(base.allowlists);
        }
        if let Some(path) = &extend.path {
            let read =
                read.ok_or_else(|| format!("{origin}: `[extend] path` cannot be followed here"))?;
            let base = RuleSet::parse(&read(path)?, path, Some(read))?;
            rules.extend(base.rules);
            allowlists.extend(base.allowlists);
        }
        rules.retain(|r| !extend.disabled_rules.contains(&r.id));
        for raw_rule in raw.rules {
            let what = format!("{origin}: rule `{}`", raw_rule.id);
            let mut lists = Vec::new();
            for list in raw_rule.allowlist.into_iter().chain(raw_rule.allowlists) {
                lists.push(compile_allowlist(list, &what)?);
            }
            let regex = raw_rule
                .regex
                .as_deref()
                .map(|r| compile(r, &what))
                .transpose()?;
            let path = raw_rule
                .path
                .as_deref()
                .map(|r| compile(r, &what))
                .transpose()?;
            let keywords = raw_rule.keywords.iter().map(|k| k.to_lowercase());
            if let Some(base) = rules.iter_mut().find(|r| r.id == raw_rule.id) {
                if let Some(description) = raw_rule.description {
                    base.description = description;
                }
                if raw_rule.entropy != 0.0 {
                    base.entropy = raw_rule.entropy;
                }
                if raw_rule.secret_group != 0 {
                    base.secret_group = raw_rule.secret_group;
                }
                if regex.is_some() {
                    base.regex = regex;
                }
                if path.is_some() {
                    base.path = path;
                }
                base.keywords.extend(keywords);
                base.tags.extend(raw_rule.tags);
                base.allowlists.extend(lists);
                continue;
            }
            if regex.is_none() && path.is_none() {
                return Err(format!("{what} has neither `regex` nor `path`"));
            }
            rules.push(Rule {
                description: raw_rule.description.unwrap_or_else(|| raw_rule.id.clone()),
                regex,
                secret_group: raw_rule.secret_group,
                entropy: raw_rule.entropy,
                keywords: keywords.collect(),
                path,
                tags: raw_rule.tags,
                allowlists: lists,
                id: raw_rule.id,
            });
        }
        for list in raw.allowlist.into_iter().chain(raw.allowlists) {
            allowlists.push(compile_allowlist(
                list,
                &format!("{origin}: global allowlist"),
            )?);
        }
        Ok(RuleSet::new(rules, allowlists))
    }
}

/// Shannon entropy in bits per character.
pub fn shannon_entropy(text: &str) -> f64 {
    if text.is_empty() {
        return 0.0;
    }
    let mut counts = std::collections::HashMap::new();
    for c in text.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    let len = text.chars().count() as f64;
    counts
        .values()
        .map(|&n| {
            let p = n as f64 / len;
            -p * p.log2()
        })
        .sum()
}

/// One leaked secret. Holds no copy of the secret.
#[derive(Clone, Debug, PartialEq)]
pub struct Leak {
    /// Rule id.
    pub rule_id: String,
    /// Rule description.
    pub description: String,
    /// File path as given to [`scan_text`] (relative to the pipeline folder).
    pub path: String,
    /// 1-based line and column of the secret.
    pub line: u32,
    /// 1-based column (in characters).
    pub column: u32,
    /// Length of the secret in characters.
    pub secret_len: usize,
    /// Entropy of the secret.
    pub entropy: f64,
    /// `sha256(path \0 rule \0 secret)`, hex, first 32 digits.
    pub fingerprint: String,
}

fn allowed(
    list: &Allowlist,
    rule_id: &str,
    path: &str,
    secret: &str,
    whole: &str,
    line: &str,
) -> bool {
    if !list.target_rules.is_empty() && !list.target_rules.iter().any(|r| r == rule_id) {
        return false;
    }
    let target = match list.target {
        Target::Secret => secret,
        Target::Match => whole,
        Target::Line => line,
    };
    let mut checks = Vec::new();
    if !list.regexes.is_empty() {
        checks.push(list.regexes.iter().any(|r| r.is_match(target)));
    }
    if !list.stopwords.is_empty() {
        let lower = secret.to_lowercase();
        checks.push(list.stopwords.iter().any(|w| lower.contains(w.as_str())));
    }
    if !list.paths.is_empty() {
        checks.push(list.paths.iter().any(|r| r.is_match(path)));
    }
    if checks.is_empty() {
        return false;
    }
    if list.all {
        checks.iter().all(|c| *c)
    } else {
        checks.iter().any(|c| *c)
    }
}

fn fingerprint(path: &str, rule: &str, secret: &str) -> String {
    let mut hasher = Sha256::new();
    for (i, part) in [path, rule, secret].iter().enumerate() {
        if i > 0 {
            hasher.update([0u8]);
        }
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Scan one file's text. `path` is what findings show and what `path` rules and path
/// allowlists match.
pub fn scan_text(rules: &RuleSet, path: &str, text: &str) -> Vec<Leak> {
    // (leak, byte span of the secret)
    let mut leaks: Vec<(Leak, (usize, usize))> = Vec::new();
    if rules.allowlists.iter().any(|l| {
        l.target_rules.is_empty()
            && l.regexes.is_empty()
            && l.stopwords.is_empty()
            && l.paths.iter().any(|p| p.is_match(path))
    }) {
        return Vec::new();
    }
    let lower = text.to_lowercase();
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let candidates = rules.keywords.candidates(&lower, rules.rules.len());
    for (rule, _) in rules.rules.iter().zip(&candidates).filter(|(_, c)| **c) {
        if let Some(path_re) = &rule.path
            && !path_re.is_match(path)
        {
            continue;
        }
        let Some(regex) = &rule.regex else {
            // A path-only rule: the file's presence is the finding.
            leaks.push((
                Leak {
                    rule_id: rule.id.clone(),
                    description: rule.description.clone(),
                    path: path.to_owned(),
                    line: 1,
                    column: 1,
                    secret_len: 0,
                    entropy: 0.0,
                    fingerprint: fingerprint(path, &rule.id, ""),
                },
                (0, 0),
            ));
            continue;
        };
        for captures in regex.captures_iter(text) {
            let whole = captures.get(0).expect("group 0 always exists");
            let secret = if rule.secret_group > 0 {
                captures.get(rule.secret_group)
            } else {
                captures
                    .iter()
                    .skip(1)
                    .flatten()
                    .find(|m| !m.as_str().is_empty())
            }
            .unwrap_or(whole);
            let secret_text = secret.as_str();
            let entropy = shannon_entropy(secret_text);
            if rule.entropy > 0.0 && entropy <= rule.entropy {
                continue;
            }
            let line_index = line_starts.partition_point(|&s| s <= secret.start()) - 1;
            let line_start = line_starts[line_index];
            // As gitleaks does: the match without its surrounding newlines, and the
            // whole lines it spans, which is where `gitleaks:allow` may stand and what
            // `regexTarget = "line"` allowlists see.
            let matched = whole.as_str().trim_matches('\n');
            let match_start = whole.start()
                + (whole.as_str().len() - whole.as_str().trim_start_matches('\n').len());
            let match_end = match_start + matched.len();
            let lines_start = line_starts[line_starts.partition_point(|&s| s <= match_start) - 1];
            let lines_end = text[match_end..]
                .find('\n')
                .map_or(text.len(), |e| match_end + e);
            let lines = &text[lines_start.min(line_start)..lines_end];
            if lines.contains(INLINE_ALLOW) {
                continue;
            }
            let is_allowed = rule
                .allowlists
                .iter()
                .chain(&rules.allowlists)
                .any(|l| allowed(l, &rule.id, path, secret_text, matched, lines));
            if is_allowed {
                continue;
            }
            leaks.push((
                Leak {
                    rule_id: rule.id.clone(),
                    description: rule.description.clone(),
                    path: path.to_owned(),
                    line: u32::try_from(line_index + 1).unwrap_or(u32::MAX),
                    column: u32::try_from(text[line_start..secret.start()].chars().count() + 1)
                        .unwrap_or(u32::MAX),
                    secret_len: secret_text.chars().count(),
                    entropy,
                    fingerprint: fingerprint(path, &rule.id, secret_text),
                },
                (secret.start(), secret.end()),
            ));
        }
    }
    // As gitleaks does: a generic rule's match that overlaps a specific rule's match is
    // the same secret, reported once under the specific rule.
    let specific: Vec<(usize, usize)> = leaks
        .iter()
        .filter(|(l, _)| !l.rule_id.contains("generic"))
        .map(|(_, s)| *s)
        .collect();
    leaks
        .into_iter()
        .filter(|(l, (start, end))| {
            !l.rule_id.contains("generic") || !specific.iter().any(|(s, e)| start < e && s < end)
        })
        .map(|(l, _)| l)
        .collect()
}

/// Statistics of a tree scan.
#[derive(Debug, Default)]
pub struct TreeScan {
    /// What was found.
    pub leaks: Vec<Leak>,
    /// Files read.
    pub files_scanned: usize,
    /// Files skipped as binary or too large.
    pub files_skipped: usize,
}

/// Scan the files under `root`, honouring ignore files. `display` turns an absolute
/// path into what findings show (a path relative to the pipeline folder).
pub fn scan_tree(
    rules: &RuleSet,
    root: &Path,
    max_file_bytes: u64,
    display: &dyn Fn(&Path) -> String,
) -> Result<TreeScan, String> {
    let mut scan = TreeScan::default();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .require_git(false)
        .filter_entry(|e| e.file_name() != ".git" && e.file_name() != ".sluice")
        .build();
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in walker {
        let entry = entry.map_err(|e| format!("cannot walk `{}`: {e}", root.display()))?;
        if entry.file_type().is_some_and(|t| t.is_file()) {
            files.push(entry.into_path());
        }
    }
    files.sort();
    for file in files {
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        if size > max_file_bytes {
            scan.files_skipped += 1;
            continue;
        }
        let bytes =
            std::fs::read(&file).map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
        if bytes[..bytes.len().min(8192)].contains(&0) {
            scan.files_skipped += 1;
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        scan.files_scanned += 1;
        scan.leaks.extend(scan_text(rules, &display(&file), &text));
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Secrets below are built at run time so that this file itself holds none.
    fn github_token() -> String {
        format!("ghp_{}", "R7xK2mQ9vL4pT8wZ3nB6cY1dF5gH0jS2aE4u")
    }

    #[test]
    fn default_rules_compile_and_find_common_secrets() {
        let rules = RuleSet::default_rules();
        assert!(rules.rules().len() >= 15);
        let aws = format!("aws_key = \"{}\"\n", ["AKIA", "QYLPMN5HHHFPZAM2"].concat());
        let leaks = scan_text(&rules, "config/app.env", &aws);
        assert_eq!(
            leaks.iter().map(|l| l.rule_id.as_str()).collect::<Vec<_>>(),
            ["aws-access-token"]
        );
        assert_eq!(
            (leaks[0].line, leaks[0].column, leaks[0].secret_len),
            (1, 12, 20)
        );

        let text = format!("first line\nlet token = \"{}\";\n", github_token());
        let leaks = scan_text(&rules, "src/main.rs", &text);
        assert!(
            leaks
                .iter()
                .any(|l| l.rule_id == "github-pat" && l.line == 2),
            "{leaks:?}"
        );

        let key = format!(
            "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\n",
            "MIIEowIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi+Lz4b1Z6vKbL4d5sV2xZ9mQ"
        );
        assert!(
            scan_text(&rules, "id_rsa", &key)
                .iter()
                .any(|l| l.rule_id == "private-key")
        );
    }

    #[test]
    fn allowlists_inline_suppression_and_entropy() {
        let rules = RuleSet::default_rules();
        // AWS's documented example key is allowlisted by the rule.
        assert!(scan_text(&rules, "a.txt", &["AKIA", "IOSFODNN7EXAMPLE"].concat()).is_empty());
        let text = format!("token = \"{}\" # gitleaks:allow\n", github_token());
        assert!(scan_text(&rules, "a.txt", &text).is_empty());
        // Lockfiles are allowlisted globally.
        assert!(scan_text(&rules, "web/package-lock.json", &github_token()).is_empty());
        // Low entropy: not a secret.
        assert!(scan_text(&rules, "a.txt", &format!("ghp_{}", "a".repeat(36))).is_empty());
        // Generic rule with a stopword.
        assert!(scan_text(&rules, "a.txt", "password = \"example-Pa55word-1234\"\n").is_empty());
        assert_eq!(
            scan_text(&rules, "a.txt", "password = \"q8WzT4m-Lp0v9Xc7b\"\n").len(),
            1
        );
    }

    #[test]
    fn custom_rules_secret_group_and_and_condition() {
        let config = r#"
[[rules]]
id = "acme"
description = "ACME key"
regex = '''acme_key\s*=\s*"([0-9a-z]{16})"'''
secretGroup = 1
keywords = ["acme_"]
  [[rules.allowlists]]
  condition = "AND"
  paths = ['''^test/''']
  regexes = ['''^0000''']
"#;
        let rules = RuleSet::parse(config, "acme.toml", None).unwrap();
        let hit = scan_text(&rules, "src/a.py", "acme_key = \"9f8e7d6c5b4a3210\"");
        assert_eq!(hit.len(), 1);
        assert_eq!(hit[0].secret_len, 16);
        // Both conditions hold: allowed. Only one: still reported.
        assert!(scan_text(&rules, "test/a.py", "acme_key = \"0000ffffeeeedddd\"").is_empty());
        assert_eq!(
            scan_text(&rules, "src/a.py", "acme_key = \"0000ffffeeeedddd\"").len(),
            1
        );
        // The keyword pre-filter is case-insensitive and required.
        assert!(scan_text(&rules, "src/a.py", "ACME_KEY = \"9f8e7d6c5b4a3210\"").is_empty());
    }

    #[test]
    fn extend_disable_and_errors() {
        let config = "[extend]\nuseDefault = true\ndisabledRules = [\"jwt\"]\n";
        let rules = RuleSet::parse(config, "x.toml", None).unwrap();
        assert!(rules.rules().iter().any(|r| r.id == "github-pat"));
        assert!(!rules.rules().iter().any(|r| r.id == "jwt"));
        let err = RuleSet::parse(
            "[[rules]]\nid = \"bad\"\nregex = '''(unclosed'''\n",
            "x.toml",
            None,
        )
        .unwrap_err();
        assert!(
            err.contains("rule `bad`") && err.contains("does not compile"),
            "{err}"
        );
        assert!(
            RuleSet::parse("[[rules]]\nid = \"none\"\n", "x.toml", None)
                .unwrap_err()
                .contains("neither")
        );
    }

    #[test]
    fn extending_merges_a_rule_of_the_same_id_as_gitleaks_does() {
        let line = "db_password = \"Wz4Kb1Vm9Lc5Yj8Hn0Pq\"\n";
        assert_eq!(scan_text(&RuleSet::default_rules(), "a.env", line).len(), 1);
        // Only an allowlist for the default generic rule: the rule keeps its regex.
        let config = r#"
[extend]
useDefault = true

[[rules]]
id = "generic-api-key"
  [[rules.allowlists]]
  regexes = ['''^Wz4Kb1''']
"#;
        let tuned = RuleSet::parse(config, "x.toml", None).unwrap();
        assert!(scan_text(&tuned, "a.env", line).is_empty());
        assert!(tuned.rules().len() > 200, "the other default rules stay");
        let other = "db_password = \"Qz7Rk2Vn8Tj4Wb1Yh6Lp\"\n";
        assert_eq!(scan_text(&tuned, "a.env", other).len(), 1);
        // The same through the step's `extend-default`, without `[extend]`.
        let bare = config.replace("[extend]\nuseDefault = true\n", "");
        assert!(RuleSet::parse(&bare, "x.toml", None).is_err());
        let tuned = RuleSet::parse_extending_default(&bare, "x.toml", None).unwrap();
        assert!(scan_text(&tuned, "a.env", line).is_empty());
        // A higher entropy threshold replaces the default one.
        let strict =
            "[extend]\nuseDefault = true\n[[rules]]\nid = \"generic-api-key\"\nentropy = 4.5\n";
        let strict = RuleSet::parse(strict, "x.toml", None).unwrap();
        assert!(scan_text(&strict, "a.env", line).is_empty());
    }

    #[test]
    fn fingerprints_depend_on_the_secret_but_never_contain_it() {
        let rules = RuleSet::default_rules();
        let token = github_token();
        let a = scan_text(&rules, "a.txt", &token);
        let b = scan_text(&rules, "a.txt", &format!("\n\n{token}"));
        assert_eq!(
            a[0].fingerprint, b[0].fingerprint,
            "moving a secret keeps its fingerprint"
        );
        let other = format!("ghp_{}", "Q7xK2mQ9vL4pT8wZ3nB6cY1dF5gH0jS2aE4u");
        assert_ne!(
            a[0].fingerprint,
            scan_text(&rules, "a.txt", &other)[0].fingerprint
        );
        assert!(!format!("{a:?}").contains(&token[4..]));
    }

    #[test]
    fn re2_classes_are_ascii() {
        assert_eq!(
            translate_re2(r"\w+[\w.-]\b\d\."),
            r"[0-9A-Za-z_]+[0-9A-Za-z_.-](?-u:\b)[0-9]\."
        );
        assert_eq!(translate_re2(r"[]\w]"), r"[]0-9A-Za-z_]");
        assert_eq!(translate_re2(r"a{2}b{1,}c{1,3}"), r"a{2}b{1,}c{1,3}");
        assert_eq!(translate_re2(r"\${{[^}]+}}"), r"\$\{\{[^}]+}}");
        let re = compile(r"^\w+$", "t").unwrap();
        assert!(re.is_match("abc_1"));
        assert!(!re.is_match("héllo"), "RE2's \\w does not match é");
    }

    #[test]
    fn entropy() {
        assert_eq!(shannon_entropy(""), 0.0);
        assert_eq!(shannon_entropy("aaaa"), 0.0);
        assert!((shannon_entropy("abcd") - 2.0).abs() < 1e-9);
    }

    #[test]
    fn tree_scan_respects_gitignore_and_skips_binaries() {
        let dir = std::env::temp_dir().join(format!("sluice-secrets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("ignored")).unwrap();
        std::fs::write(dir.join(".gitignore"), "ignored/\n").unwrap();
        std::fs::write(dir.join("ignored/a.txt"), github_token()).unwrap();
        std::fs::write(dir.join("b.txt"), github_token()).unwrap();
        let mut binary = github_token().into_bytes();
        binary.push(0);
        std::fs::write(dir.join("c.bin"), binary).unwrap();
        let rules = RuleSet::default_rules();
        let scan = scan_tree(&rules, &dir, 1 << 20, &|p| {
            p.strip_prefix(&dir).unwrap().display().to_string()
        })
        .unwrap();
        assert_eq!(
            scan.leaks
                .iter()
                .map(|l| l.path.as_str())
                .collect::<Vec<_>>(),
            ["b.txt"]
        );
        assert_eq!(scan.files_skipped, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
