//! Configuration: placeholder being written.
