//! The standards mapping: which requirements of ETSI EN 303 645, its test
//! specification ETSI TS 103 701, EN 18031-1 and the Cyber Resilience Act
//! each device case gives evidence for, and which requirements this bench
//! cannot test ("needs documentation review").
//!
//! The mapping is one table, `test-suites/standards/mapping.csv`, one line
//! per (requirement, case) with the source of the line; a line with no case
//! is a requirement the bench cannot test. It is embedded at build time and
//! checked by the tests below (every device case has a line, every line
//! names a case of the catalogue, one title per requirement). What the
//! mapping means, and what it does not (it is evidence for an assessor, not
//! a certificate), is in `docs/STANDARDS.md`.

use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::model::StandardRef;

/// The mapping table, as it is in the repository.
pub const MAPPING_CSV: &str = include_str!("../standards/mapping.csv");

/// Where the mapping lives in the repository (for messages).
pub const MAPPING_PATH: &str = "test-suites/standards/mapping.csv";

/// The standards the mapping may name, in the order the reports list them.
pub const STANDARDS: [&str; 4] = ["ETSI EN 303 645", "ETSI TS 103 701", "EN 18031-1", "CRA"];

/// One line of the mapping table.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct MappingRow {
    /// One of [`STANDARDS`].
    pub standard: String,
    /// The requirement's id as the standard spells it (`5.5-1`, `5.5-1-2a`,
    /// `SCM-2`, `Annex I Part I (2)(e)`).
    pub requirement: String,
    /// A short paraphrase of the requirement.
    pub title: String,
    /// The case giving evidence for it; empty: the bench cannot test it.
    pub case: String,
    /// The document and clause the line comes from.
    pub source: String,
    /// Why it needs documentation review, or a limit of the evidence.
    #[serde(default)]
    pub note: String,
}

impl MappingRow {
    fn to_ref(&self) -> StandardRef {
        StandardRef {
            standard: self.standard.clone(),
            requirement: self.requirement.clone(),
            title: self.title.clone(),
            source: self.source.clone(),
            note: self.note.clone(),
        }
    }
}

