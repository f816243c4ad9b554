//! Work splitting for the CPU kernels: `n` independent tasks taken dynamically by the calling
//! thread and the other threads of rayon's global pool (the pool candle uses too, so the
//! kernels never oversubscribe the cores). The calling thread works as well, so a call with
//! one task, or on a one-thread pool, costs no synchronisation at all.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Threads the kernels split work over.
pub fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// Runs `f(i)` for every `i` in `0..n`, in any order and on any pool thread; returns when all
/// are done.
pub fn for_each_task(n: usize, f: impl Fn(usize) + Sync) {
    let workers = threads().min(n);
    if workers <= 1 {
        (0..n).for_each(f);
        return;
    }
    let next = AtomicUsize::new(0);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            break;
        }
        f(i);
    };
    rayon::in_place_scope(|s| {
        for _ in 1..workers {
            s.spawn(|_| work());
        }
        work();
    });
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
    fn every_task_runs_once() {
        let hits: Vec<AtomicUsize> = (0..37).map(|_| AtomicUsize::new(0)).collect();
        for_each_task(hits.len(), |i| {
            hits[i].fetch_add(1, Ordering::Relaxed);
        });
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
    }

    #[test]
    fn aligned_split_covers_the_range() {
        let r = split_aligned(100, 3, 32);
        assert_eq!(r, vec![0..32, 32..64, 64..100]);
        assert_eq!(split_aligned(5, 4, 8), vec![0..5]);
        assert!(split_aligned(0, 2, 4).is_empty());
    }
}
