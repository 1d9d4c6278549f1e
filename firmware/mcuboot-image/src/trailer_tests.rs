//! Trailer tests: encoding, the whole decision table, and boot lifecycles.

use super::*;

const MAGICS: [Magic; 3] = [Magic::Good, Magic::Unset, Magic::Bad];
const FLAGS: [Flag; 3] = [Flag::Set, Flag::Unset, Flag::Bad];

fn magic_bytes(m: Magic) -> [u8; 16] {
    match m {
        Magic::Good => BOOT_MAGIC,
        Magic::Unset => [0xff; 16],
        // One flipped bit: the closest thing to good that is still bad.
        Magic::Bad => {
            let mut b = BOOT_MAGIC;
            b[7] ^= 0x10;
            b
        }
    }
}

fn flag_byte(f: Flag) -> u8 {
    match f {
        Flag::Set => 0x01,
        Flag::Unset => 0xff,
        Flag::Bad => 0x00,
    }
}

fn trailer(magic: Magic, image_ok: Flag, copy_done: Flag) -> Trailer {
    Trailer {
        magic: magic_bytes(magic),
        image_ok: flag_byte(image_ok),
        copy_done: flag_byte(copy_done),
        ..Trailer::ERASED
    }
}

/// MCUboot's `boot_swap_tables`, transcribed as data (None = ANY) and
/// matched first-row-wins like `boot_swap_type_multi`: an oracle written
/// independently of the `match` in `boot_decision`.
type Row = (
    Option<Magic>,
    Option<Magic>,
    Option<Flag>,
    Option<Flag>,
    Option<Flag>,
    BootAction,
);
const MCUBOOT_TABLE: [Row; 3] = [
    (
        None,
        Some(Magic::Good),
        None,
        Some(Flag::Unset),
        None,
        BootAction::SwapTest,
    ),
    (
        None,
        Some(Magic::Good),
        None,
        Some(Flag::Set),
        None,
        BootAction::SwapPermanent,
    ),
    (
        Some(Magic::Good),
        Some(Magic::Unset),
        Some(Flag::Unset),
        None,
        Some(Flag::Set),
        BootAction::Revert,
    ),
];

fn oracle(p: &Trailer, s: &Trailer, valid: bool) -> BootAction {
    fn ok<T: PartialEq>(want: Option<T>, got: T) -> bool {
        want.is_none_or(|w| w == got)
    }
    for (pm, sm, pok, sok, pcd, action) in MCUBOOT_TABLE {
        if ok(pm, p.magic_state())
            && ok(sm, s.magic_state())
            && ok(pok, p.image_ok_flag())
            && ok(sok, s.image_ok_flag())
            && ok(pcd, p.copy_done_flag())
        {
            return if valid {
                action
            } else {
                BootAction::DiscardSecondary
            };
        }
    }
    BootAction::RunPrimary
}

#[test]
fn whole_decision_table_matches_mcuboot_rows() {
    let mut seen = std::collections::HashSet::new();
    for pm in MAGICS {
        for pok in FLAGS {
            for pcd in FLAGS {
                for sm in MAGICS {
                    for sok in FLAGS {
                        for scd in FLAGS {
                            for valid in [true, false] {
                                let p = trailer(pm, pok, pcd);
                                let s = trailer(sm, sok, scd);
                                let got = boot_decision(&p, &s, valid);
                                assert_eq!(got, oracle(&p, &s, valid), "{p:?} {s:?} {valid}");
                                seen.insert(got);
                            }
                        }
                    }
                }
            }
        }
    }
    // Every action is reachable, so the loop above exercised all of them.
    assert_eq!(seen.len(), 5);
}

#[test]
fn named_rows() {
    let e = Trailer::ERASED;
    let pending_test = trailer(Magic::Good, Flag::Unset, Flag::Unset);
    let pending_perm = trailer(Magic::Good, Flag::Set, Flag::Unset);
    let tested = trailer(Magic::Good, Flag::Unset, Flag::Set);
    assert_eq!(boot_decision(&e, &e, true), BootAction::RunPrimary);
    assert_eq!(boot_decision(&e, &pending_test, true), BootAction::SwapTest);
    assert_eq!(
        boot_decision(&e, &pending_perm, true),
        BootAction::SwapPermanent
    );
    assert_eq!(boot_decision(&tested, &e, true), BootAction::Revert);
    assert_eq!(
        boot_decision(&e, &pending_test, false),
        BootAction::DiscardSecondary
    );
    assert_eq!(
        boot_decision(&tested, &e, false),
        BootAction::DiscardSecondary
    );
    // Validity is not consulted when nothing is requested.
    assert_eq!(boot_decision(&e, &e, false), BootAction::RunPrimary);
    // A confirmed test image does not revert; neither does one whose swap
    // never completed (copy_done unset).
    let confirmed = confirm(&tested).unwrap();
    assert_eq!(boot_decision(&confirmed, &e, true), BootAction::RunPrimary);
    let not_copied = trailer(Magic::Good, Flag::Unset, Flag::Unset);
    assert_eq!(boot_decision(&not_copied, &e, true), BootAction::RunPrimary);
    // A pending request wins over a revert.
    assert_eq!(
        boot_decision(&tested, &pending_perm, true),
        BootAction::SwapPermanent
    );
}

