//! The policy file: its TOML shape, read with spans, checked into a [`Policy`]. Every
//! problem is reported at once, each at file:line:col, with "did you mean" for
//! unknown keys, like `sluice.toml`.
//!
//! The shape is read by serde with `deny_unknown_fields` everywhere (a misspelt key
//! is an error, never ignored); what serde cannot say (empty names, duplicate ids,
//! unknown tiers and keys, dates out of order, malformed digests and public keys) is
//! checked afterwards, all at once, sorted by position. The format is documented in
//! docs/policy/README.md.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_spanned::Spanned;
use sha2::Digest as _;

use super::{
    ApprovedPlugin, Blocks, Ceiling, CheckKind, CheckSpec, Exemption, Pattern, Policy, PolicyError,
    PolicyRef, Protection, TrustedKey,
};
use crate::config::{ConfigError, PluginRef, SourceFile};

/// The stage kinds every policy knows (see [`super::protect::stage_kinds`]); a
/// policy's `[kinds]` adds its own.
pub const INFERRED_KINDS: &[&str] = &["build", "test", "deploy", "production"];

/// The tiers of a policy that names none.
pub const DEFAULT_TIER: &str = "org";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicyFile {
    policy: Spanned<RawHeader>,
    protect: Option<Spanned<RawProtect>>,
    #[serde(default)]
    kinds: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    #[serde(default, rename = "key")]
    keys: Vec<Spanned<RawKey>>,
    #[serde(default, rename = "plugin")]
    plugins: Vec<Spanned<RawPlugin>>,
    #[serde(default, rename = "ceiling")]
    ceilings: Vec<Spanned<RawCeiling>>,
    #[serde(default, rename = "check")]
    checks: Vec<Spanned<RawCheck>>,
    #[serde(default, rename = "exemption")]
    exemptions: Vec<Spanned<RawExemption>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: Spanned<String>,
    version: Option<Spanned<String>>,
    tiers: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawProtect {
    #[serde(default)]
    stages: Vec<Spanned<String>>,
    #[serde(default)]
    targets: Vec<Spanned<String>>,
    #[serde(default)]
    tiers: Vec<Spanned<String>>,
    #[serde(default)]
    require_signature: bool,
    approved_only: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawKey {
    id: Option<Spanned<String>>,
    public_key: Option<Spanned<String>>,
    not_before: Option<Spanned<toml::Value>>,
    not_after: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    name: Option<Spanned<String>>,
    tier: Option<Spanned<String>>,
    #[serde(default)]
    digests: Vec<Spanned<String>>,
    #[serde(default)]
    keys: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCeiling {
    id: Option<Spanned<String>>,
    kinds: Option<Vec<Spanned<String>>>,
    stages: Option<Vec<Spanned<String>>>,
    plugins: Option<Vec<Spanned<String>>>,
    net: Option<Vec<Spanned<String>>>,
    exec: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    exec_deny: Vec<Spanned<String>>,
    write: Option<Vec<Spanned<String>>>,
    env: Option<Vec<Spanned<String>>>,
    secrets: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCheck {
    id: Option<Spanned<String>>,
    builtin: Option<Spanned<String>>,
    uses: Option<Spanned<String>>,
    with: Option<Spanned<toml::Table>>,
    message: Option<Spanned<String>>,
    warn_from: Option<Spanned<toml::Value>>,
    enforce_from: Option<Spanned<toml::Value>>,
    blocks: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawExemption {
    check: Option<Spanned<String>>,
    pipeline: Option<Spanned<String>>,
    reason: Option<Spanned<String>>,
    approved_by: Option<Spanned<String>>,
    ticket: Option<Spanned<String>>,
    expires: Option<Spanned<toml::Value>>,
}

/// Check policy text that came from `path` (or, for an OCI policy, its reference).
pub fn parse(path: &Path, text: String, origin: PolicyRef) -> Result<Policy, PolicyError> {
    let digest = format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    );
    let source = SourceFile {
        path: path.to_path_buf(),
        text,
    };
    let raw: RawPolicyFile = match toml::from_str(&source.text) {
        Ok(raw) => raw,
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            let message = crate::suggest::complete_unknown_name(e.message().trim());
            return Err(PolicyError::Invalid(vec![source.error(offset, message)]));
        }
    };
    // Custom checks' `uses` are relative to the policy file's folder.
    let dir = match &origin {
        PolicyRef::File(p) => p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf()))
            .unwrap_or_else(|| Path::new(".").to_path_buf()),
        PolicyRef::Oci(_) => Path::new(".").to_path_buf(),
    };
    let mut b = Builder {
        source: &source,
        errors: Vec::new(),
    };
    let policy = b.build(raw, &dir, origin, digest.clone());
    let mut errors = b.errors;
    if errors.is_empty() {
        return Ok(policy);
    }
    errors.sort_by_key(|e| (e.pos.line, e.pos.column));
    Err(PolicyError::Invalid(errors))
}

struct Builder<'a> {
    source: &'a SourceFile,
    errors: Vec<ConfigError>,
}

