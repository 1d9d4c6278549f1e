//! Renewal before expiry through the whole device (KR-07's `no-renewal`
//! fault) and the subject of the re-enrolment CSR (KR-08's
//! `rotate-new-subject`): the machine's timer carries the renewal.

use alloc::string::String;
use alloc::vec::Vec;

use super::tests::{Bench, T0};
use crate::faults::{Fault, FaultSet};

/// The provisioned certificate is valid T0 − 1 s ..= T0 + 1000 s.
const RENEW_AT: u64 = T0 - 1000 + (1_000_000 + 1000) * 8 / 10;

#[test]
fn the_device_wakes_at_80_percent_and_renews_by_itself() {
    let mut b = Bench::new(FaultSet::NONE);
    b.online();
    assert_eq!(b.enrolments, 0);
    assert!(b.dev.poll_timeout().is_some_and(|t| t <= RENEW_AT));
    assert_eq!(b.dev.rotation().renewal_due_at(), Some(RENEW_AT));
    b.at(RENEW_AT - 1);
    b.timeout();
    assert_eq!(b.enrolments, 0, "not before 80 %");
    b.at(RENEW_AT);
    b.timeout();
    assert_eq!(b.enrolments, 1);
    assert!(b.trace.iter().any(|t| t == "csr CN=dev-1"), "{:?}", b.trace);
}

#[test]
fn fault_no_renewal_never_wakes_for_it() {
    let mut b = Bench::new(FaultSet::NONE.with(Fault::NoRenewal));
    b.online();
    assert_eq!(b.dev.rotation().renewal_due_at(), None);
    b.at(T0 + 999_000);
    b.timeout();
    assert_eq!(b.enrolments, 0, "runs into expiry");
}

#[test]
fn fault_rotate_new_subject_puts_a_generated_name_in_the_csr() {
    let mut b = Bench::new(FaultSet::NONE.with(Fault::RotateNewSubject));
    b.online();
    b.method("credentials/rotate", 1);
    let cn: Vec<&String> = b
        .trace
        .iter()
        .filter(|t| t.starts_with("csr CN="))
        .collect();
    assert_eq!(cn.len(), 1, "{:?}", b.trace);
    assert!(cn[0].starts_with("csr CN=dev-1-") && cn[0].len() > "csr CN=dev-1-".len());
}
