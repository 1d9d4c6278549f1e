//! The slot trailer and MCUboot's swap-mode boot decision.
//!
//! # Layout
//!
//! The trailer is the last [`TRAILER_SIZE`] (48) bytes of a slot. It is
//! MCUboot's trailer for a flash write size of [`BOOT_MAX_ALIGN`] (8, also
//! imgtool's default `max_align`), each field padded to 8 bytes, without the
//! swap-status and encryption-key areas that precede it in MCUboot (they only
//! serve to resume an interrupted sector-by-sector swap, which the emulated
//! board does not model). Offsets inside the 48-byte block:
//!
//! | offset | size | field | values |
//! |-------:|-----:|-------|--------|
//! | 0  | 4 (+4 pad) | swap size | `u32` LE, 0xffffffff erased |
//! | 8  | 1 (+7 pad) | swap info | low nibble swap type (1 none, 2 test, 3 perm, 4 revert), high nibble image number |
//! | 16 | 1 (+7 pad) | copy done | 0x01 set, 0xff unset |
//! | 24 | 1 (+7 pad) | image ok  | 0x01 set, 0xff unset |
//! | 32 | 16 | magic | [`BOOT_MAGIC`] |
//!
//! Erased flash reads 0xff, so [`Trailer::ERASED`] is 48 bytes of 0xff, and a
//! field is only ever written once between erases (0xff to a value), which
//! is why flags are "unset" (0xff) or "set" (0x01) and anything else is
//! "bad". This is byte-compatible with the end of an imgtool `--pad` slot
//! with `--align 8` or less: imgtool writes the magic, and image_ok for
//! `--confirm`.
//!
//! Padding bytes are written as 0xff by [`Trailer::encode`] and ignored by
//! [`Trailer::decode`], as MCUboot reads only the first byte of each field.

use core::fmt;

/// Flash write alignment the trailer fields are padded to.
pub const BOOT_MAX_ALIGN: usize = 8;
/// Size of the trailer block at the end of a slot.
pub const TRAILER_SIZE: usize = 4 * BOOT_MAX_ALIGN + BOOT_MAGIC.len();
/// What erased flash reads as.
pub const ERASED_BYTE: u8 = 0xff;
/// MCUboot's `BOOT_IMG_MAGIC` (for `BOOT_MAX_ALIGN` 8).
pub const BOOT_MAGIC: [u8; 16] = [
    0x77, 0xc2, 0x95, 0xf3, 0x60, 0xd2, 0xef, 0x7f, 0x35, 0x52, 0x50, 0x0f, 0x2c, 0xb6, 0x79, 0x80,
];
/// The "set" value of a flag (`BOOT_FLAG_SET`).
pub const FLAG_SET: u8 = 0x01;

const SWAP_SIZE_OFF: usize = 0;
const SWAP_INFO_OFF: usize = BOOT_MAX_ALIGN;
const COPY_DONE_OFF: usize = 2 * BOOT_MAX_ALIGN;
const IMAGE_OK_OFF: usize = 3 * BOOT_MAX_ALIGN;
const MAGIC_OFF: usize = 4 * BOOT_MAX_ALIGN;

/// The raw trailer fields (first byte of each padded field). Raw, so that
/// encode/decode round-trip exactly and a test can write any corruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Trailer {
    /// Swap size, 0xffffffff when erased. Written by MCUboot to resume an
    /// interrupted swap; not used by the decision table.
    pub swap_size: u32,
    /// Swap info byte: `(image_num << 4) | swap_type`.
    pub swap_info: u8,
    /// copy_done flag byte.
    pub copy_done: u8,
    /// image_ok flag byte.
    pub image_ok: u8,
    /// Magic, [`BOOT_MAGIC`] when the trailer is valid.
    pub magic: [u8; 16],
}

/// State of the magic field (`BOOT_MAGIC_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Magic {
    /// Equal to [`BOOT_MAGIC`].
    Good,
    /// All erased.
    Unset,
    /// Anything else.
    Bad,
}

/// State of a one-byte flag (`BOOT_FLAG_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flag {
    /// 0x01.
    Set,
    /// Erased (0xff).
    Unset,
    /// Anything else.
    Bad,
}

impl Flag {
    fn decode(b: u8) -> Self {
        match b {
            FLAG_SET => Self::Set,
            ERASED_BYTE => Self::Unset,
            _ => Self::Bad,
        }
    }
}

/// Swap type recorded in the swap info byte (`BOOT_SWAP_TYPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwapType {
    /// 1, or erased, or out of range (as MCUboot reads it).
    None,
    /// 2: test swap, reverted unless confirmed.
    Test,
    /// 3: permanent swap.
    Perm,
    /// 4: revert of a test swap.
    Revert,
}

impl SwapType {
    fn code(self) -> u8 {
        match self {
            Self::None => 1,
            Self::Test => 2,
            Self::Perm => 3,
            Self::Revert => 4,
        }
    }
}

