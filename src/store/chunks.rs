//! Reading the store facility group by facility group: a stage whose
//! results for a facility need only that facility's claims (and norms
//! learnt beforehand) holds one group at a time, so its memory is set by
//! the budget, not by the store's size. The store is partitioned by
//! province, so a group's scan skips other provinces' files.

use std::collections::BTreeSet;

use polars::prelude::*;

/// The memory budget of a stage when none is configured, MiB.
pub const DEFAULT_MEMORY_MB: u64 = 4096;

/// Collects with Polars' streaming engine: the plan runs in morsels and
/// holds only what its group-bys and joins keep, not the scanned table.
pub fn streamed(lf: LazyFrame) -> PolarsResult<DataFrame> {
    // One plan has one sink: the result is a single frame.
    Ok(lf.collect_with_engine(Engine::Streaming)?.unwrap_single())
}

/// What the process holds besides the chunk (code, norms, Polars' pools).
pub const BASE_MB: u64 = 768;

/// A group of facilities read together, and the store partitions
/// (provinces) that hold their claims. No facility: everything (a store
/// without visits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub facilities: Vec<String>,
    pub provinces: Vec<String>,
    pub visits: u64,
}

impl Chunk {
    /// Keeps the rows of the chunk's facilities; the province filter lets
    /// the scan skip other provinces' files (the store is partitioned by
    /// province).
    pub fn filter(&self, lf: LazyFrame) -> LazyFrame {
        if self.facilities.is_empty() {
            return lf;
        }
        let provinces = Series::new("p".into(), &self.provinces);
        let facilities = Series::new("f".into(), &self.facilities);
        lf.filter(
            col("facility_province_code")
                .is_in(lit(provinces).implode(false), false)
                .and(col("facility_code").is_in(lit(facilities).implode(false), false)),
        )
    }
}

/// Room for Polars' pools and the query's transient buffers above what the
/// process holds when a chunked pass is planned, MiB.
const HEADROOM_MB: u64 = 256;

/// Visits a chunk may hold under a memory budget in MiB, for a query that
/// holds `bytes_per_visit` per visit of its chunk. What the process already
/// holds counts against the budget (at least [`BASE_MB`]): a stage's tables
/// that are not chunked (facilities × weeks) grow with the store, and the
/// chunks must shrink by as much.
pub fn visits_per_chunk(memory_mb: u64, bytes_per_visit: u64) -> u64 {
    let held = resident_mb().map_or(BASE_MB, |r| (r + HEADROOM_MB).max(BASE_MB));
    chunk_visits(memory_mb, held, bytes_per_visit)
}

fn chunk_visits(memory_mb: u64, held_mb: u64, bytes_per_visit: u64) -> u64 {
    (memory_mb.saturating_sub(held_mb) * 1024 * 1024 / bytes_per_visit.max(1)).max(1)
}

/// Resident memory of this process, MiB (`VmRSS` of `/proc/self/status`;
/// None where there is no such file).
fn resident_mb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

/// Facilities of `visits` (a scan of the store's visits, filtered as the
/// query will be) in groups of at most `max_visits` visits, in facility
/// order; a facility larger than that is a group of its own. One streaming
/// count per facility decides.
pub fn plan_chunks(visits: LazyFrame, max_visits: u64) -> PolarsResult<Vec<Chunk>> {
    let counts = streamed(
        visits
            .group_by([col("facility_code"), col("facility_province_code")])
            .agg([len().cast(DataType::UInt64).alias("n")]),
    )?
    .sort(
        ["facility_code", "facility_province_code"],
        Default::default(),
    )?;
    let fac = counts.column("facility_code")?.str()?.clone();
    let prov = counts.column("facility_province_code")?.str()?.clone();
    let n = counts.column("n")?.u64()?.clone();
    let mut chunks = Vec::new();
    let mut cur = Chunk {
        facilities: Vec::new(),
        provinces: Vec::new(),
        visits: 0,
    };
    let mut provinces = BTreeSet::new();
    let mut i = 0;
    while i < counts.height() {
        // A facility's rows (one per province it was filed under) together.
        let f = fac.get(i).unwrap_or_default().to_string();
        let mut visits = 0;
        let mut its = Vec::new();
        while i < counts.height() && fac.get(i).unwrap_or_default() == f {
            visits += n.get(i).unwrap_or(0);
            its.extend(prov.get(i).map(str::to_string));
            i += 1;
        }
        if !cur.facilities.is_empty() && cur.visits + visits > max_visits {
            cur.provinces = std::mem::take(&mut provinces).into_iter().collect();
            chunks.push(std::mem::replace(
                &mut cur,
                Chunk {
                    facilities: Vec::new(),
                    provinces: Vec::new(),
                    visits: 0,
                },
            ));
        }
        if visits > max_visits {
            tracing::warn!(
                "facility {f}: {visits} visits, more than a chunk holds under the memory budget \
                 ({max_visits}); read alone"
            );
        }
        cur.facilities.push(f);
        cur.visits += visits;
        provinces.extend(its);
    }
    // No visits: one chunk that filters nothing, so that a stage still
    // gets its (empty) tables with their columns.
    if !cur.facilities.is_empty() || chunks.is_empty() {
        cur.provinces = provinces.into_iter().collect();
        chunks.push(cur);
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_shrink_by_what_the_process_already_holds() {
        let at_base = chunk_visits(4096, BASE_MB, 1024);
        assert_eq!(at_base, (4096 - BASE_MB) * 1024);
        assert!(chunk_visits(4096, 2048, 1024) < at_base);
        // A budget below what is held still reads a visit at a time.
        assert_eq!(chunk_visits(1024, 2048, 1024), 1);
        let rss = resident_mb().expect("Linux has /proc/self/status");
        assert!(rss > 0);
        assert!(visits_per_chunk(4096, 1024) <= at_base);
    }
}
