//! `bhyt serve`: the review workspace — a web server (axum/tokio) over the
//! engine's outputs, with accounts, province-scoped rights, decisions under
//! optimistic locking and an append-only audit trail, on embedded SQLite or
//! PostgreSQL ([`db`]).
//!
//! Pages (Vietnamese first, `?lang=en`): `/login`, `/queue` (filters,
//! counts by status, XLSX export), `/alerts/{id}` (reasons, evidence,
//! decisions, history, decision and assignment forms), `/planner` (budget
//! projection); the same data as JSON under `/api/`. Every handler asks
//! [`auth::Access`] what the signed-in user may see: a reviewer reading
//! another province's alert by any URL gets 404, a role without the right
//! 403.

mod api;
pub mod auth;
pub mod db;
mod export;
mod pages;
pub mod plan;
mod session;
pub mod sync;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Form, Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use crate::detect::Lang;
use auth::{Access, Role};
use db::{Db, Decided};
use pages::QueueFilter;

/// Errors of the workspace.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        // The detail goes to the log, not to the browser.
        tracing::error!("{self}");
        (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
    }
}

/// Where the workspace reads the engine's outputs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The claims store (registry: facilities' provinces).
    pub data_dir: Option<PathBuf>,
    /// Output folder of `bhyt detect` (alerts.parquet).
    pub detect_dir: PathBuf,
    /// Output folder of `bhyt forecast` (budget_projection.parquet).
    pub forecast_dir: PathBuf,
    /// Mark the session cookie Secure (behind TLS); false only for a
    /// server on loopback.
    pub secure_cookies: bool,
    /// The engine's alert lifecycle database (`bhyt detect --alerts-db`):
    /// decisions are recorded there too, so an explained alert stays quiet
    /// in the next weekly runs unless it worsens, and confirmed ones become
    /// labels.
    pub alerts_db: Option<PathBuf>,
    /// The features table the alerts were raised on (their charts).
    pub features: Option<PathBuf>,
    /// The detector model (the charts' control limits).
    pub model: Option<PathBuf>,
    /// Audits the inspection team can do in a new round (inspectors
    /// change it per round).
    pub capacity: usize,
}

/// Records a workspace decision in the engine's lifecycle database.
async fn feed_back(cfg: &ServeConfig, id: &str, decision: &str, comment: &str, reviewer: &str) {
    let Some(path) = cfg.alerts_db.clone().filter(|p| p.exists()) else {
        return;
    };
    let (id, decision, comment, reviewer) = (
        id.to_string(),
        decision.to_string(),
        comment.to_string(),
        reviewer.to_string(),
    );
    let r = tokio::task::spawn_blocking(move || -> Result<bool, String> {
        let d = crate::alerts::Decision::parse(&decision).ok_or("unknown decision")?;
        crate::alerts::AlertDb::open(&path)
            .and_then(|db| db.decide(&id, d, &comment, &reviewer))
            .map_err(|e| e.to_string())
    })
    .await;
    match r {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!("decision not fed back to the engine: {e}"),
        Err(e) => tracing::warn!("decision not fed back to the engine: {e}"),
    }
}

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub cfg: Arc<ServeConfig>,
}

/// Reads the week's alerts and the audit ranking from the engine's outputs
/// into the workspace: new alerts added, known ones refreshed, decisions
/// and plans kept. Returns (new, known) alerts.
pub async fn sync_alerts(state: &AppState) -> Result<(usize, usize), ServeError> {
    let cfg = state.cfg.clone();
    let (rows, plan) = tokio::task::spawn_blocking(move || {
        Ok::<_, ServeError>((sync::read_alerts(&cfg)?, sync::read_plan(&cfg)?))
    })
    .await
    .map_err(|e| ServeError::Input(e.to_string()))??;
    if let Some((round, plan)) = plan {
        let n = state
            .db
            .sync_plan(&round, state.cfg.capacity as i64, &plan)
            .await?;
        state
            .db
            .audit(
                "system",
                "plan.sync",
                &format!("plan:{round}"),
                &format!("{n} new"),
            )
            .await?;
    }
    let (mut new, mut known) = (0, 0);
    for r in &rows {
        if state.db.upsert_alert(r).await? {
            new += 1;
        } else {
            known += 1;
        }
    }
    state
        .db
        .audit(
            "system",
            "alerts.sync",
            "alerts",
            &format!("{new} new, {known} refreshed"),
        )
        .await?;
    Ok((new, known))
}

