//! The time-window gate: a run may enter only during allowed periods (days and hours,
//! wall-clock time in one IANA zone) and never on a blackout date; outside, it waits
//! until the window next opens.
//!
//! The window is turned into instants with jiff, which resolves daylight-saving
//! changes with its "compatible" rule (RFC 5545's, and what most calendars do): a time
//! in a gap (02:30 on the spring-forward night) is moved forward by the gap's length
//! (03:30), a time in a fold (02:30 on the fall-back night) is its first occurrence. The next opening is found by walking forward
//! day by day, at most a year (plus a day); a window that does not open in that time
//! waits with no known end and says so.

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp, ToSpan};

use super::spec::{Period, WindowSpec};
use super::{Decision, Evaluation, Gate, GateInput, human_duration};

/// How far ahead the next opening or closing is looked for: first a week (cheap, and
/// enough for ordinary windows), then a year.
const NEAR_DAYS: i64 = 8;
const FAR_DAYS: i64 = 367;

/// A window gate, configured.
#[derive(Debug)]
pub struct WindowGate {
    id: String,
    spec: WindowSpec,
}

/// Where `now` stands against a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Open; it closes at `closes` (`None`: not within a year).
    Open { closes: Option<Timestamp> },
    /// Shut; it opens at `opens` (`None`: not within a year).
    Shut { opens: Option<Timestamp> },
}

impl WindowGate {
    pub fn new(id: &str, spec: WindowSpec) -> WindowGate {
        WindowGate {
            id: id.to_string(),
            spec,
        }
    }

    /// Where `now` stands: open (until when) or shut (until when).
    pub fn standing(&self, now: Timestamp) -> Standing {
        let today = now.to_zoned(self.spec.zone.clone()).date();
        for days in [NEAR_DAYS, FAR_DAYS] {
            let horizon = add_days(today, days);
            let horizon_start = self.day_start(horizon);
            let open = self.open_intervals(add_days(today, -1), horizon);
            if let Some(&(_, end)) = open.iter().find(|(s, e)| *s <= now && now < *e) {
                // An interval reaching the last day looked at may go on beyond it.
                if end < horizon_start {
                    return Standing::Open { closes: Some(end) };
                }
                if days == FAR_DAYS {
                    return Standing::Open { closes: None };
                }
                continue;
            }
            if let Some(&(start, _)) = open.iter().find(|(s, _)| *s > now) {
                return Standing::Shut { opens: Some(start) };
            }
        }
        Standing::Shut { opens: None }
    }

    /// The open intervals of periods starting on `first`..=`last` (local dates), less
    /// blackout days, merged, in order.
    fn open_intervals(&self, first: Date, last: Date) -> Vec<(Timestamp, Timestamp)> {
        let mut intervals = Vec::new();
        let mut day = first;
        while day <= last {
            for period in &self.spec.periods {
                if !period.days.contains(day.weekday()) {
                    continue;
                }
                let (start, end) = self.period_instants(day, period);
                if start < end {
                    intervals.push((start, end));
                }
            }
            day = add_days(day, 1);
        }
        intervals.sort();
        let merged = merge(intervals);
        let blackouts: Vec<(Timestamp, Timestamp)> = self
            .spec
            .blackout
            .iter()
            .filter(|b| b.last >= first && b.first <= add_days(last, 1))
            .map(|b| (self.day_start(b.first), self.day_start(add_days(b.last, 1))))
            .collect();
        subtract(
            merged,
            &merge({
                let mut b = blackouts;
                b.sort();
                b
            }),
        )
    }

    /// The instants a period starting on `day` opens and closes.
    fn period_instants(&self, day: Date, period: &Period) -> (Timestamp, Timestamp) {
        let start = self.local_instant(day, period.start);
        let end_day = if period.crosses_midnight() || period.end == 1440 {
            add_days(day, 1)
        } else {
            day
        };
        let end = self.local_instant(end_day, period.end % 1440);
        (start, end)
    }

    /// The instant of a wall-clock time on a date in the zone (DST gaps and folds
    /// resolved the "compatible" way).
    fn local_instant(&self, day: Date, minutes: u16) -> Timestamp {
        let hour = (minutes / 60) as i8;
        let minute = (minutes % 60) as i8;
        let at = day.at(hour, minute, 0, 0);
        self.spec
            .zone
            .to_ambiguous_zoned(at)
            .compatible()
            .map(|z| z.timestamp())
            .unwrap_or(Timestamp::MAX)
    }

