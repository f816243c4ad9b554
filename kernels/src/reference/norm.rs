//! References of the element-wise and row-wise kernels: RMSNorm (optionally fused with the
//! residual add before it) and SiLU-and-multiply.

use super::{round_to, Elem};

/// RMSNorm of each `dim`-wide row of `x`, as the decoder computes it (`DeepseekV2RMSNorm`):
/// `m = sqrt(mean(x^2) + eps)` in f32, `n = T(x / m)`, `y = T(n * w)`.
///
/// With `residual`, the input is first `h = T(x + residual)` and `h` is returned beside `y`
/// (the pre-norm layers' `h = h + attn; x = norm(h)`).
pub fn rms_norm<T: Elem>(x: &[T], residual: Option<&[T]>, weight: &[T], eps: f32) -> (Vec<T>, Option<Vec<T>>) {
    let dim = weight.len();
    assert!(dim > 0 && x.len().is_multiple_of(dim), "rms_norm: {} values are not rows of {dim}", x.len());
    let h: Option<Vec<T>> = residual.map(|r| {
        assert_eq!(r.len(), x.len(), "rms_norm: residual shape");
        x.iter().zip(r).map(|(a, b)| T::from_f32(a.to_f32() + b.to_f32())).collect()
    });
    let src: &[T] = h.as_deref().unwrap_or(x);
    let mut y = Vec::with_capacity(src.len());
    for row in src.chunks(dim) {
        let sum2: f32 = row.iter().map(|v| v.to_f32() * v.to_f32()).sum();
        let m = (sum2 / dim as f32 + eps).sqrt();
        for (v, w) in row.iter().zip(weight) {
            let n = round_to::<T>(v.to_f32() / m);
            y.push(T::from_f32(n * w.to_f32()));
        }
    }
    (y, h)
}

/// `silu(g) * u` of rows `[g | u]` (`2 * inter` wide) into rows of `inter`, computed in f32 and
/// rounded once.
pub fn silu_mul<T: Elem>(gate_up: &[T], inter: usize) -> Vec<T> {
    assert!(inter > 0 && gate_up.len().is_multiple_of(2 * inter), "silu_mul: rows are not 2 * {inter} wide");
    let mut out = Vec::with_capacity(gate_up.len() / 2);
    for row in gate_up.chunks(2 * inter) {
        let (g, u) = row.split_at(inter);
        for (g, u) in g.iter().zip(u) {
            let g = g.to_f32();
            out.push(T::from_f32(g / (1.0 + (-g).exp()) * u.to_f32()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;

    #[test]
    fn rms_norm_of_constant_row_is_weight() {
        let (y, h) = rms_norm::<f32>(&[3.0, -3.0, 3.0, -3.0], None, &[1.0, 2.0, 0.5, 1.0], 0.0);
        assert!(h.is_none());
        assert_eq!(y, vec![1.0, -2.0, 0.5, -1.0]);
    }

    #[test]
    fn residual_is_added_then_normalised() {
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let r = [1.0f32, 0.0, -1.0, 2.0];
        let (y, h) = rms_norm(&x, Some(&r), &[1.0; 2], 1e-6);
        assert_eq!(h.unwrap(), vec![2.0, 2.0, 2.0, 6.0]);
        let m2 = ((4.0f32 + 36.0) / 2.0 + 1e-6).sqrt();
        assert!((y[2] - 2.0 / m2).abs() < 1e-6 && (y[3] - 6.0 / m2).abs() < 1e-6);
        assert!((y[0] - 1.0).abs() < 1e-5);
    }

    #[test]
    fn bf16_rounds_the_normalised_value_before_the_scale() {
        // 1/3 in bf16 is 0.333984375; times 3 rounds to 1.0 (not 1.0000001 as f32 would give).
        let x = [bf16::from_f32(1.0), bf16::from_f32(-1.0), bf16::from_f32(1.0)];
        let w = [bf16::from_f32(3.0); 3];
        let (y, _) = rms_norm(&x, None, &w, 0.0);
        assert_eq!(y[0], bf16::from_f32(bf16::from_f32(1.0).to_f32() * 3.0));
    }

    #[test]
    fn silu_mul_matches_formula() {
        let out = silu_mul::<f32>(&[0.0, 1.0, 2.0, 3.0, -1.0, 0.5, 4.0, -2.0], 2);
        let silu = |v: f32| v / (1.0 + (-v).exp());
        let want = [silu(0.0) * 2.0, silu(1.0) * 3.0, silu(-1.0) * 4.0, silu(0.5) * -2.0];
        for (a, b) in out.iter().zip(want) {
            assert!((a - b).abs() < 1e-7, "{a} {b}");
        }
    }
}
