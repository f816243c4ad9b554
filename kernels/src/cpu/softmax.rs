//! Row softmax for attention on the bf16 path: `p = softmax(s · scale + bias)` over one row of
//! f32 scores, written as bf16, with a vectorised `exp` on AVX-512 (relative error below 2e-7,
//! far under bf16's 4e-3 step) and `f32::exp` elsewhere.

// The SIMD bodies are `unsafe fn`s with `#[target_feature]`: every line is raw-pointer and
// intrinsic work whose safety contract is the function's own (stated on each), so the lint that
// asks for an inner `unsafe` block on every operation is off for this module.
#![allow(unsafe_op_in_unsafe_fn)]
// Register-tiled loops index several arrays by the same lane or row counter.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use half::bf16;

use super::isa::Isa;

/// The additive bias of one score row.
#[derive(Debug, Clone, Copy)]
pub enum RowBias<'a> {
    /// None.
    None,
    /// One value per column.
    Full(&'a [f32]),
    /// SAM's decomposed relative positions: `bias[i * kw + j] = h[i] + w[j]`.
    Decomposed {
        /// `[kh]`.
        h: &'a [f32],
        /// `[kw]`.
        w: &'a [f32],
    },
}

/// Softmax of `s · scale + bias` over `s` (modified in place), rounded into `out`.
pub fn softmax_row_bf16(isa: Isa, s: &mut [f32], scale: f32, bias: RowBias, out: &mut [bf16]) {
    assert_eq!(s.len(), out.len());
    #[cfg(target_arch = "x86_64")]
    if isa >= Isa::Avx512 && Isa::Avx512.is_supported() {
        if let RowBias::Decomposed { h, w } = bias {
            assert_eq!(h.len() * w.len(), s.len());
        }
        // SAFETY: the level is supported; the bias lengths were checked.
        let max = unsafe { x86::scale_bias_max(s, scale, bias) };
        if max == f32::NEG_INFINITY {
            out.iter_mut().for_each(|o| *o = bf16::ZERO);
            return;
        }
        // SAFETY: as above.
        let sum = unsafe { x86::exp_sub_sum(s, max) };
        let inv = 1.0 / sum;
        // SAFETY: as above.
        unsafe { x86::scale_in_place(s, inv) };
        super::vmath::to_bf16(isa, s, out);
        return;
    }
    match bias {
        RowBias::None => s.iter_mut().for_each(|v| *v *= scale),
        RowBias::Full(b) => s.iter_mut().zip(b).for_each(|(v, b)| *v = *v * scale + b),
        RowBias::Decomposed { h, w } => {
            assert_eq!(h.len() * w.len(), s.len());
            for (i, hv) in h.iter().enumerate() {
                for (v, wv) in s[i * w.len()..(i + 1) * w.len()].iter_mut().zip(w) {
                    *v = *v * scale + hv + wv;
                }
            }
        }
    }
    let max = s.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
    if max == f32::NEG_INFINITY {
        // A fully masked row: the reference's softmax gives NaN; keep zeros instead.
        out.iter_mut().for_each(|o| *o = bf16::ZERO);
        return;
    }
    let sum = portable_exp_sub_sum(s, max);
    let inv = 1.0 / sum;
    out.iter_mut().zip(s.iter()).for_each(|(o, v)| *o = bf16::from_f32(v * inv));
}

