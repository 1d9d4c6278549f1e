//! [`parse`]: bounds-checked decoding of a whole image into an [`Image`].

use crate::error::ParseError;
use crate::header::ImageHeader;
use crate::tlv::{self, Tlv, TlvIter, TLV_INFO_SIZE};

/// How the image names the key that signed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyId<'a> {
    /// KEYHASH TLV: SHA-256 of the key's DER SubjectPublicKeyInfo.
    Hash(&'a [u8; 32]),
    /// PUBKEY TLV: the DER SubjectPublicKeyInfo itself.
    PublicKey(&'a [u8]),
}

/// A parsed image, borrowing the bytes it was parsed from.
///
/// Parsing checks structure only; nothing here is trusted before
/// [`Image::check_hash`] and [`Image::check_signature`] (or
/// [`Image::verify`]) succeed.
#[derive(Debug, Clone)]
pub struct Image<'a> {
    /// Exactly the image: header through the end of the unprotected TLVs.
    pub(crate) data: &'a [u8],
    pub(crate) header: ImageHeader,
    /// End of the payload = start of the TLV areas.
    pub(crate) payload_end: usize,
    /// End of the protected area = end of the hashed region.
    pub(crate) protected_end: usize,
    pub(crate) hash: &'a [u8; 32],
    pub(crate) key_id: Option<KeyId<'a>>,
    pub(crate) ed25519_sig: Option<&'a [u8]>,
    pub(crate) ecdsa_sig: Option<&'a [u8]>,
    pub(crate) sig_pure: bool,
    pub(crate) security_counter: Option<u32>,
}

/// Converts an end offset to `usize`, refusing anything past `u32` (MCUboot
/// computes offsets in `uint32_t`, and an image must fit in a flash slot).
fn end_offset(start: usize, len: usize, what: &'static str) -> Result<usize, ParseError> {
    let end = start as u64 + len as u64;
    if end > u64::from(u32::MAX) {
        return Err(ParseError::SizeOverflow { what });
    }
    Ok(end as usize)
}

/// Reads a TLV info header (`magic`, `tlv_tot`) at `offset`.
fn read_info(data: &[u8], offset: usize, what: &'static str) -> Result<(u16, u16), ParseError> {
    match data.get(offset..offset.saturating_add(TLV_INFO_SIZE)) {
        Some(b) => Ok((
            u16::from_le_bytes([b[0], b[1]]),
            u16::from_le_bytes([b[2], b[3]]),
        )),
        None => Err(ParseError::Truncated {
            what,
            offset,
            needed: TLV_INFO_SIZE,
            available: data.len().saturating_sub(offset),
        }),
    }
}

/// Checks that the area `offset .. offset + tot` lies within `data`.
fn area_end(data: &[u8], offset: usize, tot: u16, what: &'static str) -> Result<usize, ParseError> {
    if usize::from(tot) < TLV_INFO_SIZE {
        return Err(ParseError::TlvInfoTooSmall {
            offset,
            tlv_tot: tot,
        });
    }
    let end = end_offset(offset, usize::from(tot), what)?;
    if end > data.len() {
        return Err(ParseError::Truncated {
            what,
            offset,
            needed: usize::from(tot),
            available: data.len() - offset,
        });
    }
    Ok(end)
}

