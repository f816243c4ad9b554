//! Every CPU kernel against its reference, on odd shapes (not multiples of any block size), on
//! every instruction-set level this machine supports (the portable level always included).

use docseek_kernels::cpu::gemv_bf16::Acts;
use docseek_kernels::cpu::matmul::{matmul, WeightRef, GEMV_MAX_ROWS};
use docseek_kernels::cpu::moe::{moe_forward, ExpertRef};
use docseek_kernels::cpu::qmatmul::QMatRef;
use docseek_kernels::cpu::quant::{blocks_per_row, quantize_row, QFormat};
use docseek_kernels::cpu::Isa;
use docseek_kernels::reference;
use half::{bf16, f16};

/// Deterministic pseudo-random values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Largest |a - b| relative to the largest |b| (the products here have random signs, so an
/// element-wise relative error is meaningless near zero).
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// (m, k, n): single rows, the GEMV/GEMM boundary, tails of every block size used.
const SHAPES: [(usize, usize, usize); 9] = [
    (1, 1, 1),
    (1, 37, 5),
    (3, 65, 33),
    (GEMV_MAX_ROWS, 130, 70),
    (GEMV_MAX_ROWS + 1, 129, 67),
    (13, 513, 131),
    (25, 1031, 97),
    (2, 2048, 40),
    (50, 96, 257),
];

#[test]
fn bf16_products_match_the_reference_on_every_level() {
    // Both product kinds of the AVX-512 BF16 level (vdpbf16ps, f32 FMAs), whichever this CPU
    // prefers; concurrent tests stay correct under either.
    for forced in [Some(true), Some(false)] {
        docseek_kernels::cpu::dot_choice::force(forced);
        bf16_products_on_every_level();
    }
    docseek_kernels::cpu::dot_choice::force(None);
}

/// Shapes past the AMX path's 32 x 32 output blocks and 32-column k steps, with every kind of
/// remainder (rows, columns, k columns, an odd k).
const TILE_SHAPES: [(usize, usize, usize); 5] =
    [(32, 64, 32), (50, 96, 257), (70, 545, 161), (96, 1280, 96), (65, 31, 40)];

#[test]
fn bf16_products_match_the_reference_with_and_without_amx_tiles() {
    // With the tiles forced on, the top level uses them where this CPU has them (elsewhere the
    // force is a no-op and both rounds test the same kernels).
    for forced in [Some(true), Some(false)] {
        docseek_kernels::cpu::amx::force(forced);
        for isa in Isa::supported() {
            for (i, &(m, k, n)) in TILE_SHAPES.iter().chain(SHAPES.iter()).enumerate() {
                let a: Vec<bf16> = values(m * k, 7 + i as u64).iter().map(|&v| bf16::from_f32(v)).collect();
                let w: Vec<bf16> = values(n * k, 300 + i as u64).iter().map(|&v| bf16::from_f32(v)).collect();
                let af: Vec<f32> = a.iter().map(|v| v.to_f32()).collect();
                let want = reference::matmul::matmul_bf16(&af, &w, m, k, n);
                let wr = WeightRef::Bf16 { data: &w, rows: n, cols: k };
                let mut got = vec![f32::NAN; m * n];
                matmul(isa, &wr, Acts::Bf16(&a), m, &mut got);
                let e = rel_err(&got, &want);
                assert!(e < 1e-5, "{isa} amx={forced:?} m={m} k={k} n={n}: rel err {e}");
            }
        }
    }
    docseek_kernels::cpu::amx::force(None);
}

