//! bf16-weight products for a few activation rows (decode): `out[m, n] = Σ_k a[m, k] w[n, k]`
//! over a row range of the row-major weight `w` `[N, K]`, read straight from its storage (no
//! packing, so a memory-mapped checkpoint is used in place).
//!
//! Semantics on every level: activations rounded to bf16, exact bf16 x bf16 products, f32
//! accumulation (the order of the additions differs between levels). [`Isa::Avx512Bf16`] takes
//! bf16 activations and uses `vdpbf16ps`; the other levels take the bf16-rounded activations
//! widened to f32 (see [`prepare`]) and widen the weights with shifts.

// The SIMD bodies are `unsafe fn`s with `#[target_feature]`: every line is raw-pointer and
// intrinsic work whose safety contract is the function's own (stated on each), so the lint that
// asks for an inner `unsafe` block on every operation is off for this module.
#![allow(unsafe_op_in_unsafe_fn)]
// Register-tiled loops index several arrays by the same lane or row counter.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use std::borrow::Cow;

use half::bf16;

use super::isa::Isa;

/// Most activation rows one pass of the kernel carries (more rows take several passes; past
/// [`super::matmul::GEMV_MAX_ROWS`] the packed GEMM is used instead).
pub const MAX_ROWS: usize = 4;

