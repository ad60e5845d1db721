//! The gates of a stage as the pipeline file configures them (`[stage.gates.<id>]`):
//! parsing and checking every key, with file:line:column and "did you mean" on every
//! error, into [`GateSpec`]s that [`super::build`] turns into gates.
//!
//! ```toml
//! [stage.gates.approval]          # `kind` defaults to the id when the id is a kind
//! required = 2                    # distinct approvers (default 1)
//!
//! [stage.gates.business-hours]
//! kind = "window"
//! timezone = "Europe/Berlin"      # IANA name (jiff's bundled database)
//! days = "Mon-Thu"                # or allow = [{ days = "...", hours = "..." }, ...]
//! hours = "09:00-16:00"           # 22:00-02:00 crosses midnight: it belongs to the day it starts
//! blackout = ["2026-12-24", "2026-12-31..2027-01-01"]   # dates in that zone, inclusive
//!
//! [stage.gates.alarms]
//! alarms = ["api-errors", "latency"]   # ids of the file's `[[monitor]]`s
//! ```
//!
//! `config.rs` reads the raw tables (serde rejects unknown keys there, with their
//! place); this module checks the values.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use jiff::civil::{Date, Weekday};
use jiff::tz::{TimeZone, TimeZoneDatabase};
use serde::Deserialize;
use serde_spanned::Spanned;

use crate::config::{ConfigError, SourceFile, SourcePos};

/// The kinds of gate this Sluice knows.
pub const KINDS: &[&str] = &["approval", "window", "alarms"];
/// The keys each kind accepts (besides `kind`).
const APPROVAL_KEYS: &[&str] = &["required"];
const WINDOW_KEYS: &[&str] = &["timezone", "days", "hours", "allow", "blackout"];
const ALARMS_KEYS: &[&str] = &["alarms"];
/// Most approvals a gate may require.
pub const MAX_REQUIRED_APPROVALS: i64 = 100;

/// One gate of a stage, checked.
#[derive(Debug, Clone)]
pub struct GateSpec {
    /// Its id: the key under `[stage.gates]`, unique within the stage.
    pub id: String,
    pub kind: GateKind,
    /// Where it is declared (its `[stage.gates.<id>]` key).
    pub pos: SourcePos,
}

impl GateSpec {
    /// The kind's name, as written in `kind = "..."`.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            GateKind::Approval(_) => "approval",
            GateKind::Window(_) => "window",
            GateKind::Alarms(_) => "alarms",
        }
    }
}

/// What a gate of each kind is configured with.
#[derive(Debug, Clone)]
pub enum GateKind {
    Approval(ApprovalSpec),
    Window(WindowSpec),
    Alarms(AlarmsSpec),
}

/// `kind = "alarms"`: the monitors whose alarms hold the stage's entry (and stop the
/// stage while it runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmsSpec {
    /// Ids of `[[monitor]]`s of the file, in the order listed.
    pub alarms: Vec<String>,
}

/// `kind = "approval"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalSpec {
    /// Distinct approvers needed (≥ 1).
    pub required: u32,
}

/// `kind = "window"`: when a run may enter, as wall-clock time in one zone.
#[derive(Debug, Clone)]
pub struct WindowSpec {
    /// The zone's IANA name, as the database spells it.
    pub zone_name: String,
    pub zone: TimeZone,
    /// The allowed periods; a run may enter during any of them.
    pub periods: Vec<Period>,
    /// Dates (in the zone) on which the window stays shut all day.
    pub blackout: Vec<Blackout>,
}

/// Allowed hours on some days of the week. A period whose end is not after its start
/// crosses midnight and belongs to the day it starts (`Fri 22:00-02:00` includes
/// Saturday 01:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub days: Days,
    /// Minutes after midnight, 0..1440.
    pub start: u16,
    /// Minutes after midnight, 0..=1440 (1440 is `24:00`, the end of the day).
    pub end: u16,
}

impl Period {
    /// Whether it ends the next day.
    pub fn crosses_midnight(&self) -> bool {
        self.end <= self.start
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}-{}",
            self.days,
            clock_time(self.start),
            clock_time(self.end)
        )
    }
}

/// `HH:MM` of minutes after midnight.
pub fn clock_time(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// A set of weekdays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days(u8);

const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const FULL_DAY_NAMES: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

impl Days {
    pub const ALL: Days = Days(0x7f);

    pub fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.to_monday_zero_offset()) != 0
    }

    fn with(self, index: usize) -> Days {
        Days(self.0 | (1 << index))
    }
}

impl fmt::Display for Days {
    /// Runs of three or more days as ranges: `Mon-Thu`, `Mon,Wed,Fri`, `Mon-Sun`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let mut i = 0;
        while i < 7 {
            if self.0 & (1 << i) == 0 {
                i += 1;
                continue;
            }
            let mut j = i;
            while j + 1 < 7 && self.0 & (1 << (j + 1)) != 0 {
                j += 1;
            }
            match j - i {
                0 => parts.push(DAY_NAMES[i].to_string()),
                1 => {
                    parts.push(DAY_NAMES[i].to_string());
                    parts.push(DAY_NAMES[j].to_string());
                }
                _ => parts.push(format!("{}-{}", DAY_NAMES[i], DAY_NAMES[j])),
            }
            i = j + 1;
        }
        f.write_str(&parts.join(","))
    }
}

