//! Logging in and out: the login form's double-submit token, throttling,
//! a new session token on every login.

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{access, auth, lang_of, pages, status, AppState, LangQuery, ServeError};
use crate::detect::Lang;

const LOGIN_COOKIE: &str = "bhyt_login";

pub(super) async fn login_page(Query(q): Query<LangQuery>) -> Response {
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
pub(super) struct LoginForm {
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

pub(super) async fn login(
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
    s.db.prune_logins(&since).await?;
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
pub(super) struct CsrfForm {
    csrf: String,
}

pub(super) async fn logout(
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
