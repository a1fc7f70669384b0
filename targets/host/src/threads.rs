//! [`Threads`]: the host's [`microbert::Parallel`] executor, a pool of OS threads.
//!
//! The pool (`rayon-core`: persistent threads with work stealing) starts once, with one
//! thread per worker, when the executor is built. `join(a, b)` hands both closures to it
//! and returns when both have run. The encoder asks for a few joins per layer (one for the
//! key/value pass, one per round of blocks of the attention pass), each a few microseconds
//! of hand-over against milliseconds of work; a text of one block never joins.

use microbert::Parallel;
use std::sync::Arc;

/// Runs the encoder's jobs on a pool of `workers` threads; cheap to clone (the pool is
/// shared).
#[derive(Debug, Clone)]
pub struct Threads {
    workers: usize,
    /// `None` with one worker: everything runs on the calling thread.
    pool: Option<Arc<rayon_core::ThreadPool>>,
}

impl Threads {
    /// A pool of `workers` threads (0 counts as 1; one worker starts no thread). When the
    /// operating system refuses the threads, the executor runs on the calling thread.
    pub fn new(workers: usize) -> Self {
        let workers = workers.max(1);
        let pool = (workers > 1)
            .then(|| {
                rayon_core::ThreadPoolBuilder::new()
                    .num_threads(workers)
                    .thread_name(|i| format!("microbert-{i}"))
                    .build()
                    .ok()
            })
            .flatten()
            .map(Arc::new);
        let workers = if pool.is_some() { workers } else { 1 };
        Self { workers, pool }
    }

    /// As many threads as this process may run at once (`available_parallelism`; 1 when
    /// it cannot be known).
    pub fn available() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, usize::from))
    }
}

impl Threads {
    /// Runs `f` on one of the pool's threads (on the calling thread with one worker), so
    /// the joins inside it hand work over between the pool's own threads: the cheapest
    /// way to run a whole call (an `embed`) on several threads.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }
}

impl Default for Threads {
    fn default() -> Self {
        Self::new(1)
    }
}

impl Parallel for Threads {
    fn workers(&self) -> usize {
        self.workers
    }

    fn join<A, B>(&self, a: A, b: B)
    where
        A: FnOnce() + Send,
        B: FnOnce() + Send,
    {
        match &self.pool {
            Some(pool) => {
                pool.join(a, b);
            }
            None => {
                a();
                b();
            }
        }
    }
}