    /// The first instant of a local date (midnight, or later when midnight is skipped).
    fn day_start(&self, day: Date) -> Timestamp {
        day.to_zoned(self.spec.zone.clone())
            .map(|z| z.timestamp())
            .unwrap_or(Timestamp::MAX)
    }

    /// `Mon 09:00 Europe/Berlin`, with the date when it is a week or more away.
    fn show(&self, at: Timestamp, now: Timestamp) -> String {
        let zoned = at.to_zoned(self.spec.zone.clone());
        let pattern = if at.duration_since(now) < SignedDuration::from_hours(6 * 24) {
            "%a %H:%M"
        } else {
            "%a %Y-%m-%d %H:%M"
        };
        format!("{} {}", zoned.strftime(pattern), self.spec.zone_name)
    }

    /// The blackout covering `now`'s local date, if any.
    fn blackout_today(&self, now: Timestamp) -> Option<String> {
        let today = now.to_zoned(self.spec.zone.clone()).date();
        self.spec
            .blackout
            .iter()
            .find(|b| b.first <= today && today <= b.last)
            .map(|b| b.to_string())
    }

    fn rule(&self) -> String {
        let mut rule = if self.spec.periods.is_empty() {
            "never".to_string()
        } else {
            self.spec
                .periods
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        rule.push(' ');
        rule.push_str(&self.spec.zone_name);
        rule
    }
}

fn add_days(day: Date, n: i64) -> Date {
    day.checked_add(n.days()).unwrap_or(day)
}

/// Merge sorted intervals that overlap or touch.
fn merge(sorted: Vec<(Timestamp, Timestamp)>) -> Vec<(Timestamp, Timestamp)> {
    let mut out: Vec<(Timestamp, Timestamp)> = Vec::with_capacity(sorted.len());
    for (s, e) in sorted {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// `open` less `shut` (both sorted and merged).
fn subtract(
    open: Vec<(Timestamp, Timestamp)>,
    shut: &[(Timestamp, Timestamp)],
) -> Vec<(Timestamp, Timestamp)> {
    let mut out = Vec::new();
    for (mut s, e) in open {
        for &(bs, be) in shut {
            if be <= s || bs >= e {
                continue;
            }
            if bs > s {
                out.push((s, bs));
            }
            s = s.max(be);
            if s >= e {
                break;
            }
        }
        if s < e {
            out.push((s, e));
        }
    }
    out
}

#[async_trait::async_trait]
impl Gate for WindowGate {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "window"
    }
    async fn evaluate(&self, input: &GateInput<'_>) -> Evaluation {
        let now = input.now;
        let local = now.to_zoned(self.spec.zone.clone());
        let mut evidence = serde_json::json!({
            "timezone": self.spec.zone_name,
            "periods": self.spec.periods.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            "blackout": self.spec.blackout.iter().map(|b| b.to_string()).collect::<Vec<_>>(),
            "local_time": local.strftime("%a %Y-%m-%d %H:%M:%S %Z").to_string(),
        });
        let override_hint = format!(
            "sluice override {} --gate {} --stage {} --reason \"...\"",
            input.run_id, self.id, input.stage
        );
        let (decision, clear_hint) = match self.standing(now) {
            Standing::Open { closes } => {
                evidence["closes_at"] = serde_json::json!(closes.map(|c| c.to_string()));
                let reason = match closes {
                    Some(c) => format!(
                        "open until {} (in {})",
                        self.show(c, now),
                        human_duration(c.duration_since(now))
                    ),
                    None => format!("open ({}), with no close within a year", self.rule()),
                };
                (Decision::Allow { reason }, None)
            }
            Standing::Shut { opens } => {
                evidence["opens_at"] = serde_json::json!(opens.map(|o| o.to_string()));
                let why = match self.blackout_today(now) {
                    Some(b) => format!("closed: blackout {b}"),
                    None => format!("closed: outside {}", self.rule()),
                };
                match opens {
                    Some(o) => (
                        Decision::Wait {
                            reason: format!(
                                "{why}; opens {} (in {})",
                                self.show(o, now),
                                human_duration(o.duration_since(now))
                            ),
                            until: Some(o),
                        },
                        Some(format!(
                            "wait until it opens at {}, or: {override_hint}",
                            self.show(o, now)
                        )),
                    ),
                    None => (
                        Decision::Wait {
                            reason: format!(
                                "{why}; it does not open within a year (periods {}, blackouts {})",
                                self.rule(),
                                if self.spec.blackout.is_empty() {
                                    "none".to_string()
                                } else {
                                    self.spec
                                        .blackout
                                        .iter()
                                        .map(|b| b.to_string())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                }
                            ),
                            until: None,
                        },
                        Some(override_hint),
                    ),
                }
            }
        };
        Evaluation {
            gate: self.id.clone(),
            kind: "window".into(),
            decision,
            clear_hint,
            evidence,
            overridden_by: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::spec::{parse_blackout, parse_days, parse_hours, time_zone};

    fn window(zone: &str, periods: &[(&str, &str)], blackout: &[&str]) -> WindowGate {
        let (zone_name, zone) = time_zone(zone).unwrap();
        let mut ps = Vec::new();
        for (days, hours) in periods {
            for (start, end) in parse_hours(hours).unwrap() {
                ps.push(Period {
                    days: parse_days(days).unwrap(),
                    start,
                    end,
                });
            }
        }
        WindowGate::new(
            "business-hours",
            WindowSpec {
                zone_name,
                zone,
                periods: ps,
                blackout: blackout
                    .iter()
                    .map(|b| parse_blackout(b).unwrap())
                    .collect(),
            },
        )
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn eval(gate: &WindowGate, now: &str) -> Evaluation {
        let input = GateInput {
            pipeline: "shop",
            run_id: "r1",
            stage: "prod",
            now: at(now),
            approvals: &[],
            artifact: None,
        };
        futures::executor::block_on(gate.evaluate(&input))
    }

    fn opens(gate: &WindowGate, now: &str) -> Option<String> {
        match gate.standing(at(now)) {
            Standing::Shut { opens } => opens.map(|t| t.to_string()),
            other => panic!("expected shut at {now}, got {other:?}"),
        }
    }

    fn closes(gate: &WindowGate, now: &str) -> Option<String> {
        match gate.standing(at(now)) {
            Standing::Open { closes } => closes.map(|t| t.to_string()),
            other => panic!("expected open at {now}, got {other:?}"),
        }
    }

    #[test]
    fn inside_a_period_the_window_allows_and_says_when_it_closes() {
        let g = window("Europe/Berlin", &[("Mon-Thu", "09:00-16:00")], &[]);
        // Mon 2026-11-30 10:00 Berlin (CET, +01:00) = 09:00Z.
        let e = eval(&g, "2026-11-30T09:00:00Z");
        assert_eq!(
            e.decision,
            Decision::Allow {
                reason: "open until Mon 16:00 Europe/Berlin (in 6h)".into()
            }
        );
        assert_eq!(e.evidence["closes_at"], "2026-11-30T15:00:00Z");
        assert_eq!(e.evidence["local_time"], "Mon 2026-11-30 10:00:00 CET");
    }

    #[test]
    fn outside_the_window_waits_until_it_opens() {
        let g = window("Europe/Berlin", &[("Mon-Thu", "09:00-16:00")], &[]);
        // Mon 06:50 Berlin.
        let e = eval(&g, "2026-11-30T05:50:00Z");
        assert_eq!(
            e.decision,
            Decision::Wait {
                reason: "closed: outside Mon-Thu 09:00-16:00 Europe/Berlin; opens Mon 09:00 Europe/Berlin (in 2h10m)".into(),
                until: Some(at("2026-11-30T08:00:00Z")),
            }
        );
        assert_eq!(
            e.clear_hint.as_deref(),
            Some(
                "wait until it opens at Mon 09:00 Europe/Berlin, or: sluice override r1 --gate business-hours --stage prod --reason \"...\""
            )
        );
        // Thu 16:00 exactly is closed; it opens again Monday.
        assert_eq!(
            opens(&g, "2026-12-03T15:00:00Z").as_deref(),
            Some("2026-12-07T08:00:00Z")
        );
        // Thu 15:59 is open.
        assert_eq!(
            closes(&g, "2026-12-03T14:59:00Z").as_deref(),
            Some("2026-12-03T15:00:00Z")
        );
    }

    #[test]
    fn a_period_crossing_midnight_belongs_to_the_day_it_starts() {
        let g = window("UTC", &[("Fri", "22:00-02:00")], &[]);
        // Sat 2026-12-05 01:00: inside Friday's period.
        assert_eq!(
            closes(&g, "2026-12-05T01:00:00Z").as_deref(),
            Some("2026-12-05T02:00:00Z")
        );
        // Sat 23:00 is not: Saturday has no period.
        assert_eq!(
            opens(&g, "2026-12-05T23:00:00Z").as_deref(),
            Some("2026-12-11T22:00:00Z")
        );
        // Fri 2026-12-04 21:00 waits an hour.
        assert_eq!(
            opens(&g, "2026-12-04T21:00:00Z").as_deref(),
            Some("2026-12-04T22:00:00Z")
        );
    }

    #[test]
    fn a_blackout_date_cuts_the_part_of_a_night_period_that_runs_into_it() {
        // Thu 2026-12-24 is blacked out: Wednesday's 22:00-02:00 closes at midnight.
        let g = window("UTC", &[("Wed", "22:00-02:00")], &["2026-12-24"]);
        assert_eq!(
            closes(&g, "2026-12-23T23:00:00Z").as_deref(),
            Some("2026-12-24T00:00:00Z")
        );
        assert_eq!(
            opens(&g, "2026-12-24T01:00:00Z").as_deref(),
            Some("2026-12-30T22:00:00Z")
        );
    }

    #[test]
    fn adjacent_periods_merge_so_the_close_is_the_real_one() {
        let g = window("UTC", &[("Mon-Tue", "00:00-24:00")], &[]);
        assert_eq!(
            closes(&g, "2026-11-30T12:00:00Z").as_deref(),
            Some("2026-12-02T00:00:00Z")
        );
        let always = window("UTC", &[("Mon-Sun", "00:00-24:00")], &[]);
        assert_eq!(closes(&always, "2026-11-30T12:00:00Z"), None);
        let e = eval(&always, "2026-11-30T12:00:00Z");
        assert_eq!(
            e.decision,
            Decision::Allow {
                reason: "open (Mon-Sun 00:00-24:00 UTC), with no close within a year".into()
            }
        );
    }

    #[test]
    fn blackout_dates_shut_the_window_all_day_in_its_zone() {
        let g = window(
            "Europe/Berlin",
            &[("Mon-Fri", "09:00-16:00")],
            &["2026-12-24", "2026-12-31..2027-01-01"],
        );
        // Thu 2026-12-24 10:00 Berlin: blackout; Fri 25th opens at 09:00.
        let e = eval(&g, "2026-12-24T09:00:00Z");
        assert_eq!(
            e.decision,
            Decision::Wait {
                reason: "closed: blackout 2026-12-24; opens Fri 09:00 Europe/Berlin (in 23h)"
                    .into(),
                until: Some(at("2026-12-25T08:00:00Z")),
            }
        );
        // Wed 2026-12-30 15:00 Berlin: open, closes at 16:00 as usual.
        assert_eq!(
            closes(&g, "2026-12-30T14:00:00Z").as_deref(),
            Some("2026-12-30T15:00:00Z")
        );
        // Thu 2026-12-31 10:00: the range holds it until Mon 2027-01-04 09:00 (Fri 1st is
        // in the range, then a weekend).
        assert_eq!(
            opens(&g, "2026-12-31T09:00:00Z").as_deref(),
            Some("2027-01-04T08:00:00Z")
        );
        // The blackout is the local date: 23:30Z on the 23rd is already the 24th in Berlin.
        let night = window(
            "Europe/Berlin",
            &[("Mon-Sun", "00:00-24:00")],
            &["2026-12-24"],
        );
        assert_eq!(
            opens(&night, "2026-12-23T23:30:00Z").as_deref(),
            Some("2026-12-24T23:00:00Z")
        );
        assert_eq!(
            closes(&night, "2026-12-23T22:30:00Z").as_deref(),
            Some("2026-12-23T23:00:00Z")
        );
    }

    #[test]
    fn a_window_that_never_opens_within_a_year_waits_with_no_end_and_says_why() {
        let g = window(
            "UTC",
            &[("Mon-Fri", "09:00-16:00")],
            &["2026-01-01..2028-12-31"],
        );
        let e = eval(&g, "2026-11-30T10:00:00Z");
        assert_eq!(
            e.decision,
            Decision::Wait {
                reason: "closed: blackout 2026-01-01..2028-12-31; it does not open within a year (periods Mon-Fri 09:00-16:00 UTC, blackouts 2026-01-01..2028-12-31)".into(),
                until: None,
            }
        );
        // A far opening (beyond the first week) is still found, with its date.
        let g = window(
            "UTC",
            &[("Mon-Fri", "09:00-16:00")],
            &["2026-11-30..2026-12-20"],
        );
        let e = eval(&g, "2026-11-30T10:00:00Z");
        assert_eq!(
            e.decision,
            Decision::Wait {
                reason: "closed: blackout 2026-11-30..2026-12-20; opens Mon 2026-12-21 09:00 UTC (in 20d23h)".into(),
                until: Some(at("2026-12-21T09:00:00Z")),
            }
        );
    }

    #[test]
    fn windows_follow_wall_clock_time_across_daylight_saving_changes_in_berlin() {
        // Berlin springs forward on Sun 2026-03-29 (02:00 CET -> 03:00 CEST) and falls
        // back on Sun 2026-10-25 (03:00 CEST -> 02:00 CET).
        let g = window("Europe/Berlin", &[("Mon-Sun", "09:00-16:00")], &[]);
        // Sat 28 March 09:00 CET = 08:00Z; Sun 29 March 09:00 CEST = 07:00Z.
        assert_eq!(
            opens(&g, "2026-03-28T06:00:00Z").as_deref(),
            Some("2026-03-28T08:00:00Z")
        );
        assert_eq!(
            opens(&g, "2026-03-28T16:00:00Z").as_deref(),
            Some("2026-03-29T07:00:00Z")
        );
        // Sun 25 October 09:00 CET = 08:00Z.
        assert_eq!(
            opens(&g, "2026-10-24T20:00:00Z").as_deref(),
            Some("2026-10-25T08:00:00Z")
        );
        // A period starting in the skipped hour moves forward by the gap: 02:30 -> 03:30 CEST.
        let gap = window("Europe/Berlin", &[("Sun", "02:30-04:00")], &[]);
        assert_eq!(
            opens(&gap, "2026-03-28T12:00:00Z").as_deref(),
            Some("2026-03-29T01:30:00Z")
        );
        assert_eq!(
            closes(&gap, "2026-03-29T01:45:00Z").as_deref(),
            Some("2026-03-29T02:00:00Z")
        );
        // A night period over the fall-back is an hour longer in real time:
        // Sat 22:00 CEST (20:00Z) to Sun 06:00 CET (05:00Z).
        let night = window("Europe/Berlin", &[("Sat", "22:00-06:00")], &[]);
        assert_eq!(
            closes(&night, "2026-10-24T21:00:00Z").as_deref(),
            Some("2026-10-25T05:00:00Z")
        );
    }

    #[test]
    fn windows_follow_wall_clock_time_across_daylight_saving_changes_in_new_york() {
        // New York springs forward on Sun 2026-03-08 and falls back on Sun 2026-11-01.
        let g = window("America/New_York", &[("Mon-Fri", "09:00-17:00")], &[]);
        // Fri 6 March 17:00 EST closes at 22:00Z; Mon 9 March 09:00 EDT = 13:00Z.
        assert_eq!(
            opens(&g, "2026-03-06T22:00:00Z").as_deref(),
            Some("2026-03-09T13:00:00Z")
        );
        // Fri 30 October 09:00 EDT = 13:00Z; Mon 2 November 09:00 EST = 14:00Z.
        assert_eq!(
            closes(&g, "2026-10-30T13:00:00Z").as_deref(),
            Some("2026-10-30T21:00:00Z")
        );
        assert_eq!(
            opens(&g, "2026-10-30T21:00:00Z").as_deref(),
            Some("2026-11-02T14:00:00Z")
        );
        let e = eval(&g, "2026-10-31T12:00:00Z");
        assert_eq!(
            e.decision,
            Decision::Wait {
                reason: "closed: outside Mon-Fri 09:00-17:00 America/New_York; opens Mon 09:00 America/New_York (in 2d2h)".into(),
                until: Some(at("2026-11-02T14:00:00Z")),
            }
        );
    }
}
