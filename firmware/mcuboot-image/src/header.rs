//! The 32-byte MCUboot image header (`struct image_header` in
//! `bootutil/image.h`), always little-endian here, as imgtool writes it by
//! default and as every little-endian MCU reads it.

use core::fmt;

use crate::error::ParseError;

/// `IMAGE_MAGIC`: first word of every image.
pub const IMAGE_MAGIC: u32 = 0x96f3_b83d;
/// Size of the fixed header fields. `hdr_size` may be larger (imgtool
/// `--header-size 0x200 --pad-header`), the rest being padding.
pub const IMAGE_HEADER_SIZE: usize = 32;
/// `hdr_size` must be a multiple of this. MCUboot itself does not check it,
/// but the payload (a vector table on Cortex-M) starts right after the
/// header, and a header size that is not word-aligned is never produced by
/// imgtool's tooling and only shows up in corrupted or hostile images.
pub const HEADER_SIZE_ALIGN: u16 = 4;

/// Image header flag: position-independent code.
pub const IMAGE_F_PIC: u32 = 0x0000_0001;
/// Image header flag: payload is AES-128 encrypted.
pub const IMAGE_F_ENCRYPTED_AES128: u32 = 0x0000_0004;
/// Image header flag: payload is AES-256 encrypted.
pub const IMAGE_F_ENCRYPTED_AES256: u32 = 0x0000_0008;
/// Image header flag: not bootable (e.g. a data image).
pub const IMAGE_F_NON_BOOTABLE: u32 = 0x0000_0010;
/// Image header flag: load into RAM at `load_addr` (imgtool sets it whenever
/// `--load-addr` is non-zero).
pub const IMAGE_F_RAM_LOAD: u32 = 0x0000_0020;
/// Image header flag: image runs from a fixed ROM address (`load_addr`).
pub const IMAGE_F_ROM_FIXED: u32 = 0x0000_0100;

/// Image version `major.minor.revision+build_num` (`struct image_version`).
///
/// The derived ordering compares major, minor, revision then build number,
/// which is MCUboot's ordering with `MCUBOOT_VERSION_CMP_USE_BUILD_NUMBER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ImageVersion {
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Revision.
    pub revision: u16,
    /// Build number.
    pub build_num: u32,
}

impl ImageVersion {
    /// A version from its four parts.
    pub const fn new(major: u8, minor: u8, revision: u16, build_num: u32) -> Self {
        Self {
            major,
            minor,
            revision,
            build_num,
        }
    }
}

/// Formats as imgtool prints it: `1.2.3+4`.
impl fmt::Display for ImageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}+{}",
            self.major, self.minor, self.revision, self.build_num
        )
    }
}

/// The decoded image header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// `ih_load_addr`: RAM load address (only meaningful with
    /// [`IMAGE_F_RAM_LOAD`] / [`IMAGE_F_ROM_FIXED`]).
    pub load_addr: u32,
    /// `ih_hdr_size`: bytes from the image start to the payload.
    pub hdr_size: u16,
    /// `ih_protect_tlv_size`: size of the protected TLV area including its
    /// 4-byte info header, 0 if there is none.
    pub protect_tlv_size: u16,
    /// `ih_img_size`: payload size in bytes.
    pub img_size: u32,
    /// `ih_flags`: `IMAGE_F_*` bits, kept raw (unknown bits are not errors,
    /// as in MCUboot).
    pub flags: u32,
    /// `ih_ver`.
    pub version: ImageVersion,
}

fn le_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn le_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

