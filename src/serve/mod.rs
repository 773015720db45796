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

pub mod auth;
pub mod db;
mod pages;
pub mod sync;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Form, Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
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

/// Reads the week's alerts from the engine's outputs into the workspace:
/// new alerts added, known ones refreshed, decisions kept. Returns (new, known).
pub async fn sync_alerts(state: &AppState) -> Result<(usize, usize), ServeError> {
    let cfg = state.cfg.clone();
    let rows = tokio::task::spawn_blocking(move || {
        sync::read_alerts(&cfg.detect_dir, cfg.data_dir.as_deref())
    })
    .await
    .map_err(|e| ServeError::Input(e.to_string()))??;
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
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/queue", get(queue))
        .route("/alerts/{id}", get(alert_page))
        .route("/alerts/{id}/decision", post(decide_form))
        .route("/alerts/{id}/assign", post(assign_form))
        .route("/planner", get(planner))
        .route("/export/queue.xlsx", get(export_queue))
        .route("/api/alerts", get(api_alerts))
        .route("/api/alerts/{id}", get(api_alert))
        .route("/api/alerts/{id}/decision", post(api_decide))
        .route("/api/budget", get(api_budget))
        .route("/api/session", get(api_session))
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

const LOGIN_COOKIE: &str = "bhyt_login";

async fn login_page(Query(q): Query<LangQuery>) -> Response {
    // Double-submit token: the login form is a form too.
    let t = auth::token();
    let mut r = Html(pages::login(lang_of(q.lang.as_deref()), &t, None)).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{LOGIN_COOKIE}={t}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600"
        ))
        .expect("ascii"),
    );
    r
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
    password: String,
    csrf: String,
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(header::COOKIE)?
        .to_str()
        .ok()?
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

async fn login(
    State(s): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, ServeError> {
    let lang = Lang::Vi;
    if !cookie_value(&headers, LOGIN_COOKIE).is_some_and(|c| auth::same(&c, &f.csrf)) {
        return Ok(status(StatusCode::FORBIDDEN, "CSRF token missing or wrong"));
    }
    let since = (chrono::Utc::now() - chrono::Duration::minutes(auth::FAILURE_WINDOW_MIN))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    if s.db.login_failures_since(&f.name, &since).await? >= auth::MAX_FAILURES {
        s.db.audit(&f.name, "login.throttled", &format!("user:{}", f.name), "")
            .await?;
        return Ok((
            StatusCode::TOO_MANY_REQUESTS,
            Html(pages::login(
                lang,
                &f.csrf,
                Some("Quá nhiều lần đăng nhập sai; thử lại sau 15 phút. / Too many failed logins; try again in 15 minutes."),
            )),
        )
            .into_response());
    }
    let user = s.db.user_by_name(&f.name).await?;
    // The hash is checked even for an unknown name, so timing does not
    // tell which names exist.
    let hash = user.as_ref().map_or_else(
        || auth::dummy_hash().to_string(),
        |u| u.password_hash.clone(),
    );
    let ok = auth::verify_password(&f.password, &hash);
    let Some(user) = user.filter(|u| ok && !u.disabled) else {
        s.db.record_login_failure(&f.name).await?;
        s.db.audit(&f.name, "login.failed", &format!("user:{}", f.name), "")
            .await?;
        return Ok((
            StatusCode::UNAUTHORIZED,
            Html(pages::login(
                lang,
                &f.csrf,
                Some("Sai tên đăng nhập hoặc mật khẩu. / Wrong user name or password."),
            )),
        )
            .into_response());
    };
    // A new token on every login: a session id planted before login is
    // never promoted (no fixation).
    let token = auth::token();
    let expires = (chrono::Utc::now() + chrono::Duration::hours(auth::SESSION_HOURS))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    s.db.create_session(&auth::token_hash(&token), user.id, &auth::token(), &expires)
        .await?;
    s.db.audit(&user.name, "login", &format!("user:{}", user.name), "")
        .await?;
    let mut r = Redirect::to("/").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&auth::set_cookie(&token, s.cfg.secure_cookies)).expect("ascii"),
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("bhyt_login=; Path=/login; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(r)
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(s): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, ServeError> {
    let Some(a) = access(&s, &headers).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    if !auth::same(&a.csrf, &f.csrf) {
        return Ok(status(StatusCode::FORBIDDEN, "CSRF token missing or wrong"));
    }
    if let Some(t) = auth::session_cookie(headers.get(header::COOKIE).and_then(|v| v.to_str().ok()))
    {
        s.db.end_session(&auth::token_hash(&t)).await?;
    }
    s.db.audit(&a.user.name, "logout", &format!("user:{}", a.user.name), "")
        .await?;
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&auth::clear_cookie(s.cfg.secure_cookies)).expect("ascii"),
    );
    Ok(r)
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

async fn budget_rows(
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

async fn export_queue(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(f): Query<QueueFilter>,
) -> Result<Response, ServeError> {
    let Some(a) = access(&s, &headers).await? else {
        return Ok(status(StatusCode::UNAUTHORIZED, "log in first"));
    };
    let all = match readable_alerts(&s, &a).await? {
        Ok(v) => v,
        Err(r) => return Ok(r),
    };
    let rows: Vec<&db::AlertRow> = all.iter().filter(|x| f.keep(x)).collect();
    let bytes = xlsx(&rows).map_err(|e| ServeError::Input(e.to_string()))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"queue.xlsx\"",
            ),
        ],
        bytes,
    )
        .into_response())
}

/// The list as a workbook, every text cell safe from formula injection.
fn xlsx(rows: &[&db::AlertRow]) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use crate::alerts::spreadsheet_text as safe;
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
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
    for (c, h) in head.iter().enumerate() {
        ws.write_string(0, c as u16, *h)?;
    }
    for (i, x) in rows.iter().enumerate() {
        let r = i as u32 + 1;
        for (c, v) in [
            &x.alert_id,
            &x.as_of,
            &x.facility_code,
            &x.facility_name,
            &x.province,
            &x.cause,
        ]
        .iter()
        .enumerate()
        {
            ws.write_string(r, c as u16, safe(v))?;
        }
        ws.write_number(r, 6, x.severity)?;
        ws.write_number(r, 7, x.excess_vnd)?;
        ws.write_string(r, 8, safe(&x.status))?;
        ws.write_string(r, 9, safe(&x.assignee))?;
        ws.write_string(r, 10, safe(&x.reason_vi))?;
    }
    wb.save_to_buffer()
}

async fn api_alerts(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(f): Query<QueueFilter>,
) -> Result<Response, ServeError> {
    let Some(a) = access(&s, &headers).await? else {
        return Ok(status(StatusCode::UNAUTHORIZED, "log in first"));
    };
    Ok(match readable_alerts(&s, &a).await? {
        Ok(all) => {
            let rows: Vec<&db::AlertRow> = all.iter().filter(|x| f.keep(x)).collect();
            Json(serde_json::json!({ "alerts": rows })).into_response()
        }
        Err(r) => r,
    })
}

async fn api_alert(
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
struct DecisionJson {
    version: i64,
    decision: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    amount_recovered_vnd: f64,
}

async fn api_decide(
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

async fn api_budget(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ServeError> {
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
async fn api_session(
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
