//! Lab farms on labgrid: a rig file may name a place on a labgrid
//! coordinator (`[labgrid]`) instead of its hardware. The bench reserves the
//! place (waiting up to `labgrid.timeout_s`), acquires it, turns its
//! resources into the lab rig's console, power and link, runs the cases on
//! that, and releases the place at the end, on SIGINT/SIGTERM, and when
//! dropped. A place a killed bench left acquired is recovered by the next run
//! on the same host (see [`place::holder`]).
//!
//! The sans-IO core is [`place`]; [`session`] speaks the coordinator's gRPC
//! API ([`proto`], generated from labgrid's .proto).

pub mod place;
#[allow(missing_docs, clippy::all, clippy::pedantic, unreachable_pub)]
pub mod proto;
pub mod record;
pub mod rig;
pub mod session;

pub use place::{Fault, LabgridError, PlaceSelector, Resolved};
pub use session::{acquire, Acquisition};
