//! The manifest: one row per source file ingested (content hash, counts,
//! status), the data files each wrote, and the store's snapshots — the
//! versions of the Delta tables (visits, lines, quarantine, superseded)
//! that together hold exactly the committed sources. SQLite: it persists
//! across runs, a commit is atomic, and its write lock orders the writers
//! of a data directory.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::{StoreError, LINES, QUARANTINE, SUPERSEDED, VISITS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceStatus {
    /// Being read; parts are still in staging.
    Pending,
    /// Read and committed.
    Ok,
    /// Unreadable; nothing of it is in the store.
    Rejected,
    /// Replaced by a corrected file of the same path.
    Superseded,
}

impl SourceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceStatus::Pending => "pending",
            SourceStatus::Ok => "ok",
            SourceStatus::Rejected => "rejected",
            SourceStatus::Superseded => "superseded",
        }
    }
}

/// Counts of one source, as recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceRecord {
    pub seq: i64,
    pub path: String,
    pub content_hash: String,
    pub status: String,
    pub visits_read: i64,
    pub visits_accepted: i64,
    pub visits_quarantined: i64,
    pub lines_read: i64,
    pub lines_accepted: i64,
    pub lines_quarantined: i64,
    pub error: Option<String>,
}

/// One stage's last run, as recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRecord {
    pub stage: String,
    /// UTC, ISO 8601.
    pub finished_at: String,
    pub seconds: f64,
    pub inputs: serde_json::Value,
    pub summary: serde_json::Value,
}

/// Sources of one status in the manifest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusCount {
    pub status: String,
    pub sources: i64,
    pub bytes: i64,
    pub visits_accepted: i64,
    pub visits_quarantined: i64,
    pub lines_accepted: i64,
    pub lines_quarantined: i64,
}

pub struct Manifest {
    conn: Connection,
}

/// Version of the store's table layout. Bumped when a column the engine
/// reads is added or changes meaning; a store written by another version is
/// refused with a clear message instead of failing deep inside a query.
pub const SCHEMA_VERSION: i64 = 3;

/// The table versions readers use: the last publish that completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Snapshot {
    pub id: i64,
    pub visits: Option<u64>,
    pub lines: Option<u64>,
    pub quarantine: Option<u64>,
    pub superseded: Option<u64>,
}

impl Snapshot {
    fn slot(&mut self, table: &str) -> Option<&mut Option<u64>> {
        match table {
            VISITS => Some(&mut self.visits),
            LINES => Some(&mut self.lines),
            QUARANTINE => Some(&mut self.quarantine),
            SUPERSEDED => Some(&mut self.superseded),
            _ => None,
        }
    }

    /// A table's version in this snapshot (None: not written yet, or not
    /// one of the store's Delta tables).
    pub fn version(&self, table: &str) -> Option<u64> {
        let mut s = *self;
        s.slot(table).and_then(|v| *v)
    }

    /// Sets a table's version (ignored for a name that is not a table).
    pub fn set(&mut self, table: &str, version: u64) {
        if let Some(v) = self.slot(table) {
            *v = Some(version);
        }
    }
}

impl Manifest {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // SQLite answers "busy" at once, without the busy handler, in a
        // few cases of first opens racing (turning on WAL, its recovery):
        // retried for up to a minute.
        let mut attempt = 0;
        loop {
            match Self::open_once(path) {
                Err(StoreError::Sql(rusqlite::Error::SqliteFailure(e, _)))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy && attempt < 1200 =>
                {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                r => return r,
            }
        }
    }

