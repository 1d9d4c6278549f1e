//! Plain-text renderings: the terminal summary of a run, and the detail
//! block of one case that the JUnit file carries.

use std::fmt::Write as _;

use crate::model::{CaseResult, Outcome, RunReport, Tally};

use super::{kind_label, refs_text};

/// The terminal summary of a run: one line of counts with the rig and the
/// fault, then one line per failed case with its id, what was seen and
/// where to look; ignored cases are listed with their reason last, because
/// an ignored case proves nothing and should not go unnoticed.
pub fn summarise(report: &RunReport) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let fault = report.fault.as_deref().unwrap_or("none");
    let _ = writeln!(
        out,
        "sacbench: {} cases: {} passed, {} failed, {} error, {} not applicable, {} ignored (rig {} {:?}, DUT {:?}, fault {})",
        s.total,
        s.passed,
        s.failed,
        s.error,
        s.not_applicable,
        s.ignored,
        report.rig.kind,
        report.rig.name,
        report.dut.as_ref().map_or("?", |d| d.name.as_str()),
        fault
    );
    if let Some(sig) = &report.interrupted {
        let _ = writeln!(
            out,
            "interrupted by {sig}: the cases it cut short are errors, those it kept from starting are absent"
        );
    }
    let t = |t: &Tally| {
        format!(
            "{} passed, {} failed, {} error, {} not applicable, {} ignored",
            t.passed, t.failed, t.error, t.not_applicable, t.ignored
        )
    };
    let _ = writeln!(
        out,
        "{} device cases: {}; {} bench self-tests: {}",
        s.device.total,
        t(&s.device),
        s.self_test.total,
        t(&s.self_test)
    );
    for case in report.cases.iter().filter(|c| c.outcome == Outcome::Failed) {
        let mut line = format!("FAILED  {}  {}", case.id, one_line(&case.seen));
        if !case.look_at.trim().is_empty() {
            let _ = write!(line, "  -> look at: {}", one_line(&case.look_at));
        }
        out.push_str(&line);
        out.push('\n');
    }
    for case in report.cases.iter().filter(|c| c.outcome == Outcome::Error) {
        let _ = writeln!(out, "ERROR   {}  {}", case.id, one_line(&case.seen));
    }
    for case in report
        .cases
        .iter()
        .filter(|c| c.outcome == Outcome::NotApplicable)
    {
        let _ = writeln!(out, "n/a     {}  {}", case.id, one_line(&case.seen));
    }
    for case in report
        .cases
        .iter()
        .filter(|c| c.outcome == Outcome::Ignored)
    {
        let _ = writeln!(out, "ignored {}  {}", case.id, one_line(&case.seen));
    }
    out
}

/// Everything a reader needs about one case, as plain text: the verdict's
/// three sentences, the evidence with its frame and journal numbers, and
/// the artifact paths. Used as the JUnit failure/skip description and as
/// the system-out of passed cases, so CI systems that only show JUnit
/// still show the evidence.
pub(crate) fn case_text(case: &CaseResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} {}", case.id, case.title);
    let _ = writeln!(out, "expected: {}", case.expected);
    let _ = writeln!(out, "seen: {}", case.seen);
    if !case.look_at.trim().is_empty() {
        let _ = writeln!(out, "look at: {}", case.look_at);
    }
    if !case.evidence.is_empty() {
        out.push_str("evidence:\n");
        for ev in &case.evidence {
            let _ = write!(out, "  - [{}] {}", kind_label(ev.kind), ev.text);
            if let Some(refs) = refs_text(ev) {
                let _ = write!(out, " ({refs})");
            }
            out.push('\n');
        }
    }
    let a = &case.artifacts;
    let files = [
        ("capture", &a.capture),
        ("journal", &a.journal),
        ("device log", &a.device_log),
    ];
    for (label, path) in files {
        if let Some(path) = path {
            let _ = writeln!(out, "{label}: {path}");
        }
    }
    out
}

/// Collapses runs of whitespace (newlines included) so that a multi-line
/// `seen` stays on the one line the summary promises per case.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_collapses_newlines() {
        assert_eq!(one_line("port 22\n  open\t(ssh) "), "port 22 open (ssh)");
    }
}
