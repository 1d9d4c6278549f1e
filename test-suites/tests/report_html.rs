//! index.html as text: self-contained, every case in table and sections,
//! failures first with their evidence, hostile text escaped, links safe.
//! (report_browser.rs renders the same page in headless Chromium.)
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod report_fixture;

use report_fixture::{
    hostile_everywhere, sample, section, EVERYWHERE, EVERYWHERE_PLACES, NI01_FRAMES,
};
use sacbench_suites::model::Outcome;
use sacbench_suites::report;

#[test]
fn hostile_text_stays_text() {
    let html = report::render_html(&sample());
    assert!(
        !html.contains("<script"),
        "a <script> reached the page:\n{html}"
    );
    assert!(!html.contains("<img"), "an <img> reached the page");
    let ni01 = section(&html, "NI-01");
    assert!(
        ni01.contains(
            "&#60;script&#62;document.body.setAttribute(&#39;data-pwned&#39;,&#39;yes&#39;)&#60;/script&#62; \
             &#34;&#62;&#60;img src=x onerror=alert(1)&#62;"
        ),
        "{ni01}"
    );
    // The rig name and a title with `&` are escaped too.
    assert!(html.contains("ci &#60;runner&#62;"));
    assert!(html.contains("AEAD suites only &#38; no RC4"));
}

