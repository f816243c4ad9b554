//! One entry point for `out = a · wᵀ` over every weight format: bf16 and block-quantized
//! (q8/q4). Up to [`GEMV_MAX_ROWS`] activation rows stream the weight with the GEMV kernels
//! (bf16, or 16-bit quantized activations against the quantized weight); more rows run the
//! packed bf16 GEMM (quantized weights dequantized into its panels). The output is f32;
//! [`super::epilogue`] adds the bias (and more) and narrows.

use std::ops::Range;

use half::bf16;

use super::gemm_bf16::{self, Bf16Rows};
use super::gemv_bf16::{self, Acts, PreparedActs};
use super::isa::Isa;
use super::pool;
use super::qmatmul::{qgemv_rows, QMatRef, QPanels};
use super::quant::QActs;

/// Up to this many activation rows the bf16 product streams the weight with the GEMV kernel;
/// beyond, the packed GEMM runs.
pub const GEMV_MAX_ROWS: usize = 8;
/// Weight rows per GEMV task (a multiple of the kernels' 4-row passes).
const GEMV_ROWS_PER_TASK: usize = 64;

/// A weight `[rows, cols]` in one of the kernel formats, borrowed from its storage.
#[derive(Debug, Clone, Copy)]
pub enum WeightRef<'a> {
    /// Row-major bf16.
    Bf16 {
        /// `[rows, cols]` values.
        data: &'a [bf16],
        /// Rows (N, outputs).
        rows: usize,
        /// Columns (K, inputs).
        cols: usize,
    },
    /// Block-quantized.
    Quant(QMatRef<'a>),
}

impl WeightRef<'_> {
    /// Rows (outputs).
    pub fn rows(&self) -> usize {
        match self {
            WeightRef::Bf16 { rows, .. } => *rows,
            WeightRef::Quant(q) => q.rows,
        }
    }

    /// Columns (inputs).
    pub fn cols(&self) -> usize {
        match self {
            WeightRef::Bf16 { cols, .. } => *cols,
            WeightRef::Quant(q) => q.cols,
        }
    }
}

/// Activations converted once for a weight's format and row count.
#[derive(Debug, Clone)]
pub enum Prepared<'a> {
    /// For bf16 weights, and for quantized weights past [`GEMV_MAX_ROWS`] rows (the GEMM).
    Bf16(PreparedActs<'a>),
    /// 16-bit activations for quantized weights (the GEMV).
    Quant(QActs),
}

impl<'a> Prepared<'a> {
    /// Converts `m` rows of `w.cols()` activations (row-major in `a`).
    pub fn new(isa: Isa, w: &WeightRef, a: Acts<'a>, m: usize) -> Prepared<'a> {
        let k = w.cols();
        assert!(a.len() >= m * k, "activations too short");
        match w {
            WeightRef::Quant(_) if m <= GEMV_MAX_ROWS => Prepared::Quant(match a {
                Acts::F32(v) => QActs::quantize_f32(v, m, k),
                Acts::Bf16(v) => QActs::quantize_bf16(v, m, k),
            }),
            _ => Prepared::Bf16(gemv_bf16::prepare(isa, slice_acts(a, m * k))),
        }
    }
}

impl Prepared<'_> {
    /// The rows `rows` (in that order) as their own prepared activations.
    pub fn gather(&self, rows: &[usize], k: usize) -> Prepared<'static> {
        let pick =
            |v: &[half::bf16]| rows.iter().flat_map(|&r| v[r * k..(r + 1) * k].iter().copied()).collect::<Vec<_>>();
        match self {
            Prepared::Quant(q) => Prepared::Quant(q.gather(rows)),
            Prepared::Bf16(PreparedActs::Bf16(v)) => {
                Prepared::Bf16(PreparedActs::Bf16(std::borrow::Cow::Owned(pick(v))))
            }
            Prepared::Bf16(PreparedActs::F32(v)) => Prepared::Bf16(PreparedActs::F32(std::borrow::Cow::Owned(
                rows.iter().flat_map(|&r| v[r * k..(r + 1) * k].iter().copied()).collect(),
            ))),
        }
    }
}

