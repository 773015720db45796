//! Conversion of raw records into canonical rows, with the validation rules.
//!
//! Every rule that can reject a record lives here, so the XML, CSV and
//! Parquet paths reject the same things for the same reasons. A rejected
//! record yields an [`Issue`]; the caller writes it to quarantine. Reasons
//! name the field and, for non-personal fields only, the offending value.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Datelike;
use serde::{Deserialize, Serialize};

use super::fields::{lf, vf, RawRecord, RowKind, LINE_FIELDS, VISIT_FIELDS};
use crate::privacy::Pseudonymizer;
use crate::reference::Reference;
use crate::schema::{Day, LineRow, QuarantineRow, SmallStr, Ts, VisitRow};

pub use super::values::{age_band, parse_card, parse_datetime, parse_number, Card};
use super::values::{date_of, MS_PER_DAY};

/// Why a record was quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    MissingField,
    BadDate,
    BadNumber,
    BadValue,
    DischargeBeforeAdmission,
    NegativeAmount,
    LineTotalMismatch,
    VisitTotalMismatch,
    OrphanLine,
    DuplicateVisit,
    UnknownFacility,
    InvalidCard,
    VisitRejected,
    UnreadableDocument,
    DuplicateRecord,
    TooLong,
    DamagedFile,
}

impl Rule {
    pub fn code(self) -> &'static str {
        match self {
            Rule::MissingField => "missing_field",
            Rule::BadDate => "bad_date",
            Rule::BadNumber => "bad_number",
            Rule::BadValue => "bad_value",
            Rule::DischargeBeforeAdmission => "discharge_before_admission",
            Rule::NegativeAmount => "negative_amount",
            Rule::LineTotalMismatch => "line_total_mismatch",
            Rule::VisitTotalMismatch => "visit_total_mismatch",
            Rule::OrphanLine => "orphan_line",
            Rule::DuplicateVisit => "duplicate_visit",
            Rule::UnknownFacility => "unknown_facility",
            Rule::InvalidCard => "invalid_card",
            Rule::VisitRejected => "visit_rejected",
            Rule::UnreadableDocument => "unreadable_document",
            Rule::DuplicateRecord => "duplicate_record",
            Rule::TooLong => "too_long",
            Rule::DamagedFile => "damaged_file",
        }
    }
}

/// A failed rule on one record.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub rule: Rule,
    pub field: Option<&'static str>,
    pub reason: String,
}

impl Issue {
    pub fn new(rule: Rule, field: Option<&'static str>, reason: impl Into<String>) -> Self {
        Issue {
            rule,
            field,
            reason: reason.into(),
        }
    }
}

/// Tolerances of the amount checks. Defaults are rounding-level: real files
/// round each line to the dong and the visit total to the sum of rounded
/// lines, so anything beyond is an error in the claim, not noise.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ValidationConfig {
    /// Absolute tolerance of THANH_TIEN_BV vs SO_LUONG × DON_GIA, VND. Default 1.
    pub line_abs_vnd: f64,
    /// Relative tolerance of the same check. Default 0.001 (0.1 %).
    pub line_rel: f64,
    /// Absolute tolerance of T_TONGCHI_BV vs the sum of lines, VND. Default 10.
    pub visit_abs_vnd: f64,
    /// Relative tolerance of the same check. Default 0.001 (0.1 %).
    pub visit_rel: f64,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            line_abs_vnd: 1.0,
            line_rel: 0.001,
            visit_abs_vnd: 10.0,
            visit_rel: 0.001,
        }
    }
}

/// How values are written in a source: Decision 130 files use the standard
/// forms; CSV extracts may use another date format or a decimal comma.
#[derive(Debug, Clone, Default)]
pub struct ValueFormat {
    /// chrono format for date-times, tried after the standard forms.
    pub date_format: Option<String>,
    pub decimal_comma: bool,
}

/// Facility registry entry as far as ingest needs it.
#[derive(Debug, Clone)]
pub struct FacilityInfo {
    /// Current province code (through the reference table).
    pub province: String,
    pub province_code: String,
}

/// Everything a conversion needs; shared read-only across worker threads.
pub struct Converter {
    pub reference: Reference,
    pub pseudo: Pseudonymizer,
    pub facilities: HashMap<String, FacilityInfo>,
    pub validation: ValidationConfig,
}

