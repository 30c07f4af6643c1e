//! Calendar durations (ISO-8601 `P6M`, `P2W`, `PT12H`) and their arithmetic in a time zone.
//!
//! Months and years are calendar units: six months after 31 August is 28 February, not 182 days later.
//! That is why a duration keeps months, days and seconds apart and is applied to local time.

use std::fmt;
use std::ops::Add;
use std::str::FromStr;

use chrono::{
    DateTime, Days, LocalResult, Months, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc,
};
use chrono_tz::Tz;
use serde::{Serialize, Serializer};

/// Average lengths used only to *compare* calendar durations (critical path, planned min ≤ max).
const NOMINAL_MONTH_SECS: u64 = 2_629_746; // 365.2425 days / 12
const DAY_SECS: u64 = 86_400;

/// Upper bound on every component so that arithmetic on any realistic date can neither overflow nor panic.
const MAX_MONTHS: u64 = 12 * 1_000;
const MAX_DAYS: u64 = 366 * 1_000;
const MAX_SECONDS: u64 = DAY_SECS * 366 * 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CalendarDuration {
    months: u32,
    days: u32,
    seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("`{0}` is not an ISO-8601 duration such as P6M, P30D, P2W or PT12H")]
    Syntax(String),
    #[error("`{0}` is longer than a thousand years")]
    TooLong(String),
}

impl CalendarDuration {
    pub const ZERO: CalendarDuration = CalendarDuration {
        months: 0,
        days: 0,
        seconds: 0,
    };

    pub fn months(self) -> u32 {
        self.months
    }

    pub fn days(self) -> u32 {
        self.days
    }

    pub fn seconds(self) -> u64 {
        self.seconds
    }

    /// Approximate length in seconds, for ordering durations only: never for computing dates.
    pub fn nominal_seconds(self) -> u64 {
        u64::from(self.months) * NOMINAL_MONTH_SECS + u64::from(self.days) * DAY_SECS + self.seconds
    }

    /// `self` repeated `k` times, each component multiplied (saturating).
    pub fn times(self, k: u32) -> CalendarDuration {
        CalendarDuration {
            months: self.months.saturating_mul(k),
            days: self.days.saturating_mul(k),
            seconds: self.seconds.saturating_mul(u64::from(k)),
        }
    }

    /// `at + self`, months and days counted on the wall clock of `tz`, seconds as elapsed time.
    /// Saturates at the end of representable time rather than panicking.
    pub fn after(self, at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        let local = at.with_timezone(&tz).naive_local();
        local
            .checked_add_months(Months::new(self.months))
            .and_then(|l| l.checked_add_days(Days::new(u64::from(self.days))))
            .map(|l| resolve_local(tz, l))
            .and_then(|t| t.checked_add_signed(self.elapsed()))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The local wall-clock time `self` before `local` (used for reminders sent "N days before").
    pub fn before_local(self, local: NaiveDateTime) -> NaiveDateTime {
        local
            .checked_sub_months(Months::new(self.months))
            .and_then(|l| l.checked_sub_days(Days::new(u64::from(self.days))))
            .and_then(|l| l.checked_sub_signed(self.elapsed()))
            .unwrap_or(NaiveDateTime::MIN)
    }

    fn elapsed(self) -> TimeDelta {
        // Bounded by MAX_SECONDS at parse time and by the sum of two parsed values otherwise.
        TimeDelta::try_seconds(i64::try_from(self.seconds).unwrap_or(i64::MAX))
            .unwrap_or(TimeDelta::MAX)
    }
}

/// Interprets a wall-clock time of `tz` deterministically: an ambiguous time (autumn) is the earlier instant;
/// a time skipped by a spring-forward gap is read with the offset in force before the gap, i.e. pushed
/// forward by the gap's length (02:30 becomes 03:30 in Paris). At the ends of representable time (a date
/// typed as year 262142), where no offset applies, saturates rather than panicking.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        LocalResult::None => {
            let before = local
                .checked_sub_signed(TimeDelta::hours(24))
                .unwrap_or(local);
            let offset = tz.offset_from_utc_datetime(&before);
            let seconds = chrono::Offset::fix(&offset).local_minus_utc();
            let utc = local
                .checked_sub_signed(TimeDelta::seconds(i64::from(seconds)))
                .unwrap_or(if seconds > 0 {
                    NaiveDateTime::MIN
                } else {
                    NaiveDateTime::MAX
                });
            Utc.from_utc_datetime(&utc)
        }
    }
}

