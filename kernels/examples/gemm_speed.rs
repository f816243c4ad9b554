//! The bf16 GEMM against the machine's peak (not a test; run with
//! `cargo run -p docseek-kernels --release --example gemm_speed [isa]`).
//!
//! Peak: tight loops of independent `vdpbf16ps` (16 lanes x 2 products x 2 flops each) and of f32
//! FMAs (16 x 2), on one thread and on every pool thread at once; shares are of the larger. Then the GEMM at the decoder's prefill shapes (903
//! tokens) and the vision encoder's (SAM-B at 1024 px and 640 px, CLIP-L), each as GFLOP/s and
//! as a share of the measured all-thread peak; where the CPU has AMX, with the tiles off and on.

use std::time::Instant;

use docseek_kernels::cpu::gemv_bf16::Acts;
use docseek_kernels::cpu::matmul::{matmul, WeightRef};
use docseek_kernels::cpu::{pool, Isa};
use half::bf16;

/// (name, m, k, n).
const SHAPES: [(&str, usize, usize, usize); 10] = [
    ("prefill q/k/v/o 903x1280x1280", 903, 1280, 1280),
    ("prefill expert gate 903x1280x896", 903, 1280, 896),
    ("prefill expert 85x1280x896", 85, 1280, 896),
    ("prefill expert down 85x896x1280", 85, 896, 1280),
    ("prefill dense mlp 903x1280x6848", 903, 1280, 6848),
    ("prefill dense down 903x6848x1280", 903, 6848, 1280),
    ("sam-b qkv 4096x768x2304", 4096, 768, 2304),
    ("sam-b mlp 1600x768x3072", 1600, 768, 3072),
    ("sam-b mlp down 1600x3072x768", 1600, 3072, 768),
    ("clip-l mlp 257x1024x4096", 257, 1024, 4096),
];

fn main() {
    let isa = std::env::args().nth(1).and_then(|s| Isa::parse(&s)).unwrap_or_else(Isa::active);
    let threads = pool::threads();
    println!("isa {isa}, {threads} threads");
    let one = peak_gflops(1, false);
    let dp = peak_gflops(threads, false);
    let fma = peak_gflops(threads, true);
    println!("peak vdpbf16ps: {one:.0} GFLOP/s on 1 thread, {dp:.0} GFLOP/s on {threads}; f32 FMA {fma:.0} GFLOP/s on {threads}");
    let all = dp.max(fma);
    let tiles = docseek_kernels::cpu::amx::active(isa);
    for amx in if tiles { vec![false, true] } else { vec![false] } {
        docseek_kernels::cpu::amx::force(Some(amx));
        println!("AMX tiles {}", if amx { "on" } else { "off" });
        shapes(isa, all);
    }
}

/// The GEMM at every shape of [`SHAPES`], as GFLOP/s and as a share of `peak`.
fn shapes(isa: Isa, all: f64) {
    for (name, m, k, n) in SHAPES {
        let a: Vec<bf16> = (0..m * k).map(|i| bf16::from_f32((i % 11) as f32 * 0.01)).collect();
        let w: Vec<bf16> = (0..n * k).map(|i| bf16::from_f32((i % 5) as f32 * 0.01)).collect();
        let mut out = vec![0f32; m * n];
        let wr = WeightRef::Bf16 { data: &w, rows: n, cols: k };
        matmul(isa, &wr, Acts::Bf16(&a), m, &mut out);
        let flops = 2.0 * (m * k * n) as f64;
        let reps = ((20e9 / flops) as usize).clamp(2, 200);
        let t = Instant::now();
        for _ in 0..reps {
            matmul(isa, &wr, Acts::Bf16(&a), m, &mut out);
        }
        let g = reps as f64 * flops / t.elapsed().as_secs_f64() / 1e9;
        println!("{name}: {g:.0} GFLOP/s = {:.0}% of peak", 100.0 * g / all);
    }
}

/// GFLOP/s of independent `vdpbf16ps` (or f32 FMA) chains on `threads` threads at once.
fn peak_gflops(threads: usize, fma: bool) -> f64 {
    const ITERS: u64 = 200_000_000;
    let t = Instant::now();
    let flops: f64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads).map(|_| s.spawn(move || dp_loop(ITERS / 8, fma))).collect();
        hs.into_iter().map(|h| h.join().expect("peak thread")).sum()
    });
    flops / t.elapsed().as_secs_f64() / 1e9
}

/// Flops done by `iters` rounds of 24 independent `vdpbf16ps` or f32 FMAs (0 without them).
fn dp_loop(iters: u64, fma: bool) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if fma && Isa::Avx512.is_supported() {
        // SAFETY: the CPU has AVX-512 F.
        let sink = unsafe { x86::fma_chains(iters) };
        std::hint::black_box(sink);
        return iters as f64 * 24.0 * 32.0;
    }
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx512Bf16.is_supported() {
        // SAFETY: the CPU has AVX-512 BF16.
        let sink = unsafe { x86::chains(iters) };
        std::hint::black_box(sink);
        return iters as f64 * 24.0 * 64.0;
    }
    let _ = (iters, fma);
    0.0
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_op_in_unsafe_fn)]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn chains(iters: u64) -> f32 {
        let a: __m512bh = std::mem::transmute(_mm512_set1_epi32(0x3f80_3f80));
        let b: __m512bh = std::mem::transmute(_mm512_set1_epi32(0x3c00_3c00));
        let mut acc = [_mm512_setzero_ps(); 24];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_dpbf16_ps(*v, a, b);
            }
        }
        let mut s = _mm512_setzero_ps();
        for v in acc {
            s = _mm512_add_ps(s, v);
        }
        _mm512_reduce_add_ps(s)
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_chains(iters: u64) -> f32 {
        let (a, b) = (_mm512_set1_ps(1.0), _mm512_set1_ps(1e-3));
        let mut acc = [_mm512_setzero_ps(); 24];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(a, b, *v);
            }
        }
        acc.iter().fold(0.0, |s, v| s + _mm512_reduce_add_ps(*v))
    }
}
