//! `sacbench-perf` (run by `cargo xtask perf [--quick]`): sacbench against
//! what a user would otherwise pick, side by side in one run, on this
//! machine. Every figure is a median over alternating runs (ours, theirs,
//! ours, ...); the ratios matter more than the absolute numbers.
//!
//! 1. mTLS connection rate, hub vs mosquitto (same CA, certificates, generator);
//! 2. QoS 1 throughput through each;
//! 3. 10 000 live mTLS sessions on the hub: its RSS;
//! 4. revocation → live session closed, p50/p99 over 1 000 revocations;
//! 5. pcap analysis vs tshark on the same ≥ 500 MB capture;
//! 6. the emulated suite's wall time.
#![forbid(unsafe_code)]

mod brokers;
mod load;
mod pcap;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use hub_fixture::admin::AdminClient;

#[derive(Parser)]
#[command(
    name = "sacbench-perf",
    about = "sacbench's benchmarks against real peers"
)]
struct Cli {
    /// Smaller loads and fewer runs: a smoke run of the harness, not the figures.
    #[arg(long)]
    quick: bool,
    /// The `hub-fixture` executable (a release build).
    #[arg(long)]
    hub_exe: PathBuf,
    /// The `sacbench-suite` executable and its `device-native` (for figure 6).
    #[arg(long)]
    suite_exe: Option<PathBuf>,
    /// Working directory (captures, data); replaced.
    #[arg(long)]
    work: PathBuf,
    /// Write the results table (Markdown) here.
    #[arg(long)]
    out: PathBuf,
}

struct Sizes {
    runs: usize,
    devices: usize,
    concurrency: usize,
    connections: usize,
    publishers: usize,
    per_publisher: usize,
    sessions: usize,
    revocations: usize,
    capture_bytes: u64,
}

/// One row of the results table.
struct Row {
    figure: String,
    ours: String,
    peer: String,
    ratio: String,
    target: String,
    met: Option<bool>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let s = if cli.quick {
        Sizes {
            runs: 3,
            devices: 60,
            concurrency: 20,
            connections: 300,
            publishers: 4,
            per_publisher: 2000,
            sessions: 1000,
            revocations: 100,
            capture_bytes: 64 << 20,
        }
    } else {
        Sizes {
            runs: 5,
            devices: 200,
            concurrency: 50,
            connections: 2000,
            publishers: 10,
            per_publisher: 5000,
            sessions: 10_000,
            revocations: 1000,
            capture_bytes: 512 << 20,
        }
    };
    let _ = std::fs::remove_dir_all(&cli.work);
    std::fs::create_dir_all(&cli.work)?;
    let mut rows = Vec::new();
    // The suite first, with the machine's usual limits and nothing else running.
    let mut suite_row = None;
    if let Some(suite) = &cli.suite_exe {
        suite_row = Some(suite_figure(suite, &cli.work, s.runs)?);
    }
    brokers::raise_fd_limit(3 * s.sessions as u64 + 4096)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(brokers_figures(&cli, &s, &mut rows))?;
    pcap_figure(&cli, &s, &mut rows)?;
    rows.extend(suite_row.into_iter().flatten());
    let table = render(&rows, &s, cli.quick);
    print!("{table}");
    std::fs::write(&cli.out, &table).with_context(|| format!("writing {}", cli.out.display()))?;
    Ok(())
}

