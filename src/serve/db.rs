//! The workspace database: one schema on SQLite (embedded, WAL; the
//! default) and PostgreSQL (`--database postgres://…`, feature
//! `postgres`), through sqlx's runtime-generic driver. Migrations are
//! versioned and applied in order at start.
//!
//! Portability rules kept by every query here: placeholders `$1, $2, …`
//! in ascending order of first use and never repeated (SQLite reads `$n`
//! as a named parameter numbered by first appearance); integers BIGINT,
//! amounts DOUBLE PRECISION, times ISO-8601 UTC text written by the
//! engine, booleans as 0/1.
//!
//! Nothing a user does deletes a row: decisions and the audit trail are
//! append-only; an alert's row carries its current status and a version
//! for optimistic locking. (Expired sessions and old login failures are
//! housekeeping, pruned at each login.)

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use super::ServeError;

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Versioned migrations: (version, statements). `{ID}` is the backend's
/// auto-increment key.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE users (
        id {ID},
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        provinces TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        disabled BIGINT NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        user_id BIGINT NOT NULL,
        csrf TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    CREATE TABLE login_failures (
        id {ID},
        name TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX login_failures_name ON login_failures (name, at);
    CREATE TABLE alerts (
        alert_id TEXT PRIMARY KEY,
        as_of TEXT NOT NULL,
        facility_code TEXT NOT NULL,
        facility_name TEXT NOT NULL,
        province TEXT NOT NULL,
        detector TEXT NOT NULL,
        cause TEXT NOT NULL,
        state TEXT NOT NULL,
        severity DOUBLE PRECISION NOT NULL,
        excess_vnd DOUBLE PRECISION NOT NULL,
        reason_vi TEXT NOT NULL,
        reason_en TEXT NOT NULL,
        evidence TEXT NOT NULL,
        status TEXT NOT NULL,
        assignee TEXT NOT NULL,
        version BIGINT NOT NULL,
        first_seen TEXT NOT NULL
    );
    CREATE INDEX alerts_province ON alerts (province, as_of);
    CREATE TABLE decisions (
        id {ID},
        alert_id TEXT NOT NULL,
        decision TEXT NOT NULL,
        comment TEXT NOT NULL,
        amount_recovered_vnd DOUBLE PRECISION NOT NULL,
        reviewer TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX decisions_alert ON decisions (alert_id);
    CREATE TABLE audit (
        id {ID},
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        object TEXT NOT NULL,
        detail TEXT NOT NULL
    );",
    ),
    (
        2,
        "ALTER TABLE alerts ADD COLUMN chart_svg TEXT NOT NULL DEFAULT '';
    CREATE TABLE audit_rounds (
        round TEXT PRIMARY KEY,
        capacity BIGINT NOT NULL,
        version BIGINT NOT NULL
    );
    CREATE TABLE audit_plan (
        round TEXT NOT NULL,
        facility_code TEXT NOT NULL,
        facility_name TEXT NOT NULL,
        province TEXT NOT NULL,
        rank BIGINT NOT NULL,
        expected_recoverable_vnd DOUBLE PRECISION NOT NULL,
        severity DOUBLE PRECISION NOT NULL,
        excess_vnd DOUBLE PRECISION NOT NULL,
        signal TEXT NOT NULL,
        onset TEXT NOT NULL,
        status TEXT NOT NULL,
        owner TEXT NOT NULL,
        note TEXT NOT NULL,
        version BIGINT NOT NULL,
        PRIMARY KEY (round, facility_code)
    )",
    ),
];

/// A connection pool on the workspace database.
#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

/// A user as stored (the hash stays in the database layer's callers).
#[derive(Debug, Clone, serde::Serialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: String,
    /// Province codes the user works on; empty = all (not for reviewers).
    pub provinces: Vec<String>,
    #[serde(skip)]
    pub password_hash: String,
    pub disabled: bool,
}

/// An alert as the workspace shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AlertRow {
    pub alert_id: String,
    pub as_of: String,
    pub facility_code: String,
    pub facility_name: String,
    pub province: String,
    pub detector: String,
    pub cause: String,
    pub state: String,
    pub severity: f64,
    pub excess_vnd: f64,
    pub reason_vi: String,
    pub reason_en: String,
    /// Top claims, services, departments, prescribers (JSON object of lists).
    pub evidence: String,
    /// open, confirmed, explained or dismissed.
    pub status: String,
    pub assignee: String,
    pub version: i64,
    /// The indicator against its peers and control limit (SVG drawn at
    /// sync); read on its own by [`Db::alert_chart`].
    #[serde(skip)]
    pub chart_svg: String,
}

