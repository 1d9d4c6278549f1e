//! A [`Timeline`] as one self-contained inline SVG: no script, no external
//! resource, presentation attributes only (the page's Content-Security-
//! Policy allows nothing else). Four lanes (hub, network, rig, device) over
//! one time axis with labelled ticks; every event a mark with its tooltip
//! (`<title>`); spans as bars; the events the verdict cites ringed in the
//! failure colour and labelled `E1`, `E2`… after the evidence they are
//! (numbered as the case's evidence list), with a legend of those pieces.
//!
//! Pure: a timeline and the evidence in, a string out. Every text is
//! escaped here (device text reaches tooltips), and the timeline is
//! compacted first, so any input draws a picture of bounded size.

use std::fmt::Write as _;

use super::timeline::{Lane, Timeline, TimelineEvent};
use super::{kind_label, refs_text};
use crate::model::{Evidence, EvidenceKind};

const WIDTH: f64 = 960.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 6.0;
const LANE_H: f64 = 34.0;
const AXIS_H: f64 = 24.0;
const LEGEND_LINE: f64 = 15.0;
/// Legend lines at most; the rest is counted.
const LEGEND_MAX: usize = 12;
/// Legend texts longer than this are cut.
const LEGEND_TEXT_MAX: usize = 110;
/// The rig lane's marks are named when it has this many at most.
const RIG_LABELS_MAX: usize = 16;

const FAIL: &str = "#cf222e";
const MUTED: &str = "#57606a";

fn lane_colour(lane: Lane) -> &'static str {
    match lane {
        Lane::Hub => "#0969da",
        Lane::Network => "#8250df",
        Lane::Rig => "#9a6700",
        Lane::Dut => "#1a7f37",
    }
}

/// The SVG of `timeline`, citing `evidence` (the case's, in report order).
pub fn render_svg(timeline: &Timeline, evidence: &[Evidence]) -> String {
    let mut t = timeline.clone();
    t.compact();
    let span = t.duration_us.max(1) as f64;
    let plot = WIDTH - LEFT - RIGHT;
    let x = |us: u64| LEFT + (us as f64).min(span) * plot / span;
    let lanes_h = LANE_H * Lane::ALL.len() as f64;
    let axis_y = TOP + lanes_h;
    let legend: Vec<(usize, &Evidence)> = evidence.iter().enumerate().collect();
    let legend_lines = legend.len().min(LEGEND_MAX + 1);
    let height = axis_y + AXIS_H + LEGEND_LINE * legend_lines as f64 + 4.0;

    let mut s = String::with_capacity(16 * 1024);
    let cited = t.events.iter().filter(|e| !e.cites.is_empty()).count();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {height:.0}" width="100%" role="img" font-family="system-ui, sans-serif" font-size="11" data-events="{}" data-cited="{cited}">"#,
        t.events.len()
    );
    let _ = write!(
        s,
        "<title>{}</title>",
        esc(&format!(
            "Timeline of the case: {} events over {}, {cited} cited by the verdict",
            t.events.iter().map(|e| e.count).sum::<u64>(),
            time_label(t.duration_us)
        ))
    );
    for (i, lane) in Lane::ALL.into_iter().enumerate() {
        let y0 = TOP + LANE_H * i as f64;
        let mid = y0 + LANE_H / 2.0;
        let _ = write!(
            s,
            r##"<g class="lane" data-lane="{key}"><rect x="0" y="{y0}" width="{WIDTH}" height="{LANE_H}" fill="{bg}"/><text x="6" y="{ty:.1}" fill="{c}" font-weight="600">{title}</text><line x1="{LEFT}" y1="{mid}" x2="{x2}" y2="{mid}" stroke="#d0d7de"/>"##,
            key = lane.key(),
            bg = if i % 2 == 0 { "#f6f8fa" } else { "#ffffff" },
            ty = mid + 4.0,
            c = lane_colour(lane),
            title = lane.title(),
            x2 = WIDTH - RIGHT,
        );
        let labelled = lane == Lane::Rig && t.lane(lane).count() <= RIG_LABELS_MAX;
        // Spans under points, uncited under cited: the marks that matter on top.
        let mut events: Vec<(usize, &TimelineEvent)> = t.lane(lane).enumerate().collect();
        events.sort_by_key(|(_, e)| (!e.cites.is_empty(), e.end_us.is_none()));
        for (n, e) in events {
            // Alternately above and below: neighbours' names do not overlap.
            event(&mut s, e, &x, mid, labelled.then_some(n % 2 == 0));
        }
        s.push_str("</g>");
    }
    axis(&mut s, t.duration_us, &x, axis_y);
    for (n, (i, ev)) in legend.iter().enumerate() {
        let y = axis_y + AXIS_H + LEGEND_LINE * (n as f64 + 0.8);
        if n == LEGEND_MAX {
            let _ = write!(
                s,
                r#"<text class="legend" x="{LEFT}" y="{y:.1}" fill="{MUTED}">… and {} more pieces of evidence (listed above)</text>"#,
                legend.len() - LEGEND_MAX
            );
            break;
        }
        let placed = t.events.iter().any(|e| e.cites.contains(i));
        let where_ = match (placed, ev.kind) {
            (true, _) => String::new(),
            (false, EvidenceKind::Frames | EvidenceKind::Journal) if !ev.refs.is_empty() => {
                " — not on the axis".to_string()
            }
            (false, _) => " — no time of its own".to_string(),
        };
        let refs = refs_text(ev).map(|r| format!(" ({r})")).unwrap_or_default();
        let text = format!(
            "E{} {}{refs}: {}{where_}",
            i + 1,
            kind_label(ev.kind),
            cut(&ev.text, LEGEND_TEXT_MAX)
        );
        let _ = write!(
            s,
            r#"<text class="legend" data-evidence="{}" x="{LEFT}" y="{y:.1}" fill="{}">{}</text>"#,
            i + 1,
            if placed { FAIL } else { MUTED },
            esc(&text)
        );
    }
    s.push_str("</svg>");
    s
}

