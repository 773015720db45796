//! The canonical claims schema: **visits** (one row per MA_LK) and **lines**
//! (one per drug/service/supply line), plus the quarantine table.
//!
//! Each table is declared once, with a description per column; the same
//! declaration gives the row struct, the function that turns rows into a
//! Polars `DataFrame` column by column, and the data dictionary
//! (`datasets/data-dictionary.md`, checked by a test to stay in sync).

use polars::prelude::*;

/// Timestamp in milliseconds since the Unix epoch (stored as `Datetime(ms)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ts(pub i64);

/// Calendar day as days since the Unix epoch (stored as `Date`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day(pub i32);

/// Integer key of a visit version: FNV-1a 64 of facility, MA_LK and the
/// source sequence. Stable across runs and platforms.
pub fn visit_key(facility: &str, ma_lk: &str, source_seq: i64) -> i64 {
    fnv(claim_key(facility, ma_lk) as u64, &source_seq.to_le_bytes())
}

/// Integer key of a claim across its versions: FNV-1a 64 of facility and MA_LK.
pub fn claim_key(facility: &str, ma_lk: &str) -> i64 {
    let h = fnv(0xcbf29ce484222325, facility.as_bytes());
    fnv(fnv(h as u64, &[0x1f]) as u64, ma_lk.as_bytes())
}

fn fnv(mut h: u64, bytes: &[u8]) -> i64 {
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h as i64
}

/// Turns the values of one field of many rows into a Polars column.
pub trait IntoColumn {
    const DTYPE: &'static str;
    /// The column of `values` (one per row, in row order), built straight
    /// from the rows: no intermediate vector of owned values.
    fn column_of<'a>(values: impl Iterator<Item = &'a Self>, name: &str) -> Column
    where
        Self: 'a;
}

macro_rules! value_column {
    ($t:ty, $dt:expr, $chunked:ty) => {
        impl IntoColumn for $t {
            const DTYPE: &'static str = $dt;
            fn column_of<'a>(values: impl Iterator<Item = &'a Self>, name: &str) -> Column {
                <$chunked>::from_iter_values(name.into(), values.copied())
                    .into_series()
                    .into()
            }
        }
        impl IntoColumn for Option<$t> {
            const DTYPE: &'static str = concat!($dt, "?");
            fn column_of<'a>(values: impl Iterator<Item = &'a Self>, name: &str) -> Column {
                <$chunked>::from_iter_options(name.into(), values.copied())
                    .into_series()
                    .into()
            }
        }
    };
}
value_column!(i32, "i32", Int32Chunked);
value_column!(i64, "i64", Int64Chunked);
value_column!(f64, "f64", Float64Chunked);
value_column!(bool, "bool", BooleanChunked);

/// A string of a visit or line row: codes and names up to 24 bytes are held
/// inline, so the millions of short values a run reads cost no allocation
/// each (nor a free on another thread).
pub type SmallStr = PlSmallStr;

macro_rules! string_column {
    ($t:ty) => {
        impl IntoColumn for $t {
            const DTYPE: &'static str = "str";
            fn column_of<'a>(values: impl Iterator<Item = &'a Self>, name: &str) -> Column {
                StringChunked::from_iter_values(name.into(), values.map(|s| s.as_str()))
                    .into_series()
                    .into()
            }
        }
        impl IntoColumn for Option<$t> {
            const DTYPE: &'static str = "str?";
            fn column_of<'a>(values: impl Iterator<Item = &'a Self>, name: &str) -> Column {
                StringChunked::from_iter_options(name.into(), values.map(|s| s.as_deref()))
                    .into_series()
                    .into()
            }
        }
    };
}
string_column!(String);
string_column!(SmallStr);

/// Milliseconds as a `Datetime(ms)` column.
fn datetime_ms(c: Int64Chunked) -> Column {
    c.into_datetime(TimeUnit::Milliseconds, None)
        .into_series()
        .into()
}

