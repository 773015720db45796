//! The audit plan, owned by inspectors: the engine ranks facilities by
//! expected recoverable amount (`report::audit_ranking` over the detector's
//! scores); inspectors plan, skip or close audits within the round's
//! capacity (planning past it is refused), each change under optimistic
//! locking and in the audit trail. Reviewers and planners do not see it.

use axum::extract::{Form, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Json;
use serde::Deserialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::auth::Access;
use super::db::{audit_line, now, Db};
use super::pages::{t, url_escape};
use super::{access, lang_of, status, AppState, ServeError};
use crate::detect::Lang;
use crate::report::html::{escape as e, page};

/// One facility of a round's plan.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanRow {
    pub round: String,
    pub facility_code: String,
    pub facility_name: String,
    pub province: String,
    pub rank: i64,
    pub expected_recoverable_vnd: f64,
    pub severity: f64,
    pub excess_vnd: f64,
    pub signal: String,
    pub onset: String,
    /// proposed, planned, skipped or done.
    pub status: String,
    pub owner: String,
    pub note: String,
    pub version: i64,
}

/// A round: the week of the scores it was ranked on, and how many audits
/// the team can do.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Round {
    pub round: String,
    pub capacity: i64,
    pub version: i64,
}

pub const STATUSES: [&str; 4] = ["proposed", "planned", "skipped", "done"];

/// Outcome of a change to the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanChange {
    Recorded,
    /// Someone changed the row (or the round) since the form was loaded.
    Conflict,
    /// Planning it would pass the round's capacity.
    OverCapacity {
        capacity: i64,
    },
    Missing,
}

const PLAN_COLUMNS: &str = "round, facility_code, facility_name, province, rank, \
     expected_recoverable_vnd, severity, excess_vnd, signal, onset, status, owner, note, version";

fn plan_of(r: &AnyRow) -> Result<PlanRow, sqlx::Error> {
    Ok(PlanRow {
        round: r.try_get(0)?,
        facility_code: r.try_get(1)?,
        facility_name: r.try_get(2)?,
        province: r.try_get(3)?,
        rank: r.try_get(4)?,
        expected_recoverable_vnd: r.try_get(5)?,
        severity: r.try_get(6)?,
        excess_vnd: r.try_get(7)?,
        signal: r.try_get(8)?,
        onset: r.try_get(9)?,
        status: r.try_get(10)?,
        owner: r.try_get(11)?,
        note: r.try_get(12)?,
        version: r.try_get(13)?,
    })
}

impl Db {
    /// Adds a round's ranking: new facilities as proposed, known ones get
    /// fresh figures and keep what inspectors decided. The round's capacity
    /// is set when it is first seen.
    pub async fn sync_plan(
        &self,
        round: &str,
        capacity: i64,
        rows: &[PlanRow],
    ) -> Result<usize, ServeError> {
        let mut tx = self.pool.begin().await?;
        let known = sqlx::query("SELECT count(*) FROM audit_rounds WHERE round = $1")
            .bind(round)
            .fetch_one(&mut *tx)
            .await?
            .try_get::<i64, _>(0)?;
        if known == 0 {
            sqlx::query("INSERT INTO audit_rounds (round, capacity, version) VALUES ($1, $2, 1)")
                .bind(round)
                .bind(capacity)
                .execute(&mut *tx)
                .await?;
        }
        let mut new = 0;
        for r in rows {
            let updated = sqlx::query(
                "UPDATE audit_plan SET facility_name = $1, province = $2, rank = $3,
                    expected_recoverable_vnd = $4, severity = $5, excess_vnd = $6, signal = $7, onset = $8
                 WHERE round = $9 AND facility_code = $10",
            )
            .bind(&r.facility_name)
            .bind(&r.province)
            .bind(r.rank)
            .bind(r.expected_recoverable_vnd)
            .bind(r.severity)
            .bind(r.excess_vnd)
            .bind(&r.signal)
            .bind(&r.onset)
            .bind(round)
            .bind(&r.facility_code)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated > 0 {
                continue;
            }
            sqlx::query(&format!(
                "INSERT INTO audit_plan ({PLAN_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'proposed', '', '', 1)"
            ))
            .bind(round)
            .bind(&r.facility_code)
            .bind(&r.facility_name)
            .bind(&r.province)
            .bind(r.rank)
            .bind(r.expected_recoverable_vnd)
            .bind(r.severity)
            .bind(r.excess_vnd)
            .bind(&r.signal)
            .bind(&r.onset)
            .execute(&mut *tx)
            .await?;
            new += 1;
        }
        tx.commit().await?;
        Ok(new)
    }