/// The page's markup: every tag with its attribute names, in order. Text
/// that became markup would add tags or attributes (an unescaped `"` in an
/// attribute value starts a new attribute).
fn markup(html: &str) -> Vec<String> {
    let tag = regex::Regex::new(r"<(/?[A-Za-z][A-Za-z0-9]*)([^>]*)>").unwrap();
    let attr = regex::Regex::new(r#"\s([^\s=/"']+)(?:="[^"]*")?"#).unwrap();
    tag.captures_iter(html)
        .map(|t| {
            let names: Vec<&str> = attr
                .captures_iter(&t[2])
                .map(|a| a.get(1).unwrap().as_str())
                .collect();
            format!("{} {}", &t[1], names.join(" "))
        })
        .collect()
}

#[test]
fn hostile_text_is_escaped_everywhere_it_appears() {
    let html = report::render_html(&hostile_everywhere(EVERYWHERE));
    let plain = report::render_html(&hostile_everywhere("plain text"));
    // Not one field reached the page as it was.
    assert!(!html.contains(EVERYWHERE), "raw text on the page:\n{html}");
    for raw in ["<script", "<b>bold", "bold</b>", "\"q\""] {
        assert!(!html.contains(raw), "{raw:?} reached the page:\n{html}");
    }
    // The same tags and attributes as the same run with plain text.
    assert_eq!(markup(&html), markup(&plain));
    // Every place holds the whole text, escaped.
    let escaped = "&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62; &#34;q&#34; &#38; \
                   &#60;b&#62;bold&#60;/b&#62;";
    assert_eq!(
        html.matches(escaped).count(),
        EVERYWHERE_PLACES,
        "escaped text in fewer or more places than it was put:\n{html}"
    );
    // The file links stay relative links (percent-encoded, nothing to escape).
    assert!(html.contains(
        "<a href=\"%3Cscript%3Ealert%28%27x%27%29%3C/script%3E%20%22q%22%20%26%20%3Cb%3Ebold%3C/b%3E\">"
    ));
}

#[test]
fn nothing_is_loaded_from_anywhere() {
    // Without the hostile text, whose escaped `src=` is legitimate text.
    let mut run = sample();
    run.cases[0].seen = "port 23 open".into();
    let html = report::render_html(&run);
    for banned in [
        "<script", "<link", "<img", "<iframe", "src=", "url(", "@import", "http://", "https://",
    ] {
        assert!(!html.contains(banned), "the page contains {banned:?}");
    }
    assert!(html.contains("Content-Security-Policy") && html.contains("default-src 'none'"));
    assert!(html.contains("<style>"), "styles must be inline");
}

#[test]
fn summary_table_and_sections_cover_every_case() {
    let run = sample();
    let html = report::render_html(&run);
    assert!(html.contains("FAILED: 2 of 6 cases failed"));
    assert!(html.contains("<li class=\"failed\" data-count=\"2\">"));
    assert!(html.contains("<li class=\"ignored\" data-count=\"1\">"));
    assert!(html.contains("listen-debug"));
    assert!(html.contains("emulated — ci &#60;runner&#62;"));

    let table = &html[html.find("<table id=\"cases\">").unwrap()..html.find("</table>").unwrap()];
    for case in &run.cases {
        assert!(
            table.contains(&format!("<a href=\"#case-{0}\">{0}</a>", case.id)),
            "{} not in the table",
            case.id
        );
        assert_eq!(
            html.matches(&format!("id=\"case-{}\"", case.id)).count(),
            1,
            "{} needs one section",
            case.id
        );
    }
    // The table keeps run order; outcome is a word as well as a colour.
    let rows: Vec<&str> = table
        .match_indices("data-case=\"")
        .map(|(i, _)| &table[i + 11..i + 17])
        .collect();
    assert_eq!(rows[0], "NI-01\"");
    assert!(table.contains(
        "<td><span class=\"badge failed\">FAIL</span></td><td class=\"num\">1 min 01 s</td>"
    ));
    assert!(table.contains("<span class=\"badge ignored\">IGNORED</span>"));
    assert!(table
        .contains("<span class=\"badge passed\">PASS</span></td><td class=\"num\">900 ms</td>"));
}

#[test]
fn failed_sections_come_first_then_ignored_then_passed() {
    let html = report::render_html(&sample());
    let pos = |id: &str| html.find(&format!("id=\"case-{id}\"")).unwrap();
    let order = ["NI-01", "OTA-04", "KR-04", "NI-02", "MT-03", "CD-01"];
    for pair in order.windows(2) {
        assert!(
            pos(pair[0]) < pos(pair[1]),
            "{} should come before {}",
            pair[0],
            pair[1]
        );
    }
    assert!(section(&html, "NI-01").starts_with("id=\"case-NI-01\" data-outcome=\"failed\""));
}

#[test]
fn evidence_shows_frames_journal_and_how_to_open_them() {
    let html = report::render_html(&sample());
    let ni01 = section(&html, "NI-01");
    let frames = NI01_FRAMES.map(|f| f.to_string()).join(" ");
    assert!(
        ni01.contains(&format!("data-frames=\"{frames}\"")),
        "{ni01}"
    );
    assert!(ni01.contains("(frames 12, 15)"), "{ni01}");
    assert!(
        ni01.contains("tshark -r cases/NI-01/capture.pcapng -Y &#39;frame.number in {12, 15}&#39;"),
        "{ni01}"
    );
    assert!(ni01.contains("a TCP scan of all 65535 ports finds none open"));
    assert!(ni01.contains("<dt>Look at</dt><dd class=\"look-at\">frames 12 and 15"));
    assert!(ni01.contains("open: 23/tcp"), "scan evidence missing");

    let mt03 = section(&html, "MT-03");
    assert!(
        mt03.contains("(frame 7)") && mt03.contains("-Y &#39;frame.number==7&#39;"),
        "{mt03}"
    );

    let ota = section(&html, "OTA-04");
    assert!(ota.contains("data-journal-seqs=\"77\""), "{ota}");
    assert!(ota.contains("(journal seq 77)"), "{ota}");
    assert!(ota.contains("device stayed on 2.0.0 after the crash:\nno revert"));

    // A passed case without look_at shows no empty "Look at" row.
    assert!(!section(&html, "CD-01").contains("Look at"));
    assert!(section(&html, "CD-01").contains("data-journal-seqs=\"40 41 42 43 44\""));
}

#[test]
fn artifact_links_are_relative_and_encoded() {
    let mut run = sample();
    run.cases[1].artifacts.journal = Some("javascript:alert(1)".into());
    let html = report::render_html(&run);
    let ni01 = section(&html, "NI-01");
    assert!(
        ni01.contains("<a href=\"cases/NI-01/capture.pcapng\">"),
        "{ni01}"
    );
    assert!(ni01.contains("<a href=\"cases/NI-01/journal.jsonl\">"));
    assert!(ni01.contains("<a href=\"cases/NI-01/device.log\">"));
    let ota = section(&html, "OTA-04");
    assert!(
        ota.contains("<a href=\"cases/OTA-04/device%20log%20%232.txt\">"),
        "{ota}"
    );
    assert!(
        ota.contains("<code>cases/OTA-04/device log #2.txt</code>"),
        "{ota}"
    );
    assert!(
        !html.contains("href=\"javascript:"),
        "a javascript: link got through"
    );
    assert!(section(&html, "KR-04").contains("No files recorded."));
    assert!(html.contains("<a href=\"report.json\">") && html.contains("<a href=\"junit.xml\">"));
}

#[test]
fn verdict_line_reflects_the_run() {
    let mut green = sample();
    green.cases.retain(|c| c.outcome != Outcome::Failed);
    green.summary = report::tally(&green.cases);
    green.fault = None;
    let html = report::render_html(&green);
    assert!(
        html.contains("PASSED: 3 of 4 cases passed, none failed"),
        "{html}"
    );
    assert!(html.contains("<dd id=\"run-fault\">none</dd>"));

    let mut empty = sample();
    empty.cases.clear();
    empty.summary = report::tally(&empty.cases);
    let html = report::render_html(&empty);
    assert!(html.contains("NOTHING PROVEN"));
    assert!(html.contains("This run has no cases."));
}

/// The part of `html` that is the Standards view.
fn standards_view(html: &str) -> &str {
    let start = html
        .find("<section class=\"standards\" id=\"standards\">")
        .unwrap();
    &html[start..start + html[start..].find("</section>").unwrap()]
}

/// The row of `requirement` in the Standards view's table of `standard`.
fn requirement_row<'a>(view: &'a str, standard: &str, requirement: &str) -> &'a str {
    let table = &view[view
        .find(&format!("data-standard=\"{standard}\""))
        .unwrap_or_else(|| panic!("no table for {standard}"))..];
    let table = &table[..table.find("</table>").unwrap()];
    let start = table
        .find(&format!("data-requirement=\"{requirement}\""))
        .unwrap_or_else(|| panic!("no row for {standard} {requirement}"));
    &table[start..start + table[start..].find("</tr>").unwrap()]
}