/// Per-source context of a conversion.
#[derive(Debug, Clone)]
pub struct SourceCtx {
    pub file: Arc<str>,
    pub seq: i64,
    pub format: ValueFormat,
    /// Envelope MACSKCB, used when a visit lacks MA_CSKCB.
    pub facility_hint: Option<String>,
    /// Envelope NGAYLAP.
    pub submitted_at: Option<Ts>,
}

impl SourceCtx {
    pub fn new(file: &str, seq: i64) -> Self {
        SourceCtx {
            file: Arc::from(file),
            seq,
            format: ValueFormat::default(),
            facility_hint: None,
            submitted_at: None,
        }
    }

    pub fn quarantine(
        &self,
        table: &str,
        record: String,
        facility: Option<&str>,
        position: u64,
        issue: &Issue,
    ) -> QuarantineRow {
        QuarantineRow {
            source_file: self.file.to_string(),
            source_seq: self.seq,
            table_name: table.to_string(),
            record,
            facility_code: facility.map(str::to_string),
            position: position as i64,
            field: issue.field.map(str::to_string),
            rule: issue.rule.code().to_string(),
            reason: issue.reason.clone(),
        }
    }
}

struct Fields<'r, 'a> {
    raw: &'r RawRecord<'a>,
    names: &'static [&'static str],
    fmt: &'r ValueFormat,
}

impl<'r, 'a> Fields<'r, 'a> {
    fn name(&self, i: usize) -> &'static str {
        self.names[i]
    }
    fn opt(&self, i: usize) -> Option<&'r str> {
        self.raw.vals[i].as_deref()
    }
    fn req(&self, i: usize) -> Result<&'r str, Issue> {
        self.opt(i).ok_or_else(|| {
            Issue::new(
                Rule::MissingField,
                Some(self.name(i)),
                format!("{} is missing", self.name(i)),
            )
        })
    }
    fn num_opt(&self, i: usize) -> Result<Option<f64>, Issue> {
        match self.opt(i) {
            None => Ok(None),
            Some(s) => parse_number(s, self.fmt).map(Some).ok_or_else(|| {
                Issue::new(
                    Rule::BadNumber,
                    Some(self.name(i)),
                    format!(
                        "{} is not a number: {}",
                        self.name(i),
                        quoted(self.name(i), s)
                    ),
                )
            }),
        }
    }
    fn int_opt(&self, i: usize) -> Result<Option<i32>, Issue> {
        Ok(self.num_opt(i)?.map(|v| v.round() as i32))
    }
    fn amount_opt(&self, i: usize) -> Result<Option<f64>, Issue> {
        let v = self.num_opt(i)?;
        if let Some(x) = v {
            if x < 0.0 {
                return Err(Issue::new(
                    Rule::NegativeAmount,
                    Some(self.name(i)),
                    format!("{} is negative ({x})", self.name(i)),
                ));
            }
        }
        Ok(v)
    }
    fn amount(&self, i: usize) -> Result<f64, Issue> {
        self.req(i)?;
        Ok(self.amount_opt(i)?.expect("present"))
    }
    fn dt_opt(&self, i: usize) -> Result<Option<i64>, Issue> {
        match self.opt(i) {
            None => Ok(None),
            Some(s) => parse_datetime(s, self.fmt).map(Some).ok_or_else(|| {
                Issue::new(
                    Rule::BadDate,
                    Some(self.name(i)),
                    format!(
                        "{} is not a date (yyyyMMddHHmm): {}",
                        self.name(i),
                        quoted(self.name(i), s)
                    ),
                )
            }),
        }
    }
    fn dt(&self, i: usize) -> Result<i64, Issue> {
        self.req(i)?;
        Ok(self.dt_opt(i)?.expect("present"))
    }
    fn string(&self, i: usize) -> Option<SmallStr> {
        self.opt(i).map(SmallStr::from)
    }
}

/// Shortens a value quoted in a reason.
fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Fields whose values are personal: never quoted in a reason.
const PERSONAL: &[&str] = &[
    "HO_TEN",
    "SO_CCCD",
    "NGAY_SINH",
    "DIA_CHI",
    "DIEN_THOAI",
    "MA_THE_BHYT",
    "MA_BN",
];

/// Longest value a field may hold, in characters. Decision 130 sizes its
/// fields in tens of characters (codes, dates, amounts) to a few hundred
/// (names, addresses); the bounds here are generous multiples of those, so
/// only a value no claims system writes (a 50 MB department code) is
/// quarantined — it would otherwise travel into every table and export.
pub const MAX_CODE_CHARS: usize = 255;
/// Free text: names of patients, drugs, services, supplies; addresses.
pub const MAX_TEXT_CHARS: usize = 2048;

