//! Vectorised elementwise functions for the kernels' f32 epilogues: `exp`, and the
//! activations applied to a linear layer's output before it is rounded
//! ([`Activation`]: exact GELU, CLIP's quick GELU, SiLU).

// The SIMD bodies are `unsafe fn`s with `#[target_feature]`: every line is raw-pointer and
// intrinsic work whose safety contract is the function's own (stated on each), so the lint that
// asks for an inner `unsafe` block on every operation is off for this module.
#![allow(unsafe_op_in_unsafe_fn)]
// Register-tiled loops index several arrays by the same lane or row counter.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use super::isa::Isa;

/// An activation applied to a linear layer's f32 output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x · Φ(x)` with the exact (erf) normal CDF, as `gelu_erf` / `nn.GELU()`.
    GeluErf,
    /// `x · σ(1.702 x)` (CLIP's `quick_gelu`).
    QuickGelu,
    /// `x · σ(x)` (SwiGLU's gate).
    Silu,
}

/// `erf` by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7).
fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * (-z * z).exp();
    y.copysign(x)
}

/// Applies `act` to every value (scalar reference semantics of the vector code).
pub fn apply_scalar(act: Activation, v: &mut [f32]) {
    match act {
        Activation::GeluErf => {
            v.iter_mut().for_each(|x| *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2)))
        }
        Activation::QuickGelu => v.iter_mut().for_each(|x| *x /= 1.0 + (-1.702 * *x).exp()),
        Activation::Silu => v.iter_mut().for_each(|x| *x /= 1.0 + (-*x).exp()),
    }
}

/// Applies `act` to every value.
pub fn apply(isa: Isa, act: Activation, v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if isa >= Isa::Avx512 && Isa::Avx512.is_supported() {
        // SAFETY: the level is supported.
        unsafe { x86::apply(act, v) };
        return;
    }
    let _ = isa;
    apply_scalar(act, v);
}

/// [`to_bf16`] into `src.len()` values at `dst`, which may be uninitialised.
///
/// # Safety
/// `dst` is valid for `src.len()` writes and overlaps nothing `src` covers.
pub unsafe fn to_bf16_raw(isa: Isa, src: &[f32], dst: *mut half::bf16) {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512Bf16 && Isa::Avx512Bf16.is_supported() {
        x86::to_bf16_ptr(src, dst);
        return;
    }
    let _ = isa;
    for (i, &v) in src.iter().enumerate() {
        dst.add(i).write(half::bf16::from_f32(v));
    }
}