impl Builder<'_> {
    fn error(&mut self, offset: usize, message: impl Into<String>) {
        self.errors.push(self.source.error(offset, message));
    }

    /// A required, non-empty string key of a table; the error is at the table when
    /// the key is missing.
    fn required(
        &mut self,
        value: &Option<Spanned<String>>,
        table: &str,
        key: &str,
        at: usize,
        example: &str,
    ) -> Option<String> {
        match value {
            None => {
                self.error(
                    at,
                    format!("`{table}` needs `{key}`, e.g. `{key} = {example}`"),
                );
                None
            }
            Some(v) if v.get_ref().trim().is_empty() => {
                self.error(v.span().start, format!("`{table}`: `{key}` is empty"));
                None
            }
            Some(v) => Some(v.get_ref().trim().to_string()),
        }
    }

    /// Whether `id` is the first of its table kind; a repeat is an error at its `id`.
    fn unique(
        &mut self,
        seen: &mut Vec<String>,
        id: &str,
        at: &Option<Spanned<String>>,
        table: &str,
        what: &str,
    ) -> bool {
        if seen.iter().any(|s| s == id) {
            let at = at.as_ref().map_or(0, |v| v.span().start);
            self.error(
                at,
                format!("`{table}` id `{id}` is declared twice; {what} ids must be unique"),
            );
            return false;
        }
        seen.push(id.to_string());
        true
    }

    /// A list of name patterns; empty entries are errors.
    fn patterns(&mut self, list: &[Spanned<String>], what: &str) -> Vec<Pattern> {
        let mut out = Vec::new();
        for p in list {
            let text = p.get_ref().trim();
            if text.is_empty() {
                self.error(p.span().start, format!("{what}: an empty pattern matches nothing; remove it or write a name or pattern (`*` matches any run of characters)"));
            } else {
                out.push(Pattern(text.to_string()));
            }
        }
        out
    }

    /// A TOML date (`2027-01-15`, bare, UTC).
    fn date(
        &mut self,
        value: &Option<Spanned<toml::Value>>,
        key: &str,
    ) -> Option<jiff::civil::Date> {
        let v = value.as_ref()?;
        let at = v.span().start;
        match v.get_ref() {
            toml::Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => {
                let d = dt.date?;
                match jiff::civil::Date::new(d.year as i16, d.month as i8, d.day as i8) {
                    Ok(date) => Some(date),
                    Err(e) => {
                        self.error(at, format!("`{key}` is not a valid date: {e}"));
                        None
                    }
                }
            }
            toml::Value::Datetime(dt) => {
                let date = dt
                    .date
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "2027-01-15".into());
                self.error(
                    at,
                    format!("`{key}` = {dt} has a time; write a date only (`{key} = {date}`): dates are whole days, UTC"),
                );
                None
            }
            toml::Value::String(s) => {
                self.error(
                    at,
                    format!("`{key}` = \"{s}\" is a string; write a bare TOML date, e.g. `{key} = 2027-01-15`"),
                );
                None
            }
            other => {
                self.error(
                    at,
                    format!("`{key}` = {other} is not a date; write a TOML date, e.g. `{key} = 2027-01-15`"),
                );
                None
            }
        }
    }

    /// A tier name that must be one of the policy's tiers.
    fn tier(&mut self, value: &Spanned<String>, tiers: &[String], context: &str) -> Option<String> {
        let t = value.get_ref().trim();
        if tiers.iter().any(|x| x == t) {
            return Some(t.to_string());
        }
        let known = tiers
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let hint = match crate::suggest::closest(t, tiers.iter().map(String::as_str)) {
            Some(meant) => format!("; did you mean `{meant}`?"),
            None => String::new(),
        };
        self.error(
            value.span().start,
            format!("{context}: unknown tier `{t}`; the policy's tiers (`[policy] tiers`) are {known}{hint}"),
        );
        None
    }

    fn build(
        &mut self,
        raw: RawPolicyFile,
        dir: &Path,
        origin: PolicyRef,
        digest: String,
    ) -> Policy {
        let header = raw.policy.get_ref();
        let name = header.name.get_ref().trim().to_string();
        if name.is_empty() {
            self.error(
                header.name.span().start,
                "`[policy] name` is empty; name the policy, e.g. `name = \"acme-release\"`",
            );
        }
        let version = header
            .version
            .as_ref()
            .map(|v| v.get_ref().trim().to_string());
        let tiers = self.tiers(header.tiers.as_ref());
        let protect = raw
            .protect
            .as_ref()
            .map(|p| self.protection(p, &tiers))
            .unwrap_or_default();
        let mut kinds = Vec::new();
        for (kind, patterns) in &raw.kinds {
            if kind.trim().is_empty() {
                self.error(patterns.span().start, "`[kinds]`: a kind needs a name");
                continue;
            }
            let list = self.patterns(patterns.get_ref(), &format!("`[kinds] {kind}`"));
            kinds.push((kind.clone(), list));
        }
        let keys = self.keys(&raw.keys);
        let plugins = self.plugins(&raw.plugins, &tiers, &keys);
        let kind_names: Vec<String> = INFERRED_KINDS
            .iter()
            .map(|k| k.to_string())
            .chain(kinds.iter().map(|(k, _)| k.clone()))
            .collect();
        let ceilings = self.ceilings(&raw.ceilings, &kind_names);
        let checks = self.checks(&raw.checks, dir);
        let declared: Vec<String> = raw
            .checks
            .iter()
            .filter_map(|c| {
                c.get_ref()
                    .id
                    .as_ref()
                    .map(|i| i.get_ref().trim().to_string())
            })
            .collect();
        let exemptions = self.exemptions(&raw.exemptions, &declared);
        Policy {
            name,
            version,
            source: self.source.clone(),
            origin,
            digest,
            tiers,
            protect,
            kinds,
            plugins,
            keys,
            ceilings,
            checks,
            exemptions,
        }
    }

    fn tiers(&mut self, raw: Option<&Spanned<Vec<Spanned<String>>>>) -> Vec<String> {
        let Some(raw) = raw else {
            return vec![DEFAULT_TIER.to_string()];
        };
        if raw.get_ref().is_empty() {
            self.error(raw.span().start, "`[policy] tiers` is empty; list the tiers most trusted first, e.g. `tiers = [\"org\", \"team\"]`, or leave it out for `[\"org\"]`");
            return vec![DEFAULT_TIER.to_string()];
        }
        let mut tiers: Vec<String> = Vec::new();
        for t in raw.get_ref() {
            let name = t.get_ref().trim();
            if name.is_empty() {
                self.error(t.span().start, "`[policy] tiers`: a tier needs a name");
            } else if tiers.iter().any(|x| x == name) {
                self.error(
                    t.span().start,
                    format!("`[policy] tiers`: tier `{name}` is listed twice"),
                );
            } else {
                tiers.push(name.to_string());
            }
        }
        tiers
    }

    fn protection(&mut self, raw: &Spanned<RawProtect>, tiers: &[String]) -> Protection {
        let p = raw.get_ref();
        let stages = self.patterns(&p.stages, "`[protect] stages`");
        let targets = self.patterns(&p.targets, "`[protect] targets`");
        let allowed = p
            .tiers
            .iter()
            .filter_map(|t| self.tier(t, tiers, "`[protect] tiers`"))
            .collect();
        let approved_everywhere = match &p.approved_only {
            None => false,
            Some(v) => match v.get_ref().as_str() {
                "protected" => false,
                "everywhere" => true,
                other => {
                    let hint = crate::suggest::closest(other, ["protected", "everywhere"])
                        .map(|m| format!("; did you mean `{m}`?"))
                        .unwrap_or_default();
                    self.error(
                        v.span().start,
                        format!("`[protect] approved-only` = \"{other}\": expected `protected` (only protected stages need approved plugins) or `everywhere`{hint}"),
                    );
                    false
                }
            },
        };
        Protection {
            stages,
            targets,
            tiers: allowed,
            require_signature: p.require_signature,
            approved_everywhere,
            pos: Some(self.source.pos(raw.span().start)),
        }
    }

    fn keys(&mut self, raw: &[Spanned<RawKey>]) -> Vec<TrustedKey> {
        let mut keys: Vec<TrustedKey> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for entry in raw {
            let at = entry.span().start;
            let k = entry.get_ref();
            let id = self.required(&k.id, "[[key]]", "id", at, "\"release-2026\"");
            let id = id.filter(|id| self.unique(&mut seen, id, &k.id, "[[key]]", "key"));
            let public_key =
                self.required(&k.public_key, "[[key]]", "public-key", at, "\"RWQ...\"");
            let not_before = self.date(&k.not_before, "not-before");
            let not_after = self.date(&k.not_after, "not-after");
            if let (Some(b), Some(a), Some(v)) = (not_before, not_after, &k.not_after)
                && a < b
            {
                self.error(v.span().start, format!("`[[key]]`: `not-after` ({a}) is before `not-before` ({b}); the key would never be valid"));
            }
            if let (Some(pk), Some(v)) = (&public_key, &k.public_key)
                && let Err(e) = minisign::PublicKey::from_base64(pk)
            {
                self.error(
                    v.span().start,
                    format!("`[[key]]` `public-key` is not a minisign public key ({e}); copy the second line of the `.pub` file `sluice plugin keygen` (or `minisign -G`) wrote, e.g. `RWQ...`"),
                );
            }
            let (Some(id), Some(public_key)) = (id, public_key) else {
                continue;
            };
            keys.push(TrustedKey {
                id,
                public_key,
                not_before,
                not_after,
                pos: self.source.pos(at),
            });
        }
        keys
    }

    fn plugins(
        &mut self,
        raw: &[Spanned<RawPlugin>],
        tiers: &[String],
        keys: &[TrustedKey],
    ) -> Vec<ApprovedPlugin> {
        let mut plugins = Vec::new();
        for entry in raw {
            let at = entry.span().start;
            let p = entry.get_ref();
            let name = self.required(&p.name, "[[plugin]]", "name", at, "\"builtin:*\"");
            let context = format!("`[[plugin]]` `{}`", name.as_deref().unwrap_or("?"));
            let tier = match &p.tier {
                None => {
                    let list = tiers
                        .iter()
                        .map(|t| format!("`{t}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    self.error(
                        at,
                        format!("{context} needs `tier`, one of the policy's tiers: {list}"),
                    );
                    None
                }
                Some(t) => self.tier(t, tiers, &context),
            };
            let mut digests = Vec::new();
            for d in &p.digests {
                let text = d.get_ref().trim();
                if is_digest(text) {
                    digests.push(text.to_string());
                } else {
                    self.error(
                        d.span().start,
                        format!("{context}: digest `{text}` is not `sha256:` and 64 lowercase hex digits (as `sluice lock` and `sha256sum` print it)"),
                    );
                }
            }
            let mut key_ids = Vec::new();
            for k in &p.keys {
                let id = k.get_ref().trim();
                if keys.iter().any(|x| x.id == id) {
                    key_ids.push(id.to_string());
                } else {
                    let hint = crate::suggest::closest(id, keys.iter().map(|k| k.id.as_str()))
                        .map(|m| format!("; did you mean `{m}`?"))
                        .unwrap_or_default();
                    let declared = if keys.is_empty() {
                        "the policy declares no `[[key]]`".to_string()
                    } else {
                        format!(
                            "declared keys: {}",
                            keys.iter()
                                .map(|k| format!("`{}`", k.id))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    self.error(
                        k.span().start,
                        format!("{context}: key `{id}` names no `[[key]]` ({declared}){hint}"),
                    );
                }
            }
            if let (Some(name), Some(tier)) = (name, tier) {
                plugins.push(ApprovedPlugin {
                    name: Pattern(name),
                    tier,
                    digests,
                    keys: key_ids,
                    pos: self.source.pos(at),
                });
            }
        }
        plugins
    }

    fn ceilings(&mut self, raw: &[Spanned<RawCeiling>], kind_names: &[String]) -> Vec<Ceiling> {
        let mut ceilings: Vec<Ceiling> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for entry in raw {
            let at = entry.span().start;
            let c = entry.get_ref();
            let id = self.required(&c.id, "[[ceiling]]", "id", at, "\"build-net\"");
            let context = format!("`[[ceiling]]` `{}`", id.as_deref().unwrap_or("?"));
            let id = id.filter(|id| self.unique(&mut seen, id, &c.id, "[[ceiling]]", "ceiling"));
            if c.kinds.is_none() && c.stages.is_none() && c.plugins.is_none() {
                self.error(at, format!("{context} selects no steps; give `kinds`, `stages` or `plugins` (`stages = [\"*\"]` bounds every step)"));
            }
            let mut kinds = Vec::new();
            for k in c.kinds.iter().flatten() {
                let kind = k.get_ref().trim();
                if kind_names.iter().any(|n| n == kind) {
                    kinds.push(kind.to_string());
                } else {
                    let hint = crate::suggest::closest(kind, kind_names.iter().map(String::as_str))
                        .map(|m| format!("; did you mean `{m}`?"))
                        .unwrap_or_default();
                    let known = kind_names
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    self.error(k.span().start, format!("{context}: unknown stage kind `{kind}`; kinds are {known} (add your own under `[kinds]`){hint}"));
                }
            }
            let stages = self.patterns(
                c.stages.as_deref().unwrap_or_default(),
                &format!("{context} `stages`"),
            );
            let plugins = self.patterns(
                c.plugins.as_deref().unwrap_or_default(),
                &format!("{context} `plugins`"),
            );
            let net = c.net.as_ref().map(|list| {
                for n in list {
                    let text = n.get_ref().trim();
                    let port_ok = text.rsplit_once(':').is_some_and(|(h, p)| {
                        !h.is_empty() && !p.is_empty() && p.chars().all(|ch| ch.is_ascii_digit() || ch == '*' || ch == '?')
                    });
                    if !port_ok && !text.is_empty() {
                        self.error(n.span().start, format!("{context}: `net` entry `{text}` is not a `host:port` pattern, e.g. `crates.io:443` or `*.crates.io:443`"));
                    }
                }
                self.patterns(list, &format!("{context} `net`"))
            });
            let exec = c
                .exec
                .as_ref()
                .map(|l| self.patterns(l, &format!("{context} `exec`")));
            let exec_deny = self.patterns(&c.exec_deny, &format!("{context} `exec-deny`"));
            let write = c
                .write
                .as_ref()
                .map(|l| self.patterns(l, &format!("{context} `write`")));
            let env = c
                .env
                .as_ref()
                .map(|l| self.patterns(l, &format!("{context} `env`")));
            let Some(id) = id else { continue };
            ceilings.push(Ceiling {
                id,
                kinds,
                stages,
                plugins,
                net,
                exec,
                exec_deny,
                write,
                secrets: c.secrets,
                env,
                pos: self.source.pos(at),
            });
        }
        ceilings
    }

    fn checks(&mut self, raw: &[Spanned<RawCheck>], dir: &Path) -> Vec<CheckSpec> {
        let mut checks: Vec<CheckSpec> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for entry in raw {
            let at = entry.span().start;
            let c = entry.get_ref();
            let id = self.required(&c.id, "[[check]]", "id", at, "\"prod-bake\"");
            let context = format!("`[[check]]` `{}`", id.as_deref().unwrap_or("?"));
            let id = id.filter(|id| self.unique(&mut seen, id, &c.id, "[[check]]", "check"));
            let message = match &c.message {
                None => {
                    self.error(at, format!("{context} needs `message`: what it asks for and why, as engineers will read it"));
                    None
                }
                Some(m) if m.get_ref().trim().is_empty() => {
                    self.error(m.span().start, format!("{context}: `message` is empty"));
                    None
                }
                Some(m) => Some(m.get_ref().trim().to_string()),
            };
            let with = match &c.with {
                None => Some(serde_json::Value::Object(Default::default())),
                Some(t) => match serde_json::to_value(t.get_ref()) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        self.error(
                            t.span().start,
                            format!("{context}: `with` cannot be expressed as JSON: {e}"),
                        );
                        None
                    }
                },
            };
            let kind = match (&c.builtin, &c.uses) {
                (Some(_), Some(u)) => {
                    self.error(
                        u.span().start,
                        format!(
                            "{context} has both `builtin` and `uses`; a check is one or the other"
                        ),
                    );
                    None
                }
                (None, None) => {
                    let names = if super::checks::builtin::NAMES.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (built-in checks: {})",
                            super::checks::builtin::NAMES.join(", ")
                        )
                    };
                    self.error(at, format!("{context} needs `builtin = \"NAME\"`{names} or `uses = \"checks/NAME.wasm\"` (a policy-check component)"));
                    None
                }
                (Some(b), None) => {
                    let name = b.get_ref().trim();
                    let checked = with
                        .as_ref()
                        .map(|w| super::checks::builtin::check_with(name, w));
                    match checked {
                        Some(Err(reason)) => {
                            // A bad name is at `builtin`; a bad `with` at `with`.
                            let at = if super::checks::builtin::NAMES.contains(&name) {
                                c.with.as_ref().map_or(b.span().start, |w| w.span().start)
                            } else {
                                b.span().start
                            };
                            self.error(at, format!("{context}: {reason}"));
                            None
                        }
                        _ => with.clone().map(|with| CheckKind::Builtin {
                            name: name.to_string(),
                            with,
                        }),
                    }
                }
                (None, Some(u)) => {
                    let text = u.get_ref().trim();
                    if text.is_empty() {
                        self.error(u.span().start, format!("{context}: `uses` is empty; name a policy-check component, e.g. `uses = \"checks/no-friday.wasm\"`"));
                        None
                    } else {
                        match PluginRef::parse(text, dir) {
                            Ok(PluginRef::Builtin(_)) => {
                                self.error(u.span().start, format!("{context}: `uses` = \"{text}\": built-in checks are named with `builtin = \"NAME\"`; `uses` names a policy-check component"));
                                None
                            }
                            Ok(uses) => with.clone().map(|with| CheckKind::Custom { uses, with }),
                            Err(reason) => {
                                self.error(
                                    u.span().start,
                                    format!("{context}: `uses` = \"{text}\": {reason}"),
                                );
                                None
                            }
                        }
                    }
                }
            };
            let warn_from = self.date(&c.warn_from, "warn-from");
            let enforce_from = self.date(&c.enforce_from, "enforce-from");
            if let (Some(w), Some(e), Some(v)) = (warn_from, enforce_from, &c.enforce_from)
                && e < w
            {
                self.error(v.span().start, format!("{context}: `enforce-from` ({e}) is before `warn-from` ({w}); a check warns first, then is enforced"));
            }
            let blocks = match &c.blocks {
                None => Blocks::Run,
                Some(b) => match b.get_ref().as_str() {
                    "run" => Blocks::Run,
                    "promotion" => Blocks::Promotion,
                    other => {
                        let hint = crate::suggest::closest(other, ["run", "promotion"])
                            .map(|m| format!("; did you mean `{m}`?"))
                            .unwrap_or_default();
                        self.error(b.span().start, format!("{context}: `blocks` = \"{other}\": expected `run` (an enforced violation stops the run before any step) or `promotion` (a `policy` gate at the entry of protected stages){hint}"));
                        Blocks::Run
                    }
                },
            };
            let (Some(id), Some(message), Some(kind)) = (id, message, kind) else {
                continue;
            };
            checks.push(CheckSpec {
                id,
                kind,
                message,
                warn_from,
                enforce_from,
                blocks,
                pos: self.source.pos(at),
            });
        }
        checks
    }

    fn exemptions(&mut self, raw: &[Spanned<RawExemption>], checks: &[String]) -> Vec<Exemption> {
        let mut out = Vec::new();
        for entry in raw {
            let at = entry.span().start;
            let x = entry.get_ref();
            let check = self.required(&x.check, "[[exemption]]", "check", at, "\"prod-bake\"");
            let check = check.and_then(|id| {
                if checks.contains(&id) {
                    return Some(id);
                }
                let hint = crate::suggest::closest(&id, checks.iter().map(String::as_str))
                    .map(|m| format!("; did you mean `{m}`?"))
                    .unwrap_or_default();
                let at = x.check.as_ref().map_or(at, |v| v.span().start);
                self.error(at, format!("`[[exemption]]`: `check` = \"{id}\" names no `[[check]]` of the policy{hint}"));
                None
            });
            let pipeline =
                self.required(&x.pipeline, "[[exemption]]", "pipeline", at, "\"legacy-*\"");
            let reason = self.required(
                &x.reason,
                "[[exemption]]",
                "reason",
                at,
                "\"bake monitors land in Q1\"",
            );
            let approved_by = self.required(
                &x.approved_by,
                "[[exemption]]",
                "approved-by",
                at,
                "\"dana@example.com\"",
            );
            let ticket = x
                .ticket
                .as_ref()
                .map(|t| t.get_ref().trim().to_string())
                .filter(|t| !t.is_empty());
            let expires = self.date(&x.expires, "expires");
            if let (Some(check), Some(pipeline), Some(reason), Some(approved_by)) =
                (check, pipeline, reason, approved_by)
            {
                out.push(Exemption {
                    check,
                    pipeline: Pattern(pipeline),
                    reason,
                    approved_by,
                    ticket,
                    expires,
                    pos: self.source.pos(at),
                });
            }
        }
        out
    }
}