fn max_chars(field: &str) -> usize {
    match field {
        "HO_TEN" | "DIA_CHI" | "TEN_THUOC" | "TEN_DICH_VU" | "TEN_VAT_TU" | "MA_THE_BHYT"
        | "MA_BENH_KT" | "MA_KHOA" | "MA_BAC_SI" | "MA_PTTT" | "MA_DKBD" => MAX_TEXT_CHARS,
        _ => MAX_CODE_CHARS,
    }
}

/// The first field longer than its bound, as an issue.
fn check_lengths(f: &Fields<'_, '_>) -> Result<(), Issue> {
    for (i, v) in f.raw.vals.iter().enumerate() {
        let Some(v) = v.as_deref() else { continue };
        let name = f.name(i);
        let max = max_chars(name);
        // Bytes bound characters from above: count only when it may matter.
        if v.len() > max && v.chars().count() > max {
            return Err(Issue::new(
                Rule::TooLong,
                Some(name),
                format!(
                    "{name} is {} characters long, more than the {max} allowed",
                    v.chars().count()
                ),
            ));
        }
    }
    Ok(())
}

/// A value as quoted in a reason: clipped, or withheld for personal fields.
fn quoted(field: &str, s: &str) -> String {
    if PERSONAL.contains(&field) {
        "(value withheld: personal field)".to_string()
    } else {
        format!("'{}'", clip(s))
    }
}