    fn open_once(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        // Writers of one data directory wait for each other's publish
        // (short: the parsing happens outside the lock).
        conn.busy_timeout(std::time::Duration::from_secs(600))?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")?;
        let layout = |conn: &Connection| -> Result<(i64, bool), StoreError> {
            let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            let has_sources: bool = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='sources'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n > 0)?;
            Ok((version, has_sources))
        };
        // A store of this layout: nothing to create, and readers must not
        // wait for a publish holding the write lock.
        if layout(&conn)? == (SCHEMA_VERSION, true) {
            return Ok(Manifest { conn });
        }
        // Else the check and the schema in one immediate transaction: a
        // second process creating the same new store at the same moment
        // waits, then finds both the tables and the layout version, never
        // one without the other.
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let (version, has_sources) = layout(&conn)?;
        if has_sources && version != SCHEMA_VERSION {
            conn.execute_batch("ROLLBACK")?;
            return Err(StoreError::SchemaVersion {
                path: path.to_path_buf(),
                found: version,
                expected: SCHEMA_VERSION,
            });
        }
        conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS sources(
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 path TEXT NOT NULL,
                 content_hash TEXT NOT NULL,
                 bytes INTEGER NOT NULL,
                 mtime INTEGER NOT NULL DEFAULT 0,
                 format TEXT NOT NULL,
                 status TEXT NOT NULL,
                 ingested_at TEXT NOT NULL DEFAULT (datetime('now')),
                 visits_read INTEGER NOT NULL DEFAULT 0,
                 visits_accepted INTEGER NOT NULL DEFAULT 0,
                 visits_quarantined INTEGER NOT NULL DEFAULT 0,
                 lines_read INTEGER NOT NULL DEFAULT 0,
                 lines_accepted INTEGER NOT NULL DEFAULT 0,
                 lines_quarantined INTEGER NOT NULL DEFAULT 0,
                 documents_unreadable INTEGER NOT NULL DEFAULT 0,
                 error TEXT,
                 superseded_by INTEGER
             );
             CREATE INDEX IF NOT EXISTS sources_hash ON sources(content_hash);
             CREATE INDEX IF NOT EXISTS sources_path ON sources(path);
             CREATE TABLE IF NOT EXISTS parts(
                 relpath TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 table_name TEXT NOT NULL,
                 rows INTEGER NOT NULL,
                 PRIMARY KEY(relpath, seq)
             );
             CREATE INDEX IF NOT EXISTS parts_seq ON parts(seq);
             CREATE TABLE IF NOT EXISTS settings(
                 name TEXT PRIMARY KEY,
                 value TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS snapshots(
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 visits INTEGER,
                 lines INTEGER,
                 quarantine INTEGER,
                 superseded INTEGER,
                 at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
             );
             CREATE TABLE IF NOT EXISTS runs(
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 stage TEXT NOT NULL,
                 finished_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
                 seconds REAL NOT NULL,
                 inputs TEXT NOT NULL,
                 summary TEXT NOT NULL
             );
             COMMIT;",
        )?;
        Ok(Manifest { conn })
    }

    /// Checks the run's key against the one the store was written with (a
    /// keyed hash of a constant: it identifies the key without revealing
    /// it), recording it on the first run. Batches hashed with two keys
    /// would give one patient two pseudonyms and break every per-patient
    /// indicator silently.
    pub fn check_key(&self, fingerprint: &str) -> Result<(), StoreError> {
        let stored: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM settings WHERE name = 'key_fingerprint'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match stored {
            Some(s) if s != fingerprint => Err(StoreError::KeyMismatch {
                stored: s,
                given: fingerprint.to_string(),
            }),
            Some(_) => Ok(()),
            None => {
                // Two first runs at once: the first to record wins, the
                // other is checked against it.
                let n = self.conn.execute(
                    "INSERT OR IGNORE INTO settings(name, value) VALUES ('key_fingerprint', ?1)",
                    [fingerprint],
                )?;
                if n == 0 {
                    return self.check_key(fingerprint);
                }
                Ok(())
            }
        }
    }

    /// The committed source with this content, if any.
    pub fn find_by_hash(&self, hash: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq FROM sources WHERE content_hash=?1 AND status='ok' LIMIT 1",
                [hash],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The committed source previously read from this path, if any.
    pub fn find_by_path(&self, path: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq FROM sources WHERE path=?1 AND status='ok' ORDER BY seq DESC LIMIT 1",
                [path],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The newest snapshot, or `id` 0 with no versions before the first
    /// publish.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        snapshot_in(&self.conn)
    }

    /// A snapshot by id (`--as-of-version`).
    pub fn snapshot_by_id(&self, id: i64) -> Result<Option<Snapshot>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, visits, lines, quarantine, superseded FROM snapshots WHERE id = ?1",
                [id],
                snapshot_of,
            )
            .optional()?)
    }

    /// Snapshots taken after `since` (UTC, ISO 8601, whole seconds), oldest
    /// first. Strictly after: a snapshot of the same second as `since` is
    /// not in a window that starts then (a vacuum without retention, run
    /// within the second of the last publish, keeps no old snapshot).
    pub fn snapshots_since(&self, since: &str) -> Result<Vec<Snapshot>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT id, visits, lines, quarantine, superseded FROM snapshots WHERE at > ?1 ORDER BY id",
        )?;
        let rows = st.query_map([since], snapshot_of)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Takes the store's write lock (an immediate SQLite transaction on the
    /// manifest): publishers of one data directory, in any process, take
    /// turns. Released by [`Manifest::publish`] or on drop (rolled back).
    pub fn lock(&mut self) -> Result<rusqlite::Transaction<'_>, StoreError> {
        Ok(self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
    }

    /// The committed source read from this path with this size and
    /// modification time: unchanged, no need to read it again.
    pub fn find_unchanged(
        &self,
        path: &str,
        bytes: u64,
        mtime: i64,
    ) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq FROM sources WHERE path=?1 AND bytes=?2 AND mtime=?3 AND status='ok' LIMIT 1",
                params![path, bytes as i64, mtime],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Registers a source about to be read; returns its sequence number.
    /// The content hash may be filled in at commit.
    pub fn begin(
        &self,
        path: &str,
        hash: &str,
        bytes: u64,
        mtime: i64,
        format: &str,
    ) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO sources(path, content_hash, bytes, mtime, format, status) VALUES (?1,?2,?3,?4,?5,'pending')",
            params![path, hash, bytes as i64, mtime, format],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// A source whose content turned out to be ingested already (the same
    /// bytes under another path or name): nothing of it is added.
    pub fn mark_duplicate(&self, seq: i64, hash: &str, of: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE sources SET status='duplicate', content_hash=?2, superseded_by=?3 WHERE seq=?1",
            params![seq, hash, of],
        )?;
        Ok(())
    }

    pub fn reject(&self, seq: i64, error: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE sources SET status='rejected', error=?2 WHERE seq=?1",
            params![seq, error],
        )?;
        Ok(())
    }

    /// Data files (`table/path`) holding a source's rows.
    pub fn parts_of(&self, seq: i64) -> Result<Vec<String>, StoreError> {
        parts_of(&self.conn, seq)
    }

    /// Every part file the manifest knows.
    pub fn all_parts(&self) -> Result<Vec<String>, StoreError> {
        let mut st = self.conn.prepare("SELECT relpath FROM parts")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<String>, _>>()?)
    }

    /// Sources left pending by an interrupted run.
    pub fn abandon_pending(&self) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "UPDATE sources SET status='rejected', error='interrupted run' WHERE status='pending'",
            [],
        )?)
    }

    /// Records a finished run of a stage over this store: its inputs and
    /// what it found (JSON objects), for `bhyt status`. Append-only.
    pub fn record_run(
        &self,
        stage: &str,
        seconds: f64,
        inputs: &serde_json::Value,
        summary: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO runs(stage, seconds, inputs, summary) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![stage, seconds, inputs.to_string(), summary.to_string()],
        )?;
        Ok(())
    }

    /// The last recorded run of each stage, in pipeline order.
    pub fn last_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT stage, finished_at, seconds, inputs, summary FROM runs
             WHERE id IN (SELECT max(id) FROM runs GROUP BY stage)",
        )?;
        let mut rows = st
            .query_map([], |r| {
                let json = |s: String| serde_json::from_str(&s).unwrap_or(serde_json::Value::Null);
                Ok(RunRecord {
                    stage: r.get(0)?,
                    finished_at: r.get(1)?,
                    seconds: r.get(2)?,
                    inputs: json(r.get(3)?),
                    summary: json(r.get(4)?),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let order = [
            "ingest", "features", "detect", "forecast", "report", "weekly",
        ];
        rows.sort_by_key(|r| {
            order
                .iter()
                .position(|s| *s == r.stage)
                .unwrap_or(order.len())
        });
        Ok(rows)
    }

    /// Sources by status, with their visit and line counts summed.
    pub fn sources_by_status(&self) -> Result<Vec<StatusCount>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT status, count(*), sum(bytes), sum(visits_accepted), sum(visits_quarantined),
                    sum(lines_accepted), sum(lines_quarantined)
             FROM sources GROUP BY status ORDER BY count(*) DESC",
        )?;
        let rows = st.query_map([], |r| {
            Ok(StatusCount {
                status: r.get(0)?,
                sources: r.get(1)?,
                bytes: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                visits_accepted: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
                visits_quarantined: r.get::<_, Option<i64>>(4)?.unwrap_or(0),
                lines_accepted: r.get::<_, Option<i64>>(5)?.unwrap_or(0),
                lines_quarantined: r.get::<_, Option<i64>>(6)?.unwrap_or(0),
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    pub fn sources(&self) -> Result<Vec<SourceRecord>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT seq, path, content_hash, status, visits_read, visits_accepted, visits_quarantined,
                    lines_read, lines_accepted, lines_quarantined, error FROM sources ORDER BY seq",
        )?;
        let rows = st.query_map([], |r| {
            Ok(SourceRecord {
                seq: r.get(0)?,
                path: r.get(1)?,
                content_hash: r.get(2)?,
                status: r.get(3)?,
                visits_read: r.get(4)?,
                visits_accepted: r.get(5)?,
                visits_quarantined: r.get(6)?,
                lines_read: r.get(7)?,
                lines_accepted: r.get(8)?,
                lines_quarantined: r.get(9)?,
                error: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

fn snapshot_of(r: &rusqlite::Row) -> rusqlite::Result<Snapshot> {
    let v = |i: usize| -> rusqlite::Result<Option<u64>> {
        Ok(r.get::<_, Option<i64>>(i)?.map(|x| x as u64))
    };
    Ok(Snapshot {
        id: r.get(0)?,
        visits: v(1)?,
        lines: v(2)?,
        quarantine: v(3)?,
        superseded: v(4)?,
    })
}

pub(crate) fn snapshot_in(conn: &Connection) -> Result<Snapshot, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, visits, lines, quarantine, superseded FROM snapshots ORDER BY id DESC LIMIT 1",
            [],
            snapshot_of,
        )
        .optional()?
        .unwrap_or_default())
}

/// The committed source with these bytes, if any.
pub(crate) fn committed_hash(conn: &Connection, hash: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT seq FROM sources WHERE content_hash = ?1 AND status = 'ok' LIMIT 1",
            [hash],
            |r| r.get(0),
        )
        .optional()?)
}

pub(crate) fn parts_of(conn: &Connection, seq: i64) -> Result<Vec<String>, StoreError> {
    let mut st = conn.prepare("SELECT relpath FROM parts WHERE seq=?1 ORDER BY relpath")?;
    let rows = st.query_map([seq], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<String>, _>>()?)
}

/// Sources whose rows a data file holds.
pub(crate) fn part_sources(conn: &Connection, relpath: &str) -> Result<Vec<i64>, StoreError> {
    let mut st = conn.prepare("SELECT seq FROM parts WHERE relpath=?1")?;
    let rows = st.query_map([relpath], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<i64>, _>>()?)
}

/// Records a snapshot (the tables' versions); returns its id.
fn insert_snapshot(conn: &Connection, next: &Snapshot) -> Result<i64, StoreError> {
    let v = |x: Option<u64>| x.map(|x| x as i64);
    conn.execute(
        "INSERT INTO snapshots(visits, lines, quarantine, superseded) VALUES (?1, ?2, ?3, ?4)",
        params![
            v(next.visits),
            v(next.lines),
            v(next.quarantine),
            v(next.superseded)
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// A committed source: its record, unreadable documents, the data files
/// (`table/path`, table, rows) holding its rows, the source it replaces.
pub(crate) type SourceEntry<'a> = (
    &'a SourceRecord,
    i64,
    Vec<(String, &'static str, usize)>,
    Option<i64>,
);

/// The last step of a publish, in its transaction: the new snapshot,
/// the committed sources with the files holding their rows, duplicates,
/// files rewritten (`moved`: old → new path, for the sources still in
/// them) and replaced sources marked superseded.
pub(crate) fn publish(
    tx: rusqlite::Transaction,
    next: &Snapshot,
    entries: &[SourceEntry],
    duplicates: &[(i64, String, i64)],
    moved: &[(String, String)],
    replaced: &std::collections::BTreeSet<i64>,
) -> Result<Snapshot, StoreError> {
    let id = insert_snapshot(&tx, next)?;
    {
        let mut upd = tx.prepare(
            "UPDATE sources SET status='ok', visits_read=?2, visits_accepted=?3, visits_quarantined=?4,
                lines_read=?5, lines_accepted=?6, lines_quarantined=?7, documents_unreadable=?8,
                content_hash=?9
             WHERE seq=?1",
        )?;
        let mut part = tx.prepare(
            "INSERT OR REPLACE INTO parts(relpath, seq, table_name, rows) VALUES (?1,?2,?3,?4)",
        )?;
        let mut sup =
            tx.prepare("UPDATE sources SET status='superseded', superseded_by=?2 WHERE seq=?1")?;
        let mut dup = tx.prepare(
            "UPDATE sources SET status='duplicate', content_hash=?2, superseded_by=?3 WHERE seq=?1",
        )?;
        let mut mv = tx.prepare("UPDATE parts SET relpath=?2 WHERE relpath=?1")?;
        for (old, new) in moved {
            mv.execute(params![old, new])?;
        }
        for (rec, documents_unreadable, parts, replaces) in entries {
            upd.execute(params![
                rec.seq,
                rec.visits_read,
                rec.visits_accepted,
                rec.visits_quarantined,
                rec.lines_read,
                rec.lines_accepted,
                rec.lines_quarantined,
                documents_unreadable,
                rec.content_hash
            ])?;
            for (rel, table, rows) in parts {
                part.execute(params![rel, rec.seq, table, *rows as i64])?;
            }
            if let Some(old) = replaces {
                sup.execute(params![old, rec.seq])?;
            }
        }
        for (seq, hash, of) in duplicates {
            dup.execute(params![seq, hash, of])?;
        }
        for old in replaced {
            tx.execute("DELETE FROM parts WHERE seq=?1", [old])?;
        }
    }
    tx.commit()?;
    Ok(Snapshot { id, ..*next })
}

/// The end of a compaction, in its transaction: the new snapshot, and
/// each rewritten file's sources moved to the files that replaced it.
pub(crate) fn compacted(
    tx: rusqlite::Transaction,
    next: &Snapshot,
    moved: &[(String, Vec<String>)],
) -> Result<(), StoreError> {
    if moved.is_empty() {
        return Ok(());
    }
    insert_snapshot(&tx, next)?;
    {
        let mut add = tx.prepare(
            "INSERT OR IGNORE INTO parts(relpath, seq, table_name, rows)
             SELECT ?2, seq, table_name, 0 FROM parts WHERE relpath = ?1",
        )?;
        let mut drop = tx.prepare("DELETE FROM parts WHERE relpath = ?1")?;
        for (old, new) in moved {
            for n in new {
                add.execute(params![old, n])?;
            }
            drop.execute([old])?;
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Eight processes' worth of first opens of one new store at once (the
    /// concurrent-ingest test met it as a rare "written with store layout
    /// 0"): every open succeeds, the key is recorded once and accepted by
    /// all.
    #[test]
    fn a_new_store_opened_by_many_at_once_gets_one_layout_and_one_key() {
        for round in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("manifest.sqlite");
            let barrier = std::sync::Barrier::new(8);
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            let m = Manifest::open(&path)?;
                            m.check_key("fp")
                        })
                    })
                    .collect();
                for h in handles {
                    let r = h.join().unwrap();
                    assert!(r.is_ok(), "round {round}: {r:?}");
                }
            });
            let m = Manifest::open(&path).unwrap();
            assert!(m.check_key("other").is_err());
        }
    }
}