/// Parses and checks a mapping table: the known standards only, no empty
/// field but `case` and `note`, case ids of the catalogue's form, one title
/// and one note per requirement, no line twice.
pub fn parse(text: &str) -> Result<Vec<MappingRow>> {
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut rows: Vec<MappingRow> = Vec::new();
    for (i, record) in reader.deserialize::<MappingRow>().enumerate() {
        let row = record.with_context(|| format!("{MAPPING_PATH}: row {}", i + 1))?;
        let at = || {
            format!(
                "{MAPPING_PATH}: {} {} {:?}",
                row.standard, row.requirement, row.case
            )
        };
        if !STANDARDS.contains(&row.standard.as_str()) {
            bail!("{}: unknown standard (one of {STANDARDS:?})", at());
        }
        if row.requirement.is_empty() || row.title.is_empty() || row.source.is_empty() {
            bail!("{}: requirement, title and source are required", at());
        }
        if !row.case.is_empty() && !is_case_id(&row.case) {
            bail!("{}: not a case id (like MT-01)", at());
        }
        if let Some(other) = rows
            .iter()
            .find(|r| r.standard == row.standard && r.requirement == row.requirement)
        {
            if other.title != row.title {
                bail!(
                    "{}: title {:?} differs from the requirement's other lines ({:?})",
                    at(),
                    row.title,
                    other.title
                );
            }
            if other.note != row.note {
                bail!(
                    "{}: note {:?} differs from the requirement's other lines ({:?})",
                    at(),
                    row.note,
                    other.note
                );
            }
            if other.case == row.case {
                bail!("{}: the same line twice", at());
            }
            if other.case.is_empty() != row.case.is_empty() {
                bail!(
                    "{}: a requirement is either tested by cases or needs documentation review, not both",
                    at()
                );
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// `NI-01`, `OTA-10`: upper-case letters, a dash, digits.
fn is_case_id(id: &str) -> bool {
    id.split_once('-').is_some_and(|(g, n)| {
        !g.is_empty()
            && g.bytes().all(|b| b.is_ascii_uppercase())
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// The embedded mapping, parsed once. Its tests prove it parses, so a
/// failure here is a build that skipped them: it yields no lines rather
/// than stopping a run, and the run's standards view says so by being empty.
pub fn mapping() -> &'static [MappingRow] {
    static MAPPING: OnceLock<Vec<MappingRow>> = OnceLock::new();
    MAPPING.get_or_init(|| match parse(MAPPING_CSV) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("sacbench: the standards mapping is broken: {e:#}");
            Vec::new()
        }
    })
}

/// The requirements case `id` gives evidence for, in the reports' order
/// (by standard, then as the table lists them).
pub fn for_case(id: &str) -> Vec<StandardRef> {
    let mut refs: Vec<&MappingRow> = mapping().iter().filter(|r| r.case == id).collect();
    refs.sort_by_key(|r| standard_rank(&r.standard));
    refs.into_iter().map(MappingRow::to_ref).collect()
}

/// The requirements the bench cannot test: they need documentation review.
pub fn documentation_review() -> Vec<StandardRef> {
    let mut refs: Vec<&MappingRow> = mapping().iter().filter(|r| r.case.is_empty()).collect();
    refs.sort_by_key(|r| standard_rank(&r.standard));
    refs.into_iter().map(MappingRow::to_ref).collect()
}

/// The position of `standard` in [`STANDARDS`]; unknown ones last.
pub fn standard_rank(standard: &str) -> usize {
    STANDARDS
        .iter()
        .position(|s| *s == standard)
        .unwrap_or(STANDARDS.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapping_parses() {
        let rows = parse(MAPPING_CSV).unwrap();
        assert!(rows.iter().any(|r| r.case.is_empty()), "a review list");
        assert!(rows.iter().any(|r| !r.case.is_empty()), "mapped cases");
        for std in STANDARDS {
            assert!(rows.iter().any(|r| r.standard == std), "{std} is used");
        }
    }

    /// The rule the coordinator meets when cases are added: every device
    /// case gives evidence for some requirement; self-tests check the
    /// fixture hub and give none; no line names a case the catalogue lacks.
    #[test]
    fn every_device_case_has_a_line_and_self_tests_none() {
        let rows = parse(MAPPING_CSV).unwrap();
        let all = crate::cases::all();
        let mut missing = Vec::new();
        for def in &all {
            let lines = rows.iter().filter(|r| r.case == def.id).count();
            if def.self_test {
                assert_eq!(
                    lines, 0,
                    "{} is a self-test of the fixture hub: it is evidence about the bench, not the \
                     device, and must have no line in {MAPPING_PATH}",
                    def.id
                );
            } else if lines == 0 {
                missing.push(def.id);
            }
        }
        assert!(
            missing.is_empty(),
            "device cases with no line in {MAPPING_PATH}: {missing:?}. Add one line per \
             requirement each gives evidence for: standard,requirement,title,case,source,note \
             (e.g. `ETSI EN 303 645,5.5-1,Best practice cryptography to communicate securely,{},\
             ETSI EN 303 645 V2.1.1 §5.5 provision 5.5-1,`; copy the title and source of the \
             requirement's other lines); see docs/STANDARDS.md",
            missing.first().copied().unwrap_or("MT-15")
        );
        for row in rows.iter().filter(|r| !r.case.is_empty()) {
            assert!(
                all.iter().any(|d| d.id == row.case),
                "{MAPPING_PATH}: {} {} names case {}, which is not in the catalogue",
                row.standard,
                row.requirement,
                row.case
            );
        }
    }

    #[test]
    fn for_case_orders_by_standard() {
        let refs = for_case("MT-01");
        let ranks: Vec<usize> = refs.iter().map(|r| standard_rank(&r.standard)).collect();
        let mut sorted = ranks.clone();
        sorted.sort();
        assert_eq!(ranks, sorted);
        assert!(refs
            .iter()
            .any(|r| r.standard == "ETSI TS 103 701" && r.requirement == "5.5-1-2a"));
        assert!(for_case("MT-10").is_empty(), "a self-test");
        assert!(documentation_review().iter().all(|r| !r.source.is_empty()));
    }

    #[test]
    fn malformed_tables_are_refused() {
        let head = "standard,requirement,title,case,source,note\n";
        let bad = [
            ("ISO 9999,1,t,MT-01,s,\n", "unknown standard"),
            ("CRA,,t,MT-01,s,\n", "required"),
            ("CRA,x,t,mt01,s,\n", "not a case id"),
            ("CRA,x,t,MT-01,,\n", "required"),
            ("CRA,x,t,MT-01,s,\nCRA,x,u,MT-02,s,\n", "title"),
            ("CRA,x,t,MT-01,s,\nCRA,x,t,MT-02,s,n\n", "note"),
            ("CRA,x,t,MT-01,s,\nCRA,x,t,MT-01,s,\n", "twice"),
            ("CRA,x,t,MT-01,s,\nCRA,x,t,,s,\n", "not both"),
            ("CRA,x,t,MT-01\n", "row 1"),
        ];
        for (rows, why) in bad {
            let err = format!("{:#}", parse(&format!("{head}{rows}")).unwrap_err());
            assert!(err.contains(why), "{rows:?}: {err}");
        }
        let ok = parse(&format!("# a comment\n{head}CRA, x ,t,MT-01,s,\n")).unwrap();
        assert_eq!(ok[0].requirement, "x", "fields are trimmed");
    }
}