impl Converter {
    /// Converts and validates one visit. Personal fields are pseudonymised
    /// here; the raw values go no further.
    pub fn visit(&self, raw: &RawRecord<'_>, ctx: &SourceCtx) -> Result<VisitRow, Issue> {
        let f = Fields {
            raw,
            names: &VISIT_FIELDS,
            fmt: &ctx.format,
        };
        check_lengths(&f)?;
        let ma_lk = f.req(vf::MA_LK)?.to_string();
        let facility_code = match f.opt(vf::MA_CSKCB) {
            Some(s) => s.to_string(),
            None => ctx.facility_hint.clone().ok_or_else(|| {
                Issue::new(Rule::MissingField, Some("MA_CSKCB"), "MA_CSKCB is missing")
            })?,
        };
        let facility = self.facilities.get(&facility_code).ok_or_else(|| {
            Issue::new(
                Rule::UnknownFacility,
                Some("MA_CSKCB"),
                format!(
                    "facility {} is not in the facility registry",
                    clip(&facility_code)
                ),
            )
        })?;
        let cards_raw = f.req(vf::MA_THE_BHYT)?;
        let mut cards = Vec::new();
        for c in cards_raw
            .split(';')
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            cards.push(
                parse_card(c, &self.reference)
                    .map_err(|why| Issue::new(Rule::InvalidCard, Some("MA_THE_BHYT"), why))?,
            );
        }
        let card = cards.first().cloned().ok_or_else(|| {
            Issue::new(
                Rule::MissingField,
                Some("MA_THE_BHYT"),
                "MA_THE_BHYT is missing",
            )
        })?;
        let first_card = cards_raw
            .split(';')
            .map(str::trim)
            .find(|c| !c.is_empty())
            .unwrap_or("");
        let dx_main = f.req(vf::MA_BENH_CHINH)?.to_ascii_uppercase();
        let vt_raw = f.req(vf::MA_LOAI_KCB)?;
        let vt = self.reference.visit_type(vt_raw).ok_or_else(|| {
            Issue::new(
                Rule::BadValue,
                Some("MA_LOAI_KCB"),
                format!("MA_LOAI_KCB '{}' is not a visit type", clip(vt_raw)),
            )
        })?;
        let admit = f.dt(vf::NGAY_VAO)?;
        let discharge = f.dt(vf::NGAY_RA)?;
        let birth = f.dt_opt(vf::NGAY_SINH).or_else(|e| {
            // A bare birth year is common in old archives.
            match f.opt(vf::NGAY_SINH) {
                Some(s) if s.len() == 4 => Ok(parse_datetime(&format!("{s}0101"), &ctx.format)),
                _ => Err(e),
            }
        })?;
        let total_cost = f.amount(vf::T_TONGCHI_BV)?;
        let insured_cost = f.amount_opt(vf::T_TONGCHI_BH)?;
        let fund_paid = f.amount_opt(vf::T_BHTT)?;
        let patient_copay = f.amount_opt(vf::T_BNCCT)?;
        let patient_self_pay = f.amount_opt(vf::T_BNTT)?;
        let other_sources = f.amount_opt(vf::T_NGUONKHAC)?;
        let drug_total = f.amount_opt(vf::T_THUOC)?;
        let supply_total = f.amount_opt(vf::T_VTYT)?;
        let treatment_days = f.int_opt(vf::SO_NGAY_DTRI)?;
        let sex = f.int_opt(vf::GIOI_TINH)?;
        let settle_year = f.int_opt(vf::NAM_QT)?;
        let settle_month = f.int_opt(vf::THANG_QT)?;
        let weight_kg = f.num_opt(vf::CAN_NANG)?;
        if discharge < admit {
            return Err(Issue::new(
                Rule::DischargeBeforeAdmission,
                Some("NGAY_RA"),
                "NGAY_RA is before NGAY_VAO",
            ));
        }
        let admit_date = date_of(admit);
        let discharge_date = date_of(discharge);
        let day_diff = (discharge_date - admit_date).num_days() as i32;
        let los_days = if vt.inpatient {
            treatment_days.unwrap_or(day_diff.max(1))
        } else {
            0
        };
        let age_years = birth.map(|b| {
            let bd = date_of(b);
            let mut a = admit_date.year() - bd.year();
            if (admit_date.month(), admit_date.day()) < (bd.month(), bd.day()) {
                a -= 1;
            }
            a.max(0)
        });
        let patient_key = self.pseudo.hash("person", &card.si_number);
        let card_key = self.pseudo.hash("card", &first_card.to_ascii_uppercase());
        let card_province = self
            .reference
            .province(&card.province_code)
            .map(|p| p.current_code.clone())
            .unwrap_or_default();
        let patient_code_key = f
            .opt(vf::MA_BN)
            .map(|c| self.pseudo.hash("mabn", &format!("{facility_code}|{c}")));
        let iso = discharge_date.iso_week();
        let days_since_epoch = (discharge.div_euclid(MS_PER_DAY)) as i32;
        Ok(VisitRow {
            out_of_province: card_province != facility.province,
            facility_province_code: facility.province_code.as_str().into(),
            facility_province: facility.province.as_str().into(),
            visit_key: crate::schema::visit_key(&facility_code, &ma_lk, ctx.seq),
            claim_key: crate::schema::claim_key(&facility_code, &ma_lk),
            facility_code: facility_code.as_str().into(),
            ma_lk: ma_lk.as_str().into(),
            source_seq: ctx.seq,
            submitted_at: ctx.submitted_at,
            patient_key: patient_key.into(),
            card_key: card_key.into(),
            citizen_key: f
                .opt(vf::SO_CCCD)
                .map(|c| self.pseudo.hash("cccd", c).into()),
            patient_code_key: patient_code_key.map(SmallStr::from),
            card_group: card.group.as_str().into(),
            card_benefit_level: card.benefit_level,
            card_province_code: card.province_code.as_str().into(),
            card_province: card_province.as_str().into(),
            n_cards: cards.len() as i32,
            registered_facility: f.string(vf::MA_DKBD),
            sex,
            age_years,
            age_band: age_band(age_years).into(),
            dx3: dx_main[..dx_main
                .char_indices()
                .nth(3)
                .map_or(dx_main.len(), |(at, _)| at)]
                .into(),
            dx_main: dx_main.as_str().into(),
            dx_secondary: f.string(vf::MA_BENH_KT),
            arrival_type: f.string(vf::MA_DOITUONG_KCB),
            admit_time: Ts(admit),
            discharge_time: Ts(discharge),
            discharge_date: Day(days_since_epoch),
            los_days,
            treatment_days,
            outcome: f.string(vf::KET_QUA_DTRI),
            discharge_kind: f.string(vf::MA_LOAI_RV),
            visit_type: vt.code.as_str().into(),
            visit_group: vt.group.as_str().into(),
            inpatient: vt.inpatient,
            department: f.string(vf::MA_KHOA),
            weight_kg,
            total_cost,
            insured_cost,
            fund_paid,
            patient_copay,
            patient_self_pay,
            other_sources,
            drug_total,
            supply_total,
            settle_year,
            settle_month,
            n_lines: 0,
            lines_total: 0.0,
            year: discharge_date.year(),
            month: discharge_date.month() as i32,
            iso_year: iso.year(),
            iso_week: iso.week() as i32,
        })
    }

    /// Converts and validates one line. Facility, period and source fields
    /// are filled from its visit by [`attach_line`].
    pub fn line(&self, raw: &RawRecord<'_>, ctx: &SourceCtx) -> Result<LineRow, Issue> {
        let f = Fields {
            raw,
            names: &LINE_FIELDS,
            fmt: &ctx.format,
        };
        check_lengths(&f)?;
        let ma_lk = SmallStr::from(f.req(lf::MA_LK)?);
        let stt = f.int_opt(lf::STT)?.unwrap_or(0);
        let drug = f.opt(lf::MA_THUOC);
        let item_code: SmallStr = drug
            .or(f.opt(lf::MA_DICH_VU))
            .or(f.opt(lf::MA_VAT_TU))
            .ok_or_else(|| {
                Issue::new(
                    Rule::MissingField,
                    Some(if raw.kind == RowKind::Drug {
                        "MA_THUOC"
                    } else {
                        "MA_DICH_VU"
                    }),
                    "item code (MA_THUOC / MA_DICH_VU / MA_VAT_TU) is missing",
                )
            })?
            .into();
        let source_table = match raw.kind {
            RowKind::Drug => "XML2",
            RowKind::Service if drug.is_some() => "XML2",
            _ => "XML3",
        };
        let ma_nhom = f
            .int_opt(lf::MA_NHOM)?
            .ok_or_else(|| Issue::new(Rule::MissingField, Some("MA_NHOM"), "MA_NHOM is missing"))?;
        let quantity = f.amount(lf::SO_LUONG)?;
        let unit_price = f.amount(lf::DON_GIA_BV)?;
        let amount = f.amount(lf::THANH_TIEN_BV)?;
        let service_rate_pct = f.num_opt(lf::TYLE_TT_DV)?;
        let expected = quantity * unit_price;
        let tol = |e: f64| {
            self.validation
                .line_abs_vnd
                .max(self.validation.line_rel * e.abs())
        };
        let with_rate = service_rate_pct.map(|r| expected * r / 100.0);
        let ok = (amount - expected).abs() <= tol(expected)
            || with_rate.is_some_and(|w| (amount - w).abs() <= tol(w));
        if !ok {
            return Err(Issue::new(
                Rule::LineTotalMismatch,
                Some("THANH_TIEN_BV"),
                format!(
                    "THANH_TIEN_BV {amount} ≠ SO_LUONG {quantity} × DON_GIA {unit_price} = {expected}"
                ),
            ));
        }
        Ok(LineRow {
            facility_code: f.string(lf::MA_CSKCB).unwrap_or_default(),
            ma_lk,
            source_seq: ctx.seq,
            visit_key: 0,
            stt,
            source_table: source_table.into(),
            item_code,
            supply_code: f.string(lf::MA_VAT_TU),
            category: self.reference.category(ma_nhom).into(),
            ma_nhom,
            item_name: f
                .string(lf::TEN_THUOC)
                .or_else(|| f.string(lf::TEN_DICH_VU))
                .or_else(|| f.string(lf::TEN_VAT_TU)),
            unit: f.string(lf::DON_VI_TINH),
            quantity,
            unit_price,
            unit_price_bh: f.amount_opt(lf::DON_GIA_BH)?,
            service_rate_pct,
            insurance_rate_pct: f.num_opt(lf::TYLE_TT_BH)?,
            amount,
            amount_bh: f.amount_opt(lf::THANH_TIEN_BH)?,
            fund_paid: f.amount_opt(lf::T_BHTT)?,
            patient_copay: f.amount_opt(lf::T_BNCCT)?,
            patient_self_pay: f.amount_opt(lf::T_BNTT)?,
            scope: f.int_opt(lf::PHAM_VI)?,
            benefit_pct: f.num_opt(lf::MUC_HUONG)?,
            department: f.string(lf::MA_KHOA),
            prescriber: f.string(lf::MA_BAC_SI),
            bed_code: f.string(lf::MA_GIUONG),
            dx: f.string(lf::MA_BENH),
            procedure_code: f.string(lf::MA_PTTT),
            order_time: f.dt_opt(lf::NGAY_YL)?.map(Ts),
            perform_time: f.dt_opt(lf::NGAY_TH_YL)?.map(Ts),
            discharge_date: Day(0),
            year: 0,
            month: 0,
        })
    }

    /// Checks T_TONGCHI_BV against the sum of the lines received with it.
    fn check_visit_total(&self, v: &VisitRow, lines_sum: f64, n_lines: usize) -> Result<(), Issue> {
        let tol = self
            .validation
            .visit_abs_vnd
            .max(self.validation.visit_rel * v.total_cost.abs());
        if (v.total_cost - lines_sum).abs() > tol {
            return Err(Issue::new(
                Rule::VisitTotalMismatch,
                Some("T_TONGCHI_BV"),
                format!(
                    "T_TONGCHI_BV {} ≠ sum of its {n_lines} lines {lines_sum}",
                    v.total_cost
                ),
            ));
        }
        Ok(())
    }

    /// Gives a visit the count and total of its lines (none: 0 and 0),
    /// checking its T_TONGCHI_BV against them when `check`.
    pub fn attach_lines(
        &self,
        v: &mut VisitRow,
        lines: Option<(f64, usize)>,
        check: bool,
    ) -> Result<(), Issue> {
        let (sum, n) = lines.unwrap_or((0.0, 0));
        if check {
            self.check_visit_total(v, sum, n)?;
        }
        v.n_lines = n as i32;
        v.lines_total = sum;
        Ok(())
    }
}