/// Blackout dates, first to last inclusive, in the window's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blackout {
    pub first: Date,
    pub last: Date,
}

impl fmt::Display for Blackout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}..{}", self.first, self.last)
        }
    }
}

// ---- raw shape, as serde reads it ---------------------------------------------------

/// `[stage.gates]`: gate id (with its place) → its table.
pub(crate) type RawGates = BTreeMap<Spanned<String>, Spanned<RawGate>>;

/// One `[stage.gates.<id>]` table: the keys of every kind, so that serde rejects a key
/// no kind knows (with its place and the accepted names); which keys fit which kind is
/// checked here.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGate {
    kind: Option<Spanned<String>>,
    required: Option<Spanned<i64>>,
    timezone: Option<Spanned<String>>,
    days: Option<Spanned<String>>,
    hours: Option<Spanned<String>>,
    allow: Option<Spanned<Vec<Spanned<RawPeriod>>>>,
    blackout: Option<Spanned<Vec<Spanned<String>>>>,
    alarms: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPeriod {
    days: Option<Spanned<String>>,
    hours: Option<Spanned<String>>,
}

impl RawGate {
    /// The keys present, with where each value starts.
    fn present(&self) -> Vec<(&'static str, usize)> {
        let mut keys = Vec::new();
        let mut add = |name, span: Option<std::ops::Range<usize>>| {
            if let Some(span) = span {
                keys.push((name, span.start));
            }
        };
        add("required", self.required.as_ref().map(|v| v.span()));
        add("timezone", self.timezone.as_ref().map(|v| v.span()));
        add("days", self.days.as_ref().map(|v| v.span()));
        add("hours", self.hours.as_ref().map(|v| v.span()));
        add("allow", self.allow.as_ref().map(|v| v.span()));
        add("blackout", self.blackout.as_ref().map(|v| v.span()));
        add("alarms", self.alarms.as_ref().map(|v| v.span()));
        keys
    }
}

/// Check the gates of stage `stage`, in the order the file declares them.
pub(crate) fn build_gates(
    source: &SourceFile,
    stage: &str,
    raw: &RawGates,
    monitor_ids: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Vec<GateSpec> {
    let mut entries: Vec<_> = raw.iter().collect();
    entries.sort_by_key(|(id, _)| id.span().start);
    let mut gates = Vec::new();
    for (id, gate) in entries {
        if let Some(spec) = build_gate(source, stage, id, gate.get_ref(), monitor_ids, errors) {
            gates.push(spec);
        }
    }
    gates
}

fn build_gate(
    source: &SourceFile,
    stage: &str,
    id: &Spanned<String>,
    raw: &RawGate,
    monitor_ids: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Option<GateSpec> {
    let at = id.span().start;
    let name = id.get_ref();
    if let Err(message) = check_gate_id(name) {
        errors.push(source.error(at, message));
        return None;
    }
    if name == super::blocked::GATE_ID
        || raw
            .kind
            .as_ref()
            .is_some_and(|k| k.get_ref() == super::blocked::GATE_ID)
    {
        errors.push(source.error(at, super::blocked::not_declared_here(stage)));
        return None;
    }
    let kind = match &raw.kind {
        Some(kind) => {
            let k = kind.get_ref().as_str();
            if !KINDS.contains(&k) {
                let mut message = format!(
                    "gate `{name}` of stage `{stage}`: unknown kind `{k}`; kinds: {}",
                    quoted_list(KINDS)
                );
                if let Some(meant) = crate::suggest::closest(k, KINDS.iter().copied()) {
                    message.push_str(&format!("; did you mean `{meant}`?"));
                }
                errors.push(source.error(kind.span().start, message));
                return None;
            }
            k
        }
        None if KINDS.contains(&name.as_str()) => name.as_str(),
        None => {
            let mut message = format!(
                "gate `{name}` of stage `{stage}` has no `kind`; add `kind = \"approval\"` or `kind = \"window\"`"
            );
            if let Some(meant) = crate::suggest::closest(name, KINDS.iter().copied()) {
                message.push_str(&format!(" (or did you mean the gate `{meant}`?)"));
            }
            errors.push(source.error(at, message));
            return None;
        }
    };
    let (accepted, a_kind) = match kind {
        "approval" => (APPROVAL_KEYS, "an approval"),
        "alarms" => (ALARMS_KEYS, "an alarms"),
        _ => (WINDOW_KEYS, "a window"),
    };
    let mut misplaced = false;
    for (key, key_at) in raw.present() {
        if !accepted.contains(&key) {
            misplaced = true;
            errors.push(source.error(
                key_at,
                format!(
                    "gate `{name}` of stage `{stage}`: `{key}` is not a key of {} gate; its keys: `kind`, {}",
                    a_kind,
                    quoted_list(accepted)
                ),
            ));
        }
    }
    if misplaced {
        return None;
    }
    let pos = source.pos(at);
    let what = format!("gate `{name}` of stage `{stage}`");
    let kind = match kind {
        "approval" => GateKind::Approval(build_approval(source, &what, raw, errors)?),
        "alarms" => GateKind::Alarms(build_alarms(source, &what, at, raw, monitor_ids, errors)?),
        _ => GateKind::Window(build_window(source, &what, at, raw, errors)?),
    };
    Some(GateSpec {
        id: name.clone(),
        kind,
        pos,
    })
}

fn check_gate_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= crate::limits::MAX_NAME_CHARS
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "gate id `{id}` must start with a letter or digit and use only letters, digits, `-`, `_` and `.` (at most {} characters)",
            crate::limits::MAX_NAME_CHARS
        ))
    }
}

fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `alarms = [...]`: at least one, each the id of a `[[monitor]]` of the file, none
/// twice.
fn build_alarms(
    source: &SourceFile,
    what: &str,
    at: usize,
    raw: &RawGate,
    monitor_ids: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Option<AlarmsSpec> {
    let before = errors.len();
    let listed = match &raw.alarms {
        Some(list) if !list.get_ref().is_empty() => list.get_ref(),
        Some(list) => {
            errors.push(source.error(
                list.span().start,
                format!("{what}: `alarms` is empty; list the ids of the monitors whose alarms hold the stage"),
            ));
            return None;
        }
        None => {
            errors.push(source.error(
                at,
                format!("{what}: an alarms gate needs `alarms = [\"<monitor id>\", ...]`"),
            ));
            return None;
        }
    };
    let mut alarms: Vec<String> = Vec::new();
    for name in listed {
        let n = name.get_ref();
        if !monitor_ids.contains(&n.as_str()) {
            let mut message = if monitor_ids.is_empty() {
                format!("{what}: no `[[monitor]]` has the id `{n}`; the file declares no monitors")
            } else {
                format!(
                    "{what}: no `[[monitor]]` has the id `{n}`; monitors: {}",
                    quoted_list(monitor_ids)
                )
            };
            if let Some(meant) = crate::suggest::closest(n, monitor_ids.iter().copied()) {
                message.push_str(&format!("; did you mean `{meant}`?"));
            }
            errors.push(source.error(name.span().start, message));
        } else if alarms.contains(n) {
            errors.push(source.error(
                name.span().start,
                format!("{what}: alarm `{n}` is listed twice"),
            ));
        } else {
            alarms.push(n.clone());
        }
    }
    (errors.len() == before).then_some(AlarmsSpec { alarms })
}

fn build_approval(
    source: &SourceFile,
    what: &str,
    raw: &RawGate,
    errors: &mut Vec<ConfigError>,
) -> Option<ApprovalSpec> {
    let Some(required) = &raw.required else {
        return Some(ApprovalSpec { required: 1 });
    };
    let n = *required.get_ref();
    if n < 1 {
        errors.push(source.error(
            required.span().start,
            format!(
                "{what}: `required` = {n}; an approval gate needs at least 1 approval (remove the gate to need none)"
            ),
        ));
        return None;
    }
    if n > MAX_REQUIRED_APPROVALS {
        errors.push(source.error(
            required.span().start,
            format!("{what}: `required` = {n} is above the limit of {MAX_REQUIRED_APPROVALS}"),
        ));
        return None;
    }
    Some(ApprovalSpec { required: n as u32 })
}

fn build_window(
    source: &SourceFile,
    what: &str,
    at: usize,
    raw: &RawGate,
    errors: &mut Vec<ConfigError>,
) -> Option<WindowSpec> {
    let before = errors.len();
    let zone = match &raw.timezone {
        None => {
            errors.push(source.error(
                at,
                format!(
                    "{what} needs `timezone`, the IANA name of the zone its hours are in, e.g. `timezone = \"Europe/Berlin\"` or `timezone = \"UTC\"`"
                ),
            ));
            None
        }
        Some(tz) => match time_zone(tz.get_ref()) {
            Ok(found) => Some(found),
            Err(message) => {
                errors.push(source.error(tz.span().start, format!("{what}: {message}")));
                None
            }
        },
    };
    let mut periods = Vec::new();
    let period = |days: Option<&Spanned<String>>,
                  hours: Option<&Spanned<String>>,
                  periods: &mut Vec<Period>,
                  errors: &mut Vec<ConfigError>| {
        let days = match days {
            None => Some(Days::ALL),
            Some(d) => parse_days(d.get_ref())
                .map_err(|m| errors.push(source.error(d.span().start, format!("{what}: {m}"))))
                .ok(),
        };
        let hours = match hours {
            None => Some(vec![(0, 1440)]),
            Some(h) => parse_hours(h.get_ref())
                .map_err(|m| errors.push(source.error(h.span().start, format!("{what}: {m}"))))
                .ok(),
        };
        if let (Some(days), Some(hours)) = (days, hours) {
            for (start, end) in hours {
                periods.push(Period { days, start, end });
            }
        }
    };
    match &raw.allow {
        Some(allow) if raw.days.is_some() || raw.hours.is_some() => errors.push(source.error(
            allow.span().start,
            format!(
                "{what}: give either `days` and `hours` (one period) or `allow` (several), not both"
            ),
        )),
        Some(allow) if allow.get_ref().is_empty() => errors.push(source.error(
            allow.span().start,
            format!(
                "{what}: `allow` is empty, so the window would never open; list periods, e.g. `allow = [{{ days = \"Mon-Thu\", hours = \"09:00-16:00\" }}]`"
            ),
        )),
        Some(allow) => {
            for entry in allow.get_ref() {
                let entry_ref = entry.get_ref();
                if entry_ref.days.is_none() && entry_ref.hours.is_none() {
                    errors.push(source.error(
                        entry.span().start,
                        format!(
                            "{what}: an `allow` period needs `days`, `hours` or both, e.g. `{{ days = \"Mon-Thu\", hours = \"09:00-16:00\" }}`"
                        ),
                    ));
                    continue;
                }
                period(
                    entry_ref.days.as_ref(),
                    entry_ref.hours.as_ref(),
                    &mut periods,
                    errors,
                );
            }
        }
        None => period(raw.days.as_ref(), raw.hours.as_ref(), &mut periods, errors),
    }
    let mut blackout = Vec::new();
    if let Some(list) = &raw.blackout {
        for entry in list.get_ref() {
            match parse_blackout(entry.get_ref()) {
                Ok(b) => blackout.push(b),
                Err(m) => errors.push(source.error(entry.span().start, format!("{what}: {m}"))),
            }
        }
    }
    if errors.len() > before {
        return None;
    }
    let (zone_name, zone) = zone?;
    Some(WindowSpec {
        zone_name,
        zone,
        periods,
        blackout,
    })
}

/// The time zone database gates use: jiff's bundled copy, so a window decides the same
/// on every machine whatever its /usr/share/zoneinfo holds.
pub fn tz_database() -> &'static TimeZoneDatabase {
    static DB: OnceLock<TimeZoneDatabase> = OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled)
}

