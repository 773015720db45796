//! Reading many small sources on every core and committing them in input
//! order on the calling thread, without a barrier between batches.
//!
//! Workers take the next source as soon as they are free; the caller
//! commits results as they become next in order. A worker never runs more
//! than `lookahead` sources ahead of the commit, so the results held wait
//! in a bounded window whatever the sizes of the sources. With batches
//! (read 64, commit 64) both cores idled at the end of every batch behind
//! its slowest file, and during the serial commit.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Condvar, Mutex, MutexGuard};

/// The window's lock, also after a worker panicked holding it (the panic
/// is raised on the calling thread anyway).
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads `jobs` with `read` on `workers` threads and hands each result to
/// `commit` in the order of `jobs`. Stops at the first error of `commit`
/// (the sources after it are not committed); a panic of `read` is raised
/// again on the calling thread.
pub(super) fn read_in_order<J, R, E>(
    jobs: &[J],
    workers: usize,
    lookahead: usize,
    read: impl Fn(&J) -> R + Sync,
    mut commit: impl FnMut(&J, R) -> Result<(), E>,
) -> Result<(), E>
where
    J: Sync,
    R: Send,
{
    let lookahead = lookahead.max(1);
    let next = AtomicUsize::new(0);
    // The next index to commit, and whether the caller stopped.
    let window = (Mutex::new((0usize, false)), Condvar::new());
    let (tx, rx) = sync_channel::<(usize, std::thread::Result<R>)>(lookahead);
    let stop = |window: &(Mutex<(usize, bool)>, Condvar)| {
        locked(&window.0).1 = true;
        window.1.notify_all();
    };
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            let tx = tx.clone();
            let (next, window, read) = (&next, &window, &read);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs.len() {
                    return;
                }
                {
                    let (lock, wake) = window;
                    let mut w = locked(lock);
                    while !w.1 && i >= w.0 + lookahead {
                        w = wake.wait(w).unwrap_or_else(|p| p.into_inner());
                    }
                    if w.1 {
                        return;
                    }
                }
                let r = catch_unwind(AssertUnwindSafe(|| read(&jobs[i])));
                if tx.send((i, r)).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        let mut held: BTreeMap<usize, R> = BTreeMap::new();
        let mut want = 0;
        let mut outcome = Ok(());
        'receive: for (i, r) in rx {
            match r {
                Ok(r) => {
                    held.insert(i, r);
                }
                Err(panic) => {
                    stop(&window);
                    resume_unwind(panic);
                }
            }
            while let Some(r) = held.remove(&want) {
                if let Err(e) = commit(&jobs[want], r) {
                    outcome = Err(e);
                    stop(&window);
                    break 'receive;
                }
                want += 1;
                let (lock, wake) = &window;
                locked(lock).0 = want;
                wake.notify_all();
            }
        }
        outcome
    })
}

#[cfg(test)]
mod tests {
    use super::read_in_order;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn results_come_in_input_order_within_the_window() {
        let jobs: Vec<u64> = (0..200).collect();
        let committed = AtomicUsize::new(0);
        let mut seen = Vec::new();
        // Uneven work: early jobs are the slowest, so workers run ahead.
        let r: Result<(), ()> = read_in_order(
            &jobs,
            3,
            8,
            |j| {
                let ahead = *j as usize - committed.load(Ordering::SeqCst).min(*j as usize);
                assert!(ahead < 8 + 3, "job {j} read {ahead} ahead of the commit");
                std::thread::sleep(std::time::Duration::from_micros(200 - j));
                j * 2
            },
            |j, r| {
                assert_eq!(r, j * 2);
                seen.push(*j);
                committed.fetch_add(1, Ordering::SeqCst);
                Ok(())
            },
        );
        assert!(r.is_ok());
        assert_eq!(seen, jobs);
    }

    #[test]
    fn a_commit_error_stops_the_run_and_is_returned() {
        let jobs: Vec<u32> = (0..100).collect();
        let mut last = None;
        let r = read_in_order(
            &jobs,
            2,
            4,
            |j| *j,
            |j, _| {
                if *j == 10 {
                    return Err(format!("job {j}"));
                }
                last = Some(*j);
                Ok(())
            },
        );
        assert_eq!(r, Err("job 10".to_string()));
        assert_eq!(last, Some(9));
    }

    #[test]
    fn a_panic_while_reading_reaches_the_caller() {
        let jobs: Vec<u32> = (0..50).collect();
        let r = std::panic::catch_unwind(|| {
            read_in_order(
                &jobs,
                2,
                4,
                |j| assert!(*j != 7, "bad job"),
                |_, _| Ok::<(), ()>(()),
            )
        });
        assert!(r.is_err());
    }
}