/// What a line takes from its visit.
#[derive(Debug, Clone)]
pub struct VisitAnchor {
    pub visit_key: i64,
    pub facility_code: SmallStr,
    pub discharge_date: Day,
    pub year: i32,
    pub month: i32,
    pub source_seq: i64,
}

impl From<&VisitRow> for VisitAnchor {
    fn from(v: &VisitRow) -> Self {
        VisitAnchor {
            visit_key: v.visit_key,
            facility_code: v.facility_code.clone(),
            discharge_date: v.discharge_date,
            year: v.year,
            month: v.month,
            source_seq: v.source_seq,
        }
    }
}

/// Fills a line's visit-derived fields.
pub fn attach_line(line: &mut LineRow, v: &VisitAnchor) {
    line.facility_code.clone_from(&v.facility_code);
    line.discharge_date = v.discharge_date;
    line.year = v.year;
    line.month = v.month;
    line.source_seq = v.source_seq;
    line.visit_key = v.visit_key;
}

/// The visit a line row names, for quarantine records: `MA_LK/STT`.
pub fn line_record_id(raw: &RawRecord<'_>) -> String {
    format!(
        "{}/{}",
        raw.get(lf::MA_LK).unwrap_or("?"),
        raw.get(lf::STT).unwrap_or("?")
    )
}

