use chrono::{Datelike, NaiveDate};
use serde::Serialize;

/// The language of a mail. French comes first: it is the programme's language and the fallback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Fr,
    En,
}

const FRENCH_MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

const ENGLISH_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::Fr, Lang::En];

    /// Reads a language tag (`fr`, `en`, `en-GB`, `FR_fr`…); `None` for any other language, so callers
    /// decide whether to fall back (`Lang::parse(tag).unwrap_or_default()`) or refuse.
    pub fn parse(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next()?;
        Lang::ALL
            .into_iter()
            .find(|lang| primary.eq_ignore_ascii_case(lang.as_str()))
    }

    /// The tag, also the name of the language folder of every template.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }

    /// A date as a letter would write it: « 1er janvier 2025 », "1 January 2025".
    pub fn format_date(self, date: NaiveDate) -> String {
        let (day, month, year) = (date.day(), date.month0() as usize, date.year());
        match self {
            // French writes the first of the month as an ordinal.
            Lang::Fr if day == 1 => format!("1er {} {year}", FRENCH_MONTHS[month]),
            Lang::Fr => format!("{day} {} {year}", FRENCH_MONTHS[month]),
            Lang::En => format!("{day} {} {year}", ENGLISH_MONTHS[month]),
        }
    }
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn dates_read_as_in_a_letter() {
        assert_eq!(Lang::Fr.format_date(date(2024, 12, 31)), "31 décembre 2024");
        assert_eq!(Lang::Fr.format_date(date(2025, 1, 1)), "1er janvier 2025");
        assert_eq!(Lang::Fr.format_date(date(2025, 8, 15)), "15 août 2025");
        assert_eq!(Lang::En.format_date(date(2024, 12, 31)), "31 December 2024");
        assert_eq!(Lang::En.format_date(date(2025, 1, 1)), "1 January 2025");
    }

    #[test]
    fn tags_parse_by_primary_subtag() {
        assert_eq!(Lang::parse("fr"), Some(Lang::Fr));
        assert_eq!(Lang::parse("EN"), Some(Lang::En));
        assert_eq!(Lang::parse("en-GB"), Some(Lang::En));
        assert_eq!(Lang::parse("fr_FR"), Some(Lang::Fr));
        assert_eq!(Lang::parse("de"), None);
        assert_eq!(Lang::parse(""), None);
        assert_eq!(Lang::parse("de").unwrap_or_default(), Lang::Fr);
    }
}