/// Look a zone up by its IANA name (any case), with its canonical spelling.
pub fn time_zone(name: &str) -> Result<(String, TimeZone), String> {
    let db = tz_database();
    let name = name.trim();
    match db.get(name) {
        Ok(zone) => {
            let canonical = zone.iana_name().unwrap_or(name).to_string();
            Ok((canonical, zone))
        }
        Err(_) => {
            let names: Vec<String> = db.available().map(|n| n.as_str().to_string()).collect();
            let mut message = format!(
                "unknown time zone `{name}`; use an IANA name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\""
            );
            if let Some(meant) = crate::suggest::closest(name, names.iter().map(String::as_str)) {
                message.push_str(&format!("; did you mean `{meant}`?"));
            }
            Err(message)
        }
    }
}

/// `Mon-Thu`, `Mon,Wed,Fri`, `Fri-Mon` (wrapping), `Mon-Wed,Sat`; names in any case,
/// short or full.
pub fn parse_days(text: &str) -> Result<Days, String> {
    let hint = "write days as `Mon-Thu`, `Mon,Wed,Fri` or `Sat,Sun`";
    if text.trim().is_empty() {
        return Err(format!("`days` is empty; {hint}"));
    }
    let mut days = Days(0);
    for item in text.split(',') {
        let item = item.trim();
        let (first, last) = match item.split_once('-') {
            Some((a, b)) => (day_index(text, a.trim())?, day_index(text, b.trim())?),
            None => {
                let d = day_index(text, item)?;
                (d, d)
            }
        };
        let mut d = first;
        loop {
            days = days.with(d);
            if d == last {
                break;
            }
            d = (d + 1) % 7;
        }
    }
    Ok(days)
}

fn day_index(whole: &str, name: &str) -> Result<usize, String> {
    let found = DAY_NAMES
        .iter()
        .zip(FULL_DAY_NAMES)
        .position(|(short, full)| {
            name.eq_ignore_ascii_case(short) || name.eq_ignore_ascii_case(full)
        });
    found.ok_or_else(|| {
        let mut message = if name.is_empty() {
            format!("`days` = \"{whole}\" has an empty day")
        } else {
            format!("`days` = \"{whole}\": `{name}` is not a day")
        };
        message.push_str(
            "; days are Mon, Tue, Wed, Thu, Fri, Sat, Sun, e.g. `Mon-Thu` or `Mon,Wed,Fri`",
        );
        let candidates = DAY_NAMES.iter().chain(FULL_DAY_NAMES.iter()).copied();
        if let Some(meant) = crate::suggest::closest(name, candidates) {
            // Suggest the short name, the form the examples use.
            let short = DAY_NAMES
                .iter()
                .zip(FULL_DAY_NAMES)
                .find(|(s, f)| **s == meant || *f == meant)
                .map_or(meant, |(s, _)| *s);
            message.push_str(&format!("; did you mean `{short}`?"));
        }
        message
    })
}

