//! `Gemfile.lock`: the `specs:` of `GEM` sections (gems from a rubygems source) and of
//! `GIT` sections (which also record `remote:` and `revision:`). `PATH` sections are the
//! project's own gems and are not scanned. A platform suffix (`1.13.0-x86_64-linux`) is
//! not part of the version.

use super::{GitSource, Package, Parsed};
use crate::versions::Ecosystem;

/// Parse a Gemfile.lock.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut section = "";
    let mut git = GitSource::default();
    let mut in_specs = false;
    for (index, line) in text.lines().enumerate() {
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        if !line.starts_with(' ') {
            section = line.trim();
            in_specs = false;
            git = GitSource::default();
            continue;
        }
        if !matches!(section, "GEM" | "GIT" | "PATH") {
            continue;
        }
        let trimmed = line.trim();
        if line.starts_with("  ") && !line.starts_with("   ") {
            in_specs = trimmed == "specs:";
            if let Some(remote) = trimmed.strip_prefix("remote: ") {
                git.repo = remote.to_owned();
            } else if let Some(rev) = trimmed.strip_prefix("revision: ") {
                git.commit = Some(rev.to_owned());
            } else if let Some(r) = trimmed
                .strip_prefix("branch: ")
                .or_else(|| trimmed.strip_prefix("tag: "))
                .or_else(|| trimmed.strip_prefix("ref: "))
            {
                git.reference = Some(r.to_owned());
            }
            continue;
        }
        // Gems are at four spaces; their dependencies at six.
        if !in_specs || !line.starts_with("    ") || line.starts_with("     ") {
            continue;
        }
        let (name, rest) = trimmed
            .split_once(" (")
            .ok_or_else(|| format!("Gemfile.lock line {number}: expected `name (version)`"))?;
        let version = rest
            .strip_suffix(')')
            .ok_or_else(|| format!("Gemfile.lock line {number}: unclosed `(`"))?;
        let version = version.split('-').next().unwrap_or(version);
        if section == "PATH" {
            parsed.skipped.push(format!("{name} {version}: local gem"));
            continue;
        }
        let mut package = Package::new(Ecosystem::RubyGems, name, version, Some(number));
        if section == "GIT" {
            package.git = Some(git.clone());
        }
        parsed.packages.push(package);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gem_git_and_path_sections() {
        let text = "GIT\n  remote: https://github.com/o/g.git\n  revision: abc123\n  branch: main\n  specs:\n    g (0.1.0)\n\nPATH\n  remote: .\n  specs:\n    mine (1.0.0)\n\nGEM\n  remote: https://rubygems.org/\n  specs:\n    nokogiri (1.13.0-x86_64-linux)\n      racc (~> 1.4)\n    rack (2.2.3)\n\nPLATFORMS\n  ruby\n";
        let parsed = parse(text).unwrap();
        let got: Vec<_> = parsed
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.line.unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("g", "0.1.0", 6),
                ("nokogiri", "1.13.0", 16),
                ("rack", "2.2.3", 18)
            ]
        );
        let git = parsed.packages[0].git.clone().unwrap();
        assert_eq!(
            (git.commit.as_deref(), git.reference.as_deref()),
            (Some("abc123"), Some("main"))
        );
        assert_eq!(parsed.skipped.len(), 1);
        assert!(
            parse("GEM\n  specs:\n    broken\n")
                .unwrap_err()
                .contains("line 3")
        );
    }
}
