//! The lab rig (being written).
