//! The OTA machine's answers to the FreeRTOS OTA end-to-end situations
//! (OTA-11, 12, 17, 18): the running version offered again, back-to-back
//! updates, a cancel during the download, a reverted image offered again;
//! and the fault that breaks each.

use alloc::vec;

use super::sim::{image, target_of, Sim, CHUNK};
use super::{new_image, with};
use crate::faults::{Fault, FaultSet};
use crate::ota::{OtaEvent, OtaState};

fn reason(sim: &Sim) -> Option<&str> {
    sim.reports.last().unwrap().reason.as_deref()
}

#[test]
fn the_running_version_offered_again_installs_nothing_and_says_so() {
    let running = image("1.0.0", 1, 3_000);
    let mut sim = Sim::new(FaultSet::NONE, running.clone());
    sim.session_with_desired();
    assert!(sim.requests.is_empty());
    assert_eq!((sim.running(), sim.state()), ("1.0.0", OtaState::Idle));
    assert_eq!(
        reason(&sim),
        Some("not installed: 1.0.0 is already running")
    );
    // Fault reinstall-same-version: downloads it and reboots into it.
    let mut sim = Sim::new(with(Fault::ReinstallSameVersion), running);
    sim.session_with_desired();
    assert_eq!(sim.requests, vec![0]);
    assert!(sim.boots.len() > 1, "rebooted into the same version");
}

#[test]
fn back_to_back_updates_both_install_unless_one_update_per_boot() {
    for (faults, second) in [
        (FaultSet::NONE, OtaState::Confirmed),
        (with(Fault::OneUpdatePerBoot), OtaState::Rejected),
    ] {
        let mut sim = Sim::new(faults, new_image());
        sim.session_with_desired();
        assert_eq!((sim.running(), sim.state()), ("1.1.0", OtaState::Confirmed));
        sim.served = image("1.2.0", 3, 9_000);
        sim.send(OtaEvent::Desired(Some(target_of(&sim.served.clone()))));
        assert_eq!(sim.state(), second, "{faults:?}");
        if second == OtaState::Confirmed {
            assert_eq!(sim.running(), "1.2.0");
            assert_eq!(sim.requests, vec![0, 0]);
        } else {
            assert_eq!(sim.running(), "1.1.0");
            assert!(reason(&sim).unwrap().contains("in progress"));
        }
    }
}

#[test]
fn the_running_version_during_a_download_cancels_it() {
    for (faults, cancelled) in [(FaultSet::NONE, true), (with(Fault::IgnoreCancel), false)] {
        let mut sim = Sim::new(faults, new_image());
        sim.send(OtaEvent::SessionEstablished);
        sim.link_up = false;
        sim.send(OtaEvent::Desired(Some(target_of(&new_image()))));
        sim.send(OtaEvent::Chunk {
            offset: 0,
            data: new_image().bytes[..CHUNK].to_vec(),
        });
        sim.send(OtaEvent::Desired(Some(target_of(&image(
            "1.0.0", 1, 3_000,
        )))));
        sim.link_up = true;
        sim.settle();
        if cancelled {
            assert_eq!((sim.running(), sim.state()), ("1.0.0", OtaState::Cancelled));
            assert_eq!(sim.transfer, None, "the download stopped");
            assert!(reason(&sim).unwrap().starts_with("cancelled: "));
            assert!(!sim.board.pending_test);
            // Nothing resumes later, not even after a reboot.
            sim.power_cut();
            sim.power_on();
            sim.send(OtaEvent::SessionEstablished);
            assert_eq!(sim.requests, vec![0]);
            assert_eq!(sim.state(), OtaState::Cancelled);
        } else {
            assert_eq!(sim.running(), "1.1.0", "ignore-cancel installs it");
        }
    }
}

#[test]
fn a_reverted_image_offered_again_is_declined_unless_retry_reverted_image() {
    for (faults, again) in [
        (FaultSet::NONE, false),
        (with(Fault::RetryRevertedImage), true),
    ] {
        let mut sim = Sim::new(faults, new_image());
        sim.hub_after_reset = false;
        sim.session_with_desired();
        let deadline = sim.ota.as_ref().unwrap().next_deadline().unwrap();
        sim.now = deadline;
        sim.send(OtaEvent::Tick);
        assert_eq!((sim.running(), sim.state()), ("1.0.0", OtaState::Reverted));
        sim.hub_after_reset = true;
        sim.session_with_desired();
        assert_eq!(sim.requests.len(), if again { 2 } else { 1 }, "{faults:?}");
        if !again {
            assert_eq!(sim.state(), OtaState::Reverted);
            assert_eq!(
                reason(&sim),
                Some("not installed: the image of 1.1.0 was rejected or reverted before")
            );
        }
    }
}