/// Errors of trailer decoding and operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrailerError {
    /// The block is not [`TRAILER_SIZE`] bytes (or the slot is shorter).
    WrongLength {
        /// Its length.
        len: usize,
    },
    /// The trailer's magic is neither good nor erased: MCUboot refuses to
    /// write to it (`BOOT_EBADIMAGE` / `BOOT_EBADVECT`); the slot must be
    /// erased first.
    BadMagic,
}

impl fmt::Display for TrailerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongLength { len } => {
                write!(f, "trailer block of {len} bytes, expected {TRAILER_SIZE}")
            }
            Self::BadMagic => write!(f, "trailer magic is corrupt"),
        }
    }
}

impl core::error::Error for TrailerError {}

impl Trailer {
    /// The trailer of erased flash.
    pub const ERASED: Self = Self {
        swap_size: u32::MAX,
        swap_info: ERASED_BYTE,
        copy_done: ERASED_BYTE,
        image_ok: ERASED_BYTE,
        magic: [ERASED_BYTE; 16],
    };

    /// Decodes a [`TRAILER_SIZE`]-byte block.
    pub fn decode(block: &[u8]) -> Result<Self, TrailerError> {
        let block: &[u8; TRAILER_SIZE] = block
            .try_into()
            .map_err(|_| TrailerError::WrongLength { len: block.len() })?;
        let mut magic = [0u8; 16];
        magic.copy_from_slice(&block[MAGIC_OFF..]);
        Ok(Self {
            swap_size: u32::from_le_bytes([
                block[SWAP_SIZE_OFF],
                block[SWAP_SIZE_OFF + 1],
                block[SWAP_SIZE_OFF + 2],
                block[SWAP_SIZE_OFF + 3],
            ]),
            swap_info: block[SWAP_INFO_OFF],
            copy_done: block[COPY_DONE_OFF],
            image_ok: block[IMAGE_OK_OFF],
            magic,
        })
    }

    /// Decodes the trailer at the end of a whole slot.
    pub fn from_slot(slot: &[u8]) -> Result<Self, TrailerError> {
        let start = slot
            .len()
            .checked_sub(TRAILER_SIZE)
            .ok_or(TrailerError::WrongLength { len: slot.len() })?;
        Self::decode(&slot[start..])
    }

    /// Encodes to the block [`Trailer::decode`] reads (padding erased).
    pub fn encode(&self) -> [u8; TRAILER_SIZE] {
        let mut out = [ERASED_BYTE; TRAILER_SIZE];
        out[SWAP_SIZE_OFF..SWAP_SIZE_OFF + 4].copy_from_slice(&self.swap_size.to_le_bytes());
        out[SWAP_INFO_OFF] = self.swap_info;
        out[COPY_DONE_OFF] = self.copy_done;
        out[IMAGE_OK_OFF] = self.image_ok;
        out[MAGIC_OFF..].copy_from_slice(&self.magic);
        out
    }

    /// The magic's state.
    pub fn magic_state(&self) -> Magic {
        if self.magic == BOOT_MAGIC {
            Magic::Good
        } else if self.magic == [ERASED_BYTE; 16] {
            Magic::Unset
        } else {
            Magic::Bad
        }
    }

    /// The image_ok flag's state.
    pub fn image_ok_flag(&self) -> Flag {
        Flag::decode(self.image_ok)
    }

    /// The copy_done flag's state.
    pub fn copy_done_flag(&self) -> Flag {
        Flag::decode(self.copy_done)
    }

    /// The swap type in swap info, read as MCUboot's `boot_read_swap_state`
    /// does: erased or out-of-range values read as [`SwapType::None`].
    pub fn swap_type(&self) -> SwapType {
        match self.swap_info & 0x0f {
            _ if self.swap_info == ERASED_BYTE => SwapType::None,
            2 => SwapType::Test,
            3 => SwapType::Perm,
            4 => SwapType::Revert,
            _ => SwapType::None,
        }
    }

    /// A trailer as MCUboot leaves the primary slot after a swap.
    fn swapped(swap_type: SwapType, image_ok: bool) -> Self {
        Self {
            swap_info: swap_type.code(),
            copy_done: FLAG_SET,
            image_ok: if image_ok { FLAG_SET } else { ERASED_BYTE },
            magic: BOOT_MAGIC,
            ..Self::ERASED
        }
    }
}

/// What the bootloader does at boot, for one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BootAction {
    /// Boot the primary slot as it is (`BOOT_SWAP_TYPE_NONE`).
    RunPrimary,
    /// Swap in the secondary image for one test boot (`BOOT_SWAP_TYPE_TEST`).
    SwapTest,
    /// Swap in the secondary image for good (`BOOT_SWAP_TYPE_PERM`).
    SwapPermanent,
    /// Swap back: the primary is a test image that was never confirmed
    /// (`BOOT_SWAP_TYPE_REVERT`).
    Revert,
    /// A swap was requested but the secondary slot holds no valid image:
    /// erase the secondary slot and boot the primary as it is
    /// (`BOOT_SWAP_TYPE_FAIL`).
    DiscardSecondary,
}

