//! Error types. Every parse error says what is wrong and at which byte
//! offset of the image, so a bench report can point at the corruption.

use core::fmt;

/// Why [`crate::parse`] rejected an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The input ends before a structure does: `what` needs `needed` bytes
    /// from `offset` but only `available` are there.
    Truncated {
        /// The structure being read.
        what: &'static str,
        /// Where it starts.
        offset: usize,
        /// How many bytes it needs from `offset`.
        needed: usize,
        /// How many bytes the input has from `offset`.
        available: usize,
    },
    /// The first word is not [`crate::IMAGE_MAGIC`].
    BadImageMagic {
        /// The word found at offset 0.
        found: u32,
    },
    /// `hdr_size` (offset 8) is below the 32 bytes of the fixed header.
    HeaderTooSmall {
        /// The value found.
        hdr_size: u16,
    },
    /// `hdr_size` (offset 8) is not a multiple of
    /// [`crate::header::HEADER_SIZE_ALIGN`].
    HeaderUnaligned {
        /// The value found.
        hdr_size: u16,
    },
    /// An end offset computed from header/TLV sizes does not fit in 32 bits
    /// (MCUboot does this arithmetic in `uint32_t`; a wrap-around there is a
    /// classic bootloader bug, so it is rejected rather than wrapped).
    SizeOverflow {
        /// The quantity that overflowed.
        what: &'static str,
    },
    /// A TLV area does not start with its info magic.
    BadTlvInfoMagic {
        /// Offset of the info header.
        offset: usize,
        /// The magic expected there (0x6908 protected, 0x6907 unprotected).
        expected: u16,
        /// The magic found.
        found: u16,
    },
    /// The header's `protect_tlv_size` disagrees with the protected TLV
    /// area (its info header's `tlv_tot`, or its presence).
    ProtectedTlvSizeMismatch {
        /// Offset of the TLV info header.
        offset: usize,
        /// `protect_tlv_size` from the image header.
        header: u16,
        /// `tlv_tot` of the protected info header (0 if there is none).
        info: u16,
    },
    /// A TLV info header's `tlv_tot` is below its own 4 bytes.
    TlvInfoTooSmall {
        /// Offset of the info header.
        offset: usize,
        /// The `tlv_tot` found.
        tlv_tot: u16,
    },
    /// A TLV entry (header or value) runs past the end of its area.
    TlvPastArea {
        /// Offset of the entry.
        offset: usize,
        /// Its type.
        tlv_type: u16,
        /// Offset where the area ends.
        area_end: usize,
    },
    /// A TLV of known type has the wrong length.
    BadTlvLength {
        /// Offset of the entry.
        offset: usize,
        /// Its type.
        tlv_type: u16,
        /// Its length field.
        len: u16,
    },
    /// A TLV that may appear once appears again.
    DuplicateTlv {
        /// Offset of the second occurrence.
        offset: usize,
        /// Its type.
        tlv_type: u16,
    },
    /// A TLV is in the wrong area: anything but hashes, key ids and
    /// signatures in the unprotected area (which the hash does not cover, so
    /// it could be swapped freely), as MCUboot's `allowed_unprot_tlvs`; or
    /// hash/key/signature TLVs in the protected area, where imgtool never puts
    /// them.
    TlvNotAllowed {
        /// Offset of the entry.
        offset: usize,
        /// Its type.
        tlv_type: u16,
        /// Whether it was found in the protected area.
        protected: bool,
    },
    /// There is no SHA-256 TLV (MCUboot refuses such images).
    MissingHash,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated {
                what,
                offset,
                needed,
                available,
            } => write!(
                f,
                "truncated {what} at offset {offset:#x}: needs {needed} bytes, {available} available"
            ),
            Self::BadImageMagic { found } => {
                write!(f, "bad image magic at offset 0: {found:#010x}, expected 0x96f3b83d")
            }
            Self::HeaderTooSmall { hdr_size } => {
                write!(f, "header size {hdr_size:#x} (offset 8) is below 32")
            }
            Self::HeaderUnaligned { hdr_size } => write!(
                f,
                "header size {hdr_size:#x} (offset 8) is not a multiple of 4"
            ),
            Self::SizeOverflow { what } => write!(f, "{what} overflows 32 bits"),
            Self::BadTlvInfoMagic {
                offset,
                expected,
                found,
            } => write!(
                f,
                "bad TLV info magic at offset {offset:#x}: {found:#06x}, expected {expected:#06x}"
            ),
            Self::ProtectedTlvSizeMismatch {
                offset,
                header,
                info,
            } => write!(
                f,
                "protected TLV size mismatch at offset {offset:#x}: header says {header}, TLV info says {info}"
            ),
            Self::TlvInfoTooSmall { offset, tlv_tot } => write!(
                f,
                "TLV info at offset {offset:#x} has total size {tlv_tot}, below its own 4 bytes"
            ),
            Self::TlvPastArea {
                offset,
                tlv_type,
                area_end,
            } => write!(
                f,
                "TLV {tlv_type:#x} at offset {offset:#x} runs past the end of its area at {area_end:#x}"
            ),
            Self::BadTlvLength {
                offset,
                tlv_type,
                len,
            } => write!(
                f,
                "TLV {tlv_type:#x} at offset {offset:#x} has invalid length {len}"
            ),
            Self::DuplicateTlv { offset, tlv_type } => {
                write!(f, "duplicate TLV {tlv_type:#x} at offset {offset:#x}")
            }
            Self::TlvNotAllowed {
                offset,
                tlv_type,
                protected,
            } => write!(
                f,
                "TLV {tlv_type:#x} at offset {offset:#x} is not allowed in the {} area",
                if protected { "protected" } else { "unprotected" }
            ),
            Self::MissingHash => write!(f, "image has no SHA-256 TLV"),
        }
    }
}

