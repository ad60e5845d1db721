//! `appspec.yml`: the subset of CodeDeploy's AppSpec (EC2/on-premises, version 0.0)
//! that `builtin:deploy` runs, read strictly. Unknown keys, bad values, features this
//! runner does not have (windows, `acls`, `context`, the load-balancer traffic events)
//! and hooks whose script is not in the bundle are errors naming the file, line and
//! column.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny};
use sluice_sdk::deploy::{FileCopy, FileExistsBehavior, Permission};

/// CodeDeploy fails a lifecycle event that runs longer than this, whatever its scripts'
/// own timeouts say; a script without a timeout gets what is left of it.
pub const EVENT_BUDGET_SECS: u64 = 3600;

/// The events whose hooks run during an in-place deployment, in CodeDeploy's order.
pub const HOOK_EVENTS: [&str; 5] = [
    "ApplicationStop",
    "BeforeInstall",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
];

/// A parsed, checked AppSpec.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSpec {
    pub files: Vec<FileCopy>,
    pub exists: FileExistsBehavior,
    pub permissions: Vec<Permission>,
    /// Scripts per event (one of [`HOOK_EVENTS`]), in the order listed.
    pub hooks: BTreeMap<String, Vec<HookScript>>,
}

impl AppSpec {
    /// The scripts of `event`, in order (none when the event has no hooks).
    pub fn hooks(&self, event: &str) -> &[HookScript] {
        self.hooks.get(event).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// One hook script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookScript {
    /// Path relative to the bundle root.
    pub location: String,
    /// Seconds; `None` means what is left of the event's budget.
    pub timeout: Option<u64>,
    pub runas: Option<String>,
}

/// Why an AppSpec was refused: `<file>:<line>:<column>: <message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpecError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for AppSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// Parse and check `text`, the contents of `file` (named in errors). `in_bundle` says
/// whether a path relative to the bundle root exists, to refuse hooks and files that
/// are not there before anything is deployed.
pub fn parse(
    file: &str,
    text: &str,
    in_bundle: &dyn Fn(&str) -> bool,
) -> Result<AppSpec, AppSpecError> {
    let raw: RawAppSpec = serde_yaml_ng::from_str(text).map_err(|e| {
        let location = e.location();
        let mut message = e.to_string();
        if let Some(cut) = message.rfind(" at line ") {
            message.truncate(cut);
        }
        let mut line = location.as_ref().map(|l| l.line());
        let mut column = location.as_ref().map(|l| l.column());
        // A value refused by one of the checks below is reported by the YAML library at
        // the start of the mapping that holds it; the check names its key, so point at
        // the key's own line instead.
        if let Some((before, rest)) = message.split_once(KEY_MARK)
            && let Some((key, after)) = rest.split_once(KEY_MARK)
        {
            if let Some((l, c)) = key_position(text, line.unwrap_or(1), key) {
                (line, column) = (Some(l), Some(c));
            }
            message = format!("{before}{after}");
        }
        AppSpecError {
            file: file.to_string(),
            line,
            column,
            message,
        }
    })?;
    let error_at = |needle: &str, message: String| {
        let position = value_position(text, needle);
        AppSpecError {
            file: file.to_string(),
            line: position.map(|(line, _)| line),
            column: position.map(|(_, column)| column),
            message,
        }
    };
    let mut hooks = BTreeMap::new();
    for (event, scripts) in [
        ("ApplicationStop", raw.hooks.application_stop),
        ("BeforeInstall", raw.hooks.before_install),
        ("AfterInstall", raw.hooks.after_install),
        ("ApplicationStart", raw.hooks.application_start),
        ("ValidateService", raw.hooks.validate_service),
    ] {
        let Some(scripts) = scripts else { continue };
        for script in &scripts {
            let location = script.location.trim_start_matches("./");
            if location.starts_with('/') || location.split('/').any(|part| part == "..") {
                return Err(error_at(
                    &script.location,
                    format!(
                        "hooks.{event}: location `{}` must be a path inside the bundle, relative to appspec.yml",
                        script.location
                    ),
                ));
            }
            if !in_bundle(location) {
                return Err(error_at(
                    &script.location,
                    format!(
                        "hooks.{event}: script `{}` is not in the bundle",
                        script.location
                    ),
                ));
            }
        }
        hooks.insert(
            event.to_string(),
            scripts
                .into_iter()
                .map(|s| HookScript {
                    location: s.location.trim_start_matches("./").to_string(),
                    timeout: s.timeout,
                    runas: s.runas,
                })
                .collect(),
        );
    }
    let mut files = Vec::new();
    for entry in raw.files {
        let source = entry.source.trim_start_matches("./");
        if source != "/" && !in_bundle(source) {
            return Err(error_at(
                &entry.source,
                format!("files: source `{}` is not in the bundle", entry.source),
            ));
        }
        files.push(FileCopy {
            source: source.to_string(),
            destination: entry.destination,
        });
    }
    let permissions = raw
        .permissions
        .into_iter()
        .map(|p| Permission {
            object: p.object,
            pattern: p.pattern,
            except: p.except,
            owner: p.owner,
            group: p.group,
            mode: p.mode,
            kinds: p.kinds,
        })
        .collect();
    Ok(AppSpec {
        files,
        exists: match raw.file_exists_behavior {
            None | Some(RawExists::Disallow) => FileExistsBehavior::Disallow,
            Some(RawExists::Overwrite) => FileExistsBehavior::Overwrite,
            Some(RawExists::Retain) => FileExistsBehavior::Retain,
        },
        permissions,
        hooks,
    })
}

/// Brackets the key a custom error is about: `\u{1}mode\u{1}mode 758 is ...`.
const KEY_MARK: char = '\u{1}';

/// A custom error about the value of `key`.
fn about<E: de::Error>(key: &str, message: impl fmt::Display) -> E {
    E::custom(format!("{KEY_MARK}{key}{KEY_MARK}{message}"))
}

/// Line and column (1-based) of the first `key:` at or after line `from`.
fn key_position(text: &str, from: usize, key: &str) -> Option<(usize, usize)> {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find_map(|(i, line)| {
            let start = line.len() - line.trim_start_matches([' ', '-']).len();
            line[start..]
                .strip_prefix(key)
                .filter(|rest| rest.trim_start().starts_with(':'))
                .map(|_| (i + 1, start + 1))
        })
}

/// Line and column (1-based) of the first value `needle` (`key: needle` or
/// `- needle`).
fn value_position(text: &str, needle: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(i, line)| {
        let value_at = match line.split_once(':') {
            Some((key, value)) if value.trim() == needle => key.len() + 1,
            _ if line.trim_start_matches([' ', '-']).trim() == needle => 0,
            _ => return None,
        };
        line[value_at..]
            .find(needle)
            .map(|c| (i + 1, value_at + c + 1))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAppSpec {
    #[serde(deserialize_with = "version_0_0")]
    #[allow(dead_code)]
    version: (),
    #[serde(deserialize_with = "linux_only")]
    #[allow(dead_code)]
    os: (),
    #[serde(default)]
    files: Vec<RawFile>,
    #[serde(default)]
    file_exists_behavior: Option<RawExists>,
    #[serde(default)]
    permissions: Vec<RawPermission>,
    #[serde(default)]
    hooks: RawHooks,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    source: String,
    #[serde(deserialize_with = "absolute_destination")]
    destination: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "UPPERCASE")]
enum RawExists {
    Disallow,
    Overwrite,
    Retain,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPermission {
    #[serde(deserialize_with = "absolute_object")]
    object: String,
    pattern: Option<String>,
    #[serde(default)]
    except: Vec<String>,
    owner: Option<String>,
    group: Option<String>,
    #[serde(default, deserialize_with = "octal_mode")]
    mode: Option<u32>,
    #[serde(default, deserialize_with = "acls_unsupported")]
    #[allow(dead_code)]
    acls: Option<()>,
    #[serde(default, deserialize_with = "context_unsupported")]
    #[allow(dead_code)]
    context: Option<()>,
    #[serde(default, rename = "type", deserialize_with = "object_kinds")]
    kinds: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    #[serde(
        rename = "ApplicationStop",
        default,
        deserialize_with = "event_scripts"
    )]
    application_stop: Option<Vec<RawHook>>,
    #[serde(rename = "BeforeInstall", default, deserialize_with = "event_scripts")]
    before_install: Option<Vec<RawHook>>,
    #[serde(rename = "AfterInstall", default, deserialize_with = "event_scripts")]
    after_install: Option<Vec<RawHook>>,
    #[serde(
        rename = "ApplicationStart",
        default,
        deserialize_with = "event_scripts"
    )]
    application_start: Option<Vec<RawHook>>,
    #[serde(
        rename = "ValidateService",
        default,
        deserialize_with = "event_scripts"
    )]
    validate_service: Option<Vec<RawHook>>,
    #[serde(
        rename = "BeforeBlockTraffic",
        default,
        deserialize_with = "traffic_event"
    )]
    #[allow(dead_code)]
    before_block_traffic: Option<()>,
    #[serde(
        rename = "AfterBlockTraffic",
        default,
        deserialize_with = "traffic_event"
    )]
    #[allow(dead_code)]
    after_block_traffic: Option<()>,
    #[serde(
        rename = "BeforeAllowTraffic",
        default,
        deserialize_with = "traffic_event"
    )]
    #[allow(dead_code)]
    before_allow_traffic: Option<()>,
    #[serde(
        rename = "AfterAllowTraffic",
        default,
        deserialize_with = "traffic_event"
    )]
    #[allow(dead_code)]
    after_allow_traffic: Option<()>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHook {
    location: String,
    #[serde(default, deserialize_with = "hook_timeout")]
    timeout: Option<u64>,
    runas: Option<String>,
}

