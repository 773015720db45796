//! The facility registry (code, name, province, level, grade, ownership,
//! kind) and yearly budgets, read from CSV. Each load replaces the stored
//! table; invalid rows are quarantined like claims.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use polars::prelude::*;

use super::convert::{FacilityInfo, Issue, Rule, SourceCtx, ValueFormat};
use super::{Counts, IngestError};
use crate::reference::Reference;
use crate::schema::QuarantineRow;
use crate::store::{write_parquet_atomic, Store};

/// Normalises the level (*tuyến*).
fn level(v: &str) -> Option<&'static str> {
    match v.trim().to_lowercase().as_str() {
        "central" | "trung ương" | "trung uong" | "tw" | "1" => Some("central"),
        "provincial" | "tỉnh" | "tinh" | "2" => Some("provincial"),
        "district" | "huyện" | "huyen" | "3" => Some("district"),
        "commune" | "xã" | "xa" | "4" => Some("commune"),
        _ => None,
    }
}

/// Normalises the grade (*hạng*).
fn grade(v: &str) -> Option<&'static str> {
    match v.trim().to_lowercase().as_str() {
        "special" | "đặc biệt" | "dac biet" | "db" => Some("special"),
        "i" | "1" => Some("I"),
        "ii" | "2" => Some("II"),
        "iii" | "3" => Some("III"),
        "iv" | "4" => Some("IV"),
        "unranked" | "none" | "chưa xếp hạng" => Some("unranked"),
        _ => None,
    }
}

fn ownership(v: &str) -> Option<&'static str> {
    match v.trim().to_lowercase().as_str() {
        "public" | "công lập" | "cong lap" => Some("public"),
        "private" | "tư nhân" | "tu nhan" | "ngoài công lập" => Some("private"),
        _ => None,
    }
}

fn kind(v: &str) -> Option<&'static str> {
    match v.trim().to_lowercase().as_str() {
        "general" | "đa khoa" | "da khoa" => Some("general"),
        "specialist" | "chuyên khoa" | "chuyen khoa" => Some("specialist"),
        "clinic" | "phòng khám" | "phong kham" => Some("clinic"),
        _ => None,
    }
}

fn header_index(h: &csv::StringRecord, names: &[&str]) -> Option<usize> {
    h.iter().position(|c| {
        let c = c.trim().trim_start_matches('\u{feff}').to_lowercase();
        names.iter().any(|n| *n == c)
    })
}

/// The names a column is known by: its own list, plus the one a `--mapping`
/// file gives it (`[registry.columns]`, `[budgets.columns]`).
fn names_of(own: &'static [&'static str], mapped: &HashMap<String, String>) -> Vec<String> {
    let mut v: Vec<String> = own.iter().map(|s| s.to_string()).collect();
    if let Some(m) = mapped.get(own[0]) {
        v.push(m.trim().to_lowercase());
    }
    v
}

fn index_of(h: &csv::StringRecord, names: &[String]) -> Option<usize> {
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    header_index(h, &refs)
}

