//! `alerts.html`: the reviewers' weekly list, a chart and the evidence
//! under each alert.

use std::path::Path;

use chrono::NaiveDate;

use super::html::{escape, page};
use super::*;
use crate::detect::signals::label;

pub(super) fn alert_page(o: &ReportOptions, alerts_path: &Path) -> Result<usize, ReportError> {
    let a = read(alerts_path)?;
    let causes = strs(&a, "cause");
    let codes = strs(&a, "facility_code");
    let mut charts = ChartSource::open(&o.features, o.model.as_deref(), &causes)?.with_units(
        alerts_path.parent().unwrap_or(Path::new(".")),
        &codes,
        &causes,
    );
    let lang = o.lang;
    let t = |vi: &'static str, en: &'static str| match lang {
        Lang::Vi => vi,
        Lang::En => en,
    };
    let ids = strs(&a, "alert_id");
    let names = strs(&a, "facility_name");
    let groups = strs(&a, "peer_group");
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
        let data = charts.data(
            &chart::ChartRequest {
                facility_code: &codes[i],
                peer_group: &groups[i],
                cause: &causes[i],
                week: NaiveDate::parse_from_str(&weeks[i], "%Y-%m-%d").ok(),
                onset: NaiveDate::parse_from_str(&onsets[i], "%Y-%m-%d").ok(),
            },
            lang,
        );
        // No chart without a series (a cause the tables cannot draw, a
        // doctor's comparison from a run without its units table): an
        // empty frame says nothing.
        let svg = if data.series.is_empty() {
            String::new()
        } else {
            let chart = data.chart(lang);
            // PNG for slides.
            chart.png(
                &o.out
                    .join("png")
                    .join(format!("{}.png", ids[i].replace(':', "-"))),
            )?;
            format!("<div class=\"chart\">{}</div>", chart.svg()?)
        };
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
            "<tr class=\"detail\" data-id=\"{}\"><td colspan=\"8\">{svg}{}{}{}{}</td></tr>\n",
            escape(&ids[i]),
            list(
                0,
                t(
                    "Hồ sơ đóng góp nhiều nhất (MA_LK)",
                    "Claims adding most (MA_LK)"
                )
            ),
            list(
                1,
                t(
                    "Dịch vụ, thuốc tăng nhiều nhất (ngoài mức tăng chung của tỉnh)",
                    "Services and drugs that grew most (beyond the province's own change)"
                )
            ),
            list(
                2,
                t(
                    "Khoa (ngoài mức tăng chung của tỉnh)",
                    "Departments (beyond the province's own change)"
                )
            ),
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