/// Activations in the form a level's kernel reads: `[m, k]` row-major (borrowed when the
/// input already has that form).
#[derive(Debug, Clone)]
pub enum PreparedActs<'a> {
    /// bf16 values ([`Isa::Avx512Bf16`]).
    Bf16(Cow<'a, [bf16]>),
    /// bf16-rounded values widened to f32 (the other levels).
    F32(Cow<'a, [f32]>),
}

/// Input activations of a product.
#[derive(Debug, Clone, Copy)]
pub enum Acts<'a> {
    /// f32 values (rounded to bf16 by [`prepare`]).
    F32(&'a [f32]),
    /// bf16 values.
    Bf16(&'a [bf16]),
}

impl Acts<'_> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Acts::F32(v) => v.len(),
            Acts::Bf16(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i` as f32 (unrounded).
    pub fn get(&self, i: usize) -> f32 {
        match self {
            Acts::F32(v) => v[i],
            Acts::Bf16(v) => v[i].to_f32(),
        }
    }
}

/// Converts activations into the form `isa`'s bf16 kernels read (bf16 input on a native
/// level is used in place).
pub fn prepare(isa: Isa, a: Acts<'_>) -> PreparedActs<'_> {
    match (isa.has_native_bf16(), a) {
        (true, Acts::Bf16(v)) => PreparedActs::Bf16(Cow::Borrowed(v)),
        (true, Acts::F32(v)) => PreparedActs::Bf16(Cow::Owned(v.iter().map(|&x| bf16::from_f32(x)).collect())),
        (false, Acts::Bf16(v)) => PreparedActs::F32(Cow::Owned(v.iter().map(|x| x.to_f32()).collect())),
        (false, Acts::F32(v)) => PreparedActs::F32(Cow::Owned(v.iter().map(|&x| bf16::from_f32(x).to_f32()).collect())),
    }
}

/// `out[m * ldc + (n - rows.start)] = Σ_k a[m, k] w[n, k]` for `n` in `rows`, `m < m_rows`.
///
/// `w` is `[N, k]` row-major, `a` `[m_rows, k]` prepared for `isa`.
pub fn gemv_rows(
    isa: Isa,
    w: &[bf16],
    k: usize,
    a: &PreparedActs,
    m_rows: usize,
    rows: std::ops::Range<usize>,
    out: &mut [f32],
    ldc: usize,
) {
    assert!(rows.end * k <= w.len(), "weight rows out of range");
    assert!(m_rows == 0 || (m_rows - 1) * ldc + rows.len() <= out.len(), "output too small");
    let mut m0 = 0;
    while m0 < m_rows {
        let mb = (m_rows - m0).min(MAX_ROWS);
        let o = &mut out[m0 * ldc..];
        match a {
            PreparedActs::Bf16(v) => {
                assert!(v.len() >= (m0 + mb) * k);
                let av = &v[m0 * k..];
                #[cfg(target_arch = "x86_64")]
                if isa == Isa::Avx512Bf16 && Isa::Avx512Bf16.is_supported() {
                    // SAFETY: the level is supported; bounds were checked above.
                    unsafe { x86::gemv_dpbf16(w, k, av, mb, rows.clone(), o, ldc) };
                    m0 += mb;
                    continue;
                }
                let widened: Vec<f32> = av[..mb * k].iter().map(|x| x.to_f32()).collect();
                portable(w, k, &widened, mb, rows.clone(), o, ldc);
            }
            PreparedActs::F32(v) => {
                assert!(v.len() >= (m0 + mb) * k);
                let av = &v[m0 * k..];
                #[cfg(target_arch = "x86_64")]
                match isa {
                    Isa::Avx512 | Isa::Avx512Bf16 if Isa::Avx512.is_supported() => {
                        // SAFETY: as above.
                        unsafe { x86::gemv_avx512(w, k, av, mb, rows.clone(), o, ldc) };
                        m0 += mb;
                        continue;
                    }
                    Isa::Avx2 if Isa::Avx2.is_supported() => {
                        // SAFETY: as above.
                        unsafe { x86::gemv_avx2(w, k, av, mb, rows.clone(), o, ldc) };
                        m0 += mb;
                        continue;
                    }
                    _ => {}
                }
                portable(w, k, av, mb, rows.clone(), o, ldc);
            }
        }
        m0 += mb;
    }
}

/// Plain loops (any target).
fn portable(w: &[bf16], k: usize, a: &[f32], mb: usize, rows: std::ops::Range<usize>, out: &mut [f32], ldc: usize) {
    for n in rows.clone() {
        let wr = &w[n * k..(n + 1) * k];
        for m in 0..mb {
            let ar = &a[m * k..(m + 1) * k];
            let mut acc = [0f32; 8];
            let mut i = 0;
            while i + 8 <= k {
                for l in 0..8 {
                    acc[l] += wr[i + l].to_f32() * ar[i + l];
                }
                i += 8;
            }
            let mut s: f32 = acc.iter().sum();
            while i < k {
                s += wr[i].to_f32() * ar[i];
                i += 1;
            }
            out[m * ldc + n - rows.start] = s;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use half::bf16;

    /// Weight rows per pass.
    const NB: usize = 4;

    macro_rules! dispatch_mb {
        ($f:ident, $mb:expr, $($arg:expr),*) => {
            match $mb {
                1 => $f::<1>($($arg),*),
                2 => $f::<2>($($arg),*),
                3 => $f::<3>($($arg),*),
                _ => $f::<4>($($arg),*),
            }
        };
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub unsafe fn gemv_dpbf16(
        w: &[bf16],
        k: usize,
        a: &[bf16],
        mb: usize,
        rows: Range<usize>,
        out: &mut [f32],
        ldc: usize,
    ) {
        dispatch_mb!(dpbf16_mb, mb, w, k, a, rows, out, ldc)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn dpbf16_mb<const MB: usize>(
        w: &[bf16],
        k: usize,
        a: &[bf16],
        rows: Range<usize>,
        out: &mut [f32],
        ldc: usize,
    ) {
        let wp = w.as_ptr() as *const u16;
        let ap = a.as_ptr() as *const u16;
        let full = k / 32;
        let rem = k % 32;
        let tail: __mmask32 = if rem == 0 { 0 } else { (1u32 << rem) - 1 };
        let mut n = rows.start;
        while n < rows.end {
            let nb = (rows.end - n).min(NB);
            let mut acc = [[_mm512_setzero_ps(); MB]; NB];
            let wr: [*const u16; NB] = std::array::from_fn(|r| wp.add((n + r.min(nb - 1)) * k));
            for c in 0..full {
                let mut x = [_mm512_setzero_si512(); MB];
                for m in 0..MB {
                    x[m] = _mm512_loadu_si512(ap.add(m * k + c * 32) as *const _);
                }
                for r in 0..NB {
                    if r < nb {
                        // The same line of the next pass's rows, which follow these in memory
                        // (as in the quantized GEMV); past the weight's end it is harmless.
                        _mm_prefetch::<_MM_HINT_T0>(wr[r].wrapping_add(c * 32 + NB * k) as *const i8);
                        let wv = _mm512_loadu_si512(wr[r].add(c * 32) as *const _);
                        for m in 0..MB {
                            acc[r][m] = _mm512_dpbf16_ps(acc[r][m], cast_bh(wv), cast_bh(x[m]));
                        }
                    }
                }
            }
            if rem > 0 {
                let mut x = [_mm512_setzero_si512(); MB];
                for m in 0..MB {
                    x[m] = _mm512_maskz_loadu_epi16(tail, ap.add(m * k + full * 32) as *const _);
                }
                for r in 0..nb {
                    let wv = _mm512_maskz_loadu_epi16(tail, wr[r].add(full * 32) as *const _);
                    for m in 0..MB {
                        acc[r][m] = _mm512_dpbf16_ps(acc[r][m], cast_bh(wv), cast_bh(x[m]));
                    }
                }
            }
            for r in 0..nb {
                for m in 0..MB {
                    out[m * ldc + n + r - rows.start] = _mm512_reduce_add_ps(acc[r][m]);
                }
            }
            n += nb;
        }
    }

    #[inline(always)]
    unsafe fn cast_bh(v: __m512i) -> __m512bh {
        std::mem::transmute(v)
    }

    /// 16 bf16 at `p` widened to f32.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn widen16(p: *const u16) -> __m512 {
        _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(p as *const _)), 16))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn gemv_avx512(
        w: &[bf16],
        k: usize,
        a: &[f32],
        mb: usize,
        rows: Range<usize>,
        out: &mut [f32],
        ldc: usize,
    ) {
        dispatch_mb!(avx512_mb, mb, w, k, a, rows, out, ldc)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn avx512_mb<const MB: usize>(
        w: &[bf16],
        k: usize,
        a: &[f32],
        rows: Range<usize>,
        out: &mut [f32],
        ldc: usize,
    ) {
        let wp = w.as_ptr() as *const u16;
        let ap = a.as_ptr();
        let full = k / 16;
        let rem = k % 16;
        let tail: __mmask16 = if rem == 0 { 0 } else { (1u16 << rem) - 1 };
        let mut n = rows.start;
        while n < rows.end {
            let nb = (rows.end - n).min(NB);
            let mut acc = [[_mm512_setzero_ps(); MB]; NB];
            let wr: [*const u16; NB] = std::array::from_fn(|r| wp.add((n + r.min(nb - 1)) * k));
            for c in 0..full {
                let mut x = [_mm512_setzero_ps(); MB];
                for m in 0..MB {
                    x[m] = _mm512_loadu_ps(ap.add(m * k + c * 16));
                }
                for r in 0..NB {
                    if r < nb {
                        let wv = widen16(wr[r].add(c * 16));
                        for m in 0..MB {
                            acc[r][m] = _mm512_fmadd_ps(wv, x[m], acc[r][m]);
                        }
                    }
                }
            }
            if rem > 0 {
                let mut x = [_mm512_setzero_ps(); MB];
                for m in 0..MB {
                    x[m] = _mm512_maskz_loadu_ps(tail, ap.add(m * k + full * 16));
                }
                for r in 0..nb {
                    let h = _mm256_maskz_loadu_epi16(tail, wr[r].add(full * 16) as *const _);
                    let wv = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
                    for m in 0..MB {
                        acc[r][m] = _mm512_fmadd_ps(wv, x[m], acc[r][m]);
                    }
                }
            }
            for r in 0..nb {
                for m in 0..MB {
                    out[m * ldc + n + r - rows.start] = _mm512_reduce_add_ps(acc[r][m]);
                }
            }
            n += nb;
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn gemv_avx2(
        w: &[bf16],
        k: usize,
        a: &[f32],
        mb: usize,
        rows: Range<usize>,
        out: &mut [f32],
        ldc: usize,
    ) {
        dispatch_mb!(avx2_mb, mb, w, k, a, rows, out, ldc)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn avx2_mb<const MB: usize>(
        w: &[bf16],
        k: usize,
        a: &[f32],
        rows: Range<usize>,
        out: &mut [f32],
        ldc: usize,
    ) {
        let wp = w.as_ptr() as *const u16;
        let ap = a.as_ptr();
        let full = k / 8;
        let mut n = rows.start;
        while n < rows.end {
            let nb = (rows.end - n).min(NB);
            let mut acc = [[_mm256_setzero_ps(); MB]; NB];
            let wr: [*const u16; NB] = std::array::from_fn(|r| wp.add((n + r.min(nb - 1)) * k));
            for c in 0..full {
                let mut x = [_mm256_setzero_ps(); MB];
                for m in 0..MB {
                    x[m] = _mm256_loadu_ps(ap.add(m * k + c * 8));
                }
                for r in 0..NB {
                    if r < nb {
                        let h = _mm_loadu_si128(wr[r].add(c * 8) as *const _);
                        let wv = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
                        for m in 0..MB {
                            acc[r][m] = _mm256_fmadd_ps(wv, x[m], acc[r][m]);
                        }
                    }
                }
            }
            for r in 0..nb {
                for m in 0..MB {
                    let mut s = hsum256(acc[r][m]);
                    for i in full * 8..k {
                        s += f32::from_bits((*wr[r].add(i) as u32) << 16) * *ap.add(m * k + i);
                    }
                    out[m * ldc + n + r - rows.start] = s;
                }
            }
            n += nb;
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn hsum256(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }
}
