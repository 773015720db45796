//! The review workspace (issue 15) through its HTTP interface, on a real
//! SQLite file (and on PostgreSQL when `BHYT_TEST_POSTGRES` names a
//! database): who may read and decide what, by every endpoint × role;
//! sessions, CSRF, login throttling, optimistic locking, escaping, the
//! append-only trail.
#![cfg(feature = "serve")]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;

use bhyt::serve::auth::Role;
use bhyt::serve::db::{AlertRow, Db};
use bhyt::serve::{add_user, router, sync_alerts, AppState, ServeConfig};

const PASS: &str = "a-long-test-password";

fn alert(id: &str, facility: &str, province: &str, reason: &str) -> AlertRow {
    AlertRow {
        alert_id: id.into(),
        as_of: "2024-01-29".into(),
        facility_code: facility.into(),
        facility_name: format!("Cơ sở {facility}"),
        province: province.into(),
        detector: "change".into(),
        cause: "cost_per_visit".into(),
        state: "new".into(),
        severity: 4.2,
        excess_vnd: 12_345_678.0,
        reason_vi: reason.into(),
        reason_en: reason.into(),
        evidence: r#"{"claims":"9201224010100001 (+868.554)","services":"","departments":"K03 (+1)","prescribers":""}"#.into(),
        status: "open".into(),
        assignee: String::new(),
        version: 1,
        chart_svg: String::new(),
    }
}

/// What the engine writes for the workspace, small: two provinces' alerts
/// (`alerts.parquet`), the weekly features their charts are drawn from,
/// and the detector's scores the audit plan is ranked on.
fn engine_outputs(dir: &std::path::Path) {
    use polars::prelude::*;
    std::fs::create_dir_all(dir).unwrap();
    let date = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let evidence = "9201224010100001 (+868.554)";
    let mut alerts = df!(
        "alert_id" => ["92001:cost:1", "01001:cost:1"],
        "period_start" => ["2024-01-29", "2024-01-29"],
        "onset" => ["2024-01-01", "2024-01-01"],
        "facility_code" => ["92001", "01001"],
        "facility_name" => ["Cơ sở 92001", "Cơ sở 01001"],
        "peer_group" => ["g1", "g1"],
        "detector" => ["change", "change"],
        "cause" => ["avg_cost_outpatient", "avg_cost_outpatient"],
        "state" => ["new", "new"],
        "severity" => [4.2, 4.2],
        "excess_vnd" => [12_345_678.0, 12_345_678.0],
        "reason_vi" => ["Chi phí tăng <script>alert(1)</script>", "Hà Nội"],
        "reason_en" => ["Cost up <script>alert(1)</script>", "Hanoi"],
        "top_claims" => [evidence, evidence],
        "top_services" => ["", ""],
        "top_departments" => ["K03 (+1)", "K03 (+1)"],
        "top_prescribers" => ["", ""],
    )
    .unwrap();
    bhyt::store::write_parquet_atomic(&mut alerts, &dir.join("alerts.parquet")).unwrap();
    // 20 weeks of four facilities of one peer group; 92001 jumps at the end.
    let (mut fac, mut week, mut cost, mut visits) = (vec![], vec![], vec![], vec![]);
    for (k, f) in ["92001", "92002", "92003", "01001"].iter().enumerate() {
        for w in 0..20 {
            fac.push(*f);
            week.push(date("2023-09-18") + chrono::Duration::weeks(w));
            let jump = if *f == "92001" && w >= 15 { 1.6 } else { 1.0 };
            cost.push((300_000.0 + 10_000.0 * k as f64 + 2_000.0 * (w % 3) as f64) * jump);
            visits.push(400.0);
        }
    }
    let n = fac.len();
    let mut features = df!(
        "facility_code" => &fac,
        "peer_group" => vec!["g1"; n],
        "period_start" => &week,
        "visits" => &visits,
        "avg_cost_outpatient" => &cost,
    )
    .unwrap();
    bhyt::store::write_parquet_atomic(&mut features, &dir.join("features.parquet")).unwrap();
    // Scores of the last week: three facilities worth auditing.
    let (last, onset) = (vec![date("2024-01-29"); 4], vec![date("2024-01-01"); 4]);
    let mut scores = df!(
        "facility_code" => ["92001", "92002", "01001", "92003"],
        "signal" => vec!["avg_cost_outpatient"; 4],
        "detector" => vec!["change"; 4],
        "severity" => [6.0, 5.0, 4.5, 1.0],
        "excess_vnd" => [1.0e8, 5.0e7, 3.0e7, 0.0],
        "period_start" => &last,
        "onset" => &onset,
    )
    .unwrap();
    bhyt::store::write_parquet_atomic(&mut scores, &dir.join("scores.parquet")).unwrap();
}

struct World {
    app: Router,
    db: Db,
    state: AppState,
    _dir: tempfile::TempDir,
}

