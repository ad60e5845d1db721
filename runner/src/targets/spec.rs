//! `[[target]]` and a step's `targets` / `ssh` grants, read and checked with
//! file:line:column on every error, and the targets a step's grant resolves to
//! ([`granted`]).
//!
//! What is checked: names and groups are identifiers, names are unique and no name is
//! another target's group; exactly one of `local` / `ssh`; `root` only with `ssh`, and
//! absolute; `url` an http(s) origin; `vars` keys are variable names the runner does
//! not set itself, with string values; ssh ports 1-65535. A step's `targets` entries
//! name declared groups or targets; a step granted an SSH target has an `ssh` grant
//! with `known-hosts` and an `identity` naming a `[secrets]` entry; an `ssh` grant
//! needs an SSH target to be for.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;
use serde_spanned::Spanned;

use super::{HostKeyChecking, SshGrant, TargetKind, TargetSpec};
use crate::config::{
    ConfigError, Grants, PathSegment, SourceFile, Stage, check_ident, expand_home, normalize,
};

/// `[[target]]` as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawTarget {
    pub(crate) name: Spanned<String>,
    pub(crate) group: Spanned<String>,
    pub(crate) local: Option<Spanned<String>>,
    pub(crate) ssh: Option<Spanned<String>>,
    pub(crate) root: Option<Spanned<String>>,
    pub(crate) url: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) vars: Option<Spanned<toml::Table>>,
}

/// A step's `ssh` grant as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawSshGrant {
    pub(crate) identity: Option<Spanned<String>>,
    pub(crate) known_hosts: Option<Spanned<String>>,
    pub(crate) user: Option<Spanned<String>>,
    pub(crate) host_key_checking: Option<Spanned<String>>,
}

/// Variables the runner sets for every hook: a target's `vars` may not name them.
const RESERVED_VARS: &[&str] = &["LIFECYCLE_EVENT", "APPLICATION_NAME"];
/// Prefixes of variables the runner sets for every hook.
const RESERVED_PREFIXES: &[&str] = &["SLUICE_", "DEPLOYMENT_"];

