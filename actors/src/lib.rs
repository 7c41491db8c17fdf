//! The supervision tree of wsvisor and the xiaozhi wire types.
#![deny(missing_docs)]
pub mod settings;
pub mod wire;
