//! The bootloader's logic (what MCUboot does on a board), over the
//! [`BootFlash`] trait: at power-on, finish an interrupted swap, decide from
//! the slot trailers whether to swap for a test boot, for good, or back
//! (revert), carry that out, and check the primary image before it runs.
//!
//! The decision table and trailer format are `mcuboot-image`'s
//! ([`crate::image::trailer`]); the resumable sector swap is [`swap`].
//! Images never reach into a slot's last sector: it holds the trailer, which
//! the swap does not move (the trailers are rewritten after it instead).

pub mod swap;

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use crate::image::header::IMAGE_HEADER_SIZE;
use crate::image::tlv::TLV_INFO_SIZE;
use crate::image::trailer::{apply_boot_action, boot_decision, BootAction, Trailer, TRAILER_SIZE};
use crate::image::{parse, ImageHeader, ImageVersion, TrustedKey};
pub use swap::{Area, BootFlash};

/// How this bootloader behaves; `unsafe_swap` is the `unsafe-swap` fault.
#[derive(Debug, Clone, Copy, Default)]
pub struct BootConfig {
    /// Swap the slots in place, with no scratch copy or status log (the
    /// `unsafe-swap` fault): a power cut mid-swap leaves a broken primary.
    pub unsafe_swap: bool,
}

/// What power-on did, for the running image to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootReport {
    /// What this power-on did with the slots (run the primary, swap for a
    /// test or for good, revert, or drop the secondary's request).
    pub action: BootAction,
    /// An interrupted swap was found and finished first.
    pub resumed_swap: bool,
    /// The primary image that now runs.
    pub version: ImageVersion,
    /// Security counter of the running image (0 if it carries none): the
    /// floor an update's image must reach.
    pub security_counter: u32,
    /// The running image is on trial: unless it confirms itself, the next
    /// power-on reverts it.
    pub test_boot: bool,
    /// Offset of the payload inside the primary slot (the image header's
    /// size), bytes.
    pub payload_offset: u32,
    /// Length of the payload (the image without header and TLVs), bytes.
    pub payload_len: u32,
}

/// Why power-on cannot hand over to an image; `E` is the flash driver's
/// error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootError<E> {
    /// The flash driver failed a read, write or erase.
    Flash(E),
    /// Nothing valid to run: the board is bricked.
    NoBootableImage(String),
    /// An image would not leave its slot's trailer sector alone.
    ImageTooLarge {
        /// The slot the image is in (`"secondary"`).
        slot: &'static str,
        /// The image's length, bytes.
        len: usize,
        /// Room before the slot's trailer sector, bytes.
        max: usize,
    },
}

impl<E> From<E> for BootError<E> {
    fn from(e: E) -> Self {
        BootError::Flash(e)
    }
}

fn action_tag(a: BootAction) -> u8 {
    match a {
        BootAction::SwapTest => 1,
        BootAction::SwapPermanent => 2,
        BootAction::Revert => 3,
        BootAction::RunPrimary | BootAction::DiscardSecondary => 0,
    }
}

fn tag_action(tag: u8) -> BootAction {
    match tag {
        1 => BootAction::SwapTest,
        2 => BootAction::SwapPermanent,
        // An unknown tag can only be a revert-like exchange: finish it and
        // record it as a revert so the trailers pin the result.
        _ => BootAction::Revert,
    }
}

fn read_trailer<F: BootFlash>(flash: &mut F, area: Area) -> Result<Trailer, F::Error> {
    let mut block = [0u8; TRAILER_SIZE];
    flash.read(area, flash.slot_size() - TRAILER_SIZE as u32, &mut block)?;
    // A corrupt trailer counts as erased: it requests nothing.
    Ok(Trailer::decode(&block).unwrap_or(Trailer::ERASED))
}

fn write_trailer<F: BootFlash>(flash: &mut F, area: Area, t: &Trailer) -> Result<(), F::Error> {
    let at = flash.slot_size() - TRAILER_SIZE as u32;
    flash.write(area, at, &t.encode())
}

/// The bytes of a slot's image: as far as its header and TLV info say it
/// goes, or all the slot an image may occupy (all but the last sector) when
/// they cannot say. Either way [`check`] and [`parse`] see the same image —
/// bytes past its TLV area are outside it — but a boot does not read (and
/// allocate) a whole slot of erased flash for a much smaller image.
fn image_area<F: BootFlash>(flash: &mut F, area: Area) -> Result<Vec<u8>, F::Error> {
    let max = (flash.slot_size() - flash.sector_size()) as usize;
    let len = image_extent(flash, area, max)?.unwrap_or(max);
    let mut buf = vec![0u8; len];
    flash.read(area, 0, &mut buf)?;
    Ok(buf)
}

/// Where the image in `area` ends, read from its header and its (last)
/// TLV info; `None` when that does not lie within `max` bytes or there is
/// no valid header — then the caller reads all of it and [`parse`] says why.
fn image_extent<F: BootFlash>(
    flash: &mut F,
    area: Area,
    max: usize,
) -> Result<Option<usize>, F::Error> {
    let mut head = [0u8; IMAGE_HEADER_SIZE];
    if max < IMAGE_HEADER_SIZE {
        return Ok(None);
    }
    flash.read(area, 0, &mut head)?;
    let Ok(header) = ImageHeader::parse(&head) else {
        return Ok(None);
    };
    let info_at = usize::from(header.hdr_size)
        .checked_add(header.img_size as usize)
        .and_then(|n| n.checked_add(usize::from(header.protect_tlv_size)));
    let Some(info_at) = info_at.filter(|at| at.saturating_add(TLV_INFO_SIZE) <= max) else {
        return Ok(None);
    };
    let mut info = [0u8; TLV_INFO_SIZE];
    flash.read(area, info_at as u32, &mut info)?;
    // The info's length counts the info itself (MCUboot's it_tlv_tot).
    let end = info_at + usize::from(u16::from_le_bytes([info[2], info[3]]));
    Ok((end <= max).then_some(end.max(info_at + TLV_INFO_SIZE)))
}

