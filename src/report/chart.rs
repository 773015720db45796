//! Alert charts: a facility's indicator against its peer group's band and
//! its control limit, as SVG (pages) or PNG (slides).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::NaiveDate;
use plotters::prelude::*;

use polars::prelude::DataFrame;

pub use super::units::is_unit_cause;
use super::units::UnitCharts;
use super::{nums, periods, read_columns, strs, ReportError};
use crate::detect::signals::{label, show};
use crate::detect::{DetectorModel, Lang};

/// The indicator a chart shows for an alert's cause.
pub fn chart_signal(cause: &str) -> &str {
    match cause {
        "duplicate" => "overlapping_claim_share",
        "los_outlier" => "oe_los",
        "mismatch" => "bed_cost_share_inpatient",
        "multivariate" => "oe_cost",
        // The cost shift is O/E cost measured claim by claim.
        "claim_cost" => "oe_cost",
        // Upcoding: the half a series shows — the admission rate the codes
        // imply, rising against the facility's past and its peers (the
        // reason gives the other half, admissions not following).
        "upcoding" => CODED_ADMISSION_RATE,
        other => other,
    }
}

/// A chart's indicator that is not a column: expected admissions / visits.
const CODED_ADMISSION_RATE: &str = "coded_admission_rate";

/// The features column a chart of `signal` reads besides the visits.
fn column_of(signal: &str) -> &str {
    if signal == CODED_ADMISSION_RATE {
        "expected_admissions"
    } else {
        signal
    }
}

/// One facility's indicator over time against its peer band and its
/// control limits.
#[derive(Debug, Clone, Copy)]
pub struct AlertChart<'a> {
    pub title: &'a str,
    pub series: &'a [(NaiveDate, f64)],
    pub band: &'a [(NaiveDate, f64, f64, f64)],
    pub control: Option<(f64, f64)>,
    pub onset: Option<NaiveDate>,
    pub signal: &'a str,
    pub lang: Lang,
}

impl AlertChart<'_> {
    /// As SVG (for the HTML pages).
    pub fn svg(&self) -> Result<String, ReportError> {
        crate::forecast::chart::register_font();
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (640, 240)).into_drawing_area();
            draw_alert(&root, self)
                .map_err(|e| ReportError::Chart(format!("{}: {e}", self.title)))?;
        }
        Ok(svg)
    }

    /// As PNG (for slides), written atomically.
    pub fn png(&self, path: &Path) -> Result<(), ReportError> {
        crate::forecast::chart::register_font();
        let err = |e: String| ReportError::Chart(format!("{}: {e}", path.display()));
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        let tmp = dir.join(format!(
            ".{}.tmp.png",
            path.file_stem().and_then(|s| s.to_str()).unwrap_or("chart")
        ));
        {
            let root = BitMapBackend::new(&tmp, (1280, 480)).into_drawing_area();
            draw_alert(&root, self).map_err(err)?;
        }
        std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
    }
}

