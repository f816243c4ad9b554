//! Products of block-quantized weights ([`super::quant`]) with 16-bit activations for a few
//! activation rows (decode): `out[m, n] = d_x[m] Σ_b d_w[n, b] Σ_{i in b} q_w[n, i] q_x[m, i]`,
//! the integer sums exact (i32), the scaling and the sum over blocks in f32.
//!
//! [`Isa::Avx512Bf16`] (which includes VNNI) splits each activation into its high (signed) and
//! low (unsigned) byte and runs two `vpdpbusd` per 64 weights: `Σ w q = 256 Σ w hi + Σ w lo`,
//! the first with the stored unsigned weight bytes (their offset removed through the high
//! bytes' sums), the second with the weights made signed; the integer result is exact. The
//! AVX-512 level widens a block's 32 weights to i16 and uses `vpmaddwd`; AVX2 does the same in
//! two halves; the portable level loops. Weights are read
//! row-major in place, four rows per pass sharing the activation loads. Many activation rows
//! (prefill) go through the packed bf16 GEMM instead, fed with dequantized panels
//! ([`QPanels`]).

// The SIMD bodies are `unsafe fn`s with `#[target_feature]`: every line is raw-pointer and
// intrinsic work whose safety contract is the function's own (stated on each), so the lint that
// asks for an inner `unsafe` block on every operation is off for this module.
#![allow(unsafe_op_in_unsafe_fn)]
// Register-tiled loops index several arrays by the same lane or row counter.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

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
        // Whole blocks into f32 (loops the compiler vectorises), then one rounding pass.
        let (b0, b1) = (k0 / QBLOCK, (k0 + out.len()).div_ceil(QBLOCK));
        let mut vals = vec![0f32; (b1 - b0) * QBLOCK];
        for (bi, dst) in (b0..b1).zip(vals.chunks_exact_mut(QBLOCK)) {
            let d = sc[bi].to_f32();
            match w.format {
                QFormat::Q8 => {
                    for (o, q) in dst.iter_mut().zip(&row[bi * QBLOCK..(bi + 1) * QBLOCK]) {
                        *o = (*q as i32 - 128) as f32 * d;
                    }
                }
                QFormat::Q4 => {
                    let bytes = &row[(bi / 2) * QBLOCK..(bi / 2 + 1) * QBLOCK];
                    let sh = if bi.is_multiple_of(2) { 0 } else { 4 };
                    for (o, q) in dst.iter_mut().zip(bytes) {
                        *o = (((q >> sh) & 0x0F) as i32 - 8) as f32 * d;
                    }
                }
            }
        }
        let from = k0 - b0 * QBLOCK;
        super::vmath::to_bf16(Isa::active(), &vals[from..from + out.len()], out);
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
                if isa == Isa::Avx512Bf16 && Isa::Avx512Bf16.is_supported() {
                    // SAFETY: the level is supported; bounds were checked above.
                    unsafe { x86::tile_vnni(w, a, m0, mb, n0, nb, o, ldc) };
                    n0 += nb;
                    continue;
                }
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
                let dot: i32 =
                    (b * QBLOCK..(b + 1) * QBLOCK).map(|j| stored_value(w.format, row, j) * xq[j] as i32).sum();
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
            QFormat::Q8 => _mm512_sub_epi16(
                _mm512_cvtepu8_epi16(_mm256_loadu_si256(row.add(b * QBLOCK) as *const _)),
                _mm512_set1_epi16(128),
            ),
            QFormat::Q4 => {
                let v = _mm256_loadu_si256(row.add((b / 2) * QBLOCK) as *const _);
                let v = if b.is_multiple_of(2) { v } else { _mm256_srli_epi16(v, 4) };
                let u = _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
                _mm512_sub_epi16(_mm512_cvtepu8_epi16(u), _mm512_set1_epi16(8))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    pub unsafe fn tile512(
        w: &QMatRef,
        a: &QActs,
        m0: usize,
        mb: usize,
        n0: usize,
        nb: usize,
        out: &mut [f32],
        ldc: usize,
    ) {
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
    unsafe fn tile512_mn<const MB: usize, const NB: usize>(
        w: &QMatRef,
        a: &QActs,
        m0: usize,
        n0: usize,
        out: &mut [f32],
        ldc: usize,
    ) {
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

    /// The 64 weights of chunk `c` of a row as unsigned bytes `q + offset` (q4 nibbles
    /// unpacked in order).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn chunk_u8(format: QFormat, row: *const u8, c: usize) -> __m512i {
        match format {
            QFormat::Q8 => _mm512_loadu_si512(row.add(c * QCHUNK) as *const _),
            QFormat::Q4 => {
                let v = _mm256_loadu_si256(row.add(c * QBLOCK) as *const _);
                let m = _mm256_set1_epi8(0x0F);
                let lo = _mm256_and_si256(v, m);
                let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
                _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
    pub unsafe fn tile_vnni(
        w: &QMatRef,
        a: &QActs,
        m0: usize,
        mb: usize,
        n0: usize,
        nb: usize,
        out: &mut [f32],
        ldc: usize,
    ) {
        match (mb, nb) {
            (1, 4) => vnni_mn::<1, 4>(w, a, m0, n0, out, ldc),
            (2, 4) => vnni_mn::<2, 4>(w, a, m0, n0, out, ldc),
            (3, 4) => vnni_mn::<3, 4>(w, a, m0, n0, out, ldc),
            (4, 4) => vnni_mn::<4, 4>(w, a, m0, n0, out, ldc),
            _ => {
                for r in 0..nb {
                    let o = &mut out[r..];
                    match mb {
                        1 => vnni_mn::<1, 1>(w, a, m0, n0 + r, o, ldc),
                        2 => vnni_mn::<2, 1>(w, a, m0, n0 + r, o, ldc),
                        3 => vnni_mn::<3, 1>(w, a, m0, n0 + r, o, ldc),
                        _ => vnni_mn::<4, 1>(w, a, m0, n0 + r, o, ldc),
                    }
                }
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
    unsafe fn vnni_mn<const MB: usize, const NB: usize>(
        w: &QMatRef,
        a: &QActs,
        m0: usize,
        n0: usize,
        out: &mut [f32],
        ldc: usize,
    ) {
        let kp = a.kp;
        let bpr = kp / QBLOCK;
        let rb = w.format.row_bytes(w.cols);
        let shift = match w.format {
            QFormat::Q8 => 7,
            QFormat::Q4 => 3,
        };
        let offset = _mm512_set1_epi8(match w.format {
            QFormat::Q8 => -128,
            QFormat::Q4 => 8,
        });
        let wrow: [*const u8; NB] = std::array::from_fn(|r| w.qs.as_ptr().add((n0 + r) * rb));
        let chunk_bytes = rb / (kp / QCHUNK);
        let wsc: [*const u16; NB] = std::array::from_fn(|r| w.scales.as_ptr().add((n0 + r) * bpr) as *const u16);
        let hrow: [*const i8; MB] = std::array::from_fn(|i| a.hi.as_ptr().add((m0 + i) * kp));
        let lrow: [*const u8; MB] = std::array::from_fn(|i| a.lo.as_ptr().add((m0 + i) * kp));
        let srow: [*const i32; MB] = std::array::from_fn(|i| a.hi_sums.as_ptr().add((m0 + i) * kp / 4));
        let mut acc = [[_mm512_setzero_ps(); MB]; NB];
        let mut sw = [_mm512_setzero_ps(); NB];
        // Lanes 0-7 take the even block of a chunk, lanes 8-15 the odd one.
        let base_idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
        for c in 0..kp / QCHUNK {
            let g = c % 8;
            if g == 0 {
                let left = (bpr - c * 2).min(16);
                let mask: __mmask16 = if left == 16 { 0xFFFF } else { ((1u32 << left) - 1) as u16 };
                for r in 0..NB {
                    sw[r] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, wsc[r].add(c * 2) as *const _));
                }
            }
            let idx = _mm512_add_epi32(base_idx, _mm512_set1_epi32(2 * g as i32));
            let mut hi = [_mm512_setzero_si512(); MB];
            let mut lo = [_mm512_setzero_si512(); MB];
            let mut corr = [_mm512_setzero_si512(); MB];
            for i in 0..MB {
                hi[i] = _mm512_loadu_si512(hrow[i].add(c * QCHUNK) as *const _);
                lo[i] = _mm512_loadu_si512(lrow[i].add(c * QCHUNK) as *const _);
                // -offset · Σ hi per 4 values.
                corr[i] = _mm512_sub_epi32(
                    _mm512_setzero_si512(),
                    _mm512_sll_epi32(_mm512_loadu_si512(srow[i].add(c * 16) as *const _), _mm_cvtsi32_si128(shift)),
                );
            }
            for r in 0..NB {
                // The same bytes of the next pass's rows (they follow these rows in memory):
                // decode streams each weight once, and the loads alone leave the core waiting
                // on memory. A prefetch past the end of the weight is harmless.
                _mm_prefetch::<_MM_HINT_T0>(wrow[r].wrapping_add(c * chunk_bytes + NB * rb) as *const i8);
                let wu = chunk_u8(w.format, wrow[r], c);
                let ws = match w.format {
                    QFormat::Q8 => _mm512_xor_si512(wu, offset),
                    QFormat::Q4 => _mm512_sub_epi8(wu, offset),
                };
                let s = _mm512_permutexvar_ps(idx, sw[r]);
                for i in 0..MB {
                    let t = _mm512_dpbusd_epi32(corr[i], wu, hi[i]);
                    let t = _mm512_dpbusd_epi32(_mm512_slli_epi32(t, 8), lo[i], ws);
                    acc[r][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), s, acc[r][i]);
                }
            }
        }
        for r in 0..NB {
            for i in 0..MB {
                out[i * ldc + r] = _mm512_reduce_add_ps(acc[r][i]) * a.scales[m0 + i];
            }
        }
    }

    /// Half a block (16 weights, `h` = 0 or 1) of a row as i16.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn half256(format: QFormat, row: *const u8, b: usize, h: usize) -> __m256i {
        match format {
            QFormat::Q8 => _mm256_sub_epi16(
                _mm256_cvtepu8_epi16(_mm_loadu_si128(row.add(b * QBLOCK + 16 * h) as *const _)),
                _mm256_set1_epi16(128),
            ),
            QFormat::Q4 => {
                let v = _mm_loadu_si128(row.add((b / 2) * QBLOCK + 16 * h) as *const _);
                let v = if b.is_multiple_of(2) { v } else { _mm_srli_epi16(v, 4) };
                let u = _mm_and_si128(v, _mm_set1_epi8(0x0F));
                _mm256_sub_epi16(_mm256_cvtepu8_epi16(u), _mm256_set1_epi16(8))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn tile256(
        w: &QMatRef,
        a: &QActs,
        m0: usize,
        mb: usize,
        n0: usize,
        nb: usize,
        out: &mut [f32],
        ldc: usize,
    ) {
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
                    let lo = _mm256_madd_epi16(
                        half256(w.format, row, b, 0),
                        _mm256_loadu_si256(x.add(b * QBLOCK) as *const _),
                    );
                    let hi = _mm256_madd_epi16(
                        half256(w.format, row, b, 1),
                        _mm256_loadu_si256(x.add(b * QBLOCK + 16) as *const _),
                    );
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
