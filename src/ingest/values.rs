//! Values as claims write them: date-times in the forms hospital systems
//! use, amounts with a decimal point or comma, insurance card numbers, age
//! bands. Pure functions: the validation rules that use them are in
//! `convert.rs`.

use chrono::{NaiveDate, NaiveDateTime};

use super::convert::ValueFormat;
use crate::reference::Reference;

pub(super) const MS_PER_DAY: i64 = 86_400_000;

/// Parses the date-time forms found in claims: `yyyyMMddHHmm`, `yyyyMMdd`,
/// `yyyyMMddHHmmss`, ISO `yyyy-MM-dd[ HH:mm[:ss]]`, then the source's own
/// format. Returns milliseconds since the epoch.
pub fn parse_datetime(s: &str, fmt: &ValueFormat) -> Option<i64> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let mut v = 0u32;
        for &c in b.get(r)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + (c - b'0') as u32;
        }
        Some(v)
    };
    let build = |y: u32, mo: u32, d: u32, h: u32, mi: u32, se: u32| -> Option<i64> {
        let date = NaiveDate::from_ymd_opt(y as i32, mo, d)?;
        let dt = date.and_hms_opt(h, mi, se)?;
        Some(dt.and_utc().timestamp_millis())
    };
    let parsed = match b.len() {
        8 | 12 | 14 if b.iter().all(u8::is_ascii_digit) => {
            let (h, mi, se) = match b.len() {
                8 => (0, 0, 0),
                12 => (digits(8..10)?, digits(10..12)?, 0),
                _ => (digits(8..10)?, digits(10..12)?, digits(12..14)?),
            };
            build(digits(0..4)?, digits(4..6)?, digits(6..8)?, h, mi, se)
        }
        10 | 16 | 19 if b[4] == b'-' && b[7] == b'-' => {
            let (h, mi, se) = match b.len() {
                10 => (0, 0, 0),
                16 => (digits(11..13)?, digits(14..16)?, 0),
                _ => (digits(11..13)?, digits(14..16)?, digits(17..19)?),
            };
            build(digits(0..4)?, digits(5..7)?, digits(8..10)?, h, mi, se)
        }
        _ => None,
    };
    if parsed.is_some() {
        return parsed;
    }
    let f = fmt.date_format.as_deref()?;
    if let Ok(dt) = NaiveDateTime::parse_from_str(s, f) {
        return Some(dt.and_utc().timestamp_millis());
    }
    NaiveDate::parse_from_str(s, f)
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_millis())
}

/// Parses an amount or quantity (decimal point, or comma when the source says so).
pub fn parse_number(s: &str, fmt: &ValueFormat) -> Option<f64> {
    let v = if fmt.decimal_comma {
        s.replace('.', "").replace(',', ".").parse::<f64>().ok()
    } else {
        s.parse::<f64>().ok()
    };
    v.filter(|x| x.is_finite())
}

pub(super) fn date_of(ms: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("timestamp in range")
        .date_naive()
}

/// Age band edges (lower bounds) and labels; chosen to separate newborns,
/// children, working age and the elderly, whose costs differ most.
pub fn age_band(age: Option<i32>) -> &'static str {
    match age {
        None => "unknown",
        Some(a) if a < 1 => "<1",
        Some(a) if a <= 5 => "1-5",
        Some(a) if a <= 15 => "6-15",
        Some(a) if a <= 44 => "16-44",
        Some(a) if a <= 64 => "45-64",
        Some(a) if a <= 79 => "65-79",
        Some(_) => "80+",
    }
}

/// A parsed insurance card.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    pub group: String,
    pub benefit_level: i32,
    pub province_code: String,
    pub si_number: String,
}

/// Validates MA_THE_BHYT: 2 letters, benefit level 1–5, 2-digit province
/// known to the reference table, 10-digit social-insurance number.
pub fn parse_card(card: &str, reference: &Reference) -> Result<Card, String> {
    let c = card.trim();
    let b = c.as_bytes();
    if b.len() != 15 {
        return Err(format!(
            "card number must have 15 characters, has {}",
            b.len()
        ));
    }
    if !b[0].is_ascii_alphabetic() || !b[1].is_ascii_alphabetic() {
        return Err("card number must start with 2 letters (beneficiary group)".into());
    }
    if !(b'1'..=b'5').contains(&b[2]) {
        return Err("card benefit level (3rd character) must be 1–5".into());
    }
    if !b[3..].iter().all(u8::is_ascii_digit) {
        return Err("card number must end with 12 digits".into());
    }
    let province_code = c[3..5].to_string();
    if reference.province(&province_code).is_none() {
        return Err(format!(
            "card province code {province_code} is not a province"
        ));
    }
    Ok(Card {
        group: c[0..2].to_ascii_uppercase(),
        benefit_level: (b[2] - b'0') as i32,
        province_code,
        si_number: c[5..].to_string(),
    })
}