    /// Rounds, newest first.
    pub async fn rounds(&self) -> Result<Vec<Round>, ServeError> {
        let rows =
            sqlx::query("SELECT round, capacity, version FROM audit_rounds ORDER BY round DESC")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(Round {
                    round: r.try_get(0)?,
                    capacity: r.try_get(1)?,
                    version: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// A round's plan in rank order.
    pub async fn plan(&self, round: &str) -> Result<Vec<PlanRow>, ServeError> {
        let rows = sqlx::query(&format!(
            "SELECT {PLAN_COLUMNS} FROM audit_plan WHERE round = $1 ORDER BY rank, facility_code"
        ))
        .bind(round)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(plan_of).collect::<Result<_, _>>()?)
    }

    /// Moves a facility of the plan to `status` if its row is still at
    /// `version`; planning counts against the round's capacity. The round's
    /// row is touched first (a no-op update), so concurrent planners of one
    /// round take turns (a row lock on PostgreSQL, the single writer on
    /// SQLite) and two cannot pass the capacity at once.
    pub async fn set_plan_status(
        &self,
        round: &str,
        facility: &str,
        version: i64,
        new_status: &str,
        note: &str,
        actor: &str,
    ) -> Result<PlanChange, ServeError> {
        let mut tx = self.pool.begin().await?;
        let locked = sqlx::query("UPDATE audit_rounds SET capacity = capacity WHERE round = $1")
            .bind(round)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if locked == 0 {
            tx.rollback().await?;
            return Ok(PlanChange::Missing);
        }
        if new_status == "planned" {
            let r = sqlx::query(
                "SELECT capacity, (SELECT count(*) FROM audit_plan
                     WHERE round = $1 AND status = 'planned' AND facility_code <> $2)
                 FROM audit_rounds WHERE round = $3",
            )
            .bind(round)
            .bind(facility)
            .bind(round)
            .fetch_one(&mut *tx)
            .await?;
            let (capacity, planned): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
            if planned >= capacity {
                tx.rollback().await?;
                return Ok(PlanChange::OverCapacity { capacity });
            }
        }
        let changed = sqlx::query(
            "UPDATE audit_plan SET status = $1, owner = $2, note = $3, version = version + 1
             WHERE round = $4 AND facility_code = $5 AND version = $6",
        )
        .bind(new_status)
        .bind(actor)
        .bind(note)
        .bind(round)
        .bind(facility)
        .bind(version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            let exists = sqlx::query(
                "SELECT count(*) FROM audit_plan WHERE round = $1 AND facility_code = $2",
            )
            .bind(round)
            .bind(facility)
            .fetch_one(&mut *tx)
            .await?
            .try_get::<i64, _>(0)?;
            tx.rollback().await?;
            return Ok(if exists > 0 {
                PlanChange::Conflict
            } else {
                PlanChange::Missing
            });
        }
        let object = format!("plan:{round}:{facility}");
        let detail = format!("{new_status} (version {version} → {}): {note}", version + 1);
        audit_line(&mut *tx, &now(), actor, "plan.status", &object, &detail).await?;
        tx.commit().await?;
        Ok(PlanChange::Recorded)
    }

    /// Sets a round's capacity if the round is still at `version`; never
    /// below the audits already planned.
    pub async fn set_capacity(
        &self,
        round: &str,
        version: i64,
        capacity: i64,
        actor: &str,
    ) -> Result<PlanChange, ServeError> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE audit_rounds SET capacity = $1, version = version + 1
             WHERE round = $2 AND version = $3 AND $4 >= (SELECT count(*) FROM audit_plan
                 WHERE round = $5 AND status = 'planned')",
        )
        .bind(capacity)
        .bind(round)
        .bind(version)
        .bind(capacity)
        .bind(round)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            let r = sqlx::query(
                "SELECT version, (SELECT count(*) FROM audit_plan WHERE round = $1 AND status = 'planned')
                 FROM audit_rounds WHERE round = $2",
            )
            .bind(round)
            .bind(round)
            .fetch_optional(&mut *tx)
            .await?;
            tx.rollback().await?;
            return Ok(match r {
                None => PlanChange::Missing,
                Some(r) if r.try_get::<i64, _>(0)? != version => PlanChange::Conflict,
                Some(r) => PlanChange::OverCapacity {
                    capacity: r.try_get(1)?,
                },
            });
        }
        let object = format!("plan:{round}");
        audit_line(
            &mut *tx,
            &now(),
            actor,
            "plan.capacity",
            &object,
            &capacity.to_string(),
        )
        .await?;
        tx.commit().await?;
        Ok(PlanChange::Recorded)
    }
}

