//! CSV and Parquet extracts, mapped onto the Decision 130 vocabulary by a
//! TOML column mapping (see `datasets/mappings/`).
//!
//! A file holds either visits or lines; which one is told by its (mapped)
//! header. Columns named with the Decision 130 names need no mapping.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use polars::prelude::*;
use serde::Deserialize;

use super::convert::ValueFormat;
use super::fields::{line_field, visit_field, RawRecord, RowKind};
use super::source::SourceFile;
use super::IngestError;

/// Column mapping of one table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableMapping {
    /// Decision 130 field name → the extract's column name.
    #[serde(default)]
    pub columns: HashMap<String, String>,
    /// Decision 130 field name → (extract's value → standard value), e.g.
    /// `MA_LOAI_KCB = { IP = "03", OP = "01" }`.
    #[serde(default)]
    pub values: HashMap<String, HashMap<String, String>>,
}

/// A TOML column mapping for a foreign CSV/Parquet schema.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// CSV field delimiter (default `,`).
    #[serde(default)]
    pub delimiter: Option<char>,
    /// chrono format of date-times when they are not `yyyyMMddHHmm`,
    /// e.g. `"%d/%m/%Y %H:%M"`.
    #[serde(default)]
    pub date_format: Option<String>,
    /// Amounts written with a decimal comma (`1.234,5`).
    #[serde(default)]
    pub decimal_comma: bool,
    #[serde(default)]
    pub visits: TableMapping,
    #[serde(default)]
    pub lines: TableMapping,
    /// The facility registry's columns (`facility_code`, `name`,
    /// `province_code`, `level`, `grade`, `ownership`, `kind`,
    /// `previous_code`) → the file's column names.
    #[serde(default)]
    pub registry: TableMapping,
    /// The budgets' columns (`facility_code`, `year`, `budget_vnd`).
    #[serde(default)]
    pub budgets: TableMapping,
}

