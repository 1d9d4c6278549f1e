use alloc::vec;
use alloc::vec::Vec;

use sha2::{Digest, Sha256};

use super::*;

mod more;
mod sim;

use sim::{image, target_of, Image, Sim, CHUNK};

fn new_image() -> Image {
    image("1.1.0", 2, 10_500)
}

fn with(f: Fault) -> FaultSet {
    FaultSet::NONE.with(f)
}

#[test]
fn happy_path_download_verify_test_boot_confirm() {
    let mut sim = Sim::new(FaultSet::NONE, new_image());
    sim.session_with_desired();
    assert_eq!(sim.running(), "1.1.0");
    assert!(sim.board.primary_ok);
    assert_eq!(sim.requests, vec![0]);
    assert_eq!(sim.confirms_before_session, 0);
    assert_eq!(sim.state(), OtaState::Confirmed);
    use OtaState::*;
    assert_eq!(
        sim.states_reported(),
        [Idle, Downloading, Verifying, Rebooting, Confirmed]
    );
    let last = sim.reports.last().unwrap();
    assert_eq!((last.version.as_str(), last.slot), ("1.1.0", 0));
    assert_eq!(
        sim.verifies,
        vec![OtaAction::Verify {
            expected_sha256: target_of(&new_image()).sha256,
            expected_size: 10_500,
            check_hash: true,
            check_signature: true,
            min_security_counter: Some(1),
            check_image: true,
        }]
    );
    let record = OtaRecord::decode(sim.board.record.as_ref().unwrap()).unwrap();
    assert_eq!((record.job, record.outcome), (None, Confirmed));
    // The same desired firmware again (next twin GET) installs nothing and
    // says so: the session-start report, then the answer to the target.
    let reports = sim.reports.len();
    sim.session_with_desired();
    assert_eq!(sim.requests, vec![0]);
    assert_eq!(sim.reports.len(), reports + 2);
    let last = sim.reports.last().unwrap();
    assert_eq!(last.state, Confirmed);
    assert_eq!(
        last.reason.as_deref(),
        Some("not installed: 1.1.0 is already running")
    );
    // Reports survive a reboot.
    sim.power_cut();
    sim.power_on();
    assert_eq!(sim.state(), Confirmed);
}

#[test]
fn link_loss_during_download_resumes_at_the_offset() {
    let mut sim = Sim::new(FaultSet::NONE, new_image());
    sim.send(OtaEvent::SessionEstablished);
    sim.link_up = false;
    sim.send(OtaEvent::Desired(Some(target_of(&new_image()))));
    // Let 4 chunks through, then the link drops.
    for _ in 0..4 {
        sim.link_up = true;
        let at = sim.transfer.unwrap();
        sim.transfer = Some(at + CHUNK as u32);
        sim.link_up = false;
        sim.send(OtaEvent::Chunk {
            offset: at,
            data: sim.served.bytes[at as usize..][..CHUNK].to_vec(),
        });
    }
    sim.send(OtaEvent::DownloadInterrupted {
        reason: "timeout".into(),
    });
    sim.send(OtaEvent::SessionLost);
    assert_eq!(sim.state(), OtaState::Downloading);
    sim.link_up = true;
    sim.send(OtaEvent::SessionEstablished);
    assert_eq!(sim.requests, vec![0, 4_000], "OTA-09: resumed with Range");
    assert_eq!(sim.running(), "1.1.0");
}

#[test]
fn an_interrupted_download_is_retried_after_a_while_even_without_a_new_session() {
    let mut sim = Sim::new(FaultSet::NONE, new_image());
    sim.send(OtaEvent::SessionEstablished);
    sim.link_up = false;
    sim.send(OtaEvent::Desired(Some(target_of(&new_image()))));
    sim.send(OtaEvent::DownloadInterrupted {
        reason: "reset by peer".into(),
    });
    let deadline = sim.ota.as_ref().unwrap().next_deadline().unwrap();
    assert_eq!(deadline, sim.now + OtaConfig::default().retry_ms);
    sim.now = deadline - 1;
    sim.send(OtaEvent::Tick);
    assert_eq!(sim.requests.len(), 1);
    sim.now = deadline;
    sim.link_up = true;
    sim.send(OtaEvent::Tick);
    assert_eq!(sim.requests, vec![0, 0]);
    assert_eq!(
        sim.ota.as_ref().unwrap().next_deadline(),
        None,
        "a spent deadline is cleared"
    );
    assert_eq!(sim.running(), "1.1.0");
}

