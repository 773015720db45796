//! Pseudonymisation of personal fields with a keyed hash (HMAC-SHA256).
//!
//! Patient names, card numbers, citizen IDs, patient codes, addresses and
//! phones never reach the store: identifiers become keyed hashes (so the same
//! person links across visits and facilities), free text (names, addresses,
//! phones) is dropped. The key comes from the environment or a key file and
//! never from the repository; without one the run refuses to start unless the
//! explicit demo flag is given.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Environment variable holding the key itself.
pub const KEY_ENV: &str = "BHYT_PSEUDONYM_KEY";
/// Environment variable naming a file that holds the key.
pub const KEY_FILE_ENV: &str = "BHYT_PSEUDONYM_KEY_FILE";
/// Keys shorter than this are refused: a short key makes the hashes guessable
/// from the small space of card numbers.
pub const MIN_KEY_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error(
        "no pseudonymisation key: set {KEY_ENV}, or {KEY_FILE_ENV}/--key-file to a file holding it \
         (use --demo-key only for the bundled synthetic sample)"
    )]
    NoKey,
    #[error("pseudonymisation key is too short ({0} bytes, need at least {MIN_KEY_LEN})")]
    ShortKey(usize),
    #[error("cannot read key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where the key came from; reported in the run summary (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env,
    File(PathBuf),
    Demo,
}

#[derive(Clone)]
pub struct Pseudonymizer {
    mac: Hmac<Sha256>,
    source: KeySource,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pseudonymizer")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The fixed key of demo runs; hashes made with it are not private, which is
/// acceptable only for synthetic data.
const DEMO_KEY: &[u8] = b"bhyt-demo-key-synthetic-data-only";

impl Pseudonymizer {
    pub fn new(key: &[u8], source: KeySource) -> Result<Self, PrivacyError> {
        if key.len() < MIN_KEY_LEN {
            return Err(PrivacyError::ShortKey(key.len()));
        }
        let mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        Ok(Pseudonymizer { mac, source })
    }

    pub fn demo() -> Self {
        Self::new(DEMO_KEY, KeySource::Demo).expect("demo key is long enough")
    }

    /// Resolves the key: explicit key file, then `BHYT_PSEUDONYM_KEY`, then
    /// `BHYT_PSEUDONYM_KEY_FILE`, then the demo key if allowed.
    pub fn from_environment(
        key_file: Option<&Path>,
        allow_demo: bool,
    ) -> Result<Self, PrivacyError> {
        let from_file = |p: &Path| -> Result<Self, PrivacyError> {
            let bytes = std::fs::read(p).map_err(|source| PrivacyError::KeyFile {
                path: p.to_path_buf(),
                source,
            })?;
            let key = trim_ascii(&bytes);
            Self::new(key, KeySource::File(p.to_path_buf()))
        };
        if let Some(p) = key_file {
            return from_file(p);
        }
        if let Ok(k) = std::env::var(KEY_ENV) {
            if !k.is_empty() {
                return Self::new(k.trim().as_bytes(), KeySource::Env);
            }
        }
        if let Ok(p) = std::env::var(KEY_FILE_ENV) {
            if !p.is_empty() {
                return from_file(Path::new(&p));
            }
        }
        if allow_demo {
            return Ok(Self::demo());
        }
        Err(PrivacyError::NoKey)
    }

    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// Identifies the key without revealing it: the keyed hash of a
    /// constant. The store records it so a batch hashed with another key
    /// is refused.
    pub fn fingerprint(&self) -> String {
        self.hash("key-fingerprint", "bhyt")
    }

    /// Keyed hash of `value` in a `domain` (so a card number and a citizen ID
    /// that happen to share digits do not collide), as 20 hex characters
    /// (80 bits: collision-free in practice for tens of millions of people).
    pub fn hash(&self, domain: &str, value: &str) -> String {
        let mut m = self.mac.clone();
        m.update(domain.as_bytes());
        m.update(b"\x1f");
        m.update(value.as_bytes());
        let out = m.finalize().into_bytes();
        hex::encode(&out[..10])
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_keyed_and_domain_separated() {
        let a = Pseudonymizer::new(b"0123456789abcdef", KeySource::Env).unwrap();
        let b = Pseudonymizer::new(b"0123456789abcdeX", KeySource::Env).unwrap();
        assert_eq!(
            a.hash("card", "GD4929871998712"),
            a.hash("card", "GD4929871998712")
        );
        assert_ne!(
            a.hash("card", "GD4929871998712"),
            b.hash("card", "GD4929871998712")
        );
        assert_ne!(a.hash("card", "1"), a.hash("cccd", "1"));
        assert_eq!(a.hash("card", "x").len(), 20);
        assert!(!a.hash("card", "GD4929871998712").contains("4929871998712"));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(matches!(
            Pseudonymizer::new(b"short", KeySource::Env),
            Err(PrivacyError::ShortKey(5))
        ));
    }
}