/// The round asked for, or the newest.
async fn chosen_round(s: &AppState, asked: Option<&str>) -> Result<Option<Round>, ServeError> {
    let rounds = s.db.rounds().await?;
    Ok(match asked.filter(|r| !r.is_empty()) {
        Some(r) => rounds.into_iter().find(|x| x.round == r),
        None => rounds.into_iter().next(),
    })
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct PlanQuery {
    round: Option<String>,
    lang: Option<String>,
}

/// The signed-in user if they may read the plan, else the refusal.
async fn plan_access(
    s: &AppState,
    headers: &HeaderMap,
) -> Result<Result<Access, Response>, ServeError> {
    Ok(match access(s, headers).await? {
        None => Err(status(StatusCode::UNAUTHORIZED, "log in first")),
        Some(a) if !a.owns_audit_plan() => {
            Err(status(StatusCode::FORBIDDEN, "not allowed for this role"))
        }
        Some(a) => Ok(a),
    })
}

/// A round's plan for the page, the API and the export.
pub(super) async fn plan_rows(
    s: &AppState,
    headers: &HeaderMap,
    round: Option<&str>,
) -> Result<Result<(Round, Vec<PlanRow>), Response>, ServeError> {
    if let Err(r) = plan_access(s, headers).await? {
        return Ok(Err(r));
    }
    Ok(match chosen_round(s, round).await? {
        Some(r) => {
            let rows = s.db.plan(&r.round).await?;
            Ok((r, rows))
        }
        None => Err(status(StatusCode::NOT_FOUND, "no audit round yet")),
    })
}

pub(super) async fn plan_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<PlanQuery>,
) -> Result<Response, ServeError> {
    let a = match access(&s, &headers).await? {
        None => return Ok(Redirect::to("/login").into_response()),
        Some(a) => a,
    };
    Ok(match plan_rows(&s, &headers, q.round.as_deref()).await? {
        Ok((round, rows)) => {
            Html(page_html(&a, lang_of(q.lang.as_deref()), &round, &rows)).into_response()
        }
        Err(r) => r,
    })
}

pub(super) async fn api_plan(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<PlanQuery>,
) -> Result<Response, ServeError> {
    Ok(match plan_rows(&s, &headers, q.round.as_deref()).await? {
        Ok((round, rows)) => {
            Json(serde_json::json!({ "round": round, "plan": rows })).into_response()
        }
        Err(r) => r,
    })
}

#[derive(Deserialize)]
pub(super) struct StatusForm {
    csrf: String,
    round: String,
    version: i64,
    status: String,
    #[serde(default)]
    note: String,
}

