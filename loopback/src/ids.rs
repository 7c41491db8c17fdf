//! Identifiers the servers hand out: session ids, activation codes and
//! challenges. Unique within the process and different between runs, without
//! a random-number crate: none of them guards anything, they only have to
//! look like the real ones and never repeat.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh 64-bit value: a process-wide counter mixed with the clock.
pub(crate) fn fresh_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    splitmix64(splitmix64(nanos ^ n.rotate_left(32)) ^ n)
}

/// A UUID-shaped (version 4 layout) string, as the real server's
/// `str(uuid.uuid4())` session ids.
pub(crate) fn new_uuid() -> String {
    let a = fresh_u64();
    let b = fresh_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// Six decimal digits, like the console's activation codes.
pub(crate) fn six_digits() -> String {
    format!("{:06}", fresh_u64() % 1_000_000)
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_unique_and_uuid_shaped() {
        let a = new_uuid();
        let b = new_uuid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..100 {
            let code = six_digits();
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
        }
    }
}