/// Check the `[[target]]` tables; problems go to `errors`.
pub(crate) fn build_targets(
    source: &SourceFile,
    dir: &Path,
    raw: &[Spanned<RawTarget>],
    errors: &mut Vec<ConfigError>,
) -> Vec<TargetSpec> {
    let mut targets = Vec::new();
    for entry in raw {
        let t = entry.get_ref();
        check_ident(source, &t.name, "target name", errors);
        check_ident(source, &t.group, "target group", errors);
        if targets
            .iter()
            .any(|o: &TargetSpec| &o.name == t.name.get_ref())
        {
            errors.push(source.error(
                t.name.span().start,
                format!(
                    "target `{}` is declared twice; target names must be unique in the pipeline",
                    t.name.get_ref()
                ),
            ));
        }
        if let (None, Some(root)) = (&t.ssh, &t.root) {
            errors.push(source.error(
                root.span().start,
                format!(
                    "target `{}`: `root` is only for `ssh` targets; a `local` target's folder is its root",
                    t.name.get_ref()
                ),
            ));
        }
        let kind = match (&t.local, &t.ssh) {
            (Some(folder), None) => {
                if folder.get_ref().trim().is_empty() || folder.get_ref().contains('\0') {
                    errors.push(source.error(
                        folder.span().start,
                        format!(
                            "target `{}`: `local` = \"{}\" is not a folder path",
                            t.name.get_ref(),
                            folder.get_ref()
                        ),
                    ));
                    continue;
                }
                TargetKind::Local {
                    folder: normalize(&dir.join(expand_home(folder.get_ref()))),
                }
            }
            (None, Some(address)) => {
                let (host, port) = match ssh_address(address.get_ref()) {
                    Ok(hp) => hp,
                    Err(why) => {
                        errors.push(source.error(
                            address.span().start,
                            format!(
                                "target `{}`: `ssh` = \"{}\" {why}",
                                t.name.get_ref(),
                                address.get_ref()
                            ),
                        ));
                        continue;
                    }
                };
                let root = match &t.root {
                    None => "/".to_string(),
                    Some(r) => match check_root(r.get_ref()) {
                        Ok(root) => root,
                        Err(why) => {
                            errors.push(source.error(
                                r.span().start,
                                format!(
                                    "target `{}`: `root` = \"{}\" {why}",
                                    t.name.get_ref(),
                                    r.get_ref()
                                ),
                            ));
                            continue;
                        }
                    },
                };
                TargetKind::Ssh { host, port, root }
            }
            _ => {
                errors.push(source.error(
                    entry.span().start,
                    format!(
                        "target `{}` needs exactly one of `local` (a folder) or `ssh` (host[:port])",
                        t.name.get_ref()
                    ),
                ));
                continue;
            }
        };
        if let Some(url) = &t.url
            && let Err(why) = check_origin(url.get_ref())
        {
            errors.push(source.error(
                url.span().start,
                format!(
                    "target `{}`: `url` = \"{}\" {why}",
                    t.name.get_ref(),
                    url.get_ref()
                ),
            ));
        }
        let vars = t
            .vars
            .as_ref()
            .map(|v| build_vars(source, t.name.get_ref(), v, errors))
            .unwrap_or_default();
        targets.push(TargetSpec {
            name: t.name.get_ref().clone(),
            group: t.group.get_ref().clone(),
            kind,
            url: t
                .url
                .as_ref()
                .map(|u| u.get_ref().trim_end_matches('/').to_string()),
            vars,
            pos: source.pos(entry.span().start),
        });
    }
    // A name that is another target's group would make a grant entry ambiguous.
    for entry in raw {
        let t = entry.get_ref();
        if let Some(other) = targets
            .iter()
            .find(|o| &o.group == t.name.get_ref() && &o.name != t.name.get_ref())
        {
            errors.push(source.error(
                t.name.span().start,
                format!(
                    "target name `{}` is also the group of target `{}`; a grant entry would not say which is meant, rename one",
                    t.name.get_ref(),
                    other.name
                ),
            ));
        }
    }
    targets
}

/// `host[:port]` (IPv6 in brackets: `[::1]:22`) of an `ssh` target.
fn ssh_address(address: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("has a `[` without its `]`; write an IPv6 address as `[::1]:22`")?;
        match after {
            "" => (host, None),
            p if p.starts_with(':') => (host, Some(&p[1..])),
            _ => return Err("has text after `]`; write `[address]:port`".into()),
        }
    } else {
        match address.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (address, None),
        }
    };
    let port = match port {
        None => 22,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => {
                return Err(format!(
                    "has port `{p}`; a port is a number from 1 to 65535"
                ));
            }
            Ok(p) => p,
        },
    };
    // The host goes on the ssh command line: it must not be taken for an option.
    let ok = !host.is_empty()
        && !host.starts_with('-')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !ok {
        return Err("is not host[:port]: a host name or address, optionally `:port`".into());
    }
    Ok((host.to_string(), port))
}

/// An ssh target's `root`: absolute, normalized, without a trailing `/` (except `/`).
fn check_root(root: &str) -> Result<String, String> {
    if !root.starts_with('/') {
        return Err("must be an absolute path (where absolute paths land on the host, e.g. \"/\" or \"/srv/box-1\")".into());
    }
    if root.contains('\0') || root.contains('\'') || root.contains('\n') {
        return Err(
            "has a character a path on the host may not have here (NUL, `'`, newline)".into(),
        );
    }
    if root.split('/').any(|c| c == "..") {
        return Err("must not contain `..`".into());
    }
    let normalized = normalize(Path::new(root)).display().to_string();
    Ok(if normalized.is_empty() {
        "/".into()
    } else {
        normalized
    })
}

