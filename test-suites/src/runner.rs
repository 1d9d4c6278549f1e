//! Runs one case on its own rig and turns the outcome into a [`CaseResult`].

use std::path::Path;
use std::time::{Duration, Instant};

use sacbench_rig::emulated::EmulatedRig;
use sacbench_rig::lab::RigConfig;
use sacbench_rig::Capabilities;

use crate::case::{Case, CaseDef, Fail, RunOptions};
use crate::model::{Artifacts, CaseKind, CaseResult, Outcome};

/// A case may take this long at most, setup included.
pub const CASE_LIMIT: Duration = Duration::from_secs(240);

fn rel(dir: &Path, out: &Path, file: &str) -> Option<String> {
    let p = dir.join(file);
    p.exists()
        .then(|| p.strip_prefix(out).unwrap_or(&p).display().to_string())
}

/// What the run's rig can do: the emulated rig's, or the rig file's.
fn rig_capabilities(opts: &RunOptions) -> Result<Capabilities, String> {
    match (&opts.lab_config, &opts.rig_file) {
        // Checked before the run (on a labgrid place: with the place's resources).
        (Some(c), _) => Ok(c.capabilities()),
        (None, None) => Ok(EmulatedRig::capabilities_for(&opts.dut)),
        (None, Some(f)) => RigConfig::load(f)
            .map(|c| c.capabilities())
            .map_err(|e| e.to_string()),
    }
}

