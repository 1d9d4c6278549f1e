//! The run seen by requirement: `standards.csv` (requirement, standard,
//! case, outcome, evidence) and the Standards view of `index.html`, both
//! from `cases[].standards` and `documentation_review` of `report.json`
//! (filled from `test-suites/standards/mapping.csv`; see docs/STANDARDS.md).
//!
//! Evidence for an assessor, not a certificate: a requirement's line says
//! which cases of this run gave evidence for it, their verdicts, and where
//! the evidence is.

use std::cmp::Ordering;

use anyhow::{Context, Result};

use crate::model::{CaseResult, Evidence, EvidenceKind, Outcome, RunReport, StandardRef};
use crate::standards::standard_rank;

use super::html::{badge_text, href, outcome_class};
use super::{kind_label, refs_text};

/// File name of the standards CSV inside a run directory.
pub const STANDARDS_CSV: &str = "standards.csv";

/// The `outcome` of a `standards.csv` line for a requirement the bench
/// cannot test.
pub const NEEDS_REVIEW: &str = "needs_documentation_review";

/// One fact a case's verdict cites, with the run-relative file it is in.
pub(crate) struct Cited<'a> {
    /// The case file the fact is in (capture, journal, device log), if any.
    pub file: Option<&'a str>,
    /// Where the fact comes from, in words (`capture`, `scan`, ...).
    pub label: &'static str,
    /// `frames 12, 15`, `journal seq 77`.
    pub refs: Option<String>,
    /// The fact.
    pub text: &'a str,
}

impl Cited<'_> {
    /// `cases/NI-01/capture.pcapng frames 12, 15: SYN answered`, `scan: open: 23/tcp`.
    fn line(&self) -> String {
        let place = match (self.file, &self.refs) {
            (Some(f), Some(r)) => format!("{f} {r}"),
            (Some(f), None) => f.to_string(),
            (None, Some(r)) => format!("{} {r}", self.label),
            (None, None) => self.label.to_string(),
        };
        format!("{place}: {}", self.text)
    }
}

/// What `case`'s verdict cites, each fact with the file it is in.
pub(crate) fn cited(case: &CaseResult) -> Vec<Cited<'_>> {
    case.evidence
        .iter()
        .map(|ev: &Evidence| {
            let a = &case.artifacts;
            let file = match ev.kind {
                EvidenceKind::Frames => a.capture.as_deref(),
                EvidenceKind::Journal => a.journal.as_deref(),
                EvidenceKind::Log => a.device_log.as_deref(),
                EvidenceKind::Scan | EvidenceKind::Note => None,
            };
            Cited {
                file,
                label: kind_label(ev.kind),
                refs: refs_text(ev),
                text: &ev.text,
            }
        })
        .collect()
}

/// The `evidence` column of a case: the facts its verdict cites, joined
/// with ` | `; a case that cites none gives its `seen` (for a case that
/// did not apply or did not run: the reason).
fn evidence_column(case: &CaseResult) -> String {
    let cited = cited(case);
    if cited.is_empty() {
        return format!("seen: {}", case.seen);
    }
    cited
        .iter()
        .map(Cited::line)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// `report.json`'s outcome spelling (snake_case).
fn outcome_word(outcome: Outcome) -> &'static str {
    outcome_class(outcome)
}

/// Renders `standards.csv`: one line per (requirement, case) of the run, by
/// standard and requirement, then one line per requirement that needs
/// documentation review (case empty, outcome [`NEEDS_REVIEW`]).
pub fn render_standards_csv(report: &RunReport) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["requirement", "standard", "case", "outcome", "evidence"])?;
    for group in by_requirement(report) {
        for (req, cases) in group.1 {
            for case in cases {
                w.write_record([
                    req.requirement.as_str(),
                    req.standard.as_str(),
                    case.id.as_str(),
                    outcome_word(case.outcome),
                    evidence_column(case).as_str(),
                ])?;
            }
        }
    }
    for req in sorted_review(report) {
        w.write_record([
            req.requirement.as_str(),
            req.standard.as_str(),
            "",
            NEEDS_REVIEW,
            "",
        ])?;
    }
    let bytes = w.into_inner().context("writing standards.csv")?;
    String::from_utf8(bytes).context("standards.csv is not UTF-8")
}

/// The run's (requirement → cases) pairs, grouped by standard (in the
/// mapping's order of standards, then as first met) and by requirement (in
/// the natural order of ids: 5.9-3 before 5.10-1), cases in run order.
pub(crate) type ByRequirement<'a> = Vec<(&'a str, Vec<(&'a StandardRef, Vec<&'a CaseResult>)>)>;

/// See [`ByRequirement`].
pub(crate) fn by_requirement(report: &RunReport) -> ByRequirement<'_> {
    let mut groups: ByRequirement<'_> = Vec::new();
    for case in &report.cases {
        for req in &case.standards {
            let at = match groups.iter().position(|(s, _)| *s == req.standard) {
                Some(i) => i,
                None => {
                    groups.push((&req.standard, Vec::new()));
                    groups.len() - 1
                }
            };
            let reqs = &mut groups[at].1;
            match reqs
                .iter_mut()
                .find(|(r, _)| r.requirement == req.requirement)
            {
                Some((_, cases)) => cases.push(case),
                None => reqs.push((req, vec![case])),
            }
        }
    }
    groups.sort_by_key(|(s, _)| standard_rank(s));
    for (_, reqs) in &mut groups {
        reqs.sort_by(|a, b| natural_cmp(&a.0.requirement, &b.0.requirement));
    }
    groups
}