/// `09:00-16:00`, `22:00-02:00` (crossing midnight), `00:00-24:00` (all day), or several
/// separated by commas (`09:00-12:00,13:00-17:00`): (start, end) minutes after midnight.
pub fn parse_hours(text: &str) -> Result<Vec<(u16, u16)>, String> {
    let form = "write hours as `09:00-16:00` (24-hour clock; `22:00-02:00` crosses midnight, `00:00-24:00` is the whole day)";
    if text.trim().is_empty() {
        return Err(format!("`hours` is empty; {form}"));
    }
    let mut ranges = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        let Some((a, b)) = item.split_once('-') else {
            return Err(format!(
                "`hours` = \"{text}\": `{item}` is not a range; {form}"
            ));
        };
        let bad = |t: &str| format!("`hours` = \"{text}\": `{t}` is not a time of day; {form}");
        let start = minutes(a.trim()).ok_or_else(|| bad(a.trim()))?;
        let end = minutes(b.trim()).ok_or_else(|| bad(b.trim()))?;
        if start == 1440 {
            return Err(format!(
                "`hours` = \"{text}\": a period cannot start at 24:00; start it at 00:00"
            ));
        }
        if start == end {
            return Err(format!(
                "`hours` = \"{text}\": `{item}` starts and ends at the same time; for the whole day write `00:00-24:00`"
            ));
        }
        ranges.push((start, end));
    }
    Ok(ranges)
}