/// Adds an account (the CLI's `bhyt users add`).
pub async fn add_user(
    db: &Db,
    name: &str,
    role: Role,
    provinces: &[String],
    password: &str,
) -> Result<(), ServeError> {
    if name.trim().is_empty() || name.len() > 64 {
        return Err(ServeError::Config("a user name has 1–64 characters".into()));
    }
    if role == Role::Reviewer && provinces.is_empty() {
        return Err(ServeError::Config(
            "a reviewer works on named provinces: give --province".into(),
        ));
    }
    if password.chars().count() < 10 {
        return Err(ServeError::Config(
            "a password has at least 10 characters".into(),
        ));
    }
    let hash = auth::hash_password(password).map_err(ServeError::Config)?;
    db.add_user(name, role.as_str(), provinces, &hash).await
}

/// The application's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/healthz", get(|| async { "ok" }))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/queue", get(queue))
        .route("/alerts/{id}", get(alert_page))
        .route("/alerts/{id}/decision", post(decide_form))
        .route("/alerts/{id}/assign", post(assign_form))
        .route("/planner", get(planner))
        .route("/audit", get(plan::plan_page))
        .route("/audit/capacity", post(plan::set_capacity_form))
        .route("/audit/{facility}/status", post(plan::set_status_form))
        .route("/api/audit", get(plan::api_plan))
        .route("/export/queue.xlsx", get(export::queue))
        .route("/export/audit.xlsx", get(export::audit))
        .route("/export/budget.xlsx", get(export::budget))
        .route("/export/decisions.xlsx", get(export::decisions))
        .route("/api/alerts", get(api::api_alerts))
        .route("/api/alerts/{id}", get(api::api_alert))
        .route("/api/alerts/{id}/decision", post(api::api_decide))
        .route("/api/budget", get(api::api_budget))
        .route("/api/session", get(api::api_session))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Headers every response carries: no framing, no sniffing, a strict
/// content policy (the pages' own inline style and script only), no caching
/// of personal pages.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