fn change_response(lang: Lang, change: PlanChange, round: &str) -> Response {
    match change {
        PlanChange::Recorded => {
            Redirect::to(&format!("/audit?round={}", url_escape(round))).into_response()
        }
        PlanChange::Conflict => (
            StatusCode::CONFLICT,
            Html(page(
                t(lang, "Xung đột", "Conflict"),
                lang,
                &format!(
                    "<h1>{}</h1><p><a href=\"/audit?round={}\">{}</a></p>",
                    t(
                        lang,
                        "Kế hoạch đã được người khác cập nhật; thay đổi của bạn chưa được lưu",
                        "Someone else updated the plan; your change was not saved"
                    ),
                    url_escape(round),
                    t(lang, "Mở lại kế hoạch", "Open the plan again")
                ),
            )),
        )
            .into_response(),
        PlanChange::OverCapacity { capacity } => (
            StatusCode::CONFLICT,
            Html(page(
                t(lang, "Vượt năng lực", "Over capacity"),
                lang,
                &format!(
                    "<h1>{}</h1><p>{} {capacity}.</p><p><a href=\"/audit?round={}\">{}</a></p>",
                    t(lang, "Vượt năng lực kiểm tra", "Over the audit capacity"),
                    t(
                        lang,
                        "Số cuộc kiểm tra đã lên kế hoạch hoặc năng lực của vòng:",
                        "Audits planned or the round's capacity:"
                    ),
                    url_escape(round),
                    t(lang, "Mở lại kế hoạch", "Open the plan again")
                ),
            )),
        )
            .into_response(),
        PlanChange::Missing => status(StatusCode::NOT_FOUND, "no such plan entry"),
    }
}

pub(super) async fn set_status_form(
    State(s): State<AppState>,
    headers: HeaderMap,
    UrlPath(facility): UrlPath<String>,
    Form(f): Form<StatusForm>,
) -> Result<Response, ServeError> {
    let a = match plan_access(&s, &headers).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    if !super::auth::same(&a.csrf, &f.csrf) {
        return Ok(status(StatusCode::FORBIDDEN, "CSRF token missing or wrong"));
    }
    if !STATUSES.contains(&f.status.as_str()) || f.note.chars().count() > 2000 {
        return Ok(status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "status: proposed, planned, skipped or done; note ≤ 2000 characters",
        ));
    }
    let change =
        s.db.set_plan_status(
            &f.round,
            &facility,
            f.version,
            &f.status,
            &f.note,
            &a.user.name,
        )
        .await?;
    Ok(change_response(Lang::Vi, change, &f.round))
}

#[derive(Deserialize)]
pub(super) struct CapacityForm {
    csrf: String,
    round: String,
    version: i64,
    capacity: i64,
}

pub(super) async fn set_capacity_form(
    State(s): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CapacityForm>,
) -> Result<Response, ServeError> {
    let a = match plan_access(&s, &headers).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    if !super::auth::same(&a.csrf, &f.csrf) {
        return Ok(status(StatusCode::FORBIDDEN, "CSRF token missing or wrong"));
    }
    if !(0..=10_000).contains(&f.capacity) {
        return Ok(status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "capacity: 0 to 10000",
        ));
    }
    let change =
        s.db.set_capacity(&f.round, f.version, f.capacity, &a.user.name)
            .await?;
    Ok(change_response(Lang::Vi, change, &f.round))
}

fn status_label(lang: Lang, s: &str) -> &'static str {
    match s {
        "proposed" => t(lang, "đề xuất", "proposed"),
        "planned" => t(lang, "kiểm tra", "planned"),
        "skipped" => t(lang, "không kiểm tra", "skipped"),
        "done" => t(lang, "đã kiểm tra", "done"),
        _ => "?",
    }
}

