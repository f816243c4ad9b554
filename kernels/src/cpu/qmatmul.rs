//! Products of block-quantized weights ([`super::quant`]) with 16-bit activations for a few
//! activation rows (decode): `out[m, n] = d_x[m] Σ_b d_w[n, b] Σ_{i in b} q_w[n, i] q_x[m, i]`,
//! the integer sums exact (i32), the scaling and the sum over blocks in f32.
//!
//! The AVX-512 levels widen a block's 32 weights to i16 and use `vpmaddwd` against the i16
//! activations; AVX2 does the same in two halves; the portable level loops. Weights are read
//! row-major in place, four rows per pass sharing the activation loads. Many activation rows
//! (prefill) go through the packed bf16 GEMM instead, fed with dequantized panels
//! ([`QPanels`]).

use std::ops::Range;

use half::{bf16, f16};

use super::gemm_bf16::PanelSource;
use super::isa::Isa;
use super::quant::{padded_k, stored_value, QActs, QFormat, QBLOCK, QCHUNK};

/// A block-quantized weight `[rows, cols]` borrowed from its storage.
#[derive(Debug, Clone, Copy)]
pub struct QMatRef<'a> {
    /// Format of `qs`.
    pub format: QFormat,
    /// `[rows, format.row_bytes(cols)]` stored values.
    pub qs: &'a [u8],
    /// `[rows, padded_k(cols) / 32]` scales.
    pub scales: &'a [f16],
    /// Rows (N).
    pub rows: usize,
    /// Columns (K, unpadded).
    pub cols: usize,
}

impl QMatRef<'_> {
    /// Panics unless the buffers hold `rows` rows.
    pub fn check(&self) {
        let kp = padded_k(self.cols);
        assert!(self.qs.len() >= self.rows * self.format.row_bytes(self.cols), "q values too short");
        assert!(self.scales.len() >= self.rows * kp / QBLOCK, "q scales too short");
    }
}

/// A quantized weight read as bf16 panels by the packed GEMM (values `q · d` rounded to bf16).
pub struct QPanels<'a>(pub QMatRef<'a>);

impl PanelSource for QPanels<'_> {
    fn rows(&self) -> usize {
        self.0.rows
    }
    fn cols(&self) -> usize {
        self.0.cols
    }
    fn row_slice(&self, n: usize, k0: usize, out: &mut [bf16]) {
        let w = &self.0;
        let rb = w.format.row_bytes(w.cols);
        let bp = padded_k(w.cols) / QBLOCK;
        let row = &w.qs[n * rb..(n + 1) * rb];
        let sc = &w.scales[n * bp..(n + 1) * bp];
        for (j, o) in out.iter_mut().enumerate() {
            let i = k0 + j;
            *o = bf16::from_f32(stored_value(w.format, row, i) as f32 * sc[i / QBLOCK].to_f32());
        }
    }
}

/// Weight rows `ns` against the first `m` activation rows, on the calling thread:
/// `out[i * ldc + (n - ns.start)]`.
pub fn qgemv_rows(isa: Isa, w: &QMatRef, a: &QActs, m: usize, ns: Range<usize>, out: &mut [f32], ldc: usize) {
    w.check();
    assert_eq!(a.kp, padded_k(w.cols), "activations quantized for another width");
    assert!(m <= a.m && ns.end <= w.rows);
    assert!(m == 0 || (m - 1) * ldc + ns.len() <= out.len(), "output too small");
    let mut m0 = 0;
    while m0 < m {
        let mb = (m - m0).min(4);
        let mut n0 = ns.start;
        while n0 < ns.end {
            let nb = (ns.end - n0).min(4);
            let o = &mut out[m0 * ldc + (n0 - ns.start)..];
            #[cfg(target_arch = "x86_64")]
            {
                if isa >= Isa::Avx512 && Isa::Avx512.is_supported() {
                    // SAFETY: the level is supported; bounds were checked above.
                    unsafe { x86::tile512(w, a, m0, mb, n0, nb, o, ldc) };
                    n0 += nb;
                    continue;
                }
                if isa == Isa::Avx2 && Isa::Avx2.is_supported() {
                    // SAFETY: as above.
                    unsafe { x86::tile256(w, a, m0, mb, n0, nb, o, ldc) };
                    n0 += nb;
                    continue;
                }
            }
            let _ = isa;
            tile_portable(w, a, m0, mb, n0, nb, o, ldc);
            n0 += nb;
        }
        m0 += mb;
    }
}