#[test]
fn standards_view_goes_from_requirement_to_cases_verdicts_and_evidence() {
    let html = report::render_html(&sample());
    let view = standards_view(&html);
    assert!(view.contains("not a certificate and not a conformity assessment"));
    assert!(view.contains("they give evidence for no requirement"));
    assert!(view.contains("<a href=\"standards.csv\">standards.csv</a>"));
    assert!(html.contains("<a href=\"#standards\">Standards view</a>"));
    // The standards in the mapping's order, each a table.
    let at = |s: &str| view.find(&format!("<h3>{s}</h3>")).unwrap();
    assert!(at("ETSI EN 303 645") < at("ETSI TS 103 701"));
    assert!(at("ETSI TS 103 701") < at("EN 18031-1"));
    assert!(at("EN 18031-1") < at("CRA"));

    // 5.6-1: NI-01 failed, NI-02 passed; the failure decides, with counts.
    let row = requirement_row(view, "ETSI EN 303 645", "5.6-1");
    assert!(row.contains("data-summary=\"failed\""), "{row}");
    assert!(row.contains("1 failed, 1 passed of 2 cases"), "{row}");
    assert!(row.contains("Unused network and logical interfaces disabled"));
    assert!(
        row.contains("ETSI EN 303 645 V2.1.1 §5.6 provision 5.6-1"),
        "source"
    );
    assert!(
        row.contains("<li data-case=\"NI-01\" data-outcome=\"failed\">"),
        "{row}"
    );
    assert!(row.contains("<a href=\"#case-NI-01\">NI-01</a>"));
    // Its evidence: the file linked, the frames named, the fact.
    assert!(
        row.contains(
            "<a href=\"cases/NI-01/capture.pcapng\">cases/NI-01/capture.pcapng</a> \
             <span class=\"refs\">frames 12, 15</span> SYN to DUT port 23 answered with SYN/ACK"
        ),
        "{row}"
    );
    assert!(
        row.contains("<span class=\"kind\">scan</span> open: 23/tcp"),
        "{row}"
    );
    assert!(row.contains("<li data-case=\"NI-02\" data-outcome=\"passed\">"));

    // A requirement with one case says so; a test unit id as TS 103 701 spells it.
    let row = requirement_row(view, "ETSI TS 103 701", "5.5-1-2a");
    assert!(
        row.contains("data-summary=\"passed\"") && row.contains("its case passed"),
        "{row}"
    );
    let row = requirement_row(view, "ETSI EN 303 645", "5.3-2");
    assert!(
        row.contains("data-summary=\"failed\"") && row.contains("its case failed"),
        "{row}"
    );
    assert!(
        row.contains("<a href=\"cases/OTA-04/journal.jsonl\">"),
        "{row}"
    );
    // Passed and ignored: mixed, with the counts.
    let row = requirement_row(view, "ETSI EN 303 645", "5.9-2");
    assert!(row.contains("data-summary=\"mixed\""), "{row}");
    assert!(row.contains("1 passed, 1 ignored of 2 cases"), "{row}");

    // Requirements in the natural order of their ids.
    let cra = &view[view.find("data-standard=\"CRA\"").unwrap()..];
    let pos = |r: &str| cra.find(&format!("data-requirement=\"{r}\"")).unwrap();
    assert!(pos("Annex I Part I (2)(c)") < pos("Annex I Part I (2)(e)"));
    assert!(pos("Annex I Part I (2)(e)") < pos("Annex I Part I (2)(j)"));

    // What the bench cannot test is listed, with why and where from.
    let review = &view[view.find("id=\"standards-review\"").unwrap()..];
    assert!(review.contains("Needs documentation review"));
    for (standard, req) in [
        ("ETSI EN 303 645", "5.2-1"),
        ("ETSI TS 103 701", "5.5-1-1"),
        ("EN 18031-1", "GEC-1"),
        ("CRA", "Annex I Part II"),
    ] {
        assert!(
            review.contains(&format!(
                "<tr data-standard=\"{standard}\" data-requirement=\"{req}\">"
            )),
            "{standard} {req} not in the review list"
        );
    }
    assert!(review.contains("a manufacturer&#39;s process, not device behaviour"));
}

