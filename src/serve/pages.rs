//! The workspace's HTML: Vietnamese first (`?lang=en` for English), every
//! value escaped, every form with its CSRF token.

use crate::detect::Lang;
use crate::format::group_vi;
use crate::report::html::{escape as e, page};

use super::auth::{Access, Role};
use super::db::{AlertRow, AuditRow, DecisionRow};
use super::sync::BudgetRow;

pub fn t(lang: Lang, vi: &'static str, en: &'static str) -> &'static str {
    match lang {
        Lang::Vi => vi,
        Lang::En => en,
    }
}

fn vnd(x: f64) -> String {
    if x.is_finite() {
        group_vi(x.round() as i64)
    } else {
        "–".into()
    }
}

/// A severity with one decimal, in the language's notation.
pub(super) fn dec1(lang: Lang, x: f64) -> String {
    let s = format!("{x:.1}");
    match lang {
        Lang::Vi => s.replace('.', ","),
        Lang::En => s,
    }
}

/// A cause in words (the engine's name when it has none).
pub(super) fn cause_label(lang: Lang, cause: &str) -> String {
    let l = crate::detect::signals::label(cause, lang);
    if l == crate::detect::signals::label("", lang) {
        cause.to_string()
    } else {
        l.to_string()
    }
}

fn status_label(lang: Lang, s: &str) -> &'static str {
    match s {
        "open" => t(lang, "chưa xử lý", "open"),
        "confirmed" => t(lang, "xác nhận", "confirmed"),
        "explained" => t(lang, "giải trình", "explained"),
        "dismissed" => t(lang, "bác bỏ", "dismissed"),
        _ => "?",
    }
}

pub(super) fn nav(a: &Access, lang: Lang) -> String {
    let q = if lang == Lang::En { "?lang=en" } else { "" };
    let mut links = Vec::new();
    if a.role != Role::Planner {
        links.push(format!(
            "<a href=\"/queue{q}\">{}</a>",
            t(lang, "Danh sách cảnh báo", "Alert queue")
        ));
    }
    if a.owns_audit_plan() {
        links.push(format!(
            "<a href=\"/audit{q}\">{}</a>",
            t(lang, "Kế hoạch kiểm tra", "Audit plan")
        ));
    }
    if a.role != Role::Reviewer {
        links.push(format!(
            "<a href=\"/planner{q}\">{}</a>",
            t(lang, "Dự toán", "Budgets")
        ));
    }
    format!(
        "<nav>{} · <span class=\"muted\">{} ({})</span> \
         <form method=\"post\" action=\"/logout\" style=\"display:inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button>{}</button></form></nav>",
        links.join(" · "),
        e(&a.user.name),
        a.role.as_str(),
        e(&a.csrf),
        t(lang, "Đăng xuất", "Log out")
    )
}

pub fn login(lang: Lang, csrf: &str, message: Option<&str>) -> String {
    let body = format!(
        "<h1>{}</h1>{}<form method=\"post\" action=\"/login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <p><label>{} <input name=\"name\" autocomplete=\"username\" required></label></p>\
         <p><label>{} <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label></p>\
         <p><button id=\"login\">{}</button></p></form>",
        t(lang, "Đăng nhập", "Log in"),
        message
            .map(|m| format!("<p class=\"error\">{}</p>", e(m)))
            .unwrap_or_default(),
        e(csrf),
        t(lang, "Tên đăng nhập", "User name"),
        t(lang, "Mật khẩu", "Password"),
        t(lang, "Đăng nhập", "Log in"),
    );
    page(t(lang, "Đăng nhập", "Log in"), lang, &body)
}

/// Filters of the queue.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct QueueFilter {
    pub status: Option<String>,
    pub province: Option<String>,
    pub q: Option<String>,
    pub assignee: Option<String>,
    pub lang: Option<String>,
}

impl QueueFilter {
    pub fn keep(&self, a: &AlertRow) -> bool {
        let some = |o: &Option<String>| o.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
        some(&self.status).is_none_or(|s| a.status == s)
            && some(&self.province).is_none_or(|p| a.province == p)
            && some(&self.assignee).is_none_or(|p| a.assignee == p)
            && some(&self.q).is_none_or(|q| {
                let q = q.to_lowercase();
                a.facility_code.to_lowercase().contains(&q)
                    || a.facility_name.to_lowercase().contains(&q)
                    || a.cause.to_lowercase().contains(&q)
            })
    }
}