/// Rounds `src` to bf16 (nearest even) into `dst`.
pub fn to_bf16(isa: Isa, src: &[f32], dst: &mut [half::bf16]) {
    assert_eq!(src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512Bf16 && Isa::Avx512Bf16.is_supported() {
        // SAFETY: the level is supported; lengths are equal.
        unsafe { x86::to_bf16(src, dst) };
        return;
    }
    let _ = isa;
    dst.iter_mut().zip(src).for_each(|(d, s)| *d = half::bf16::from_f32(*s));
}

/// `e^x` for 16 lanes (see [`x86`]).
#[cfg(target_arch = "x86_64")]
pub(crate) use x86::exp16;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Activation;

    /// `e^x` for 16 lanes: `x = n ln2 + r`, `|r| <= ln2 / 2`, degree-6 polynomial for `e^r`,
    /// scaled by `2^n` (`vscalefps`, which also flushes very negative inputs to 0); relative
    /// error below 2e-7.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn exp16(x: __m512) -> __m512 {
        let x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0)), _mm512_set1_ps(88.0));
        let n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)), 0);
        // r = x - n ln2 in two steps (Cody-Waite) for accuracy.
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_145_75), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428_606_8e-6), r);
        let mut p = _mm512_set1_ps(1.0 / 720.0);
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0 / 120.0));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0 / 24.0));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0 / 6.0));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0));
        _mm512_scalef_ps(p, n)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn act16(act: Activation, x: __m512) -> __m512 {
        let one = _mm512_set1_ps(1.0);
        match act {
            Activation::GeluErf => {
                let z = _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
                let za = _mm512_abs_ps(z);
                let t = _mm512_div_ps(one, _mm512_fmadd_ps(za, _mm512_set1_ps(0.327_591_1), one));
                let mut p = _mm512_set1_ps(1.061_405_4);
                p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453_152_1));
                p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421_413_7));
                p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284_496_74));
                p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254_829_6));
                p = _mm512_mul_ps(p, t);
                let e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(za, za)));
                let erf_abs = _mm512_fnmadd_ps(p, e, one);
                // erf(z) = sign(z) |erf|; 0.5 x (1 + erf).
                let sign = _mm512_and_ps(z, _mm512_set1_ps(-0.0));
                let erf = _mm512_or_ps(erf_abs, sign);
                _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5), x), _mm512_add_ps(one, erf))
            }
            Activation::QuickGelu => {
                let e = exp16(_mm512_mul_ps(x, _mm512_set1_ps(-1.702)));
                _mm512_div_ps(x, _mm512_add_ps(one, e))
            }
            Activation::Silu => {
                let e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
                _mm512_div_ps(x, _mm512_add_ps(one, e))
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub unsafe fn to_bf16(src: &[f32], dst: &mut [half::bf16]) {
        to_bf16_ptr(src, dst.as_mut_ptr())
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub unsafe fn to_bf16_ptr(src: &[f32], dst: *mut half::bf16) {
        let (s, d) = (src.as_ptr(), dst as *mut u16);
        let full = src.len() / 16;
        for c in 0..full {
            let v: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(_mm512_loadu_ps(s.add(c * 16))));
            _mm256_storeu_si256(d.add(c * 16) as *mut _, v);
        }
        let rem = src.len() % 16;
        if rem > 0 {
            let mask: __mmask16 = ((1u32 << rem) - 1) as u16;
            let v: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, s.add(full * 16))));
            _mm256_mask_storeu_epi16(d.add(full * 16) as *mut _, mask, v);
        }
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn apply(act: Activation, v: &mut [f32]) {
        let p = v.as_mut_ptr();
        let full = v.len() / 16;
        for c in 0..full {
            _mm512_storeu_ps(p.add(c * 16), act16(act, _mm512_loadu_ps(p.add(c * 16))));
        }
        let rem = v.len() % 16;
        if rem > 0 {
            let mask: __mmask16 = ((1u32 << rem) - 1) as u16;
            let x = _mm512_maskz_loadu_ps(mask, p.add(full * 16));
            _mm512_mask_storeu_ps(p.add(full * 16), mask, act16(act, x));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding_matches_half_on_every_level() {
        let xs: Vec<f32> = (0..37).map(|i| (i as f32 - 18.0) * 1.000_37e-3 + 1.0 / 3.0 * i as f32).collect();
        let want: Vec<half::bf16> = xs.iter().map(|&x| half::bf16::from_f32(x)).collect();
        for isa in Isa::supported() {
            let mut got = vec![half::bf16::ZERO; xs.len()];
            to_bf16(isa, &xs, &mut got);
            assert_eq!(got, want, "{isa}");
        }
    }

    #[test]
    fn activations_match_f64_on_every_level() {
        let xs: Vec<f32> = (0..101).map(|i| (i as f32 - 50.0) * 0.13).collect();
        let gelu = |x: f64| 0.5 * x * (1.0 + libm_erf(x / std::f64::consts::SQRT_2));
        let quick = |x: f64| x / (1.0 + (-1.702 * x).exp());
        let silu = |x: f64| x / (1.0 + (-x).exp());
        for isa in Isa::supported() {
            for (act, f) in [
                (Activation::GeluErf, &gelu as &dyn Fn(f64) -> f64),
                (Activation::QuickGelu, &quick),
                (Activation::Silu, &silu),
            ] {
                let mut v = xs.clone();
                apply(isa, act, &mut v);
                for (x, y) in xs.iter().zip(&v) {
                    let want = f(*x as f64);
                    assert!(
                        (*y as f64 - want).abs() <= 1e-6 * want.abs().max(1.0),
                        "{isa} {act:?}({x}) = {y}, want {want}"
                    );
                }
            }
        }
    }

    /// erf in f64 by its series / continued fraction is overkill here: integrate numerically.
    fn libm_erf(x: f64) -> f64 {
        let n = 20_000;
        let h = x / n as f64;
        let f = |t: f64| (-t * t).exp();
        let mut s = f(0.0) + f(x);
        for i in 1..n {
            s += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        s * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
    }
}