fn version_0_0<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    struct Version;
    impl de::Visitor<'_> for Version {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("0.0, the only AppSpec version")
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
            if v == 0.0 {
                Ok(())
            } else {
                Err(about::<E>(
                    "version",
                    format!("version {v} is not supported: the only AppSpec version is 0.0"),
                ))
            }
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
            Err(about::<E>(
                "version",
                format!("version {v} is not supported: the only AppSpec version is 0.0"),
            ))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
            Err(about::<E>(
                "version",
                format!("version {v} is not supported: the only AppSpec version is 0.0"),
            ))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
            if v == "0.0" {
                Ok(())
            } else {
                Err(about::<E>(
                    "version",
                    format!("version `{v}` is not supported: the only AppSpec version is 0.0"),
                ))
            }
        }
    }
    d.deserialize_any(Version)
}

fn linux_only<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    match String::deserialize(d)?.as_str() {
        "linux" => Ok(()),
        "windows" => Err(about(
            "os",
            "os: windows is not supported: this runner deploys to linux targets",
        )),
        other => Err(about(
            "os",
            format!("os: `{other}` is not an AppSpec os; write `linux`"),
        )),
    }
}

fn absolute_destination<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    absolute_path(d, "destination")
}

fn absolute_object<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    absolute_path(d, "object")
}

