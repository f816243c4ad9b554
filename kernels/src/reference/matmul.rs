//! Reference products: bf16 weights x bf16-rounded activations, and block-quantized weights x
//! block-quantized activations, summed in f64.

use half::{bf16, f16};

use crate::cpu::quant::{padded_k, stored_value, QFormat, QBLOCK};

/// `out[i, j] = Σ_k bf16(a[i, k]) · w[j, k]` for `a` `[m, k]` and `w` `[n, k]`.
pub fn matmul_bf16(a: &[f32], w: &[bf16], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f64;
            for l in 0..k {
                s += bf16::from_f32(a[i * k + l]).to_f64() * w[j * k + l].to_f64();
            }
            out[i * n + j] = s as f32;
        }
    }
    out
}

/// Activation quantization of the kernels, written out plainly: per row, `d = max|x| / 32767`,
/// `q = round(x · (1 / d))`, zero padded to a multiple of 64.
pub fn quantize_acts(a: &[f32], m: usize, k: usize) -> (Vec<i32>, Vec<f32>) {
    let kp = padded_k(k);
    let mut q = vec![0i32; m * kp];
    let mut d = vec![0f32; m];
    for i in 0..m {
        let row = &a[i * k..(i + 1) * k];
        let scale = row.iter().fold(0f32, |m, v| m.max(v.abs())) / 32767.0;
        d[i] = scale;
        for (j, v) in row.iter().enumerate() {
            q[i * kp + j] = if scale > 0.0 { (v * (1.0 / scale)).round().clamp(-32767.0, 32767.0) as i32 } else { 0 };
        }
    }
    (q, d)
}

/// `out[i, j] = d_x[i] Σ_b d_w[j, b] Σ_{l in b} q_w[j, l] q_x[i, l]` for a quantized weight
/// (`qs`, `scales` as stored) and activations `a` `[m, k]` quantized by [`quantize_acts`].
pub fn matmul_quant(format: QFormat, qs: &[u8], scales: &[f16], a: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let kp = padded_k(k);
    let rb = format.row_bytes(k);
    let (xq, xd) = quantize_acts(a, m, k);
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let row = &qs[j * rb..(j + 1) * rb];
            let mut s = 0f64;
            for b in 0..kp / QBLOCK {
                let mut dot = 0i64;
                for l in b * QBLOCK..(b + 1) * QBLOCK {
                    dot += stored_value(format, row, l) as i64 * xq[i * kp + l] as i64;
                }
                s += dot as f64 * scales[j * kp / QBLOCK + b].to_f64();
            }
            out[i * n + j] = (s * xd[i] as f64) as f32;
        }
    }
    out
}

/// The product of a quantized weight's bf16-rounded dequantized values with bf16-rounded
/// activations: what the GEMM computes for many rows.
pub fn matmul_quant_as_bf16(
    format: QFormat,
    qs: &[u8],
    scales: &[f16],
    a: &[f32],
    m: usize,
    k: usize,
    n: usize,
) -> Vec<f32> {
    let w: Vec<bf16> = dequantize(format, qs, scales, n, k).iter().map(|&v| bf16::from_f32(v)).collect();
    matmul_bf16(a, &w, m, k, n)
}

/// The dequantized `[n, k]` matrix of a quantized weight.
pub fn dequantize(format: QFormat, qs: &[u8], scales: &[f16], n: usize, k: usize) -> Vec<f32> {
    let kp = padded_k(k);
    let rb = format.row_bytes(k);
    let mut out = vec![0f32; n * k];
    for j in 0..n {
        for l in 0..k {
            out[j * k + l] = stored_value(format, &qs[j * rb..(j + 1) * rb], l) as f32
                * scales[j * kp / QBLOCK + l / QBLOCK].to_f32();
        }
    }
    out
}