#[test]
fn a_retry_due_while_offline_waits_for_the_session_without_spinning() {
    let mut sim = Sim::new(FaultSet::NONE, new_image());
    sim.send(OtaEvent::SessionEstablished);
    sim.link_up = false;
    sim.send(OtaEvent::Desired(Some(target_of(&new_image()))));
    sim.send(OtaEvent::DownloadInterrupted {
        reason: "timeout".into(),
    });
    sim.send(OtaEvent::SessionLost);
    sim.now += OtaConfig::default().retry_ms;
    sim.send(OtaEvent::Tick);
    assert_eq!(
        sim.requests,
        vec![0],
        "no download attempt without the network"
    );
    assert_eq!(sim.ota.as_ref().unwrap().next_deadline(), None);
    sim.link_up = true;
    sim.send(OtaEvent::SessionEstablished);
    assert_eq!(sim.running(), "1.1.0");
}

#[test]
fn fault_no_resume_restarts_from_zero_after_link_loss() {
    let mut sim = Sim::new(with(Fault::NoResume), new_image());
    sim.send(OtaEvent::SessionEstablished);
    sim.send(OtaEvent::Desired(Some(target_of(&new_image()))));
    assert_eq!(sim.running(), "1.1.0", "it still completes without cuts");
    let mut sim = Sim::new(with(Fault::NoResume), new_image());
    sim.send(OtaEvent::SessionEstablished);
    sim.link_up = false;
    sim.send(OtaEvent::Desired(Some(target_of(&new_image()))));
    sim.send(OtaEvent::Chunk {
        offset: 0,
        data: sim.served.bytes[..CHUNK].to_vec(),
    });
    sim.send(OtaEvent::DownloadInterrupted {
        reason: "timeout".into(),
    });
    sim.link_up = true;
    sim.send(OtaEvent::SessionEstablished);
    assert_eq!(sim.requests, vec![0, 0]);
}

/// Cut the power mid-download (after `chunks` chunks), power on, reconnect:
/// returns the offsets the downloads started at.
fn power_loss_mid_download(faults: FaultSet, chunks: usize) -> Vec<u32> {
    let mut sim = Sim::new(faults, new_image());
    sim.send(OtaEvent::SessionEstablished);
    sim.link_up = false;
    sim.send(OtaEvent::Desired(Some(target_of(&new_image()))));
    for i in 0..chunks {
        let at = (i * CHUNK) as u32;
        sim.send(OtaEvent::Chunk {
            offset: at,
            data: sim.served.bytes[at as usize..][..CHUNK].to_vec(),
        });
    }
    sim.power_cut();
    sim.link_up = true;
    sim.power_on();
    sim.session_with_desired();
    assert_eq!(sim.running(), "1.1.0");
    sim.requests
}

#[test]
fn power_loss_during_download_resumes_and_no_resume_does_not() {
    assert_eq!(
        power_loss_mid_download(FaultSet::NONE, 6),
        vec![0, 6_000],
        "OTA-07"
    );
    assert_eq!(
        power_loss_mid_download(with(Fault::NoResume), 6),
        vec![0, 0]
    );
}