fn draw_alert<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    c: &AlertChart,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let AlertChart {
        title: _,
        series,
        band,
        control,
        onset,
        signal,
        lang,
    } = *c;
    let err = |e: String| e;
    let tx = |v: f64| if signal == "visits" { v.exp() } else { v };
    let (Some(first), Some(last)) = (series.first(), series.last()) else {
        return Ok(());
    };
    let x0 = first.0;
    let day = |d: NaiveDate| (d - x0).num_days() as f64;
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for v in series
        .iter()
        .map(|s| s.1)
        .chain(band.iter().flat_map(|b| [b.2, b.3]))
    {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if let Some((m, sd)) = control {
        lo = lo.min(tx(m));
        hi = hi.max(tx(m + 3.0 * sd));
    }
    if !(lo.is_finite() && hi.is_finite()) {
        return Ok(());
    }
    let pad = ((hi - lo) * 0.08).max(1e-6);
    let (lo, hi) = ((lo - pad).max(0.0), hi + pad);
    let (you, peers, limit, base) = match lang {
        Lang::Vi => (
            "cơ sở",
            "nhóm cùng hạng (trung vị, 25–75 %)",
            "giới hạn kiểm soát (+3 độ lệch)",
            "mức nền",
        ),
        Lang::En => (
            "facility",
            "peer group (median, 25–75 %)",
            "control limit (+3 sd)",
            "baseline",
        ),
    };
    // A doctor's or a department's ratio to its colleagues (see `units`).
    let (you, peers) = match (signal, lang) {
        ("prescriber", Lang::Vi) => (
            "bác sĩ được cảnh báo (chi phí / đồng nghiệp)",
            "các bác sĩ khác cùng cơ sở (trung vị, 25–75 %)",
        ),
        ("prescriber", Lang::En) => (
            "the alerted doctor (cost / colleagues')",
            "other doctors at the facility (median, 25–75 %)",
        ),
        ("department", Lang::Vi) => (
            "khoa được cảnh báo (mức tăng / các khoa khác)",
            "các khoa khác cùng cơ sở (trung vị, 25–75 %)",
        ),
        ("department", Lang::En) => (
            "the alerted department (rise / other departments')",
            "other departments at the facility (median, 25–75 %)",
        ),
        _ => (you, peers),
    };
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut ch = ChartBuilder::on(root)
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..day(last.0).max(1.0), lo..hi)
        .map_err(|e| err(e.to_string()))?;
    // Day, month and year (the Vietnamese order): the ticks fall every
    // span / 8 days, so month labels alone skipped or repeated months.
    let fmt_x = |x: &f64| {
        (x0 + chrono::Duration::days(*x as i64))
            .format("%d/%m/%y")
            .to_string()
    };
    let fmt_y = |y: &f64| show(signal, if signal == "visits" { y.ln() } else { *y }, lang);
    ch.configure_mesh()
        .x_labels(8)
        .y_labels(5)
        .x_label_formatter(&fmt_x)
        .y_label_formatter(&fmt_y)
        .label_style(("sans-serif", 11))
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    if !band.is_empty() {
        let mut pts: Vec<(f64, f64)> = band.iter().map(|b| (day(b.0), b.3)).collect();
        pts.extend(band.iter().rev().map(|b| (day(b.0), b.2)));
        let c = RGBColor(120, 150, 200).mix(0.25);
        ch.draw_series(std::iter::once(Polygon::new(pts, c.filled())))
            .map_err(|e| err(e.to_string()))?
            .label(peers)
            .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 14, y + 4)], c.filled()));
        ch.draw_series(LineSeries::new(
            band.iter().map(|b| (day(b.0), b.1)),
            RGBColor(90, 120, 180).stroke_width(1),
        ))
        .map_err(|e| err(e.to_string()))?;
    }
    if let Some((m, sd)) = control {
        let (x1, x2) = (0.0, day(last.0));
        ch.draw_series(LineSeries::new([(x1, tx(m)), (x2, tx(m))], BLACK.mix(0.5)))
            .map_err(|e| err(e.to_string()))?
            .label(base)
            .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], BLACK.mix(0.5)));
        ch.draw_series(LineSeries::new(
            [(x1, tx(m + 3.0 * sd)), (x2, tx(m + 3.0 * sd))],
            RED.mix(0.7),
        ))
        .map_err(|e| err(e.to_string()))?
        .label(limit)
        .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], RED.mix(0.7)));
    }
    ch.draw_series(LineSeries::new(
        series.iter().map(|s| (day(s.0), s.1)),
        BLACK.stroke_width(2),
    ))
    .map_err(|e| err(e.to_string()))?
    .label(you)
    .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], BLACK.stroke_width(2)));
    if let Some(o) = onset.filter(|o| *o >= x0) {
        ch.draw_series(std::iter::once(PathElement::new(
            [(day(o), lo), (day(o), hi)],
            RED.mix(0.4),
        )))
        .map_err(|e| err(e.to_string()))?;
    }
    ch.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .label_font(("sans-serif", 10))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// Per period with three values or more: their median and quartiles
/// (the peer band of a chart).
pub(super) fn quartile_band(
    by_period: BTreeMap<NaiveDate, Vec<f64>>,
) -> Vec<(NaiveDate, f64, f64, f64)> {
    let q = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    by_period
        .into_iter()
        .filter(|(_, v)| v.len() >= 3)
        .map(|(d, mut v)| {
            v.sort_by(f64::total_cmp);
            (d, q(&v, 0.5), q(&v, 0.25), q(&v, 0.75))
        })
        .collect()
}

