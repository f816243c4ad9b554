//! The decode attention kernel against its plain definition, on odd shapes (head widths and
//! lengths off every vector width, GQA and MHA), on every instruction-set level this machine
//! supports (the portable level included), and through its tensor function on a cache view.

use candle_core::{DType, Device, Tensor};
use docseek_kernels::cpu::decode_attention::{decode_attention, decode_attention_reference, CacheView};
use docseek_kernels::cpu::Isa;
use docseek_kernels::decode_attention_op::attend_one;
use half::bf16;

/// Deterministic pseudo-random values in [-2, 2).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// (heads, kv_heads, dim, len, capacity).
const SHAPES: [(usize, usize, usize, usize, usize); 6] = [
    (1, 1, 1, 1, 1),
    (4, 1, 33, 5, 9),
    (6, 2, 72, 37, 41),
    (3, 3, 17, 100, 100),
    (10, 10, 128, 257, 300),
    (8, 4, 20, 1, 3),
];

#[test]
fn decode_attention_matches_the_reference_on_every_level() {
    for (i, &(heads, kvh, dim, len, cap)) in SHAPES.iter().enumerate() {
        let q = values(heads * dim, i as u64);
        let k32 = values(kvh * cap * dim, 10 + i as u64);
        let v32 = values(kvh * cap * dim, 20 + i as u64);
        let kb: Vec<bf16> = k32.iter().map(|&x| bf16::from_f32(x)).collect();
        let vb: Vec<bf16> = v32.iter().map(|&x| bf16::from_f32(x)).collect();
        let scale = 1.0 / (dim as f32).sqrt();
        let view32 = CacheView { k: &k32[..], v: &v32[..], kv_heads: kvh, head_stride: cap * dim, len, dim };
        let view16 = CacheView { k: &kb[..], v: &vb[..], kv_heads: kvh, head_stride: cap * dim, len, dim };
        let want32 = decode_attention_reference(&q, &view32, heads, scale);
        let want16 = decode_attention_reference(&q, &view16, heads, scale);
        for isa in Isa::supported() {
            let mut got = vec![f32::NAN; heads * dim];
            decode_attention(isa, &q, &view32, heads, scale, &mut got);
            let e = max_abs_diff(&got, &want32);
            assert!(e < 1e-5, "{isa} f32 cache {:?}: max diff {e}", SHAPES[i]);
            decode_attention(isa, &q, &view16, heads, scale, &mut got);
            let e = max_abs_diff(&got, &want16);
            assert!(e < 1e-5, "{isa} bf16 cache {:?}: max diff {e}", SHAPES[i]);
        }
    }
}

#[test]
fn tensor_function_reads_a_narrowed_cache_in_place() {
    let (heads, kvh, dim, len, cap) = (6, 3, 40, 29, 35);
    let dev = Device::Cpu;
    let q = values(heads * dim, 1);
    let k = values(kvh * cap * dim, 2);
    let v = values(kvh * cap * dim, 3);
    let kt = Tensor::from_vec(k, (kvh, cap, dim), &dev).unwrap().to_dtype(DType::BF16).unwrap();
    let vt = Tensor::from_vec(v, (kvh, cap, dim), &dev).unwrap().to_dtype(DType::BF16).unwrap();
    let qt = Tensor::from_vec(q.clone(), (heads, 1, dim), &dev).unwrap().to_dtype(DType::BF16).unwrap();
    let got = attend_one(&qt, &kt.narrow(1, 0, len).unwrap(), &vt.narrow(1, 0, len).unwrap(), 0.3).unwrap();
    assert_eq!(got.dims(), &[1, heads * dim]);
    assert_eq!(got.dtype(), DType::BF16);
    let got: Vec<f32> = got.flatten_all().unwrap().to_dtype(DType::F32).unwrap().to_vec1().unwrap();
    // The reference on the same rounded inputs.
    let qr: Vec<f32> = q.iter().map(|&x| bf16::from_f32(x).to_f32()).collect();
    let kb: Vec<bf16> = kt.flatten_all().unwrap().to_vec1().unwrap();
    let vb: Vec<bf16> = vt.flatten_all().unwrap().to_vec1().unwrap();
    let view = CacheView { k: &kb[..], v: &vb[..], kv_heads: kvh, head_stride: cap * dim, len, dim };
    let want = decode_attention_reference(&qr, &view, heads, 0.3);
    // One bf16 rounding of outputs below 2 in magnitude.
    let e = max_abs_diff(&got, &want);
    assert!(e < 2.0 * 2f32.powi(-8), "max diff {e}");
}