#[test]
fn encode_decode_roundtrip_and_layout() {
    let t = Trailer {
        swap_size: 0x1234_5678,
        swap_info: 0x12,
        copy_done: 0x01,
        image_ok: 0x7e,
        magic: BOOT_MAGIC,
    };
    let b = t.encode();
    assert_eq!(b.len(), 48);
    assert_eq!(&b[0..4], &[0x78, 0x56, 0x34, 0x12]);
    assert_eq!(&b[4..8], &[0xff; 4]);
    assert_eq!(b[8], 0x12);
    assert_eq!(b[16], 0x01);
    assert_eq!(b[24], 0x7e);
    assert_eq!(&b[32..], &BOOT_MAGIC);
    assert_eq!(Trailer::decode(&b), Ok(t));
    assert_eq!(Trailer::ERASED.encode(), [0xff; 48]);
    assert_eq!(Trailer::decode(&[0xff; 48]), Ok(Trailer::ERASED));
    assert_eq!(
        Trailer::decode(&[0xff; 47]),
        Err(TrailerError::WrongLength { len: 47 })
    );
    let mut slot = std::vec![0u8; 100];
    slot[52..].copy_from_slice(&b);
    assert_eq!(Trailer::from_slot(&slot), Ok(t));
    assert!(Trailer::from_slot(&slot[..47]).is_err());
}

#[test]
fn field_states() {
    let mut t = Trailer::ERASED;
    assert_eq!(t.magic_state(), Magic::Unset);
    assert_eq!(t.image_ok_flag(), Flag::Unset);
    assert_eq!(t.swap_type(), SwapType::None);
    t.magic = BOOT_MAGIC;
    t.image_ok = 1;
    t.copy_done = 2;
    assert_eq!(t.magic_state(), Magic::Good);
    assert_eq!(t.image_ok_flag(), Flag::Set);
    assert_eq!(t.copy_done_flag(), Flag::Bad);
    for (info, ty) in [
        (0x01, SwapType::None),
        (0x02, SwapType::Test),
        (0x13, SwapType::Perm),
        (0x04, SwapType::Revert),
        (0x05, SwapType::None),
        (0x0f, SwapType::None),
    ] {
        t.swap_info = info;
        assert_eq!(t.swap_type(), ty, "{info:#x}");
    }
}

#[test]
fn requests_and_confirm() {
    let test = request_test(&Trailer::ERASED).unwrap();
    assert_eq!(test.magic_state(), Magic::Good);
    assert_eq!(test.image_ok_flag(), Flag::Unset);
    assert_eq!(test.swap_type(), SwapType::Test);
    let perm = request_permanent(&Trailer::ERASED).unwrap();
    assert_eq!(perm.image_ok_flag(), Flag::Set);
    assert_eq!(perm.swap_type(), SwapType::Perm);
    // Already pending: unchanged, whatever is asked.
    assert_eq!(request_permanent(&test), Ok(test));
    assert_eq!(request_test(&perm), Ok(perm));
    let bad = trailer(Magic::Bad, Flag::Unset, Flag::Unset);
    assert_eq!(request_test(&bad), Err(TrailerError::BadMagic));
    assert_eq!(confirm(&bad), Err(TrailerError::BadMagic));
    assert_eq!(confirm(&Trailer::ERASED), Ok(Trailer::ERASED));
    let tested = trailer(Magic::Good, Flag::Unset, Flag::Set);
    let confirmed = confirm(&tested).unwrap();
    assert_eq!(confirmed.image_ok_flag(), Flag::Set);
    assert_eq!(confirm(&confirmed), Ok(confirmed));
    // Writes only ever turn erased bytes into values (flash semantics).
    for (before, after) in [
        (Trailer::ERASED, test),
        (Trailer::ERASED, perm),
        (tested, confirmed),
    ] {
        for (b, a) in before.encode().iter().zip(after.encode()) {
            assert!(*b == a || *b == 0xff, "{before:?} -> {after:?}");
        }
    }
}

/// Runs one boot: decision, then the trailers the bootloader leaves.
fn boot(p: &mut Trailer, s: &mut Trailer, valid: bool) -> BootAction {
    let action = boot_decision(p, s, valid);
    (*p, *s) = apply_boot_action(action, p, s);
    action
}

#[test]
fn lifecycle_test_swap_then_revert() {
    let (mut p, mut s) = (Trailer::ERASED, request_test(&Trailer::ERASED).unwrap());
    assert_eq!(boot(&mut p, &mut s, true), BootAction::SwapTest);
    assert_eq!(p.swap_type(), SwapType::Test);
    assert_eq!(s, Trailer::ERASED);
    // Not confirmed: the next boot reverts, then stays.
    assert_eq!(boot(&mut p, &mut s, true), BootAction::Revert);
    assert_eq!(p.image_ok_flag(), Flag::Set);
    assert_eq!(boot(&mut p, &mut s, true), BootAction::RunPrimary);
    assert_eq!(boot(&mut p, &mut s, true), BootAction::RunPrimary);
}

#[test]
fn lifecycle_test_swap_then_confirm() {
    let (mut p, mut s) = (Trailer::ERASED, request_test(&Trailer::ERASED).unwrap());
    assert_eq!(boot(&mut p, &mut s, true), BootAction::SwapTest);
    p = confirm(&p).unwrap();
    assert_eq!(boot(&mut p, &mut s, true), BootAction::RunPrimary);
    assert_eq!(boot(&mut p, &mut s, true), BootAction::RunPrimary);
}

#[test]
fn lifecycle_permanent_and_invalid() {
    let (mut p, mut s) = (
        Trailer::ERASED,
        request_permanent(&Trailer::ERASED).unwrap(),
    );
    assert_eq!(boot(&mut p, &mut s, true), BootAction::SwapPermanent);
    assert_eq!(boot(&mut p, &mut s, true), BootAction::RunPrimary);
    // An invalid candidate is discarded once, then nothing is pending.
    s = request_test(&s).unwrap();
    assert_eq!(boot(&mut p, &mut s, false), BootAction::DiscardSecondary);
    assert_eq!(s, Trailer::ERASED);
    assert_eq!(boot(&mut p, &mut s, false), BootAction::RunPrimary);
}