#[test]
fn a_power_cut_at_every_action_never_bricks_and_converges() {
    // Count the actions of an uninterrupted update.
    let mut clean = Sim::new(FaultSet::NONE, new_image());
    clean.session_with_desired();
    let total = clean.actions_done;
    assert!(total > 20);
    let (mut converged, mut reverted) = (0, 0);
    for cut in 0..total {
        let mut sim = Sim::new(FaultSet::NONE, new_image());
        sim.cut_at = Some(cut);
        sim.session_with_desired();
        if sim.ota.is_none() {
            sim.power_on();
            sim.session_with_desired();
        }
        // Never bricked: every boot ran a real, complete image.
        for boot in &sim.boots {
            assert!(
                boot.version == "1.0.0" || boot.version == "1.1.0",
                "cut {cut}: {boot:?}"
            );
        }
        assert!(
            sim.board.primary_ok,
            "cut {cut}: the running image is confirmed"
        );
        let tested = sim.boots.iter().any(|b| b.test_boot);
        if sim.running() == "1.0.0" {
            // Only a cut on the test boot, before it confirmed, may end
            // here — and that is the revert the contract asks for.
            assert!(
                tested,
                "cut {cut}: a cut before the test boot must still converge"
            );
            assert_eq!(sim.state(), OtaState::Reverted, "cut {cut}");
            reverted += 1;
        } else {
            assert!(sim.board.primary.bytes == new_image().bytes, "cut {cut}");
            // A record torn right after the confirm loses only the outcome.
            let torn_last_record = OtaRecord::decode(sim.board.record.as_ref().unwrap()).is_none();
            let want = if torn_last_record {
                OtaState::Idle
            } else {
                OtaState::Confirmed
            };
            assert_eq!(sim.state(), want, "cut {cut}");
            converged += 1;
        }
    }
    assert!(
        converged > 20 && reverted >= 1,
        "{converged} converged, {reverted} reverted"
    );
}

#[test]
fn rejections_keep_the_old_image_and_are_not_retried() {
    let unsigned = Image {
        signed: false,
        ..new_image()
    };
    let mut corrupted = new_image();
    corrupted.bytes[5_000] ^= 0xff;
    let downgrade = image("0.9.0", 0, 4_000);
    let cases: [(Image, Option<FirmwareTarget>, &str); 3] = [
        (
            unsigned,
            None,
            "bad signature: not signed by the built-in key",
        ),
        (corrupted, Some(target_of(&new_image())), "sha256 mismatch"),
        (
            downgrade,
            None,
            "security counter 0 is lower than the running image's 1",
        ),
    ];
    for (served, target, reason) in cases {
        let mut sim = Sim::new(FaultSet::NONE, served.clone());
        let target = target.unwrap_or_else(|| target_of(&served));
        sim.send(OtaEvent::SessionEstablished);
        sim.send(OtaEvent::Desired(Some(target.clone())));
        assert_eq!(sim.running(), "1.0.0");
        assert_eq!(sim.state(), OtaState::Rejected);
        assert!(!sim.board.pending_test, "never marked for a test boot");
        let last = sim.reports.last().unwrap();
        assert_eq!(
            (last.state, last.reason.as_deref()),
            (OtaState::Rejected, Some(reason))
        );
        // The same image is not downloaded again, not even after a reboot.
        sim.power_cut();
        sim.power_on();
        sim.send(OtaEvent::SessionEstablished);
        sim.send(OtaEvent::Desired(Some(target)));
        assert_eq!(sim.requests.len(), 1);
        assert_eq!(sim.state(), OtaState::Rejected);
    }
}

#[test]
fn size_mismatches_are_rejected() {
    // Announced smaller than served: the download overflows.
    let mut sim = Sim::new(FaultSet::NONE, new_image());
    let mut target = target_of(&new_image());
    target.size = 5_500;
    sim.send(OtaEvent::SessionEstablished);
    sim.send(OtaEvent::Desired(Some(target)));
    assert_eq!(sim.state(), OtaState::Rejected);
    assert!(sim
        .reports
        .last()
        .unwrap()
        .reason
        .as_deref()
        .unwrap()
        .contains("size mismatch"));
    assert!(
        sim.board.secondary.len() <= 5_500,
        "nothing written past the announced size"
    );
    // Announced larger than served: the server cannot deliver it.
    let mut sim = Sim::new(FaultSet::NONE, new_image());
    let mut target = target_of(&new_image());
    target.size = 20_000;
    sim.send(OtaEvent::SessionEstablished);
    sim.send(OtaEvent::Desired(Some(target)));
    assert_eq!(sim.state(), OtaState::Rejected);
    assert_eq!(sim.running(), "1.0.0");
}

