//! The control socket (CONTRACT §3).

pub mod protocol;
