//! MCUboot image format. (Being written: see the helper's report.)
#![no_std]
#![forbid(unsafe_code)]
