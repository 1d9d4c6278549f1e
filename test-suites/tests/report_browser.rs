//! index.html rendered by a real browser: headless Chromium (Debian package
//! `chromium`) loads the written page from a file:// URL and dumps the DOM
//! it built. The assertions run on that DOM, so they hold for what a person
//! sees, not for what the writer meant to emit: markup the parser would
//! re-nest, drop or execute shows up here.
//!
//! Chromium is a hard requirement of this test: without it the test fails,
//! naming the package, rather than silently skipping a check of the page.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod report_fixture;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use report_fixture::{
    hostile_everywhere, sample, section, with_timelines, EVERYWHERE, EVERYWHERE_PLACES,
    TIMELINE_CASES,
};
use sacbench_suites::report::{self, INDEX_HTML};

/// Where Debian's `chromium` package installs the browser; the variable
/// `SACBENCH_CHROMIUM` may name another binary.
const CHROMIUM: &str = "/usr/bin/chromium";

/// A first start of Chromium on a busy 2-core machine takes seconds; this
/// bounds a hung browser, not a slow one.
const LIMIT: Duration = Duration::from_secs(120);

fn chromium() -> PathBuf {
    let path = std::env::var_os("SACBENCH_CHROMIUM")
        .map_or_else(|| PathBuf::from(CHROMIUM), PathBuf::from);
    assert!(
        path.is_file(),
        "headless Chromium is needed to test the HTML report and is not at {}: install the Debian \
         package `chromium` (DEBIAN_FRONTEND=noninteractive apt-get install -y chromium), or set \
         SACBENCH_CHROMIUM to a Chromium binary",
        path.display()
    );
    path
}

/// Loads `page` in headless Chromium and returns the DOM it built. Only a
/// file:// URL is ever opened, and everything that could reach the network
/// on its own (background updates, sync, QUIC) is switched off.
fn dump_dom(page: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting chromium");

    // Drained on threads: a page's DOM can exceed a pipe buffer, and a
    // browser blocked on a full pipe would look like a hang.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    // The browser closes stdout when it exits: the end of its output is the
    // event to wait on (LIMIT only guards against a hang).
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let out = thread::spawn(move || {
        let mut s = String::new();
        let r = stdout.read_to_string(&mut s).map(|_| s);
        let _ = done_tx.send(());
        r
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    if done_rx.recv_timeout(LIMIT).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "chromium did not finish within {LIMIT:?}; stderr:\n{}",
            err.join().unwrap()
        );
    }
    let status = child.wait().unwrap();
    let dom = out.join().unwrap().expect("chromium's output is not UTF-8");
    let stderr = err.join().unwrap();
    assert!(
        status.success(),
        "chromium exited with {status}; stderr:\n{stderr}"
    );
    assert!(
        !dom.trim().is_empty(),
        "chromium dumped no DOM; stderr:\n{stderr}"
    );
    dom
}

#[test]
fn chromium_renders_every_case_and_the_failing_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let run = sample();
    report::write_run(dir.path(), &run).unwrap();
    let dom = dump_dom(&dir.path().join(INDEX_HTML));

    // It rendered: the browser built a body with the run's verdict.
    assert!(dom.contains("<body>"), "no body in the DOM:\n{dom}");
    assert!(
        dom.contains("FAILED: 2 of 6 cases failed"),
        "verdict missing:\n{dom}"
    );
    assert!(dom.contains("listen-debug"), "fault missing");

    // Every case is in the table and has exactly one section.
    for case in &run.cases {
        assert!(
            dom.contains(&format!("href=\"#case-{}\"", case.id)),
            "{} not in the table",
            case.id
        );
        assert_eq!(
            dom.matches(&format!("id=\"case-{}\"", case.id)).count(),
            1,
            "{} section",
            case.id
        );
    }

    // The failing case shows its evidence: the frame numbers as text and
    // in data-frames, the tshark command, and what was expected.
    let ni01 = section(&dom, "NI-01");
    assert!(ni01.contains("data-outcome=\"failed\""), "{ni01}");
    assert!(ni01.contains("data-frames=\"12 15\""), "{ni01}");
    assert!(ni01.contains("(frames 12, 15)"), "{ni01}");
    assert!(ni01.contains("frame.number in {12, 15}"), "{ni01}");
    assert!(
        ni01.contains("a TCP scan of all 65535 ports finds none open"),
        "{ni01}"
    );
    let ota = section(&dom, "OTA-04");
    assert!(
        ota.contains("data-journal-seqs=\"77\"") && ota.contains("(journal seq 77)"),
        "{ota}"
    );

    // Failures are listed before passes.
    let at = |id: &str| dom.find(&format!("id=\"case-{id}\"")).unwrap();
    assert!(at("NI-01") < at("NI-02") && at("OTA-04") < at("NI-02"));
}