#[test]
fn a_test_image_that_reaches_no_hub_is_reverted_and_reported() {
    let mut sim = Sim::new(FaultSet::NONE, new_image());
    sim.hub_after_reset = false;
    sim.send(OtaEvent::SessionEstablished);
    let target = target_of(&new_image());
    sim.send(OtaEvent::Desired(Some(target.clone())));
    assert_eq!(sim.running(), "1.1.0");
    assert_eq!(sim.state(), OtaState::Testing);
    assert!(!sim.board.primary_ok);
    let deadline = sim.ota.as_ref().unwrap().next_deadline().unwrap();
    sim.now = deadline;
    sim.send(OtaEvent::Tick);
    // The self-reset reverted (OTA-05).
    assert_eq!(sim.running(), "1.0.0");
    assert_eq!(sim.state(), OtaState::Reverted);
    sim.send(OtaEvent::SessionEstablished);
    let last = sim.reports.last().unwrap();
    assert_eq!(
        (last.version.as_str(), last.state),
        ("1.0.0", OtaState::Reverted)
    );
    assert!(last.reason.as_deref().unwrap().contains("1.1.0"));
    // Not retried in a loop.
    sim.send(OtaEvent::Desired(Some(target)));
    assert_eq!(sim.requests.len(), 1);
}

#[test]
fn a_test_image_that_crashes_is_reverted_and_confirm_at_boot_breaks_it() {
    for (faults, expect_revert) in [(FaultSet::NONE, true), (with(Fault::ConfirmAtBoot), false)] {
        let mut sim = Sim::new(faults, new_image());
        sim.hub_after_reset = false;
        sim.send(OtaEvent::SessionEstablished);
        sim.send(OtaEvent::Desired(Some(target_of(&new_image()))));
        assert_eq!(sim.running(), "1.1.0");
        // It crashes before reaching the hub (OTA-04).
        sim.power_cut();
        sim.power_on();
        if expect_revert {
            assert_eq!((sim.running(), sim.state()), ("1.0.0", OtaState::Reverted));
            assert!(sim.boots.last().unwrap().reverted);
            assert_eq!(sim.confirms_before_session, 0);
        } else {
            assert_eq!(sim.running(), "1.1.0", "confirm-at-boot: never reverted");
            assert_eq!(sim.confirms_before_session, 1);
        }
    }
}

#[test]
fn the_verify_request_carries_each_faults_wrong_flag() {
    let verify_of = |faults: FaultSet| {
        let mut sim = Sim::new(faults, new_image());
        sim.session_with_desired();
        sim.verifies[0].clone()
    };
    let OtaAction::Verify {
        check_signature,
        check_hash,
        min_security_counter,
        ..
    } = verify_of(with(Fault::SkipSignature))
    else {
        unreachable!()
    };
    assert_eq!(
        (check_signature, check_hash, min_security_counter),
        (false, true, Some(1))
    );
    let OtaAction::Verify {
        check_signature,
        check_hash,
        min_security_counter,
        ..
    } = verify_of(with(Fault::SkipHash))
    else {
        unreachable!()
    };
    assert_eq!(
        (check_signature, check_hash, min_security_counter),
        (true, false, Some(1))
    );
    let OtaAction::Verify {
        check_signature,
        check_hash,
        min_security_counter,
        ..
    } = verify_of(with(Fault::AllowDowngrade))
    else {
        unreachable!()
    };
    assert_eq!(
        (check_signature, check_hash, min_security_counter),
        (true, true, None)
    );
}