/// Midnight at the start of `date` in `tz`, as an instant.
pub fn start_of_local_day(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    resolve_local(tz, date.and_time(chrono::NaiveTime::MIN))
}

impl Add for CalendarDuration {
    type Output = CalendarDuration;

    fn add(self, other: CalendarDuration) -> CalendarDuration {
        CalendarDuration {
            months: self.months.saturating_add(other.months),
            days: self.days.saturating_add(other.days),
            seconds: self.seconds.saturating_add(other.seconds),
        }
    }
}

impl std::iter::Sum for CalendarDuration {
    fn sum<I: Iterator<Item = CalendarDuration>>(iter: I) -> CalendarDuration {
        iter.fold(CalendarDuration::ZERO, Add::add)
    }
}

impl FromStr for CalendarDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let syntax = || DurationError::Syntax(text.to_owned());
        let body = text.strip_prefix('P').ok_or_else(syntax)?;
        let (date_part, time_part) = match body.split_once('T') {
            Some((d, t)) if !t.is_empty() => (d, Some(t)),
            Some(_) => return Err(syntax()),
            None => (body, None),
        };
        let (mut months, mut days, mut seconds) = (0u64, 0u64, 0u64);
        let mut any = false;
        for (value, unit) in components(date_part, "YMWD").ok_or_else(syntax)? {
            any = true;
            match unit {
                'Y' => months += value * 12,
                'M' => months += value,
                'W' => days += value * 7,
                _ => days += value,
            }
        }
        for (value, unit) in components(time_part.unwrap_or(""), "HMS").ok_or_else(syntax)? {
            any = true;
            seconds += match unit {
                'H' => value * 3_600,
                'M' => value * 60,
                _ => value,
            };
        }
        if !any {
            return Err(syntax());
        }
        if months > MAX_MONTHS || days > MAX_DAYS || seconds > MAX_SECONDS {
            return Err(DurationError::TooLong(text.to_owned()));
        }
        // The bounds above make these conversions lossless.
        Ok(CalendarDuration {
            months: u32::try_from(months).map_err(|_| syntax())?,
            days: u32::try_from(days).map_err(|_| syntax())?,
            seconds,
        })
    }
}

/// Splits `12Y3M` into `[(12, 'Y'), (3, 'M')]`, requiring units to appear at most once and in `order`.
fn components(text: &str, order: &str) -> Option<Vec<(u64, char)>> {
    let mut out = Vec::new();
    let mut digits = String::new();
    let mut allowed = order.chars();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        // Advancing the iterator enforces both the order and the uniqueness of units.
        allowed.by_ref().find(|&u| u == c)?;
        out.push((digits.parse().ok()?, c));
        digits.clear();
    }
    digits.is_empty().then_some(out)
}

impl fmt::Display for CalendarDuration {
    /// Canonical form (`P1Y2M3DT4H`): weeks are shown as days so that `P2W` and `P14D` print alike.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == CalendarDuration::ZERO {
            return f.write_str("P0D");
        }
        f.write_str("P")?;
        let (years, months) = (self.months / 12, self.months % 12);
        for (value, unit) in [(years, 'Y'), (months, 'M'), (self.days, 'D')] {
            if value > 0 {
                write!(f, "{value}{unit}")?;
            }
        }
        if self.seconds > 0 {
            f.write_str("T")?;
            let (h, m, s) = (
                self.seconds / 3_600,
                self.seconds % 3_600 / 60,
                self.seconds % 60,
            );
            for (value, unit) in [(h, 'H'), (m, 'M'), (s, 'S')] {
                if value > 0 {
                    write!(f, "{value}{unit}")?;
                }
            }
        }
        Ok(())
    }
}