/// The columns of a header that none of `known` names: a user who wrote
/// `ten_co_so` for the name must hear that it was not read, not find the
/// names missing later.
fn unknown_columns(h: &csv::StringRecord, known: &[Vec<String>], file: &Path) -> Vec<String> {
    h.iter()
        .enumerate()
        .filter(|(i, _)| !known.iter().any(|names| index_of(h, names) == Some(*i)))
        .map(|(_, c)| {
            format!(
                "{}: column `{}` is not read (known columns: {})",
                file.display(),
                c.trim().trim_start_matches('\u{feff}'),
                known
                    .iter()
                    .map(|n| n[0].as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect()
}

/// Column names of the registry and the budgets: English, then the
/// Vietnamese ones users write (without diacritics, as in the claims).
const CODE: &[&str] = &["facility_code", "ma_cskcb", "code", "ma_co_so"];
const PROVINCE: &[&str] = &["province_code", "ma_tinh", "province", "tinh"];
const NAME: &[&str] = &["name", "ten_cskcb", "ten_co_so", "ten", "ten_benh_vien"];
const LEVEL: &[&str] = &["level", "tuyen", "tuyen_kt", "tuyen_chuyen_mon"];
const GRADE: &[&str] = &["grade", "hang", "hang_bv", "hang_benh_vien"];
const OWNERSHIP: &[&str] = &["ownership", "so_huu", "hinh_thuc_so_huu", "cong_lap"];
const KIND: &[&str] = &["kind", "loai", "loai_hinh", "loai_hinh_cskcb", "loai_co_so"];
const PREVIOUS: &[&str] = &["previous_code", "ma_cskcb_cu", "ma_cu"];
const YEAR: &[&str] = &["year", "nam"];
const AMOUNT: &[&str] = &["budget_vnd", "amount", "du_toan", "du_toan_vnd", "so_tien"];

fn open_csv(path: &Path) -> Result<csv::Reader<std::fs::File>, IngestError> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| IngestError::Source {
            file: path.display().to_string(),
            position: 0,
            message: e.to_string(),
        })
}

fn csv_error(path: &Path, e: csv::Error) -> IngestError {
    IngestError::Source {
        file: path.display().to_string(),
        position: e.position().map(|p| p.line()).unwrap_or(0),
        message: e.to_string(),
    }
}

/// Loads the facility registry CSV into the store.
pub fn load_facilities(
    path: &Path,
    store: &Store,
    reference: &Reference,
    mapped: &HashMap<String, String>,
) -> Result<(Counts, Vec<QuarantineRow>, Vec<String>), IngestError> {
    let mut rdr = open_csv(path)?;
    let h = rdr.headers().map_err(|e| csv_error(path, e))?.clone();
    let [code, prov, name, lvl, grd, own, knd, prev] = [
        CODE, PROVINCE, NAME, LEVEL, GRADE, OWNERSHIP, KIND, PREVIOUS,
    ]
    .map(|n| names_of(n, mapped));
    let need = |names: &[String], what: &str| {
        index_of(&h, names).ok_or_else(|| IngestError::Source {
            file: path.display().to_string(),
            position: 1,
            message: format!("facility registry has no {what} column"),
        })
    };
    let i_code = need(&code, "facility_code")?;
    let i_prov = need(&prov, "province_code")?;
    let i_name = index_of(&h, &name);
    let i_level = index_of(&h, &lvl);
    let i_grade = index_of(&h, &grd);
    let i_own = index_of(&h, &own);
    let i_kind = index_of(&h, &knd);
    // After a merger or a re-coding, the code a facility claimed under
    // before: forecasts join the two series.
    let i_prev = index_of(&h, &prev);
    let warnings = unknown_columns(&h, &[code, name, prov, lvl, grd, own, knd, prev], path);
    let ctx = SourceCtx::new(&path.display().to_string(), 0);
    let mut counts = Counts::default();
    let mut q = Vec::new();
    let mut seen = HashSet::new();
    let mut cols: [Vec<Option<String>>; 9] = Default::default();
    for (n, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| csv_error(path, e))?;
        counts.read += 1;
        let row_no = n as u64 + 2;
        let get = |i: Option<usize>| {
            i.and_then(|i| rec.get(i))
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let code = get(Some(i_code));
        let result = (|| -> Result<[Option<String>; 9], Issue> {
            let code = code.ok_or_else(|| {
                Issue::new(
                    Rule::MissingField,
                    Some("facility_code"),
                    "facility_code is missing",
                )
            })?;
            if !seen.insert(code.to_string()) {
                return Err(Issue::new(
                    Rule::DuplicateRecord,
                    Some("facility_code"),
                    format!("facility {code} is listed twice"),
                ));
            }
            let prov = get(Some(i_prov)).ok_or_else(|| {
                Issue::new(
                    Rule::MissingField,
                    Some("province_code"),
                    "province_code is missing",
                )
            })?;
            let p = reference.province(prov).ok_or_else(|| {
                Issue::new(
                    Rule::BadValue,
                    Some("province_code"),
                    format!("province code '{prov}' is not in the province table"),
                )
            })?;
            let norm = |i: Option<usize>,
                        field: &'static str,
                        f: fn(&str) -> Option<&'static str>|
             -> Result<Option<String>, Issue> {
                match get(i) {
                    None => Ok(None),
                    Some(v) => f(v).map(|s| Some(s.to_string())).ok_or_else(|| {
                        Issue::new(
                            Rule::BadValue,
                            Some(field),
                            format!("{field} '{v}' is not recognised"),
                        )
                    }),
                }
            };
            Ok([
                Some(code.to_string()),
                get(i_name).map(str::to_string),
                Some(prov.to_string()),
                Some(p.current_code.clone()),
                norm(i_level, "level", level)?,
                norm(i_grade, "grade", grade)?,
                norm(i_own, "ownership", ownership)?,
                norm(i_kind, "kind", kind)?,
                get(i_prev).filter(|p| *p != code).map(str::to_string),
            ])
        })();
        match result {
            Ok(row) => {
                counts.accepted += 1;
                for (c, v) in cols.iter_mut().zip(row) {
                    c.push(v);
                }
            }
            Err(issue) => {
                counts.quarantined += 1;
                q.push(ctx.quarantine("facilities", format!("row {row_no}"), code, row_no, &issue));
            }
        }
    }
    let names = [
        "facility_code",
        "name",
        "province_code",
        "province",
        "level",
        "grade",
        "ownership",
        "kind",
        "previous_code",
    ];
    let columns: Vec<Column> = names
        .iter()
        .zip(cols)
        .map(|(n, v)| Column::new((*n).into(), v))
        .collect();
    let mut df =
        DataFrame::new_infer_height(columns).map_err(|e| IngestError::Other(e.to_string()))?;
    write_parquet_atomic(&mut df, &store.facilities_path())?;
    Ok((counts, q, warnings))
}

/// Loads yearly budgets (facility, year, VND) into the store.
pub fn load_budgets(
    path: &Path,
    store: &Store,
    facilities: &HashMap<String, FacilityInfo>,
    mapped: &HashMap<String, String>,
) -> Result<(Counts, Vec<QuarantineRow>, Vec<String>), IngestError> {
    let mut rdr = open_csv(path)?;
    let h = rdr.headers().map_err(|e| csv_error(path, e))?.clone();
    let [code, year, amount] = [CODE, YEAR, AMOUNT].map(|n| names_of(n, mapped));
    let need = |names: &[String], what: &str| {
        index_of(&h, names).ok_or_else(|| IngestError::Source {
            file: path.display().to_string(),
            position: 1,
            message: format!("budgets file has no {what} column"),
        })
    };
    let i_code = need(&code, "facility_code")?;
    let i_year = need(&year, "year")?;
    let i_amount = need(&amount, "budget_vnd")?;
    let warnings = unknown_columns(&h, &[code, year, amount], path);
    let ctx = SourceCtx::new(&path.display().to_string(), 0);
    let fmt = ValueFormat::default();
    let mut counts = Counts::default();
    let mut q = Vec::new();
    let (mut codes, mut years, mut amounts) = (Vec::new(), Vec::new(), Vec::new());
    let mut seen = HashSet::new();
    for (n, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| csv_error(path, e))?;
        counts.read += 1;
        let row_no = n as u64 + 2;
        let get = |i: usize| rec.get(i).map(str::trim).filter(|s| !s.is_empty());
        let code = get(i_code);
        let result = (|| -> Result<(String, i32, f64), Issue> {
            let code = code.ok_or_else(|| {
                Issue::new(
                    Rule::MissingField,
                    Some("facility_code"),
                    "facility_code is missing",
                )
            })?;
            if !facilities.contains_key(code) {
                return Err(Issue::new(
                    Rule::UnknownFacility,
                    Some("facility_code"),
                    format!("facility {code} is not in the registry"),
                ));
            }
            let y = get(i_year)
                .ok_or_else(|| Issue::new(Rule::MissingField, Some("year"), "year is missing"))?;
            let y: i32 = y
                .parse()
                .ok()
                .filter(|y| (1990..=2100).contains(y))
                .ok_or_else(|| {
                    Issue::new(
                        Rule::BadNumber,
                        Some("year"),
                        format!("year '{y}' is not a year"),
                    )
                })?;
            let a = get(i_amount).ok_or_else(|| {
                Issue::new(
                    Rule::MissingField,
                    Some("budget_vnd"),
                    "budget_vnd is missing",
                )
            })?;
            let a = super::convert::parse_number(a, &fmt).ok_or_else(|| {
                Issue::new(
                    Rule::BadNumber,
                    Some("budget_vnd"),
                    format!("budget_vnd '{a}' is not a number"),
                )
            })?;
            if a < 0.0 {
                return Err(Issue::new(
                    Rule::NegativeAmount,
                    Some("budget_vnd"),
                    "budget_vnd is negative",
                ));
            }
            if !seen.insert((code.to_string(), y)) {
                return Err(Issue::new(
                    Rule::DuplicateRecord,
                    Some("year"),
                    format!("budget of {code} for {y} is listed twice"),
                ));
            }
            Ok((code.to_string(), y, a))
        })();
        match result {
            Ok((c, y, a)) => {
                counts.accepted += 1;
                codes.push(c);
                years.push(y);
                amounts.push(a);
            }
            Err(issue) => {
                counts.quarantined += 1;
                q.push(ctx.quarantine("budgets", format!("row {row_no}"), code, row_no, &issue));
            }
        }
    }
    let mut df = DataFrame::new_infer_height(vec![
        Column::new("facility_code".into(), codes),
        Column::new("year".into(), years),
        Column::new("budget_vnd".into(), amounts),
    ])
    .map_err(|e| IngestError::Other(e.to_string()))?;
    write_parquet_atomic(&mut df, &store.budgets_path())?;
    Ok((counts, q, warnings))
}

/// Reads the stored registry into the lookup the converter uses.
pub fn facility_lookup(store: &Store) -> Result<HashMap<String, FacilityInfo>, IngestError> {
    let df = store
        .facilities()?
        .collect()
        .map_err(|e| IngestError::Other(e.to_string()))?;
    let codes = df.column("facility_code").and_then(|c| c.str().cloned());
    let provs = df.column("province").and_then(|c| c.str().cloned());
    let pcodes = df.column("province_code").and_then(|c| c.str().cloned());
    let (codes, provs, pcodes) = match (codes, provs, pcodes) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        _ => {
            return Err(IngestError::Other(
                "stored facility registry has an unexpected schema".into(),
            ))
        }
    };
    let mut out = HashMap::new();
    for i in 0..df.height() {
        if let (Some(c), Some(p), Some(pc)) = (codes.get(i), provs.get(i), pcodes.get(i)) {
            out.insert(
                c.to_string(),
                FacilityInfo {
                    province: p.to_string(),
                    province_code: pc.to_string(),
                },
            );
        }
    }
    Ok(out)
}
