//! The reviewers' copies of a week's alerts: `alerts.parquet`, `alerts.csv`
//! (UTF-8 with a BOM, cells safe from formula injection) and `alerts.xlsx`
//! (drop-down for the decision, frozen header, number formats).

use super::*;

pub(super) fn write_alerts(
    list: &[Alert],
    o: &RunOptions,
    as_of: NaiveDate,
) -> Result<(), AlertError> {
    let s = |f: &dyn Fn(&Alert) -> String| list.iter().map(f).collect::<Vec<String>>();
    let level = |a: &Alert| {
        if a.score.severity >= o.config.alert.high_severity {
            "high".to_string()
        } else {
            "alert".to_string()
        }
    };
    let lang = o.lang;
    let reason = move |a: &Alert| match lang {
        Lang::Vi => a.reason_vi.clone(),
        Lang::En => a.reason_en.clone(),
    };
    let num = |f: &dyn Fn(&Alert) -> Option<f64>| list.iter().map(f).collect::<Vec<Option<f64>>>();
    let mut df = DataFrame::new_infer_height(vec![
        Column::new("alert_id".into(), s(&|a| a.alert_id.clone())),
        Column::new("state".into(), s(&|a| a.state.clone())),
        Column::new(
            "suppressed".into(),
            list.iter().map(|a| a.suppressed).collect::<Vec<_>>(),
        ),
        Column::new(
            "facility_code".into(),
            s(&|a| a.score.facility_code.clone()),
        ),
        Column::new(
            "facility_name".into(),
            s(&|a| a.facility_name.clone().unwrap_or_default()),
        ),
        Column::new("peer_group".into(), s(&|a| a.score.peer_group.clone())),
        Column::new(
            "period_start".into(),
            s(&|a| a.score.period_start.to_string()),
        ),
        Column::new(
            "onset".into(),
            s(&|a| a.score.onset.map(|d| d.to_string()).unwrap_or_default()),
        ),
        Column::new("detector".into(), s(&|a| a.score.detector.clone())),
        Column::new("cause".into(), s(&|a| a.cause.clone())),
        Column::new(
            "severity".into(),
            num(&|a| Some((a.score.severity * 100.0).round() / 100.0)),
        ),
        Column::new("level".into(), s(&level)),
        Column::new("observed".into(), num(&|a| a.score.observed)),
        Column::new("peer_value".into(), num(&|a| a.score.peer_value)),
        Column::new("expected".into(), num(&|a| a.score.expected)),
        Column::new(
            "excess_vnd".into(),
            num(&|a| Some(a.score.excess_vnd.round())),
        ),
        Column::new("reason".into(), s(&reason)),
        Column::new("reason_vi".into(), s(&|a| a.reason_vi.clone())),
        Column::new("reason_en".into(), s(&|a| a.reason_en.clone())),
        Column::new("top_claims".into(), s(&|a| a.top_claims.clone())),
        Column::new("top_services".into(), s(&|a| a.top_services.clone())),
        Column::new("top_departments".into(), s(&|a| a.top_departments.clone())),
        Column::new("top_prescribers".into(), s(&|a| a.top_prescribers.clone())),
        Column::new(
            "last_decision".into(),
            s(&|a| a.decision.clone().unwrap_or_default()),
        ),
        Column::new("decision".into(), s(&|_| String::new())),
        Column::new("comment".into(), s(&|_| String::new())),
        Column::new("reviewer".into(), s(&|_| String::new())),
    ])?;
    crate::store::write_parquet_atomic(&mut df, &o.out.join("alerts.parquet"))?;
    // CSV for reviewers: UTF-8 with a BOM so spreadsheet programs read
    // Vietnamese, text cells that a spreadsheet would run as a formula
    // neutralised (facility names and prescriber codes come from the claims).
    let mut buf: Vec<u8> = "\u{feff}".as_bytes().to_vec();
    CsvWriter::new(&mut buf)
        .include_header(true)
        .finish(&mut spreadsheet_safe(&df)?)?;
    crate::store::write_atomic(&o.out.join("alerts.csv"), &buf)?;
    let xlsx =
        alerts_xlsx(&df, as_of).map_err(|e| AlertError::Input(format!("alerts.xlsx: {e}")))?;
    crate::store::write_atomic(&o.out.join("alerts.xlsx"), &xlsx)?;
    Ok(())
}

/// A text cell as a spreadsheet must show it: one starting with `=`, `+`,
/// `-`, `@`, a tab or a carriage return is a formula to Excel and
/// LibreOffice (CSV injection), so it gets a leading apostrophe, which
/// they read as "this is text" (OWASP's advice).
pub fn spreadsheet_text(v: &str) -> std::borrow::Cow<'_, str> {
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{v}"))
    } else {
        std::borrow::Cow::Borrowed(v)
    }
}