fn portable_exp_sub_sum(s: &mut [f32], max: f32) -> f32 {
    let mut sum = 0f32;
    for v in s.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::vmath::exp16;
    use super::RowBias;

    /// `s = s · scale + bias`; returns the maximum.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn scale_bias_max(s: &mut [f32], scale: f32, bias: RowBias) -> f32 {
        let sc = _mm512_set1_ps(scale);
        let mut mx = _mm512_set1_ps(f32::NEG_INFINITY);
        // One run of `len` values at `p` with per-value bias `b` (or a constant `c`).
        let mut run = |p: *mut f32, len: usize, b: Option<*const f32>, c: f32| {
            let cv = _mm512_set1_ps(c);
            let full = len / 16;
            for i in 0..full {
                let add = match b {
                    Some(b) => _mm512_add_ps(_mm512_loadu_ps(b.add(i * 16)), cv),
                    None => cv,
                };
                let v = _mm512_fmadd_ps(_mm512_loadu_ps(p.add(i * 16)), sc, add);
                _mm512_storeu_ps(p.add(i * 16), v);
                mx = _mm512_max_ps(mx, v);
            }
            let rem = len % 16;
            if rem > 0 {
                let m: __mmask16 = ((1u32 << rem) - 1) as u16;
                let add = match b {
                    Some(b) => _mm512_add_ps(_mm512_maskz_loadu_ps(m, b.add(full * 16)), cv),
                    None => cv,
                };
                let v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, p.add(full * 16)), sc, add);
                _mm512_mask_storeu_ps(p.add(full * 16), m, v);
                mx = _mm512_mask_max_ps(mx, m, mx, v);
            }
        };
        match bias {
            RowBias::None => run(s.as_mut_ptr(), s.len(), None, 0.0),
            RowBias::Full(b) => run(s.as_mut_ptr(), s.len(), Some(b.as_ptr()), 0.0),
            RowBias::Decomposed { h, w } => {
                for (i, hv) in h.iter().enumerate() {
                    run(s.as_mut_ptr().add(i * w.len()), w.len(), Some(w.as_ptr()), *hv);
                }
            }
        }
        _mm512_reduce_max_ps(mx)
    }

    /// `s *= f`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn scale_in_place(s: &mut [f32], f: f32) {
        let fv = _mm512_set1_ps(f);
        let p = s.as_mut_ptr();
        let full = s.len() / 16;
        for i in 0..full {
            _mm512_storeu_ps(p.add(i * 16), _mm512_mul_ps(_mm512_loadu_ps(p.add(i * 16)), fv));
        }
        for v in &mut s[full * 16..] {
            *v *= f;
        }
    }

    /// `s[i] = e^(s[i] - max)`; returns the sum.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn exp_sub_sum(s: &mut [f32], max: f32) -> f32 {
        let m = _mm512_set1_ps(max);
        let mut acc = _mm512_setzero_ps();
        let full = s.len() / 16;
        let p = s.as_mut_ptr();
        for c in 0..full {
            let e = exp16(_mm512_sub_ps(_mm512_loadu_ps(p.add(c * 16)), m));
            _mm512_storeu_ps(p.add(c * 16), e);
            acc = _mm512_add_ps(acc, e);
        }
        let rem = s.len() % 16;
        if rem > 0 {
            let mask: __mmask16 = ((1u32 << rem) - 1) as u16;
            let v = _mm512_mask_loadu_ps(m, mask, p.add(full * 16));
            let e = _mm512_maskz_mov_ps(mask, exp16(_mm512_sub_ps(v, m)));
            _mm512_mask_storeu_ps(p.add(full * 16), mask, e);
            acc = _mm512_add_ps(acc, e);
        }
        _mm512_reduce_add_ps(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_matches_f64_on_every_level() {
        let n = 37;
        let s0: Vec<f32> = (0..n).map(|i| ((i * 29 % 31) as f32 - 15.0) * 0.9).collect();
        let h: Vec<f32> = (0..n).map(|i| i as f32 * 0.01).collect();
        let want = |bias: &dyn Fn(usize) -> f32| -> Vec<f64> {
            let v: Vec<f64> = (0..n).map(|i| s0[i] as f64 * 0.5 + bias(i) as f64).collect();
            let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = v.iter().map(|x| (x - m).exp()).collect();
            let t: f64 = e.iter().sum();
            e.iter().map(|x| x / t).collect()
        };
        for isa in Isa::supported() {
            for (bias, f) in
                [(RowBias::None, &(|_: usize| 0.0f32) as &dyn Fn(usize) -> f32), (RowBias::Full(&h), &|i| h[i])]
            {
                let mut s = s0.clone();
                let mut out = vec![bf16::ZERO; n];
                softmax_row_bf16(isa, &mut s, 0.5, bias, &mut out);
                for (o, w) in out.iter().zip(want(f)) {
                    assert!((o.to_f64() - w).abs() <= w * 4e-3 + 1e-9, "{isa}: {o} vs {w}");
                }
            }
        }
    }
}