/// One event: a bar (span) or a dot, its tooltip, and when cited a ring
/// and its `E` labels.
/// `label_above`: name the mark, above it (or below it) when `Some`.
fn event(
    s: &mut String,
    e: &TimelineEvent,
    x: &dyn Fn(u64) -> f64,
    mid: f64,
    label_above: Option<bool>,
) {
    let colour = if e.alarm { FAIL } else { lane_colour(e.lane) };
    let cites: Vec<String> = e.cites.iter().map(|c| (c + 1).to_string()).collect();
    let mut class = String::from("ev");
    if e.end_us.is_some() {
        class.push_str(" span");
    }
    if e.alarm {
        class.push_str(" alarm");
    }
    if !cites.is_empty() {
        class.push_str(" cited");
    }
    let _ = write!(s, r#"<g class="{class}" data-at-us="{}""#, e.at_us);
    if let Some((a, b)) = e.seqs {
        let _ = write!(s, r#" data-seqs="{a}-{b}""#);
    }
    if let Some((a, b)) = e.frames {
        let _ = write!(s, r#" data-frames="{a}-{b}""#);
    }
    if !cites.is_empty() {
        let _ = write!(s, r#" data-cites="{}""#, cites.join(" "));
    }
    let _ = write!(s, "><title>{}</title>", esc(&tooltip(e, &cites)));
    let x0 = x(e.at_us);
    // Near the right edge, names end at their mark instead of starting there.
    let near_end = x0 > WIDTH - RIGHT - 110.0;
    let anchor = if near_end { "end" } else { "start" };
    // A span too short to see as a bar is drawn as a dot.
    let bar = e
        .end_us
        .map(|end| x(end) - x0)
        .filter(|w| *w >= 3.0 || e.count > 1);
    match bar {
        Some(w) => {
            let (h, opacity) = if e.count > 1 {
                (12.0, 0.45)
            } else {
                (6.0, 0.3)
            };
            let _ = write!(
                s,
                r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{h}" rx="2" fill="{colour}" fill-opacity="{opacity}"/>"#,
                mid - h / 2.0,
                w.max(2.0)
            );
        }
        None => {
            let _ = write!(
                s,
                r#"<circle cx="{x0:.1}" cy="{mid}" r="4" fill="{colour}"/>"#
            );
        }
    }
    // What the bench did is named on the picture: a handful of marks, and
    // the reader's own actions to find the device's answers to.
    if let Some(above) = label_above {
        let y = if above { mid - 7.0 } else { mid + 13.0 };
        let lx = if near_end { x0 - 3.0 } else { x0 + 3.0 };
        let _ = write!(
            s,
            r#"<text class="ev-label" x="{lx:.1}" y="{y:.1}" font-size="9" text-anchor="{anchor}" fill="{colour}">{}</text>"#,
            esc(&cut(&e.label, 24))
        );
    }
    if !cites.is_empty() {
        let _ = write!(
            s,
            r#"<circle class="ring" cx="{x0:.1}" cy="{mid}" r="7.5" fill="none" stroke="{FAIL}" stroke-width="2.5"/><text class="cite-label" x="{:.1}" y="{:.1}" fill="{FAIL}" font-weight="700" text-anchor="{anchor}">{}</text>"#,
            if near_end { x0 - 9.0 } else { x0 + 9.0 },
            mid - 6.0,
            esc(&cites
                .iter()
                .map(|c| format!("E{c}"))
                .collect::<Vec<_>>()
                .join(" "))
        );
    }
    s.push_str("</g>");
}

fn tooltip(e: &TimelineEvent, cites: &[String]) -> String {
    let when = match e.end_us {
        Some(end) => format!("{} – {}", time_label(e.at_us), time_label(end)),
        None => time_label(e.at_us),
    };
    let mut t = format!("{when}: {} — {}", e.label, e.detail);
    if !cites.is_empty() {
        let _ = write!(t, " [cited as E{}]", cites.join(", E"));
    }
    t
}

/// The axis: a line, ticks at a round step, their times.
fn axis(s: &mut String, duration_us: u64, x: &dyn Fn(u64) -> f64, y: f64) {
    let step = tick_step(duration_us);
    let _ = write!(
        s,
        r#"<g class="axis" fill="{MUTED}"><line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}" stroke="{MUTED}"/>"#,
        WIDTH - RIGHT
    );
    let mut at = 0;
    while at <= duration_us {
        let tx = x(at);
        let _ = write!(
            s,
            r#"<line x1="{tx:.1}" y1="{y}" x2="{tx:.1}" y2="{:.1}" stroke="{MUTED}"/><text class="tick" x="{tx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            y + 4.0,
            y + 16.0,
            time_label(at)
        );
        at += step;
    }
    s.push_str("</g>");
}

/// A round step (1, 2 or 5 × 10ⁿ µs) giving at most 10 ticks.
fn tick_step(duration_us: u64) -> u64 {
    let mut unit = 1u64;
    loop {
        for m in [1, 2, 5] {
            let step = unit * m;
            if duration_us / step <= 10 {
                return step;
            }
        }
        unit *= 10;
    }
}

/// A time on the axis for people: `0`, `850 ms`, `12.5 s`, `4:05`.
pub fn time_label(us: u64) -> String {
    let ms = us / 1000;
    match us {
        0 => "0".to_string(),
        us if us < 1_000 => format!("{us} µs"),
        _ if ms < 1_000 => format!("{ms} ms"),
        _ if ms < 120_000 => {
            let s = format!("{:.3}", us as f64 / 1e6);
            format!("{} s", s.trim_end_matches('0').trim_end_matches('.'))
        }
        _ => format!("{}:{:02}", ms / 60_000, (ms / 1000) % 60),
    }
}

fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// Escapes text for XML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Not allowed in XML 1.0 at all: shown as the replacement character.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[path = "timeline_svg_tests.rs"]
mod tests;