/// The requirements that need documentation review, by standard and id.
pub(crate) fn sorted_review(report: &RunReport) -> Vec<&StandardRef> {
    let mut review: Vec<&StandardRef> = report.documentation_review.iter().collect();
    review.sort_by(|a, b| {
        standard_rank(&a.standard)
            .cmp(&standard_rank(&b.standard))
            .then_with(|| natural_cmp(&a.requirement, &b.requirement))
    });
    review
}

/// Compares ids with their numbers as numbers: `5.9-3` < `5.10-1`,
/// `SCM-2` < `SCM-10`, `(2)(b)` < `(2)(c)`.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let ord = match (x, y) {
            ((true, x), (true, y)) => x
                .trim_start_matches('0')
                .len()
                .cmp(&y.trim_start_matches('0').len())
                .then_with(|| x.trim_start_matches('0').cmp(y.trim_start_matches('0'))),
            ((_, x), (_, y)) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len())
}

/// One standard of the Standards view.
pub(crate) struct StandardGroup<'a> {
    pub standard: &'a str,
    pub requirements: Vec<RequirementView<'a>>,
}

/// One requirement: what the mapping says of it, the summary of its cases'
/// verdicts, and the cases.
pub(crate) struct RequirementView<'a> {
    pub req: &'a StandardRef,
    /// An outcome class (`passed`, `failed`, ...) or `mixed`.
    pub class: &'static str,
    pub badge: &'static str,
    pub summary: String,
    pub cases: Vec<RequirementCase<'a>>,
}

/// A case under a requirement: its verdict and its evidence, linked.
pub(crate) struct RequirementCase<'a> {
    pub case: &'a CaseResult,
    pub class: &'static str,
    pub badge: &'static str,
    pub evidence: Vec<CitedView<'a>>,
}

/// A fact the case's verdict cites, with a link to its file.
pub(crate) struct CitedView<'a> {
    pub label: &'static str,
    pub href: Option<String>,
    pub file: Option<&'a str>,
    pub refs: Option<String>,
    pub text: &'a str,
}

/// The Standards view of `report`.
pub(crate) fn standards_view(report: &RunReport) -> Vec<StandardGroup<'_>> {
    by_requirement(report)
        .into_iter()
        .map(|(standard, reqs)| StandardGroup {
            standard,
            requirements: reqs
                .into_iter()
                .map(|(req, cases)| {
                    let (class, badge, summary) = summarise(&cases);
                    RequirementView {
                        req,
                        class,
                        badge,
                        summary,
                        cases: cases.into_iter().map(requirement_case).collect(),
                    }
                })
                .collect(),
        })
        .collect()
}

fn requirement_case(case: &CaseResult) -> RequirementCase<'_> {
    RequirementCase {
        case,
        class: outcome_class(case.outcome),
        badge: badge_text(case.outcome),
        evidence: cited(case)
            .into_iter()
            .map(|c| CitedView {
                label: c.label,
                href: c.file.map(href),
                file: c.file,
                refs: c.refs,
                text: c.text,
            })
            .collect(),
    }
}

/// A requirement's verdict over its cases: one word when they agree, the
/// counts when they do not.
fn summarise(cases: &[&CaseResult]) -> (&'static str, &'static str, String) {
    let n = cases.len();
    let count = |o: Outcome| cases.iter().filter(|c| c.outcome == o).count();
    let (passed, failed, error, na, ignored) = (
        count(Outcome::Passed),
        count(Outcome::Failed),
        count(Outcome::Error),
        count(Outcome::NotApplicable),
        count(Outcome::Ignored),
    );
    let all = |k: usize, one: &str, many: &str| {
        if n == 1 {
            one.to_string()
        } else {
            format!("{many} ({k} cases)")
        }
    };
    if passed == n {
        return ("passed", "PASS", all(n, "its case passed", "all passed"));
    }
    if failed == n {
        return ("failed", "FAIL", all(n, "its case failed", "all failed"));
    }
    if na == n {
        return (
            "not_applicable",
            "N/A",
            all(
                n,
                "its case does not apply to this device",
                "none applies to this device",
            ),
        );
    }
    if ignored == n {
        return (
            "ignored",
            "IGNORED",
            all(
                n,
                "its case was not run on this rig",
                "none was run on this rig",
            ),
        );
    }
    let counts = [
        (failed, "failed"),
        (error, "error"),
        (passed, "passed"),
        (na, "not applicable"),
        (ignored, "ignored"),
    ]
    .iter()
    .filter(|(k, _)| *k > 0)
    .map(|(k, w)| format!("{k} {w}"))
    .collect::<Vec<_>>()
    .join(", ");
    let text = format!("{counts} of {n} cases");
    if failed > 0 {
        ("failed", "FAIL", text)
    } else if error > 0 {
        ("error", "ERROR", text)
    } else {
        ("mixed", "MIXED", text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_naturally() {
        let mut ids = vec![
            "5.10-1", "5.9-3", "5.9-2-2", "5.13-1", "SCM-10", "SCM-2", "5.5-1-2a",
        ];
        ids.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            ids,
            ["5.5-1-2a", "5.9-2-2", "5.9-3", "5.10-1", "5.13-1", "SCM-2", "SCM-10"]
        );
        assert_eq!(
            natural_cmp("Annex I Part I (2)(b)", "Annex I Part I (2)(c)"),
            Ordering::Less
        );
    }
}