/// A target's `url`: `http://host[:port]` or `https://...`, nothing after the origin.
fn check_origin(url: &str) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|e| {
        format!("is not a URL ({e}); write an origin such as \"http://127.0.0.1:8081\"")
    })?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("must start with http:// or https://".into()),
    }
    if uri.authority().is_none_or(|a| a.host().is_empty()) {
        return Err("has no host".into());
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("must not carry a user or password".into());
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err("must be an origin (scheme, host and port only), without a path or query; checks add their own path".into());
    }
    Ok(())
}

/// A target's `vars`: variable names the runner does not set, with string values.
fn build_vars(
    source: &SourceFile,
    target: &str,
    vars: &Spanned<toml::Table>,
    errors: &mut Vec<ConfigError>,
) -> Vec<(String, String)> {
    let at = vars.span().start;
    let mut out = Vec::new();
    for (key, value) in vars.get_ref() {
        let valid_name = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            errors.push(source.error(
                at,
                format!("target `{target}`: `vars` key `{key}` is not an environment variable name (letters, digits and `_`, not starting with a digit)"),
            ));
            continue;
        }
        if RESERVED_VARS.contains(&key.as_str())
            || RESERVED_PREFIXES.iter().any(|p| key.starts_with(p))
        {
            errors.push(source.error(
                at,
                format!("target `{target}`: `vars` key `{key}` is set by the runner for every hook (SLUICE_*, DEPLOYMENT_*, LIFECYCLE_EVENT, APPLICATION_NAME); choose another name"),
            ));
            continue;
        }
        match value.as_str() {
            Some(s) if !s.contains('\0') => out.push((key.clone(), s.to_string())),
            _ => errors.push(source.error(
                at,
                format!("target `{target}`: `vars` value of `{key}` must be a string (write {key} = \"{}\")", value.to_string().trim_matches('"')),
            )),
        }
    }
    out
}

/// A step's `ssh` grant, checked.
pub(crate) fn build_ssh_grant(
    source: &SourceFile,
    dir: &Path,
    raw: &Spanned<RawSshGrant>,
    errors: &mut Vec<ConfigError>,
) -> SshGrant {
    let r = raw.get_ref();
    let host_key_checking = match r.host_key_checking.as_ref().map(|h| h.get_ref().as_str()) {
        None | Some("strict") => HostKeyChecking::Strict,
        Some("accept-new") => HostKeyChecking::AcceptNew,
        Some(other) => {
            errors.push(source.error(
                r.host_key_checking.as_ref().expect("matched Some").span().start,
                format!("`host-key-checking` = \"{other}\": use \"strict\" (the default) or \"accept-new\"; host keys are never left unchecked"),
            ));
            HostKeyChecking::Strict
        }
    };
    if let Some(user) = &r.user {
        let u = user.get_ref();
        let ok = !u.is_empty()
            && !u.starts_with('-')
            && u.len() <= 32
            && u.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !ok {
            errors.push(source.error(
                user.span().start,
                format!("`ssh` grant: `user` = \"{u}\" is not a user name (letters, digits, `_`, `-`, `.`; not starting with `-`)"),
            ));
        }
    }
    if let Some(k) = &r.known_hosts
        && k.get_ref().trim().is_empty()
    {
        errors.push(source.error(
            k.span().start,
            "`ssh` grant: `known-hosts` is empty; name the known_hosts file with the targets' host keys",
        ));
    }
    SshGrant {
        identity: r.identity.as_ref().map(|i| i.get_ref().clone()),
        known_hosts: r
            .known_hosts
            .as_ref()
            .filter(|k| !k.get_ref().trim().is_empty())
            .map(|k| normalize(&dir.join(expand_home(k.get_ref())))),
        user: r.user.as_ref().map(|u| u.get_ref().clone()),
        host_key_checking,
    }
}

