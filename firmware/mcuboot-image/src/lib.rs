//! The MCUboot image format, as the reference device's bootloader and OTA
//! code use it: `#![no_std]` (verification needs no allocator either), no
//! unsafe code, sans-IO (pure functions over byte slices).
//!
//! - [`parse`] decodes an image (header, payload, protected and unprotected
//!   TLV areas) with every offset bounds-checked; it never panics.
//! - [`Image::check_hash`], [`Image::check_signature`] and
//!   [`Image::check_security_counter`] are separate checks, so a caller (such
//!   as a firmware with fault-injection switches) decides which to run;
//!   [`Image::verify`] runs all three.
//! - [`trailer`] encodes the slot trailer and MCUboot's swap-mode boot
//!   decision.
//! - With the `std` feature, [`sign()`] builds signed images (host tooling).
//!
//! Compatibility is with imgtool (MCUboot's signing tool) and MCUboot:
//! little-endian images, SHA-256 hashes, Ed25519 and ECDSA P-256 signatures
//! named by a KEYHASH TLV. The integration tests run the real `imgtool`
//! both ways.
//!
//! ```
//! # fn demo(bytes: &[u8], keys: &[mcuboot_image::TrustedKey]) -> Result<(), Box<dyn std::error::Error>> {
//! let image = mcuboot_image::parse(bytes)?;
//! image.check_hash()?;
//! image.check_signature(keys)?;
//! let counter = image.check_security_counter(5)?;
//! let (version, payload) = (image.version(), image.payload());
//! # let _ = (counter, version, payload); Ok(()) }
//! ```
//!
//! # `no_std`
//!
//! Without features, no dependency's `std` feature is enabled (checked with
//! `cargo tree -p mcuboot-image -e normal -f '{p} [{f}]' --prefix none`,
//! which lists each dependency's enabled features: no `std` among them;
//! with `--features std` they appear). A plain `cargo tree -e features`
//! does show `std` features, but only through host-side edges: the
//! dev-dependency on this crate with `std` (the tests sign images),
//! `tempfile`, and `semver` (a build-script dependency of
//! `curve25519-dalek`); none of them is linked into the library. The `std`
//! feature adds [`mod@sign`], [`TrustedKey::from_pem`] and the OS random
//! generator for key generation.

#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod header;
mod image;
#[cfg(feature = "std")]
pub mod sign;
pub mod tlv;
pub mod trailer;
mod verify;

pub use error::{KeyError, ParseError, VerifyError};
pub use header::{ImageHeader, ImageVersion, IMAGE_MAGIC};
pub use image::{parse, Image, KeyId};
#[cfg(feature = "std")]
pub use sign::{sign, PadTrailer, SignError, SignOptions, SigningKey};
pub use verify::{KeyType, TrustedKey};
