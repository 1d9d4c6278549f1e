//! A case's timeline: what the hub, the network, the rig and the device did,
//! on one time axis, with the events the verdict cites marked.
//!
//! The axis is the case's own monotonic clock: microseconds since
//! `Case::start` began (a `std::time::Instant`). Monotonic because wall
//! clock steps (NTP) would reorder events, and because the hub journal's
//! `mono_us` is monotonic too; each source's offset to it is computed once
//! per case (the journal's when its hub is up, the wall clock's — capture
//! timestamps and device log lines are wall clock — at the origin). Not the
//! hub's virtual clock: it jumps by hours when a case advances it, which
//! would squash everything else into a dot; its readings stay in each
//! journal event's detail.
//!
//! The model is pure: [`super::timeline_build`] makes it from what a case
//! recorded, [`Timeline::compact`] bounds it, [`super::timeline_svg`] draws
//! it. A case writes it as `cases/<ID>/timeline.json` (`artifacts.timeline`
//! in `report.json`), so a page regenerated from the run directory has it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// File name of a case's timeline inside its directory.
pub const TIMELINE_JSON: &str = "timeline.json";
/// The `schema` value of `timeline.json`.
pub const TIMELINE_SCHEMA: &str = "sacbench-timeline/1";

/// Events of one lane a compacted timeline keeps apart, at most, besides
/// the cited ones: the lane's axis is cut into this many slots and the
/// uncited events of a slot with several become one span.
pub const SLOTS_PER_LANE: usize = 80;
/// Cited events one lane keeps apart, at most; beyond, they are folded
/// into spans too (which stay marked as cited).
pub const CITED_PER_LANE: usize = 48;

/// One case's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// [`TIMELINE_SCHEMA`].
    pub schema: String,
    /// Wall clock at the axis's zero, ns since the Unix epoch (to match
    /// the axis with other logs).
    pub origin_unix_ns: u64,
    /// Length of the axis, µs (at least the last event's time).
    pub duration_us: u64,
    /// Events in time order.
    pub events: Vec<TimelineEvent>,
}

/// A row of the timeline: who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// The fixture hub's journal: TLS, CONNECT, subscriptions, C2D, twin,
    /// methods, revocation, EST, downloads.
    Hub,
    /// The capture of the DUT's link: flows, SYNs, TLS hellos and alerts,
    /// MQTT packets where the key log opens them.
    Network,
    /// What the bench did to the device: power, link, flash.
    Rig,
    /// The device's console events its DUT file declares.
    Dut,
}

impl Lane {
    /// Every lane, top to bottom.
    pub const ALL: [Lane; 4] = [Lane::Hub, Lane::Network, Lane::Rig, Lane::Dut];

    /// The lane's name as the page shows it.
    pub fn title(self) -> &'static str {
        match self {
            Lane::Hub => "hub",
            Lane::Network => "network",
            Lane::Rig => "rig",
            Lane::Dut => "device",
        }
    }

    /// The lane's name as attributes and JSON spell it.
    pub fn key(self) -> &'static str {
        match self {
            Lane::Hub => "hub",
            Lane::Network => "network",
            Lane::Rig => "rig",
            Lane::Dut => "dut",
        }
    }
}

/// One event, or a span of several folded together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEvent {
    /// Its row.
    pub lane: Lane,
    /// When, µs on the case's axis.
    pub at_us: u64,
    /// When it ended, for something that lasts (a flash, a flow, a fold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_us: Option<u64>,
    /// A few words: `SYN`, `ClientHello`, `connected`, `power off`.
    pub label: String,
    /// Everything else, for the tooltip.
    pub detail: String,
    /// The hub journal entries it stands for (`seq`, first and last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seqs: Option<(u64, u64)>,
    /// The capture frames it stands for (first and last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<(u64, u64)>,
    /// Events folded into it (1 for a single event).
    #[serde(default = "one")]
    pub count: u64,
    /// Something went wrong here (a refused handshake, an alert, a failed
    /// rig action): drawn in the failure colour.
    #[serde(default)]
    pub alarm: bool,
    /// The pieces of the case's evidence (0-based, as `report.json` lists
    /// them) that cite it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cites: Vec<usize>,
}

fn one() -> u64 {
    1
}

impl TimelineEvent {
    /// A single event at `at_us`.
    pub fn new(
        lane: Lane,
        at_us: u64,
        label: impl Into<String>,
        detail: impl Into<String>,
    ) -> TimelineEvent {
        TimelineEvent {
            lane,
            at_us,
            end_us: None,
            label: label.into(),
            detail: detail.into(),
            seqs: None,
            frames: None,
            count: 1,
            alarm: false,
            cites: Vec::new(),
        }
    }

