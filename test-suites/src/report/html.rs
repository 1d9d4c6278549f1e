//! `index.html`: one self-contained page per run, for people.
//!
//! Inline CSS only, no script, no external resource of any kind (fonts,
//! images, styles), so the page opens the same from a CI artifact, a mail
//! attachment or an air-gapped lab PC. A Content-Security-Policy forbids
//! loading anything at all, as a second line behind the escaping: report
//! text comes from devices under test and must never become markup.
//!
//! The page is the askama template `templates/report.html`, checked at
//! compile time against the view below (a field the template names and the
//! view lacks fails the build); askama escapes every value it prints (`&`,
//! `<`, `>`, `"`, `'`, as numeric character references), so no text reaches
//! the page unescaped and no code here escapes by hand. askama rather than
//! maud (the page would become Rust macro syntax, far from the HTML it
//! writes) or minijinja (templates checked only when rendered). This module
//! decides what the page shows (verdict, order, links, the tshark
//! commands); the template decides how.
//!
//! Layout: the run's verdict and counts with rig and fault; a table of
//! every case in run order; then one section per case (`id="case-<ID>"`),
//! failed cases first, then ignored, then passed, each with expected /
//! seen / look at, the evidence (frame and journal numbers also in
//! `data-frames` / `data-journal-seqs` for tools) and links to its files;
//! last the Standards view (`templates/report_standards.html`, decided in
//! `standards.rs`): per requirement its cases, their verdicts and evidence,
//! then the requirements that need documentation review.

use std::fmt::Write as _;

use askama::Template;

use crate::model::{CaseResult, Evidence, EvidenceKind, Outcome, RunReport, StandardRef};

use super::standards::{sorted_review, standards_view, StandardGroup, STANDARDS_CSV};
use super::{human_duration, kind_label, refs_text, Timelines, JUNIT_XML, REPORT_JSON};

/// What `templates/report.html` renders: everything already decided, so
/// the template holds layout only.
#[derive(Template)]
#[template(path = "report.html")]
struct Page<'a> {
    title: String,
    verdict_class: &'static str,
    verdict: String,
    run_rows: Vec<RunRow>,
    counts: [(&'static str, usize); 6],
    report_json: &'static str,
    junit_xml: &'static str,
    /// Every case in run order (the table).
    table: Vec<CaseView<'a>>,
    /// The same cases in reading order (the sections).
    details: Vec<CaseView<'a>>,
    /// The Standards view (`templates/report_standards.html`): the run by
    /// requirement, then what needs documentation review.
    standards: Vec<StandardGroup<'a>>,
    review: Vec<&'a StandardRef>,
    standards_csv: &'static str,
}

/// One line of the run's description list.
struct RunRow {
    label: &'static str,
    id: String,
    value: String,
}

/// A case as the page shows it.
#[derive(Clone)]
struct CaseView<'a> {
    case: &'a CaseResult,
    class: &'static str,
    badge: &'static str,
    duration: String,
    evidence: Vec<EvidenceView<'a>>,
    files: Vec<FileLink<'a>>,
    /// The case's timeline, drawn (`templates/case_timeline.html`).
    timeline_svg: Option<String>,
    /// Why the case's timeline file could not be drawn.
    timeline_missing: Option<String>,
}

/// One piece of evidence: its text, its numbers for people and for tools,
/// and the tshark command that shows its frames.
#[derive(Clone)]
struct EvidenceView<'a> {
    kind: &'static str,
    /// The attribute carrying the numbers for tools.
    data_attr: &'static str,
    /// The numbers, space-separated; `None` when there are none.
    numbers: Option<String>,
    label: &'static str,
    text: &'a str,
    refs: Option<String>,
    cmd: Option<String>,
}

/// A link to one of the case's files.
#[derive(Clone)]
struct FileLink<'a> {
    label: &'static str,
    href: String,
    path: &'a str,
}

/// Renders the HTML page of `report`, without timelines.
pub fn render_html(report: &RunReport) -> String {
    render_html_with(report, &Timelines::new())
}

