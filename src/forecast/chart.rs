//! Fan charts (plotters, SVG): the last three years of monthly spending,
//! the forecast, and its 80 % and 95 % intervals. Text is drawn with the
//! bundled DejaVu Sans (`datasets/fonts/`, which covers Vietnamese), so the
//! charts look the same on every machine.

use std::path::Path;
use std::sync::Once;

use chrono::{Datelike, NaiveDate};
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::model::SeriesForecast;
use super::ForecastError;
use crate::detect::Lang;

static FONT: Once = Once::new();

/// Registers the bundled font as "sans-serif" (once).
pub fn register_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../../datasets/fonts/DejaVuSans.ttf"),
        );
    });
}

fn month_label(d: NaiveDate) -> String {
    format!("{:02}/{}", d.month(), d.year() % 100)
}

fn add_months(d: NaiveDate, n: i32) -> NaiveDate {
    super::add_months(d, n)
}

/// Draws one fan chart to `path`: SVG, or PNG when the path ends in
/// `.png` (for spreadsheets). Written atomically.
pub fn fan_chart(
    path: &Path,
    title: &str,
    history: &[(NaiveDate, f64)],
    start: NaiveDate,
    f: &SeriesForecast,
    lang: Lang,
) -> Result<(), ForecastError> {
    register_font();
    let err = |e: String| ForecastError::Chart {
        path: path.display().to_string(),
        reason: e,
    };
    let size = (900u32, 420u32);
    if path.extension().is_some_and(|e| e == "png") {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        let tmp = dir.join(format!(
            ".{}.tmp.png",
            path.file_stem().and_then(|s| s.to_str()).unwrap_or("chart")
        ));
        {
            let root = BitMapBackend::new(&tmp, size).into_drawing_area();
            draw(&root, title, history, start, f, lang).map_err(err)?;
        }
        std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
    } else {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
            draw(&root, title, history, start, f, lang).map_err(err)?;
        }
        crate::store::write_atomic(path, svg.as_bytes()).map_err(|e| err(e.to_string()))
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    history: &[(NaiveDate, f64)],
    start: NaiveDate,
    f: &SeriesForecast,
    lang: Lang,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: String| e;
    let first = history.first().map(|h| h.0).unwrap_or(start);
    let n_h = history.len();
    let n = n_h + f.point.len();
    let scale = 1.0e6;
    let ymax = history
        .iter()
        .map(|h| h.1)
        .chain(f.bounds[2].1.iter().copied())
        .chain(f.point.iter().copied())
        .fold(0.0f64, f64::max)
        / scale
        * 1.1;
    let ymax = if ymax > 0.0 { ymax } else { 1.0 };
    let (unit, actual, forecast, b80, b95) = match lang {
        Lang::Vi => (
            "triệu đồng / tháng",
            "thực chi",
            "dự báo",
            "khoảng 80 %",
            "khoảng 95 %",
        ),
        Lang::En => (
            "million VND / month",
            "actual",
            "forecast",
            "80 % interval",
            "95 % interval",
        ),
    };
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..(n.max(1) as f64 - 1.0).max(1.0), 0f64..ymax)
        .map_err(|e| err(e.to_string()))?;
    let label_month = |x: &f64| {
        let i = x.round() as i32;
        month_label(add_months(first, i))
    };
    let group = |y: &f64| match lang {
        Lang::Vi => crate::format::group_vi(y.round() as i64),
        Lang::En => crate::format::group_en(y.round() as i64),
    };
    chart
        .configure_mesh()
        .x_labels(12)
        .x_label_formatter(&label_month)
        .y_label_formatter(&group)
        .y_desc(unit)
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let off = n_h as f64;
    for (k, (color, label)) in [(2usize, (BLUE.mix(0.15), b95)), (0, (BLUE.mix(0.35), b80))] {
        let (lo, hi) = &f.bounds[k];
        let mut pts: Vec<(f64, f64)> = hi
            .iter()
            .enumerate()
            .map(|(i, v)| (off + i as f64, v / scale))
            .collect();
        pts.extend(
            lo.iter()
                .enumerate()
                .rev()
                .map(|(i, v)| (off + i as f64, v / scale)),
        );
        chart
            .draw_series(std::iter::once(Polygon::new(pts, color.filled())))
            .map_err(|e| err(e.to_string()))?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], color.filled()));
    }
    chart
        .draw_series(LineSeries::new(
            history
                .iter()
                .enumerate()
                .map(|(i, h)| (i as f64, h.1 / scale)),
            BLACK.stroke_width(2),
        ))
        .map_err(|e| err(e.to_string()))?
        .label(actual)
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.stroke_width(2)));
    let mut line: Vec<(f64, f64)> = Vec::new();
    if let Some(last) = history.last() {
        line.push((off - 1.0, last.1 / scale));
    }
    line.extend(
        f.point
            .iter()
            .enumerate()
            .map(|(i, v)| (off + i as f64, v / scale)),
    );
    chart
        .draw_series(LineSeries::new(line, BLUE.stroke_width(2)))
        .map_err(|e| err(e.to_string()))?
        .label(forecast)
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}