/// Removes what a passing case needs no more: the board's flash and state
/// (`rig/state`), firmware images (`*.img`, the hub's `firmware/`), the
/// unpacked payloads — tens of megabytes a case. The capture, the journal,
/// the device log and the result stay.
pub fn prune_images(case_dir: &Path) {
    let rig = case_dir.join("rig");
    let _ = std::fs::remove_dir_all(rig.join("state"));
    let _ = std::fs::remove_dir_all(rig.join("board-b").join("state"));
    let _ = std::fs::remove_dir_all(rig.join("hub").join("firmware"));
    let _ = std::fs::remove_dir_all(rig.join("run-inner"));
    let mut stack = vec![rig];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "img" || x == "bin") {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Runs `def` and writes `cases/<ID>/result.json` under the run directory.
pub fn run_case(def: &CaseDef, opts: &RunOptions) -> CaseResult {
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (outcome, expected, seen, look_at, evidence, dir) = rt.block_on(async {
        // A case that needs what this rig lacks proves nothing: ignored, with
        // the reason, before anything is set up (on a lab rig, provisioning
        // and flashing take real time).
        let dir = opts.out.join("cases").join(def.id);
        // A case that does not apply to this device says so and why, before
        // anything is set up; the device's fault does not matter to it.
        if let Some(why) = def
            .dut
            .not_applicable(&opts.dut)
            .or_else(|| def.clock.not_applicable(&opts.dut))
        {
            let _ = std::fs::create_dir_all(&dir);
            return (
                Outcome::NotApplicable,
                def.expected.to_string(),
                why,
                String::new(),
                Vec::new(),
                dir,
            );
        }
        let caps = match rig_capabilities(opts) {
            Ok(c) => c,
            Err(e) => {
                return (
                    Outcome::Error,
                    "the rig to come up and run".to_string(),
                    format!("setup error: {e}"),
                    "the rig file".to_string(),
                    Vec::new(),
                    dir,
                )
            }
        };
        if let Err(missing) = caps.require(def.needs) {
            let _ = std::fs::create_dir_all(&dir);
            return (
                Outcome::Ignored,
                def.expected.to_string(),
                format!("not run: {missing}"),
                String::new(),
                Vec::new(),
                dir,
            );
        }
        let mut case = match Case::start(def, opts, def.extra_faults, def.hub_mqtt_port).await {
            Ok(c) => c,
            Err(f) => {
                let dir = opts.out.join("cases").join(def.id);
                return (
                    if f.bench {
                        Outcome::Error
                    } else {
                        Outcome::Failed
                    },
                    f.expected,
                    f.seen,
                    f.look_at,
                    Vec::new(),
                    dir,
                );
            }
        };
        let result = tokio::select! {
            r = tokio::time::timeout(CASE_LIMIT, (def.run)(&mut case)) => r,
            sig = crate::interrupt::wait() => Ok(Err(Fail::bench(format!(
                "the run was interrupted ({sig}) before the case finished: nothing is said of the device"
            )))),
        };
        case.save_artifacts().await;
        let (outcome, expected, seen, look_at) = match result {
            Ok(Ok(seen)) => (
                Outcome::Passed,
                def.expected.to_string(),
                seen,
                String::new(),
            ),
            Ok(Err(f)) if f.bench => (Outcome::Error, f.expected, f.seen, f.look_at),
            Ok(Err(f)) => (Outcome::Failed, f.expected, f.seen, f.look_at),
            Err(_) => (
                Outcome::Failed,
                def.expected.to_string(),
                format!("the case did not finish within {CASE_LIMIT:?}"),
                "device.log and journal.jsonl of the case".to_string(),
            ),
        };
        (
            outcome,
            expected,
            seen,
            look_at,
            std::mem::take(&mut case.evidence),
            case.dir.clone(),
        )
    });
    if outcome == Outcome::Passed && !opts.keep_images {
        prune_images(&dir);
    }
    let artifacts = Artifacts {
        capture: rel(&dir, &opts.out, "capture.pcapng"),
        journal: rel(&dir, &opts.out, "journal.jsonl"),
        device_log: rel(&dir, &opts.out, "device.log"),
        timeline: rel(&dir, &opts.out, crate::report::timeline::TIMELINE_JSON),
    };
    let result = CaseResult {
        id: def.id.into(),
        name: def.name(),
        title: def.title.into(),
        kind: if def.self_test {
            CaseKind::SelfTest
        } else {
            CaseKind::Device
        },
        outcome,
        duration_ms: started.elapsed().as_millis() as u64,
        expected,
        seen,
        look_at,
        evidence,
        artifacts,
        standards: crate::standards::for_case(def.id),
    };
    let _ = std::fs::create_dir_all(&dir);
    // Atomically: another process of the run may be assembling the report.
    let _ = crate::run_dir::write_atomically(
        &dir.join("result.json"),
        &serde_json::to_vec_pretty(&result).unwrap_or_default(),
    );
    result
}

#[cfg(test)]
mod tests {
    use super::prune_images;

    #[test]
    fn pruning_drops_images_and_flash_and_keeps_the_evidence() {
        let d = tempfile::tempdir().unwrap();
        let case = d.path();
        for path in [
            "capture.pcapng",
            "journal.jsonl",
            "device.log",
            "result.json",
            "rig/tls-keys.log",
            "rig/hub/journal.jsonl",
            "rig/provisioning/device.json",
            "rig/v1.img",
            "rig/v1-switched.img",
            "rig/state/flash.bin",
            "rig/state/run/payload-1.0.0+0",
            "rig/board-b/state/flash.bin",
            "rig/board-b/provisioning/device.json",
            "rig/hub/firmware/1.1.0.img",
            "rig/bad-hub/cert.pem",
        ] {
            let p = case.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, path).unwrap();
        }
        prune_images(case);
        for (path, keep) in [
            ("capture.pcapng", true),
            ("journal.jsonl", true),
            ("device.log", true),
            ("result.json", true),
            ("rig/tls-keys.log", true),
            ("rig/hub/journal.jsonl", true),
            ("rig/provisioning/device.json", true),
            ("rig/v1.img", false),
            ("rig/v1-switched.img", false),
            ("rig/state", false),
            ("rig/board-b/state", false),
            ("rig/board-b/provisioning/device.json", true),
            ("rig/hub/firmware", false),
            ("rig/bad-hub/cert.pem", true),
        ] {
            assert_eq!(case.join(path).exists(), keep, "{path}");
        }
    }
}