/// The alert a chart is drawn for.
#[derive(Debug, Clone, Copy)]
pub struct ChartRequest<'a> {
    pub facility_code: &'a str,
    pub peer_group: &'a str,
    pub cause: &'a str,
    /// The alert's week: the chart stops there (what the reviewer saw then).
    pub week: Option<NaiveDate>,
    pub onset: Option<NaiveDate>,
}

/// What a chart shows, computed once and drawn as SVG or PNG.
#[derive(Debug, Clone, Default)]
pub struct ChartData {
    pub title: String,
    pub signal: String,
    pub series: Vec<(NaiveDate, f64)>,
    pub band: Vec<(NaiveDate, f64, f64, f64)>,
    pub control: Option<(f64, f64)>,
    pub onset: Option<NaiveDate>,
}

impl ChartData {
    pub fn chart(&self, lang: Lang) -> AlertChart<'_> {
        AlertChart {
            title: &self.title,
            series: &self.series,
            band: &self.band,
            control: self.control,
            onset: self.onset,
            signal: &self.signal,
            lang,
        }
    }
}

/// A features table indexed for alert charts: a facility's indicator up to
/// the alert's week (last 78 periods), its peer group's median and
/// quartiles per period (groups of three or more), and the detector
/// model's control limit at the facility's typical volume.
pub struct ChartSource {
    f: DataFrame,
    period: Vec<NaiveDate>,
    visits: Vec<Option<f64>>,
    by_facility: HashMap<String, Vec<usize>>,
    by_group: HashMap<String, Vec<usize>>,
    cols: HashMap<String, Vec<Option<f64>>>,
    model: Option<DetectorModel>,
    /// Doctors' and departments' comparisons (`units.parquet`), when read.
    units: Option<UnitCharts>,
}

