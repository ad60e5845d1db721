//! The default secret rules against gitleaks' own test cases for its generic rule and
//! against real lines of ordinary code that the previous rules reported as secrets.

mod common;

use sluice_plugin_security_scan::secrets::{INLINE_ALLOW, RuleSet, scan_text};

#[derive(serde::Deserialize)]
struct Cases {
    #[serde(rename = "true-positive")]
    true_positives: Vec<Case>,
    #[serde(rename = "false-positive")]
    false_positives: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    #[serde(default)]
    name: String,
    text: String,
}

fn cases() -> Cases {
    toml::from_str(&common::read("secrets/gitleaks-generic-cases.toml")).unwrap()
}

#[test]
fn gitleaks_generic_true_positives_are_found() {
    let rules = RuleSet::default_rules();
    let cases = cases();
    assert!(cases.true_positives.len() > 50);
    let missed: Vec<&str> = cases
        .true_positives
        .iter()
        .filter(|case| scan_text(&rules, "config.txt", &case.text).is_empty())
        .map(|case| case.name.as_str())
        .collect();
    assert!(missed.is_empty(), "missed true positives: {missed:#?}");
}

#[test]
fn gitleaks_generic_false_positives_are_not_reported() {
    let rules = RuleSet::default_rules();
    let cases = cases();
    assert!(cases.false_positives.len() > 50);
    let reported: Vec<(&str, Vec<String>)> = cases
        .false_positives
        .iter()
        .map(|case| {
            let leaks = scan_text(&rules, "src/code.txt", &case.text);
            (
                case.text.as_str(),
                leaks
                    .into_iter()
                    .filter(|l| l.rule_id == "generic-api-key")
                    .map(|l| l.rule_id)
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, ids)| !ids.is_empty())
        .collect();
    assert!(reported.is_empty(), "false positives: {reported:#?}");
}

/// Regression (issue 9): `password=credential.password`, `customKeyword =
/// 'custom-value-42'` and real lines from crates and paramiko were high-severity
/// secrets that failed the scan.
#[test]
fn ordinary_code_from_real_projects_is_not_a_secret() {
    let rules = RuleSet::default_rules();
    let text = common::read("secrets/ordinary-code.txt");
    let leaks = scan_text(&rules, "src/lib.rs", &text);
    let lines: Vec<&str> = leaks
        .iter()
        .map(|l| text.lines().nth(l.line as usize - 1).unwrap())
        .collect();
    assert!(leaks.is_empty(), "reported: {lines:#?}");
}

/// Real-shaped tokens of common providers, built at run time so that this file holds
/// none; each must be found by its own rule, and `gitleaks:allow` on its line (or on
/// any line its match spans) silences it.
#[test]
fn provider_tokens_are_found_by_their_rule_and_silenced_inline() {
    let rules = RuleSet::default_rules();
    let samples = [
        (
            "github-pat",
            format!(
                "GITHUB_TOKEN={}",
                ["ghp_", "R7xK2mQ9vL4pT8wZ3nB6cY1dF5gH0jS2aE4u"].concat()
            ),
        ),
        (
            "aws-access-token",
            format!(
                "aws_access_key_id = {}",
                ["AKIA", "QYLPMN5HHHFPZAM2"].concat()
            ),
        ),
        (
            "gitlab-pat",
            format!("token: {}", ["glpat-", "x9Rk2Wq7Zn4Vb8Lt1Mj6"].concat()),
        ),
        (
            "stripe-access-token",
            format!(
                "STRIPE={}",
                ["sk_live_", "4eC39HqLyjWDarjtT1zdp7dc"].concat()
            ),
        ),
        (
            "private-key",
            format!(
                "-----BEGIN RSA {}-----\n{}\n-----END RSA PRIVATE KEY-----",
                "PRIVATE KEY", "MIIEowIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi+Lz4b1Z6vKbL4d5sV2xZ9mQ"
            ),
        ),
        (
            "generic-api-key",
            format!(
                "db_password = \"{}\"",
                ["Wz4Kb1Vm9L", "c5Yj8Hn0Pq"].concat()
            ),
        ),
    ];
    for (rule, text) in &samples {
        let found = scan_text(&rules, "deploy/env.sh", text);
        assert_eq!(
            found.iter().map(|l| l.rule_id.as_str()).collect::<Vec<_>>(),
            [*rule],
            "{rule}"
        );
        // The marker on the first line of the match.
        let first_line_end = text.find('\n').unwrap_or(text.len());
        let allowed = format!(
            "{}  # {INLINE_ALLOW}{}",
            &text[..first_line_end],
            &text[first_line_end..]
        );
        assert!(
            scan_text(&rules, "deploy/env.sh", &allowed).is_empty(),
            "{rule}: {INLINE_ALLOW} is honoured"
        );
        // On another line it does not apply.
        let elsewhere = format!("# {INLINE_ALLOW}\n\n{text}\n");
        assert_eq!(
            scan_text(&rules, "deploy/env.sh", &elsewhere).len(),
            1,
            "{rule}"
        );
    }
}

#[test]
fn gitleaks_global_allowlist_applies() {
    let rules = RuleSet::default_rules();
    let token = ["ghp_", "R7xK2mQ9vL4pT8wZ3nB6cY1dF5gH0jS2aE4u"].concat();
    for path in [
        "web/node_modules/x/index.js",
        "web/package-lock.json",
        "Cargo.lock",
        "go.sum",
        "docs/logo.svg",
    ] {
        assert!(scan_text(&rules, path, &token).is_empty(), "{path}");
    }
    // Template placeholders and variables are not secrets.
    for text in [
        "password = \"${DB_PASSWORD}\"",
        "api_key: \"{{ secrets.API_KEY }}\"",
        "token = \"$GITHUB_TOKEN\"",
    ] {
        assert!(scan_text(&rules, "ci.yml", text).is_empty(), "{text}");
    }
}
