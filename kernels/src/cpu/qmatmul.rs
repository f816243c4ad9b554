//! Products of block-quantized weights ([`super::quant`]) with quantized activations:
//! `out[m, n] = Σ_blocks d_w[n, b] d_x[m, b] Σ_{i in b} q_w[n, i] q_x[m, i]`, the integer sums
//! exact (i32), the scaling and the sum over blocks in f32.
//!
//! [`Isa::Avx512Bf16`] uses `vpdpbusd` (stored unsigned weight bytes x signed activations, the
//! offset removed through `corr`); [`Isa::Avx512`] and [`Isa::Avx2`] use `vpmaddubsw` +
//! `vpmaddwd` (q8 by the sign trick, so no product saturates). Weights are read row-major in
//! place; a task is a block of weight rows x a block of activation rows, so one weight block
//! stays in cache while it meets every activation row of the task.

use std::ops::Range;

use half::f16;

use super::isa::Isa;
use super::pool;
use super::quant::{padded_k, QActs, QFormat, QBLOCK, QCHUNK};

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
    fn check(&self) {
        let kp = padded_k(self.cols);
        assert!(self.qs.len() >= self.rows * self.format.row_bytes(self.cols), "q values too short");
        assert!(self.scales.len() >= self.rows * kp / QBLOCK, "q scales too short");
    }
}

/// Weight rows per task.
const NCQ: usize = 64;
/// Activation rows per task.
const MCQ: usize = 64;
/// Activation rows per micro-tile.
const MBQ: usize = 4;
/// Weight rows per micro-tile.
const NBQ: usize = 4;

/// `out[m * ldc + n] = Σ w[n, :] · a[m, :]` for all rows, threaded.
pub fn qmatmul(isa: Isa, w: &QMatRef, a: &QActs, out: &mut [f32], ldc: usize) {
    w.check();
    assert_eq!(a.kp, padded_k(w.cols), "activations quantized for another width");
    let (m, n) = (a.m, w.rows);
    assert!(ldc >= n && (m == 0 || (m - 1) * ldc + n <= out.len()), "output too small");
    let mt = m.div_ceil(MCQ).max(1);
    let nt = n.div_ceil(NCQ);
    let out_ptr = SendPtr(out.as_mut_ptr());
    pool::for_each_task(mt * nt, |t| {
        let (mi, ni) = (t % mt, t / mt);
        let ms = mi * MCQ..((mi + 1) * MCQ).min(m);
        let ns = ni * NCQ..((ni + 1) * NCQ).min(n);
        // SAFETY: tasks write disjoint (row, column) blocks of `out`, checked above.
        unsafe { qmatmul_block(isa, w, a, ms.clone(), ns.clone(), out_ptr.get().add(ms.start * ldc + ns.start), ldc) };
    });
}