/// Renders the HTML page of `report` with its cases' `timelines`.
pub fn render_html_with(report: &RunReport, timelines: &Timelines) -> String {
    let s = &report.summary;
    let (verdict_class, verdict) = verdict(report);
    let table: Vec<CaseView<'_>> = report
        .cases
        .iter()
        .map(|c| case_view(c, timelines.get(&c.id)))
        .collect();
    // Failures are what a reader came for; ignored cases next because they
    // prove nothing and must not pass for green. The sort is stable: run
    // order within each outcome.
    let mut details = table.clone();
    details.sort_by_key(|c| detail_rank(c.case.outcome));
    let page = Page {
        title: format!(
            "sacbench run: {} failed, {} error, {} passed, {} not applicable, {} ignored",
            s.failed, s.error, s.passed, s.not_applicable, s.ignored
        ),
        verdict_class,
        verdict,
        run_rows: run_rows(report),
        counts: [
            ("total", s.total),
            ("passed", s.passed),
            ("failed", s.failed),
            ("error", s.error),
            ("not_applicable", s.not_applicable),
            ("ignored", s.ignored),
        ],
        report_json: REPORT_JSON,
        junit_xml: JUNIT_XML,
        table,
        details,
        standards: standards_view(report),
        review: sorted_review(report),
        standards_csv: STANDARDS_CSV,
    };
    // The view holds strings and integers only and is written into a
    // String: formatting it cannot fail, so an error here is a bug.
    let mut html = page
        .render()
        .expect("rendering plain values into a String cannot fail");
    // askama drops a template file's final newline; a text file ends in one.
    html.push('\n');
    html
}

/// The verdict line's class and text.
fn verdict(report: &RunReport) -> (&'static str, String) {
    let s = &report.summary;
    let interrupted = report
        .interrupted
        .as_ref()
        .map(|sig| format!(" (run interrupted by {sig}: cases not started are absent)"))
        .unwrap_or_default();
    let (class, verdict) = if s.failed > 0 {
        (
            "failed",
            format!("FAILED: {} of {} cases failed", s.failed, s.total),
        )
    } else if s.error > 0 {
        (
            "error",
            format!(
                "BENCH ERROR: {} of {} cases could not be run by the bench (none failed)",
                s.error, s.total
            ),
        )
    } else if s.passed == 0 {
        (
            "ignored",
            format!("NOTHING PROVEN: no case passed ({} ignored)", s.ignored),
        )
    } else {
        (
            "passed",
            format!(
                "PASSED: {} of {} cases passed, none failed",
                s.passed, s.total
            ),
        )
    };
    (class, format!("{verdict}{interrupted}"))
}

fn run_rows(report: &RunReport) -> Vec<RunRow> {
    let fault = match &report.fault {
        Some(f) => format!(
            "{f} (switched on in the device under test: the cases this fault targets are expected to fail)"
        ),
        None => "none".to_string(),
    };
    let mut rows = vec![
        ("Rig", format!("{} — {}", report.rig.kind, report.rig.name)),
        (
            "Device under test",
            report.dut.as_ref().map_or("—".to_string(), |d| {
                format!(
                    "{} ({}; implements {})",
                    d.name,
                    d.file,
                    d.implements.join(", ")
                )
            }),
        ),
        ("Fault", fault),
        ("Started", report.started_at.clone()),
        ("Finished", report.finished_at.clone()),
        ("Schema", report.schema.clone()),
    ];
    if let Some(c) = &report.commit {
        // Before the times: which sacbench gave these verdicts.
        rows.insert(3, ("Commit", c.clone()));
    }
    rows.into_iter()
        .map(|(label, value)| RunRow {
            label,
            id: label.to_ascii_lowercase(),
            value,
        })
        .collect()
}

fn detail_rank(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Failed => 0,
        Outcome::Error => 1,
        Outcome::NotApplicable => 2,
        Outcome::Ignored => 3,
        Outcome::Passed => 4,
    }
}

