//! `index.html`: one self-contained page per run, for people.
//!
//! Inline CSS only, no script, no external resource of any kind (fonts,
//! images, styles), so the page opens the same from a CI artifact, a mail
//! attachment or an air-gapped lab PC. A Content-Security-Policy forbids
//! loading anything at all, as a second line behind the escaping: report
//! text comes from devices under test and must never become markup.
//!
//! Layout: the run's verdict and counts with rig and fault; a table of
//! every case in run order; then one section per case (`id="case-<ID>"`),
//! failed cases first, then ignored, then passed, each with expected /
//! seen / look at, the evidence (frame and journal numbers also in
//! `data-frames` / `data-journal-seqs` for tools) and links to its files.

use std::fmt::Write as _;

use crate::model::{CaseResult, Evidence, EvidenceKind, Outcome, RunReport};

use super::{human_duration, kind_label, refs_text, JUNIT_XML, REPORT_JSON};

const STYLE: &str = r#"
:root { --pass: #1a7f37; --fail: #cf222e; --err: #9a3412; --skip: #8a6d00; --line: #d0d7de; --muted: #57606a; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328;
       margin: 0 auto; padding: 1.5rem; max-width: 72rem; }
h1 { margin: 0 0 .5rem; font-size: 1.6rem; }
h2 { margin-top: 2rem; border-bottom: 1px solid var(--line); }
h3 { margin: 0 0 .4rem; font-size: 1.15rem; }
h4 { margin: .8rem 0 .2rem; font-size: .95rem; color: var(--muted); }
code, .cmd { font: 13px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; }
a { color: #0969da; }
.verdict-line { font-size: 1.2rem; font-weight: 600; padding: .5rem .8rem; border-radius: 6px; color: #fff; }
.verdict-line.passed { background: var(--pass); }
.verdict-line.failed { background: var(--fail); }
.verdict-line.ignored { background: var(--skip); }
.verdict-line.error { background: var(--err); }
dl.run { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: .8rem 0; }
dl.run dt { color: var(--muted); }
dl.run dd { margin: 0; }
ul.counts { list-style: none; padding: 0; display: flex; gap: .6rem; flex-wrap: wrap; }
ul.counts li { border: 1px solid var(--line); border-radius: 6px; padding: .3rem .8rem; }
ul.counts b { font-size: 1.3rem; }
ul.counts .passed b { color: var(--pass); }
ul.counts .failed b { color: var(--fail); }
ul.counts .ignored b, ul.counts .not_applicable b { color: var(--skip); }
ul.counts .error b { color: var(--err); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
.num { text-align: right; white-space: nowrap; }
tr.failed { background: #ffebe9; }
.badge { display: inline-block; min-width: 5.5em; text-align: center; font-weight: 700; font-size: .8rem;
         padding: .1rem .4rem; border-radius: 4px; color: #fff; }
.badge.passed { background: var(--pass); }
.badge.failed { background: var(--fail); }
.badge.ignored, .badge.not_applicable { background: var(--skip); }
.badge.error { background: var(--err); }
section.case { border: 1px solid var(--line); border-left: 6px solid var(--line); border-radius: 6px;
               padding: .8rem 1rem; margin: 1rem 0; }
section.case.passed { border-left-color: var(--pass); }
section.case.failed { border-left-color: var(--fail); background: #fffafa; }
section.case.ignored, section.case.not_applicable { border-left-color: var(--skip); }
section.case.error { border-left-color: var(--err); background: #fffbf0; }
.meta { color: var(--muted); margin: 0 0 .5rem; }
dl.verdict { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0; }
dl.verdict dt { font-weight: 600; }
dl.verdict dd { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
ul.evidence, ul.artifacts { margin: .2rem 0; padding-left: 1.2rem; }
ul.evidence li { margin: .25rem 0; white-space: pre-wrap; overflow-wrap: anywhere; }
.kind { display: inline-block; font-size: .75rem; border: 1px solid var(--line); border-radius: 4px;
        padding: 0 .3rem; color: var(--muted); }
.refs { font-weight: 600; }
.cmd { display: block; color: var(--muted); margin-top: .1rem; white-space: pre-wrap; }
.empty { color: var(--muted); font-style: italic; }
"#;

/// Renders the HTML page of `report`.
pub fn render_html(report: &RunReport) -> String {
    let s = &report.summary;
    let mut out = String::with_capacity(16 * 1024 + report.cases.len() * 2048);
    let title = format!(
        "sacbench run: {} failed, {} error, {} passed, {} not applicable, {} ignored",
        s.failed, s.error, s.passed, s.not_applicable, s.ignored
    );

    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    // Nothing may be fetched, not even by injected markup: the page is
    // meant to be self-contained and its text comes from devices under test.
    out.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" \
         content=\"default-src 'none'; style-src 'unsafe-inline'; form-action 'none'\">\n",
    );
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(out, "<title>{}</title>", esc(&title));
    let _ = writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>");

    header(&mut out, report);
    case_table(&mut out, report);
    case_sections(&mut out, report);

    out.push_str("</body>\n</html>\n");
    out
}

fn header(out: &mut String, report: &RunReport) {
    let s = &report.summary;
    out.push_str("<header>\n<h1>sacbench run report</h1>\n");
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
    let _ = writeln!(
        out,
        "<p class=\"verdict-line {class}\" id=\"verdict\">{}</p>",
        esc(&format!("{verdict}{interrupted}"))
    );

    let fault = match &report.fault {
        Some(f) => format!(
            "{f} (switched on in the device under test: the cases this fault targets are expected to fail)"
        ),
        None => "none".to_string(),
    };
    out.push_str("<dl class=\"run\">\n");
    let rows = [
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
    for (label, value) in rows {
        let id = label.to_ascii_lowercase();
        let _ = writeln!(
            out,
            "<dt>{label}</dt><dd id=\"run-{id}\">{}</dd>",
            esc(&value)
        );
    }
    out.push_str("</dl>\n<ul class=\"counts\" id=\"summary\">\n");
    for (class, n) in [
        ("total", s.total),
        ("passed", s.passed),
        ("failed", s.failed),
        ("error", s.error),
        ("not_applicable", s.not_applicable),
        ("ignored", s.ignored),
    ] {
        let _ = writeln!(
            out,
            "<li class=\"{class}\" data-count=\"{n}\"><b>{n}</b> {class}</li>"
        );
    }
    out.push_str("</ul>\n");
    let _ = writeln!(
        out,
        "<p class=\"meta\">Machine-readable: <a href=\"{REPORT_JSON}\">{REPORT_JSON}</a> \
         (schema in test-suites/REPORT.md), <a href=\"{JUNIT_XML}\">{JUNIT_XML}</a>.</p>\n</header>"
    );
}

fn case_table(out: &mut String, report: &RunReport) {
    out.push_str("<h2>Cases</h2>\n");
    if report.cases.is_empty() {
        out.push_str("<p class=\"empty\">This run has no cases.</p>\n");
        return;
    }
    out.push_str(
        "<table id=\"cases\">\n<thead><tr><th>id</th><th>title</th><th>outcome</th>\
         <th class=\"num\">duration</th></tr></thead>\n<tbody>\n",
    );
    for case in &report.cases {
        let class = outcome_class(case.outcome);
        let _ = writeln!(
            out,
            "<tr class=\"{class}\" data-outcome=\"{class}\" data-case=\"{id}\"><td><a href=\"#case-{id}\">{id}</a></td>\
             <td>{title}</td><td>{badge}</td><td class=\"num\">{dur}</td></tr>",
            id = esc(&case.id),
            title = esc(&case.title),
            badge = badge(case.outcome),
            dur = esc(&human_duration(case.duration_ms)),
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn case_sections(out: &mut String, report: &RunReport) {
    if report.cases.is_empty() {
        return;
    }
    out.push_str(
        "<h2>Details</h2>\n<p class=\"meta\">Failed cases first, then bench errors, then not applicable, ignored, passed.</p>\n",
    );
    // Failures are what a reader came for; ignored cases next because they
    // prove nothing and must not pass for green.
    for outcome in [
        Outcome::Failed,
        Outcome::Error,
        Outcome::NotApplicable,
        Outcome::Ignored,
        Outcome::Passed,
    ] {
        for case in report.cases.iter().filter(|c| c.outcome == outcome) {
            case_section(out, case);
        }
    }
}

fn case_section(out: &mut String, case: &CaseResult) {
    let class = outcome_class(case.outcome);
    let id = esc(&case.id);
    let _ = writeln!(
        out,
        "<section class=\"case {class}\" id=\"case-{id}\" data-outcome=\"{class}\">"
    );
    let _ = writeln!(
        out,
        "<h3>{} {id} — {}</h3>",
        badge(case.outcome),
        esc(&case.title)
    );
    let _ = writeln!(
        out,
        "<p class=\"meta\"><code>{}</code> · {}</p>",
        esc(&case.name),
        esc(&human_duration(case.duration_ms))
    );

    out.push_str("<dl class=\"verdict\">\n");
    let _ = writeln!(
        out,
        "<dt>Expected</dt><dd class=\"expected\">{}</dd>",
        esc(&case.expected)
    );
    let _ = writeln!(
        out,
        "<dt>Seen</dt><dd class=\"seen\">{}</dd>",
        esc(&case.seen)
    );
    if !case.look_at.trim().is_empty() {
        let _ = writeln!(
            out,
            "<dt>Look at</dt><dd class=\"look-at\">{}</dd>",
            esc(&case.look_at)
        );
    }
    out.push_str("</dl>\n<h4>Evidence</h4>\n");

    if case.evidence.is_empty() {
        out.push_str("<p class=\"empty\">No evidence recorded.</p>\n");
    } else {
        out.push_str("<ul class=\"evidence\">\n");
        for ev in &case.evidence {
            evidence_item(out, ev, case.artifacts.capture.as_deref());
        }
        out.push_str("</ul>\n");
    }

    out.push_str("<h4>Files</h4>\n");
    let a = &case.artifacts;
    let files = [
        ("capture (pcapng, TLS keys embedded)", &a.capture),
        ("hub journal (JSON lines)", &a.journal),
        ("device log", &a.device_log),
    ];
    if files.iter().all(|(_, p)| p.is_none()) {
        out.push_str("<p class=\"empty\">No files recorded.</p>\n");
    } else {
        out.push_str("<ul class=\"artifacts\">\n");
        for (label, path) in files {
            if let Some(path) = path {
                let _ = writeln!(
                    out,
                    "<li><a href=\"{}\">{label}</a> <code>{}</code></li>",
                    esc(&href(path)),
                    esc(path)
                );
            }
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}

fn evidence_item(out: &mut String, ev: &Evidence, capture: Option<&str>) {
    let numbers = ev
        .refs
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    let (kind, data) = match ev.kind {
        EvidenceKind::Frames => ("frames", "data-frames"),
        EvidenceKind::Journal => ("journal", "data-journal-seqs"),
        EvidenceKind::Log => ("log", "data-refs"),
        EvidenceKind::Scan => ("scan", "data-refs"),
        EvidenceKind::Note => ("note", "data-refs"),
    };
    let _ = write!(out, "<li class=\"evidence {kind}\" data-kind=\"{kind}\"");
    if !ev.refs.is_empty() {
        let _ = write!(out, " {data}=\"{numbers}\"");
    }
    let _ = write!(
        out,
        "><span class=\"kind\">{}</span> {}",
        kind_label(ev.kind),
        esc(&ev.text)
    );
    if let Some(refs) = refs_text(ev) {
        let _ = write!(out, " <span class=\"refs\">({})</span>", esc(&refs));
    }
    // The command that shows exactly these frames, run from the run
    // directory; the capture embeds its TLS keys, so tshark decrypts too.
    if let (EvidenceKind::Frames, Some(capture), false) = (ev.kind, capture, ev.refs.is_empty()) {
        let cmd = format!(
            "tshark -r {} -Y '{}'",
            sh_quote(capture),
            frame_filter(&ev.refs)
        );
        let _ = write!(out, "<code class=\"cmd\">{}</code>", esc(&cmd));
    }
    out.push_str("</li>\n");
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

fn outcome_class(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "passed",
        Outcome::Failed => "failed",
        Outcome::Error => "error",
        Outcome::NotApplicable => "not_applicable",
        Outcome::Ignored => "ignored",
    }
}

/// The outcome as coloured badge *and* word, so it reads without colour
/// (colour-blind readers, black-and-white print).
fn badge(outcome: Outcome) -> String {
    let text = match outcome {
        Outcome::Passed => "PASS",
        Outcome::Failed => "FAIL",
        Outcome::Error => "ERROR",
        Outcome::NotApplicable => "N/A",
        Outcome::Ignored => "IGNORED",
    };
    format!(
        "<span class=\"badge {}\">{text}</span>",
        outcome_class(outcome)
    )
}

/// HTML-escapes text for element content and double-quoted attributes.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Turns an artifact path (relative to the run directory) into a link
/// target: every byte but unreserved characters and `/` is percent-encoded,
/// which keeps spaces and `#` from breaking the link and turns a hostile
/// `javascript:...` into a harmless relative path (`javascript%3A...`).
fn href(path: &str) -> String {
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
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc(r#"<a href="x" b='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; b=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
    }

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