impl IntoColumn for Ts {
    const DTYPE: &'static str = "datetime[ms]";
    fn column_of<'a>(values: impl Iterator<Item = &'a Self>, name: &str) -> Column {
        datetime_ms(Int64Chunked::from_iter_values(
            name.into(),
            values.map(|t| t.0),
        ))
    }
}
impl IntoColumn for Option<Ts> {
    const DTYPE: &'static str = "datetime[ms]?";
    fn column_of<'a>(values: impl Iterator<Item = &'a Self>, name: &str) -> Column {
        datetime_ms(Int64Chunked::from_iter_options(
            name.into(),
            values.map(|t| t.map(|t| t.0)),
        ))
    }
}
impl IntoColumn for Day {
    const DTYPE: &'static str = "date";
    fn column_of<'a>(values: impl Iterator<Item = &'a Self>, name: &str) -> Column {
        Int32Chunked::from_iter_values(name.into(), values.map(|d| d.0))
            .into_date()
            .into_series()
            .into()
    }
}

/// One entry of the data dictionary.
#[derive(Debug, Clone, Copy)]
pub struct ColumnDoc {
    pub name: &'static str,
    pub dtype: &'static str,
    pub doc: &'static str,
}

macro_rules! table {
    (
        $(#[$meta:meta])*
        $row:ident, $dict:ident {
            $($(#[doc = $doc:literal])+ $name:ident : $t:ty,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $row {
            $($(#[doc = $doc])+ pub $name: $t,)*
        }

        impl $row {
            /// Rows as a `DataFrame`, each column read straight from the
            /// rows (chunks of rows, in order, as the ingest collects them).
            pub fn frame<'a>(rows: impl Iterator<Item = &'a $row> + Clone) -> DataFrame {
                DataFrame::new_infer_height(vec![
                    $(<$t as IntoColumn>::column_of(rows.clone().map(|r| &r.$name), stringify!($name)),)*
                ])
                .expect("columns of one table have equal length")
            }
        }

        /// Data dictionary of this table.
        pub const $dict: &[ColumnDoc] = &[
            $(ColumnDoc {
                name: stringify!($name),
                dtype: <$t as IntoColumn>::DTYPE,
                doc: concat!($($doc),+),
            },)*
        ];
    };
}

table! {
    /// One visit (XML1 `TONG_HOP`), pseudonymised and enriched on ingest.
    VisitRow, VISIT_COLUMNS {
        /// Facility code (MA_CSKCB, 5 characters; the first 2 are the province code).
        facility_code: SmallStr,
        /// Visit link key (MA_LK). Kept as is: it is the reviewer's handle on the claim in the assessment portal.
        ma_lk: SmallStr,
        /// Ingest sequence number of the source file (manifest); the newest resubmission of a visit wins.
        source_seq: i64,
        /// Integer key of this visit version (64-bit hash of facility, MA_LK and source_seq): joins lines to visits quickly.
        visit_key: i64,
        /// Integer key of the claim across versions (64-bit hash of facility and MA_LK): finds resubmissions quickly.
        claim_key: i64,
        /// Envelope creation date (NGAYLAP), when the visit came in an envelope.
        submitted_at: Option<Ts>,
        /// Keyed hash identifying the person: the card's 10-digit social-insurance number (stable across the person's cards and facilities).
        patient_key: SmallStr,
        /// Keyed hash of the full card number (first card when several are given).
        card_key: SmallStr,
        /// Keyed hash of the citizen ID (SO_CCCD), when given.
        citizen_key: Option<SmallStr>,
        /// Keyed hash of facility + patient code (MA_BN), when given.
        patient_code_key: Option<SmallStr>,
        /// Beneficiary group (first 2 letters of the card, e.g. DN, HT, TE).
        card_group: SmallStr,
        /// Benefit level digit of the card (1–5).
        card_benefit_level: i32,
        /// Province code printed on the card (may be a pre-2025 code).
        card_province_code: SmallStr,
        /// Current province of the card's issuing province (through the province reference table).
        card_province: SmallStr,
        /// Number of cards given in MA_THE_BHYT (`;`-separated).
        n_cards: i32,
        /// Registered primary-care facility (MA_DKBD).
        registered_facility: Option<SmallStr>,
        /// Sex (GIOI_TINH: 1 male, 2 female, 3 unknown).
        sex: Option<i32>,
        /// Age in whole years at admission (from NGAY_SINH; the birth date itself is not kept).
        age_years: Option<i32>,
        /// Age band at admission: <1, 1-5, 6-15, 16-44, 45-64, 65-79, 80+, unknown.
        age_band: SmallStr,
        /// Main diagnosis, ICD-10 (MA_BENH_CHINH; 4210: MA_BENH), upper-case.
        dx_main: SmallStr,
        /// First 3 characters of the main diagnosis (ICD-10 category).
        dx3: SmallStr,
        /// Secondary diagnoses (MA_BENH_KT; 4210: MA_BENHKHAC), `;`-separated.
        dx_secondary: Option<SmallStr>,
        /// How the patient came (MA_DOITUONG_KCB; 4210: MA_LYDO_VVIEN).
        arrival_type: Option<SmallStr>,
        /// Admission / arrival time (NGAY_VAO).
        admit_time: Ts,
        /// Discharge time (NGAY_RA).
        discharge_time: Ts,
        /// Discharge date: the date that places the visit in a period.
        discharge_date: Day,
        /// Length of stay in days: SO_NGAY_DTRI when given, else discharge date − admission date (at least 1 for inpatient types, 0 otherwise).
        los_days: i32,
        /// Days of treatment as declared (SO_NGAY_DTRI).
        treatment_days: Option<i32>,
        /// Treatment outcome (KET_QUA_DTRI).
        outcome: Option<SmallStr>,
        /// Kind of discharge (MA_LOAI_RV).
        discharge_kind: Option<SmallStr>,
        /// Visit type (MA_LOAI_KCB), normalised to Decision 130's two digits (4210's 1/2/3 → 01/02/03).
        visit_type: SmallStr,
        /// Visit type group: outpatient_exam, outpatient_treatment, inpatient, day_inpatient, other.
        visit_group: SmallStr,
        /// Whether the visit type is an inpatient one (03, 04, 06, 09).
        inpatient: bool,
        /// Department (MA_KHOA).
        department: Option<SmallStr>,
        /// Weight in kg (CAN_NANG; newborns).
        weight_kg: Option<f64>,
        /// Total cost at hospital prices, VND (T_TONGCHI_BV; 4210: T_TONGCHI).
        total_cost: f64,
        /// Total within insurance scope, VND (T_TONGCHI_BH).
        insured_cost: Option<f64>,
        /// Amount paid by the insurance fund, VND (T_BHTT).
        fund_paid: Option<f64>,
        /// Patient co-payment, VND (T_BNCCT).
        patient_copay: Option<f64>,
        /// Patient self-pay, VND (T_BNTT).
        patient_self_pay: Option<f64>,
        /// Other sources, VND (T_NGUONKHAC).
        other_sources: Option<f64>,
        /// Declared drug total, VND (T_THUOC).
        drug_total: Option<f64>,
        /// Declared supplies total, VND (T_VTYT).
        supply_total: Option<f64>,
        /// Settlement year (NAM_QT).
        settle_year: Option<i32>,
        /// Settlement month (THANG_QT).
        settle_month: Option<i32>,
        /// Province code in the facility code (first 2 characters; may be pre-2025).
        facility_province_code: SmallStr,
        /// Current province of the facility.
        facility_province: SmallStr,
        /// True when the card's current province differs from the facility's current province.
        out_of_province: bool,
        /// Number of accepted lines of the visit.
        n_lines: i32,
        /// Sum of the visit's line amounts (THANH_TIEN_BV), VND.
        lines_total: f64,
        /// Calendar year of the discharge date (partition key).
        year: i32,
        /// Calendar month of the discharge date (partition key).
        month: i32,
        /// ISO-8601 week-numbering year of the discharge date.
        iso_year: i32,
        /// ISO-8601 week of the discharge date.
        iso_week: i32,
    }
}

table! {
    /// One drug (XML2) or service/supply/bed-day (XML3) line.
    LineRow, LINE_COLUMNS {
        /// Facility code of the visit (MA_CSKCB).
        facility_code: SmallStr,
        /// Visit link key (MA_LK).
        ma_lk: SmallStr,
        /// Ingest sequence number of the source file; joins the line to its visit's version.
        source_seq: i64,
        /// Integer key of the visit version the line belongs to (see visits.visit_key).
        visit_key: i64,
        /// Line number within the visit (STT).
        stt: i32,
        /// Source table: XML2 (drugs) or XML3 (services, supplies, bed-days).
        source_table: SmallStr,
        /// Item code: MA_THUOC for drugs, else MA_DICH_VU, else MA_VAT_TU.
        item_code: SmallStr,
        /// Supply code (MA_VAT_TU), when given.
        supply_code: Option<SmallStr>,
        /// Cost group (MA_NHOM, 1–15; later amendments add codes).
        ma_nhom: i32,
        /// Normalised category of MA_NHOM: exam, bed, lab, imaging, functional_test, procedure, drug, supply, blood, transport, other.
        category: SmallStr,
        /// Item name (TEN_THUOC / TEN_DICH_VU / TEN_VAT_TU).
        item_name: Option<SmallStr>,
        /// Unit (DON_VI_TINH).
        unit: Option<SmallStr>,
        /// Quantity (SO_LUONG).
        quantity: f64,
        /// Unit price at hospital prices, VND (DON_GIA / DON_GIA_BV).
        unit_price: f64,
        /// Unit price within insurance scope, VND (DON_GIA_BH).
        unit_price_bh: Option<f64>,
        /// Service payment rate, % (TYLE_TT_DV; 4210: TYLE_TT).
        service_rate_pct: Option<f64>,
        /// Insurance payment rate, % (TYLE_TT_BH).
        insurance_rate_pct: Option<f64>,
        /// Line amount at hospital prices, VND (THANH_TIEN_BV; 4210: THANH_TIEN).
        amount: f64,
        /// Line amount within insurance scope, VND (THANH_TIEN_BH).
        amount_bh: Option<f64>,
        /// Paid by the fund, VND (T_BHTT).
        fund_paid: Option<f64>,
        /// Patient co-payment, VND (T_BNCCT).
        patient_copay: Option<f64>,
        /// Patient self-pay, VND (T_BNTT).
        patient_self_pay: Option<f64>,
        /// Scope (PHAM_VI: 1 in scope, 2 out).
        scope: Option<i32>,
        /// Benefit percentage (MUC_HUONG).
        benefit_pct: Option<f64>,
        /// Department (MA_KHOA).
        department: Option<SmallStr>,
        /// Prescriber / performing doctor code (MA_BAC_SI).
        prescriber: Option<SmallStr>,
        /// Bed code (MA_GIUONG).
        bed_code: Option<SmallStr>,
        /// Diagnosis attached to the line (MA_BENH).
        dx: Option<SmallStr>,
        /// Surgery/procedure code (MA_PTTT).
        procedure_code: Option<SmallStr>,
        /// Order time (NGAY_YL).
        order_time: Option<Ts>,
        /// Execution time (NGAY_TH_YL).
        perform_time: Option<Ts>,
        /// Discharge date of the visit (places the line in a period).
        discharge_date: Day,
        /// Calendar year of the visit's discharge date (partition key).
        year: i32,
        /// Calendar month of the visit's discharge date (partition key).
        month: i32,
    }
}

table! {
    /// One input record that was not accepted, and why. Never holds a raw
    /// personal value: reasons name the field, not its content.
    QuarantineRow, QUARANTINE_COLUMNS {
        /// Source file (zip members as `archive.zip!member`).
        source_file: String,
        /// Ingest sequence number of the source file.
        source_seq: i64,
        /// Table of the record: XML1 (visit), XML2/XML3 (line), document (an unreadable inner document), facilities, budgets.
        table_name: String,
        /// Record identifier: MA_LK for visits, MA_LK/STT for lines, row number for registry rows.
        record: String,
        /// Facility code when known.
        facility_code: Option<String>,
        /// Position in the source: byte offset (XML) or line/row number (CSV, Parquet).
        position: i64,
        /// Field at fault (source field name), when one is.
        field: Option<String>,
        /// Rule that failed (see the data dictionary for the list).
        rule: String,
        /// Human-readable reason (no personal values).
        reason: String,
    }
}

/// Quarantine rules with their meaning, for the data dictionary.
pub const RULES: &[(&str, &str)] = &[
    ("missing_field", "a required field is absent or empty (visits: MA_LK, MA_CSKCB, MA_THE_BHYT, MA_BENH_CHINH, MA_LOAI_KCB, NGAY_VAO, NGAY_RA, T_TONGCHI_BV; lines: MA_LK, item code, MA_NHOM, SO_LUONG, DON_GIA, THANH_TIEN_BV)"),
    ("bad_date", "a date is not yyyyMMddHHmm / yyyyMMdd / ISO / the mapping's format, or is not a calendar date"),
    ("bad_number", "an amount or quantity is not a number"),
    ("bad_value", "a coded value is unknown (MA_LOAI_KCB; registry level/grade/kind/province)"),
    ("discharge_before_admission", "NGAY_RA is before NGAY_VAO"),
    ("negative_amount", "an amount, quantity or price is negative"),
    ("line_total_mismatch", "THANH_TIEN_BV differs from SO_LUONG × DON_GIA (× TYLE_TT_DV %) beyond max(1 VND, 0.1 %)"),
    ("visit_total_mismatch", "T_TONGCHI_BV differs from the sum of the visit's lines beyond max(10 VND, 0.1 %)"),
    ("orphan_line", "no visit with the line's MA_LK came in the same HOSO (envelopes) or batch (loose tables)"),
    ("duplicate_visit", "the same facility + MA_LK appears twice in one file (across files it is a resubmission: the newest wins)"),
    ("unknown_facility", "MA_CSKCB is not in the facility registry"),
    ("invalid_card", "MA_THE_BHYT is not 2 letters + benefit level 1–5 + a known 2-digit province + 10 digits"),
    ("visit_rejected", "a line whose visit was quarantined (the rule of the visit is in the reason)"),
    ("unreadable_document", "an inner document of the HOSO could not be decoded or parsed (bad base64, bad XML, not UTF-8); the HOSO's readable rows are quarantined"),
    ("duplicate_record", "a registry or budget row listed twice"),
    ("damaged_file", "an envelope is damaged part-way (truncated, garbage inside an inline document): the complete HOSO records before the damage are read, this row stands for the rest of the file, which could not be (`--damaged reject` refuses the whole file instead)"),
    ("too_long", "a field is longer than any claims system writes: 2048 characters for names, addresses, card lists, secondary diagnoses, departments, doctors and procedures; 255 for every other code, date or amount"),
];

/// Renders the data dictionary (`datasets/data-dictionary.md`).
pub fn render_dictionary() -> String {
    let mut s = String::from(
        "# Data dictionary of the claims store\n\n\
         Generated from `src/schema.rs` (a test keeps this file in sync: \
         `UPDATE_DICTIONARY=1 cargo test --test dictionary` rewrites it).\n\n\
         Types: `str`, `i32`, `i64`, `f64`, `bool`, `date`, `datetime[ms]` (UTC-naive local time \
         as written in the claim, millisecond precision; stored as Delta `timestamp_ntz`, microseconds); `?` marks a nullable column. Amounts are VND.\n\n\
         Layout: Delta Lake tables `data/visits`, `data/lines`, `data/quarantine` and \
         `data/superseded` (each with its `_delta_log/`), plus `data/registry/{facilities,budgets,quarantine}.parquet` \
         and `data/manifest.sqlite`.\n\n\
         Partition columns (visits and lines): `facility_province_code` (str: the first two characters \
         of the facility code, as in the claim; a merged province's jobs read each of its old codes), \
         `year` (i32) and `month` (i32, 1–12, not zero-padded) of the discharge. They live in the Delta \
         log (typed by the table's schema) and in the folder names \
         (`facility_province_code=92/year=2024/month=3/`), never inside the data files: one truth. \
         Engines that read Delta (Spark, Trino, DuckDB `delta_scan`, Python `deltalake`/`polars.read_delta`) \
         get them as typed columns. `superseded` lists the visit versions (`visit_key`, `claim_key`) \
         replaced by a newer version of the same claim, decided when the newer one was written: the \
         current visits are `visits` anti-joined on `visit_key`, which `Store::visits()` / \
         `Store::lines()` do.\n\
         The manifest (SQLite) holds `sources` (one row per file read: content hash — BLAKE3, \
         `b3:` + hex; SHA-256 hex in stores written before 2026-12-07 —, status, counts), `parts` (which data files hold which source's rows), `snapshots` (the table \
         versions of each completed publish: readers use the newest, `--as-of-snapshot` an older one), \
         `settings` (store layout version, the key's fingerprint) and `runs` (append-only: each stage's finished runs with \
         their inputs and summary as JSON; `bhyt status` shows the last of each).\n",
    );
    for (title, cols) in [
        ("visits — one row per visit (XML1, MA_LK)", VISIT_COLUMNS),
        (
            "lines — one row per drug / service / supply / bed-day line (XML2, XML3)",
            LINE_COLUMNS,
        ),
        (
            "quarantine — one row per record not accepted",
            QUARANTINE_COLUMNS,
        ),
    ] {
        s.push_str(&format!(
            "\n## {title}\n\n| column | type | meaning |\n|---|---|---|\n"
        ));
        for c in cols {
            s.push_str(&format!(
                "| `{}` | {} | {} |\n",
                c.name,
                c.dtype,
                c.doc.trim()
            ));
        }
    }
    s.push_str("\n## registry/facilities.parquet\n\n| column | type | meaning |\n|---|---|---|\n\
        | `facility_code` | str | MA_CSKCB |\n| `name` | str? | facility name |\n\
        | `province_code` | str | province code as given (may be pre-2025) |\n\
        | `province` | str | current province code |\n\
        | `level` | str? | central, provincial, district, commune |\n\
        | `grade` | str? | special, I, II, III, IV, unranked |\n\
        | `ownership` | str? | public, private |\n| `kind` | str? | general, specialist, clinic |\n\
        | `previous_code` | str? | the code the facility claimed under before a merger or re-coding (`previous_code`, `ma_cskcb_cu`); forecasts join the two series |\n\
        \n## registry/budgets.parquet\n\n| column | type | meaning |\n|---|---|---|\n\
        | `facility_code` | str | MA_CSKCB |\n| `year` | i32 | budget year |\n| `budget_vnd` | f64 | yearly budget (*dự toán*), VND |\n");
    s.push_str("\n## Quarantine rules\n\n| rule | meaning |\n|---|---|\n");
    for (r, m) in RULES {
        s.push_str(&format!("| `{r}` | {m} |\n"));
    }
    s.push_str(
        "\n## Personal data\n\nNever stored: HO_TEN, DIA_CHI, DIEN_THOAI, NGAY_SINH (only age in years). \
         Stored only as keyed hashes (HMAC-SHA256, key from `BHYT_PSEUDONYM_KEY` or a key file): \
         the card's social-insurance number (`patient_key`), the card number (`card_key`), SO_CCCD \
         (`citizen_key`), MA_BN (`patient_code_key`).\n",
    );
    s
}

/// A date column (Date or days since 1970) as chrono dates; nulls stay `None`.
pub fn date_column(
    df: &polars::prelude::DataFrame,
    c: &str,
) -> polars::prelude::PolarsResult<Vec<Option<chrono::NaiveDate>>> {
    use polars::prelude::DataType;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    Ok(df
        .column(c)?
        .cast(&DataType::Int32)?
        .i32()?
        .iter()
        .map(|v| v.map(|d| epoch + chrono::Duration::days(d as i64)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_make_typed_frame() {
        let row = QuarantineRow {
            source_file: "a.xml".into(),
            source_seq: 1,
            table_name: "XML1".into(),
            record: "LK1".into(),
            facility_code: None,
            position: 10,
            field: Some("NGAY_RA".into()),
            rule: "bad_date".into(),
            reason: "x".into(),
        };
        let df = QuarantineRow::frame(std::iter::once(&row));
        assert_eq!(df.height(), 1);
        assert_eq!(df.width(), QUARANTINE_COLUMNS.len());
        assert_eq!(df.column("position").unwrap().dtype(), &DataType::Int64);
    }

    /// The Polars type a dictionary type names (nullable or not).
    fn polars_type(dtype: &str) -> DataType {
        match dtype.trim_end_matches('?') {
            "str" => DataType::String,
            "i32" => DataType::Int32,
            "i64" => DataType::Int64,
            "f64" => DataType::Float64,
            "bool" => DataType::Boolean,
            "datetime[ms]" => DataType::Datetime(TimeUnit::Milliseconds, None),
            "date" => DataType::Date,
            other => panic!("no Polars type for {other}"),
        }
    }

    #[test]
    fn every_column_has_the_type_the_dictionary_gives() {
        let frames = [
            (VisitRow::frame(std::iter::empty()), VISIT_COLUMNS),
            (LineRow::frame(std::iter::empty()), LINE_COLUMNS),
            (QuarantineRow::frame(std::iter::empty()), QUARANTINE_COLUMNS),
        ];
        for (df, dict) in frames {
            assert_eq!(df.width(), dict.len());
            for (c, doc) in df.columns().iter().zip(dict) {
                assert_eq!(c.name().as_str(), doc.name);
                assert_eq!(c.dtype(), &polars_type(doc.dtype), "{}", doc.name);
            }
        }
    }
}
