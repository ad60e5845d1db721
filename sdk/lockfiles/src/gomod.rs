//! Go modules: `go.mod` (`require` lines, single or in blocks, with `replace`
//! directives applied; a module replaced by a local folder is not scanned) and
//! `go.sum` (every module with a content hash, keeping the highest version of each:
//! go.sum also lists versions that minimal version selection did not choose).
//! Versions keep their `v`; the Go ordering strips it.

use std::collections::HashMap;

use super::{Checksum, ChecksumAlgorithm, Package, Parsed};
use crate::versions::{Ecosystem, go};

/// `replace` key: module and optional version.
type ReplaceKey = (String, Option<String>);

/// Parse a go.mod.
pub fn parse_go_mod(text: &str) -> Result<Parsed, String> {
    let mut requires: Vec<(String, String, u32)> = Vec::new();
    let mut replaces: HashMap<ReplaceKey, Option<(String, String)>> = HashMap::new();
    let mut block: Option<&str> = None;
    for (index, raw) in text.lines().enumerate() {
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let line = raw.split("//").next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if block.is_some() && line == ")" {
            block = None;
            continue;
        }
        let (verb, rest) = match block {
            Some(verb) => (verb, line),
            None => {
                let (verb, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
                let rest = rest.trim();
                if rest == "(" {
                    block = Some(match verb {
                        "require" => "require",
                        "replace" => "replace",
                        _ => "other",
                    });
                    continue;
                }
                (verb, rest)
            }
        };
        match verb {
            "require" => {
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let [module, version] = fields[..] else {
                    return Err(format!(
                        "go.mod line {number}: expected `require <module> <version>`"
                    ));
                };
                requires.push((unquote_go(module), version.to_owned(), number));
            }
            "replace" => {
                let (from, to) = rest
                    .split_once("=>")
                    .ok_or_else(|| format!("go.mod line {number}: `replace` without `=>`"))?;
                let from: Vec<&str> = from.split_whitespace().collect();
                let to: Vec<&str> = to.split_whitespace().collect();
                let key = (
                    unquote_go(from.first().copied().unwrap_or_default()),
                    from.get(1).map(|v| (*v).to_owned()),
                );
                let target = match to[..] {
                    [module, version] => Some((unquote_go(module), version.to_owned())),
                    _ => None, // a local folder
                };
                replaces.insert(key, target);
            }
            _ => {}
        }
    }
    let mut parsed = Parsed::default();
    for (module, version, line) in requires {
        let replacement = replaces
            .get(&(module.clone(), Some(version.clone())))
            .or_else(|| replaces.get(&(module.clone(), None)));
        let (module, version) = match replacement {
            None => (module, version),
            Some(Some(target)) => target.clone(),
            Some(None) => {
                parsed
                    .skipped
                    .push(format!("{module} {version}: replaced by a local folder"));
                continue;
            }
        };
        go::parse(&version).map_err(|e| format!("go.mod line {line}: {e}"))?;
        parsed
            .packages
            .push(Package::new(Ecosystem::Go, module, version, Some(line)));
    }
    Ok(parsed)
}

/// Parse a go.sum.
pub fn parse_go_sum(text: &str) -> Result<Parsed, String> {
    let mut best: HashMap<String, (String, u32, String)> = HashMap::new();
    let mut order = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let [module, version, hash] = fields[..] else {
            return Err(format!(
                "go.sum line {number}: expected `<module> <version> <hash>`"
            ));
        };
        if version.ends_with("/go.mod") {
            continue;
        }
        let parsed_version =
            go::parse(version).map_err(|e| format!("go.sum line {number}: {e}"))?;
        match best.get_mut(module) {
            Some((v, l, h)) => {
                if crate::versions::semver::compare(&parsed_version, &go::parse(v)?)
                    == std::cmp::Ordering::Greater
                {
                    *v = version.to_owned();
                    *l = number;
                    *h = hash.to_owned();
                }
            }
            None => {
                order.push(module.to_owned());
                best.insert(
                    module.to_owned(),
                    (version.to_owned(), number, hash.to_owned()),
                );
            }
        }
    }
    let packages = order
        .into_iter()
        .map(|m| {
            let (v, l, h) = best.remove(&m).unwrap_or_default();
            let mut package = Package::new(Ecosystem::Go, m, v, Some(l));
            package.checksums.push(Checksum {
                algorithm: ChecksumAlgorithm::GoH1,
                value: h,
            });
            package
        })
        .collect();
    Ok(Parsed {
        packages,
        ..Parsed::default()
    })
}

fn unquote_go(s: &str) -> String {
    s.trim_matches(['"', '`']).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_mod_requires_and_replaces() {
        let text = "module example.com/app\n\ngo 1.21\n\nrequire golang.org/x/text v0.3.7\n\nrequire (\n\tgithub.com/pkg/errors v0.9.1 // indirect\n\texample.com/local v1.0.0\n\texample.com/old v1.0.0\n)\n\nreplace example.com/local => ../local\nreplace example.com/old v1.0.0 => example.com/new v1.2.0\n";
        let parsed = parse_go_mod(text).unwrap();
        let got: Vec<_> = parsed
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.line.unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("golang.org/x/text", "v0.3.7", 5),
                ("github.com/pkg/errors", "v0.9.1", 8),
                ("example.com/new", "v1.2.0", 10)
            ]
        );
        assert_eq!(parsed.skipped.len(), 1);
        assert!(
            parse_go_mod("require (\n  x\n)\n")
                .unwrap_err()
                .contains("line 2")
        );
    }

    #[test]
    fn go_sum_keeps_the_highest_version() {
        let text = "golang.org/x/text v0.3.0 h1:a=\ngolang.org/x/text v0.3.0/go.mod h1:b=\ngolang.org/x/text v0.3.7 h1:c=\ngithub.com/pkg/errors v0.9.1 h1:d=\n";
        let parsed = parse_go_sum(text).unwrap();
        let got: Vec<_> = parsed
            .packages
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.version.as_str(),
                    p.line,
                    p.checksums[0].value.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("golang.org/x/text", "v0.3.7", Some(3), "h1:c="),
                ("github.com/pkg/errors", "v0.9.1", Some(4), "h1:d=")
            ]
        );
    }
}
