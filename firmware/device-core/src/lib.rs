//! The reference device's logic, sans-IO: every decision the device makes,
//! with no sockets, files or clocks. The emulated board
//! (`firmware/device-native`) and a real board's firmware are thin shells
//! around it.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub use mcuboot_image as image;

pub mod backoff;
pub mod boot;
pub mod device;
pub mod faults;
pub mod keystore;
pub mod ota;
pub mod rotation;
pub mod session;
pub mod store;
