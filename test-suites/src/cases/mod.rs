//! The catalogue of cases, by group.

mod board;
pub mod cd;
pub mod gw;
pub mod kr;
pub mod mt;
pub mod ni;
pub mod ota;
mod support;

use crate::case::CaseDef;

/// A case definition, as the group modules' `CASES` tables spell it.
pub type Def = CaseDef;

/// `case_def!(id, slug, title, expected, needs, [dut,] fn)` for a device
/// case: `needs` of the rig, `dut` (a `DutNeeds`, default none) of the device.
macro_rules! case_def {
    ($id:literal, $slug:literal, $title:literal, $expected:literal, $needs:expr, $f:ident) => {
        $crate::cases::case_def!(
            $id,
            $slug,
            $title,
            $expected,
            $needs,
            $crate::case::DutNeeds::NONE,
            $f
        )
    };
    ($id:literal, $slug:literal, $title:literal, $expected:literal, $needs:expr, $dut:expr, $f:ident) => {
        $crate::case::CaseDef {
            id: $id,
            slug: $slug,
            title: $title,
            expected: $expected,
            needs: $needs,
            dut: $dut,
            self_test: false,
            extra_faults: &[],
            tools: &[],
            hub_mqtt_port: None,
            clock: $crate::case::ClockNeed::Real,
            long: false,
            run: |c| Box::pin($f(c)),
        }
    };
}
pub(crate) use case_def;

/// `self_test!(id, slug, title, expected, fn)` for a self-test of the
/// fixture: needs nothing of the rig, and the run's fault does not apply.
macro_rules! self_test {
    ($id:literal, $slug:literal, $title:literal, $expected:literal, $f:path) => {
        $crate::case::CaseDef {
            id: $id,
            slug: $slug,
            title: $title,
            expected: $expected,
            needs: &[],
            dut: $crate::case::DutNeeds::NONE,
            self_test: true,
            extra_faults: &[],
            tools: &[],
            hub_mqtt_port: None,
            clock: $crate::case::ClockNeed::Real,
            long: false,
            run: |c| Box::pin($f(c)),
        }
    };
}
pub(crate) use self_test;

/// Every case, in catalogue order.
pub fn all() -> Vec<&'static CaseDef> {
    [
        ni::CASES,
        mt::CASES,
        mt::CHAIN_CASES,
        kr::CASES,
        kr::RENEWAL_CASES,
        ota::CASES,
        ota::more::CASES,
        cd::CASES,
        cd::server::CASES,
        cd::identity::CASES,
        cd::server::MALFORMED_CASES,
        cd::redelivery::CASES,
        gw::CASES,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// `defs` in the order a run starts them: the long cases first
/// ([`CaseDef::long`]), each part in catalogue order. A run with more cases
/// than it runs at once then ends with short cases, not a long one started
/// last; its report keeps catalogue order.
pub fn in_run_order(mut defs: Vec<&'static CaseDef>) -> Vec<&'static CaseDef> {
    defs.sort_by_key(|def| !def.long);
    defs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_cases_start_first_and_the_rest_keep_catalogue_order() {
        let order: Vec<&str> = in_run_order(all()).iter().map(|d| d.id).collect();
        let long: Vec<&str> = all().iter().filter(|d| d.long).map(|d| d.id).collect();
        // The full scans, the slow link, the flaps, the power cuts of a
        // rotation, and the withheld CONNACKs (minutes on an SDK with a
        // 60 s CONNACK timeout).
        for id in [
            "NI-01", "NI-05", "NI-06", "OTA-09", "CD-10", "KR-04", "CD-16", "CD-20", "MT-12",
        ] {
            assert!(long.contains(&id), "{id} is not marked long");
        }
        assert_eq!(order[..long.len()], long[..]);
        let rest: Vec<&str> = all().iter().filter(|d| !d.long).map(|d| d.id).collect();
        assert_eq!(order[long.len()..], rest[..]);
    }

    #[test]
    fn ids_and_names_are_unique_and_stable_in_form() {
        let all = all();
        for c in &all {
            assert_eq!(all.iter().filter(|o| o.id == c.id).count(), 1, "{}", c.id);
            let name = c.name();
            assert!(
                name.starts_with(&format!("{}::{}_", c.group(), c.id)),
                "{name}"
            );
        }
        // The catalogue's cases: NI, MT, MT-15…26, KR, KR-07…08, OTA, OTA-11…18, CD, CD-13…19 and CD-21, CD-20, CD-22, GW.
        assert_eq!(all.len(), 6 + 14 + 12 + 6 + 2 + 10 + 8 + 12 + 8 + 1 + 1 + 5);
    }

    #[test]
    fn every_fault_of_the_gateway_names_only_gw_cases() {
        let ids: Vec<&str> = all().iter().map(|c| c.id).collect();
        for f in field_gateway::FAULTS {
            for case in f.cases {
                assert!(
                    ids.contains(case) && case.starts_with("GW-"),
                    "{} names {case}",
                    f.name
                );
            }
        }
    }

    #[test]
    fn the_reference_dut_file_offers_every_fault_event_and_part() {
        use sacbench_rig::dut::{ContractPart, DutFile, EventName};
        let dut = DutFile::load(&crate::case::reference_dut_file()).expect("reference DUT file");
        let mut offered = dut.faults.offered.clone();
        offered.sort();
        let mut catalogue: Vec<String> = device_core::faults::CATALOGUE
            .iter()
            .map(|f| f.name.to_string())
            .collect();
        catalogue.sort();
        assert_eq!(
            offered, catalogue,
            "faults.offered of the reference DUT file"
        );
        for e in EventName::ALL {
            assert!(dut.event(*e).is_some(), "the reference declares no {e}");
        }
        for p in ContractPart::ALL {
            assert!(dut.implements(*p), "the reference does not implement {p}");
        }
        // So every case applies to it.
        for c in all() {
            assert_eq!(c.dut.not_applicable(&dut), None, "{}", c.id);
        }
    }

    #[test]
    fn every_fault_of_the_device_names_only_cases_that_exist() {
        let ids: Vec<&str> = all().iter().map(|c| c.id).collect();
        for f in device_core::faults::CATALOGUE {
            for case in f.cases {
                assert!(
                    ids.contains(case),
                    "{} names {case}, which is not a case",
                    f.name
                );
            }
        }
    }
}