fn bf16_products_on_every_level() {
    for isa in Isa::supported() {
        for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
            let a = values(m * k, i as u64);
            let w: Vec<bf16> = values(n * k, 100 + i as u64).iter().map(|&v| bf16::from_f32(v)).collect();
            let want = reference::matmul::matmul_bf16(&a, &w, m, k, n);
            let wr = WeightRef::Bf16 { data: &w, rows: n, cols: k };
            let mut got = vec![f32::NAN; m * n];
            matmul(isa, &wr, Acts::F32(&a), m, &mut got);
            let e = rel_err(&got, &want);
            assert!(e < 1e-5, "{isa} f32 acts m={m} k={k} n={n}: rel err {e}");
            // bf16 activations: the same values, already rounded.
            let ab: Vec<bf16> = a.iter().map(|&v| bf16::from_f32(v)).collect();
            let mut got_b = vec![f32::NAN; m * n];
            matmul(isa, &wr, Acts::Bf16(&ab), m, &mut got_b);
            let e = rel_err(&got_b, &want);
            assert!(e < 1e-5, "{isa} bf16 acts m={m} k={k} n={n}: rel err {e}");
        }
    }
}

fn quantize(format: QFormat, w: &[f32], n: usize, k: usize) -> (Vec<u8>, Vec<f16>) {
    let rb = format.row_bytes(k);
    let bp = blocks_per_row(k);
    let mut qs = vec![0u8; n * rb];
    let mut sc = vec![f16::ZERO; n * bp];
    for r in 0..n {
        quantize_row(format, &w[r * k..(r + 1) * k], &mut qs[r * rb..(r + 1) * rb], &mut sc[r * bp..(r + 1) * bp]);
    }
    (qs, sc)
}

#[test]
fn quantized_products_match_the_reference_on_every_level() {
    for format in [QFormat::Q8, QFormat::Q4] {
        for isa in Isa::supported() {
            for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
                let a = values(m * k, 7 + i as u64);
                let w = values(n * k, 300 + i as u64);
                let (qs, sc) = quantize(format, &w, n, k);
                let want = if m <= GEMV_MAX_ROWS {
                    reference::matmul::matmul_quant(format, &qs, &sc, &a, m, k, n)
                } else {
                    reference::matmul::matmul_quant_as_bf16(format, &qs, &sc, &a, m, k, n)
                };
                let wr = WeightRef::Quant(QMatRef { format, qs: &qs, scales: &sc, rows: n, cols: k });
                let mut got = vec![f32::NAN; m * n];
                matmul(isa, &wr, Acts::F32(&a), m, &mut got);
                let e = rel_err(&got, &want);
                assert!(e < 1e-5, "{format:?} {isa} m={m} k={k} n={n}: rel err {e}");
            }
        }
    }
}

#[test]
fn quantized_products_stay_close_to_the_exact_product() {
    // The quantization error itself: q8 within 1%, q4 within 15% of the largest output.
    let (m, k, n) = (4, 1280, 96);
    let a = values(m * k, 1);
    let w = values(n * k, 2);
    let exact: Vec<f32> = (0..m * n)
        .map(|p| (0..k).map(|l| a[(p / n) * k + l] as f64 * w[(p % n) * k + l] as f64).sum::<f64>() as f32)
        .collect();
    for (format, tol) in [(QFormat::Q8, 0.01), (QFormat::Q4, 0.15)] {
        let (qs, sc) = quantize(format, &w, n, k);
        let wr = WeightRef::Quant(QMatRef { format, qs: &qs, scales: &sc, rows: n, cols: k });
        let mut got = vec![0f32; m * n];
        matmul(Isa::active(), &wr, Acts::F32(&a), m, &mut got);
        let e = rel_err(&got, &exact);
        assert!(e < tol, "{format:?}: {e}");
    }
}

struct Expert {
    gate: Vec<bf16>,
    up: Vec<bf16>,
    down: Vec<bf16>,
    q: [(Vec<u8>, Vec<f16>); 3],
    inter: usize,
}

fn expert(hidden: usize, inter: usize, seed: u64, format: QFormat) -> Expert {
    let mk = |n: usize, k: usize, s: u64| -> Vec<bf16> {
        values(n * k, s).iter().map(|&v| bf16::from_f32(v * 0.2)).collect()
    };
    let gate = mk(inter, hidden, seed);
    let up = mk(inter, hidden, seed + 1);
    let down = mk(hidden, inter, seed + 2);
    let f = |w: &[bf16], n, k| quantize(format, &w.iter().map(|v| v.to_f32()).collect::<Vec<_>>(), n, k);
    let q = [f(&gate, inter, hidden), f(&up, inter, hidden), f(&down, hidden, inter)];
    Expert { gate, up, down, q, inter }
}