pub fn queue(a: &Access, lang: Lang, all: &[AlertRow], f: &QueueFilter) -> String {
    let shown: Vec<&AlertRow> = all.iter().filter(|x| f.keep(x)).collect();
    let mut counts = std::collections::BTreeMap::new();
    for x in all {
        *counts.entry(x.status.as_str()).or_insert(0usize) += 1;
    }
    let counts: Vec<String> = counts
        .iter()
        .map(|(s, n)| format!("{}: {n}", status_label(lang, s)))
        .collect();
    let lq = if lang == Lang::En { "&lang=en" } else { "" };
    let rows: String = shown
        .iter()
        .map(|x| {
            format!(
                "<tr class=\"row\" data-id=\"{id}\"><td><a href=\"/alerts/{url}?{lq}\">{fac}</a> {name}</td>\
                 <td>{prov}</td><td>{cause}</td><td class=\"num\" data-v=\"{sev}\">{sevs}</td>\
                 <td class=\"num\" data-v=\"{ex}\">{exs}</td><td>{st}</td><td>{who}</td><td>{reason}</td></tr>",
                id = e(&x.alert_id),
                url = url_escape(&x.alert_id),
                fac = e(&x.facility_code),
                name = e(&x.facility_name),
                prov = e(&x.province),
                cause = e(&cause_label(lang, &x.cause)),
                sev = x.severity,
                sevs = dec1(lang, x.severity),
                ex = x.excess_vnd,
                exs = vnd(x.excess_vnd),
                st = status_label(lang, &x.status),
                who = e(&x.assignee),
                reason = e(match lang {
                    Lang::Vi => &x.reason_vi,
                    Lang::En => &x.reason_en,
                }),
            )
        })
        .collect();
    let opt = |v: &str, label: &str, cur: &Option<String>| {
        format!(
            "<option value=\"{}\"{}>{}</option>",
            e(v),
            if cur.as_deref() == Some(v) {
                " selected"
            } else {
                ""
            },
            e(label)
        )
    };
    let statuses: String = ["", "open", "confirmed", "explained", "dismissed"]
        .iter()
        .map(|s| {
            opt(
                s,
                if s.is_empty() {
                    t(lang, "tất cả", "all")
                } else {
                    status_label(lang, s)
                },
                &f.status,
            )
        })
        .collect();
    let body = format!(
        "{nav}<h1>{title}</h1><p class=\"muted\" id=\"counts\">{counts}</p>\
         <form method=\"get\" action=\"/queue\" class=\"filters\">\
         <label>{ls} <select name=\"status\">{statuses}</select></label>\
         <label>{lp} <input name=\"province\" value=\"{pv}\" size=\"4\"></label>\
         <label>{lf} <input name=\"q\" value=\"{qv}\"></label>\
         {lang_field}<button id=\"filter\">{go}</button> \
         <a href=\"/export/queue.xlsx?{xq}\">XLSX</a> · <a href=\"/api/alerts\">JSON</a> · \
         <a href=\"/export/decisions.xlsx\">{ldx}</a></form>\
         <p><span id=\"shown\">{n}</span> {of}</p>\
         <table><thead><tr><th data-sort>{h1}</th><th data-sort>{h2}</th><th data-sort>{h3}</th>\
         <th data-sort>{h4}</th><th data-sort>{h5}</th><th data-sort>{h6}</th><th data-sort>{h7}</th><th>{h8}</th></tr></thead>\
         <tbody>{rows}</tbody></table>",
        nav = nav(a, lang),
        title = t(lang, "Cảnh báo chi phí tăng cao bất hợp lý", "Unreasonably high cost alerts"),
        counts = e(&counts.join(" · ")),
        ls = t(lang, "Trạng thái", "Status"),
        lp = t(lang, "Tỉnh", "Province"),
        pv = e(f.province.as_deref().unwrap_or("")),
        lf = t(lang, "Cơ sở / nguyên nhân", "Facility / cause"),
        qv = e(f.q.as_deref().unwrap_or("")),
        lang_field = if lang == Lang::En { "<input type=\"hidden\" name=\"lang\" value=\"en\">" } else { "" },
        go = t(lang, "Lọc", "Filter"),
        ldx = t(lang, "Các quyết định (XLSX)", "Decisions (XLSX)"),
        xq = e(&format!(
            "status={}&province={}&q={}",
            url_escape(f.status.as_deref().unwrap_or("")),
            url_escape(f.province.as_deref().unwrap_or("")),
            url_escape(f.q.as_deref().unwrap_or(""))
        )),
        n = shown.len(),
        of = t(lang, "cảnh báo", "alerts"),
        h1 = t(lang, "Cơ sở", "Facility"),
        h2 = t(lang, "Tỉnh", "Province"),
        h3 = t(lang, "Nguyên nhân", "Cause"),
        h4 = t(lang, "Mức độ", "Severity"),
        h5 = t(lang, "Chi vượt (đồng)", "Excess (VND)"),
        h6 = t(lang, "Trạng thái", "Status"),
        h7 = t(lang, "Người xử lý", "Assignee"),
        h8 = t(lang, "Lý do", "Reason"),
    );
    page(t(lang, "Danh sách cảnh báo", "Alert queue"), lang, &body)
}

