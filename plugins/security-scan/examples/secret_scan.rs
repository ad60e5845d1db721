//! Measure the secret rules on real source trees: scan each folder given and print,
//! for every finding, the rule, `path:line` and the line itself (shortened), then the
//! totals. Used to count false positives before and after a rule change (see
//! docs/design/0009-secret-rules.md); the lines are printed so that a person can judge
//! each finding, so run it on public sources only.
//!
//! ```text
//! cargo run --release -p sluice-plugin-security-scan --example secret_scan -- \
//!     [--rules gitleaks.toml] [--quiet] <folder>...
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use sluice_plugin_security_scan::secrets::{RuleSet, scan_tree};

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let mut rules = RuleSet::default_rules();
    let mut quiet = false;
    let mut folders = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rules" => {
                let file = args.next().expect("--rules needs a file");
                let text = std::fs::read_to_string(&file).expect("read the rule file");
                rules = RuleSet::parse(&text, &file, None).unwrap_or_else(|e| panic!("{e}"));
            }
            "--quiet" => quiet = true,
            _ => folders.push(arg),
        }
    }
    let (mut files, mut lines, mut findings) = (0usize, 0usize, 0usize);
    let mut per_rule: BTreeMap<String, usize> = BTreeMap::new();
    let started = std::time::Instant::now();
    for folder in &folders {
        let root = Path::new(folder);
        let scan = scan_tree(&rules, root, 1 << 20, &|p| {
            p.strip_prefix(root).unwrap_or(p).display().to_string()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        files += scan.files_scanned;
        for leak in &scan.leaks {
            findings += 1;
            *per_rule.entry(leak.rule_id.clone()).or_default() += 1;
            if !quiet {
                let text = std::fs::read_to_string(root.join(&leak.path)).unwrap_or_default();
                let line: String = text
                    .lines()
                    .nth(leak.line as usize - 1)
                    .unwrap_or("")
                    .trim()
                    .chars()
                    .take(160)
                    .collect();
                println!(
                    "{}\t{folder}/{}:{}\t{line}",
                    leak.rule_id, leak.path, leak.line
                );
            }
        }
        lines += count_lines(root);
    }
    eprintln!(
        "{} folder(s), {files} files, {lines} lines, {findings} findings in {:.1} s",
        folders.len(),
        started.elapsed().as_secs_f64()
    );
    for (rule, n) in per_rule {
        eprintln!("  {rule}: {n}");
    }
}

/// Lines in the text files the scan reads (same walk, same skips).
fn count_lines(root: &Path) -> usize {
    let mut total = 0;
    for entry in ignore::WalkBuilder::new(root)
        .hidden(false)
        .require_git(false)
        .build()
        .flatten()
    {
        if entry.file_type().is_some_and(|t| t.is_file())
            && let Ok(bytes) = std::fs::read(entry.path())
            && bytes.len() <= 1 << 20
            && !bytes[..bytes.len().min(8192)].contains(&0)
        {
            total += bytes.iter().filter(|&&b| b == b'\n').count();
        }
    }
    total
}