/// Parses an image at the start of `data`.
///
/// `data` may extend past the image: bytes after the unprotected TLV area
/// are ignored, because an image is normally read from a flash slot that
/// goes on with erased flash and the slot trailer (imgtool `--pad` output,
/// too). They are outside everything MCUboot hashes or signs; use
/// [`Image::len`] to know where the image ends.
///
/// Never panics, whatever `data` holds.
pub fn parse(data: &[u8]) -> Result<Image<'_>, ParseError> {
    let header = ImageHeader::parse(data)?;
    let hdr_size = usize::from(header.hdr_size);
    if hdr_size > data.len() {
        return Err(ParseError::Truncated {
            what: "image header",
            offset: 0,
            needed: hdr_size,
            available: data.len(),
        });
    }
    let payload_end = end_offset(hdr_size, header.img_size as usize, "header + image size")?;
    if payload_end > data.len() {
        return Err(ParseError::Truncated {
            what: "payload",
            offset: hdr_size,
            needed: header.img_size as usize,
            available: data.len() - hdr_size,
        });
    }

    // Protected area: present iff the header says so, and then of exactly
    // the size it says (MCUboot's bootutil_tlv_iter_begin checks the same).
    let mut protected_end = payload_end;
    let mut protected_range = None;
    if header.protect_tlv_size != 0 {
        let (magic, tot) = read_info(data, payload_end, "protected TLV info")?;
        if magic != tlv::TLV_PROT_INFO_MAGIC {
            return Err(ParseError::BadTlvInfoMagic {
                offset: payload_end,
                expected: tlv::TLV_PROT_INFO_MAGIC,
                found: magic,
            });
        }
        if tot != header.protect_tlv_size {
            return Err(ParseError::ProtectedTlvSizeMismatch {
                offset: payload_end,
                header: header.protect_tlv_size,
                info: tot,
            });
        }
        protected_end = area_end(data, payload_end, tot, "protected TLV area")?;
        protected_range = Some((payload_end + TLV_INFO_SIZE, protected_end));
    } else if let Ok((tlv::TLV_PROT_INFO_MAGIC, tot)) =
        read_info(data, payload_end, "protected TLV info")
    {
        // A protected area the header does not account for would be left
        // out of the hash by MCUboot: refuse it rather than guess.
        return Err(ParseError::ProtectedTlvSizeMismatch {
            offset: payload_end,
            header: 0,
            info: tot,
        });
    }

    let (magic, tot) = read_info(data, protected_end, "TLV info")?;
    if magic != tlv::TLV_INFO_MAGIC {
        return Err(ParseError::BadTlvInfoMagic {
            offset: protected_end,
            expected: tlv::TLV_INFO_MAGIC,
            found: magic,
        });
    }
    let image_end = area_end(data, protected_end, tot, "TLV area")?;
    let data = &data[..image_end];

    let mut found = Found::default();
    if let Some((start, end)) = protected_range {
        walk(data, start, end, true, &mut found)?;
    }
    walk(
        data,
        protected_end + TLV_INFO_SIZE,
        image_end,
        false,
        &mut found,
    )?;

    let hash = found.hash.ok_or(ParseError::MissingHash)?;
    Ok(Image {
        data,
        header,
        payload_end,
        protected_end,
        hash,
        key_id: found.key_id,
        ed25519_sig: found.ed25519,
        ecdsa_sig: found.ecdsa,
        sig_pure: found.sig_pure,
        security_counter: found.sec_cnt,
    })
}

/// The TLVs this crate interprets, collected while walking the areas.
#[derive(Default)]
struct Found<'a> {
    hash: Option<&'a [u8; 32]>,
    key_id: Option<KeyId<'a>>,
    ed25519: Option<&'a [u8]>,
    ecdsa: Option<&'a [u8]>,
    sig_pure: bool,
    sec_cnt: Option<u32>,
}

/// Stores `value` in `slot`, refusing a second occurrence.
fn once<T>(slot: &mut Option<T>, value: T, t: &Tlv<'_>) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(ParseError::DuplicateTlv {
            offset: t.offset,
            tlv_type: t.tlv_type,
        });
    }
    *slot = Some(value);
    Ok(())
}

