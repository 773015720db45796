//! Every list as a workbook (`/export/*.xlsx`), with the rights of its page:
//! the queue, the reviewers' decisions, the audit plan, the budget
//! projection. Text cells are made safe from formula injection.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sqlx::Row;

use super::db::{Db, DecisionRow};
use super::pages::QueueFilter;
use super::{access, budget_rows, status, AppState, ServeError};

/// One cell of an exported list.
enum Cell {
    Text(String),
    Num(f64),
}

fn text(s: &str) -> Cell {
    Cell::Text(s.to_string())
}

/// A one-sheet workbook: a header row, then the rows.
fn workbook(head: &[&str], rows: &[Vec<Cell>]) -> Result<Vec<u8>, ServeError> {
    let err = |e: rust_xlsxwriter::XlsxError| ServeError::Input(format!("xlsx: {e}"));
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (c, h) in head.iter().enumerate() {
        ws.write_string(0, c as u16, *h).map_err(err)?;
    }
    for (i, row) in rows.iter().enumerate() {
        let r = i as u32 + 1;
        for (c, v) in row.iter().enumerate() {
            match v {
                Cell::Text(s) => ws.write_string(r, c as u16, crate::alerts::spreadsheet_text(s)),
                Cell::Num(x) if x.is_finite() => ws.write_number(r, c as u16, *x),
                Cell::Num(_) => ws.write_string(r, c as u16, ""),
            }
            .map_err(err)?;
        }
    }
    wb.save_to_buffer().map_err(err)
}

fn attachment(name: &'static str, bytes: Vec<u8>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            (header::CONTENT_DISPOSITION, name),
        ],
        bytes,
    )
        .into_response()
}

/// The queue, filtered as on its page.
pub(super) async fn queue(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(f): Query<QueueFilter>,
) -> Result<Response, ServeError> {
    let all = match super::filtered_alerts(&s, &headers, &f).await? {
        Ok(v) => v,
        Err(r) => return Ok(r),
    };
    let rows: Vec<Vec<Cell>> = all
        .iter()
        .map(|x| {
            vec![
                text(&x.alert_id),
                text(&x.as_of),
                text(&x.facility_code),
                text(&x.facility_name),
                text(&x.province),
                text(&x.cause),
                Cell::Num(x.severity),
                Cell::Num(x.excess_vnd),
                text(&x.status),
                text(&x.assignee),
                text(&x.reason_vi),
            ]
        })
        .collect();
    let head = [
        "alert_id",
        "as_of",
        "facility_code",
        "facility_name",
        "province",
        "cause",
        "severity",
        "excess_vnd",
        "status",
        "assignee",
        "reason_vi",
    ];
    Ok(attachment(
        "attachment; filename=\"queue.xlsx\"",
        workbook(&head, &rows)?,
    ))
}

impl Db {
    /// Every decision on the alerts of the given provinces (all when None),
    /// oldest first.
    pub async fn decisions_in(
        &self,
        provinces: Option<&[String]>,
    ) -> Result<Vec<(String, DecisionRow)>, ServeError> {
        let rows = sqlx::query(
            "SELECT a.province, d.alert_id, d.decision, d.comment, d.amount_recovered_vnd, d.reviewer, d.at
             FROM decisions d JOIN alerts a ON a.alert_id = d.alert_id ORDER BY d.id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let province: String = r.try_get(0)?;
            if provinces.is_some_and(|ps| !ps.contains(&province)) {
                continue;
            }
            out.push((
                province,
                DecisionRow {
                    alert_id: r.try_get(1)?,
                    decision: r.try_get(2)?,
                    comment: r.try_get(3)?,
                    amount_recovered_vnd: r.try_get(4)?,
                    reviewer: r.try_get(5)?,
                    at: r.try_get(6)?,
                },
            ));
        }
        Ok(out)
    }
}

/// The reviewers' decisions on the alerts the user may read.
pub(super) async fn decisions(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ServeError> {
    let Some(a) = access(&s, &headers).await? else {
        return Ok(status(StatusCode::UNAUTHORIZED, "log in first"));
    };
    let Ok(ps) = a.alert_provinces() else {
        return Ok(status(StatusCode::FORBIDDEN, "not allowed for this role"));
    };
    let rows: Vec<Vec<Cell>> =
        s.db.decisions_in(ps)
            .await?
            .iter()
            .map(|(p, d)| {
                vec![
                    text(&d.at),
                    text(&d.alert_id),
                    text(p),
                    text(&d.decision),
                    Cell::Num(d.amount_recovered_vnd),
                    text(&d.reviewer),
                    text(&d.comment),
                ]
            })
            .collect();
    let head = [
        "at",
        "alert_id",
        "province",
        "decision",
        "amount_recovered_vnd",
        "reviewer",
        "comment",
    ];
    Ok(attachment(
        "attachment; filename=\"decisions.xlsx\"",
        workbook(&head, &rows)?,
    ))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RoundQuery {
    round: Option<String>,
}

/// A round of the audit plan (inspectors and admins).
pub(super) async fn audit(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RoundQuery>,
) -> Result<Response, ServeError> {
    let (_, plan) = match super::plan::plan_rows(&s, &headers, q.round.as_deref()).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let rows: Vec<Vec<Cell>> = plan
        .iter()
        .map(|r| {
            vec![
                text(&r.round),
                Cell::Num(r.rank as f64),
                text(&r.facility_code),
                text(&r.facility_name),
                text(&r.province),
                Cell::Num(r.expected_recoverable_vnd),
                Cell::Num(r.severity),
                Cell::Num(r.excess_vnd),
                text(&r.signal),
                text(&r.onset),
                text(&r.status),
                text(&r.owner),
                text(&r.note),
            ]
        })
        .collect();
    let head = [
        "round",
        "rank",
        "facility_code",
        "facility_name",
        "province",
        "expected_recoverable_vnd",
        "severity",
        "excess_vnd",
        "signal",
        "onset",
        "status",
        "owner",
        "note",
    ];
    Ok(attachment(
        "attachment; filename=\"audit_plan.xlsx\"",
        workbook(&head, &rows)?,
    ))
}

/// The budget projection (planners of their provinces, inspectors, admins).
pub(super) async fn budget(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ServeError> {
    let Some(a) = access(&s, &headers).await? else {
        return Ok(status(StatusCode::UNAUTHORIZED, "log in first"));
    };
    let rows = match budget_rows(&s, &a).await? {
        Ok(r) => r,
        Err(r) => return Ok(r),
    };
    let rows: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| {
            vec![
                text(&r.code),
                text(&r.name),
                text(&r.province),
                Cell::Num(r.budget_vnd),
                Cell::Num(r.spent_to_date_vnd),
                Cell::Num(r.projected_vnd),
                Cell::Num(r.projected_lo90),
                Cell::Num(r.projected_hi90),
                Cell::Num(r.overrun_vnd),
            ]
        })
        .collect();
    let head = [
        "code",
        "name",
        "province",
        "budget_vnd",
        "spent_to_date_vnd",
        "projected_vnd",
        "projected_lo90",
        "projected_hi90",
        "overrun_vnd",
    ];
    Ok(attachment(
        "attachment; filename=\"budget.xlsx\"",
        workbook(&head, &rows)?,
    ))
}
