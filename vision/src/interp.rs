//! Resizes of learned position tables, as PyTorch's `F.interpolate` computes them in f32:
//!
//! - `mode='bicubic', antialias=True, align_corners=False` (SAM `pos_embed`, CLIP position
//!   table): separable, PIL-compatible cubic kernel `a = -0.5`, support `2 * max(scale, 1)`,
//!   centre `scale * (i + 0.5)`, weights normalised per output (PyTorch `UpSampleKernel.cpp`,
//!   `HelperInterpCubic::aa_filter`); used for up- and down-sampling alike.
//! - `mode='linear', align_corners=False` (SAM relative-position tables): source index
//!   `scale * (i + 0.5) - 0.5` clamped at 0, two taps.
//!
//! Both work on plain `f32` buffers; callers move tensors in and out.

use crate::resample::bicubic_kernel;

/// Support of the bicubic filter at scale 1 (`interp_size / 2`).
const CUBIC_SUPPORT: f64 = 2.0;

/// Per-output taps: first input index and weights.
fn aa_weights(in_size: usize, out_size: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = in_size as f64 / out_size as f64;
    let support = if scale >= 1.0 { CUBIC_SUPPORT * scale } else { CUBIC_SUPPORT };
    let invscale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
    (0..out_size)
        .map(|i| {
            let center = scale * (i as f64 + 0.5);
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let w: Vec<f64> = (xmin..xmax).map(|j| bicubic_kernel((j as f64 - center + 0.5) * invscale)).collect();
            let total: f64 = w.iter().sum();
            let w = w.iter().map(|&x| if total != 0.0 { (x / total) as f32 } else { x as f32 }).collect();
            (xmin, w)
        })
        .collect()
}

/// Antialiased bicubic resize of a planar `[channels, in_h, in_w]` buffer to `[channels, out_h, out_w]`.
pub fn resize_bicubic_aa(
    src: &[f32],
    channels: usize,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
) -> Vec<f32> {
    assert_eq!(src.len(), channels * in_h * in_w, "buffer does not match its shape");
    // Horizontal pass first, then vertical (PyTorch's separable order: last dim first).
    let wx = aa_weights(in_w, out_w);
    let mut tmp = vec![0f32; channels * in_h * out_w];
    for c in 0..channels {
        for y in 0..in_h {
            let row = &src[(c * in_h + y) * in_w..(c * in_h + y + 1) * in_w];
            let orow = &mut tmp[(c * in_h + y) * out_w..(c * in_h + y + 1) * out_w];
            for (o, (xmin, w)) in orow.iter_mut().zip(&wx) {
                *o = w.iter().enumerate().map(|(k, &wk)| row[xmin + k] * wk).sum();
            }
        }
    }
    let wy = aa_weights(in_h, out_h);
    let mut out = vec![0f32; channels * out_h * out_w];
    for c in 0..channels {
        for (y, (ymin, w)) in wy.iter().enumerate() {
            let orow = &mut out[(c * out_h + y) * out_w..(c * out_h + y + 1) * out_w];
            for (k, &wk) in w.iter().enumerate() {
                let row = &tmp[(c * in_h + ymin + k) * out_w..(c * in_h + ymin + k + 1) * out_w];
                for (o, &r) in orow.iter_mut().zip(row) {
                    *o += r * wk;
                }
            }
        }
    }
    out
}

/// Linear (`align_corners=False`) resize of a `[rows, cols]` table along the rows, as SAM's
/// `get_rel_pos` does: `F.interpolate(t.T[None], size=out_rows, mode="linear")[0].T`.
pub fn resize_rows_linear(src: &[f32], rows: usize, cols: usize, out_rows: usize) -> Vec<f32> {
    assert_eq!(src.len(), rows * cols, "buffer does not match its shape");
    let scale = rows as f32 / out_rows as f32;
    let mut out = vec![0f32; out_rows * cols];
    for i in 0..out_rows {
        let real = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
        let i0 = (real as usize).min(rows - 1);
        let i1 = (i0 + 1).min(rows - 1);
        let l1 = (real - i0 as f32).clamp(0.0, 1.0);
        let l0 = 1.0 - l1;
        for c in 0..cols {
            out[i * cols + c] = l0 * src[i0 * cols + c] + l1 * src[i1 * cols + c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_when_same_size() {
        let src: Vec<f32> = (0..2 * 5 * 5).map(|x| x as f32 * 0.37).collect();
        let out = resize_bicubic_aa(&src, 2, 5, 5, 5, 5);
        for (a, b) in src.iter().zip(&out) {
            assert!((a - b).abs() < 1e-5);
        }
        let lin = resize_rows_linear(&src, 10, 5, 10);
        assert_eq!(lin, src);
    }

    #[test]
    fn constants_are_preserved() {
        let src = vec![0.25f32; 3 * 16 * 16];
        for (h, w) in [(8, 8), (20, 20), (10, 7)] {
            let out = resize_bicubic_aa(&src, 3, 16, 16, h, w);
            assert!(out.iter().all(|v| (v - 0.25).abs() < 1e-6));
        }
    }

    #[test]
    fn linear_matches_hand_computation() {
        // 3 rows -> 5 rows: scale 0.6; row 1 samples 0.4 between rows 0 and 1.
        let src = vec![0.0, 10.0, 20.0];
        let out = resize_rows_linear(&src, 3, 1, 5);
        assert!((out[0] - 0.0).abs() < 1e-6);
        assert!((out[1] - 4.0).abs() < 1e-5);
        assert!((out[4] - 20.0).abs() < 1e-6);
    }
}