/// One recorded decision.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DecisionRow {
    pub alert_id: String,
    pub decision: String,
    pub comment: String,
    pub amount_recovered_vnd: f64,
    pub reviewer: String,
    pub at: String,
}

/// One line of the audit trail.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub detail: String,
}

pub fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn provinces_of(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

fn user_of(r: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        role: r.try_get(2)?,
        provinces: provinces_of(&r.try_get::<String, _>(3)?),
        password_hash: r.try_get(4)?,
        disabled: r.try_get::<i64, _>(5)? != 0,
    })
}

const ALERT_COLUMNS: &str = "alert_id, as_of, facility_code, facility_name, province, detector, \
     cause, state, severity, excess_vnd, reason_vi, reason_en, evidence, status, assignee, version";

fn alert_of(r: &AnyRow) -> Result<AlertRow, sqlx::Error> {
    Ok(AlertRow {
        alert_id: r.try_get(0)?,
        as_of: r.try_get(1)?,
        facility_code: r.try_get(2)?,
        facility_name: r.try_get(3)?,
        province: r.try_get(4)?,
        detector: r.try_get(5)?,
        cause: r.try_get(6)?,
        state: r.try_get(7)?,
        severity: r.try_get(8)?,
        excess_vnd: r.try_get(9)?,
        reason_vi: r.try_get(10)?,
        reason_en: r.try_get(11)?,
        evidence: r.try_get(12)?,
        status: r.try_get(13)?,
        assignee: r.try_get(14)?,
        version: r.try_get(15)?,
        chart_svg: String::new(),
    })
}

/// Appends one line to the audit trail, on the pool or inside a
/// transaction (so a decision and its line commit together).
pub(super) async fn audit_line<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    e: E,
    at: &str,
    actor: &str,
    action: &str,
    object: &str,
    detail: &str,
) -> Result<(), ServeError> {
    sqlx::query(
        "INSERT INTO audit (at, actor, action, object, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(object)
    .bind(detail)
    .execute(e)
    .await?;
    Ok(())
}

/// Outcome of a decision under optimistic locking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    Recorded {
        version: i64,
    },
    /// Someone else changed the alert since the form was loaded.
    Conflict {
        current_version: i64,
    },
    Missing,
}