/// Starts the server; stops on Ctrl-C.
pub async fn serve(state: AppState, listen: SocketAddr) -> Result<(), ServeError> {
    let (new, known) = sync_alerts(&state).await?;
    tracing::info!("alerts: {new} new, {known} known");
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("bhyt serve: http://{listen}/ ({new} new alerts, {known} known)");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
struct LangQuery {
    lang: Option<String>,
}

fn lang_of(q: Option<&str>) -> Lang {
    if q == Some("en") {
        Lang::En
    } else {
        Lang::Vi
    }
}

/// The signed-in user, or None.
async fn access(state: &AppState, headers: &HeaderMap) -> Result<Option<Access>, ServeError> {
    let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let Some(token) = auth::session_cookie(cookie) else {
        return Ok(None);
    };
    Ok(state
        .db
        .session(&auth::token_hash(&token))
        .await?
        .and_then(|(u, csrf)| Access::new(u, csrf)))
}

fn status(code: StatusCode, text: &'static str) -> Response {
    (code, text).into_response()
}

async fn home(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ServeError> {
    Ok(match access(&s, &headers).await? {
        None => Redirect::to("/login").into_response(),
        Some(a) if a.role == Role::Planner => Redirect::to("/planner").into_response(),
        Some(_) => Redirect::to("/queue").into_response(),
    })
}

/// The alerts the user may read, or the response that refuses.
async fn readable_alerts(
    s: &AppState,
    a: &Access,
) -> Result<Result<Vec<db::AlertRow>, Response>, ServeError> {
    match a.alert_provinces() {
        Err(_) => Ok(Err(status(
            StatusCode::FORBIDDEN,
            "not allowed for this role",
        ))),
        Ok(ps) => Ok(Ok(s.db.alerts(ps).await?)),
    }
}

/// The alerts the signed-in user may read that pass the queue's filter
/// (the API and the export); 401 when nobody is signed in.
async fn filtered_alerts(
    s: &AppState,
    headers: &HeaderMap,
    f: &QueueFilter,
) -> Result<Result<Vec<db::AlertRow>, Response>, ServeError> {
    let Some(a) = access(s, headers).await? else {
        return Ok(Err(status(StatusCode::UNAUTHORIZED, "log in first")));
    };
    Ok(readable_alerts(s, &a)
        .await?
        .map(|all| all.into_iter().filter(|x| f.keep(x)).collect()))
}

/// One alert if the user may read it; 404 otherwise (whether it exists
/// in another province is not the user's to know).
async fn readable_alert(
    s: &AppState,
    a: &Access,
    id: &str,
) -> Result<Result<db::AlertRow, Response>, ServeError> {
    if a.alert_provinces().is_err() {
        return Ok(Err(status(
            StatusCode::FORBIDDEN,
            "not allowed for this role",
        )));
    }
    Ok(match s.db.alert(id).await? {
        Some(x) if a.can_read(&x) => Ok(x),
        _ => Err(status(StatusCode::NOT_FOUND, "no such alert")),
    })
}

async fn queue(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(f): Query<QueueFilter>,
) -> Result<Response, ServeError> {
    let Some(a) = access(&s, &headers).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let all = match readable_alerts(&s, &a).await? {
        Ok(v) => v,
        Err(r) => return Ok(r),
    };
    Ok(Html(pages::queue(&a, lang_of(f.lang.as_deref()), &all, &f)).into_response())
}

async fn alert_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<LangQuery>,
) -> Result<Response, ServeError> {
    let Some(a) = access(&s, &headers).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let x = match readable_alert(&s, &a, &id).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let decisions = s.db.decisions_of(&id).await?;
    let history = s.db.audit_of(&format!("alert:{id}")).await?;
    let chart = s.db.alert_chart(&id).await?;
    let earlier: Vec<db::AlertRow> =
        s.db.alerts(Some(std::slice::from_ref(&x.province)))
            .await?
            .into_iter()
            .filter(|o| o.facility_code == x.facility_code)
            .collect();
    Ok(Html(pages::detail(
        &a,
        lang_of(q.lang.as_deref()),
        &x,
        &decisions,
        &history,
        &earlier,
        &chart,
    ))
    .into_response())
}

#[derive(Deserialize)]
struct DecisionForm {
    csrf: String,
    version: i64,
    decision: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    amount_recovered_vnd: String,
}

/// A decision's checks shared by the form and the API; Ok(None) when
/// recorded or refused with a response.
async fn record_decision(
    s: &AppState,
    a: &Access,
    id: &str,
    version: i64,
    decision: &str,
    comment: &str,
    amount: f64,
) -> Result<Result<i64, Response>, ServeError> {
    let x = match readable_alert(s, a, id).await? {
        Ok(x) => x,
        Err(r) => return Ok(Err(r)),
    };
    if !a.can_decide(&x) {
        return Ok(Err(status(
            StatusCode::FORBIDDEN,
            "not allowed to decide this alert",
        )));
    }
    if !["confirmed", "explained", "dismissed"].contains(&decision) {
        return Ok(Err(status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "decision: confirmed, explained or dismissed",
        )));
    }
    if comment.chars().count() > 4000 || !amount.is_finite() || amount < 0.0 {
        return Ok(Err(status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "comment ≤ 4000 characters, amount ≥ 0",
        )));
    }
    Ok(
        match s
            .db
            .decide(id, version, decision, comment, amount, &a.user.name)
            .await?
        {
            Decided::Recorded { version } => {
                feed_back(&s.cfg, id, decision, comment, &a.user.name).await;
                Ok(version)
            }
            Decided::Conflict { current_version } => Err((
                StatusCode::CONFLICT,
                Html(pages::conflict(Lang::Vi, id, current_version)),
            )
                .into_response()),
            Decided::Missing => Err(status(StatusCode::NOT_FOUND, "no such alert")),
        },
    )
}