fn absolute_path<'de, D: Deserializer<'de>>(d: D, key: &str) -> Result<String, D::Error> {
    let path = String::deserialize(d)?;
    if path.starts_with('/') {
        Ok(path)
    } else {
        Err(about(
            key,
            format!("`{path}` must be an absolute path on the target, e.g. /opt/app"),
        ))
    }
}

/// `mode` as CodeDeploy reads it: chmod's numeric form, 3 or 4 octal digits, written
/// as a number (`750`) or quoted when it has a leading zero (`"0644"`).
fn octal_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    struct Mode;
    impl de::Visitor<'_> for Mode {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an octal mode such as 750 or \"0644\"")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    let digits = d.deserialize_any(Mode)?;
    parse_mode(&digits).map(Some).map_err(|e| about("mode", e))
}

/// `750` → 0o750; `0644` → 0o644. Symbolic modes (`u+x`) are refused, as CodeDeploy
/// does.
pub fn parse_mode(digits: &str) -> Result<u32, String> {
    let ok = (3..=4).contains(&digits.len()) && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
    if !ok {
        return Err(format!(
            "mode `{digits}` is not a numeric chmod mode: write 3 or 4 octal digits, e.g. 750 or \"0644\" (quoted when it starts with 0)"
        ));
    }
    u32::from_str_radix(digits, 8).map_err(|e| e.to_string())
}

fn acls_unsupported<'de, D: Deserializer<'de>>(d: D) -> Result<Option<()>, D::Error> {
    IgnoredAny::deserialize(d)?;
    Err(about(
        "acls",
        "permissions: `acls` is not supported by this runner; set owner, group and mode, or set ACLs from a hook",
    ))
}

fn context_unsupported<'de, D: Deserializer<'de>>(d: D) -> Result<Option<()>, D::Error> {
    IgnoredAny::deserialize(d)?;
    Err(about(
        "context",
        "permissions: `context` (SELinux) is not supported by this runner; set it from a hook",
    ))
}

fn object_kinds<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let kinds = Vec::<String>::deserialize(d)?;
    for kind in &kinds {
        if kind != "file" && kind != "directory" {
            return Err(about(
                "type",
                format!("permissions: type `{kind}` is neither `file` nor `directory`"),
            ));
        }
    }
    Ok(kinds)
}

fn traffic_event<'de, D: Deserializer<'de>>(d: D) -> Result<Option<()>, D::Error> {
    IgnoredAny::deserialize(d)?;
    Err(de::Error::custom(
        "the traffic events (BeforeBlockTraffic, AfterBlockTraffic, BeforeAllowTraffic, AfterAllowTraffic) run only behind a load balancer, which Sluice's in-place deployments do not manage",
    ))
}

fn hook_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let seconds = u64::deserialize(d)?;
    if seconds == 0 || seconds > EVENT_BUDGET_SECS {
        return Err(about(
            "timeout",
            format!("timeout {seconds}: a hook's timeout is 1 to {EVENT_BUDGET_SECS} seconds"),
        ));
    }
    Ok(Some(seconds))
}

/// An event's scripts, whose timeouts together must fit CodeDeploy's per-event budget.
fn event_scripts<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<RawHook>>, D::Error> {
    let scripts = Vec::<RawHook>::deserialize(d)?;
    let total: u64 = scripts.iter().filter_map(|s| s.timeout).sum();
    if total > EVENT_BUDGET_SECS {
        return Err(de::Error::custom(format!(
            "the scripts' timeouts add up to {total} s; a lifecycle event has {EVENT_BUDGET_SECS} s in total"
        )));
    }
    Ok(Some(scripts))
}