/// The targets a step's grant reaches: each `targets` entry is a group (all its
/// targets) or a target's name; in the pipeline's order, each once.
pub fn granted(pipeline_targets: &[TargetSpec], grants: &Grants) -> Vec<TargetSpec> {
    pipeline_targets
        .iter()
        .filter(|t| grants.targets.iter().any(|g| *g == t.name || *g == t.group))
        .cloned()
        .collect()
}

/// Check every step's `targets` and `ssh` grants against the declared targets and
/// secrets (after the stages are built).
pub(crate) fn check_grants(
    source: &SourceFile,
    targets: &[TargetSpec],
    stages: &[Stage],
    declared_secrets: &HashSet<&str>,
    errors: &mut Vec<ConfigError>,
) {
    let mut known: Vec<&str> = Vec::new();
    for t in targets {
        for n in [t.group.as_str(), t.name.as_str()] {
            if !known.contains(&n) {
                known.push(n);
            }
        }
    }
    let at = |step: &crate::config::Step, keys: &[&str], index: Option<usize>| {
        let mut path: Vec<PathSegment> = std::iter::once("grants")
            .chain(keys.iter().copied())
            .map(|k| PathSegment::Key(k.into()))
            .collect();
        path.extend(index.map(PathSegment::Index));
        source.span_of(&step.key_path(&path)).map_or(0, |s| s.start)
    };
    for step in stages.iter().flat_map(|s| &s.steps) {
        for (i, entry) in step.grants.targets.iter().enumerate() {
            if known.contains(&entry.as_str()) {
                continue;
            }
            let mut message = format!(
                "step `{}`: `targets` grant `{entry}` is not a declared target group or target",
                step.id
            );
            if let Some(meant) = crate::suggest::closest(entry, known.iter().copied()) {
                message.push_str(&format!("; did you mean `{meant}`?"));
            }
            if known.is_empty() {
                message.push_str(" (the pipeline declares no `[[target]]`)");
            } else {
                message.push_str(&format!(" (declared: {})", known.join(", ")));
            }
            errors.push(source.error(at(step, &["targets"], Some(i)), message));
        }
        let reached = granted(targets, &step.grants);
        let first_ssh = reached
            .iter()
            .find(|t| matches!(t.kind, TargetKind::Ssh { .. }));
        match (&step.grants.ssh, first_ssh) {
            (None, None) => {}
            (Some(_), None) => errors.push(source.error(
                at(step, &["ssh"], None),
                format!(
                    "step `{}` grants ssh but no ssh target; grant an `ssh` target under `targets`, or remove the `ssh` grant",
                    step.id
                ),
            )),
            (None, Some(t)) => errors.push(source.error(
                at(step, &["targets"], None),
                format!(
                    "step `{}` is granted the ssh target `{}` but has no `ssh` grant; add ssh = {{ identity = \"<a [secrets] entry holding the private key>\", known-hosts = \"<known_hosts file>\" }}",
                    step.id, t.name
                ),
            )),
            (Some(ssh), Some(_)) => {
                if ssh.known_hosts.is_none() {
                    errors.push(source.error(
                        at(step, &["ssh"], None),
                        format!(
                            "step `{}`: the `ssh` grant needs `known-hosts` (a known_hosts file with the targets' host keys); host keys are always checked, `host-key-checking = \"accept-new\"` only lets a first key in",
                            step.id
                        ),
                    ));
                }
                match &ssh.identity {
                    None => errors.push(source.error(
                        at(step, &["ssh"], None),
                        format!(
                            "step `{}`: the `ssh` grant needs `identity`, the `[secrets]` entry holding the private key",
                            step.id
                        ),
                    )),
                    Some(id) if !declared_secrets.contains(id.as_str()) => {
                        let mut message = format!(
                            "step `{}`: `ssh` grant `identity` = \"{id}\" is not a declared secret; declare it under [secrets] (e.g. {id} = {{ file = \"~/.ssh/deploy_key\" }})",
                            step.id
                        );
                        if let Some(meant) =
                            crate::suggest::closest(id, declared_secrets.iter().copied())
                        {
                            message.push_str(&format!("; did you mean `{meant}`?"));
                        }
                        errors.push(source.error(at(step, &["ssh", "identity"], None), message));
                    }
                    Some(_) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "[pipeline]\nname = \"shop\"\n[secrets]\ndeploy-key = { file = \"key\" }\n";

    fn parse(text: &str) -> Result<crate::config::Pipeline, Vec<String>> {
        match crate::config::parse(Path::new("/p/sluice.toml"), format!("{HEAD}{text}")) {
            Ok(p) => Ok(p),
            Err(crate::config::PipelineFileError::Invalid(e)) => {
                Err(e.iter().map(|e| e.to_string()).collect())
            }
            Err(e) => Err(vec![e.to_string()]),
        }
    }

    /// One error whose text contains `needle`, at `line` of the file.
    fn fails(text: &str, line: usize, needle: &str) {
        let errors = parse(text).expect_err("must be refused");
        assert!(
            errors
                .iter()
                .any(|e| e.contains(needle) && e.starts_with(&format!("/p/sluice.toml:{line}:"))),
            "no error at line {line} containing {needle:?} in {errors:#?}"
        );
    }

    fn step(grants: &str) -> String {
        format!(
            "[[stage]]\nname = \"prod\"\n[[stage.step]]\nid = \"ship\"\nuses = \"builtin:deploy\"\n[stage.step.grants]\n{grants}\n"
        )
    }

    const FLEET: &str = "[[target]]\nname = \"box-1\"\ngroup = \"one-box\"\nlocal = \"fleet/box-1\"\nurl = \"http://127.0.0.1:18081\"\nvars = { PORT = \"18081\" }\n[[target]]\nname = \"box-2\"\ngroup = \"zone-a\"\nlocal = \"fleet/box-2\"\n[[target]]\nname = \"web-1\"\ngroup = \"zone-a\"\nssh = \"10.0.0.7:2222\"\nroot = \"/srv/web-1/\"\n";

    #[test]
    fn targets_are_read_with_their_kind_root_and_vars() {
        let p = parse(&format!("{FLEET}{}", step("targets = [\"one-box\"]"))).unwrap();
        assert_eq!(p.targets.len(), 3);
        assert_eq!(
            p.targets[0].kind,
            TargetKind::Local {
                folder: "/p/fleet/box-1".into()
            }
        );
        assert_eq!(p.targets[0].vars, vec![("PORT".into(), "18081".into())]);
        assert_eq!(p.targets[0].url.as_deref(), Some("http://127.0.0.1:18081"));
        assert_eq!(
            p.targets[2].kind,
            TargetKind::Ssh {
                host: "10.0.0.7".into(),
                port: 2222,
                root: "/srv/web-1".into()
            }
        );
    }

    #[test]
    fn granted_resolves_groups_and_names_in_pipeline_order_once() {
        let p = parse(&format!("{FLEET}{}", step("targets = [\"one-box\"]"))).unwrap();
        let grants = Grants {
            targets: vec!["box-2".into(), "one-box".into(), "zone-a".into()],
            ..Grants::default()
        };
        let names: Vec<String> = granted(&p.targets, &grants)
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["box-1", "box-2", "web-1"]);
        let none = Grants::default();
        assert!(granted(&p.targets, &none).is_empty());
    }

    #[test]
    fn bad_names_and_duplicates_are_errors() {
        fails(
            "[[target]]\nname = \"box 1\"\ngroup = \"g\"\nlocal = \"a\"\n",
            6,
            "target name `box 1`",
        );
        fails(
            "[[target]]\nname = \"b\"\ngroup = \"-g\"\nlocal = \"a\"\n",
            7,
            "target group `-g`",
        );
        fails(
            "[[target]]\nname = \"b\"\ngroup = \"g\"\nlocal = \"a\"\n[[target]]\nname = \"b\"\ngroup = \"g\"\nlocal = \"c\"\n",
            10,
            "target `b` is declared twice",
        );
        fails(
            "[[target]]\nname = \"b\"\ngroup = \"g\"\nlocal = \"a\"\n[[target]]\nname = \"g\"\ngroup = \"h\"\nlocal = \"c\"\n",
            10,
            "is also the group of target `b`",
        );
    }

    #[test]
    fn exactly_one_of_local_and_ssh() {
        fails(
            "[[target]]\nname = \"b\"\ngroup = \"g\"\n",
            5,
            "exactly one of `local`",
        );
        fails(
            "[[target]]\nname = \"b\"\ngroup = \"g\"\nlocal = \"a\"\nssh = \"h\"\n",
            5,
            "exactly one of `local`",
        );
    }

    #[test]
    fn root_only_with_ssh_and_absolute() {
        fails(
            "[[target]]\nname = \"b\"\ngroup = \"g\"\nlocal = \"a\"\nroot = \"/x\"\n",
            9,
            "`root` is only for `ssh` targets",
        );
        fails(
            "[[target]]\nname = \"b\"\ngroup = \"g\"\nssh = \"h\"\nroot = \"srv\"\n",
            9,
            "must be an absolute path",
        );
        fails(
            "[[target]]\nname = \"b\"\ngroup = \"g\"\nssh = \"h\"\nroot = \"/srv/../etc\"\n",
            9,
            "must not contain `..`",
        );
    }

    #[test]
    fn ssh_ports_and_hosts_are_checked() {
        fails(
            "[[target]]\nname = \"b\"\ngroup = \"g\"\nssh = \"h:0\"\n",
            8,
            "a port is a number from 1 to 65535",
        );
        fails(
            "[[target]]\nname = \"b\"\ngroup = \"g\"\nssh = \"h:70000\"\n",
            8,
            "a port is a number from 1 to 65535",
        );
        fails(
            "[[target]]\nname = \"b\"\ngroup = \"g\"\nssh = \"-oProxyCommand=x\"\n",
            8,
            "is not host[:port]",
        );
        let p = parse("[[target]]\nname = \"b\"\ngroup = \"g\"\nssh = \"[::1]:2200\"\n[[stage]]\nname = \"s\"\n[[stage.step]]\nid = \"a\"\nuses = \"builtin:command\"\n").unwrap();
        assert_eq!(
            p.targets[0].kind,
            TargetKind::Ssh {
                host: "::1".into(),
                port: 2200,
                root: "/".into()
            }
        );
    }

    #[test]
    fn url_must_be_an_http_origin() {
        fails(
            "[[target]]\nname = \"b\"\ngroup = \"g\"\nlocal = \"a\"\nurl = \"ftp://h\"\n",
            9,
            "must start with http",
        );
        fails(
            "[[target]]\nname = \"b\"\ngroup = \"g\"\nlocal = \"a\"\nurl = \"http://h:1/health\"\n",
            9,
            "must be an origin",
        );
        fails(
            "[[target]]\nname = \"b\"\ngroup = \"g\"\nlocal = \"a\"\nurl = \"not a url\"\n",
            9,
            "is not a URL",
        );
    }

    #[test]
    fn vars_are_variable_names_with_string_values_the_runner_does_not_set() {
        fails(
            "[[target]]\nname = \"b\"\ngroup = \"g\"\nlocal = \"a\"\nvars = { 1X = \"a\" }\n",
            9,
            "not an environment variable name",
        );
        fails(
            "[[target]]\nname = \"b\"\ngroup = \"g\"\nlocal = \"a\"\nvars = { PORT = 8080 }\n",
            9,
            "must be a string (write PORT = \"8080\")",
        );
        fails(
            "[[target]]\nname = \"b\"\ngroup = \"g\"\nlocal = \"a\"\nvars = { SLUICE_RUN = \"a\" }\n",
            9,
            "is set by the runner",
        );
        fails(
            "[[target]]\nname = \"b\"\ngroup = \"g\"\nlocal = \"a\"\nvars = { DEPLOYMENT_ID = \"a\" }\n",
            9,
            "is set by the runner",
        );
        fails(
            "[[target]]\nname = \"b\"\ngroup = \"g\"\nlocal = \"a\"\nvars = { LIFECYCLE_EVENT = \"a\" }\n",
            9,
            "is set by the runner",
        );
    }

    #[test]
    fn a_grant_of_an_undeclared_target_is_an_error_with_a_suggestion() {
        // FLEET ends at line 20; the step's `targets` grant is on line 26.
        fails(
            &format!("{FLEET}{}", step("targets = [\"one-bx\"]")),
            26,
            "`targets` grant `one-bx` is not a declared target group or target; did you mean `one-box`? (declared: one-box, box-1, zone-a, box-2, web-1)",
        );
        fails(
            &step("targets = [\"web\"]"),
            11,
            "(the pipeline declares no `[[target]]`)",
        );
    }

    #[test]
    fn an_ssh_target_needs_an_ssh_grant_with_known_hosts_and_a_declared_identity() {
        fails(
            &format!("{FLEET}{}", step("targets = [\"zone-a\"]")),
            26,
            "is granted the ssh target `web-1` but has no `ssh` grant",
        );
        fails(
            &format!(
                "{FLEET}{}",
                step("targets = [\"web-1\"]\nssh = { identity = \"deploy-key\" }")
            ),
            27,
            "the `ssh` grant needs `known-hosts`",
        );
        fails(
            &format!(
                "{FLEET}{}",
                step("targets = [\"web-1\"]\nssh = { known-hosts = \"kh\" }")
            ),
            27,
            "the `ssh` grant needs `identity`",
        );
        fails(
            &format!(
                "{FLEET}{}",
                step(
                    "targets = [\"web-1\"]\nssh = { identity = \"deploy-kye\", known-hosts = \"kh\" }"
                )
            ),
            27,
            "is not a declared secret; declare it under [secrets] (e.g. deploy-kye = { file = \"~/.ssh/deploy_key\" }); did you mean `deploy-key`?",
        );
        let p = parse(&format!(
            "{FLEET}{}",
            step("targets = [\"web-1\"]\nssh = { identity = \"deploy-key\", known-hosts = \"kh\", user = \"deploy\", host-key-checking = \"accept-new\" }")
        ))
        .unwrap();
        let ssh = p.stages[0].steps[0].grants.ssh.clone().unwrap();
        assert_eq!(ssh.known_hosts.as_deref(), Some(Path::new("/p/kh")));
        assert_eq!(ssh.host_key_checking, HostKeyChecking::AcceptNew);
    }

    #[test]
    fn an_ssh_grant_without_an_ssh_target_is_an_error() {
        fails(
            &format!(
                "{FLEET}{}",
                step(
                    "targets = [\"one-box\"]\nssh = { identity = \"deploy-key\", known-hosts = \"kh\" }"
                )
            ),
            27,
            "grants ssh but no ssh target",
        );
    }

    #[test]
    fn bad_ssh_grant_values_are_errors() {
        fails(
            &format!(
                "{FLEET}{}",
                step(
                    "targets = [\"web-1\"]\nssh = { identity = \"deploy-key\", known-hosts = \"kh\", host-key-checking = \"no\" }"
                )
            ),
            27,
            "host keys are never left unchecked",
        );
        fails(
            &format!(
                "{FLEET}{}",
                step(
                    "targets = [\"web-1\"]\nssh = { identity = \"deploy-key\", known-hosts = \"kh\", user = \"-oX\" }"
                )
            ),
            27,
            "is not a user name",
        );
    }
}
