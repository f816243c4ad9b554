//! Work splitting for the CPU kernels: `n` independent tasks taken dynamically by the calling
//! thread and a small pool of worker threads.
//!
//! Decode makes a few hundred kernel calls per token, each worth 20-200 µs, so the cost of
//! waking a thread matters: workers spin on the job counter for a short while after each job
//! ([`SPIN_LIMIT`]) and only then sleep, so back-to-back calls find them awake. The caller
//! always works too; a call made while the pool is busy (another thread's call, or a task
//! calling back in) runs on the calling thread alone. The thread count is the machine's
//! parallelism, or `DOCSEEK_THREADS`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Environment variable that sets the kernels' thread count.
pub const THREADS_ENV: &str = "DOCSEEK_THREADS";
/// How long an idle worker spins before it sleeps.
pub const SPIN_LIMIT: Duration = Duration::from_micros(300);

type Task<'a> = dyn Fn(usize) + Sync + 'a;

struct Slot {
    /// The current job (lifetime erased; valid while `Some`, see `run`).
    job: Option<*const Task<'static>>,
    /// Workers inside the current job.
    active: usize,
}

// SAFETY: the raw job pointer is only dereferenced while the caller keeps it alive (`run`
// clears it and waits for `active == 0` before returning).
unsafe impl Send for Slot {}

struct Shared {
    slot: Mutex<Slot>,
    wake: Condvar,
    epoch: AtomicUsize,
    next: AtomicUsize,
    n: AtomicUsize,
    done: AtomicUsize,
    busy: AtomicBool,
}

struct Pool {
    shared: Arc<Shared>,
    threads: usize,
}

thread_local! {
    static IN_TASK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::env::var(THREADS_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot { job: None, active: 0 }),
            wake: Condvar::new(),
            epoch: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            n: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            busy: AtomicBool::new(false),
        });
        for i in 1..threads {
            let s = shared.clone();
            std::thread::Builder::new()
                .name(format!("docseek-kernel-{i}"))
                .spawn(move || worker(&s))
                .expect("spawning a kernel worker thread");
        }
        Pool { shared, threads }
    })
}

fn worker(s: &Shared) {
    IN_TASK.with(|t| t.set(true));
    let mut seen = 0;
    loop {
        // Spin a while for the next job, then sleep until one is posted.
        let start = Instant::now();
        let mut spins = 0u32;
        while s.epoch.load(Ordering::Acquire) == seen {
            std::hint::spin_loop();
            spins += 1;
            if spins.is_multiple_of(1024) && start.elapsed() > SPIN_LIMIT {
                let mut g = s.slot.lock().expect("pool lock");
                while s.epoch.load(Ordering::Acquire) == seen {
                    g = s.wake.wait(g).expect("pool lock");
                }
                break;
            }
        }
        seen = s.epoch.load(Ordering::Acquire);
        let job = {
            let mut g = s.slot.lock().expect("pool lock");
            match g.job {
                Some(j) => {
                    g.active += 1;
                    j
                }
                None => continue,
            }
        };
        // SAFETY: the caller keeps the job alive until `active` drops back to zero.
        let f = unsafe { &*job };
        work(s, f);
        s.slot.lock().expect("pool lock").active -= 1;
    }
}

fn work(s: &Shared, f: &Task<'_>) {
    let n = s.n.load(Ordering::Acquire);
    loop {
        let i = s.next.fetch_add(1, Ordering::AcqRel);
        if i >= n {
            break;
        }
        f(i);
        s.done.fetch_add(1, Ordering::AcqRel);
    }
}

/// Threads the kernels split work over.
pub fn threads() -> usize {
    pool().threads
}

/// Runs `f(i)` for every `i` in `0..n`, in any order and on any pool thread; returns when all
/// are done.
pub fn for_each_task(n: usize, f: impl Fn(usize) + Sync) {
    let p = pool();
    let nested = IN_TASK.with(|t| t.get());
    if n <= 1 || p.threads <= 1 || nested || p.shared.busy.swap(true, Ordering::AcqRel) {
        (0..n).for_each(f);
        return;
    }
    let s = &p.shared;
    let job: &Task<'_> = &f;
    // SAFETY: the pointer is withdrawn and every worker has left the job before this
    // function returns (below), so it never outlives `f`.
    let erased: *const Task<'static> = unsafe { std::mem::transmute::<&Task<'_>, &Task<'static>>(job) };
    s.next.store(0, Ordering::Release);
    s.done.store(0, Ordering::Release);
    s.n.store(n, Ordering::Release);
    {
        let mut g = s.slot.lock().expect("pool lock");
        g.job = Some(erased);
        s.epoch.fetch_add(1, Ordering::AcqRel);
    }
    s.wake.notify_all();
    IN_TASK.with(|t| t.set(true));
    work(s, job);
    IN_TASK.with(|t| t.set(false));
    while s.done.load(Ordering::Acquire) < n {
        std::hint::spin_loop();
    }
    loop {
        let mut g = s.slot.lock().expect("pool lock");
        g.job = None;
        if g.active == 0 {
            break;
        }
        drop(g);
        std::hint::spin_loop();
    }
    s.busy.store(false, Ordering::Release);
}

/// Splits `len` items into at most `parts` contiguous ranges whose starts are multiples of
/// `align` (the last range takes the rest).
pub fn split_aligned(len: usize, parts: usize, align: usize) -> Vec<std::ops::Range<usize>> {
    let align = align.max(1);
    let units = len.div_ceil(align);
    let parts = parts.clamp(1, units.max(1));
    let mut out = Vec::with_capacity(parts);
    let mut start = 0;
    for p in 0..parts {
        let end_units = units * (p + 1) / parts;
        let end = (end_units * align).min(len);
        if end > start {
            out.push(start..end);
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_also_from_many_callers_and_nested() {
        let hits: Vec<AtomicUsize> = (0..37).map(|_| AtomicUsize::new(0)).collect();
        for_each_task(hits.len(), |i| {
            hits[i].fetch_add(1, Ordering::Relaxed);
        });
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        // Several threads at once, each with nested calls: every task still runs exactly once.
        let total = AtomicUsize::new(0);
        std::thread::scope(|sc| {
            for _ in 0..4 {
                sc.spawn(|| {
                    for _ in 0..50 {
                        for_each_task(8, |_| {
                            for_each_task(3, |_| {
                                total.fetch_add(1, Ordering::Relaxed);
                            });
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 4 * 50 * 8 * 3);
    }

    #[test]
    fn aligned_split_covers_the_range() {
        let r = split_aligned(100, 3, 32);
        assert_eq!(r, vec![0..32, 32..64, 64..100]);
        assert_eq!(split_aligned(5, 4, 8), vec![0..5]);
        assert!(split_aligned(0, 2, 4).is_empty());
    }
}