pub fn visit_record_id(raw: &RawRecord<'_>) -> String {
    raw.get(vf::MA_LK).unwrap_or("?").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_forms() {
        let f = ValueFormat::default();
        let a = parse_datetime("202301310734", &f).unwrap();
        assert_eq!(parse_datetime("2023-01-31 07:34", &f), Some(a));
        assert_eq!(
            parse_datetime("20230131", &f),
            parse_datetime("2023-01-31", &f)
        );
        assert_eq!(parse_datetime("20231331", &f), None);
        assert_eq!(parse_datetime("2023013107", &f), None);
        let g = ValueFormat {
            date_format: Some("%d/%m/%Y %H:%M".into()),
            decimal_comma: false,
        };
        assert_eq!(parse_datetime("31/01/2023 07:34", &g), Some(a));
    }

    #[test]
    fn numbers() {
        let f = ValueFormat::default();
        assert_eq!(parse_number("450177.2", &f), Some(450177.2));
        assert_eq!(parse_number("1,5", &f), None);
        let c = ValueFormat {
            date_format: None,
            decimal_comma: true,
        };
        assert_eq!(parse_number("1.234,5", &c), Some(1234.5));
        assert_eq!(parse_number("NaN", &f), None);
    }

    #[test]
    fn cards() {
        let r = Reference::builtin();
        let c = parse_card("GD4929871998712", &r).unwrap();
        assert_eq!(c.group, "GD");
        assert_eq!(c.benefit_level, 4);
        assert_eq!(c.province_code, "92");
        assert!(parse_card("GD49298719987", &r).is_err());
        assert!(parse_card("GD6929871998712", &r).is_err());
        assert!(parse_card("GD4999871998712", &r).is_err());
        assert!(parse_card("1D4929871998712", &r).is_err());
    }

    #[test]
    fn age_bands() {
        assert_eq!(age_band(Some(0)), "<1");
        assert_eq!(age_band(Some(5)), "1-5");
        assert_eq!(age_band(Some(80)), "80+");
        assert_eq!(age_band(None), "unknown");
    }
}