/// Percent-encoding of a path segment or query value.
pub fn url_escape(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

pub fn detail(
    a: &Access,
    lang: Lang,
    x: &AlertRow,
    decisions: &[DecisionRow],
    history: &[AuditRow],
    earlier: &[AlertRow],
    chart_svg: &str,
) -> String {
    let evidence: serde_json::Value = serde_json::from_str(&x.evidence).unwrap_or_default();
    let ev = |k: &str, label: &str| {
        let v = evidence[k].as_str().unwrap_or("");
        if v.is_empty() {
            String::new()
        } else {
            format!("<h3>{}</h3><p>{}</p>", e(label), e(v))
        }
    };
    let decs: String = decisions
        .iter()
        .map(|d| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                e(&d.at),
                e(&d.reviewer),
                status_label(lang, &d.decision),
                vnd(d.amount_recovered_vnd),
                e(&d.comment)
            )
        })
        .collect();
    let hist: String = history
        .iter()
        .map(|h| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e(&h.at),
                e(&h.actor),
                e(&h.action),
                e(&h.detail)
            )
        })
        .collect();
    let earlier: String = earlier
        .iter()
        .filter(|o| o.alert_id != x.alert_id)
        .map(|o| {
            format!(
                "<li><a href=\"/alerts/{}\">{}</a> {} — {}</li>",
                url_escape(&o.alert_id),
                e(&cause_label(lang, &o.cause)),
                e(&o.as_of),
                status_label(lang, &o.status)
            )
        })
        .collect();
    let id = url_escape(&x.alert_id);
    let forms = if a.can_decide(x) {
        let opts: String = ["confirmed", "explained", "dismissed"]
            .iter()
            .map(|d| format!("<option value=\"{d}\">{}</option>", status_label(lang, d)))
            .collect();
        format!(
            "<h2>{h}</h2><form method=\"post\" action=\"/alerts/{id}/decision\" id=\"decide\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"version\" value=\"{v}\">\
             <p><label>{ld} <select name=\"decision\">{opts}</select></label></p>\
             <p><label>{lc} <textarea name=\"comment\" rows=\"3\" cols=\"60\"></textarea></label></p>\
             <p><label>{la} <input name=\"amount_recovered_vnd\" value=\"0\" size=\"14\"></label></p>\
             <p><button id=\"save\">{save}</button></p></form>\
             <form method=\"post\" action=\"/alerts/{id}/assign\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"version\" value=\"{v}\">\
             <label>{lw} <input name=\"assignee\" value=\"{me}\"></label> <button>{assign}</button></form>",
            h = t(lang, "Quyết định", "Decision"),
            csrf = e(&a.csrf),
            v = x.version,
            ld = t(lang, "Kết luận", "Outcome"),
            lc = t(lang, "Ghi chú", "Comment"),
            la = t(lang, "Số tiền thu hồi (đồng)", "Amount recovered (VND)"),
            save = t(lang, "Lưu", "Save"),
            lw = t(lang, "Giao cho", "Assign to"),
            me = e(&a.user.name),
            assign = t(lang, "Giao", "Assign"),
        )
    } else {
        String::new()
    };
    let body = format!(
        "{nav}<h1>{fac} {name}</h1>\
         <p><b>{cause}</b> · {lp} {prov} · {lw} {week} · {ls} <span id=\"status\">{st}</span> · {lv} {v}</p>\
         <p>{reason}</p>\
         <p>{lsev} {sev} · {lex} {ex}</p>\
         {chart}\
         <h2>{lev}</h2>{c}{s}{d}{p}\
         <h2>{ldec}</h2><table id=\"decisions\"><tr><th>{lt}</th><th>{lr}</th><th>{lo}</th><th>{la}</th><th>{lc}</th></tr>{decs}</table>\
         {forms}\
         <h2>{lh}</h2><table id=\"history\"><tr><th>{lt}</th><th>{lr}</th><th>{lact}</th><th>{ldet}</th></tr>{hist}</table>\
         <h2>{lear}</h2><ul>{earlier}</ul>",
        nav = nav(a, lang),
        fac = e(&x.facility_code),
        name = e(&x.facility_name),
        cause = e(&cause_label(lang, &x.cause)),
        lp = t(lang, "tỉnh", "province"),
        prov = e(&x.province),
        lw = t(lang, "tuần", "week"),
        week = e(&x.as_of),
        ls = t(lang, "trạng thái", "status"),
        st = status_label(lang, &x.status),
        lv = t(lang, "phiên bản", "version"),
        v = x.version,
        reason = e(match lang {
            Lang::Vi => &x.reason_vi,
            Lang::En => &x.reason_en,
        }),
        lsev = t(lang, "Mức độ", "Severity"),
        sev = dec1(lang, x.severity),
        lex = t(lang, "chi vượt ước tính (đồng)", "estimated excess (VND)"),
        ex = vnd(x.excess_vnd),
        // Drawn by the engine at sync (plotters: text escaped, no script).
        chart = if chart_svg.is_empty() {
            String::new()
        } else {
            format!(
                "<h2>{}</h2><div class=\"chart\" id=\"chart\">{chart_svg}</div>",
                t(lang, "So với nhóm cùng hạng và giới hạn kiểm soát", "Against peers and the control limit")
            )
        },
        lev = t(lang, "Bằng chứng", "Evidence"),
        c = ev("claims", t(lang, "Hồ sơ nổi bật (mã đã ẩn danh)", "Top claims (pseudonymised keys)")),
        s = ev("services", t(lang, "Dịch vụ", "Services")),
        d = ev("departments", t(lang, "Khoa", "Departments")),
        p = ev("prescribers", t(lang, "Người chỉ định", "Prescribers")),
        ldec = t(lang, "Các quyết định", "Decisions"),
        lt = t(lang, "Thời điểm", "When"),
        lr = t(lang, "Người", "Who"),
        lo = t(lang, "Kết luận", "Outcome"),
        la = t(lang, "Thu hồi", "Recovered"),
        lc = t(lang, "Ghi chú", "Comment"),
        lh = t(lang, "Lịch sử", "History"),
        lact = t(lang, "Thao tác", "Action"),
        ldet = t(lang, "Chi tiết", "Detail"),
        lear = t(lang, "Cảnh báo khác của cơ sở", "The facility's other alerts"),
    );
    page(&format!("{} {}", x.facility_code, x.cause), lang, &body)
}