#[allow(clippy::too_many_arguments)]
fn tile_portable(w: &QMatRef, a: &QActs, m0: usize, mb: usize, n0: usize, nb: usize, out: &mut [f32], ldc: usize) {
    let kp = a.kp;
    let rb = w.format.row_bytes(w.cols);
    for r in 0..nb {
        let n = n0 + r;
        let row = &w.qs[n * rb..(n + 1) * rb];
        let ws = &w.scales[n * kp / QBLOCK..(n + 1) * kp / QBLOCK];
        for i in 0..mb {
            let xq = &a.qs[(m0 + i) * kp..(m0 + i + 1) * kp];
            let mut acc = 0f32;
            for (b, s) in ws.iter().enumerate() {
                let dot: i32 = (b * QBLOCK..(b + 1) * QBLOCK).map(|j| stored_value(w.format, row, j) * xq[j] as i32).sum();
                acc += dot as f32 * s.to_f32();
            }
            out[i * ldc + r] = acc * a.scales[m0 + i];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{QActs, QFormat, QMatRef, QBLOCK, QCHUNK};

    /// The 32 weights of block `b` of a row as i16.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn block512(format: QFormat, row: *const u8, b: usize) -> __m512i {
        match format {
            QFormat::Q8 => _mm512_sub_epi16(_mm512_cvtepu8_epi16(_mm256_loadu_si256(row.add(b * QBLOCK) as *const _)), _mm512_set1_epi16(128)),
            QFormat::Q4 => {
                let v = _mm256_loadu_si256(row.add((b / 2) * QBLOCK) as *const _);
                let v = if b % 2 == 0 { v } else { _mm256_srli_epi16(v, 4) };
                let u = _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
                _mm512_sub_epi16(_mm512_cvtepu8_epi16(u), _mm512_set1_epi16(8))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    pub unsafe fn tile512(w: &QMatRef, a: &QActs, m0: usize, mb: usize, n0: usize, nb: usize, out: &mut [f32], ldc: usize) {
        match (mb, nb) {
            (1, 4) => tile512_mn::<1, 4>(w, a, m0, n0, out, ldc),
            (2, 4) => tile512_mn::<2, 4>(w, a, m0, n0, out, ldc),
            (3, 4) => tile512_mn::<3, 4>(w, a, m0, n0, out, ldc),
            (4, 4) => tile512_mn::<4, 4>(w, a, m0, n0, out, ldc),
            _ => {
                for r in 0..nb {
                    let o = &mut out[r..];
                    match mb {
                        1 => tile512_mn::<1, 1>(w, a, m0, n0 + r, o, ldc),
                        2 => tile512_mn::<2, 1>(w, a, m0, n0 + r, o, ldc),
                        3 => tile512_mn::<3, 1>(w, a, m0, n0 + r, o, ldc),
                        _ => tile512_mn::<4, 1>(w, a, m0, n0 + r, o, ldc),
                    }
                }
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    unsafe fn tile512_mn<const MB: usize, const NB: usize>(w: &QMatRef, a: &QActs, m0: usize, n0: usize, out: &mut [f32], ldc: usize) {
        let kp = a.kp;
        let bpr = kp / QBLOCK;
        let rb = w.format.row_bytes(w.cols);
        let wrow: [*const u8; NB] = std::array::from_fn(|r| w.qs.as_ptr().add((n0 + r) * rb));
        let wsc: [*const u16; NB] = std::array::from_fn(|r| w.scales.as_ptr().add((n0 + r) * bpr) as *const u16);
        let xrow: [*const i16; MB] = std::array::from_fn(|i| a.qs.as_ptr().add((m0 + i) * kp));
        let mut acc = [[_mm512_setzero_ps(); MB]; NB];
        let mut sw = [_mm512_setzero_ps(); NB];
        for b in 0..bpr {
            let g = b % 16;
            if g == 0 {
                let left = (bpr - b).min(16);
                let mask: __mmask16 = if left == 16 { 0xFFFF } else { ((1u32 << left) - 1) as u16 };
                for r in 0..NB {
                    sw[r] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, wsc[r].add(b) as *const _));
                }
            }
            let lane = _mm512_set1_epi32(g as i32);
            let mut x = [_mm512_setzero_si512(); MB];
            for i in 0..MB {
                x[i] = _mm512_loadu_si512(xrow[i].add(b * QBLOCK) as *const _);
            }
            for r in 0..NB {
                let wv = block512(w.format, wrow[r], b);
                let s = _mm512_permutexvar_ps(lane, sw[r]);
                for i in 0..MB {
                    let d = _mm512_madd_epi16(wv, x[i]);
                    acc[r][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), s, acc[r][i]);
                }
            }
        }
        for r in 0..NB {
            for i in 0..MB {
                out[i * ldc + r] = _mm512_reduce_add_ps(acc[r][i]) * a.scales[m0 + i];
            }
        }
        let _ = QCHUNK;
    }

    /// Half a block (16 weights, `h` = 0 or 1) of a row as i16.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn half256(format: QFormat, row: *const u8, b: usize, h: usize) -> __m256i {
        match format {
            QFormat::Q8 => _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128(row.add(b * QBLOCK + 16 * h) as *const _)), _mm256_set1_epi16(128)),
            QFormat::Q4 => {
                let v = _mm_loadu_si128(row.add((b / 2) * QBLOCK + 16 * h) as *const _);
                let v = if b % 2 == 0 { v } else { _mm_srli_epi16(v, 4) };
                let u = _mm_and_si128(v, _mm_set1_epi8(0x0F));
                _mm256_sub_epi16(_mm256_cvtepu8_epi16(u), _mm256_set1_epi16(8))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn tile256(w: &QMatRef, a: &QActs, m0: usize, mb: usize, n0: usize, nb: usize, out: &mut [f32], ldc: usize) {
        let kp = a.kp;
        let bpr = kp / QBLOCK;
        let rb = w.format.row_bytes(w.cols);
        for r in 0..nb {
            let row = w.qs.as_ptr().add((n0 + r) * rb);
            let sc = &w.scales[(n0 + r) * bpr..(n0 + r + 1) * bpr];
            for i in 0..mb {
                let x = a.qs.as_ptr().add((m0 + i) * kp);
                let mut acc = _mm256_setzero_ps();
                for (b, s) in sc.iter().enumerate() {
                    let lo = _mm256_madd_epi16(half256(w.format, row, b, 0), _mm256_loadu_si256(x.add(b * QBLOCK) as *const _));
                    let hi = _mm256_madd_epi16(half256(w.format, row, b, 1), _mm256_loadu_si256(x.add(b * QBLOCK + 16) as *const _));
                    let d = _mm256_cvtepi32_ps(_mm256_add_epi32(lo, hi));
                    acc = _mm256_fmadd_ps(d, _mm256_set1_ps(s.to_f32()), acc);
                }
                let h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
                let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
                let h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
                out[i * ldc + r] = _mm_cvtss_f32(h) * a.scales[m0 + i];
            }
        }
    }
}