impl ImageHeader {
    /// Decodes and sanity-checks the header at the start of `data`.
    ///
    /// Checks only what the header alone can tell (magic, header size);
    /// whether `img_size` fits in `data` is checked by [`crate::parse`].
    pub fn parse(data: &[u8]) -> Result<Self, ParseError> {
        if data.len() < IMAGE_HEADER_SIZE {
            return Err(ParseError::Truncated {
                what: "image header",
                offset: 0,
                needed: IMAGE_HEADER_SIZE,
                available: data.len(),
            });
        }
        let magic = le_u32(data, 0);
        if magic != IMAGE_MAGIC {
            return Err(ParseError::BadImageMagic { found: magic });
        }
        let hdr_size = le_u16(data, 8);
        if usize::from(hdr_size) < IMAGE_HEADER_SIZE {
            return Err(ParseError::HeaderTooSmall { hdr_size });
        }
        if hdr_size % HEADER_SIZE_ALIGN != 0 {
            return Err(ParseError::HeaderUnaligned { hdr_size });
        }
        Ok(Self {
            load_addr: le_u32(data, 4),
            hdr_size,
            protect_tlv_size: le_u16(data, 10),
            img_size: le_u32(data, 12),
            flags: le_u32(data, 16),
            version: ImageVersion {
                major: data[20],
                minor: data[21],
                revision: le_u16(data, 22),
                build_num: le_u32(data, 24),
            },
        })
    }

    /// Encodes the 32 fixed header bytes (the `_pad1` word is zero, as
    /// imgtool writes it).
    pub fn to_bytes(&self) -> [u8; IMAGE_HEADER_SIZE] {
        let mut out = [0u8; IMAGE_HEADER_SIZE];
        out[0..4].copy_from_slice(&IMAGE_MAGIC.to_le_bytes());
        out[4..8].copy_from_slice(&self.load_addr.to_le_bytes());
        out[8..10].copy_from_slice(&self.hdr_size.to_le_bytes());
        out[10..12].copy_from_slice(&self.protect_tlv_size.to_le_bytes());
        out[12..16].copy_from_slice(&self.img_size.to_le_bytes());
        out[16..20].copy_from_slice(&self.flags.to_le_bytes());
        out[20] = self.version.major;
        out[21] = self.version.minor;
        out[22..24].copy_from_slice(&self.version.revision.to_le_bytes());
        out[24..28].copy_from_slice(&self.version.build_num.to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ImageHeader {
        ImageHeader {
            load_addr: 0x2000_0000,
            hdr_size: 0x200,
            protect_tlv_size: 12,
            img_size: 1234,
            flags: IMAGE_F_RAM_LOAD,
            version: ImageVersion::new(1, 2, 3, 4),
        }
    }

    #[test]
    fn roundtrip() {
        let h = sample();
        assert_eq!(ImageHeader::parse(&h.to_bytes()).unwrap(), h);
    }

    #[test]
    fn version_display_and_order() {
        assert_eq!(ImageVersion::new(1, 2, 3, 4).to_string(), "1.2.3+4");
        assert!(ImageVersion::new(1, 2, 3, 4) < ImageVersion::new(1, 2, 3, 5));
        assert!(ImageVersion::new(1, 3, 0, 0) > ImageVersion::new(1, 2, 65535, 9));
    }

    #[test]
    fn rejects_bad_header_fields() {
        let good = sample().to_bytes();
        assert!(matches!(
            ImageHeader::parse(&good[..31]),
            Err(ParseError::Truncated {
                needed: 32,
                available: 31,
                ..
            })
        ));
        let mut b = good;
        b[0] ^= 1;
        assert!(matches!(
            ImageHeader::parse(&b),
            Err(ParseError::BadImageMagic { .. })
        ));
        let mut b = good;
        b[8..10].copy_from_slice(&16u16.to_le_bytes());
        assert_eq!(
            ImageHeader::parse(&b),
            Err(ParseError::HeaderTooSmall { hdr_size: 16 })
        );
        let mut b = good;
        b[8..10].copy_from_slice(&34u16.to_le_bytes());
        assert_eq!(
            ImageHeader::parse(&b),
            Err(ParseError::HeaderUnaligned { hdr_size: 34 })
        );
    }
}
