//! `[[target]]` and a step's `targets` / `ssh` grants, read and checked with
//! file:line:column on every error.

use std::path::Path;

use serde::Deserialize;
use serde_spanned::Spanned;

use super::{HostKeyChecking, SshGrant, TargetKind, TargetSpec};
use crate::config::{ConfigError, SourceFile, expand_home, normalize};

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
        let kind = match (&t.local, &t.ssh) {
            (Some(folder), None) => TargetKind::Local {
                folder: normalize(&dir.join(expand_home(folder.get_ref()))),
            },
            (None, Some(address)) => {
                let (host, port) = match address.get_ref().rsplit_once(':') {
                    Some((h, p)) => match p.parse::<u16>() {
                        Ok(p) => (h.to_string(), p),
                        Err(_) => {
                            errors.push(source.error(
                                address.span().start,
                                format!("`ssh` = \"{}\": the port is not a number", address.get_ref()),
                            ));
                            continue;
                        }
                    },
                    None => (address.get_ref().clone(), 22),
                };
                TargetKind::Ssh {
                    host,
                    port,
                    root: t.root.as_ref().map_or("/".into(), |r| r.get_ref().clone()),
                }
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
        let vars = t
            .vars
            .as_ref()
            .map(|v| {
                v.get_ref()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_string)))
                    .collect()
            })
            .unwrap_or_default();
        targets.push(TargetSpec {
            name: t.name.get_ref().clone(),
            group: t.group.get_ref().clone(),
            kind,
            url: t.url.as_ref().map(|u| u.get_ref().clone()),
            vars,
            pos: source.pos(entry.span().start),
        });
    }
    targets
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
    SshGrant {
        identity: r.identity.as_ref().map(|i| i.get_ref().clone()),
        known_hosts: r
            .known_hosts
            .as_ref()
            .map(|k| normalize(&dir.join(expand_home(k.get_ref())))),
        user: r.user.as_ref().map(|u| u.get_ref().clone()),
        host_key_checking,
    }
}
