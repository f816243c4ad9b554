//! What follows a product's f32 accumulators: the bias, an activation, a residual and the
//! rounding to the output dtype, in one pass over the output rows, split over the threads.
//!
//! The vision encoder's products are large (a SAM-B qkv product at 1024 px is 4096 x 2304), so
//! doing these steps one at a time on one thread, and adding the residual with a separate
//! tensor op, cost about as much as the AMX product itself.

use half::bf16;

use super::gemv_bf16::Acts;
use super::isa::Isa;
use super::pool;
use super::vmath::{self, Activation};

/// Rows per task: enough to amortise a task, few enough to split a small output.
const ROWS_PER_TASK: usize = 64;

/// The steps after the product, in order: `act(acc + bias) + residual`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// f32 bias per output column.
    pub bias: Option<&'a [f32]>,
    /// Activation applied to `acc + bias`.
    pub act: Option<Activation>,
    /// `[m, n]` values added last (f32 or bf16).
    pub residual: Option<Acts<'a>>,
}

/// Applies `e` to the `[m, n]` accumulators in place (f32 output).
pub fn finish_f32(isa: Isa, e: &Epilogue, acc: &mut [f32], n: usize) {
    run(isa, e, acc, n, None);
}

/// Applies `e` and rounds to bf16 into a new `[m, n]` buffer.
pub fn finish_bf16(isa: Isa, e: &Epilogue, acc: &mut [f32], n: usize) -> Vec<bf16> {
    // Written in full by the tasks before its length is set: no zeroing pass of its own.
    let mut out = Vec::<bf16>::with_capacity(acc.len());
    run(isa, e, acc, n, Some(out.as_mut_ptr()));
    // SAFETY: `run` wrote all `acc.len()` values (every row task converts its whole range).
    unsafe { out.set_len(acc.len()) };
    out
}

fn run(isa: Isa, e: &Epilogue, acc: &mut [f32], n: usize, out: Option<*mut bf16>) {
    if n == 0 || acc.is_empty() {
        return;
    }
    assert_eq!(acc.len() % n, 0, "accumulators are not whole rows");
    let m = acc.len() / n;
    if let Some(b) = e.bias {
        assert_eq!(b.len(), n, "bias length");
    }
    if let Some(r) = e.residual {
        assert_eq!(r.len(), acc.len(), "residual shape");
    }
    let tasks = m.div_ceil(ROWS_PER_TASK);
    let acc_ptr = SendPtr(acc.as_mut_ptr() as *mut u8);
    let out_ptr = out.map(|o| SendPtr(o as *mut u8));
    pool::for_each_task(tasks, |t| {
        let r0 = t * ROWS_PER_TASK;
        let rows = ROWS_PER_TASK.min(m - r0);
        let span = r0 * n..(r0 + rows) * n;
        // SAFETY: tasks cover disjoint row ranges of `acc` and `out`, whose lengths were
        // checked above.
        let a = unsafe { std::slice::from_raw_parts_mut((acc_ptr.get() as *mut f32).add(span.start), span.len()) };
        if let Some(b) = e.bias {
            for row in a.chunks_mut(n) {
                row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
            }
        }
        if let Some(act) = e.act {
            vmath::apply(isa, act, a);
        }
        match e.residual {
            Some(Acts::F32(r)) => a.iter_mut().zip(&r[span.clone()]).for_each(|(v, r)| *v += r),
            Some(Acts::Bf16(r)) => a.iter_mut().zip(&r[span.clone()]).for_each(|(v, r)| *v += r.to_f32()),
            None => {}
        }
        if let Some(o) = out_ptr {
            // SAFETY: `out` has room for `acc.len()` values (the caller's contract); tasks
            // write disjoint ranges.
            unsafe { vmath::to_bf16_raw(isa, a, (o.get() as *mut bf16).add(span.start)) };
        }
    });
}

#[derive(Clone, Copy)]
struct SendPtr(*mut u8);
// SAFETY: used only to hand disjoint row ranges to tasks.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    fn get(self) -> *mut u8 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(e: &Epilogue, acc: &[f32], n: usize) -> Vec<f32> {
        let mut v = acc.to_vec();
        for (i, x) in v.iter_mut().enumerate() {
            if let Some(b) = e.bias {
                *x += b[i % n];
            }
            if let Some(act) = e.act {
                let mut one = [*x];
                vmath::apply_scalar(act, &mut one);
                *x = one[0];
            }
            match e.residual {
                Some(Acts::F32(r)) => *x += r[i],
                Some(Acts::Bf16(r)) => *x += r[i].to_f32(),
                None => {}
            }
        }
        v
    }

    #[test]
    fn every_step_matches_the_plain_sequence_on_every_level() {
        // 131 rows: two whole tasks and a short one; 37 columns: no vector multiple.
        let (m, n) = (131, 37);
        let acc: Vec<f32> = (0..m * n).map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0).collect();
        let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.01 - 0.2).collect();
        let res_f: Vec<f32> = (0..m * n).map(|i| ((i * 31) % 17) as f32 * 0.1).collect();
        let res_b: Vec<bf16> = res_f.iter().map(|&v| bf16::from_f32(v)).collect();
        for isa in Isa::supported() {
            for act in [None, Some(Activation::GeluErf), Some(Activation::QuickGelu)] {
                for residual in [None, Some(Acts::F32(&res_f)), Some(Acts::Bf16(&res_b))] {
                    let e = Epilogue { bias: Some(&bias), act, residual };
                    let want = plain(&e, &acc, n);
                    let mut got = acc.clone();
                    finish_f32(isa, &e, &mut got, n);
                    for (g, w) in got.iter().zip(&want) {
                        assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{isa} {act:?}: {g} vs {w}");
                    }
                    let mut acc2 = acc.clone();
                    let b = finish_bf16(isa, &e, &mut acc2, n);
                    for (g, w) in b.iter().zip(&want) {
                        assert!((g.to_f32() - w).abs() <= 1e-2 * w.abs().max(1.0), "{isa} bf16: {g} vs {w}");
                    }
                }
            }
        }
    }
}
