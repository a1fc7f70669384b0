//! Several cores without threads in the runtime: the encoder's work as independent jobs,
//! run by an executor the caller implements.
//!
//! Each encoder layer is two passes over blocks of [`super::scratch::BLOCK_ROWS`] query
//! rows (see [`super::layer`]): pass 1 projects keys and values, pass 2 runs attention and
//! the feed-forward block. The rows of one pass are independent: a row block reads its own
//! rows (and, in pass 2, every key and value, read-only) and writes only its own rows and
//! its worker's scratch. So a pass is cut into contiguous runs of rows, one per worker
//! (equal rows for equal workers; each run then goes block by block from its start),
//! each owning disjoint slices of the arena (`split_at_mut`, no `unsafe`, no locks), and
//! the runs are handed to [`Parallel::join`] two at a time, recursively, until every
//! worker has one. Every step is row by row (quantisation, products, softmax, LayerNorm),
//! so a row's bits do not depend on which run or block it falls in: the output is
//! bit-identical for any number of workers.
//!
//! [`Sequential`] (the default) runs everything on the calling thread. A host implements
//! [`Parallel`] with threads (`microbert-host`'s `Threads`, a `rayon-core` pool); a
//! bare-metal multi-core part (a dual-core MCU, a Cortex-A cluster without an OS) can
//! implement `join` by posting the first closure to the other core through a mailbox and
//! running the second itself, then waiting for the other core's completion flag. The
//! scratch plan ([`super::scratch::Plan::with_workers`]) gives every worker its own block
//! buffers, so the arena grows by one block's buffers per extra worker (plus the key and
//! value scales of every token, staged in token order).

/// Runs independent jobs, possibly at the same time.
pub trait Parallel: Sync {
    /// How many jobs may run at once (at least 1; 1 runs everything in order).
    fn workers(&self) -> usize;

    /// Runs `a` and `b`, possibly at the same time, and returns when both have finished.
    fn join<A, B>(&self, a: A, b: B)
    where
        A: FnOnce() + Send,
        B: FnOnce() + Send;
}

/// Everything on the calling thread, in order: the encoder's default, for kernels of any
/// kind (a [`Parallel`] executor needs kernels that are `Sync`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sequential;

impl<P: Parallel + ?Sized> Parallel for &P {
    fn workers(&self) -> usize {
        (**self).workers()
    }

    fn join<A, B>(&self, a: A, b: B)
    where
        A: FnOnce() + Send,
        B: FnOnce() + Send,
    {
        (**self).join(a, b);
    }
}

/// A run of rows with the buffers it owns, which splits at any row into two runs that own
/// disjoint buffers (every step of a pass is row by row, so where a run starts changes no
/// bit of its rows).
pub(crate) trait Split: Sized + Send {
    /// Rows in the run.
    fn rows(&self) -> usize;

    /// The first `rows` rows, served by the first `workers` workers' scratch, and the
    /// rest.
    fn split(self, rows: usize, workers: usize) -> (Self, Self);
}

/// Runs `work` on `workers` workers: splits its rows in proportion (so equal workers get
/// equal rows), hands the halves to `par.join`, and calls `run` on each run (with its
/// worker scratch).
pub(crate) fn fork<P: Parallel, S: Split>(
    par: &P,
    workers: usize,
    work: S,
    run: &(impl Fn(S) + Sync),
) {
    let rows = work.rows();
    if workers <= 1 || rows <= 1 {
        run(work);
        return;
    }
    let left_workers = workers / 2;
    let left_rows = (rows * left_workers / workers).max(1);
    let (left, right) = work.split(left_rows, left_workers);
    par.join(
        || fork(par, left_workers, left, run),
        || fork(par, workers - left_workers, right, run),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicUsize, Ordering};

    /// A run of rows `[start, start + len)` with a worker count.
    struct Run {
        start: usize,
        len: usize,
        workers: usize,
    }

    impl Split for Run {
        fn rows(&self) -> usize {
            self.len
        }
        fn split(self, rows: usize, workers: usize) -> (Self, Self) {
            (
                Run {
                    start: self.start,
                    len: rows,
                    workers,
                },
                Run {
                    start: self.start + rows,
                    len: self.len - rows,
                    workers: self.workers - workers,
                },
            )
        }
    }

    /// A `Parallel` that claims `n` workers but runs in order.
    struct Claims(usize);

    impl Parallel for Claims {
        fn workers(&self) -> usize {
            self.0
        }
        fn join<A: FnOnce() + Send, B: FnOnce() + Send>(&self, a: A, b: B) {
            b();
            a();
        }
    }

    #[test]
    fn every_row_runs_once_on_at_most_the_workers() {
        for workers in 1..9 {
            for blocks in 1..40 {
                let seen = [const { AtomicUsize::new(0) }; 40];
                let runs = AtomicUsize::new(0);
                let run = Run {
                    start: 0,
                    len: blocks,
                    workers,
                };
                fork(&Claims(workers), workers, run, &|r: Run| {
                    assert!(r.len >= 1 && r.workers >= 1);
                    runs.fetch_add(1, Ordering::Relaxed);
                    for s in &seen[r.start..r.start + r.len] {
                        s.fetch_add(1, Ordering::Relaxed);
                    }
                });
                assert!(runs.load(Ordering::Relaxed) <= workers.min(blocks));
                if blocks >= workers {
                    assert_eq!(
                        runs.load(Ordering::Relaxed),
                        workers,
                        "every worker has work"
                    );
                }
                for (b, s) in seen.iter().enumerate() {
                    let want = usize::from(b < blocks);
                    assert_eq!(s.load(Ordering::Relaxed), want, "{workers} {blocks} {b}");
                }
            }
        }
    }
}
