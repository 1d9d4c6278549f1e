//! Fixture hub for sacbench.
#![forbid(unsafe_code)]

pub mod clock;
pub mod pki;
