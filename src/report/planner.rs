//! `planner.html`: growth by cause, fan charts, projection against the
//! budget.

use std::path::Path;

use chrono::NaiveDate;

use super::html::{escape, page};
use super::*;

pub(super) fn planner_page(o: &ReportOptions, dir: &Path) -> Result<(), ReportError> {
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
