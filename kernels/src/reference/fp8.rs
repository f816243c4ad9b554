//! FP8 E4M3 (the OCP "e4m3fn" format of Hopper's tensor cores: bias 7, no infinities, largest
//! finite 448, NaN = `S.1111.111`) and weight quantisation with one f32 scale per
//! `FP8_BLOCK x FP8_BLOCK` block (DeepSeek-V3's block-wise scheme).
//!
//! Encoding rounds to nearest even and saturates to ±448 (CUDA's
//! `__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3)`); NaN encodes as `0x7f`.

/// Side of the square blocks that share one scale.
pub const FP8_BLOCK: usize = 128;
/// Largest finite e4m3 value.
pub const E4M3_MAX: f32 = 448.0;

/// Decodes one e4m3 code.
pub fn e4m3_to_f32(code: u8) -> f32 {
    let sign = if code & 0x80 != 0 { -1.0f32 } else { 1.0 };
    let exp = ((code >> 3) & 0x0f) as i32;
    let man = (code & 0x07) as f32;
    if exp == 0x0f && code & 0x07 == 0x07 {
        return f32::NAN;
    }
    if exp == 0 {
        sign * man / 8.0 * 2f32.powi(-6)
    } else {
        sign * (1.0 + man / 8.0) * 2f32.powi(exp - 7)
    }
}

/// Encodes `v` (round to nearest even, saturating to ±448).
pub fn f32_to_e4m3(v: f32) -> u8 {
    if v.is_nan() {
        return 0x7f;
    }
    let sign = if v.is_sign_negative() { 0x80u8 } else { 0 };
    let a = v.abs();
    if a >= E4M3_MAX {
        return sign | 0x7e;
    }
    let min_normal = 2f32.powi(-6);
    if a < min_normal {
        // Subnormals (and the step up to the smallest normal, code 8) are multiples of 2^-9.
        let q = (a * 512.0).round_ties_even() as u8;
        return sign | q;
    }
    let mut e = ((a.to_bits() >> 23) & 0xff) as i32 - 127;
    let mut m = ((a / 2f32.powi(e) - 1.0) * 8.0).round_ties_even() as u32;
    if m == 8 {
        m = 0;
        e += 1;
    }
    sign | (((e + 7) as u8) << 3) | m as u8
}

/// A weight quantised to e4m3 with block scales.
#[derive(Debug, Clone, PartialEq)]
pub struct Fp8Blocks {
    /// `[rows, cols]` codes.
    pub codes: Vec<u8>,
    /// `[ceil(rows / 128), ceil(cols / 128)]`: `value = decode(code) * scale`.
    pub scales: Vec<f32>,
}

/// Scale of one block from its largest magnitude (1.0 for an all-zero block).
pub fn block_scale(amax: f32) -> f32 {
    if amax > 0.0 {
        amax / E4M3_MAX
    } else {
        1.0
    }
}

/// Quantises a `[rows, cols]` matrix block by block: `scale = amax / 448`,
/// `code = e4m3(v / scale)`.
pub fn quantize_blocks(w: &[f32], rows: usize, cols: usize) -> Fp8Blocks {
    assert_eq!(w.len(), rows * cols, "quantize_blocks: shape");
    let (rb, cb) = (rows.div_ceil(FP8_BLOCK), cols.div_ceil(FP8_BLOCK));
    let mut scales = vec![1f32; rb * cb];
    for bi in 0..rb {
        for bj in 0..cb {
            let mut amax = 0f32;
            for r in bi * FP8_BLOCK..((bi + 1) * FP8_BLOCK).min(rows) {
                for c in bj * FP8_BLOCK..((bj + 1) * FP8_BLOCK).min(cols) {
                    amax = amax.max(w[r * cols + c].abs());
                }
            }
            scales[bi * cb + bj] = block_scale(amax);
        }
    }
    let codes = (0..rows * cols)
        .map(|i| {
            let (r, c) = (i / cols, i % cols);
            f32_to_e4m3(w[i] / scales[(r / FP8_BLOCK) * cb + c / FP8_BLOCK])
        })
        .collect();
    Fp8Blocks { codes, scales }
}

/// The values a quantised matrix stands for, `[rows, cols]`.
pub fn dequantize_blocks(q: &Fp8Blocks, rows: usize, cols: usize) -> Vec<f32> {
    let cb = cols.div_ceil(FP8_BLOCK);
    (0..rows * cols)
        .map(|i| e4m3_to_f32(q.codes[i]) * q.scales[(i / cols / FP8_BLOCK) * cb + (i % cols) / FP8_BLOCK])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_finite_code_round_trips() {
        for code in 0u8..=255 {
            let v = e4m3_to_f32(code);
            if v.is_nan() {
                assert_eq!(code & 0x7f, 0x7f);
                continue;
            }
            // -0.0 encodes as 0x80, +0.0 as 0x00.
            assert_eq!(f32_to_e4m3(v), code, "code {code:#04x} = {v}");
        }
    }

    #[test]
    fn known_values_and_rounding() {
        assert_eq!(e4m3_to_f32(0x7e), 448.0);
        assert_eq!(e4m3_to_f32(0x01), 2f32.powi(-9));
        assert_eq!(e4m3_to_f32(0x38), 1.0);
        assert_eq!(f32_to_e4m3(1000.0), 0x7e);
        assert_eq!(f32_to_e4m3(-1000.0), 0xfe);
        // 1.0625 is halfway between 1.0 (even mantissa 0) and 1.125: ties to even -> 1.0.
        assert_eq!(f32_to_e4m3(1.0625), 0x38);
        // 1.1875 is halfway between 1.125 (odd) and 1.25 (even) -> 1.25.
        assert_eq!(e4m3_to_f32(f32_to_e4m3(1.1875)), 1.25);
        // Halfway between the two smallest subnormals rounds to even (0).
        assert_eq!(f32_to_e4m3(2f32.powi(-10)), 0x00);
        // Just below the smallest normal rounds up into it.
        assert_eq!(f32_to_e4m3(2f32.powi(-6) - 2f32.powi(-12)), 0x08);
        assert!(e4m3_to_f32(f32_to_e4m3(f32::NAN)).is_nan());
    }

    #[test]
    fn matches_the_float8_crate_on_a_sweep() {
        // float8's F8E4M3 rounds to nearest even too; saturation aside the codes agree.
        let mut v = -440.0f32;
        while v < 440.0 {
            let ours = f32_to_e4m3(v);
            let theirs = float8::F8E4M3::from_f32(v).to_bits();
            assert_eq!(ours, theirs, "{v}");
            v += 0.37;
        }
    }

    #[test]
    fn block_quantisation_error_is_bounded() {
        let (rows, cols) = (130, 260);
        let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919) % 1013) as f32 / 100.0 - 5.0).collect();
        let q = quantize_blocks(&w, rows, cols);
        assert_eq!(q.scales.len(), 2 * 3);
        let d = dequantize_blocks(&q, rows, cols);
        for (a, b) in w.iter().zip(&d) {
            // e4m3 has 3 mantissa bits: relative error <= 2^-4 for normals, plus the subnormal step.
            assert!((a - b).abs() <= a.abs() / 16.0 + 5.0 / 448.0 * 2f32.powi(-9), "{a} {b}");
        }
    }
}
