//! What the users read: the weekly alert list for reviewers, the audit
//! plan for inspection teams and the planner's page, as self-contained HTML (inline SVG charts, inline
//! script for sorting and filtering, nothing fetched from the network).
//!
//! Three pages: `alerts.html` (reviewers' weekly list), `audit.html`
//! (inspection plan with an evidence page per planned facility) and
//! `planner.html` (growth by cause, fan charts, projection against the
//! budget); `png/` holds every alert chart as PNG for slides.

pub mod html;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use plotters::prelude::*;
use polars::prelude::*;

use crate::detect::signals::{label, show};
use crate::detect::{DetectorModel, Lang};
use html::{escape, page};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("report: {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: PolarsError,
    },
    #[error("report: {0}")]
    Polars(#[from] PolarsError),
    #[error("report: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("report: {0}")]
    Chart(String),
}

/// Inputs and output of `bhyt report`.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Output folder of `bhyt detect` (alerts.parquet).
    pub detect_dir: PathBuf,
    /// The weekly features table the alerts were raised on.
    pub features: PathBuf,
    /// The detector model (control limits in the charts), if at hand.
    pub model: Option<PathBuf>,
    /// Output folder of `bhyt forecast`, if any (planner's page).
    pub forecast_dir: Option<PathBuf>,
    /// Claims store, for the evidence pages' top claims and services.
    pub data_dir: Option<PathBuf>,
    /// Audits the inspection team can do: the plan lists this many first.
    pub capacity: usize,
    pub out: PathBuf,
    pub lang: Lang,
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct ReportSummary {
    pub alerts: usize,
    pub pages: Vec<PathBuf>,
}