/// The frame with every text cell passed through [`spreadsheet_text`].
fn spreadsheet_safe(df: &DataFrame) -> PolarsResult<DataFrame> {
    let cols = df
        .columns()
        .iter()
        .map(|c| match c.dtype() {
            DataType::String => {
                let ca: StringChunked = c
                    .str()?
                    .iter()
                    .map(|v| v.map(|v| spreadsheet_text(v).into_owned()))
                    .collect();
                Ok(ca.with_name(c.name().clone()).into_series().into())
            }
            _ => Ok(c.clone()),
        })
        .collect::<PolarsResult<Vec<Column>>>()?;
    DataFrame::new(df.height(), cols)
}

/// The reviewers' sheet: the alerts with a drop-down for the decision,
/// frozen header, filters, number formats.
/// The document date is the run's week, so a rerun writes the same bytes.
fn alerts_xlsx(df: &DataFrame, as_of: NaiveDate) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use chrono::Datelike;
    use rust_xlsxwriter::{DataValidation, DocProperties, ExcelDateTime, Format, Workbook};
    let mut wb = Workbook::new();
    let date =
        ExcelDateTime::from_ymd(as_of.year() as u16, as_of.month() as u8, as_of.day() as u8)?;
    wb.set_properties(&DocProperties::new().set_creation_datetime(&date));
    let ws = wb.add_worksheet();
    ws.set_name("alerts")?;
    let bold = Format::new().set_bold();
    // Amounts in whole đồng with grouping (Excel shows the reader's
    // separator), severities and ratios with two decimals.
    let money = Format::new().set_num_format("#,##0");
    let ratio = Format::new().set_num_format("0.00");
    for (c, col) in df.columns().iter().enumerate() {
        let c = c as u16;
        ws.write_string_with_format(0, c, col.name().as_str(), &bold)?;
        let fmt = if col.name().ends_with("_vnd") {
            &money
        } else {
            &ratio
        };
        let width = match col.name().as_str() {
            "reason" | "reason_vi" | "reason_en" => 80.0,
            n if n.starts_with("top_") => 50.0,
            "alert_id" | "facility_name" => 28.0,
            _ => 14.0,
        };
        ws.set_column_width(c, width)?;
        let s = col.as_materialized_series();
        for r in 0..df.height() {
            let row = r as u32 + 1;
            match s.get(r) {
                Ok(AnyValue::Float64(v)) => {
                    ws.write_number_with_format(row, c, v, fmt)?;
                }
                Ok(AnyValue::Boolean(v)) => {
                    ws.write_string(row, c, if v { "true" } else { "false" })?;
                }
                Ok(AnyValue::String(v)) => {
                    ws.write_string(row, c, v)?;
                }
                Ok(AnyValue::Null) | Err(_) => {}
                Ok(v) => {
                    ws.write_string(row, c, v.to_string())?;
                }
            }
        }
    }
    if let Some(c) = df.columns().iter().position(|c| c.name() == "decision") {
        let dv =
            DataValidation::new().allow_list_strings(&["confirmed", "explained", "dismissed"])?;
        ws.add_data_validation(
            1,
            c as u16,
            (df.height() as u32).max(1) + 200,
            c as u16,
            &dv,
        )?;
    }
    ws.set_freeze_panes(1, 0)?;
    if df.width() > 0 {
        ws.autofilter(0, 0, df.height() as u32, df.width() as u16 - 1)?;
    }
    wb.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cells_cannot_run_as_formulas() {
        let df = df!(
            "facility_name" => ["=HYPERLINK(\"http://x\",\"Bệnh viện\")", "Bệnh viện A", "+1", "-2", "@SUM(A1)", "\tx", "\rx", ""],
            "excess_vnd" => [-1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        )
        .unwrap();
        let safe = spreadsheet_safe(&df).unwrap();
        let names: Vec<&str> = safe
            .column("facility_name")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.unwrap())
            .collect();
        assert_eq!(names[0], "'=HYPERLINK(\"http://x\",\"Bệnh viện\")");
        assert_eq!(names[1], "Bệnh viện A");
        for n in &names[2..7] {
            assert!(n.starts_with('\''), "{n:?}");
        }
        assert_eq!(names[7], "");
        // Numbers are numbers, negative or not.
        assert_eq!(
            safe.column("excess_vnd").unwrap(),
            df.column("excess_vnd").unwrap()
        );
    }
}