async fn decide_form(
    State(s): State<AppState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Form(f): Form<DecisionForm>,
) -> Result<Response, ServeError> {
    let Some(a) = access(&s, &headers).await? else {
        return Ok(status(StatusCode::UNAUTHORIZED, "log in first"));
    };
    if !auth::same(&a.csrf, &f.csrf) {
        return Ok(status(StatusCode::FORBIDDEN, "CSRF token missing or wrong"));
    }
    let amount = f.amount_recovered_vnd.trim().replace(['.', ' '], "");
    let amount = if amount.is_empty() {
        0.0
    } else {
        amount.parse().unwrap_or(f64::NAN)
    };
    Ok(
        match record_decision(&s, &a, &id, f.version, &f.decision, &f.comment, amount).await? {
            Ok(_) => Redirect::to(&format!("/alerts/{}", pages::url_escape(&id))).into_response(),
            Err(r) => r,
        },
    )
}

#[derive(Deserialize)]
struct AssignForm {
    csrf: String,
    version: i64,
    assignee: String,
}

async fn assign_form(
    State(s): State<AppState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Form(f): Form<AssignForm>,
) -> Result<Response, ServeError> {
    let Some(a) = access(&s, &headers).await? else {
        return Ok(status(StatusCode::UNAUTHORIZED, "log in first"));
    };
    if !auth::same(&a.csrf, &f.csrf) {
        return Ok(status(StatusCode::FORBIDDEN, "CSRF token missing or wrong"));
    }
    let x = match readable_alert(&s, &a, &id).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    // Reviewers take alerts for themselves; admins assign anyone.
    if !a.can_decide(&x) || (a.role != Role::Admin && f.assignee != a.user.name) {
        return Ok(status(
            StatusCode::FORBIDDEN,
            "not allowed to assign this alert",
        ));
    }
    Ok(
        match s
            .db
            .assign(&id, f.version, &f.assignee, &a.user.name)
            .await?
        {
            Decided::Recorded { .. } => {
                Redirect::to(&format!("/alerts/{}", pages::url_escape(&id))).into_response()
            }
            Decided::Conflict { current_version } => (
                StatusCode::CONFLICT,
                Html(pages::conflict(Lang::Vi, &id, current_version)),
            )
                .into_response(),
            Decided::Missing => status(StatusCode::NOT_FOUND, "no such alert"),
        },
    )
}

pub(super) async fn budget_rows(
    s: &AppState,
    a: &Access,
) -> Result<Result<Vec<sync::BudgetRow>, Response>, ServeError> {
    let ps = match a.budget_provinces() {
        Ok(p) => p.map(<[String]>::to_vec),
        Err(_) => {
            return Ok(Err(status(
                StatusCode::FORBIDDEN,
                "not allowed for this role",
            )))
        }
    };
    let cfg = s.cfg.clone();
    let rows = tokio::task::spawn_blocking(move || {
        sync::read_budget(&cfg.forecast_dir, cfg.data_dir.as_deref())
    })
    .await
    .map_err(|e| ServeError::Input(e.to_string()))??;
    Ok(Ok(rows
        .into_iter()
        .filter(|r| ps.as_ref().is_none_or(|ps| ps.contains(&r.province)))
        .collect()))
}

async fn planner(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Result<Response, ServeError> {
    let Some(a) = access(&s, &headers).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    Ok(match budget_rows(&s, &a).await? {
        Ok(rows) => Html(pages::planner(&a, lang_of(q.lang.as_deref()), &rows)).into_response(),
        Err(r) => r,
    })
}