fn slice_acts(a: Acts<'_>, len: usize) -> Acts<'_> {
    match a {
        Acts::F32(v) => Acts::F32(&v[..len]),
        Acts::Bf16(v) => Acts::Bf16(&v[..len]),
    }
}

/// Weight rows `rows` against all `m` prepared rows, on the calling thread:
/// `out[i * ldc + (n - rows.start)]`.
pub fn rows_kernel(isa: Isa, w: &WeightRef, p: &Prepared, m: usize, rows: Range<usize>, out: &mut [f32], ldc: usize) {
    assert!(rows.end <= w.rows());
    match (w, p) {
        (WeightRef::Bf16 { data, cols, .. }, Prepared::Bf16(a)) => {
            gemv_bf16::gemv_rows(isa, data, *cols, a, m, rows, out, ldc)
        }
        (WeightRef::Quant(q), Prepared::Quant(a)) => qgemv_rows(isa, q, a, m, rows, out, ldc),
        (WeightRef::Quant(q), Prepared::Bf16(a)) => {
            // Many rows against a slice of a quantized weight: dequantize the slice.
            let k = q.cols;
            let mut dq = vec![half::bf16::ZERO; rows.len() * k];
            let panels = QPanels(*q);
            for (i, n) in rows.clone().enumerate() {
                gemm_bf16::PanelSource::row_slice(&panels, n, 0, &mut dq[i * k..(i + 1) * k]);
            }
            gemv_bf16::gemv_rows(isa, &dq, k, a, m, 0..rows.len(), out, ldc);
        }
        (WeightRef::Bf16 { .. }, Prepared::Quant(_)) => panic!("quantized activations for a bf16 weight"),
    }
}

/// `out[i * n + j] = Σ_k a[i, k] w[j, k]` (`out` is `[m, n]` f32), threaded.
pub fn matmul(isa: Isa, w: &WeightRef, a: Acts, m: usize, out: &mut [f32]) {
    let p = Prepared::new(isa, w, a, m);
    matmul_prepared(isa, w, &p, m, out, w.rows());
}

/// [`matmul`] on activations already prepared, into `out[i * ldc + j]`.
pub fn matmul_prepared(isa: Isa, w: &WeightRef, p: &Prepared, m: usize, out: &mut [f32], ldc: usize) {
    let n = w.rows();
    assert!(m == 0 || (m - 1) * ldc + n <= out.len(), "output too small");
    match (w, p) {
        (WeightRef::Bf16 { data, rows, cols }, Prepared::Bf16(a)) if m > GEMV_MAX_ROWS => {
            gemm_bf16::gemm(isa, &Bf16Rows { data, rows: *rows, cols: *cols }, a, m, out, ldc);
        }
        (WeightRef::Quant(q), Prepared::Bf16(a)) => gemm_bf16::gemm(isa, &QPanels(*q), a, m, out, ldc),
        _ => {
            let chunks: Vec<Range<usize>> =
                (0..n).step_by(GEMV_ROWS_PER_TASK).map(|s| s..(s + GEMV_ROWS_PER_TASK).min(n)).collect();
            let ptr = SendPtr(out.as_mut_ptr());
            pool::for_each_task(chunks.len(), |t| {
                let r = chunks[t].clone();
                let mut local = vec![0f32; m * r.len()];
                rows_kernel(isa, w, p, m, r.clone(), &mut local, r.len());
                for i in 0..m {
                    // SAFETY: each task writes only columns `r` of each row, inside the extent
                    // checked above.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            local.as_ptr().add(i * r.len()),
                            ptr.get().add(i * ldc + r.start),
                            r.len(),
                        )
                    };
                }
            });
        }
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint output columns to tasks.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}