impl Db {
    /// Opens (creating a SQLite file if needed) and migrates.
    pub async fn connect(url: &str) -> Result<Db, ServeError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            if !cfg!(feature = "postgres") {
                return Err(ServeError::Config(
                    "this build has no PostgreSQL driver: build with `--features postgres`".into(),
                ));
            }
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(ServeError::Config(format!(
                "database URL `{url}`: use sqlite://FILE or postgres://…"
            )));
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .connect(url)
            .await?;
        let db = Db { pool, backend };
        if backend == Backend::Sqlite {
            // Readers do not wait for the writer; a writer waits its turn.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&db.pool)
                .await?;
        }
        db.migrate().await?;
        Ok(db)
    }

    /// The URL of a SQLite file (created when missing).
    pub fn sqlite_url(path: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", path.display())
    }

    async fn migrate(&self) -> Result<(), ServeError> {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .execute(&self.pool)
            .await?;
        let current: Option<i64> = sqlx::query("SELECT max(version) FROM schema_version")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        let id = match self.backend {
            Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Backend::Postgres => "BIGSERIAL PRIMARY KEY",
        };
        for (version, sql) in MIGRATIONS {
            if current.is_some_and(|c| c >= *version) {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(&stmt.replace("{ID}", id))
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
                .bind(*version)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        object: &str,
        detail: &str,
    ) -> Result<(), ServeError> {
        audit_line(&self.pool, &now(), actor, action, object, detail).await
    }

    pub async fn audit_of(&self, object: &str) -> Result<Vec<AuditRow>, ServeError> {
        let rows = sqlx::query(
            "SELECT at, actor, action, object, detail FROM audit WHERE object = $1 ORDER BY id",
        )
        .bind(object)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    at: r.try_get(0)?,
                    actor: r.try_get(1)?,
                    action: r.try_get(2)?,
                    object: r.try_get(3)?,
                    detail: r.try_get(4)?,
                })
            })
            .collect()
    }

    pub async fn count(&self, table: &'static str) -> Result<i64, ServeError> {
        Ok(sqlx::query(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    // ---- users and sessions ----

    pub async fn add_user(
        &self,
        name: &str,
        role: &str,
        provinces: &[String],
        password_hash: &str,
    ) -> Result<(), ServeError> {
        sqlx::query(
            "INSERT INTO users (name, role, provinces, password_hash, disabled, created_at)
             VALUES ($1, $2, $3, $4, 0, $5)",
        )
        .bind(name)
        .bind(role)
        .bind(provinces.join(","))
        .bind(password_hash)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                ServeError::Config(format!("user `{name}` exists already"))
            }
            e => e.into(),
        })?;
        self.audit("cli", "user.add", &format!("user:{name}"), role)
            .await
    }

    pub async fn user_by_name(&self, name: &str) -> Result<Option<User>, ServeError> {
        let r = sqlx::query(
            "SELECT id, name, role, provinces, password_hash, disabled FROM users WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(r.as_ref().map(user_of).transpose()?)
    }

    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf: &str,
        expires_at: &str,
    ) -> Result<(), ServeError> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(csrf)
        .bind(now())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user and CSRF token of a live session.
    pub async fn session(&self, token_hash: &str) -> Result<Option<(User, String)>, ServeError> {
        let r = sqlx::query(
            "SELECT u.id, u.name, u.role, u.provinces, u.password_hash, u.disabled, s.csrf
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now())
        .fetch_optional(&self.pool)
        .await?;
        match r {
            Some(r) => {
                let u = user_of(&r)?;
                if u.disabled {
                    return Ok(None);
                }
                Ok(Some((u, r.try_get(6)?)))
            }
            None => Ok(None),
        }
    }

    /// Housekeeping at each login, so the tables do not grow with time:
    /// sessions that have expired and failures older than `before` (the
    /// throttling window) go. The audit trail keeps every login.
    pub async fn prune_logins(&self, before: &str) -> Result<(), ServeError> {
        sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now())
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM login_failures WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends a session (its row expires now, pruned at a later login).
    pub async fn end_session(&self, token_hash: &str) -> Result<(), ServeError> {
        sqlx::query("UPDATE sessions SET expires_at = $1 WHERE token_hash = $2")
            .bind(now())
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn record_login_failure(&self, name: &str) -> Result<(), ServeError> {
        sqlx::query("INSERT INTO login_failures (name, at) VALUES ($1, $2)")
            .bind(name)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn login_failures_since(&self, name: &str, since: &str) -> Result<i64, ServeError> {
        Ok(
            sqlx::query("SELECT count(*) FROM login_failures WHERE name = $1 AND at > $2")
                .bind(name)
                .bind(since)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?,
        )
    }

    // ---- alerts ----

    /// Adds a new alert or refreshes one already known (its week, severity,
    /// reasons, evidence); its status, assignee and decisions are kept.
    pub async fn upsert_alert(&self, a: &AlertRow) -> Result<bool, ServeError> {
        let updated = sqlx::query(
            "UPDATE alerts SET as_of = $1, facility_name = $2, province = $3, state = $4,
                severity = $5, excess_vnd = $6, reason_vi = $7, reason_en = $8, evidence = $9,
                chart_svg = $10
             WHERE alert_id = $11",
        )
        .bind(&a.as_of)
        .bind(&a.facility_name)
        .bind(&a.province)
        .bind(&a.state)
        .bind(a.severity)
        .bind(a.excess_vnd)
        .bind(&a.reason_vi)
        .bind(&a.reason_en)
        .bind(&a.evidence)
        .bind(&a.chart_svg)
        .bind(&a.alert_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated > 0 {
            return Ok(false);
        }
        sqlx::query(&format!(
            "INSERT INTO alerts ({ALERT_COLUMNS}, first_seen, chart_svg)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        ))
        .bind(&a.alert_id)
        .bind(&a.as_of)
        .bind(&a.facility_code)
        .bind(&a.facility_name)
        .bind(&a.province)
        .bind(&a.detector)
        .bind(&a.cause)
        .bind(&a.state)
        .bind(a.severity)
        .bind(a.excess_vnd)
        .bind(&a.reason_vi)
        .bind(&a.reason_en)
        .bind(&a.evidence)
        .bind(&a.status)
        .bind(&a.assignee)
        .bind(a.version)
        .bind(now())
        .bind(&a.chart_svg)
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    pub async fn alert(&self, id: &str) -> Result<Option<AlertRow>, ServeError> {
        let r = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE alert_id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(r.as_ref().map(alert_of).transpose()?)
    }

    /// An alert's chart (SVG; empty when the engine's features were not at
    /// hand at sync).
    pub async fn alert_chart(&self, id: &str) -> Result<String, ServeError> {
        Ok(
            sqlx::query("SELECT chart_svg FROM alerts WHERE alert_id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?
                .unwrap_or_default(),
        )
    }

    /// Alerts of the given provinces (all when `provinces` is None), most
    /// severe first.
    pub async fn alerts(&self, provinces: Option<&[String]>) -> Result<Vec<AlertRow>, ServeError> {
        let rows = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts ORDER BY severity DESC, alert_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        let all = rows.iter().map(alert_of).collect::<Result<Vec<_>, _>>()?;
        Ok(match provinces {
            None => all,
            Some(ps) => all
                .into_iter()
                .filter(|a| ps.contains(&a.province))
                .collect(),
        })
    }

    pub async fn decisions_of(&self, alert_id: &str) -> Result<Vec<DecisionRow>, ServeError> {
        let rows = sqlx::query(
            "SELECT alert_id, decision, comment, amount_recovered_vnd, reviewer, at
             FROM decisions WHERE alert_id = $1 ORDER BY id",
        )
        .bind(alert_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DecisionRow {
                    alert_id: r.try_get(0)?,
                    decision: r.try_get(1)?,
                    comment: r.try_get(2)?,
                    amount_recovered_vnd: r.try_get(3)?,
                    reviewer: r.try_get(4)?,
                    at: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Records a decision if the alert is still at `version`: the status
    /// moves, the version goes up, the decision and the audit line are
    /// appended — all in one transaction, or nothing.
    pub async fn decide(
        &self,
        alert_id: &str,
        version: i64,
        decision: &str,
        comment: &str,
        amount: f64,
        reviewer: &str,
    ) -> Result<Decided, ServeError> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE alerts SET status = $1, version = version + 1 WHERE alert_id = $2 AND version = $3",
        )
        .bind(decision)
        .bind(alert_id)
        .bind(version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            let current: Option<i64> =
                sqlx::query("SELECT version FROM alerts WHERE alert_id = $1")
                    .bind(alert_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| r.try_get(0))
                    .transpose()?;
            tx.rollback().await?;
            return Ok(match current {
                Some(v) => Decided::Conflict { current_version: v },
                None => Decided::Missing,
            });
        }
        let at = now();
        sqlx::query(
            "INSERT INTO decisions (alert_id, decision, comment, amount_recovered_vnd, reviewer, at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(alert_id)
        .bind(decision)
        .bind(comment)
        .bind(amount)
        .bind(reviewer)
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        let detail = format!("{decision} (version {version} → {})", version + 1);
        let object = format!("alert:{alert_id}");
        audit_line(&mut *tx, &at, reviewer, "alert.decide", &object, &detail).await?;
        tx.commit().await?;
        Ok(Decided::Recorded {
            version: version + 1,
        })
    }

    /// Assigns an alert to a reviewer (optimistic, as a decision).
    pub async fn assign(
        &self,
        alert_id: &str,
        version: i64,
        assignee: &str,
        actor: &str,
    ) -> Result<Decided, ServeError> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE alerts SET assignee = $1, version = version + 1 WHERE alert_id = $2 AND version = $3",
        )
        .bind(assignee)
        .bind(alert_id)
        .bind(version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            tx.rollback().await?;
            return Ok(match self.alert(alert_id).await? {
                Some(a) => Decided::Conflict {
                    current_version: a.version,
                },
                None => Decided::Missing,
            });
        }
        let object = format!("alert:{alert_id}");
        audit_line(&mut *tx, &now(), actor, "alert.assign", &object, assignee).await?;
        tx.commit().await?;
        Ok(Decided::Recorded {
            version: version + 1,
        })
    }
}
