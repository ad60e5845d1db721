//! Pinned `requirements.txt` (what `pip freeze` or `pip-compile` writes): `name==1.2`
//! or `name===1.2`, with optional extras, environment markers, `--hash` options and `\`
//! continuations. Lines that do not pin an exact version (ranges, URLs, editable
//! installs, `-r` includes) cannot be matched against advisories and are listed as
//! skipped, so the report can say that the scan is incomplete.

use super::{Package, Parsed};
use crate::versions::Ecosystem;

/// Parse a requirements file.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut logical = String::new();
    let mut start = 0u32;
    for (index, raw) in text.lines().enumerate() {
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        if logical.is_empty() {
            start = number;
        }
        // A comment starts at `#` at the line start or after whitespace.
        let line = match raw
            .find(" #")
            .or_else(|| raw.trim_start().starts_with('#').then_some(0))
        {
            Some(cut) => &raw[..cut],
            None => raw,
        };
        if let Some(continued) = line.trim_end().strip_suffix('\\') {
            logical.push_str(continued);
            logical.push(' ');
            continue;
        }
        logical.push_str(line);
        let entry = std::mem::take(&mut logical);
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        if entry.starts_with('-') {
            parsed.skipped.push(format!(
                "line {start}: option `{}` not followed",
                entry.split_whitespace().next().unwrap_or(entry)
            ));
            continue;
        }
        let requirement = entry.split(';').next().unwrap_or(entry);
        let requirement = requirement
            .split(" --")
            .next()
            .unwrap_or(requirement)
            .trim();
        match pinned(requirement) {
            Some((name, version)) => {
                parsed
                    .packages
                    .push(Package::new(Ecosystem::PyPI, name, version, Some(start)))
            }
            None => parsed.skipped.push(format!(
                "line {start}: `{requirement}` does not pin an exact version"
            )),
        }
    }
    Ok(parsed)
}

/// `name[extra]==1.2` → `(name, 1.2)`.
fn pinned(requirement: &str) -> Option<(String, String)> {
    let (name, version) = requirement
        .split_once("===")
        .or_else(|| requirement.split_once("=="))?;
    let name = name.split('[').next()?.trim();
    let version = version.trim();
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok || version.is_empty() || version.contains([',', '*', ' ', '<', '>', '!', '~']) {
        return None;
    }
    Some((name.to_owned(), version.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pins_and_skips_the_rest() {
        let text = "# comment\nJinja2==2.10\nrequests[socks]==2.25.0 ; python_version >= \"3\"  # why\nurllib3==1.26.4 \\\n    --hash=sha256:abc\nflask>=1.0\n-r other.txt\nidna===2.10\nwild==1.*\n";
        let parsed = parse(text).unwrap();
        let got: Vec<_> = parsed
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.line.unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("Jinja2", "2.10", 2),
                ("requests", "2.25.0", 3),
                ("urllib3", "1.26.4", 4),
                ("idna", "2.10", 8)
            ]
        );
        assert_eq!(parsed.skipped.len(), 3, "{:?}", parsed.skipped);
    }
}