async fn brokers_figures(cli: &Cli, s: &Sizes, rows: &mut Vec<Row>) -> Result<()> {
    let data = cli.work.join("hub-data");
    eprintln!(
        "perf: registering {} devices at the hub",
        s.sessions.max(s.devices)
    );
    let devices = brokers::register_devices(&data, s.sessions.max(s.devices)).await?;
    let ca = brokers::ca(&data)?;
    let hub = brokers::start_hub(&cli.hub_exe, &data, 18883, ca.cert_pem())?;
    let mosquitto = brokers::start_mosquitto(&cli.work.join("mosquitto"), &ca, 28883)?;
    let few = &devices[..s.devices];

    // 1 and 2: alternating runs, the same generator against each.
    let (mut rate, mut tput) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for run in 0..s.runs {
        for (i, b) in [&hub, &mosquitto].into_iter().enumerate() {
            let r = load::connection_rate(&b.target, few, s.concurrency, s.connections).await?;
            eprintln!("perf: run {run}: {} connections/s {r:.0}", b.target.name);
            rate[i].push(r);
        }
        for (i, b) in [&mosquitto, &hub].into_iter().enumerate() {
            let t = load::qos1_throughput(&b.target, &few[..s.publishers], s.per_publisher, 256)
                .await?;
            eprintln!("perf: run {run}: {} QoS 1 msg/s {t:.0}", b.target.name);
            tput[1 - i].push(t);
        }
    }
    let (r_hub, r_mq) = (median(rate[0].clone()), median(rate[1].clone()));
    rows.push(Row {
        figure: format!(
            "mTLS connections/s ({} concurrent, full handshakes)",
            s.concurrency
        ),
        ours: format!("{r_hub:.0}"),
        peer: format!("mosquitto {r_mq:.0}"),
        ratio: format!("{:.2}×", r_hub / r_mq),
        target: "≥ 1.5×".into(),
        met: Some(r_hub / r_mq >= 1.5),
    });
    let (t_hub, t_mq) = (median(tput[0].clone()), median(tput[1].clone()));
    rows.push(Row {
        figure: format!("QoS 1 messages/s ({} publishers, 256 B)", s.publishers),
        ours: format!("{t_hub:.0}"),
        peer: format!("mosquitto {t_mq:.0}"),
        ratio: format!("{:.2}×", t_hub / t_mq),
        target: "≥ 1×".into(),
        met: Some(t_hub / t_mq >= 1.0),
    });
    drop(mosquitto);

    // 3: many live sessions on the hub, and its resident memory.
    let rss_idle = brokers::rss_bytes(hub.pid())?;
    let started = Instant::now();
    let mut live = load::hold_sessions(&hub.target, &devices[..s.sessions], 64).await?;
    let opened = started.elapsed();
    let rss = brokers::rss_bytes(hub.pid())?;
    eprintln!(
        "perf: {} sessions open in {opened:?}; hub RSS {} MiB",
        live.len(),
        rss >> 20
    );
    rows.push(Row {
        figure: format!(
            "live mTLS sessions on the hub: RSS ({} sessions)",
            s.sessions
        ),
        ours: format!(
            "{} MiB ({} MiB idle, opened in {:.1} s)",
            rss >> 20,
            rss_idle >> 20,
            opened.as_secs_f64()
        ),
        peer: "—".into(),
        ratio: "—".into(),
        target: "≤ 1 GiB".into(),
        met: Some(rss <= 1 << 30),
    });

    // 4: revoke one live session's certificate at a time; time until its client sees the close.
    let admin = AdminClient::new(hub.admin.context("hub admin")?);
    let mut lat = Vec::with_capacity(s.revocations);
    for session in live.iter_mut().take(s.revocations) {
        let t0 = Instant::now();
        tokio::time::timeout(
            brokers::GUARD,
            admin.call(
                "POST",
                &format!("/certificates/{}/revoke", session.device.serial),
                None,
            ),
        )
        .await
        .context("the hub's admin endpoint did not answer a revocation")?
        .context("revoking")?;
        let closed = tokio::time::timeout(brokers::GUARD, session.closed.recv())
            .await
            .context("a revoked session stayed open")?
            .context("session task ended")?;
        lat.push(closed.saturating_duration_since(t0));
    }
    lat.sort();
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    rows.push(Row {
        figure: format!("revocation → session closed ({} revocations)", lat.len()),
        ours: format!(
            "p50 {:.2} ms, p99 {:.2} ms",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        ),
        peer: "—".into(),
        ratio: "—".into(),
        target: "p99 ≤ 20 ms".into(),
        met: Some(p99 <= Duration::from_millis(20)),
    });
    for l in live {
        l.task.abort();
    }
    drop(hub);
    Ok(())
}

fn pcap_figure(cli: &Cli, s: &Sizes, rows: &mut Vec<Row>) -> Result<()> {
    let path = cli.work.join("capture.pcapng");
    let ca = brokers::ca(&cli.work.join("hub-data"))?;
    let facts = pcap::write_capture(&path, &ca, s.capture_bytes)?;
    let mb = std::fs::metadata(&path)?.len() as f64 / 1e6;
    eprintln!("perf: capture {mb:.0} MB, {} flows", facts.flows);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for run in 0..s.runs {
        let (f, secs) = pcap::ours(&path)?;
        if f != facts {
            bail!(
                "our analysis disagrees with the capture's content: {:?} vs {:?}",
                (f.flows, f.versions),
                (facts.flows, &facts.versions)
            );
        }
        ours.push(mb / secs);
        let (f, secs) = pcap::tshark(&path)?;
        if f != facts {
            bail!(
                "tshark disagrees with the capture's content: {:?} vs {:?}",
                (f.flows, f.versions),
                (facts.flows, &facts.versions)
            );
        }
        theirs.push(mb / secs);
        eprintln!(
            "perf: run {run}: analysis {:.0} MB/s, tshark {:.0} MB/s",
            ours[run], theirs[run]
        );
    }
    let (o, t) = (median(ours), median(theirs));
    rows.push(Row {
        figure: format!(
            "pcap analysis: flows, SNI, TLS versions ({mb:.0} MB, {} flows)",
            facts.flows
        ),
        ours: format!("{o:.0} MB/s"),
        peer: format!("tshark {t:.1} MB/s"),
        ratio: format!("{:.0}×", o / t),
        target: "≥ 50× and ≥ 1000 MB/s".into(),
        met: Some(o / t >= 50.0 && o >= 1000.0),
    });
    let _ = std::fs::remove_file(&path);
    Ok(())
}

/// Bytes on disk under `dir` (allocated blocks: sparse files count as stored).
fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.blocks() * 512;
            }
        }
    }
    total
}