fn case_view<'a>(
    case: &'a CaseResult,
    timeline: Option<&Result<super::timeline::Timeline, String>>,
) -> CaseView<'a> {
    let a = &case.artifacts;
    let files = [
        ("capture (pcapng, TLS keys embedded)", &a.capture),
        ("hub journal (JSON lines)", &a.journal),
        ("device log", &a.device_log),
        ("timeline (JSON)", &a.timeline),
    ]
    .into_iter()
    .filter_map(|(label, path)| {
        path.as_deref().map(|path| FileLink {
            label,
            href: href(path),
            path,
        })
    })
    .collect();
    CaseView {
        case,
        class: outcome_class(case.outcome),
        badge: badge_text(case.outcome),
        duration: human_duration(case.duration_ms),
        evidence: case
            .evidence
            .iter()
            .map(|ev| evidence_view(ev, a.capture.as_deref()))
            .collect(),
        files,
        timeline_svg: timeline
            .and_then(|t| t.as_ref().ok())
            .map(|t| super::timeline_svg::render_svg(t, &case.evidence)),
        timeline_missing: timeline
            .and_then(|t| t.as_ref().err())
            .map(|e| format!("No timeline: {e}")),
    }
}

fn evidence_view<'a>(ev: &'a Evidence, capture: Option<&str>) -> EvidenceView<'a> {
    let (kind, data_attr) = match ev.kind {
        EvidenceKind::Frames => ("frames", "data-frames"),
        EvidenceKind::Journal => ("journal", "data-journal-seqs"),
        EvidenceKind::Log => ("log", "data-refs"),
        EvidenceKind::Scan => ("scan", "data-refs"),
        EvidenceKind::Note => ("note", "data-refs"),
    };
    let numbers = (!ev.refs.is_empty()).then(|| {
        ev.refs
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    });
    // The command that shows exactly these frames, run from the run
    // directory; the capture embeds its TLS keys, so tshark decrypts too.
    let cmd = match (ev.kind, capture) {
        (EvidenceKind::Frames, Some(capture)) if !ev.refs.is_empty() => Some(format!(
            "tshark -r {} -Y '{}'",
            sh_quote(capture),
            frame_filter(&ev.refs)
        )),
        _ => None,
    };
    EvidenceView {
        kind,
        data_attr,
        numbers,
        label: kind_label(ev.kind),
        text: &ev.text,
        refs: refs_text(ev),
        cmd,
    }
}

/// The display filter selecting `frames`. Set elements are separated by
/// commas: Wireshark 4 refuses the whitespace-separated form of 3.x.
fn frame_filter(frames: &[u64]) -> String {
    match frames {
        [one] => format!("frame.number=={one}"),
        many => {
            let list: Vec<String> = many.iter().map(u64::to_string).collect();
            format!("frame.number in {{{}}}", list.join(", "))
        }
    }
}

pub(super) fn outcome_class(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "passed",
        Outcome::Failed => "failed",
        Outcome::Error => "error",
        Outcome::NotApplicable => "not_applicable",
        Outcome::Ignored => "ignored",
    }
}

/// The outcome as a word beside its colour, so it reads without colour
/// (colour-blind readers, black-and-white print).
pub(super) fn badge_text(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "PASS",
        Outcome::Failed => "FAIL",
        Outcome::Error => "ERROR",
        Outcome::NotApplicable => "N/A",
        Outcome::Ignored => "IGNORED",
    }
}

/// Turns an artifact path (relative to the run directory) into a link
/// target: every byte but unreserved characters and `/` is percent-encoded,
/// which keeps spaces and `#` from breaking the link and turns a hostile
/// `javascript:...` into a harmless relative path (`javascript%3A...`).
pub(super) fn href(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Quotes a path for a POSIX shell when it needs it, so the printed
/// tshark command can be pasted as is.
fn sh_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'/' | b'+' | b'@')
        });
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_percent_encoded() {
        assert_eq!(
            href("cases/NI-01/capture.pcapng"),
            "cases/NI-01/capture.pcapng"
        );
        assert_eq!(href("cases/a b#c.log"), "cases/a%20b%23c.log");
        assert_eq!(href("javascript:alert(1)"), "javascript%3Aalert%281%29");
    }

    #[test]
    fn frame_filters_use_the_wireshark_4_syntax() {
        assert_eq!(frame_filter(&[7]), "frame.number==7");
        assert_eq!(frame_filter(&[12, 15]), "frame.number in {12, 15}");
    }

    #[test]
    fn shell_quoting_only_when_needed() {
        assert_eq!(
            sh_quote("cases/NI-01/capture.pcapng"),
            "cases/NI-01/capture.pcapng"
        );
        assert_eq!(sh_quote("it's here"), r"'it'\''s here'");
    }
}