impl ChartSource {
    pub fn new(f: DataFrame, model: Option<DetectorModel>) -> Result<ChartSource, ReportError> {
        let period = periods(&f)?;
        let mut by_facility: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_group: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, (c, g)) in strs(&f, "facility_code")
            .into_iter()
            .zip(strs(&f, "peer_group"))
            .enumerate()
        {
            by_facility.entry(c).or_default().push(i);
            by_group.entry(g).or_default().push(i);
        }
        Ok(ChartSource {
            visits: nums(&f, "visits"),
            period,
            by_facility,
            by_group,
            cols: HashMap::new(),
            model,
            units: None,
            f,
        })
    }

    /// From the features table's file and the model's (a model that does
    /// not load only drops the control limit), reading the columns that the
    /// charts of these alert causes draw.
    pub fn open(
        features: &Path,
        model: Option<&Path>,
        causes: &[String],
    ) -> Result<ChartSource, ReportError> {
        let model = model
            .filter(|p| p.exists())
            .and_then(|p| DetectorModel::load(p).ok());
        let mut cols = vec!["facility_code", "peer_group", "period_start", "visits"];
        // A doctor's or a ward's chart comes from the units table.
        cols.extend(
            causes
                .iter()
                .filter(|c| !is_unit_cause(c))
                .map(|c| column_of(chart_signal(c))),
        );
        ChartSource::new(read_columns(features, &cols)?, model)
    }

    /// Adds the doctors' and departments' comparisons of `bhyt detect`'s
    /// `units.parquet` (in `detect_dir`) at the facilities of the alerts
    /// (`facility_codes`, `causes`: one per alert) whose cause is a doctor
    /// or a department; a missing file (a run without a store, or an older
    /// one) leaves those alerts without a chart, and so does one that does
    /// not read (named in a warning): a chart is not worth the list.
    pub fn with_units(
        mut self,
        detect_dir: &Path,
        facility_codes: &[String],
        causes: &[String],
    ) -> Self {
        let facilities: Vec<String> = facility_codes
            .iter()
            .zip(causes)
            .filter(|(_, c)| is_unit_cause(c))
            .map(|(f, _)| f.clone())
            .collect();
        self.units = UnitCharts::read(detect_dir, &facilities);
        self
    }

    pub fn data(&mut self, r: &ChartRequest, lang: Lang) -> ChartData {
        if is_unit_cause(r.cause) {
            return self
                .units
                .as_ref()
                .map(|u| u.data(r, lang))
                .unwrap_or_default();
        }
        let signal = chart_signal(r.cause).to_string();
        if !self.cols.contains_key(&signal) {
            let v = if signal == CODED_ADMISSION_RATE {
                nums(&self.f, column_of(&signal))
                    .into_iter()
                    .zip(&self.visits)
                    .map(|(e, v)| match (e, v) {
                        (Some(e), Some(v)) if *v > 0.0 => Some(e / v),
                        _ => None,
                    })
                    .collect()
            } else {
                nums(&self.f, &signal)
            };
            self.cols.insert(signal.clone(), v);
        }
        let vals = &self.cols[&signal];
        let period = &self.period;
        let upto = |d: NaiveDate| r.week.is_none_or(|w| d <= w);
        let none = Vec::new();
        let own = self.by_facility.get(r.facility_code).unwrap_or(&none);
        let mut series: Vec<(NaiveDate, f64)> = own
            .iter()
            .filter(|&&i| upto(period[i]))
            .filter_map(|&i| vals[i].map(|v| (period[i], v)))
            .collect();
        series.sort_by_key(|s| s.0);
        let series = series[series.len().saturating_sub(78)..].to_vec();
        let from = series.first().map(|s| s.0);
        let mut by_p: BTreeMap<NaiveDate, Vec<f64>> = BTreeMap::new();
        for &i in self.by_group.get(r.peer_group).unwrap_or(&none) {
            if from.is_some_and(|d| period[i] >= d) && upto(period[i]) {
                if let Some(v) = vals[i] {
                    by_p.entry(period[i]).or_default().push(v);
                }
            }
        }
        let band = quartile_band(by_p);
        let typical_volume = {
            let mut v: Vec<f64> = own.iter().filter_map(|&i| self.visits[i]).collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(1.0)
        };
        let control = self
            .model
            .as_ref()
            .and_then(|m| m.control(r.facility_code, &signal, typical_volume));
        ChartData {
            title: format!("{} {}", r.facility_code, label(&signal, lang)),
            signal,
            series,
            band,
            control,
            onset: r.onset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    /// An upcoding alert is charted by the admission rate its codes imply:
    /// the facility's expected admissions per visit against its group's.
    #[test]
    fn an_upcoding_alert_charts_the_coded_admission_rate() {
        let (mut fac, mut grp, mut day, mut vis, mut exp) =
            (vec![], vec![], vec![], vec![], vec![]);
        let d0 = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        for f in ["UP", "P1", "P2", "P3"] {
            for w in 0..10i64 {
                fac.push(f);
                grp.push("g");
                day.push(d0 + chrono::Duration::weeks(w));
                vis.push(100.0);
                exp.push(if f == "UP" && w >= 5 { 15.0 } else { 10.0 });
            }
        }
        let df = df!(
            "facility_code" => fac,
            "peer_group" => grp,
            "period_start" => day,
            "visits" => vis,
            "expected_admissions" => exp,
        )
        .unwrap();
        let mut src = ChartSource::new(df, None).unwrap();
        let data = src.data(
            &ChartRequest {
                facility_code: "UP",
                peer_group: "g",
                cause: "upcoding",
                week: None,
                onset: Some(d0 + chrono::Duration::weeks(5)),
            },
            Lang::Vi,
        );
        assert_eq!(data.series.len(), 10);
        assert!((data.series[0].1 - 0.10).abs() < 1e-12);
        assert!((data.series[9].1 - 0.15).abs() < 1e-12);
        assert!(data.band.iter().all(|b| (b.1 - 0.10).abs() < 1e-12));
        assert!(data
            .title
            .contains("tỷ lệ nhập viện mà các mã chẩn đoán hàm ý"));
        assert!(data.chart(Lang::Vi).svg().unwrap().contains("<svg"));
    }
}