fn dense(e: &Expert, quant: Option<QFormat>, hidden: usize) -> reference::moe::DenseExpert {
    let to32 = |w: &[bf16]| w.iter().map(|v| v.to_f32()).collect::<Vec<f32>>();
    match quant {
        None => {
            reference::moe::DenseExpert { gate: to32(&e.gate), up: to32(&e.up), down: to32(&e.down), inter: e.inter }
        }
        Some(f) => reference::moe::DenseExpert {
            gate: reference::matmul::dequantize(f, &e.q[0].0, &e.q[0].1, e.inter, hidden),
            up: reference::matmul::dequantize(f, &e.q[1].0, &e.q[1].1, e.inter, hidden),
            down: reference::matmul::dequantize(f, &e.q[2].0, &e.q[2].1, hidden, e.inter),
            inter: e.inter,
        },
    }
}

fn refs<'a>(e: &'a Expert, quant: Option<QFormat>, hidden: usize) -> ExpertRef<'a> {
    let (i, h) = (e.inter, hidden);
    match quant {
        None => ExpertRef {
            gate: WeightRef::Bf16 { data: &e.gate, rows: i, cols: h },
            up: WeightRef::Bf16 { data: &e.up, rows: i, cols: h },
            down: WeightRef::Bf16 { data: &e.down, rows: h, cols: i },
        },
        Some(f) => ExpertRef {
            gate: WeightRef::Quant(QMatRef { format: f, qs: &e.q[0].0, scales: &e.q[0].1, rows: i, cols: h }),
            up: WeightRef::Quant(QMatRef { format: f, qs: &e.q[1].0, scales: &e.q[1].1, rows: i, cols: h }),
            down: WeightRef::Quant(QMatRef { format: f, qs: &e.q[2].0, scales: &e.q[2].1, rows: h, cols: i }),
        },
    }
}

#[test]
fn moe_layer_matches_the_reference_for_decode_and_prefill() {
    let (hidden, inter, n_exp, k) = (70, 45, 6, 2);
    for quant in [None, Some(QFormat::Q8), Some(QFormat::Q4)] {
        let fmt = quant.unwrap_or(QFormat::Q8);
        let experts: Vec<Expert> = (0..n_exp).map(|e| expert(hidden, inter, 10 * e as u64, fmt)).collect();
        let shared = expert(hidden, 2 * inter - 3, 999, fmt);
        let dense_e: Vec<_> = experts.iter().map(|e| dense(e, quant, hidden)).collect();
        let dense_s = dense(&shared, quant, hidden);
        let er: Vec<ExpertRef> = experts.iter().map(|e| refs(e, quant, hidden)).collect();
        let sr = refs(&shared, quant, hidden);
        // 1 token (decode), 3 tokens (a small batch), 40 tokens (prefill: large groups).
        for t in [1usize, 3, 40] {
            let x = values(t * hidden, t as u64);
            let ids: Vec<u32> = (0..t * k).map(|p| ((p * 7 + p / k) % n_exp) as u32).collect();
            let w: Vec<f32> = (0..t * k).map(|p| 0.3 + 0.1 * (p % 3) as f32).collect();
            let want = reference::moe::moe(&dense_e, Some(&dense_s), &x, t, &ids, &w, k);
            for isa in Isa::supported() {
                let mut got = vec![0f32; t * hidden];
                moe_forward(isa, &er, Some(&sr), Acts::F32(&x), t, &ids, &w, k, &mut got);
                // bf16: activations and h are rounded to bf16; quantized: h is re-quantized.
                let tol = match quant {
                    None => 2e-2,
                    Some(QFormat::Q8) => 3e-2,
                    Some(QFormat::Q4) => 3e-2,
                };
                let e = rel_err(&got, &want);
                assert!(e < tol, "{quant:?} {isa} t={t}: rel err {e}");
            }
        }
    }
}
