//! Row softmax for attention on the bf16 path: `p = softmax(s · scale + bias)` over one row of
//! f32 scores, written as bf16, with a vectorised `exp` on AVX-512 (relative error below 2e-7,
//! far under bf16's 4e-3 step) and `f32::exp` elsewhere.

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
    #[cfg(target_arch = "x86_64")]
    let sum = if isa >= Isa::Avx512 && Isa::Avx512.is_supported() {
        // SAFETY: the level is supported.
        unsafe { x86::exp_sub_sum(s, max) }
    } else {
        portable_exp_sub_sum(s, max)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let sum = {
        let _ = isa;
        portable_exp_sub_sum(s, max)
    };
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
            for (bias, f) in [(RowBias::None, &(|_: usize| 0.0f32) as &dyn Fn(usize) -> f32), (RowBias::Full(&h), &|i| h[i])] {
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