fn walk<'a>(
    data: &'a [u8],
    mut pos: usize,
    end: usize,
    protected: bool,
    found: &mut Found<'a>,
) -> Result<(), ParseError> {
    while pos < end {
        let t = tlv::read_entry(data, pos, end, protected)?;
        pos = t.offset + TLV_INFO_SIZE + t.value.len();
        if tlv::unprotected_only(t.tlv_type) == protected {
            return Err(ParseError::TlvNotAllowed {
                offset: t.offset,
                tlv_type: t.tlv_type,
                protected,
            });
        }
        let bad_len = || ParseError::BadTlvLength {
            offset: t.offset,
            tlv_type: t.tlv_type,
            len: t.value.len() as u16,
        };
        match t.tlv_type {
            tlv::TLV_SHA256 => {
                let h = <&[u8; 32]>::try_from(t.value).map_err(|_| bad_len())?;
                once(&mut found.hash, h, &t)?;
            }
            tlv::TLV_KEYHASH => {
                let h = <&[u8; 32]>::try_from(t.value).map_err(|_| bad_len())?;
                // One key id per image, whichever form: two would leave it
                // ambiguous which key the image claims.
                once(&mut found.key_id, KeyId::Hash(h), &t)?;
            }
            tlv::TLV_PUBKEY => {
                if t.value.is_empty() {
                    return Err(bad_len());
                }
                once(&mut found.key_id, KeyId::PublicKey(t.value), &t)?;
            }
            tlv::TLV_ED25519 => {
                if t.value.len() != tlv::ED25519_SIG_LEN {
                    return Err(bad_len());
                }
                once(&mut found.ed25519, t.value, &t)?;
            }
            tlv::TLV_ECDSA_SIG => {
                // Shortest DER P-256 signature: SEQUENCE of two 1-byte INTEGERs.
                if !(8..=tlv::ECDSA_P256_SIG_MAX_LEN).contains(&t.value.len()) {
                    return Err(bad_len());
                }
                once(&mut found.ecdsa, t.value, &t)?;
            }
            tlv::TLV_SIG_PURE => {
                let mut seen = found.sig_pure.then_some(());
                once(&mut seen, (), &t)?;
                found.sig_pure = true;
            }
            tlv::TLV_SEC_CNT => {
                let v = <[u8; 4]>::try_from(t.value).map_err(|_| bad_len())?;
                once(&mut found.sec_cnt, u32::from_le_bytes(v), &t)?;
            }
            // Other types (dependencies, boot record, vendor TLVs...) are
            // structurally valid and listed by `Image::tlvs`, not interpreted.
            _ => {}
        }
    }
    Ok(())
}

impl<'a> Image<'a> {
    /// The decoded header.
    pub fn header(&self) -> &ImageHeader {
        &self.header
    }

    /// The image version from the header.
    pub fn version(&self) -> crate::ImageVersion {
        self.header.version
    }

    /// The payload (the firmware proper): `img_size` bytes after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.data[usize::from(self.header.hdr_size)..self.payload_end]
    }

    /// The bytes the SHA256 TLV covers: header, payload, protected TLVs.
    pub fn hashed_region(&self) -> &'a [u8] {
        &self.data[..self.protected_end]
    }

    /// The whole image, header through the end of the unprotected TLVs.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.data
    }

    /// Image length in bytes (anything after it in the input was ignored).
    #[allow(clippy::len_without_is_empty)] // an image is never empty
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// The security counter from the protected SEC_CNT TLV, if any.
    /// An unprotected SEC_CNT is a parse error, so this value is hashed.
    pub fn security_counter(&self) -> Option<u32> {
        self.security_counter
    }

    /// The SHA256 TLV value (the claimed hash, not yet checked).
    pub fn hash_tlv(&self) -> &'a [u8; 32] {
        self.hash
    }

    /// How the image names its signing key (KEYHASH or PUBKEY TLV).
    pub fn key_id(&self) -> Option<KeyId<'a>> {
        self.key_id
    }

    /// All TLV entries, protected area first, in image order.
    pub fn tlvs(&self) -> TlvIter<'a> {
        let unprotected = (self.protected_end + TLV_INFO_SIZE, self.data.len());
        if self.protected_end > self.payload_end {
            TlvIter {
                data: self.data,
                pos: self.payload_end + TLV_INFO_SIZE,
                end: self.protected_end,
                protected: true,
                next: Some(unprotected),
            }
        } else {
            TlvIter {
                data: self.data,
                pos: unprotected.0,
                end: unprotected.1,
                protected: false,
                next: None,
            }
        }
    }
}