fn page_html(a: &Access, lang: Lang, round: &Round, rows: &[PlanRow]) -> String {
    let planned = rows.iter().filter(|r| r.status == "planned").count();
    let vnd = |x: f64| crate::format::group_vi(x.round() as i64);
    let body_rows: String = rows
        .iter()
        .map(|r| {
            let opts: String = STATUSES
                .iter()
                .map(|s| {
                    format!(
                        "<option value=\"{s}\"{}>{}</option>",
                        if *s == r.status { " selected" } else { "" },
                        status_label(lang, s)
                    )
                })
                .collect();
            format!(
                "<tr class=\"row{hi}\" data-facility=\"{c}\"><td class=\"num\">{rank}</td><td>{c}<br><span class=\"muted\">{n}</span></td>\
                 <td>{p}</td><td class=\"num\">{exp}</td><td class=\"num\">{sev}</td><td class=\"num\">{ex}</td><td>{sig}</td>\
                 <td class=\"status\">{st}</td><td>{owner}</td>\
                 <td><form method=\"post\" action=\"/audit/{cu}/status\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"round\" value=\"{round}\">\
                 <input type=\"hidden\" name=\"version\" value=\"{v}\"><select name=\"status\">{opts}</select> \
                 <input name=\"note\" value=\"{note}\" size=\"18\"> <button>{save}</button></form></td></tr>",
                hi = if r.rank as usize <= round.capacity as usize { " high" } else { "" },
                rank = r.rank,
                c = e(&r.facility_code),
                cu = url_escape(&r.facility_code),
                n = e(&r.facility_name),
                p = e(&r.province),
                exp = vnd(r.expected_recoverable_vnd),
                sev = super::pages::dec1(lang, r.severity),
                ex = vnd(r.excess_vnd),
                sig = e(&super::pages::cause_label(lang, &r.signal)),
                st = status_label(lang, &r.status),
                owner = e(&r.owner),
                csrf = e(&a.csrf),
                round = e(&r.round),
                v = r.version,
                note = e(&r.note),
                save = t(lang, "Lưu", "Save"),
            )
        })
        .collect();
    let rq = url_escape(&round.round);
    let body = format!(
        "{nav}<h1>{title} {r}</h1>\
         <p>{lp} <b id=\"planned\">{planned}</b> / <b id=\"capacity\">{cap}</b> · {note}</p>\
         <form method=\"post\" action=\"/audit/capacity\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"round\" value=\"{r}\">\
         <input type=\"hidden\" name=\"version\" value=\"{rv}\">\
         <label>{lc} <input name=\"capacity\" value=\"{cap}\" size=\"4\"></label> <button id=\"set-capacity\">{save}</button> \
         <a href=\"/export/audit.xlsx?round={rq}\">XLSX</a> · <a href=\"/api/audit?round={rq}\">JSON</a></form>\
         <table><thead><tr><th>{h1}</th><th>{h2}</th><th>{h3}</th><th>{h4}</th><th>{h5}</th><th>{h6}</th>\
         <th>{h7}</th><th>{h8}</th><th>{h9}</th><th>{h10}</th></tr></thead><tbody>{body_rows}</tbody></table>",
        nav = super::pages::nav(a, lang),
        title = t(lang, "Kế hoạch kiểm tra — vòng", "Audit plan — round"),
        r = e(&round.round),
        lp = t(lang, "Đã lên kế hoạch / năng lực:", "Planned / capacity:"),
        cap = round.capacity,
        note = t(
            lang,
            "Xếp hạng theo số tiền có thể thu hồi kỳ vọng = chi vượt ước tính × Φ(mức độ − 4); các dòng tô đậm nằm trong năng lực.",
            "Ranked by expected recoverable amount = estimated excess × Φ(severity − 4); highlighted rows fall within capacity.",
        ),
        csrf = e(&a.csrf),
        rv = round.version,
        lc = t(lang, "Năng lực (số cuộc)", "Capacity (audits)"),
        save = t(lang, "Lưu", "Save"),
        h1 = t(lang, "Hạng", "Rank"),
        h2 = t(lang, "Cơ sở", "Facility"),
        h3 = t(lang, "Tỉnh", "Province"),
        h4 = t(lang, "Có thể thu hồi (đồng)", "Expected recoverable (VND)"),
        h5 = t(lang, "Mức độ", "Severity"),
        h6 = t(lang, "Chi vượt (đồng)", "Excess (VND)"),
        h7 = t(lang, "Dấu hiệu", "Signal"),
        h8 = t(lang, "Kế hoạch", "Plan"),
        h9 = t(lang, "Người phụ trách", "Owner"),
        h10 = t(lang, "Thay đổi", "Change"),
    );
    page(t(lang, "Kế hoạch kiểm tra", "Audit plan"), lang, &body)
}
