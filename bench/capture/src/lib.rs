//! sacbench capture and analysis.
//!
//! - [`capture`]: AF_PACKET capture of the DUT-facing interface into a pcapng file whose
//!   TLS key log is embedded as a Decryption Secrets Block, so Wireshark/tshark decrypt the
//!   session with no setup.
//! - [`pcapng`]: the pcapng writer behind it, also usable for packets from elsewhere.
//! - [`analysis`]: one streaming pass over a capture producing the facts conformance cases
//!   assert on (flows and who opened them, UDP replies, TLS hellos, cleartext detection,
//!   SYN timing), each tied to tshark-compatible frame numbers;
//! - [`frame_times`]: each frame's capture time, by frame number.
#![deny(unsafe_code)]

pub mod analysis;
pub mod capture;
pub mod decrypt;
pub mod frame_times;
pub mod pcapng;

pub use analysis::{analyze, analyze_file, Analysis, AnalysisError, FrameRef, TcpFlow};
pub use capture::{Capture, CaptureConfig, CaptureError, CaptureSummary};
pub use frame_times::frame_times_file;