/// Minutes after midnight of `H:MM` or `HH:MM` (24:00 allowed, meaning the day's end).
fn minutes(t: &str) -> Option<u16> {
    let (h, m) = t.split_once(':')?;
    let digits = |s: &str, n: std::ops::RangeInclusive<usize>| {
        n.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(h, 1..=2) || !digits(m, 2..=2) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// `2026-12-24` or `2026-12-31..2027-01-01` (inclusive).
pub fn parse_blackout(text: &str) -> Result<Blackout, String> {
    let (first, last) = match text.split_once("..") {
        Some((a, b)) => (date(text, a.trim())?, date(text, b.trim())?),
        None => {
            let d = date(text, text.trim())?;
            (d, d)
        }
    };
    if last < first {
        return Err(format!(
            "blackout `{text}` ends before it starts; write `first..last`, e.g. `{last}..{first}`"
        ));
    }
    Ok(Blackout { first, last })
}

fn date(whole: &str, t: &str) -> Result<Date, String> {
    let shaped = t.len() == 10
        && t.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    let parsed = if shaped { t.parse::<Date>().ok() } else { None };
    parsed.ok_or_else(|| {
        format!(
            "blackout `{whole}`: `{t}` is not a date; write `YYYY-MM-DD` or a range `YYYY-MM-DD..YYYY-MM-DD`, e.g. \"2026-12-24\" or \"2026-12-31..2027-01-01\""
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_parse_ranges_lists_wrapping_and_full_names() {
        assert_eq!(parse_days("Mon-Thu").unwrap().to_string(), "Mon-Thu");
        assert_eq!(
            parse_days("mon, wed ,FRI").unwrap().to_string(),
            "Mon,Wed,Fri"
        );
        assert_eq!(parse_days("Fri-Mon").unwrap().to_string(), "Mon,Fri-Sun");
        assert_eq!(parse_days("Monday-Sunday").unwrap(), Days::ALL);
        assert_eq!(parse_days("Sat,Sun").unwrap().to_string(), "Sat,Sun");
        assert!(parse_days("Mon-Tue").unwrap().contains(Weekday::Tuesday));
        assert!(!parse_days("Mon-Tue").unwrap().contains(Weekday::Sunday));
    }

    #[test]
    fn a_day_that_is_not_one_is_named_with_a_suggestion() {
        assert_eq!(
            parse_days("Mon-Thrs").unwrap_err(),
            "`days` = \"Mon-Thrs\": `Thrs` is not a day; days are Mon, Tue, Wed, Thu, Fri, Sat, Sun, e.g. `Mon-Thu` or `Mon,Wed,Fri`; did you mean `Thu`?"
        );
        assert_eq!(
            parse_days("Mon,,Fri").unwrap_err(),
            "`days` = \"Mon,,Fri\" has an empty day; days are Mon, Tue, Wed, Thu, Fri, Sat, Sun, e.g. `Mon-Thu` or `Mon,Wed,Fri`"
        );
        assert_eq!(
            parse_days(" ").unwrap_err(),
            "`days` is empty; write days as `Mon-Thu`, `Mon,Wed,Fri` or `Sat,Sun`"
        );
    }

    #[test]
    fn hours_parse_ranges_midnight_crossing_and_whole_days() {
        assert_eq!(parse_hours("09:00-16:00").unwrap(), vec![(540, 960)]);
        assert_eq!(parse_hours("22:00-02:00").unwrap(), vec![(1320, 120)]);
        assert_eq!(parse_hours("00:00-24:00").unwrap(), vec![(0, 1440)]);
        assert_eq!(
            parse_hours("9:00-12:00, 13:30-17:00").unwrap(),
            vec![(540, 720), (810, 1020)]
        );
    }

    #[test]
    fn hours_that_are_not_a_range_of_times_are_explained() {
        let form = "write hours as `09:00-16:00` (24-hour clock; `22:00-02:00` crosses midnight, `00:00-24:00` is the whole day)";
        assert_eq!(
            parse_hours("9am-5pm").unwrap_err(),
            format!("`hours` = \"9am-5pm\": `9am` is not a time of day; {form}")
        );
        assert_eq!(
            parse_hours("09:00").unwrap_err(),
            format!("`hours` = \"09:00\": `09:00` is not a range; {form}")
        );
        assert_eq!(
            parse_hours("09:00-25:00").unwrap_err(),
            format!("`hours` = \"09:00-25:00\": `25:00` is not a time of day; {form}")
        );
        assert_eq!(
            parse_hours("09:00-09:00").unwrap_err(),
            "`hours` = \"09:00-09:00\": `09:00-09:00` starts and ends at the same time; for the whole day write `00:00-24:00`"
        );
        assert_eq!(
            parse_hours("24:00-02:00").unwrap_err(),
            "`hours` = \"24:00-02:00\": a period cannot start at 24:00; start it at 00:00"
        );
        assert_eq!(
            parse_hours("").unwrap_err(),
            format!("`hours` is empty; {form}")
        );
    }

    #[test]
    fn blackouts_are_dates_or_inclusive_ranges() {
        let b = parse_blackout("2026-12-24").unwrap();
        assert_eq!(
            (b.first, b.last),
            (
                jiff::civil::date(2026, 12, 24),
                jiff::civil::date(2026, 12, 24)
            )
        );
        let b = parse_blackout("2026-12-31..2027-01-01").unwrap();
        assert_eq!(b.to_string(), "2026-12-31..2027-01-01");
        assert_eq!(
            parse_blackout("2027-01-01..2026-12-31").unwrap_err(),
            "blackout `2027-01-01..2026-12-31` ends before it starts; write `first..last`, e.g. `2026-12-31..2027-01-01`"
        );
        assert_eq!(
            parse_blackout("2026-02-30").unwrap_err(),
            "blackout `2026-02-30`: `2026-02-30` is not a date; write `YYYY-MM-DD` or a range `YYYY-MM-DD..YYYY-MM-DD`, e.g. \"2026-12-24\" or \"2026-12-31..2027-01-01\""
        );
        assert!(
            parse_blackout("24.12.2026")
                .unwrap_err()
                .contains("`24.12.2026` is not a date")
        );
    }

    #[test]
    fn time_zones_are_found_in_any_case_and_misspellings_get_a_suggestion() {
        let (name, _) = time_zone("europe/berlin").unwrap();
        assert_eq!(name, "Europe/Berlin");
        assert_eq!(time_zone("UTC").unwrap().0, "UTC");
        assert_eq!(
            time_zone("Europe/Berln").unwrap_err(),
            "unknown time zone `Europe/Berln`; use an IANA name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\"; did you mean `Europe/Berlin`?"
        );
        assert_eq!(
            time_zone("Mars/Olympus_Mons").unwrap_err(),
            "unknown time zone `Mars/Olympus_Mons`; use an IANA name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\""
        );
    }

    // ---- the whole file, through config::parse ----------------------------------------

    fn pipeline(gates: &str) -> String {
        format!(
            "[pipeline]\nname = \"shop\"\n\n[[stage]]\nname = \"prod\"\n\n[[stage.step]]\nid = \"deploy\"\nuses = \"builtin:command\"\n\n\n{gates}"
        )
    }

    fn errors(gates: &str) -> Vec<String> {
        match crate::config::parse(std::path::Path::new("sluice.toml"), pipeline(gates)) {
            Ok(_) => vec![],
            Err(crate::config::PipelineFileError::Invalid(e)) => {
                e.iter().map(|e| e.to_string()).collect()
            }
            Err(e) => vec![e.to_string()],
        }
    }

    fn gates(text: &str) -> Vec<GateSpec> {
        match crate::config::parse(std::path::Path::new("sluice.toml"), pipeline(text)) {
            Ok(p) => p.stages[0].gates.clone(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn gates_parse_in_file_order_with_kinds_from_ids() {
        let g = gates(
            "[stage.gates.window]\ntimezone = \"UTC\"\n\n\
             [stage.gates.approval]\nrequired = 2\n\n\
             [stage.gates.business-hours]\nkind = \"window\"\ntimezone = \"Europe/Berlin\"\n\
             allow = [{ days = \"Mon-Thu\", hours = \"09:00-12:00,13:00-16:00\" }, { days = \"Fri\", hours = \"09:00-12:00\" }]\n\
             blackout = [\"2026-12-24\", \"2026-12-31..2027-01-01\"]\n",
        );
        let ids: Vec<(&str, &str)> = g.iter().map(|g| (g.id.as_str(), g.kind_name())).collect();
        assert_eq!(
            ids,
            [
                ("window", "window"),
                ("approval", "approval"),
                ("business-hours", "window")
            ]
        );
        assert!(matches!(
            &g[1].kind,
            GateKind::Approval(ApprovalSpec { required: 2 })
        ));
        assert_eq!(g[1].pos.line, 15);
        let GateKind::Window(w) = &g[2].kind else {
            panic!()
        };
        assert_eq!(w.zone_name, "Europe/Berlin");
        let periods: Vec<String> = w.periods.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            periods,
            [
                "Mon-Thu 09:00-12:00",
                "Mon-Thu 13:00-16:00",
                "Fri 09:00-12:00"
            ]
        );
        assert_eq!(w.blackout.len(), 2);
        // A window with only a zone is always open (but for blackouts).
        let GateKind::Window(w) = &g[0].kind else {
            panic!()
        };
        assert_eq!(w.periods[0].to_string(), "Mon-Sun 00:00-24:00");
        // `days` alone means the whole day; `hours` alone, every day.
        let g = gates(
            "[stage.gates.weekend]\nkind = \"window\"\ntimezone = \"UTC\"\ndays = \"Sat,Sun\"\n\
             [stage.gates.nights]\nkind = \"window\"\ntimezone = \"UTC\"\nhours = \"22:00-02:00\"\n",
        );
        let shown: Vec<String> = g
            .iter()
            .map(|g| match &g.kind {
                GateKind::Window(w) => w.periods[0].to_string(),
                GateKind::Approval(_) | GateKind::Alarms(_) => unreachable!(),
            })
            .collect();
        assert_eq!(shown, ["Sat,Sun 00:00-24:00", "Mon-Sun 22:00-02:00"]);
    }

    #[test]
    fn the_state_key_is_resolved_against_the_pipeline_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sluice.toml");
        let text = "[pipeline]\nname = \"shop\"\nstate = \"../shared/state.db\"\n[[stage]]\nname = \"b\"\n[[stage.step]]\nid = \"a\"\nuses = \"builtin:command\"\n";
        let p = crate::config::parse(&file, text.to_string()).unwrap();
        let expected = crate::config::normalize(
            &std::fs::canonicalize(dir.path())
                .unwrap()
                .join("../shared/state.db"),
        );
        assert_eq!(p.state, Some(expected));
        let text = text.replace("../shared/state.db", "");
        let e = match crate::config::parse(&file, text.clone()) {
            Err(crate::config::PipelineFileError::Invalid(e)) => e[0].to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            e,
            format!(
                "{}:3:9: `state` = \"\" is not a file path; name the state database's file, e.g. `state = \".sluice/state.db\"` (relative to the pipeline file)",
                file.display()
            )
        );
        let p = crate::config::parse(&file, text.replace("state = \"\"\n", "")).unwrap();
        assert_eq!(p.state, None);
    }

    #[test]
    fn an_unknown_key_is_located_and_a_close_one_suggested() {
        let e = errors("[stage.gates.approval]\nrequird = 2\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(
                "sluice.toml:13:1: unknown field `requird`, expected one of `kind`, `required`"
            ),
            "{}",
            e[0]
        );
        assert!(e[0].ends_with("; did you mean `required`?"), "{}", e[0]);
    }

    #[test]
    fn an_unknown_kind_is_located_and_a_close_one_suggested() {
        assert_eq!(
            errors("[stage.gates.hours]\nkind = \"windw\"\ntimezone = \"UTC\"\n"),
            [
                "sluice.toml:13:8: gate `hours` of stage `prod`: unknown kind `windw`; kinds: `approval`, `window`, `alarms`; did you mean `window`?"
            ]
        );
    }

    #[test]
    fn a_gate_without_a_kind_whose_id_is_not_one_is_an_error() {
        assert_eq!(
            errors("[stage.gates.aproval]\nrequired = 1\n"),
            [
                "sluice.toml:12:14: gate `aproval` of stage `prod` has no `kind`; add `kind = \"approval\"` or `kind = \"window\"` (or did you mean the gate `approval`?)"
            ]
        );
        assert_eq!(
            errors("[stage.gates.sre]\nrequired = 1\n"),
            [
                "sluice.toml:12:14: gate `sre` of stage `prod` has no `kind`; add `kind = \"approval\"` or `kind = \"window\"`"
            ]
        );
    }

    #[test]
    fn a_key_of_another_kind_is_an_error_listing_the_kinds_keys() {
        assert_eq!(
            errors("[stage.gates.approval]\ntimezone = \"UTC\"\n"),
            [
                "sluice.toml:13:12: gate `approval` of stage `prod`: `timezone` is not a key of an approval gate; its keys: `kind`, `required`"
            ]
        );
        assert_eq!(
            errors("[stage.gates.window]\ntimezone = \"UTC\"\nrequired = 2\n"),
            [
                "sluice.toml:14:12: gate `window` of stage `prod`: `required` is not a key of a window gate; its keys: `kind`, `timezone`, `days`, `hours`, `allow`, `blackout`"
            ]
        );
    }

    #[test]
    fn required_approvals_must_be_at_least_one_and_at_most_the_limit() {
        assert_eq!(
            errors("[stage.gates.approval]\nrequired = 0\n"),
            [
                "sluice.toml:13:12: gate `approval` of stage `prod`: `required` = 0; an approval gate needs at least 1 approval (remove the gate to need none)"
            ]
        );
        assert_eq!(
            errors("[stage.gates.approval]\nrequired = 1000\n"),
            [
                "sluice.toml:13:12: gate `approval` of stage `prod`: `required` = 1000 is above the limit of 100"
            ]
        );
        let e = errors("[stage.gates.approval]\nrequired = \"two\"\n");
        assert!(
            e[0].starts_with("sluice.toml:13:12: invalid type: string \"two\""),
            "{e:?}"
        );
    }

    #[test]
    fn a_window_needs_a_known_time_zone() {
        assert_eq!(
            errors("[stage.gates.window]\ndays = \"Mon-Fri\"\n"),
            [
                "sluice.toml:12:14: gate `window` of stage `prod` needs `timezone`, the IANA name of the zone its hours are in, e.g. `timezone = \"Europe/Berlin\"` or `timezone = \"UTC\"`"
            ]
        );
        assert_eq!(
            errors("[stage.gates.window]\ntimezone = \"America/New_Yrok\"\n"),
            [
                "sluice.toml:13:12: gate `window` of stage `prod`: unknown time zone `America/New_Yrok`; use an IANA name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\"; did you mean `America/New_York`?"
            ]
        );
    }

    #[test]
    fn window_value_errors_are_each_located() {
        let e = errors(
            "[stage.gates.window]\ntimezone = \"UTC\"\ndays = \"Mon-Fry\"\nhours = \"9-17\"\nblackout = [\"2026-12-24\", \"Xmas\"]\n",
        );
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("sluice.toml:14:8: gate `window` of stage `prod`: `days` = \"Mon-Fry\": `Fry` is not a day"), "{}", e[0]);
        assert!(e[1].starts_with("sluice.toml:15:9: gate `window` of stage `prod`: `hours` = \"9-17\": `9` is not a time of day"), "{}", e[1]);
        assert!(e[2].starts_with("sluice.toml:16:27: gate `window` of stage `prod`: blackout `Xmas`: `Xmas` is not a date"), "{}", e[2]);
    }

    #[test]
    fn allow_excludes_days_and_hours_and_must_list_periods() {
        assert_eq!(
            errors(
                "[stage.gates.window]\ntimezone = \"UTC\"\ndays = \"Mon\"\nallow = [{ hours = \"09:00-10:00\" }]\n"
            ),
            [
                "sluice.toml:15:9: gate `window` of stage `prod`: give either `days` and `hours` (one period) or `allow` (several), not both"
            ]
        );
        assert_eq!(
            errors("[stage.gates.window]\ntimezone = \"UTC\"\nallow = []\n"),
            [
                "sluice.toml:14:9: gate `window` of stage `prod`: `allow` is empty, so the window would never open; list periods, e.g. `allow = [{ days = \"Mon-Thu\", hours = \"09:00-16:00\" }]`"
            ]
        );
        assert_eq!(
            errors("[stage.gates.window]\ntimezone = \"UTC\"\nallow = [{}]\n"),
            [
                "sluice.toml:14:10: gate `window` of stage `prod`: an `allow` period needs `days`, `hours` or both, e.g. `{ days = \"Mon-Thu\", hours = \"09:00-16:00\" }`"
            ]
        );
        let e = errors("[stage.gates.window]\ntimezone = \"UTC\"\nallow = [{ day = \"Mon\" }]\n");
        assert!(e[0].contains("unknown field `day`"), "{e:?}");
        assert!(e[0].ends_with("did you mean `days`?"), "{e:?}");
    }

    #[test]
    fn a_gate_id_must_be_a_name() {
        assert_eq!(
            errors("[stage.gates.\"-x\"]\nkind = \"approval\"\n"),
            [
                "sluice.toml:12:14: gate id `-x` must start with a letter or digit and use only letters, digits, `-`, `_` and `.` (at most 64 characters)"
            ]
        );
    }

    #[test]
    fn a_gate_id_given_twice_in_a_stage_is_located() {
        let e = errors(
            "[stage.gates.sre]\nkind = \"approval\"\n[stage.gates.sre]\nkind = \"approval\"\n",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("sluice.toml:14:"), "{e:?}");
        assert!(e[0].contains("duplicate key"), "{e:?}");
        // The same id in two stages is fine, and any id may name its kind.
        let g = gates("[stage.gates.sre]\nkind = \"approval\"\n");
        assert_eq!((g[0].id.as_str(), g[0].kind_name()), ("sre", "approval"));
    }
}