    /// The journal entry `seq` it stands for.
    pub fn seq(mut self, seq: u64) -> Self {
        self.seqs = Some((seq, seq));
        self
    }

    /// The frames `first..=last` it stands for.
    pub fn frames(mut self, first: u64, last: u64) -> Self {
        self.frames = Some((first.min(last), first.max(last)));
        self
    }

    /// It lasted until `end_us`.
    pub fn until(mut self, end_us: u64) -> Self {
        self.end_us = Some(end_us.max(self.at_us));
        self
    }

    /// Marks it as something that went wrong when `alarm`.
    pub fn alarm(mut self, alarm: bool) -> Self {
        self.alarm = alarm;
        self
    }

    /// Its last instant: `end_us`, or `at_us`.
    pub fn last_us(&self) -> u64 {
        self.end_us.unwrap_or(self.at_us).max(self.at_us)
    }
}

impl Timeline {
    /// A timeline of `events` (sorted here) over at least `duration_us`.
    pub fn new(origin_unix_ns: u64, duration_us: u64, mut events: Vec<TimelineEvent>) -> Self {
        events.sort_by_key(|e| (e.at_us, e.lane));
        let last = events.iter().map(TimelineEvent::last_us).max().unwrap_or(0);
        Timeline {
            schema: TIMELINE_SCHEMA.to_string(),
            origin_unix_ns,
            duration_us: duration_us.max(last),
            events,
        }
    }

    /// The events of `lane`, in time order.
    pub fn lane(&self, lane: Lane) -> impl Iterator<Item = &TimelineEvent> {
        self.events.iter().filter(move |e| e.lane == lane)
    }

    /// Folds each lane down to at most [`SLOTS_PER_LANE`] spans and points
    /// plus [`CITED_PER_LANE`] cited events, so that a case with thousands
    /// of packets or telemetry messages stays a small picture. The axis is
    /// cut into equal slots; a slot's uncited events become one span that
    /// counts them by label. Idempotent.
    pub fn compact(&mut self) {
        let duration = self.duration_us.max(1);
        let mut out = Vec::new();
        for lane in Lane::ALL {
            let events: Vec<TimelineEvent> = self.lane(lane).cloned().collect();
            if events.len() <= SLOTS_PER_LANE {
                out.extend(events);
                continue;
            }
            let mut kept_cited = 0;
            let mut slots: BTreeMap<u64, Vec<TimelineEvent>> = BTreeMap::new();
            for e in events {
                if !e.cites.is_empty() && e.count == 1 && kept_cited < CITED_PER_LANE {
                    kept_cited += 1;
                    out.push(e);
                    continue;
                }
                let slot = e.at_us.saturating_mul(SLOTS_PER_LANE as u64) / duration;
                slots.entry(slot).or_default().push(e);
            }
            out.extend(slots.into_values().map(fold));
        }
        *self = Timeline::new(self.origin_unix_ns, self.duration_us, out);
    }
}