impl Mapping {
    pub fn load(path: &Path) -> Result<Self, IngestError> {
        let text = std::fs::read_to_string(path).map_err(|e| IngestError::Mapping {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let m: Mapping = toml::from_str(&text).map_err(|e| IngestError::Mapping {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        for (table, tm) in [("visits", &m.visits), ("lines", &m.lines)] {
            for k in tm.columns.keys().chain(tm.values.keys()) {
                let known = if table == "visits" {
                    visit_field(k.as_bytes()).is_some()
                } else {
                    line_field(k.as_bytes()).is_some()
                };
                if !known {
                    return Err(IngestError::Mapping {
                        path: path.to_path_buf(),
                        message: format!("[{table}] maps unknown Decision 130 field {k}"),
                    });
                }
            }
        }
        Ok(m)
    }

    pub fn value_format(&self) -> ValueFormat {
        ValueFormat {
            date_format: self.date_format.clone(),
            decimal_comma: self.decimal_comma,
        }
    }
}

/// How the columns of one file map onto the vocabulary.
struct Layout {
    kind: RowKind,
    /// Per source column: the field slot it fills.
    slots: Vec<Option<usize>>,
    /// Per slot: value translation.
    values: HashMap<usize, HashMap<String, String>>,
}

const VISIT_MARKERS: &[&str] = &[
    "NGAY_RA",
    "T_TONGCHI_BV",
    "T_TONGCHI",
    "MA_THE_BHYT",
    "MA_THE",
];
const LINE_MARKERS: &[&str] = &["THANH_TIEN_BV", "THANH_TIEN", "MA_NHOM", "SO_LUONG"];

fn layout(header: &[String], mapping: &Mapping, file: &str) -> Result<Layout, IngestError> {
    let canon = |tm: &TableMapping, h: &str| -> String {
        tm.columns
            .iter()
            .find(|(_, v)| v.as_str() == h)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| h.trim().to_ascii_uppercase())
    };
    let as_visit: Vec<String> = header.iter().map(|h| canon(&mapping.visits, h)).collect();
    let as_line: Vec<String> = header.iter().map(|h| canon(&mapping.lines, h)).collect();
    let is_visit = as_visit.iter().any(|c| VISIT_MARKERS.contains(&c.as_str()));
    let is_line = as_line.iter().any(|c| LINE_MARKERS.contains(&c.as_str()));
    let (kind, names, tm) = match (is_visit, is_line) {
        (true, false) => (RowKind::Visit, as_visit, &mapping.visits),
        (false, true) => (RowKind::Service, as_line, &mapping.lines),
        _ => {
            return Err(IngestError::Source {
                file: file.to_string(),
                position: 1,
                message: "cannot tell from the header whether the file holds visits (NGAY_RA, \
                          T_TONGCHI_BV, MA_THE_BHYT) or lines (THANH_TIEN_BV, MA_NHOM, SO_LUONG); \
                          check the column mapping"
                    .into(),
            })
        }
    };
    let slots: Vec<Option<usize>> = names
        .iter()
        .map(|n| kind.field_index(n.as_bytes()))
        .collect();
    let values = tm
        .values
        .iter()
        .filter_map(|(k, v)| kind.field_index(k.as_bytes()).map(|i| (i, v.clone())))
        .collect();
    Ok(Layout {
        kind,
        slots,
        values,
    })
}

fn fill<'a>(
    layout: &Layout,
    cells: impl Iterator<Item = Option<&'a str>>,
    position: u64,
) -> RawRecord<'static> {
    let mut rec = RawRecord::new(layout.kind, position);
    for (slot, cell) in layout.slots.iter().zip(cells) {
        if let (Some(i), Some(v)) = (slot, cell) {
            let v = match layout.values.get(i).and_then(|m| m.get(v.trim())) {
                Some(mapped) => mapped.clone(),
                None => v.to_string(),
            };
            rec.set(*i, Cow::Owned(v));
        }
    }
    rec
}

/// Reads every row of a CSV source.
pub fn for_each_csv(
    src: &SourceFile,
    mapping: &Mapping,
    f: &mut dyn FnMut(RawRecord<'static>) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let io = |e: std::io::Error| IngestError::Source {
        file: src.display.clone(),
        position: 0,
        message: e.to_string(),
    };
    let reader = src.open(None).map_err(io)?;
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(mapping.delimiter.unwrap_or(',') as u8)
        .flexible(false)
        .from_reader(reader);
    let csv_err = |e: csv::Error| {
        let position = e.position().map(|p| p.line()).unwrap_or(0);
        let message = match e.kind() {
            csv::ErrorKind::Utf8 { .. } => format!("{e}; the file is not UTF-8 (wrong encoding?)"),
            _ => e.to_string(),
        };
        IngestError::Source {
            file: src.display.clone(),
            position,
            message,
        }
    };
    let header: Vec<String> = rdr
        .headers()
        .map_err(csv_err)?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_string())
        .collect();
    let layout = layout(&header, mapping, &src.display)?;
    let mut rec = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {
                let line = rec.position().map(|p| p.line()).unwrap_or(0);
                f(fill(&layout, rec.iter().map(Some), line))?;
            }
            Err(e) => return Err(csv_err(e)),
        }
    }
    Ok(())
}

/// Rows read from Parquet at a time: bounds memory on large extracts.
const PARQUET_CHUNK: u32 = 65_536;

/// Reads every row of a Parquet source, a chunk at a time.
pub fn for_each_parquet(
    src: &SourceFile,
    mapping: &Mapping,
    f: &mut dyn FnMut(RawRecord<'static>) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let perr = |e: PolarsError| IngestError::Source {
        file: src.display.clone(),
        position: 0,
        message: e.to_string(),
    };
    let path = match &src.location {
        super::source::Location::File(p) => p.clone(),
        super::source::Location::ZipMember { .. } => unreachable!("parquet members are skipped"),
    };
    let lf = crate::store::scan_file(&path).map_err(perr)?;
    let schema = lf.clone().collect_schema().map_err(perr)?;
    let header: Vec<String> = schema.iter_names().map(|n| n.to_string()).collect();
    let layout = layout(&header, mapping, &src.display)?;
    let casts: Vec<Expr> = header
        .iter()
        .map(|h| col(h.as_str()).cast(DataType::String))
        .collect();
    let mut offset: i64 = 0;
    loop {
        let df = lf
            .clone()
            .slice(offset, PARQUET_CHUNK)
            .select(casts.clone())
            .collect()
            .map_err(perr)?;
        if df.height() == 0 {
            break;
        }
        let cols: Vec<&StringChunked> = df
            .columns()
            .iter()
            .map(|c| c.str().expect("cast to string"))
            .collect();
        for i in 0..df.height() {
            let rec = fill(
                &layout,
                cols.iter().map(|c| c.get(i)),
                (offset as u64) + i as u64 + 1,
            );
            f(rec)?;
        }
        offset += df.height() as i64;
        if df.height() < PARQUET_CHUNK as usize {
            break;
        }
    }
    Ok(())
}