impl core::error::Error for ParseError {}

/// Why a verification check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// The SHA-256 over header, payload and protected TLVs differs from the
    /// SHA256 TLV.
    HashMismatch,
    /// The image names no key: neither a KEYHASH nor a PUBKEY TLV.
    NoKeyId,
    /// No trusted key has the hash named by the image's KEYHASH (or PUBKEY).
    UnknownKey,
    /// The image has no signature TLV for the selected key's algorithm.
    MissingSignature {
        /// The selected key's algorithm.
        key_type: crate::KeyType,
    },
    /// The signature TLV cannot be decoded (bad DER, wrong length).
    MalformedSignature,
    /// The signature does not verify with the selected key.
    BadSignature,
    /// The image asks for a signature scheme this crate does not implement
    /// (imgtool `--pure`, whose SIG_PURE TLV signs the image itself).
    UnsupportedSignature,
    /// The image has no SEC_CNT TLV in its protected area.
    MissingSecurityCounter,
    /// The image's security counter is below the device's minimum
    /// (a rollback attempt).
    SecurityCounterTooLow {
        /// The image's counter.
        counter: u32,
        /// The minimum the caller required.
        min: u32,
    },
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::HashMismatch => write!(f, "image hash mismatch"),
            Self::NoKeyId => write!(f, "image has neither a KEYHASH nor a PUBKEY TLV"),
            Self::UnknownKey => write!(f, "image is signed with a key that is not trusted"),
            Self::MissingSignature { key_type } => {
                write!(f, "image has no {key_type:?} signature TLV")
            }
            Self::MalformedSignature => write!(f, "malformed signature TLV"),
            Self::BadSignature => write!(f, "signature does not verify"),
            Self::UnsupportedSignature => write!(f, "unsupported signature scheme (pure)"),
            Self::MissingSecurityCounter => write!(f, "image has no protected SEC_CNT TLV"),
            Self::SecurityCounterTooLow { counter, min } => {
                write!(f, "security counter {counter} is below the minimum {min}")
            }
        }
    }
}

impl core::error::Error for VerifyError {}

/// Why a public key could not be loaded as a [`crate::TrustedKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The input is not a DER SubjectPublicKeyInfo (or not PEM of one).
    Malformed,
    /// The algorithm is neither Ed25519 nor ECDSA on P-256.
    UnsupportedAlgorithm,
    /// The algorithm is supported but the key bytes are not a valid key.
    InvalidKey,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => write!(f, "not a SubjectPublicKeyInfo"),
            Self::UnsupportedAlgorithm => write!(f, "key is neither Ed25519 nor ECDSA P-256"),
            Self::InvalidKey => write!(f, "invalid public key"),
        }
    }
}

impl core::error::Error for KeyError {}