#[test]
fn standards_view_summarises_requirements_whose_cases_agree() {
    let summary = |run: &sacbench_suites::model::RunReport, standard: &str, req: &str| {
        let html = report::render_html(run);
        let row = requirement_row(standards_view(&html), standard, req).to_string();
        row
    };
    let mut run = sample();
    run.cases[0].outcome = Outcome::Passed;
    let row = summary(&run, "ETSI EN 303 645", "5.6-1");
    assert!(
        row.contains("data-summary=\"passed\"") && row.contains("all passed (2 cases)"),
        "{row}"
    );
    run.cases[0].outcome = Outcome::Failed;
    run.cases[1].outcome = Outcome::Failed;
    let row = summary(&run, "ETSI EN 303 645", "5.6-1");
    assert!(
        row.contains("data-summary=\"failed\"") && row.contains("all failed (2 cases)"),
        "{row}"
    );
    for case in &mut run.cases {
        case.outcome = Outcome::NotApplicable;
    }
    let row = summary(&run, "ETSI EN 303 645", "5.6-1");
    assert!(row.contains("data-summary=\"not_applicable\""), "{row}");
    assert!(
        row.contains("none applies to this device (2 cases)"),
        "{row}"
    );
    run.cases[1].outcome = Outcome::Error;
    let row = summary(&run, "ETSI EN 303 645", "5.6-1");
    assert!(row.contains("data-summary=\"error\""), "{row}");
    assert!(
        row.contains("1 error, 1 not applicable of 2 cases"),
        "{row}"
    );
}

#[test]
fn a_report_without_standards_says_so() {
    let mut run = sample();
    for case in &mut run.cases {
        case.standards.clear();
    }
    run.documentation_review.clear();
    let view = report::render_html(&run);
    let view = standards_view(&view);
    assert!(view.contains("No case of this run gives evidence for a mapped requirement."));
    assert!(view.contains("Not recorded in this report"));
}