#[test]
fn each_verification_fault_lets_its_bad_image_through() {
    let unsigned = Image {
        signed: false,
        ..new_image()
    };
    let mut corrupted = new_image();
    corrupted.bytes[42] ^= 1;
    let downgrade = image("0.9.0", 0, 4_000);
    let cases = [
        (Fault::SkipSignature, unsigned.clone(), target_of(&unsigned)),
        (Fault::SkipHash, corrupted, target_of(&new_image())),
        (
            Fault::AllowDowngrade,
            downgrade.clone(),
            target_of(&downgrade),
        ),
    ];
    for (fault, served, target) in cases {
        let mut sim = Sim::new(with(fault), served);
        sim.send(OtaEvent::SessionEstablished);
        sim.send(OtaEvent::Desired(Some(target)));
        assert_ne!(
            sim.running(),
            "1.0.0",
            "{fault}: the bad image was installed"
        );
    }
}

#[test]
fn a_new_target_during_a_download_replaces_it() {
    let mut sim = Sim::new(FaultSet::NONE, new_image());
    sim.send(OtaEvent::SessionEstablished);
    sim.link_up = false;
    sim.send(OtaEvent::Desired(Some(target_of(&image(
        "1.0.5", 2, 2_000,
    )))));
    sim.send(OtaEvent::Chunk {
        offset: 0,
        data: vec![0; CHUNK],
    });
    sim.link_up = true;
    sim.send(OtaEvent::Desired(Some(target_of(&new_image()))));
    assert_eq!(sim.requests, vec![0, 0]);
    assert_eq!(sim.running(), "1.1.0");
}

#[test]
fn a_bootloader_revert_without_a_record_is_still_reported() {
    let boot = BootInfo {
        version: "1.0.0".into(),
        slot: 0,
        security_counter: 1,
        test_boot: false,
        reverted: true,
    };
    let (ota, actions) = Ota::power_on(boot, None, OtaConfig::default(), FaultSet::NONE, 0);
    assert_eq!(ota.state(), OtaState::Reverted);
    assert!(actions
        .iter()
        .any(|a| matches!(a, OtaAction::PersistRecord(r) if r.outcome == OtaState::Reverted)));
}

#[test]
fn records_round_trip_and_torn_ones_are_refused() {
    let record = OtaRecord {
        job: Some(Job {
            target: target_of(&new_image()),
            phase: Phase::Downloading { offset: 4_000 },
        }),
        outcome: OtaState::Rejected,
        reason: Some("bad signature".into()),
        refused: Some([7; 32]),
    };
    let bytes = record.encode();
    assert_eq!(OtaRecord::decode(&bytes), Some(record.clone()));
    let mut padded = bytes.clone();
    padded.extend_from_slice(&[0xff; 100]);
    assert_eq!(OtaRecord::decode(&padded), Some(record));
    for len in 0..bytes.len() {
        assert_eq!(OtaRecord::decode(&bytes[..len]), None, "prefix {len}");
    }
    let mut flipped = bytes.clone();
    flipped[10] ^= 1;
    assert_eq!(OtaRecord::decode(&flipped), None);
    assert_eq!(
        OtaRecord::decode(&OtaRecord::default().encode()),
        Some(OtaRecord::default())
    );
}

#[test]
fn sha256_hex_and_report_json() {
    let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015AD";
    assert_eq!(parse_sha256_hex(hex), Some(Sha256::digest(b"abc").into()));
    assert_eq!(parse_sha256_hex(&hex[1..]), None);
    assert_eq!(parse_sha256_hex(&hex.replace('b', "g")), None);
    let r = FirmwareReport {
        version: "1.4.0".into(),
        slot: 1,
        state: OtaState::Rejected,
        reason: Some("sha256 mismatch".into()),
    };
    assert_eq!(
        r.to_json(),
        r#"{"version":"1.4.0","slot":1,"state":"rejected","reason":"sha256 mismatch"}"#
    );
    let all = [
        "idle",
        "downloading",
        "verifying",
        "rebooting",
        "testing",
        "confirmed",
        "reverted",
        "rejected",
    ];
    let states = [
        OtaState::Idle,
        OtaState::Downloading,
        OtaState::Verifying,
        OtaState::Rebooting,
        OtaState::Testing,
        OtaState::Confirmed,
        OtaState::Reverted,
        OtaState::Rejected,
    ];
    for (s, name) in states.iter().zip(all) {
        assert_eq!(s.as_str(), name);
    }
}