/// MCUboot's swap-mode decision (`boot_swap_tables` in `bootutil_public.c`,
/// then `boot_validated_swap_type` in `loader.c`). First matching row wins:
///
/// | primary magic | secondary magic | primary image_ok | secondary image_ok | primary copy_done | swap |
/// |---|---|---|---|---|---|
/// | any  | good  | any   | unset | any | test |
/// | any  | good  | any   | set   | any | permanent |
/// | good | unset | unset | any   | set | revert |
/// | otherwise | | | | | none |
///
/// A test, permanent or revert swap needs a valid image in the secondary
/// slot (MCUboot validates it before swapping); without one the answer is
/// [`BootAction::DiscardSecondary`]. `secondary_valid` is only consulted
/// then: pass whether the secondary slot holds an image that passes the
/// checks the bootloader runs (for a revert, that is the previous image).
pub fn boot_decision(primary: &Trailer, secondary: &Trailer, secondary_valid: bool) -> BootAction {
    let action = match (secondary.magic_state(), secondary.image_ok_flag()) {
        (Magic::Good, Flag::Unset) => BootAction::SwapTest,
        (Magic::Good, Flag::Set) => BootAction::SwapPermanent,
        (Magic::Unset, _)
            if primary.magic_state() == Magic::Good
                && primary.image_ok_flag() == Flag::Unset
                && primary.copy_done_flag() == Flag::Set =>
        {
            BootAction::Revert
        }
        _ => BootAction::RunPrimary,
    };
    if action != BootAction::RunPrimary && !secondary_valid {
        return BootAction::DiscardSecondary;
    }
    action
}

/// The trailers `(primary, secondary)` once the bootloader has carried out
/// `action` (the image contents being swapped by the caller):
/// - after a test swap the primary has magic, swap type test and copy_done,
///   but not image_ok: unless [`confirm`]ed, the next boot reverts;
/// - after a permanent swap or a revert, image_ok is set too (MCUboot's
///   `boot_perform_update` sets it so the swap is not undone);
/// - after any swap the secondary trailer is erased (it now holds the
///   previous image, with no pending request);
/// - [`BootAction::DiscardSecondary`] erases the secondary slot;
/// - [`BootAction::RunPrimary`] changes nothing.
///
/// The swap size field is left erased.
pub fn apply_boot_action(
    action: BootAction,
    primary: &Trailer,
    secondary: &Trailer,
) -> (Trailer, Trailer) {
    match action {
        BootAction::RunPrimary => (*primary, *secondary),
        BootAction::DiscardSecondary => (*primary, Trailer::ERASED),
        BootAction::SwapTest => (Trailer::swapped(SwapType::Test, false), Trailer::ERASED),
        BootAction::SwapPermanent => (Trailer::swapped(SwapType::Perm, true), Trailer::ERASED),
        BootAction::Revert => (Trailer::swapped(SwapType::Revert, true), Trailer::ERASED),
    }
}

/// Common part of `boot_set_pending`: on an erased secondary trailer, write
/// magic and swap info (and image_ok if permanent); if a swap is already
/// pending, change nothing, as MCUboot does.
fn set_pending(secondary: &Trailer, permanent: bool) -> Result<Trailer, TrailerError> {
    match secondary.magic_state() {
        Magic::Good => Ok(*secondary),
        Magic::Bad => Err(TrailerError::BadMagic),
        Magic::Unset => {
            let mut t = *secondary;
            t.magic = BOOT_MAGIC;
            let swap_type = if permanent {
                t.image_ok = FLAG_SET;
                SwapType::Perm
            } else {
                SwapType::Test
            };
            t.swap_info = swap_type.code();
            Ok(t)
        }
    }
}

/// Requests a test swap of the secondary image at next boot
/// (`boot_set_pending(0)`): the new secondary trailer.
pub fn request_test(secondary: &Trailer) -> Result<Trailer, TrailerError> {
    set_pending(secondary, false)
}

/// Requests a permanent swap of the secondary image at next boot
/// (`boot_set_pending(1)`): the new secondary trailer.
pub fn request_permanent(secondary: &Trailer) -> Result<Trailer, TrailerError> {
    set_pending(secondary, true)
}

/// Confirms the running (primary) image (`boot_set_confirmed`): sets
/// image_ok if the trailer has good magic and image_ok is unset. An erased
/// trailer (image flashed directly, never swapped) and an already-set
/// image_ok are left as they are.
pub fn confirm(primary: &Trailer) -> Result<Trailer, TrailerError> {
    match primary.magic_state() {
        Magic::Unset => Ok(*primary),
        Magic::Bad => Err(TrailerError::BadMagic),
        Magic::Good => {
            let mut t = *primary;
            if t.image_ok_flag() == Flag::Unset {
                t.image_ok = FLAG_SET;
            }
            Ok(t)
        }
    }
}

#[cfg(test)]
#[path = "trailer_tests.rs"]
mod tests;