/// `sha256:` and 64 lowercase hex digits.
pub fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real minisign public key (from `minisign -G`).
    const PUBLIC_KEY: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";

    fn parse_text(text: &str) -> Result<Policy, PolicyError> {
        parse(
            Path::new("policy.toml"),
            text.to_string(),
            PolicyRef::File("/nonexistent/policy.toml".into()),
        )
    }

    fn errors(text: &str) -> String {
        match parse_text(text) {
            Ok(_) => panic!("the policy parsed"),
            Err(PolicyError::Invalid(errors)) => errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    #[test]
    fn a_complete_policy_reads_into_its_model() {
        let text = format!(
            r#"
[policy]
name = "acme-release"
version = "2026.11"
tiers = ["org", "team", "experimental"]

[protect]
stages = ["prod", "prod-*"]
targets = ["prod*"]
tiers = ["org"]
require-signature = true
approved-only = "everywhere"

[kinds]
build = ["build*", "compile"]

[[key]]
id = "release-2026"
public-key = "{PUBLIC_KEY}"
not-before = 2026-01-01
not-after = 2027-06-30

[[plugin]]
name = "builtin:*"
tier = "org"

[[plugin]]
name = "oci://registry.acme.example/release/lint"
tier = "team"
digests = ["sha256:{hex}"]
keys = ["release-2026"]

[[ceiling]]
id = "build-net"
kinds = ["build"]
net = ["crates.io:443", "*.crates.io:443"]
exec-deny = ["curl", "wget"]
secrets = false

[[check]]
id = "prod-bake"
builtin = "production-bake"
with = {{ duration = "1h", positive = 3 }}
message = "Production stages bake."
warn-from = 2026-12-01
enforce-from = 2027-01-15
blocks = "promotion"

[[exemption]]
check = "prod-bake"
pipeline = "legacy-*"
reason = "bake monitors land in Q1"
approved-by = "dana@acme.example"
ticket = "REL-1234"
expires = 2027-03-01
"#,
            hex = "a".repeat(64)
        );
        let p = parse_text(&text).unwrap();
        assert_eq!(p.name, "acme-release");
        assert_eq!(p.version.as_deref(), Some("2026.11"));
        assert_eq!(p.tiers, ["org", "team", "experimental"]);
        assert!(p.protect.require_signature && p.protect.approved_everywhere);
        assert_eq!(p.protect.tiers, ["org"]);
        assert_eq!(p.kinds[0].0, "build");
        assert_eq!(p.keys[0].not_after, Some(jiff::civil::date(2027, 6, 30)));
        assert_eq!(p.plugins.len(), 2);
        assert_eq!(p.plugins[1].keys, ["release-2026"]);
        assert_eq!(p.ceilings[0].net.as_ref().unwrap().len(), 2);
        assert_eq!(p.ceilings[0].secrets, Some(false));
        assert!(p.ceilings[0].exec.is_none());
        let check = &p.checks[0];
        assert_eq!(check.blocks, Blocks::Promotion);
        assert_eq!(check.enforce_from, Some(jiff::civil::date(2027, 1, 15)));
        match &check.kind {
            CheckKind::Builtin { name, with } => {
                assert_eq!(name, "production-bake");
                assert_eq!(with["positive"], 3);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p.exemptions[0].expires, Some(jiff::civil::date(2027, 3, 1)));
        assert_eq!(p.exemptions[0].pos.line, 49);
        assert!(is_digest(&p.digest));
    }

    #[test]
    fn a_minimal_policy_has_the_org_tier_and_protects_only_marked_stages() {
        let p = parse_text("[policy]\nname = \"p\"\n").unwrap();
        assert_eq!(p.tiers, ["org"]);
        assert!(p.protect.stages.is_empty() && !p.protect.require_signature);
        assert!(!p.protect.approved_everywhere);
    }

    #[test]
    fn the_digest_is_the_sha256_of_the_bytes() {
        let text = "[policy]\nname = \"p\"\n";
        let p = parse_text(text).unwrap();
        assert_eq!(
            p.digest,
            format!("sha256:{}", hex::encode(sha2::Sha256::digest(text)))
        );
    }

    #[test]
    fn an_unknown_key_is_refused_with_a_suggestion() {
        insta::assert_snapshot!(errors(
            "[policy]\nname = \"p\"\n\n[protect]\nrequire-signatures = true\n"
        ));
    }

    #[test]
    fn a_wrong_type_is_refused_at_its_value() {
        insta::assert_snapshot!(errors("[policy]\nname = \"p\"\ntiers = \"org\"\n"));
    }

    #[test]
    fn every_problem_is_reported_at_once_in_file_order() {
        let text = format!(
            r#"[policy]
name = ""
tiers = ["org", "team", "org"]

[protect]
tiers = ["orgg"]
approved-only = "everywher"

[[key]]
id = "k1"
public-key = "not-a-key"

[[key]]
id = "k1"
public-key = "{PUBLIC_KEY}"
not-before = 2027-01-01
not-after = 2026-01-01

[[plugin]]
name = "plugins/lint.wasm"
tier = "teem"
digests = ["sha256:ABC"]
keys = ["k2"]

[[plugin]]
name = "builtin:*"

[[ceiling]]
id = "c"
kinds = ["biuld"]
net = ["crates.io"]

[[ceiling]]
id = "c"
stages = [""]

[[ceiling]]
id = "no-selector"
exec-deny = ["curl"]

[[check]]
id = "late"
builtin = "production-bake"
message = "m"
warn-from = 2027-02-01
enforce-from = 2027-01-01
blocks = "promote"

[[check]]
id = "late"
uses = "checks/x.wasm"
message = "again"

[[check]]
id = "both"
builtin = "production-bake"
uses = "checks/x.wasm"
message = "m"

[[check]]
id = "neither"
message = ""
warn-from = "2026-12-01"

[[check]]
id = "timed"
builtin = "production-bake"
message = "m"
warn-from = 2026-12-01T10:00:00Z

[[exemption]]
check = "lat"
pipeline = "legacy-*"
reason = ""
"#
        );
        insta::assert_snapshot!(errors(&text));
    }

    #[test]
    fn builtin_checks_are_checked_by_name_and_with_keys() {
        insta::assert_snapshot!(errors(
            "[policy]\nname = \"p\"\n\n[[check]]\nid = \"x\"\nbuiltin = \"production-bak\"\nmessage = \"m\"\n\n[[check]]\nid = \"y\"\nbuiltin = \"minimum-healthy-hosts\"\nmessage = \"m\"\nwith = { percnt = 80 }\n"
        ));
    }

    #[test]
    fn a_custom_check_uses_a_component_beside_the_policy_file() {
        let p = parse_text(
            "[policy]\nname = \"p\"\n[[check]]\nid = \"x\"\nuses = \"checks/x.wasm\"\nmessage = \"m\"\nwith = { day = \"friday\" }\n",
        )
        .unwrap();
        match &p.checks[0].kind {
            CheckKind::Custom { uses, with } => {
                assert_eq!(uses, &PluginRef::File("/nonexistent/checks/x.wasm".into()));
                assert_eq!(with["day"], "friday");
            }
            other => panic!("{other:?}"),
        }
    }
}