/// One span standing for `events` (one of them: itself).
fn fold(mut events: Vec<TimelineEvent>) -> TimelineEvent {
    if events.len() == 1 {
        return events.remove(0);
    }
    let lane = events[0].lane;
    let at = events.iter().map(|e| e.at_us).min().unwrap_or(0);
    let end = events
        .iter()
        .map(TimelineEvent::last_us)
        .max()
        .unwrap_or(at);
    let count: u64 = events.iter().map(|e| e.count).sum();
    let mut by_label: BTreeMap<&str, u64> = BTreeMap::new();
    for e in &events {
        *by_label.entry(e.label.as_str()).or_default() += e.count;
    }
    let mut labels: Vec<(&str, u64)> = by_label.into_iter().collect();
    labels.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let label = match labels.as_slice() {
        [(only, _)] => format!("{count} × {only}"),
        _ => format!("{count} events"),
    };
    let mut detail: Vec<String> = labels
        .iter()
        .take(6)
        .map(|(l, n)| format!("{n} × {l}"))
        .collect();
    if labels.len() > 6 {
        detail.push(format!("and {} other kinds", labels.len() - 6));
    }
    let range = |f: fn(&TimelineEvent) -> Option<(u64, u64)>| {
        let rs: Vec<(u64, u64)> = events.iter().filter_map(f).collect();
        let first = rs.iter().map(|r| r.0).min()?;
        let last = rs.iter().map(|r| r.1).max()?;
        Some((first, last))
    };
    let mut cites: Vec<usize> = events.iter().flat_map(|e| e.cites.clone()).collect();
    cites.sort_unstable();
    cites.dedup();
    TimelineEvent {
        lane,
        at_us: at,
        end_us: Some(end),
        label,
        detail: format!("folded: {}", detail.join(", ")),
        seqs: range(|e| e.seqs),
        frames: range(|e| e.frames),
        count,
        alarm: events.iter().any(|e| e.alarm),
        cites,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(lane: Lane, at: u64, label: &str) -> TimelineEvent {
        TimelineEvent::new(lane, at, label, format!("{label} at {at}"))
    }

    #[test]
    fn events_come_sorted_and_the_axis_covers_them() {
        let t = Timeline::new(
            0,
            10,
            vec![
                ev(Lane::Rig, 50, "power on"),
                ev(Lane::Hub, 20, "connected").until(70),
            ],
        );
        assert_eq!(t.events[0].label, "connected");
        assert_eq!(t.duration_us, 70);
        assert_eq!(t.lane(Lane::Rig).count(), 1);
    }

    #[test]
    fn small_lanes_are_left_alone() {
        let mut t = Timeline::new(
            0,
            1000,
            (0..SLOTS_PER_LANE as u64)
                .map(|i| ev(Lane::Network, i, "SYN"))
                .collect(),
        );
        let before = t.clone();
        t.compact();
        assert_eq!(t, before);
    }

    #[test]
    fn ten_thousand_packets_fold_into_counted_spans_and_cited_ones_stay() {
        let mut events: Vec<TimelineEvent> = (0..10_000u64)
            .map(|i| {
                let label = if i % 2 == 0 { "PUBLISH" } else { "PUBACK" };
                ev(Lane::Network, i * 100, label).frames(i + 1, i + 1)
            })
            .collect();
        events[5_000].cites = vec![0];
        events[5_000].alarm = true;
        events.push(ev(Lane::Hub, 10, "connected").seq(3));
        let mut t = Timeline::new(0, 1_000_000, events);
        t.compact();
        let network: Vec<_> = t.lane(Lane::Network).collect();
        assert!(network.len() <= SLOTS_PER_LANE + 1, "{}", network.len());
        assert_eq!(network.iter().map(|e| e.count).sum::<u64>(), 10_000);
        let cited: Vec<_> = network.iter().filter(|e| !e.cites.is_empty()).collect();
        assert_eq!(cited.len(), 1);
        assert_eq!((cited[0].count, cited[0].frames), (1, Some((5_001, 5_001))));
        let span = network.iter().find(|e| e.count > 1).unwrap();
        assert!(span.label.ends_with("events"), "{}", span.label);
        assert!(span.detail.contains("× PUBLISH") && span.detail.contains("× PUBACK"));
        assert!(span.end_us.unwrap() > span.at_us);
        assert_eq!(t.lane(Lane::Hub).count(), 1, "other lanes untouched");
        let again = t.clone();
        t.compact();
        assert_eq!(t, again, "idempotent");
    }

    #[test]
    fn too_many_cited_events_fold_too_and_stay_cited() {
        let events: Vec<TimelineEvent> = (0..1_000u64)
            .map(|i| {
                let mut e = ev(Lane::Hub, i * 10, "telemetry").seq(i + 1);
                e.cites = vec![usize::from(i % 2 == 0)];
                e
            })
            .collect();
        let mut t = Timeline::new(0, 10_000, events);
        t.compact();
        let hub: Vec<_> = t.lane(Lane::Hub).collect();
        assert!(hub.len() <= SLOTS_PER_LANE + CITED_PER_LANE);
        assert!(hub.iter().all(|e| !e.cites.is_empty()));
        let folded = hub.iter().find(|e| e.count > 1).unwrap();
        assert_eq!(folded.cites, vec![0, 1]);
        assert!(folded
            .label
            .starts_with(&format!("{} × telemetry", folded.count)));
        assert!(folded.seqs.unwrap().1 > folded.seqs.unwrap().0);
    }

    #[test]
    fn the_json_form_round_trips_and_omits_what_is_empty() {
        let t = Timeline::new(7, 100, vec![ev(Lane::Dut, 5, "booted")]);
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.contains(r#""lane":"dut""#), "{json}");
        assert!(
            !json.contains("cites") && !json.contains("frames"),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Timeline>(&json).unwrap(), t);
    }
}