pub fn conflict(lang: Lang, id: &str, current: i64) -> String {
    page(
        t(lang, "Xung đột", "Conflict"),
        lang,
        &format!(
            "<h1>{}</h1><p>{}</p><p><a href=\"/alerts/{}\">{}</a></p>",
            t(
                lang,
                "Cảnh báo đã được người khác cập nhật",
                "Someone else updated this alert"
            ),
            e(&format!(
                "{} {current}.",
                t(
                    lang,
                    "Quyết định của bạn chưa được lưu; cảnh báo hiện ở phiên bản",
                    "Your decision was not saved; the alert is now at version"
                )
            )),
            url_escape(id),
            t(lang, "Mở lại cảnh báo", "Open the alert again")
        ),
    )
}

pub fn planner(a: &Access, lang: Lang, rows: &[BudgetRow]) -> String {
    let body_rows: String = rows
        .iter()
        .map(|r| {
            format!(
                "<tr class=\"row\"><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{} ({} … {})</td><td class=\"num\">{}</td></tr>",
                e(&r.code),
                e(&r.name),
                e(&r.province),
                vnd(r.budget_vnd),
                vnd(r.spent_to_date_vnd),
                vnd(r.projected_vnd),
                vnd(r.projected_lo90),
                vnd(r.projected_hi90),
                vnd(r.overrun_vnd)
            )
        })
        .collect();
    let body = format!(
        "{}<h1>{}</h1><p><a href=\"/export/budget.xlsx\">XLSX</a> · <a href=\"/api/budget\">JSON</a></p><table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>",
        nav(a, lang),
        t(lang, "Dự toán: dự báo cuối năm so với dự toán", "Budgets: projected year-end against the budget"),
        t(lang, "Mã", "Code"),
        t(lang, "Tên", "Name"),
        t(lang, "Tỉnh", "Province"),
        t(lang, "Dự toán", "Budget"),
        t(lang, "Đã chi", "Spent"),
        t(lang, "Dự báo (khoảng 90 %)", "Projected (90 % interval)"),
        t(lang, "Vượt (+) / dư (−)", "Overrun (+) / surplus (−)"),
        body_rows
    );
    page(t(lang, "Dự toán", "Budgets"), lang, &body)
}