/// Checks an image fully (hash, signature against the built-in keys);
/// returns its length, or why it is not bootable.
fn check(slot: &[u8], keys: &[TrustedKey]) -> Result<usize, String> {
    let image = parse(slot).map_err(|e| e.to_string())?;
    image.check_hash().map_err(|e| e.to_string())?;
    image.check_signature(keys).map_err(|e| e.to_string())?;
    Ok(image.len())
}

/// Power-on: returns what runs, or why nothing can.
pub fn power_on<F: BootFlash>(
    flash: &mut F,
    keys: &[TrustedKey],
    config: BootConfig,
) -> Result<BootReport, BootError<F::Error>> {
    let sector = flash.sector_size() as usize;
    let mut resumed_swap = false;
    let action = if let Some(p) = swap::progress(flash)? {
        // Power was lost mid-swap: finish it before anything else.
        resumed_swap = true;
        swap::run(flash, p)?;
        let action = tag_action(p.tag);
        let (primary, secondary) = (
            read_trailer(flash, Area::Primary)?,
            read_trailer(flash, Area::Secondary)?,
        );
        let (p_new, s_new) = apply_boot_action(action, &primary, &secondary);
        write_trailer(flash, Area::Secondary, &s_new)?;
        write_trailer(flash, Area::Primary, &p_new)?;
        swap::finish(flash)?;
        action
    } else {
        let primary = read_trailer(flash, Area::Primary)?;
        let secondary = read_trailer(flash, Area::Secondary)?;
        // The secondary image is only consulted when the trailers ask for a
        // swap (checking costs a read and a hash of the whole image).
        // `secondary_len`: the secondary image's length when it was checked
        // and is valid.
        let (action, secondary_len) = match boot_decision(&primary, &secondary, true) {
            BootAction::RunPrimary => (BootAction::RunPrimary, None),
            _ => {
                let secondary_image = image_area(flash, Area::Secondary)?;
                let secondary_len = check(&secondary_image, keys).ok();
                let action = boot_decision(&primary, &secondary, secondary_len.is_some());
                (action, secondary_len)
            }
        };
        match action {
            BootAction::RunPrimary => {}
            BootAction::DiscardSecondary => {
                // Erasing the trailer drops the request; the image bytes may stay.
                write_trailer(flash, Area::Secondary, &Trailer::ERASED)?;
            }
            BootAction::SwapTest | BootAction::SwapPermanent | BootAction::Revert => {
                let new_len = secondary_len.expect("boot_decision swaps only a valid image");
                let max = flash.slot_size() as usize - sector;
                if new_len > max {
                    return Err(BootError::ImageTooLarge {
                        slot: "secondary",
                        len: new_len,
                        max,
                    });
                }
                let primary_image = image_area(flash, Area::Primary)?;
                let old_len = parse(&primary_image).map(|i| i.len()).unwrap_or(max);
                let sectors = new_len.max(old_len).div_ceil(sector) as u32;
                let (p_new, s_new) = apply_boot_action(action, &primary, &secondary);
                if config.unsafe_swap {
                    // The fault: consume the request, then overwrite in place.
                    write_trailer(flash, Area::Secondary, &s_new)?;
                    swap::copy_in_place_unsafe(flash, sectors)?;
                    write_trailer(flash, Area::Primary, &p_new)?;
                } else {
                    let p = swap::start(flash, sectors, action_tag(action))?;
                    swap::run(flash, p)?;
                    write_trailer(flash, Area::Secondary, &s_new)?;
                    write_trailer(flash, Area::Primary, &p_new)?;
                    swap::finish(flash)?;
                }
            }
        }
        action
    };
    let primary_image = image_area(flash, Area::Primary)?;
    check(&primary_image, keys)
        .map_err(|why| BootError::NoBootableImage(alloc::format!("primary slot: {why}")))?;
    let image = parse(&primary_image).map_err(|e| BootError::NoBootableImage(e.to_string()))?;
    let trailer = read_trailer(flash, Area::Primary)?;
    let test_boot = matches!(trailer.swap_type(), crate::image::trailer::SwapType::Test)
        && trailer.image_ok_flag() != crate::image::trailer::Flag::Set;
    let payload_offset = u32::from(image.header().hdr_size);
    Ok(BootReport {
        action,
        resumed_swap,
        version: image.version(),
        security_counter: image.security_counter().unwrap_or(0),
        test_boot,
        payload_offset,
        payload_len: image.payload().len() as u32,
    })
}

/// The running image confirms itself (sets image_ok in the primary trailer).
pub fn confirm<F: BootFlash>(flash: &mut F) -> Result<(), F::Error> {
    let t = read_trailer(flash, Area::Primary)?;
    if let Ok(c) = crate::image::trailer::confirm(&t) {
        if c != t {
            write_trailer(flash, Area::Primary, &c)?;
        }
    }
    Ok(())
}

/// Marks the (already written) secondary image for a test boot.
pub fn request_test<F: BootFlash>(flash: &mut F) -> Result<(), F::Error> {
    let t = read_trailer(flash, Area::Secondary)?;
    let new = crate::image::trailer::request_test(&t).unwrap_or_else(|_| {
        // A corrupt trailer: start from erased.
        crate::image::trailer::request_test(&Trailer::ERASED)
            .expect("erased trailer accepts a request")
    });
    write_trailer(flash, Area::Secondary, &new)
}

#[cfg(test)]
mod tests;