impl Serialize for CalendarDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Paris;
    use proptest::prelude::*;

    fn d(text: &str) -> CalendarDuration {
        text.parse().unwrap()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn parses_calendar_and_clock_units() {
        assert_eq!(
            d("P6M"),
            CalendarDuration {
                months: 6,
                days: 0,
                seconds: 0
            }
        );
        assert_eq!(
            d("P1Y2M"),
            CalendarDuration {
                months: 14,
                days: 0,
                seconds: 0
            }
        );
        assert_eq!(
            d("P2W"),
            CalendarDuration {
                months: 0,
                days: 14,
                seconds: 0
            }
        );
        assert_eq!(
            d("P1DT12H30M5S"),
            CalendarDuration {
                months: 0,
                days: 1,
                seconds: 45_005
            }
        );
        assert_eq!(d("PT0S"), CalendarDuration::ZERO);
    }

    #[test]
    fn refuses_malformed_durations() {
        for bad in [
            "", "P", "6M", "PT", "P1H", "PM", "P1M2Y", "P1D1D", "P-1D", "P1.5D", "P1DT", "p1d",
            "P1D ",
        ] {
            assert!(
                bad.parse::<CalendarDuration>().is_err(),
                "{bad:?} should be refused"
            );
        }
        assert!(matches!(
            "P5000Y".parse::<CalendarDuration>(),
            Err(DurationError::TooLong(_))
        ));
    }

    #[test]
    fn six_months_are_calendar_months() {
        // 31 August + 6 months clamps to the end of February, at the same wall-clock time (12:00 CEST → CET).
        let start = utc("2023-08-31T10:00:00Z");
        assert_eq!(d("P6M").after(start, Paris), utc("2024-02-29T11:00:00Z"));
        // Across the spring change the wall-clock time is kept: 12:00 CET becomes 12:00 CEST.
        assert_eq!(
            d("P1M").after(utc("2024-03-15T11:00:00Z"), Paris),
            utc("2024-04-15T10:00:00Z")
        );
        // Hours are elapsed time, not wall-clock time.
        assert_eq!(
            d("PT24H").after(utc("2024-03-30T12:00:00Z"), Paris),
            utc("2024-03-31T12:00:00Z")
        );
    }

    #[test]
    fn local_times_in_gaps_and_overlaps_resolve_deterministically() {
        let gap = NaiveDate::from_ymd_opt(2024, 3, 31)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert_eq!(resolve_local(Paris, gap), utc("2024-03-31T01:30:00Z"));
        let overlap = NaiveDate::from_ymd_opt(2024, 10, 27)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert_eq!(resolve_local(Paris, overlap), utc("2024-10-27T00:30:00Z"));
    }

    #[test]
    fn display_is_canonical() {
        assert_eq!(d("P2W").to_string(), "P14D");
        assert_eq!(d("P14M").to_string(), "P1Y2M");
        assert_eq!(d("PT90M").to_string(), "PT1H30M");
        assert_eq!((d("P3M") + d("P6M") + d("P10D")).to_string(), "P9M10D");
    }

    proptest! {
        #[test]
        fn display_round_trips(months in 0u32..240, days in 0u32..400, seconds in 0u64..200_000) {
            let original = CalendarDuration { months, days, seconds };
            prop_assert_eq!(original.to_string().parse::<CalendarDuration>().unwrap(), original);
        }

        #[test]
        fn after_is_monotonic_in_the_duration(days in 0u32..800, extra in 1u32..60, start in 0i64..2_000_000_000) {
            let at = DateTime::from_timestamp(start, 0).unwrap();
            let shorter = CalendarDuration { months: 0, days, seconds: 0 };
            let longer = CalendarDuration { months: 0, days: days + extra, seconds: 0 };
            prop_assert!(shorter.after(at, Paris) < longer.after(at, Paris));
        }
    }
}