#[test]
fn hostile_text_in_the_standards_view_stays_text() {
    use sacbench_suites::model::StandardRef;
    let hostile = |text: &str| {
        let mut run = sample();
        run.cases.truncate(1);
        let r = StandardRef {
            standard: text.into(),
            requirement: text.into(),
            title: text.into(),
            source: text.into(),
            note: text.into(),
        };
        run.cases[0].standards = vec![r.clone()];
        run.cases[0].title = text.into();
        run.cases[0].evidence = vec![sacbench_suites::model::Evidence::note(text)];
        run.documentation_review = vec![r];
        run.summary = report::tally(&run.cases);
        run
    };
    let html = report::render_html(&hostile(EVERYWHERE));
    let plain = report::render_html(&hostile("plain text"));
    assert!(!html.contains(EVERYWHERE), "raw text on the page");
    assert_eq!(markup(&html), markup(&plain));
    let view = standards_view(&html);
    let escaped = "&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62; &#34;q&#34; &#38; \
                   &#60;b&#62;bold&#60;/b&#62;";
    // In the view: the standard (heading, table attribute), requirement
    // (attribute, id), title, source, note, case title, the evidence; in
    // the review list: standard (attribute, cell), requirement (attribute,
    // id), title, source, note.
    assert_eq!(view.matches(escaped).count(), 9 + 7, "{view}");
}

#[test]
fn each_timeline_is_drawn_in_its_cases_section_and_comes_back_from_the_run_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = sample();
    report_fixture::with_timelines(dir.path(), &mut run);
    report::write_run(dir.path(), &run).unwrap();
    let html = std::fs::read_to_string(dir.path().join(report::INDEX_HTML)).unwrap();

    let ni01 = section(&html, "NI-01");
    assert_eq!(ni01.matches("<svg ").count(), 1, "{ni01}");
    assert!(ni01.contains("id=\"timeline-NI-01\""), "{ni01}");
    // Both SYN/ACKs the evidence cites are marked E1, in the network lane.
    assert_eq!(
        ni01.matches("class=\"ev alarm cited\"").count(),
        2,
        "{ni01}"
    );
    assert!(ni01.contains("data-frames=\"12-12\"") && ni01.contains("data-frames=\"15-15\""));
    assert!(ni01.contains(">E1</text>"));
    // The tooltips' device text is escaped once, by the SVG writer.
    let svg = &ni01[ni01.find("<svg ").unwrap()..ni01.find("</svg>").unwrap()];
    assert!(!svg.contains("<script") && !svg.contains("<img"), "{svg}");
    assert!(
        svg.contains("&lt;script&gt;document.body.setAttribute("),
        "{svg}"
    );
    assert!(section(&html, "NI-02").contains("id=\"timeline-NI-02\""));
    // No timeline, no figure: the cases without one show nothing.
    assert!(!section(&html, "MT-03").contains("<svg"));
    // The timeline file is one of the case's files.
    assert!(
        ni01.contains("href=\"cases/NI-01/timeline.json\""),
        "{ni01}"
    );

    // Nothing to load or run in any SVG, as an XML parser reads it.
    for svg in html.split("<svg ").skip(1) {
        let svg = format!("<svg {}</svg>", &svg[..svg.find("</svg>").unwrap()]);
        let doc = roxmltree::Document::parse(&svg).unwrap();
        for n in doc.descendants().filter(|n| n.is_element()) {
            let name = n.tag_name().name();
            assert!(
                !["script", "image", "foreignObject", "a", "use"].contains(&name),
                "{name}"
            );
            for a in n.attributes() {
                assert!(
                    !a.name().starts_with("on") && a.name() != "href",
                    "{}",
                    a.name()
                );
                assert!(!a.value().contains("url("), "{}", a.value());
            }
        }
    }

    // Regenerated from the run directory, the page is the same.
    std::fs::remove_file(dir.path().join(report::INDEX_HTML)).unwrap();
    let path = report::regenerate(dir.path()).unwrap();
    assert_eq!(std::fs::read_to_string(path).unwrap(), html);

    // A timeline file gone missing is said, not silently dropped.
    std::fs::remove_file(dir.path().join("cases/NI-02/timeline.json")).unwrap();
    let path = report::regenerate(dir.path()).unwrap();
    let html = std::fs::read_to_string(path).unwrap();
    let ni02 = section(&html, "NI-02");
    assert!(!ni02.contains("<svg"));
    assert!(
        ni02.contains("class=\"empty timeline-missing\">No timeline: "),
        "{ni02}"
    );
}
