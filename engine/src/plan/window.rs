//! Maintenance windows in time: when the next batch may start.

use super::spec::Window;
use jiff::civil::{Date, Time};
use jiff::{SignedDuration, Timestamp};

/// How many days ahead to look for a window. Every window recurs weekly.
const LOOKAHEAD_DAYS: i64 = 9;

/// The window occurrence that starts on `date`, as UTC instants.
fn occurrence(w: &Window, date: Date) -> Option<(Timestamp, Timestamp)> {
    let start = date
        .to_datetime(w.from)
        .to_zoned(w.zone.clone())
        .ok()?
        .timestamp();
    let end_date = if w.to == Time::MAX || w.to <= w.from {
        date.tomorrow().ok()?
    } else {
        date
    };
    let end_time = if w.to == Time::MAX {
        Time::midnight()
    } else {
        w.to
    };
    let end = end_date
        .to_datetime(end_time)
        .to_zoned(w.zone.clone())
        .ok()?
        .timestamp();
    Some((start, end))
}

/// The earliest instant at or after `t` at which a batch lasting `d` fits wholly inside one
/// window. With no windows, any time will do.
pub fn next_fit(windows: &[Window], t: Timestamp, d: SignedDuration) -> Option<Timestamp> {
    if windows.is_empty() {
        return Some(t);
    }
    let mut best: Option<Timestamp> = None;
    for w in windows {
        let today = t.to_zoned(w.zone.clone()).date();
        for off in -1..=LOOKAHEAD_DAYS {
            let Ok(date) = today.checked_add(jiff::Span::new().days(off)) else {
                continue;
            };
            if !w.weekdays.contains(&date.weekday()) {
                continue;
            }
            let Some((s, e)) = occurrence(w, date) else {
                continue;
            };
            let at = if s > t { s } else { t };
            let Ok(done) = at.checked_add(d) else {
                continue;
            };
            if done <= e && best.is_none_or(|b| at < b) {
                best = Some(at);
            }
        }
    }
    best
}

/// The longest single window, to explain why a batch can never fit.
pub fn longest(windows: &[Window]) -> Option<SignedDuration> {
    let monday = Date::new(2024, 1, 1).ok()?;
    windows
        .iter()
        .filter_map(|w| {
            let (s, e) = occurrence(w, monday)?;
            Some(e.duration_since(s))
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::spec::parse_windows;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn waits_for_the_window_and_respects_its_end() {
        // Tuesday to Thursday, 02:00-06:00 Amsterdam (UTC+1 in December).
        let w = parse_windows(&json!([{"days": ["tue-thu"], "start": "02:00", "end": "06:00", "tz": "Europe/Amsterdam"}])).unwrap();
        let hour = SignedDuration::from_hours(1);
        // Monday noon UTC → Tuesday 01:00 UTC.
        assert_eq!(
            next_fit(&w, ts("2026-11-30T12:00:00Z"), hour),
            Some(ts("2026-12-01T01:00:00Z"))
        );
        // Inside the window with room left: now.
        assert_eq!(
            next_fit(&w, ts("2026-12-01T02:30:00Z"), hour),
            Some(ts("2026-12-01T02:30:00Z"))
        );
        // Too little room left: the next day's window.
        assert_eq!(
            next_fit(&w, ts("2026-12-01T04:30:00Z"), hour),
            Some(ts("2026-12-02T01:00:00Z"))
        );
        // Thursday late → next Tuesday.
        assert_eq!(
            next_fit(&w, ts("2026-12-03T05:30:00Z"), hour),
            Some(ts("2026-12-08T01:00:00Z"))
        );
        // Longer than any window: never.
        assert_eq!(
            next_fit(
                &w,
                ts("2026-12-01T00:00:00Z"),
                SignedDuration::from_hours(5)
            ),
            None
        );
        assert_eq!(longest(&w), Some(SignedDuration::from_hours(4)));
    }

    #[test]
    fn overnight_windows_and_dst() {
        let w = parse_windows(
            &json!([{"days": ["sat"], "start": "22:00", "end": "04:00", "tz": "America/New_York"}]),
        )
        .unwrap();
        // Saturday 2026-03-07 22:00 EST = 03:00Z; ends Sunday 04:00 EDT (DST starts 02:00) = 08:00Z.
        let t = next_fit(
            &w,
            ts("2026-03-07T00:00:00Z"),
            SignedDuration::from_hours(4),
        )
        .unwrap();
        assert_eq!(t, ts("2026-03-08T03:00:00Z"));
        assert_eq!(
            next_fit(
                &w,
                ts("2026-03-08T04:00:00Z"),
                SignedDuration::from_hours(4)
            ),
            Some(ts("2026-03-08T04:00:00Z"))
        );
        assert!(next_fit(
            &[],
            ts("2026-03-08T04:00:00Z"),
            SignedDuration::from_hours(400)
        )
        .is_some());
    }
}