/// A workspace with two provinces' alerts, a budget projection, and one
/// account per role.
async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let url = match std::env::var("BHYT_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty())
    {
        // A fresh database per test on the server `.ci/postgres` started.
        Some(base) => {
            sqlx::any::install_default_drivers();
            let name = format!("t_{}", &bhyt::serve::auth::token()[..16]);
            let admin = sqlx::AnyPool::connect(&base).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin)
                .await
                .unwrap();
            let (server, _) = base.rsplit_once('/').unwrap();
            format!("{server}/{name}")
        }
        None => {
            assert!(
                std::env::var_os("BHYT_REQUIRE_POSTGRES").is_none(),
                "BHYT_TEST_POSTGRES is required here: eval \"$(.ci/postgres start)\""
            );
            Db::sqlite_url(&dir.path().join("ws.sqlite"))
        }
    };
    let db = Db::connect(&url).await.unwrap();
    let ddir = dir.path().join("detect");
    engine_outputs(&ddir);
    let fdir = dir.path().join("forecast");
    std::fs::create_dir_all(&fdir).unwrap();
    let mut budget = polars::df!(
        "code" => ["92001", "01001", "province:92"],
        "name" => ["A", "B", "Cần Thơ"],
        "budget_vnd" => [1.0e9, 2.0e9, 5.0e9],
        "spent_to_date_vnd" => [1.0e8, 2.0e8, 5.0e8],
        "projected_vnd" => [1.1e9, 2.1e9, 5.2e9],
        "projected_lo90" => [1.0e9, 2.0e9, 5.0e9],
        "projected_hi90" => [1.2e9, 2.2e9, 5.4e9],
        "overrun_vnd" => [1.0e8, 1.0e8, 2.0e8],
    )
    .unwrap();
    bhyt::store::write_parquet_atomic(&mut budget, &fdir.join("budget_projection.parquet"))
        .unwrap();
    for (name, role, provinces) in [
        ("rev92", Role::Reviewer, vec!["92".to_string()]),
        ("rev01", Role::Reviewer, vec!["01".to_string()]),
        ("insp", Role::Inspector, vec![]),
        ("plan92", Role::Planner, vec!["92".to_string()]),
        ("admin", Role::Admin, vec![]),
    ] {
        add_user(&db, name, role, &provinces, PASS).await.unwrap();
    }
    let state = AppState {
        db: db.clone(),
        cfg: Arc::new(ServeConfig {
            data_dir: None,
            detect_dir: ddir.clone(),
            forecast_dir: fdir,
            secure_cookies: false,
            alerts_db: None,
            features: Some(ddir.join("features.parquet")),
            model: None,
            capacity: 2,
        }),
    };
    assert_eq!(sync_alerts(&state).await.unwrap(), (2, 0));
    World {
        app: router(state.clone()),
        state,
        db,
        _dir: dir,
    }
}

struct Reply {
    status: StatusCode,
    set_cookies: Vec<String>,
    body: String,
}

async fn send(app: &Router, req: Request<Body>) -> Reply {
    let r = app.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let set_cookies = r
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let body =
        String::from_utf8_lossy(&r.into_body().collect().await.unwrap().to_bytes()).to_string();
    Reply {
        status,
        set_cookies,
        body,
    }
}

fn get(uri: &str, cookie: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap()
}