fn read(path: &Path) -> Result<DataFrame, ReportError> {
    LazyFrame::scan_parquet(
        PlRefPath::new(path.to_string_lossy().as_ref()),
        Default::default(),
    )
    .and_then(|l| l.collect())
    .map_err(|source| ReportError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Period starts of a features table (a missing date reads as 1970-01-01).
fn periods(f: &DataFrame) -> Result<Vec<NaiveDate>, ReportError> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    Ok(crate::schema::date_column(f, "period_start")?
        .into_iter()
        .map(|d| d.unwrap_or(epoch))
        .collect())
}

/// Facility code → name from the store's registry (empty without one).
fn facility_names(data_dir: Option<&Path>) -> Result<HashMap<String, String>, ReportError> {
    let Some(d) = data_dir else {
        return Ok(HashMap::new());
    };
    let st = crate::store::Store::open(d)?;
    if !st.facilities_path().exists() {
        return Ok(HashMap::new());
    }
    let r = st.facilities()?.collect()?;
    Ok(strs(&r, "facility_code")
        .into_iter()
        .zip(strs(&r, "name"))
        .collect())
}

fn strs(df: &DataFrame, c: &str) -> Vec<String> {
    df.column(c)
        .and_then(|c| c.cast(&DataType::String))
        .map(|c| {
            c.str()
                .map(|s| s.iter().map(|v| v.unwrap_or("").to_string()).collect())
                .unwrap_or_default()
        })
        .unwrap_or_else(|_| vec![String::new(); df.height()])
}

fn nums(df: &DataFrame, c: &str) -> Vec<Option<f64>> {
    df.column(c)
        .and_then(|c| c.cast(&DataType::Float64))
        .map(|c| c.f64().map(|s| s.iter().collect()).unwrap_or_default())
        .unwrap_or_else(|_| vec![None; df.height()])
}

fn vnd(x: f64, lang: Lang) -> String {
    match lang {
        Lang::Vi => crate::format::group_vi(x.round() as i64),
        Lang::En => crate::format::group_en(x.round() as i64),
    }
}

/// The indicator a chart shows for an alert's cause.
fn chart_signal(cause: &str) -> &str {
    match cause {
        "duplicate" => "overlapping_claim_share",
        "los_outlier" => "oe_los",
        "mismatch" => "bed_cost_share_inpatient",
        "multivariate" => "oe_cost",
        other => other,
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
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut ch = ChartBuilder::on(root)
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..day(last.0).max(1.0), lo..hi)
        .map_err(|e| err(e.to_string()))?;
    let fmt_x = |x: &f64| {
        (x0 + chrono::Duration::days(*x as i64))
            .format("%m/%y")
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

/// Writes the pages. Missing inputs skip their page.
pub fn run(o: &ReportOptions) -> Result<ReportSummary, ReportError> {
    let mut summary = ReportSummary::default();
    let alerts_path = o.detect_dir.join("alerts.parquet");
    if alerts_path.exists() {
        let n = alert_page(o, &alerts_path)?;
        summary.alerts = n;
        summary.pages.push(o.out.join("alerts.html"));
    }
    if o.detect_dir.join("scores.parquet").exists() {
        audit_plan(o)?;
        summary.pages.push(o.out.join("audit.html"));
    }
    if let Some(dir) = &o.forecast_dir {
        if dir.join("budget_projection.parquet").exists() {
            planner_page(o, dir)?;
            summary.pages.push(o.out.join("planner.html"));
        }
    }
    Ok(summary)
}

fn alert_page(o: &ReportOptions, alerts_path: &Path) -> Result<usize, ReportError> {
    let a = read(alerts_path)?;
    let f = read(&o.features)?;
    let model = match &o.model {
        Some(p) if p.exists() => DetectorModel::load(p).ok(),
        _ => None,
    };
    let lang = o.lang;
    let t = |vi: &'static str, en: &'static str| match lang {
        Lang::Vi => vi,
        Lang::En => en,
    };
    // Features by facility and by peer group.
    let fac = strs(&f, "facility_code");
    let group = strs(&f, "peer_group");
    let period = periods(&f)?;
    let visits = nums(&f, "visits");
    let mut cols: HashMap<String, Vec<Option<f64>>> = HashMap::new();
    let ids = strs(&a, "alert_id");
    let codes = strs(&a, "facility_code");
    let names = strs(&a, "facility_name");
    let groups = strs(&a, "peer_group");
    let causes = strs(&a, "cause");
    let states = strs(&a, "state");
    let levels = strs(&a, "level");
    let detectors = strs(&a, "detector");
    let onsets = strs(&a, "onset");
    let weeks = strs(&a, "period_start");
    let reasons = strs(
        &a,
        if lang == Lang::Vi {
            "reason_vi"
        } else {
            "reason_en"
        },
    );
    let sev = nums(&a, "severity");
    let excess = nums(&a, "excess_vnd");
    let suppressed: Vec<bool> = a
        .column("suppressed")
        .ok()
        .and_then(|c| {
            c.bool()
                .ok()
                .map(|b| b.iter().map(|v| v.unwrap_or(false)).collect())
        })
        .unwrap_or_else(|| vec![false; a.height()]);
    let tops = [
        "top_claims",
        "top_services",
        "top_departments",
        "top_prescribers",
    ]
    .map(|c| strs(&a, c));
    // Province of a facility: the first two digits of MA_CSKCB are its
    // province code (standard numbering), shown as the current province.
    let reference = crate::reference::Reference::builtin();
    let province_of = |code: &str| -> String {
        code.get(..2)
            .and_then(|p| reference.province(p))
            .map(|p| p.current_name.clone())
            .unwrap_or_default()
    };
    let mut rows = String::new();
    let mut shown = 0;
    for i in 0..a.height() {
        if suppressed[i] {
            continue;
        }
        let province = province_of(&codes[i]);
        shown += 1;
        let signal = chart_signal(&causes[i]).to_string();
        if !cols.contains_key(&signal) {
            cols.insert(signal.clone(), nums(&f, &signal));
        }
        let vals = &cols[&signal];
        // Up to the alert's week: what the reviewer would have seen then.
        let week = NaiveDate::parse_from_str(&weeks[i], "%Y-%m-%d").ok();
        let upto = |d: NaiveDate| week.is_none_or(|w| d <= w);
        let series: Vec<(NaiveDate, f64)> = (0..f.height())
            .filter(|&r| fac[r] == codes[i] && upto(period[r]))
            .filter_map(|r| vals[r].map(|v| (period[r], v)))
            .collect();
        let series: Vec<(NaiveDate, f64)> = series[series.len().saturating_sub(78)..].to_vec();
        let from = series.first().map(|s| s.0);
        // Peer band: median and quartiles of the group per period.
        let mut by_p: std::collections::BTreeMap<NaiveDate, Vec<f64>> = Default::default();
        for r in 0..f.height() {
            if group[r] == groups[i] && from.is_some_and(|d| period[r] >= d) && upto(period[r]) {
                if let Some(v) = vals[r] {
                    by_p.entry(period[r]).or_default().push(v);
                }
            }
        }
        let q = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        let band: Vec<(NaiveDate, f64, f64, f64)> = by_p
            .into_iter()
            .filter(|(_, v)| v.len() >= 3)
            .map(|(d, mut v)| {
                v.sort_by(f64::total_cmp);
                (d, q(&v, 0.5), q(&v, 0.25), q(&v, 0.75))
            })
            .collect();
        let typical_volume = {
            let mut v: Vec<f64> = (0..f.height())
                .filter(|&r| fac[r] == codes[i])
                .filter_map(|r| visits[r])
                .collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(1.0)
        };
        let control = model
            .as_ref()
            .and_then(|m| m.control(&codes[i], &signal, typical_volume));
        let onset = NaiveDate::parse_from_str(&onsets[i], "%Y-%m-%d").ok();
        let title = format!("{} {}", codes[i], label(&signal, lang));
        let chart = AlertChart {
            title: &title,
            series: &series,
            band: &band,
            control,
            onset,
            signal: &signal,
            lang,
        };
        let svg = chart.svg()?;
        // PNG for slides.
        chart.png(
            &o.out
                .join("png")
                .join(format!("{}.png", ids[i].replace(':', "-"))),
        )?;
        let sev_i = sev[i].unwrap_or(0.0);
        let ex = excess[i].unwrap_or(0.0);
        let class = if levels[i] == "high" {
            "row high"
        } else {
            "row"
        };
        rows.push_str(&format!(
            "<tr class=\"{class}\" data-id=\"{id}\" data-facility=\"{fcode} {fname}\" data-level=\"{lvl}\" \
             data-indicator=\"{cause}\" data-status=\"{state}\" data-severity=\"{sev:.2}\" data-group=\"{grp}\" data-province=\"{prov}\">\
             <td>{fcode}<br><span class=\"muted\">{fname}<br>{prov}</span></td><td>{grp}</td><td>{week}</td>\
             <td>{cause_l}</td><td class=\"num\" data-v=\"{sev:.2}\">{sev_s}</td>\
             <td class=\"num\" data-v=\"{ex:.0}\">{ex_s}</td><td>{state_l}</td><td>{reason}</td></tr>\n",
            id = escape(&ids[i]),
            prov = escape(&province),
            fcode = escape(&codes[i]),
            fname = escape(&names[i]),
            lvl = escape(&levels[i]),
            cause = escape(&causes[i]),
            state = escape(&states[i]),
            grp = escape(&crate::alerts::peer_group_words(&groups[i], lang)),
            week = escape(&weeks[i]),
            cause_l = escape(&format!("{} ({})", label(&causes[i], lang), detectors[i])),
            sev = sev_i,
            sev_s = if lang == Lang::Vi { format!("{sev_i:.1}").replace('.', ",") } else { format!("{sev_i:.1}") },
            ex = ex,
            ex_s = vnd(ex, lang),
            state_l = escape(match (states[i].as_str(), lang) {
                ("new", Lang::Vi) => "mới",
                ("continuing", Lang::Vi) => "tiếp diễn",
                (s, _) => s,
            }),
            reason = escape(&reasons[i]),
        ));
        let list = |k: usize, name: &str| {
            if tops[k][i].is_empty() {
                String::new()
            } else {
                format!("<p><b>{}</b>: {}</p>", escape(name), escape(&tops[k][i]))
            }
        };
        rows.push_str(&format!(
            "<tr class=\"detail\" data-id=\"{}\"><td colspan=\"8\"><div class=\"chart\">{svg}</div>{}{}{}{}</td></tr>\n",
            escape(&ids[i]),
            list(0, t("Hồ sơ đóng góp nhiều nhất (MA_LK)", "Claims adding most (MA_LK)")),
            list(1, t("Dịch vụ, thuốc tăng nhiều nhất", "Services and drugs that grew most")),
            list(2, t("Khoa", "Departments")),
            list(3, t("Người chỉ định", "Prescribers")),
        ));
    }
    let head = [
        (t("Cơ sở", "Facility"), "facility"),
        (t("Nhóm", "Peer group"), "group"),
        (t("Tuần", "Week"), ""),
        (t("Chỉ số", "Indicator"), "indicator"),
        (t("Mức độ", "Severity"), ""),
        (t("Chi vượt ước tính (đồng)", "Estimated excess (VND)"), ""),
        (t("Trạng thái", "Status"), "status"),
        (t("Lý do", "Reason"), ""),
    ];
    let ths: String = head
        .iter()
        .map(|(h, _)| format!("<th data-sort>{}</th>", escape(h)))
        .collect();
    let filters = format!(
        "<div class=\"filters\">\
         <label>{} <input data-filter=\"province\" size=\"10\"></label>\
         <label>{} <input data-filter=\"facility\" size=\"12\"></label>\
         <label>{} <input data-filter=\"group\" size=\"14\"></label>\
         <label>{} <input data-filter=\"level\" size=\"6\"></label>\
         <label>{} <input data-filter=\"indicator\" size=\"14\"></label>\
         <label>{} <input data-filter=\"status\" size=\"10\"></label>\
         <label>{} ≥ <input data-filter=\"severity\" data-min size=\"4\"></label></div>",
        t("Tỉnh", "Province"),
        t("Cơ sở", "Facility"),
        t("Nhóm/tuyến", "Group/level"),
        t("Mức", "Level"),
        t("Chỉ số", "Indicator"),
        t("Trạng thái", "Status"),
        t("Mức độ", "Severity"),
    );
    let title = t(
        "Cảnh báo chi phí tăng cao bất hợp lý — danh sách tuần",
        "Unreasonably high cost warnings — weekly list",
    );
    let body = format!(
        "<h1>{}</h1><p>{} <b id=\"shown\">{shown}</b> / {shown}. {}</p>{filters}\
         <table><thead><tr>{ths}</tr></thead><tbody>{rows}</tbody></table>",
        escape(title),
        t("Cảnh báo hiển thị:", "Alerts shown:"),
        t(
            "Bấm tiêu đề cột để sắp xếp. Quyết định của người thẩm định ghi vào alerts.xlsx (cột decision) rồi nhập lại bằng `bhyt review --import`.",
            "Click a column header to sort. Reviewers write decisions in alerts.xlsx (decision column) and import it with `bhyt review --import`.",
        ),
    );
    crate::store::write_atomic(
        &o.out.join("alerts.html"),
        page(title, lang, &body).as_bytes(),
    )?;
    Ok(shown)
}

fn planner_page(o: &ReportOptions, dir: &Path) -> Result<(), ReportError> {
    let lang = o.lang;
    let t = |vi: &'static str, en: &'static str| match lang {
        Lang::Vi => vi,
        Lang::En => en,
    };
    let p = read(&dir.join("budget_projection.parquet"))?;
    let g = read(&dir.join("forecast_growth.parquet"))?;
    let code = strs(&p, "code");
    let mut names = facility_names(o.data_dir.as_deref())?;
    // Province totals are named in the forecast's own tables.
    for (c, n) in strs(&p, "code").into_iter().zip(strs(&p, "name")) {
        if !n.is_empty() {
            names.entry(c).or_insert(n);
        }
    }
    let budget = nums(&p, "budget_vnd");
    let proj = nums(&p, "projected_vnd");
    let over = nums(&p, "overrun_vnd");
    let lo = nums(&p, "overrun_lo90");
    let hi = nums(&p, "overrun_hi90");
    let run_out = strs(&p, "runs_out_in");
    let opt = |v: Option<f64>| v.map(|x| vnd(x, lang)).unwrap_or_else(|| "–".into());
    let mut order: Vec<usize> = (0..p.height()).collect();
    order.sort_by(|a, b| {
        let pa = crate::forecast::is_province(&code[*a]);
        let pb = crate::forecast::is_province(&code[*b]);
        pb.cmp(&pa).then(
            over[*b]
                .unwrap_or(f64::MIN)
                .total_cmp(&over[*a].unwrap_or(f64::MIN)),
        )
    });
    let mut rows = String::new();
    let mut charts = String::new();
    let mut embedded = 0;
    for &i in &order {
        // Fan charts of the facilities most likely to overrun.
        if !crate::forecast::is_province(&code[i]) && over[i].unwrap_or(0.0) > 0.0 && embedded < 15
        {
            let file = dir
                .join("charts")
                .join(format!("{}.svg", code[i].replace(':', "-")));
            if let Ok(svg) = std::fs::read_to_string(&file) {
                charts.push_str(&format!("<div class=\"chart\">{svg}</div>"));
                embedded += 1;
            }
        }
    }
    for i in order {
        rows.push_str(&format!(
            "<tr class=\"row\" data-id=\"{c}\" data-facility=\"{c} {n}\"><td>{c}<br><span class=\"muted\">{n}</span></td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\" data-v=\"{:.0}\">{}</td><td class=\"num\">{} … {}</td><td>{}</td></tr>\n",
            opt(budget[i]),
            opt(proj[i]),
            over[i].unwrap_or(0.0),
            opt(over[i]),
            opt(lo[i]),
            opt(hi[i]),
            escape(
                &NaiveDate::parse_from_str(&run_out[i], "%Y-%m-%d")
                    .map(|d| d.format("%m/%Y").to_string())
                    .unwrap_or_default()
            ),
            c = escape(&code[i]),
            n = escape(names.get(&code[i]).map(String::as_str).unwrap_or("")),
        ));
    }
    let gcode = strs(&g, "code");
    let mut growth = String::new();
    let cols = [
        "base_vnd",
        "forecast_vnd",
        "volume_vnd",
        "price_vnd",
        "case_mix_vnd",
        "known_changes_vnd",
        "other_vnd",
        "out_of_province_vnd",
    ];
    let gv: Vec<Vec<Option<f64>>> = cols.iter().map(|c| nums(&g, c)).collect();
    for i in 0..g.height() {
        if !crate::forecast::is_province(&gcode[i]) {
            continue;
        }
        let cells: String = gv
            .iter()
            .map(|v| format!("<td class=\"num\">{}</td>", opt(v[i])))
            .collect();
        let chart_file = dir
            .join("charts")
            .join(format!("{}.svg", gcode[i].replace(':', "-")));
        let svg = std::fs::read_to_string(&chart_file).unwrap_or_default();
        growth.push_str(&format!(
            "<tr><td>{}<br><span class=\"muted\">{}</span></td>{cells}</tr><tr><td colspan=\"9\"><div class=\"chart\">{svg}</div></td></tr>",
            escape(names.get(&gcode[i]).map(String::as_str).unwrap_or(&gcode[i])),
            escape(&gcode[i])
        ));
    }
    // Yearly totals with the intervals of the yearly sum: provinces first.
    let mut yearly = String::new();
    let yf = dir.join("forecast_yearly.parquet");
    if yf.exists() {
        let y = read(&yf)?;
        let ycode = strs(&y, "code");
        let yname = strs(&y, "name");
        let yyear: Vec<Option<i32>> = y
            .column("year")
            .ok()
            .and_then(|c| c.i32().ok().map(|v| v.iter().collect()))
            .unwrap_or_default();
        let v: Vec<Vec<Option<f64>>> = [
            "forecast_vnd",
            "lo80",
            "hi80",
            "lo90",
            "hi90",
            "lo95",
            "hi95",
            "growth",
        ]
        .iter()
        .map(|c| nums(&y, c))
        .collect();
        let mut order: Vec<usize> = (0..y.height()).collect();
        order.sort_by_key(|i| {
            (
                !crate::forecast::is_province(&ycode[*i]),
                ycode[*i].clone(),
                yyear.get(*i).copied().flatten(),
            )
        });
        for i in order {
            yearly.push_str(&format!(
                "<tr class=\"row\" data-id=\"{c}-{yr}\" data-facility=\"{c} {n}\"><td>{c}<br><span class=\"muted\">{n}</span></td><td>{yr}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{} … {}</td><td class=\"num\">{} … {}</td><td class=\"num\">{} … {}</td><td class=\"num\">{}</td></tr>\n",
                opt(v[0][i]),
                opt(v[1][i]),
                opt(v[2][i]),
                opt(v[3][i]),
                opt(v[4][i]),
                opt(v[5][i]),
                opt(v[6][i]),
                v[7][i].map(|g| format!("{:+.1} %", 100.0 * g)).unwrap_or_else(|| "–".into()),
                c = escape(&ycode[i]),
                n = escape(&yname[i]),
                yr = yyear.get(i).copied().flatten().map(|y| y.to_string()).unwrap_or_default(),
            ));
        }
    }
    let yh: String = [
        t("Mã", "Code"),
        t("Năm", "Year"),
        t("Dự báo cả năm (đồng)", "Year total forecast (VND)"),
        t("Khoảng 80 %", "80 % interval"),
        t("Khoảng 90 %", "90 % interval"),
        t("Khoảng 95 %", "95 % interval"),
        t("Tăng so với năm trước", "Growth on the year before"),
    ]
    .iter()
    .map(|h| format!("<th data-sort>{}</th>", escape(h)))
    .collect();
    let title = t(
        "Dự toán chi khám chữa bệnh BHYT — dự báo và nguy cơ vượt",
        "Health insurance budget — forecast and overrun risk",
    );
    let years = |c: &str| {
        g.column(c)
            .ok()
            .and_then(|c| c.i32().ok().and_then(|v| v.get(0)))
            .map(|y| format!(" ({y})"))
            .unwrap_or_default()
    };
    let gh: String = [
        t("Tỉnh", "Province").to_string(),
        format!("{}{}", t("Năm gốc", "Base year"), years("base_year")),
        format!("{}{}", t("Dự báo", "Forecast"), years("forecast_year")),
        t("Số lượt", "Volume").to_string(),
        t("Giá", "Price").to_string(),
        t("Cơ cấu bệnh", "Case mix").to_string(),
        t("Thay đổi đã biết", "Known changes").to_string(),
        t("Khác", "Other").to_string(),
        t("Người bệnh ngoại tỉnh", "Out-of-province patients").to_string(),
    ]
    .iter()
    .map(|h| format!("<th>{}</th>", escape(h.as_ref())))
    .collect();
    let ph: String = [
        t("Mã", "Code"),
        t("Dự toán (đồng)", "Budget (VND)"),
        t("Dự kiến chi cả năm", "Projected year-end"),
        t("Vượt (+) / dư (−)", "Overrun (+) / surplus (−)"),
        t("Khoảng 90 %", "90 % interval"),
        t("Hết dự toán vào", "Budget runs out in"),
    ]
    .iter()
    .map(|h| format!("<th data-sort>{}</th>", escape(h)))
    .collect();
    let body = format!(
        "<h1>{}</h1><h2>{}</h2><table><thead><tr>{gh}</tr></thead><tbody>{growth}</tbody></table>\
         <h2>{}</h2><table><thead><tr>{yh}</tr></thead><tbody>{yearly}</tbody></table>\
         <h2>{}</h2><div class=\"filters\"><label>{} <input data-filter=\"facility\" size=\"12\"></label></div>\
         <table><thead><tr>{ph}</tr></thead><tbody>{rows}</tbody></table><h2>{}</h2>{charts}\
         <p class=\"muted\">{}</p>",
        escape(title),
        t("Tăng trưởng năm sau, phân tích theo nguyên nhân (đồng)", "Next year's growth by cause (VND)"),
        t(
            "Tổng chi cả năm: dự báo và khoảng tin cậy của tổng năm",
            "Year totals: forecast and intervals of the yearly sum"
        ),
        t("Dự kiến cuối năm so với dự toán", "Projected year-end against the budget"),
        t("Cơ sở", "Facility"),
        t("Cơ sở có nguy cơ vượt dự toán: dự báo và khoảng tin cậy", "Facilities likely to overrun: forecast and intervals"),
        t(
            "Biểu đồ của mọi cơ sở: thư mục charts/ của bhyt forecast.",
            "Charts of every facility: the charts/ folder of bhyt forecast.",
        ),
    );
    crate::store::write_atomic(
        &o.out.join("planner.html"),
        page(title, lang, &body).as_bytes(),
    )?;
    Ok(())
}

/// Weight of evidence of a severity: Φ(severity − 4), 0.5 at the alert
/// threshold, 0.98 at 6, 0.02 at 2. The expected recoverable amount of a
/// facility is its estimated excess × this weight.
pub fn evidence_weight(severity: f64) -> f64 {
    1.0 - crate::detect::calibrate::p_of_severity(severity - 4.0)
}

/// One facility of the audit plan.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub facility_code: String,
    pub severity: f64,
    pub excess_vnd: f64,
    pub expected_recoverable_vnd: f64,
    pub signal: String,
    pub detector: String,
    pub onset: Option<NaiveDate>,
    pub week: NaiveDate,
}

/// Ranks facilities by expected recoverable amount over the last year of
/// scores: for each facility its strongest period (largest severity ×
/// excess weight) in the 52 weeks up to the last period.
pub fn audit_ranking(scores: &DataFrame) -> Result<Vec<AuditRow>, ReportError> {
    let fac = strs(scores, "facility_code");
    let sig = strs(scores, "signal");
    let det = strs(scores, "detector");
    let sev = nums(scores, "severity");
    let exc = nums(scores, "excess_vnd");
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let days = |c: &str| crate::schema::date_column(scores, c);
    let period = days("period_start")?;
    let onset = days("onset")?;
    let last = period.iter().flatten().max().copied().unwrap_or(epoch);
    let from = last - chrono::Duration::weeks(52);
    let mut best: HashMap<&str, AuditRow> = HashMap::new();
    for i in 0..scores.height() {
        let Some(p) = period[i].filter(|p| *p > from) else {
            continue;
        };
        let s = sev[i].unwrap_or(0.0);
        let x = exc[i].unwrap_or(0.0);
        let r = x * evidence_weight(s);
        let e = best.entry(fac[i].as_str()).or_insert_with(|| AuditRow {
            facility_code: fac[i].clone(),
            severity: 0.0,
            excess_vnd: 0.0,
            expected_recoverable_vnd: -1.0,
            signal: String::new(),
            detector: String::new(),
            onset: None,
            week: p,
        });
        if r > e.expected_recoverable_vnd {
            *e = AuditRow {
                facility_code: fac[i].clone(),
                severity: s,
                excess_vnd: x,
                expected_recoverable_vnd: r,
                signal: sig[i].clone(),
                detector: det[i].clone(),
                onset: onset[i],
                week: p,
            };
        }
    }
    let mut rows: Vec<AuditRow> = best.into_values().collect();
    rows.sort_by(|a, b| {
        b.expected_recoverable_vnd
            .total_cmp(&a.expected_recoverable_vnd)
            .then(a.facility_code.cmp(&b.facility_code))
    });
    Ok(rows)
}

fn audit_plan(o: &ReportOptions) -> Result<(), ReportError> {
    let lang = o.lang;
    let t = |vi: &'static str, en: &'static str| match lang {
        Lang::Vi => vi,
        Lang::En => en,
    };
    let scores = read(&o.detect_dir.join("scores.parquet"))?;
    let rows = audit_ranking(&scores)?;
    let f = read(&o.features)?;
    let names = facility_names(o.data_dir.as_deref())?;
    let planned: Vec<&AuditRow> = rows
        .iter()
        .filter(|r| r.expected_recoverable_vnd > 0.0)
        .take(o.capacity)
        .collect();
    // Contributors of the planned facilities, from the store.
    let contrib = match &o.data_dir {
        Some(d) => {
            let st = crate::store::Store::open(d)?;
            let spans: Vec<crate::alerts::explain::Span> = planned
                .iter()
                .map(|r| crate::alerts::explain::Span {
                    facility_code: r.facility_code.clone(),
                    window: (
                        r.onset.unwrap_or(r.week),
                        r.week + chrono::Duration::days(6),
                    ),
                    baseline: (
                        r.onset.unwrap_or(r.week) - chrono::Duration::weeks(52),
                        r.onset.unwrap_or(r.week) - chrono::Duration::days(1),
                    ),
                })
                .collect();
            crate::alerts::explain::contributors(&st, &spans, None, 5)?
        }
        None => HashMap::new(),
    };
    let fac = strs(&f, "facility_code");
    let group = strs(&f, "peer_group");
    let period = periods(&f)?;
    let indicators = [
        "avg_cost_outpatient",
        "avg_cost_inpatient",
        "alos",
        "admission_rate",
        "oe_cost",
        "oe_los",
        "bed_cost_share_inpatient",
        "drug_supply_price_index",
        "oop_visit_share",
        "overlapping_claim_share",
    ];
    let vals: HashMap<&str, Vec<Option<f64>>> =
        indicators.iter().map(|c| (*c, nums(&f, c))).collect();
    let mut table = String::new();
    let mut pages = String::new();
    for (rank, r) in rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.expected_recoverable_vnd > 0.0)
        .take(o.capacity.max(1) * 3)
    {
        let planned_here = rank < o.capacity;
        let name = names.get(&r.facility_code).cloned().unwrap_or_default();
        table.push_str(&format!(
            "<tr class=\"row{}\" data-id=\"{c}\" data-facility=\"{c} {n}\"><td class=\"num\">{}</td><td>{c}<br><span class=\"muted\">{n}</span></td>\
             <td class=\"num\" data-v=\"{:.0}\">{}</td><td class=\"num\" data-v=\"{:.2}\">{:.1}</td><td class=\"num\" data-v=\"{:.0}\">{}</td><td>{}</td><td>{}</td></tr>\n",
            if planned_here { " high" } else { "" },
            rank + 1,
            r.expected_recoverable_vnd,
            vnd(r.expected_recoverable_vnd, lang),
            r.severity,
            r.severity,
            r.excess_vnd,
            vnd(r.excess_vnd, lang),
            escape(label(&r.signal, lang)),
            if planned_here { t("kiểm tra", "audit") } else { "" },
            c = escape(&r.facility_code),
            n = escape(&name),
        ));
        if !planned_here {
            continue;
        }
        // Evidence: indicators over the last 13 weeks against the peer median.
        let g = (0..f.height())
            .find(|&i| fac[i] == r.facility_code)
            .map(|i| group[i].clone())
            .unwrap_or_default();
        let recent =
            |i: usize| period[i] > r.week - chrono::Duration::weeks(13) && period[i] <= r.week;
        let mut ind_rows = String::new();
        for c in indicators {
            let v = &vals[c];
            let own: Vec<f64> = (0..f.height())
                .filter(|&i| fac[i] == r.facility_code && recent(i))
                .filter_map(|i| v[i])
                .collect();
            let mut per_fac: HashMap<&str, Vec<f64>> = HashMap::new();
            for i in 0..f.height() {
                if group[i] == g && recent(i) {
                    if let Some(x) = v[i] {
                        per_fac.entry(fac[i].as_str()).or_default().push(x);
                    }
                }
            }
            let mut means: Vec<f64> = per_fac
                .values()
                .map(|x| x.iter().sum::<f64>() / x.len() as f64)
                .collect();
            means.sort_by(f64::total_cmp);
            if own.is_empty() || means.is_empty() {
                continue;
            }
            let m = own.iter().sum::<f64>() / own.len() as f64;
            let med = means[means.len() / 2];
            let fmt = |x: f64| {
                if c.starts_with("avg_cost") {
                    vnd(x, lang)
                } else {
                    show(c, x, lang)
                }
            };
            let name = match (c, lang) {
                ("avg_cost_outpatient", Lang::Vi) => "chi bình quân lượt ngoại trú (đồng)",
                ("avg_cost_outpatient", Lang::En) => "average cost per outpatient visit (VND)",
                ("avg_cost_inpatient", Lang::Vi) => "chi bình quân đợt nội trú (đồng)",
                ("avg_cost_inpatient", Lang::En) => "average cost per inpatient stay (VND)",
                ("alos", Lang::Vi) => "ngày điều trị bình quân",
                ("alos", Lang::En) => "average length of stay (days)",
                ("admission_rate", Lang::Vi) => "tỷ lệ nhập viện",
                ("admission_rate", Lang::En) => "admission rate",
                _ => label(c, lang),
            };
            ind_rows.push_str(&format!(
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(name),
                fmt(m),
                fmt(med),
                if med.abs() > 0.0 {
                    let r = format!("{:.2}", m / med);
                    if lang == Lang::Vi { r.replace('.', ",") } else { r }
                } else {
                    "–".into()
                }
            ));
        }
        // Trend: the driving indicator over up to three years, weekly.
        let signal = chart_signal(&r.signal).to_string();
        let sv = nums(&f, &signal);
        let series: Vec<(NaiveDate, f64)> = (0..f.height())
            .filter(|&i| {
                fac[i] == r.facility_code
                    && period[i] <= r.week
                    && period[i] > r.week - chrono::Duration::weeks(156)
            })
            .filter_map(|i| sv[i].map(|x| (period[i], x)))
            .collect();
        let svg = AlertChart {
            title: &r.facility_code,
            series: &series,
            band: &[],
            control: None,
            onset: r.onset,
            signal: &signal,
            lang,
        }
        .svg()?;
        let k = contrib.get(&r.facility_code).cloned().unwrap_or_default();
        let list = |v: &[(String, f64)]| {
            v.iter()
                .map(|(k, x)| format!("{} (+{})", escape(k), vnd(*x, lang)))
                .collect::<Vec<_>>()
                .join("; ")
        };
        pages.push_str(&format!(
            "<h2 id=\"f{c}\">{}. {c} {n}</h2><p>{}: {} — {}: {} — {}: {}</p>\
             <table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{ind_rows}</tbody></table>\
             <div class=\"chart\">{svg}</div><p><b>MA_LK</b>: {}</p><p><b>{}</b>: {}</p><p><b>{}</b>: {}</p>",
            rank + 1,
            t("Dấu hiệu", "Signal"),
            escape(label(&r.signal, lang)),
            t("từ", "since"),
            r.onset.map(|d| d.format("%d/%m/%Y").to_string()).unwrap_or_default(),
            t("chi vượt ước tính", "estimated excess"),
            vnd(r.excess_vnd, lang),
            t("Chỉ số (13 tuần gần nhất)", "Indicator (last 13 weeks)"),
            t("Cơ sở", "Facility"),
            t("Trung vị nhóm", "Peer median"),
            t("Tỷ số", "Ratio"),
            list(&k.claims),
            t("Dịch vụ, thuốc", "Services, drugs"),
            list(&k.services),
            t("Khoa", "Departments"),
            list(&k.departments),
            c = escape(&r.facility_code),
            n = escape(&names.get(&r.facility_code).cloned().unwrap_or_default()),
        ));
    }
    let title = t(
        "Kế hoạch kiểm tra — xếp hạng theo số tiền có thể thu hồi",
        "Audit plan — ranked by expected recoverable amount",
    );
    let ths: String = [
        t("Hạng", "Rank"),
        t("Cơ sở", "Facility"),
        t(
            "Có thể thu hồi (kỳ vọng, đồng)",
            "Expected recoverable (VND)",
        ),
        t("Mức độ", "Severity"),
        t("Chi vượt ước tính", "Estimated excess"),
        t("Dấu hiệu chính", "Main signal"),
        t("Kế hoạch", "Plan"),
    ]
    .iter()
    .map(|h| format!("<th data-sort>{}</th>", escape(h)))
    .collect();
    let body = format!(
        "<h1>{}</h1><p>{} {} {}</p><div class=\"filters\"><label>{} <input data-filter=\"facility\" size=\"12\"></label></div>\
         <table><thead><tr>{ths}</tr></thead><tbody>{table}</tbody></table>{pages}",
        escape(title),
        t("Số cuộc kiểm tra có thể thực hiện:", "Audits the team can do:"),
        o.capacity,
        t(
            "Số tiền kỳ vọng = chi vượt ước tính × trọng số bằng chứng Φ(mức độ − 4).",
            "Expected amount = estimated excess × evidence weight Φ(severity − 4).",
        ),
        t("Cơ sở", "Facility"),
    );
    crate::store::write_atomic(
        &o.out.join("audit.html"),
        page(title, lang, &body).as_bytes(),
    )?;
    Ok(())
}