fn suite_figure(suite: &Path, work: &Path, runs: usize) -> Result<Vec<Row>> {
    let mut times = Vec::new();
    let mut sizes = Vec::new();
    let mut cases = String::new();
    let mut device_cases = 0;
    let mut longests = Vec::new();
    for run in 0..runs {
        let started = Instant::now();
        let out = Command::new(suite)
            .env("SACBENCH_OUT", work.join(format!("suite-run-{run}")))
            .output()
            .context("running the emulated suite")?;
        let secs = started.elapsed().as_secs_f64();
        let text = String::from_utf8_lossy(&out.stdout);
        let summary = text
            .lines()
            .find(|l| l.starts_with("test result"))
            .unwrap_or("no result");
        if !out.status.success() {
            bail!("the emulated suite failed: {summary}");
        }
        // "test result: ok. 53 passed; 0 failed; ..." → "53 passed"
        cases = summary
            .split(". ")
            .nth(1)
            .and_then(|r| r.split(';').next())
            .unwrap_or("")
            .to_owned();
        let (device, longest) = case_figures(&work.join(format!("suite-run-{run}")))?;
        device_cases = device;
        longests.push(longest);
        let size = disk_usage(&work.join(format!("suite-run-{run}")));
        eprintln!(
            "perf: run {run}: emulated suite {secs:.1} s ({cases}), run directory {} MB",
            size >> 20
        );
        times.push(secs);
        sizes.push(size as f64);
        let _ = std::fs::remove_dir_all(work.join(format!("suite-run-{run}")));
    }
    let secs = median(times);
    let longest = median(longests);
    let mb = median(sizes) / (1 << 20) as f64;
    Ok(vec![
        Row {
            figure: "device cases in the catalogue (self-tests of the hub not counted)".into(),
            ours: device_cases.to_string(),
            peer: "—".into(),
            ratio: "—".into(),
            target: "≥ 75".into(),
            met: Some(device_cases >= 75),
        },
        Row {
            figure: format!("emulated suite wall time, every case ({cases})"),
            ours: format!("{secs:.1} s"),
            peer: "—".into(),
            ratio: "—".into(),
            target: "≤ 20 s".into(),
            met: Some(secs <= 20.0),
        },
        Row {
            figure: "that wall time against the suite's longest case".into(),
            ours: format!("{:.2}× (longest case {longest:.1} s)", secs / longest),
            peer: "—".into(),
            ratio: "—".into(),
            target: "≤ 2×".into(),
            met: Some(secs <= 2.0 * longest),
        },
        Row {
            figure: "run directory of that run (captures, journals, logs kept; images of passing cases dropped)".into(),
            ours: format!("{mb:.0} MB"),
            peer: "—".into(),
            ratio: "—".into(),
            target: "≤ 150 MB".into(),
            met: Some(mb <= 150.0),
        },
    ])
}

/// The number of device cases in a run's `report.json` and its longest
/// case's duration in seconds: the suite runs cases side by side, so its wall
/// time is bounded below by that case.
fn case_figures(run: &Path) -> Result<(usize, f64)> {
    let path = run.join("report.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let report: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let cases = report["cases"]
        .as_array()
        .with_context(|| format!("{} has no cases", path.display()))?;
    let device = cases.iter().filter(|c| c["kind"] == "device").count();
    let longest_ms = cases
        .iter()
        .filter_map(|c| c["duration_ms"].as_u64())
        .max()
        .unwrap_or(0);
    Ok((device, longest_ms as f64 / 1000.0))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| format!("{} GiB", kb >> 20))
        .unwrap_or_default();
    let version = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .output()
            .ok()
            .map(|o| {
                String::from_utf8_lossy(if o.stdout.is_empty() {
                    &o.stderr
                } else {
                    &o.stdout
                })
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
            })
            .unwrap_or_default()
    };
    format!(
        "{cpu}, {cores} cores, {mem}; {}; {}",
        version("mosquitto", "-h").trim(),
        version("tshark", "--version").trim()
    )
}

fn render(rows: &[Row], s: &Sizes, quick: bool) -> String {
    let mut t = format!(
        "Machine: {}\nMedians of {} alternating runs{}.\n\n| figure | ours | peer | ratio | target | met |\n|---|---|---|---|---|---|\n",
        machine(),
        s.runs,
        if quick { " (--quick: small loads, not the published figures)" } else { "" }
    );
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} | {met} |\n",
            r.figure, r.ours, r.peer, r.ratio, r.target
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_figures_count_device_cases_and_find_the_longest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("report.json"),
            r#"{"cases": [
                {"id": "NI-01", "kind": "device", "duration_ms": 1200},
                {"id": "MT-10", "kind": "self_test", "duration_ms": 9100},
                {"id": "CD-01", "kind": "device", "duration_ms": 4300}
            ]}"#,
        )
        .unwrap();
        let (device, longest) = case_figures(dir.path()).unwrap();
        assert_eq!(device, 2);
        assert_eq!(longest, 9.1);
        assert!(case_figures(&dir.path().join("missing")).is_err());
    }
}
