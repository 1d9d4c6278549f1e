//! Type-length-value areas that follow the payload.
//!
//! Layout after `hdr_size + img_size` (all little-endian):
//!
//! ```text
//! [protected area, iff protect_tlv_size != 0]
//!   u16 magic 0x6908 | u16 tlv_tot (= protect_tlv_size, includes these 4 bytes)
//!   entries: u16 type | u16 len | len bytes
//! [unprotected area, always]
//!   u16 magic 0x6907 | u16 tlv_tot (includes these 4 bytes)
//!   entries: u16 type | u16 len | len bytes
//! ```
//!
//! imgtool packs the type as `u8 type, u8 0` for the standard TLVs, which
//! reads as the same little-endian `u16`; MCUboot reads it as `u16`.

use crate::error::ParseError;

/// Info magic of the unprotected TLV area (`IMAGE_TLV_INFO_MAGIC`).
pub const TLV_INFO_MAGIC: u16 = 0x6907;
/// Info magic of the protected TLV area (`IMAGE_TLV_PROT_INFO_MAGIC`).
pub const TLV_PROT_INFO_MAGIC: u16 = 0x6908;
/// Size of a TLV area's info header, and of a TLV entry's header.
pub const TLV_INFO_SIZE: usize = 4;

/// SHA-256 of the public key (its DER SubjectPublicKeyInfo) that signed.
pub const TLV_KEYHASH: u16 = 0x01;
/// The public key itself (imgtool `--public-key-format full`).
pub const TLV_PUBKEY: u16 = 0x02;
/// SHA-256 over header, payload and protected TLV area.
pub const TLV_SHA256: u16 = 0x10;
/// SHA-384 hash (not supported for verification here).
pub const TLV_SHA384: u16 = 0x11;
/// SHA-512 hash (not supported for verification here).
pub const TLV_SHA512: u16 = 0x12;
/// RSA-2048 signature (not supported here).
pub const TLV_RSA2048_PSS: u16 = 0x20;
/// ECDSA signature, DER-encoded, possibly zero-padded (imgtool `ECDSASIG`,
/// MCUboot `IMAGE_TLV_ECDSA_SIG`, formerly `IMAGE_TLV_ECDSA256`; 0x21 was
/// the removed ECDSA224).
pub const TLV_ECDSA_SIG: u16 = 0x22;
/// RSA-3072 signature (not supported here).
pub const TLV_RSA3072_PSS: u16 = 0x23;
/// Ed25519 signature (64 bytes).
pub const TLV_ED25519: u16 = 0x24;
/// imgtool `--pure`: the signature covers the image, not its digest.
pub const TLV_SIG_PURE: u16 = 0x25;
/// Security counter (`u32`), protected.
pub const TLV_SEC_CNT: u16 = 0x50;

/// Lowest vendor (custom) TLV tag imgtool's `--custom-tlv` accepts.
pub const TLV_VENDOR_MIN: u16 = 0xa0;
/// Highest vendor (custom) TLV tag.
pub const TLV_VENDOR_MAX: u16 = 0xfffe;
/// sacbench's board identity, a protected vendor TLV: the UTF-8 name of
/// the board the image is built for (`imgtool sign --custom-tlv 0xa0
/// <hex of the name>`). A device refuses an image naming another board
/// (docs/device-contract.md, "Firmware update").
pub const TLV_BOARD: u16 = 0xa0;

/// Length of SHA256 and KEYHASH values.
pub const SHA256_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const ED25519_SIG_LEN: usize = 64;
/// Longest DER ECDSA P-256 signature; imgtool's padding pads to it.
pub const ECDSA_P256_SIG_MAX_LEN: usize = 72;

/// TLVs that may only be in the unprotected area, and that area holds
/// nothing else: what MCUboot's `allowed_unprot_tlvs` lists (hashes, key ids,
/// signatures, encrypted keys 0x30..=0x34). Everything else must be covered
/// by the hash, or an attacker could add or change it without breaking it.
pub(crate) fn unprotected_only(tlv_type: u16) -> bool {
    matches!(
        tlv_type,
        TLV_KEYHASH
            | TLV_PUBKEY
            | TLV_SHA256
            | TLV_SHA384
            | TLV_SHA512
            | TLV_RSA2048_PSS
            | TLV_ECDSA_SIG
            | TLV_RSA3072_PSS
            | TLV_ED25519
            | TLV_SIG_PURE
            | 0x30..=0x34
    )
}

/// One TLV entry of a parsed image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// Entry type (`TLV_*`).
    pub tlv_type: u16,
    /// Entry value.
    pub value: &'a [u8],
    /// Offset of the entry header in the image.
    pub offset: usize,
    /// Whether the entry is in the protected (hashed) area.
    pub protected: bool,
}

/// Reads the entry at `pos`, which must end by `end` (the end of its area).
pub(crate) fn read_entry(
    data: &[u8],
    pos: usize,
    end: usize,
    protected: bool,
) -> Result<Tlv<'_>, ParseError> {
    // `end <= data.len()` is guaranteed by the callers, so bounding by `end`
    // also bounds every slice below.
    let head = data
        .get(pos..pos.saturating_add(TLV_INFO_SIZE))
        .filter(|_| pos.saturating_add(TLV_INFO_SIZE) <= end);
    let Some(head) = head else {
        return Err(ParseError::TlvPastArea {
            offset: pos,
            // The type may itself be cut off; report the byte(s) we have.
            tlv_type: data.get(pos).copied().map_or(0, u16::from),
            area_end: end,
        });
    };
    let tlv_type = u16::from_le_bytes([head[0], head[1]]);
    let len = usize::from(u16::from_le_bytes([head[2], head[3]]));
    let start = pos + TLV_INFO_SIZE;
    if start + len > end {
        return Err(ParseError::TlvPastArea {
            offset: pos,
            tlv_type,
            area_end: end,
        });
    }
    Ok(Tlv {
        tlv_type,
        value: &data[start..start + len],
        offset: pos,
        protected,
    })
}

/// Iterator over the TLV entries of a parsed [`crate::Image`], protected area
/// first. The areas were validated by [`crate::parse`], so it cannot fail.
#[derive(Debug, Clone)]
pub struct TlvIter<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) pos: usize,
    pub(crate) end: usize,
    pub(crate) protected: bool,
    /// Entries range of the unprotected area, walked after the protected one.
    pub(crate) next: Option<(usize, usize)>,
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = Tlv<'a>;

    fn next(&mut self) -> Option<Tlv<'a>> {
        loop {
            if self.pos < self.end {
                // Validated at parse time; on the impossible error just stop.
                let tlv = read_entry(self.data, self.pos, self.end, self.protected).ok()?;
                self.pos = tlv.offset + TLV_INFO_SIZE + tlv.value.len();
                return Some(tlv);
            }
            let (pos, end) = self.next.take()?;
            self.pos = pos;
            self.end = end;
            self.protected = false;
        }
    }
}
