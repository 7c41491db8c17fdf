//! Process exit codes of CONTRACT §1.

/// Success.
pub const OK: i32 = 0;
/// A runtime failure.
pub const FAILURE: i32 = 1;
/// Bad usage or a bad config.
pub const USAGE: i32 = 2;
/// Every session gave up and `on_give_up = "exit"` (EX_TEMPFAIL, so systemd restarts us).
pub const ALL_GAVE_UP: i32 = 75;
