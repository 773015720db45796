//! Accounts, sessions and rights.
//!
//! - Passwords: argon2id with a random salt (PHC string); never logged.
//! - Sessions: a random 256-bit token in an HTTP-only, SameSite=Strict
//!   cookie (Secure unless the server listens on loopback only); the
//!   database keeps its SHA-256, so a leaked database opens no session. A
//!   new token on every login (no fixation: a token is never taken from the
//!   request).
//! - CSRF: a random token per session, required on every state-changing
//!   request (form field `csrf` or header `X-CSRF-Token`).
//! - Login throttling: after `MAX_FAILURES` failures for a name within
//!   `FAILURE_WINDOW_MIN` minutes, further attempts are refused before the
//!   password is checked.
//! - Rights: reviewers see and decide the alerts of their provinces only;
//!   inspectors read every alert; planners read the budget pages; admins
//!   do everything. Checked in every handler through [`Access`].

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::db::{AlertRow, User};

pub const COOKIE: &str = "bhyt_session";
pub const MAX_FAILURES: i64 = 5;
pub const FAILURE_WINDOW_MIN: i64 = 15;
pub const SESSION_HOURS: i64 = 12;

/// The four roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Reviewer,
    Inspector,
    Planner,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reviewer => "reviewer",
            Role::Inspector => "inspector",
            Role::Planner => "planner",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "reviewer" => Some(Role::Reviewer),
            "inspector" => Some(Role::Inspector),
            "planner" => Some(Role::Planner),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A real hash of a random password, checked when the name is unknown so
/// that a failed login takes as long whether or not the name exists.
pub fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password(&token()).unwrap_or_default())
}

/// A fresh random token (hex, 256 bits).
pub fn token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Equality that does not stop at the first differing byte.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The session cookie's value from a Cookie header.
pub fn session_cookie(header: Option<&str>) -> Option<String> {
    header?
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub fn set_cookie(token: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_HOURS * 3600,
        if secure { "; Secure" } else { "" }
    )
}

pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// What the signed-in user may do.
#[derive(Debug, Clone)]
pub struct Access {
    pub user: User,
    pub role: Role,
    pub csrf: String,
}

impl Access {
    pub fn new(user: User, csrf: String) -> Option<Access> {
        let role = Role::parse(&user.role)?;
        Some(Access { user, role, csrf })
    }

    /// Provinces whose alerts the user may read: None = all.
    pub fn alert_provinces(&self) -> Result<Option<&[String]>, Denied> {
        match self.role {
            Role::Admin | Role::Inspector => Ok(None),
            Role::Reviewer => Ok(Some(&self.user.provinces)),
            Role::Planner => Err(Denied),
        }
    }

    pub fn can_read(&self, a: &AlertRow) -> bool {
        match self.alert_provinces() {
            Ok(None) => true,
            Ok(Some(ps)) => ps.contains(&a.province),
            Err(_) => false,
        }
    }

    /// Reviewers of the alert's province and admins decide and assign.
    pub fn can_decide(&self, a: &AlertRow) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Reviewer => self.user.provinces.contains(&a.province),
            _ => false,
        }
    }

    /// The audit plan: inspectors own it, admins too; nobody else reads it.
    pub fn owns_audit_plan(&self) -> bool {
        matches!(self.role, Role::Inspector | Role::Admin)
    }

    /// The budget pages: planners (of their provinces, or all), inspectors, admins.
    pub fn budget_provinces(&self) -> Result<Option<&[String]>, Denied> {
        match self.role {
            Role::Admin | Role::Inspector => Ok(None),
            Role::Planner if self.user.provinces.is_empty() => Ok(None),
            Role::Planner => Ok(Some(&self.user.provinces)),
            Role::Reviewer => Err(Denied),
        }
    }
}

/// Not allowed (HTTP 403).
#[derive(Debug, Clone, Copy)]
pub struct Denied;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_a_salt_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert_ne!(h, hash_password("correct horse").unwrap(), "salted");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn only_a_well_formed_session_cookie_is_read() {
        let t = token();
        assert_eq!(
            session_cookie(Some(&format!("a=1; {COOKIE}={t}; b=2"))),
            Some(t)
        );
        assert_eq!(session_cookie(Some(&format!("{COOKIE}=short"))), None);
        assert_eq!(session_cookie(None), None);
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("ab", "abc"));
    }
}