#[test]
fn chromium_keeps_hostile_text_as_text() {
    let dir = tempfile::tempdir().unwrap();
    report::write_run(dir.path(), &sample()).unwrap();
    let dom = dump_dom(&dir.path().join(INDEX_HTML));

    // Had the `seen` text become markup, the browser's DOM would hold a
    // script and an img element (and, if scripts ran, a marked body).
    assert!(
        !dom.contains("<script"),
        "a script element was built:\n{dom}"
    );
    assert!(!dom.contains("<img"), "an img element was built:\n{dom}");
    assert!(
        !dom.contains("data-pwned=\"yes\""),
        "the injected script ran"
    );
    // The browser re-serialises the text node, escaping it again.
    let ni01 = section(&dom, "NI-01");
    assert!(
        ni01.contains("&lt;script&gt;document.body.setAttribute("),
        "{ni01}"
    );
    assert!(
        ni01.contains("\"&gt;&lt;img src=x onerror=alert(1)&gt;"),
        "{ni01}"
    );
}

#[test]
fn chromium_keeps_hostile_text_as_text_in_every_field() {
    let dir = tempfile::tempdir().unwrap();
    // Written directly: write_run refuses a report with a foreign schema
    // string, and this one has hostile text there too.
    let page = dir.path().join(INDEX_HTML);
    std::fs::write(&page, report::render_html(&hostile_everywhere(EVERYWHERE))).unwrap();
    let dom = dump_dom(&page);

    assert!(
        !dom.contains("<script"),
        "a script element was built:\n{dom}"
    );
    assert!(!dom.contains("<b>bold"), "a b element was built:\n{dom}");
    // Chromium re-serialises text nodes escaping `&`, `<` and `>` only: the
    // text survived whole in every place that is text (the second case's
    // id is also in three attributes, serialised differently).
    let as_text = "&lt;script&gt;alert('x')&lt;/script&gt; \"q\" &amp; &lt;b&gt;bold&lt;/b&gt;";
    assert_eq!(dom.matches(as_text).count(), EVERYWHERE_PLACES - 3, "{dom}");
}

#[test]
fn chromium_renders_the_standards_view() {
    let dir = tempfile::tempdir().unwrap();
    report::write_run(dir.path(), &sample()).unwrap();
    let dom = dump_dom(&dir.path().join(INDEX_HTML));

    let start = dom
        .find("id=\"standards\"")
        .unwrap_or_else(|| panic!("no Standards view in the DOM:\n{dom}"));
    let view = &dom[start..start + dom[start..].find("</section>").unwrap()];
    assert!(
        view.contains("not a certificate and not a conformity assessment"),
        "{view}"
    );
    for standard in ["ETSI EN 303 645", "ETSI TS 103 701", "EN 18031-1", "CRA"] {
        assert!(
            view.contains(&format!(
                "<table class=\"requirements\" data-standard=\"{standard}\">"
            )),
            "no table for {standard}:\n{view}"
        );
    }
    // A requirement row as the browser built it: the verdict over its
    // cases, each case linked to its section, the evidence to its file.
    let row = &view[view.find("data-requirement=\"5.6-1\"").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("data-summary=\"failed\""), "{row}");
    assert!(row.contains("1 failed, 1 passed of 2 cases"), "{row}");
    assert!(row.contains("href=\"#case-NI-01\""), "{row}");
    assert!(row.contains("href=\"cases/NI-01/capture.pcapng\""), "{row}");
    assert!(row.contains("frames 12, 15"), "{row}");
    // The review list: rows the browser kept in their table.
    let review = &view[view.find("id=\"standards-review\"").unwrap()..];
    let table = &review[review.find("<table class=\"review\">").unwrap()..];
    assert!(table.matches("<tr data-standard=").count() >= 20, "{table}");
    assert!(
        table.contains("data-requirement=\"Annex I Part II\""),
        "{table}"
    );
}