fn post_form(uri: &str, cookie: &str, form: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .unwrap()
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

/// Logs in; returns the session cookie pair and the session's CSRF token.
async fn login_as(
    app: &Router,
    name: &str,
    password: &str,
    planted: Option<&str>,
) -> Result<(String, String), StatusCode> {
    let page = send(app, get("/login", planted.unwrap_or(""))).await;
    let login_cookie = cookie_pair(&page.set_cookies[0]);
    let csrf = login_cookie.split('=').nth(1).unwrap().to_string();
    let cookies = match planted {
        Some(p) => format!("{login_cookie}; {p}"),
        None => login_cookie,
    };
    let r = send(
        app,
        post_form(
            "/login",
            &cookies,
            &format!("name={name}&password={password}&csrf={csrf}"),
        ),
    )
    .await;
    if r.status != StatusCode::SEE_OTHER {
        return Err(r.status);
    }
    let session = r
        .set_cookies
        .iter()
        .find(|c| c.starts_with("bhyt_session="))
        .map(|c| cookie_pair(c))
        .expect("a session cookie");
    let s = send(app, get("/api/session", &session)).await;
    let v: serde_json::Value = serde_json::from_str(&s.body).unwrap();
    Ok((session, v["csrf"].as_str().unwrap().to_string()))
}

/// Every endpoint × role: a reviewer of one province cannot read or
/// decide another's alert by any URL; planners read budgets only;
/// inspectors read everything and decide nothing; without a session,
/// nothing.
#[tokio::test]
async fn rights_by_endpoint_and_role() {
    let w = world().await;
    let mut sessions = vec![("anonymous", String::new(), String::new())];
    for u in ["rev92", "rev01", "insp", "plan92", "admin"] {
        let (c, t) = login_as(&w.app, u, PASS, None).await.unwrap();
        sessions.push((u, c, t));
    }
    use StatusCode as S;
    // (method, path, expected status for anonymous, rev92, rev01, insp, plan92, admin)
    let table: &[(&str, &str, [S; 6])] = &[
        (
            "GET",
            "/queue",
            [S::SEE_OTHER, S::OK, S::OK, S::OK, S::FORBIDDEN, S::OK],
        ),
        (
            "GET",
            "/alerts/92001:cost:1",
            [
                S::SEE_OTHER,
                S::OK,
                S::NOT_FOUND,
                S::OK,
                S::FORBIDDEN,
                S::OK,
            ],
        ),
        (
            "GET",
            "/alerts/01001:cost:1",
            [
                S::SEE_OTHER,
                S::NOT_FOUND,
                S::OK,
                S::OK,
                S::FORBIDDEN,
                S::OK,
            ],
        ),
        (
            "GET",
            "/planner",
            [
                S::SEE_OTHER,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::OK,
                S::OK,
                S::OK,
            ],
        ),
        (
            "GET",
            "/export/queue.xlsx",
            [S::UNAUTHORIZED, S::OK, S::OK, S::OK, S::FORBIDDEN, S::OK],
        ),
        (
            "GET",
            "/api/alerts",
            [S::UNAUTHORIZED, S::OK, S::OK, S::OK, S::FORBIDDEN, S::OK],
        ),
        (
            "GET",
            "/api/alerts/92001:cost:1",
            [
                S::UNAUTHORIZED,
                S::OK,
                S::NOT_FOUND,
                S::OK,
                S::FORBIDDEN,
                S::OK,
            ],
        ),
        (
            "GET",
            "/api/alerts/01001:cost:1",
            [
                S::UNAUTHORIZED,
                S::NOT_FOUND,
                S::OK,
                S::OK,
                S::FORBIDDEN,
                S::OK,
            ],
        ),
        (
            "GET",
            "/api/budget",
            [
                S::UNAUTHORIZED,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::OK,
                S::OK,
                S::OK,
            ],
        ),
        (
            "GET",
            "/audit",
            [
                S::SEE_OTHER,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::OK,
                S::FORBIDDEN,
                S::OK,
            ],
        ),
        (
            "GET",
            "/api/audit",
            [
                S::UNAUTHORIZED,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::OK,
                S::FORBIDDEN,
                S::OK,
            ],
        ),
        (
            "GET",
            "/export/audit.xlsx",
            [
                S::UNAUTHORIZED,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::OK,
                S::FORBIDDEN,
                S::OK,
            ],
        ),
        (
            "GET",
            "/export/budget.xlsx",
            [
                S::UNAUTHORIZED,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::OK,
                S::OK,
                S::OK,
            ],
        ),
        (
            "GET",
            "/export/decisions.xlsx",
            [S::UNAUTHORIZED, S::OK, S::OK, S::OK, S::FORBIDDEN, S::OK],
        ),
        // The plan: the inspector's change lands (version 1 → 2), the
        // admin's later one at version 1 is a conflict.
        (
            "POST-FORM",
            "/audit/92002/status",
            [
                S::UNAUTHORIZED,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::SEE_OTHER,
                S::FORBIDDEN,
                S::CONFLICT,
            ],
        ),
        (
            "POST-FORM",
            "/audit/capacity",
            [
                S::UNAUTHORIZED,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::SEE_OTHER,
                S::FORBIDDEN,
                S::CONFLICT,
            ],
        ),
        (
            "GET",
            "/api/session",
            [S::UNAUTHORIZED, S::OK, S::OK, S::OK, S::OK, S::OK],
        ),
        // Decisions on province 01's alert (the version stays 1: nobody but
        // rev01 and admin may change it, and they are checked last below).
        (
            "POST-FORM",
            "/alerts/01001:cost:1/decision",
            [
                S::UNAUTHORIZED,
                S::NOT_FOUND,
                S::SEE_OTHER,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::CONFLICT,
            ],
        ),
        (
            "POST-JSON",
            "/api/alerts/01001:cost:1/decision",
            [
                S::UNAUTHORIZED,
                S::NOT_FOUND,
                S::CONFLICT,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::CONFLICT,
            ],
        ),
        (
            "POST-FORM",
            "/alerts/01001:cost:1/assign",
            [
                S::UNAUTHORIZED,
                S::NOT_FOUND,
                S::CONFLICT,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::CONFLICT,
            ],
        ),
    ];
    for (method, path, expected) in table {
        for (i, (who, cookie, csrf)) in sessions.iter().enumerate() {
            let req = match *method {
                "GET" => get(path, cookie),
                "POST-FORM" if path.ends_with("/capacity") => post_form(
                    path,
                    cookie,
                    &format!("csrf={csrf}&round=2024-01-29&version=1&capacity=5"),
                ),
                "POST-FORM" if path.starts_with("/audit/") => post_form(
                    path,
                    cookie,
                    &format!("csrf={csrf}&round=2024-01-29&version=1&status=skipped&note=x"),
                ),
                "POST-FORM" if path.ends_with("/assign") => post_form(
                    path,
                    cookie,
                    &format!("csrf={csrf}&version=1&assignee={who}"),
                ),
                "POST-FORM" => post_form(
                    path,
                    cookie,
                    &format!("csrf={csrf}&version=1&decision=explained&comment=ok&amount_recovered_vnd=0"),
                ),
                _ => Request::post(*path)
                    .header(header::COOKIE, cookie)
                    .header(header::CONTENT_TYPE, "application/json")
                    .header("x-csrf-token", csrf)
                    .body(Body::from(r#"{"version":1,"decision":"dismissed"}"#))
                    .unwrap(),
            };
            let r = send(&w.app, req).await;
            assert_eq!(
                r.status, expected[i],
                "{method} {path} as {who}: {}",
                r.body
            );
            // Whatever is readable never holds the other province's alert.
            if *who == "rev92" && r.status == S::OK {
                assert!(
                    !r.body.contains("01001"),
                    "{path} leaks province 01 to rev92"
                );
            }
            if *who == "plan92" && r.status == S::OK {
                assert!(
                    !r.body.contains("01001"),
                    "{path} leaks province 01 to plan92"
                );
            }
        }
    }
    // rev01's form decision went through first (version 1 → 2): the later
    // ones at version 1 were conflicts, nothing lost, nothing doubled.
    let a = w.db.alert("01001:cost:1").await.unwrap().unwrap();
    assert_eq!((a.status.as_str(), a.version), ("explained", 2));
    assert_eq!(w.db.decisions_of("01001:cost:1").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_decision_is_recorded_once_and_a_stale_form_is_a_conflict() {
    let w = world().await;
    let (c1, t1) = login_as(&w.app, "rev92", PASS, None).await.unwrap();
    let (c2, t2) = login_as(&w.app, "admin", PASS, None).await.unwrap();
    let path = "/alerts/92001:cost:1/decision";
    // Without the CSRF token, or with another session's: refused.
    let r = send(&w.app, post_form(path, &c1, "version=1&decision=confirmed")).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    let r = send(
        &w.app,
        post_form(
            path,
            &c1,
            &format!("csrf={t2}&version=1&decision=confirmed"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Two reviewers open the same alert (version 1); the first saves.
    let r = send(
        &w.app,
        post_form(path, &c1, &format!("csrf={t1}&version=1&decision=confirmed&comment=overbilling&amount_recovered_vnd=1.500.000")),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // The second gets a clear conflict; the first decision stands.
    let r = send(
        &w.app,
        post_form(
            path,
            &c2,
            &format!("csrf={t2}&version=1&decision=dismissed"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.body.contains("phiên bản 2"), "{}", r.body);
    let d = w.db.decisions_of("92001:cost:1").await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].decision.as_str(), d[0].reviewer.as_str()),
        ("confirmed", "rev92")
    );
    assert_eq!(d[0].amount_recovered_vnd, 1_500_000.0);
    // The detail page shows who decided what, escaped.
    let page = send(&w.app, get("/alerts/92001:cost:1", &c2)).await;
    assert!(page.body.contains("overbilling") && page.body.contains("rev92"));
    assert!(page.body.contains("alert.decide"));
    assert!(
        !page.body.contains("<script>alert(1)"),
        "reason not escaped"
    );
    assert!(page.body.contains("&lt;script&gt;alert(1)"));
    // The queue counts by status.
    let q = send(&w.app, get("/queue?lang=en", &c2)).await;
    assert!(
        q.body.contains("confirmed: 1") && q.body.contains("open: 1"),
        "{}",
        q.body
    );
}

#[tokio::test]
async fn logins_are_throttled_and_sessions_cannot_be_fixed() {
    let w = world().await;
    for _ in 0..5 {
        assert_eq!(
            login_as(&w.app, "rev92", "wrong-password-1", None)
                .await
                .unwrap_err(),
            StatusCode::UNAUTHORIZED
        );
    }
    // The sixth attempt is refused before the password is checked.
    assert_eq!(
        login_as(&w.app, "rev92", PASS, None).await.unwrap_err(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another account is not locked by those failures.
    let planted = format!("bhyt_session={}", "ab".repeat(32));
    let (session, _) = login_as(&w.app, "rev01", PASS, Some(&planted))
        .await
        .unwrap();
    assert_ne!(session, planted, "a new session id on login");
    assert_eq!(
        send(&w.app, get("/api/session", &planted)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Logging in without the login form's token is refused.
    let r = send(
        &w.app,
        post_form("/login", "", &format!("name=rev01&password={PASS}&csrf=x")),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Logout ends the session.
    let csrf = {
        let s = send(&w.app, get("/api/session", &session)).await;
        serde_json::from_str::<serde_json::Value>(&s.body).unwrap()["csrf"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let r = send(
        &w.app,
        post_form("/logout", &session, &format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        send(&w.app, get("/api/session", &session)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The ended session is pruned at the next login; the trail keeps it.
    login_as(&w.app, "rev01", PASS, None).await.unwrap();
    assert_eq!(w.db.count("sessions").await.unwrap(), 1);
    // Cookies: HTTP-only, SameSite=Strict.
    let page = send(&w.app, get("/login", "")).await;
    assert!(
        page.set_cookies[0].contains("HttpOnly") && page.set_cookies[0].contains("SameSite=Strict")
    );
    // Passwords appear nowhere in the trail.
    let n = w.db.count("audit").await.unwrap();
    assert!(n >= 8, "{n}");
    for who in ["rev92", "rev01"] {
        for row in w.db.audit_of(&format!("user:{who}")).await.unwrap() {
            assert!(!row.detail.contains("wrong-password") && !row.detail.contains(PASS));
        }
    }
}

/// Nothing a user does deletes a row: the workspace's SQL deletes only
/// expired sessions and old login failures, and a decision only adds rows.
#[tokio::test]
async fn the_trail_is_append_only() {
    let src = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src/serve"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    for (i, _) in src.to_uppercase().match_indices("DELETE FROM ") {
        let table = src[i + 12..].split_whitespace().next().unwrap_or("");
        assert!(
            ["sessions", "login_failures"].contains(&table),
            "a DELETE FROM {table} in src/serve"
        );
    }
    let w = world().await;
    let before = (
        w.db.count("audit").await.unwrap(),
        w.db.count("decisions").await.unwrap(),
    );
    let (c, t) = login_as(&w.app, "rev92", PASS, None).await.unwrap();
    let r = send(
        &w.app,
        Request::post("/api/alerts/92001:cost:1/decision")
            .header(header::COOKIE, &c)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-csrf-token", &t)
            .body(Body::from(
                r#"{"version":1,"decision":"explained","comment":"new ward"}"#,
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["version"],
        2
    );
    let after = (
        w.db.count("audit").await.unwrap(),
        w.db.count("decisions").await.unwrap(),
    );
    assert_eq!(after.1, before.1 + 1);
    assert!(after.0 >= before.0 + 2, "login and decision audited");
}

/// A free TCP port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Debian's Chromium, headless, driven through chromedriver (WebDriver):
/// log in, filter the queue, open an alert, decide, see the decision in
/// the history; another province's alert by URL is not there.
#[tokio::test]
async fn a_reviewer_works_an_alert_in_a_real_browser() {
    use fantoccini::{ClientBuilder, Locator};
    let driver = std::process::Command::new("chromedriver")
        .arg("--version")
        .output();
    if driver.is_err() {
        assert!(
            std::env::var_os("BHYT_REQUIRE_BROWSER").is_none(),
            "chromedriver is required here (apt-get install chromium-driver)"
        );
        eprintln!("skipped: chromedriver not installed (apt-get install chromium-driver)");
        return;
    }
    let w = world().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = w.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let port = free_port();
    let mut chromedriver = std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        }),
    );
    let mut client = None;
    for _ in 0..50 {
        let conn = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(conn)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
    let c = client.expect("chromedriver answers");
    let run = async {
        c.goto(&format!("{base}/login")).await?;
        c.find(Locator::Css("input[name=name]"))
            .await?
            .send_keys("rev92")
            .await?;
        c.find(Locator::Css("input[name=password]"))
            .await?
            .send_keys(PASS)
            .await?;
        c.find(Locator::Id("login")).await?.click().await?;
        c.wait().for_element(Locator::Id("counts")).await?;
        assert!(c.current_url().await?.path().ends_with("/queue"));
        assert_eq!(
            c.find_all(Locator::Css("tr.row")).await?.len(),
            1,
            "province 92 only"
        );
        // Filter: nothing matches, then the facility.
        let q = c.find(Locator::Css("input[name=q]")).await?;
        q.send_keys("no-such-facility").await?;
        // The filter is a form: the old page's count stays until the new
        // page replaces it, so the count is awaited, not read at once.
        let shown = |want: &'static str| {
            let c = c.clone();
            async move {
                let mut last = String::new();
                for _ in 0..100 {
                    if let Ok(e) = c.find(Locator::Id("shown")).await {
                        last = e.text().await.unwrap_or_default();
                        if last == want {
                            break;
                        }
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                assert_eq!(last, want, "alerts shown after the filter");
            }
        };
        c.find(Locator::Id("filter")).await?.click().await?;
        shown("0").await;
        let q = c.find(Locator::Css("input[name=q]")).await?;
        q.clear().await?;
        q.send_keys("92001").await?;
        c.find(Locator::Id("filter")).await?.click().await?;
        shown("1").await;
        // Open the alert, decide.
        c.find(Locator::Css("tr.row a")).await?.click().await?;
        c.wait().for_element(Locator::Id("decide")).await?;
        assert!(
            c.source().await?.contains("&lt;script&gt;"),
            "reason escaped"
        );
        // The chart against the peers, drawn and laid out by the browser.
        let chart = c.find(Locator::Css("#chart svg")).await?;
        let (_, _, width, height) = chart.rectangle().await?;
        assert!(width > 300.0 && height > 100.0, "{width}×{height}");
        assert!(
            c.find(Locator::Id("chart"))
                .await?
                .text()
                .await?
                .contains("nhóm cùng hạng"),
            "peer band in the legend"
        );
        c.find(Locator::Css("select[name=decision]"))
            .await?
            .select_by_value("confirmed")
            .await?;
        c.find(Locator::Css("textarea[name=comment]"))
            .await?
            .send_keys("hóa đơn trùng lặp")
            .await?;
        c.find(Locator::Id("save")).await?.click().await?;
        // The page before the submit has a status and a history too: wait
        // for the new page's status (the wait ends with an error, naming
        // the locator, if it never shows).
        c.wait()
            .for_element(Locator::XPath(
                "//*[@id='status' and normalize-space(.)='xác nhận']",
            ))
            .await?;
        let decisions = c.find(Locator::Id("decisions")).await?.text().await?;
        assert!(
            decisions.contains("rev92") && decisions.contains("hóa đơn trùng lặp"),
            "{decisions}"
        );
        let history = c.find(Locator::Id("history")).await?.text().await?;
        assert!(history.contains("alert.decide"), "{history}");
        // Another province's alert, by URL: not there.
        c.goto(&format!("{base}/alerts/01001:cost:1")).await?;
        assert!(c.source().await?.contains("no such alert"));
        Ok::<(), fantoccini::error::CmdError>(())
    }
    .await;
    let _ = c.close().await;
    let _ = chromedriver.kill();
    let _ = chromedriver.wait();
    run.unwrap();
    let d = w.db.decisions_of("92001:cost:1").await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].comment, "hóa đơn trùng lặp");
}

fn workbook_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    use calamine::{Reader, Xlsx};
    let mut wb = Xlsx::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let name = wb.sheet_names()[0].clone();
    let range = wb.worksheet_range(&name).unwrap();
    range
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

async fn get_bytes(app: &Router, uri: &str, cookie: &str) -> (StatusCode, Vec<u8>) {
    let r = app.clone().oneshot(get(uri, cookie)).await.unwrap();
    let status = r.status();
    (
        status,
        r.into_body().collect().await.unwrap().to_bytes().to_vec(),
    )
}

#[tokio::test]
async fn inspectors_own_the_audit_plan_within_its_capacity() {
    let w = world().await;
    let (insp, csrf) = login_as(&w.app, "insp", PASS, None).await.unwrap();
    let page = send(&w.app, get("/audit", &insp)).await;
    assert_eq!(page.status, StatusCode::OK);
    // Ranked by expected recoverable amount; 92003 (no excess) not listed.
    let order: Vec<usize> = ["92001", "92002", "01001"]
        .iter()
        .map(|f| page.body.find(&format!("data-facility=\"{f}\"")).unwrap())
        .collect();
    assert!(order.windows(2).all(|p| p[0] < p[1]), "{order:?}");
    assert!(!page.body.contains("data-facility=\"92003\""));
    let plan = |f: &str, version: i64, status: &str| {
        post_form(
            &format!("/audit/{f}/status"),
            &insp,
            &format!(
                "csrf={csrf}&round=2024-01-29&version={version}&status={status}&note=%3Cb%3Ehi"
            ),
        )
    };
    // Capacity 2: two planned, the third refused; nothing changed by it.
    assert_eq!(
        send(&w.app, plan("92001", 1, "planned")).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        send(&w.app, plan("92002", 1, "planned")).await.status,
        StatusCode::SEE_OTHER
    );
    let over = send(&w.app, plan("01001", 1, "planned")).await;
    assert_eq!(over.status, StatusCode::CONFLICT);
    assert!(over.body.contains("Vượt năng lực"), "{}", over.body);
    // A stale form is a conflict, not an overwrite.
    assert_eq!(
        send(&w.app, plan("92001", 1, "skipped")).await.status,
        StatusCode::CONFLICT
    );
    // Capacity cannot drop below what is planned; raised, the third fits.
    let cap = |version: i64, capacity: i64| {
        post_form(
            "/audit/capacity",
            &insp,
            &format!("csrf={csrf}&round=2024-01-29&version={version}&capacity={capacity}"),
        )
    };
    assert_eq!(send(&w.app, cap(1, 1)).await.status, StatusCode::CONFLICT);
    assert_eq!(send(&w.app, cap(1, 3)).await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        send(&w.app, plan("01001", 1, "planned")).await.status,
        StatusCode::SEE_OTHER
    );
    let page = send(&w.app, get("/audit", &insp)).await.body;
    assert!(
        page.contains("<b id=\"planned\">3</b> / <b id=\"capacity\">3</b>"),
        "{page}"
    );
    assert!(
        page.contains("&lt;b&gt;hi") && !page.contains("<b>hi"),
        "note escaped"
    );
    // JSON and XLSX say the same; every change is in the trail.
    let api: serde_json::Value =
        serde_json::from_str(&send(&w.app, get("/api/audit", &insp)).await.body).unwrap();
    let planned: Vec<&str> = api["plan"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "planned")
        .map(|r| r["facility_code"].as_str().unwrap())
        .collect();
    assert_eq!(planned, ["92001", "92002", "01001"]);
    assert_eq!(api["round"]["capacity"], 3);
    let (st, bytes) = get_bytes(&w.app, "/export/audit.xlsx", &insp).await;
    assert_eq!(st, StatusCode::OK);
    let rows = workbook_rows(&bytes);
    assert_eq!(rows.len(), 4, "header + three facilities");
    assert_eq!(rows[1][2], "92001");
    assert_eq!(rows[1][10], "planned");
    assert_eq!(
        w.db.audit_of("plan:2024-01-29:92001").await.unwrap().len(),
        1
    );
    assert_eq!(
        w.db.audit_of("plan:2024-01-29").await.unwrap().len(),
        2,
        "sync + capacity"
    );
    // A second sync (next run of the same week) keeps the inspectors' plan.
    assert_eq!(sync_alerts(&w.state).await.unwrap(), (0, 2));
    let reread: serde_json::Value =
        serde_json::from_str(&send(&w.app, get("/api/audit", &insp)).await.body).unwrap();
    assert_eq!(reread["plan"], api["plan"]);
}

#[tokio::test]
async fn exports_hold_what_the_user_may_read_and_no_formulas() {
    let w = world().await;
    let (rev01, csrf) = login_as(&w.app, "rev01", PASS, None).await.unwrap();
    let r = send(
        &w.app,
        post_form(
            "/alerts/01001:cost:1/decision",
            &rev01,
            &format!("csrf={csrf}&version=1&decision=confirmed&comment=%3DHYPERLINK(%22x%22)&amount_recovered_vnd=1.000.000"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let (rev92, _) = login_as(&w.app, "rev92", PASS, None).await.unwrap();
    let (_, b) = get_bytes(&w.app, "/export/decisions.xlsx", &rev92).await;
    assert_eq!(
        workbook_rows(&b).len(),
        1,
        "rev92 sees no decision of province 01"
    );
    let (_, b) = get_bytes(&w.app, "/export/decisions.xlsx", &rev01).await;
    let rows = workbook_rows(&b);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][1], "01001:cost:1");
    assert_eq!(rows[1][4], "1000000");
    assert!(
        !rows[1][6].starts_with('='),
        "formula defused: {}",
        rows[1][6]
    );
    let (plan92, _) = login_as(&w.app, "plan92", PASS, None).await.unwrap();
    let (_, b) = get_bytes(&w.app, "/export/budget.xlsx", &plan92).await;
    let codes: Vec<String> = workbook_rows(&b)
        .iter()
        .skip(1)
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(codes, ["92001", "province:92"]);
    let (_, b) = get_bytes(&w.app, "/export/queue.xlsx?status=confirmed", &rev01).await;
    assert_eq!(workbook_rows(&b).len(), 2, "filtered as the page");
}

/// Latency quantile (ms) of a sample.
fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

/// The bounded load test: 50 reviewers (one province, 200 alerts) for 60 s
/// (`BHYT_LOAD_SECS`) on loopback, each reading the queue, an alert and
/// deciding it at the version it read. Prints p50/p95/max of the queue and
/// decision endpoints; asserts no decision lost or doubled (each alert's
/// version = 1 + its recorded decisions; every 200 is one row). Run:
/// `cargo test --release --test serve -- --ignored load --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "load test: cargo test --release --test serve -- --ignored load --nocapture"]
async fn load_50_reviewers_on_loopback() {
    use axum::body::Bytes;
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    let w = world().await;
    let alerts = 200;
    for i in 0..alerts {
        w.db.upsert_alert(&alert(
            &format!("92{i:03}:load:1"),
            &format!("92{i:03}"),
            "92",
            "tải",
        ))
        .await
        .unwrap();
    }
    let reviewers = 50;
    for r in 0..reviewers {
        add_user(
            &w.db,
            &format!("load{r}"),
            Role::Reviewer,
            &["92".into()],
            PASS,
        )
        .await
        .unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = w.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let secs: u64 = std::env::var("BHYT_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let client: Client<_, Full<Bytes>> =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let base = format!("http://{addr}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for r in 0..reviewers {
        let (client, base) = (client.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let call = |req: Request<Full<Bytes>>| {
                let client = client.clone();
                async move {
                    let t = std::time::Instant::now();
                    let resp = client.request(req).await.unwrap();
                    let status = resp.status();
                    let cookies: Vec<String> = resp
                        .headers()
                        .get_all(header::SET_COOKIE)
                        .iter()
                        .map(|v| cookie_pair(v.to_str().unwrap()))
                        .collect();
                    let body = resp.into_body().collect().await.unwrap().to_bytes();
                    (status, cookies, body, t.elapsed().as_secs_f64() * 1e3)
                }
            };
            let (_, c, _, _) = call(
                Request::get(format!("{base}/login"))
                    .body(Full::default())
                    .unwrap(),
            )
            .await;
            let login_cookie = c[0].clone();
            let csrf = login_cookie.split('=').nth(1).unwrap().to_string();
            let (st, c, _, _) = call(
                Request::post(format!("{base}/login"))
                    .header(header::COOKIE, &login_cookie)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Full::from(format!(
                        "name=load{r}&password={PASS}&csrf={csrf}"
                    )))
                    .unwrap(),
            )
            .await;
            assert_eq!(st, StatusCode::SEE_OTHER);
            let session = c
                .iter()
                .find(|c| c.starts_with("bhyt_session="))
                .unwrap()
                .clone();
            let (_, _, b, _) = call(
                Request::get(format!("{base}/api/session"))
                    .header(header::COOKIE, &session)
                    .body(Full::default())
                    .unwrap(),
            )
            .await;
            let token = serde_json::from_slice::<serde_json::Value>(&b).unwrap()["csrf"]
                .as_str()
                .unwrap()
                .to_string();
            let (mut queue_ms, mut decide_ms, mut ok, mut conflicts) =
                (Vec::new(), Vec::new(), 0usize, 0usize);
            let mut k = r;
            while std::time::Instant::now() < deadline {
                let (st, _, _, ms) = call(
                    Request::get(format!("{base}/queue"))
                        .header(header::COOKIE, &session)
                        .body(Full::default())
                        .unwrap(),
                )
                .await;
                assert_eq!(st, StatusCode::OK);
                queue_ms.push(ms);
                k = (k * 7 + 13) % alerts;
                let id = format!("92{k:03}:load:1");
                let (_, _, b, _) = call(
                    Request::get(format!("{base}/api/alerts/{id}"))
                        .header(header::COOKIE, &session)
                        .body(Full::default())
                        .unwrap(),
                )
                .await;
                let version = serde_json::from_slice::<serde_json::Value>(&b).unwrap()["alert"]
                    ["version"]
                    .as_i64()
                    .unwrap();
                let (st, _, _, ms) = call(
                    Request::post(format!("{base}/api/alerts/{id}/decision"))
                        .header(header::COOKIE, &session)
                        .header(header::CONTENT_TYPE, "application/json")
                        .header("x-csrf-token", &token)
                        .body(Full::from(format!(
                            r#"{{"version":{version},"decision":"explained","comment":"load{r}"}}"#
                        )))
                        .unwrap(),
                )
                .await;
                decide_ms.push(ms);
                match st {
                    StatusCode::OK => ok += 1,
                    StatusCode::CONFLICT => conflicts += 1,
                    s => panic!("decision: {s}"),
                }
            }
            (queue_ms, decide_ms, ok, conflicts)
        }));
    }
    let (mut q, mut d, mut ok, mut conflicts) = (Vec::new(), Vec::new(), 0, 0);
    for t in tasks {
        let (a, b, o, c) = t.await.unwrap();
        q.extend(a);
        d.extend(b);
        ok += o;
        conflicts += c;
    }
    let recorded = w.db.count("decisions").await.unwrap() as usize;
    assert_eq!(recorded, ok, "every accepted decision recorded once");
    for a in w.db.alerts(None).await.unwrap() {
        let n = w.db.decisions_of(&a.alert_id).await.unwrap().len() as i64;
        assert_eq!(
            a.version,
            1 + n,
            "{}: version and decisions agree",
            a.alert_id
        );
    }
    println!(
        "load: {reviewers} reviewers, {secs} s: queue {} requests, p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms; \
         decisions {} ({ok} recorded, {conflicts} conflicts), p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        q.len(),
        quantile(&mut q, 0.5),
        quantile(&mut q, 0.95),
        quantile(&mut q, 1.0),
        d.len(),
        quantile(&mut d, 0.5),
        quantile(&mut d, 0.95),
        quantile(&mut d, 1.0),
    );
}
