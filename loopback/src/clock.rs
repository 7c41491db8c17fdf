//! Wall-clock stamps in the shapes the real server writes them: the app-level
//! pong's `"%Y-%m-%d %H:%M:%S"` and the OTA answer's epoch milliseconds.
//! Computed by hand (days-to-civil) rather than pulling in a date crate for
//! two fields.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_millis(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `YYYY-MM-DD HH:MM:SS` in UTC. The real server formats its local time;
/// tests only need the shape, and UTC keeps them independent of `TZ`.
pub(crate) fn datetime_utc(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's algorithm: days since 1970-01-01 to (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(datetime_utc(UNIX_EPOCH), "1970-01-01 00:00:00");
        // 2024-02-29 12:34:56 UTC, a leap day.
        let leap = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(datetime_utc(leap), "2024-02-29 12:34:56");
        let y2k = UNIX_EPOCH + Duration::from_secs(946_684_799);
        assert_eq!(datetime_utc(y2k), "1999-12-31 23:59:59");
        assert_eq!(unix_millis(UNIX_EPOCH + Duration::from_millis(1234)), 1234);
    }
}