/// A copy of `page` that measures its timelines: the page runs no script
/// (its Content-Security-Policy forbids one), so the copy drops that one
/// meta element and appends a script writing, on each timeline SVG and each
/// of its cited marks, the size of the box the browser laid it out in
/// (`data-box="WxH"`), which the DOM dump then shows. The markup measured
/// is the page's own, unchanged.
fn measuring_copy(page: &Path) -> PathBuf {
    let html = std::fs::read_to_string(page).unwrap();
    let csp = html
        .find("<meta http-equiv=\"Content-Security-Policy\"")
        .unwrap();
    let end = csp + html[csp..].find('>').unwrap() + 1;
    let script = "<script>\n\
        for (const el of document.querySelectorAll('svg.timeline, svg.timeline g.cited')) {\n\
          const r = el.getBoundingClientRect();\n\
          el.setAttribute('data-box', Math.round(r.width) + 'x' + Math.round(r.height));\n\
        }\n\
        </script>\n";
    let html =
        format!("{}{}", &html[..csp], &html[end..]).replace("</body>", &format!("{script}</body>"));
    let copy = page.with_file_name("measured.html");
    std::fs::write(&copy, html).unwrap();
    copy
}

/// The `data-box` sizes of the elements of `html` whose start tag begins
/// with `tag_start` and contains `having`.
fn boxes(html: &str, tag_start: &str, having: &str) -> Vec<(u32, u32)> {
    html.match_indices(tag_start)
        .map(|(at, _)| &html[at..at + html[at..].find('>').unwrap()])
        .filter(|tag| tag.contains(having))
        .map(|tag| {
            let b = tag
                .split("data-box=\"")
                .nth(1)
                .unwrap_or_else(|| panic!("not measured: {tag}"));
            let (w, h) = b[..b.find('"').unwrap()].split_once('x').unwrap();
            (w.parse().unwrap(), h.parse().unwrap())
        })
        .collect()
}

#[test]
fn chromium_draws_the_timelines_of_a_failed_and_a_passed_case_with_their_cited_marks() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = sample();
    with_timelines(dir.path(), &mut run);
    report::write_run(dir.path(), &run).unwrap();
    let page = dir.path().join(INDEX_HTML);

    // The page as it is: the browser built the SVG elements in place.
    let dom = dump_dom(&page);
    for id in TIMELINE_CASES {
        let s = section(&dom, id);
        assert!(
            s.contains("<svg") && s.contains("class=\"timeline\""),
            "{id}: {s}"
        );
        assert!(s.contains("data-lane=\"network\""), "{id}: {s}");
    }
    assert!(!dom.contains("<script"), "a script element was built");

    // Laid out: each timeline and each cited mark has a box of its own.
    let dom = dump_dom(&measuring_copy(&page));
    let ni01 = section(&dom, "NI-01");
    assert!(ni01.contains("data-outcome=\"failed\""));
    let passed = section(&dom, "NI-02");
    assert!(passed.contains("data-outcome=\"passed\""));
    for (s, cited) in [(ni01, 2), (passed, 3)] {
        let svg = boxes(s, "<svg ", "timeline");
        assert_eq!(svg.len(), 1, "{s}");
        let (w, h) = svg[0];
        assert!(w >= 400 && h >= 100, "timeline drawn {w}x{h}: {s}");
        let marks = boxes(s, "<g class=\"ev", "cited");
        assert_eq!(marks.len(), cited, "cited marks: {s}");
        assert!(marks.iter().all(|(w, h)| *w >= 8 && *h >= 8), "{marks:?}");
    }
}