/// Rows `ns` of `w` against activation rows `ms`, written at
/// `out[(m - ms.start) * ldc + (n - ns.start)]`, on the calling thread.
///
/// # Safety
/// `out` must be valid for writes at every such index.
pub unsafe fn qmatmul_block(isa: Isa, w: &QMatRef, a: &QActs, ms: Range<usize>, ns: Range<usize>, out: *mut f32, ldc: usize) {
    let mut m0 = ms.start;
    while m0 < ms.end {
        let mb = (ms.end - m0).min(MBQ);
        let mut n0 = ns.start;
        while n0 < ns.end {
            let nb = (ns.end - n0).min(NBQ);
            let c = out.add((m0 - ms.start) * ldc + (n0 - ns.start));
            #[cfg(target_arch = "x86_64")]
            {
                let done = match isa {
                    Isa::Avx512Bf16 if Isa::Avx512Bf16.is_supported() => {
                        x86::tile512::<true>(w, a, m0, mb, n0, nb, c, ldc);
                        true
                    }
                    Isa::Avx512 | Isa::Avx512Bf16 if Isa::Avx512.is_supported() => {
                        x86::tile512::<false>(w, a, m0, mb, n0, nb, c, ldc);
                        true
                    }
                    Isa::Avx2 if Isa::Avx2.is_supported() => {
                        x86::tile256(w, a, m0, mb, n0, nb, c, ldc);
                        true
                    }
                    _ => false,
                };
                if done {
                    n0 += nb;
                    continue;
                }
            }
            let _ = isa;
            tile_portable(w, a, m0, mb, n0, nb, c, ldc);
            n0 += nb;
        }
        m0 += mb;
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint output blocks to tasks.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn tile_portable(w: &QMatRef, a: &QActs, m0: usize, mb: usize, n0: usize, nb: usize, c: *mut f32, ldc: usize) {
    let kp = a.kp;
    let rb = w.format.row_bytes(w.cols);
    let off = w.format.offset();
    for r in 0..nb {
        let n = n0 + r;
        let wq = &w.qs[n * rb..(n + 1) * rb];
        let ws = &w.scales[n * kp / QBLOCK..(n + 1) * kp / QBLOCK];
        for i in 0..mb {
            let m = m0 + i;
            let xq = &a.qs[m * kp..(m + 1) * kp];
            let xs = &a.scales[m * kp / QBLOCK..(m + 1) * kp / QBLOCK];
            let mut acc = 0f32;
            for b in 0..kp / QBLOCK {
                let mut s = 0i32;
                for j in b * QBLOCK..(b + 1) * QBLOCK {
                    let u = match w.format {
                        QFormat::Q8 => wq[j] as i32,
                        QFormat::Q4 => {
                            let byte = wq[(j / QCHUNK) * QBLOCK + j % QBLOCK];
                            (if j % QCHUNK < QBLOCK { byte & 0x0F } else { byte >> 4 }) as i32
                        }
                    };
                    s += (u - off) * xq[j] as i32;
                }
                acc += s as f32 * (ws[b].to_f32() * xs[b]);
            }
            *c.add(i * ldc + r) = acc;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{QActs, QFormat, QMatRef, MBQ, NBQ, QBLOCK, QCHUNK};

    /// The i32 lanes (4 values each) of one 64-value chunk, `vpdpbusd` from `corr` (stored
    /// unsigned weight bytes x signed activations).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn chunk_dot_vnni(_format: QFormat, w: __m512i, x: __m512i, corr: __m512i) -> __m512i {
        _mm512_dpbusd_epi32(corr, w, x)
    }

    /// Same without VNNI: `vpmaddubsw` + `vpmaddwd`; q8 by moving the weight's sign onto the
    /// activation (|w| <= 127, so no pair sum saturates) and then needs no correction; q4
    /// nibbles are small enough as they are.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn chunk_dot_bw(format: QFormat, w: __m512i, x: __m512i, corr: __m512i) -> __m512i {
        let ones = _mm512_set1_epi16(1);
        match format {
            QFormat::Q8 => {
                let ws = _mm512_xor_si512(w, _mm512_set1_epi8(-128));
                let neg = _mm512_movepi8_mask(ws);
                let mag = _mm512_abs_epi8(ws);
                let xs = _mm512_mask_sub_epi8(x, neg, _mm512_setzero_si512(), x);
                _mm512_madd_epi16(_mm512_maddubs_epi16(mag, xs), ones)
            }
            QFormat::Q4 => _mm512_add_epi32(corr, _mm512_madd_epi16(_mm512_maddubs_epi16(w, x), ones)),
        }
    }

    /// 64 stored values of a weight row at chunk `c` as bytes (q4 nibbles unpacked).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn load_w(format: QFormat, row: *const u8, c: usize) -> __m512i {
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

    /// One micro-tile on an AVX-512 level: `VNNI` picks the dot product.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn tile512<const VNNI: bool>(
        w: &QMatRef,
        a: &QActs,
        m0: usize,
        mb: usize,
        n0: usize,
        nb: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        macro_rules! go {
            ($mb:literal, $nb:literal, $n:expr, $c:expr) => {
                if VNNI {
                    tile_vnni::<$mb, $nb>(w, a, m0, $n, $c, ldc)
                } else {
                    tile_bw::<$mb, $nb>(w, a, m0, $n, $c, ldc)
                }
            };
        }
        match (mb, nb) {
            (4, 4) => go!(4, 4, n0, c),
            (3, 4) => go!(3, 4, n0, c),
            (2, 4) => go!(2, 4, n0, c),
            (1, 4) => go!(1, 4, n0, c),
            _ => {
                // Edge tiles one weight row at a time.
                for r in 0..nb {
                    match mb {
                        1 => go!(1, 1, n0 + r, c.add(r)),
                        2 => go!(2, 1, n0 + r, c.add(r)),
                        3 => go!(3, 1, n0 + r, c.add(r)),
                        _ => go!(4, 1, n0 + r, c.add(r)),
                    }
                }
            }
        }
        let _ = (MBQ, NBQ);
    }

    /// The micro-tile body, compiled once per dot product so the non-VNNI copy can never
    /// contain a VNNI instruction.
    macro_rules! tile_body {
        ($name:ident, $features:literal, $dot:ident) => {
            #[target_feature(enable = $features)]
            unsafe fn $name<const MB: usize, const NB: usize>(
                w: &QMatRef,
                a: &QActs,
                m0: usize,
                n0: usize,
                c: *mut f32,
                ldc: usize,
            ) {
                let kp = a.kp;
                let chunks = kp / QCHUNK;
                let bpr = kp / QBLOCK;
                let rb = w.format.row_bytes(w.cols);
                let wrow: [*const u8; NB] = std::array::from_fn(|r| w.qs.as_ptr().add((n0 + r) * rb));
                let wsc: [*const u16; NB] =
                    std::array::from_fn(|r| w.scales.as_ptr().add((n0 + r) * bpr) as *const u16);
                let xrow: [*const i8; MB] = std::array::from_fn(|i| a.qs.as_ptr().add((m0 + i) * kp));
                let xsc: [*const f32; MB] = std::array::from_fn(|i| a.scales.as_ptr().add((m0 + i) * bpr));
                let xcorr: [*const i32; MB] = std::array::from_fn(|i| a.corr.as_ptr().add((m0 + i) * kp / 4));
                let mut acc = [[_mm512_setzero_ps(); MB]; NB];
                // Lanes 0-7 take the even block of a chunk, lanes 8-15 the odd one.
                let base_idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
                let mut sw = [_mm512_setzero_ps(); NB];
                let mut sx = [_mm512_setzero_ps(); MB];
                for ch in 0..chunks {
                    let g = ch % 8;
                    if g == 0 {
                        // Scales of the next 8 chunks (16 blocks).
                        let left = (bpr - ch * 2).min(16);
                        let mask: __mmask16 = if left == 16 { 0xFFFF } else { ((1u32 << left) - 1) as u16 };
                        for r in 0..NB {
                            sw[r] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, wsc[r].add(ch * 2) as *const _));
                        }
                        for i in 0..MB {
                            sx[i] = _mm512_maskz_loadu_ps(mask, xsc[i].add(ch * 2));
                        }
                    }
                    let idx = _mm512_add_epi32(base_idx, _mm512_set1_epi32(2 * g as i32));
                    let mut wv = [_mm512_setzero_si512(); NB];
                    let mut swv = [_mm512_setzero_ps(); NB];
                    for r in 0..NB {
                        wv[r] = load_w(w.format, wrow[r], ch);
                        swv[r] = _mm512_permutexvar_ps(idx, sw[r]);
                    }
                    for i in 0..MB {
                        let x = _mm512_loadu_si512(xrow[i].add(ch * QCHUNK) as *const _);
                        let corr = _mm512_loadu_si512(xcorr[i].add(ch * 16) as *const _);
                        let sxv = _mm512_permutexvar_ps(idx, sx[i]);
                        for r in 0..NB {
                            let d = $dot(w.format, wv[r], x, corr);
                            acc[r][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(swv[r], sxv), acc[r][i]);
                        }
                    }
                }
                for r in 0..NB {
                    for i in 0..MB {
                        *c.add(i * ldc + r) = _mm512_reduce_add_ps(acc[r][i]);
                    }
                }
            }
        };
    }

    tile_body!(tile_vnni, "avx512f,avx512bw,avx512vl,avx512vnni,f16c", chunk_dot_vnni);
    tile_body!(tile_bw, "avx512f,avx512bw,avx512vl,f16c", chunk_dot_bw);

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum256(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn tile256(w: &QMatRef, a: &QActs, m0: usize, mb: usize, n0: usize, nb: usize, c: *mut f32, ldc: usize) {
        let kp = a.kp;
        let bpr = kp / QBLOCK;
        let rb = w.format.row_bytes(w.cols);
        let ones = _mm256_set1_epi16(1);
        let nib = _mm256_set1_epi8(0x0F);
        for r in 0..nb {
            let n = n0 + r;
            let wrow = w.qs.as_ptr().add(n * rb);
            let wsc = w.scales.as_ptr().add(n * bpr) as *const u16;
            for i in 0..mb {
                let m = m0 + i;
                let xrow = a.qs.as_ptr().add(m * kp);
                let xsc = a.scales.as_ptr().add(m * bpr);
                let xcorr = a.corr.as_ptr().add(m * kp / 4);
                let mut acc = _mm256_setzero_ps();
                let mut scales = [0f32; 8];
                for b in 0..bpr {
                    if b % 8 == 0 {
                        let mut h = [0u16; 8];
                        let left = (bpr - b).min(8);
                        std::ptr::copy_nonoverlapping(wsc.add(b), h.as_mut_ptr(), left);
                        let s = _mm256_mul_ps(
                            _mm256_cvtph_ps(_mm_loadu_si128(h.as_ptr() as *const _)),
                            _mm256_loadu_ps({
                                let mut xs = [0f32; 8];
                                std::ptr::copy_nonoverlapping(xsc.add(b), xs.as_mut_ptr(), left);
                                xs
                            }
                            .as_ptr()),
                        );
                        _mm256_storeu_ps(scales.as_mut_ptr(), s);
                    }
                    let x = _mm256_loadu_si256(xrow.add(b * QBLOCK) as *const _);
                    let d = match w.format {
                        QFormat::Q8 => {
                            let ws = _mm256_xor_si256(_mm256_loadu_si256(wrow.add(b * QBLOCK) as *const _), _mm256_set1_epi8(-128));
                            let p = _mm256_maddubs_epi16(_mm256_sign_epi8(ws, ws), _mm256_sign_epi8(x, ws));
                            _mm256_madd_epi16(p, ones)
                        }
                        QFormat::Q4 => {
                            let v = _mm256_loadu_si256(wrow.add((b / 2) * QBLOCK) as *const _);
                            let u = if b % 2 == 0 {
                                _mm256_and_si256(v, nib)
                            } else {
                                _mm256_and_si256(_mm256_srli_epi16(v, 4), nib)
                            };
                            let corr = _mm256_loadu_si256(xcorr.add(b * 8) as *const _);
                            _mm256_add_epi32(corr, _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), ones))
                        }
                    };
                    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(scales[b % 8]), acc);
                }
                *c.add(i * ldc + r) = hsum256(acc);
            }
        }
    }
}
