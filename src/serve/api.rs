//! The JSON API for the insurer's portal: the same rights as the pages.

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::pages::QueueFilter;
use super::{
    access, auth, budget_rows, readable_alert, record_decision, status, AppState, ServeError,
};

pub(super) async fn api_alerts(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(f): Query<QueueFilter>,
) -> Result<Response, ServeError> {
    Ok(match super::filtered_alerts(&s, &headers, &f).await? {
        Ok(rows) => Json(serde_json::json!({ "alerts": rows })).into_response(),
        Err(r) => r,
    })
}

pub(super) async fn api_alert(
    State(s): State<AppState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ServeError> {
    let Some(a) = access(&s, &headers).await? else {
        return Ok(status(StatusCode::UNAUTHORIZED, "log in first"));
    };
    Ok(match readable_alert(&s, &a, &id).await? {
        Ok(x) => {
            let decisions = s.db.decisions_of(&id).await?;
            let history = s.db.audit_of(&format!("alert:{id}")).await?;
            Json(serde_json::json!({ "alert": x, "decisions": decisions, "history": history }))
                .into_response()
        }
        Err(r) => r,
    })
}

#[derive(Deserialize)]
pub(super) struct DecisionJson {
    version: i64,
    decision: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    amount_recovered_vnd: f64,
}

pub(super) async fn api_decide(
    State(s): State<AppState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Json(d): Json<DecisionJson>,
) -> Result<Response, ServeError> {
    let Some(a) = access(&s, &headers).await? else {
        return Ok(status(StatusCode::UNAUTHORIZED, "log in first"));
    };
    let token = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !auth::same(&a.csrf, token) {
        return Ok(status(StatusCode::FORBIDDEN, "CSRF token missing or wrong"));
    }
    Ok(
        match record_decision(
            &s,
            &a,
            &id,
            d.version,
            &d.decision,
            &d.comment,
            d.amount_recovered_vnd,
        )
        .await?
        {
            Ok(v) => Json(serde_json::json!({ "alert_id": id, "version": v })).into_response(),
            Err(r) => r,
        },
    )
}

pub(super) async fn api_budget(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ServeError> {
    let Some(a) = access(&s, &headers).await? else {
        return Ok(status(StatusCode::UNAUTHORIZED, "log in first"));
    };
    Ok(match budget_rows(&s, &a).await? {
        Ok(rows) => Json(serde_json::json!({ "budget": rows })).into_response(),
        Err(r) => r,
    })
}

/// Who is signed in, and the CSRF token the portal sends back in
/// `X-CSRF-Token` on every POST.
pub(super) async fn api_session(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ServeError> {
    Ok(match access(&s, &headers).await? {
        Some(a) => Json(serde_json::json!({
            "user": a.user.name, "role": a.role, "provinces": a.user.provinces, "csrf": a.csrf,
        }))
        .into_response(),
        None => status(StatusCode::UNAUTHORIZED, "log in first"),
    })
}
