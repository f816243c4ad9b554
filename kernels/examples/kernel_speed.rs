//! Rough speed of the CPU kernels at the decoder's shapes (not a test; run with
//! `cargo run -p docseek-kernels --release --example kernel_speed [isa]`).
//!
//! GEMV: 1 activation row against ~1 GB of weights split into 3 MB matrices (the per-call
//! overhead of decode included), reported as GB/s of weights streamed. GEMM: 903 rows against
//! a 1280 -> 6848 weight, reported as GFLOP/s.

use std::time::Instant as WallInstant;

/// Times on-CPU nanoseconds of the calling thread when `KERNEL_SPEED_CPU_TIME=1` (for a
/// loaded machine, with `RAYON_NUM_THREADS=1`), wall time otherwise.
struct Instant(Option<u64>, WallInstant);

impl Instant {
    fn now() -> Self {
        Instant(thread_cpu_ns(), WallInstant::now())
    }
    fn elapsed(&self) -> std::time::Duration {
        match (self.0, thread_cpu_ns()) {
            (Some(a), Some(b)) => std::time::Duration::from_nanos(b - a),
            _ => self.1.elapsed(),
        }
    }
}

fn thread_cpu_ns() -> Option<u64> {
    if std::env::var("KERNEL_SPEED_CPU_TIME").ok()? != "1" {
        return None;
    }
    std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().next()?.parse().ok()
}

use docseek_kernels::cpu::gemv_bf16::Acts;
use docseek_kernels::cpu::matmul::{matmul, WeightRef};
use docseek_kernels::cpu::qmatmul::QMatRef;
use docseek_kernels::cpu::quant::{blocks_per_row, quantize_row, QFormat};
use docseek_kernels::cpu::Isa;
use half::{bf16, f16};

fn main() {
    let isa = std::env::args().nth(1).and_then(|s| Isa::parse(&s)).unwrap_or_else(Isa::active);
    let only = std::env::args().nth(2).unwrap_or_default();
    let want = |part: &str| only.is_empty() || only == part;
    println!("isa {isa}, {} threads", docseek_kernels::cpu::pool::threads());
    let (n, k) = (1280, 1280);
    let mats = 1 << 30 >> 1 >> 21; // ~1 GB of bf16 in [1280, 1280] matrices
    let ws: Vec<Vec<bf16>> = (0..mats).map(|i| vec![bf16::from_f32(0.001 * (i % 7) as f32); n * k]).collect();
    let x: Vec<bf16> = (0..k).map(|i| bf16::from_f32((i % 13) as f32 * 0.1)).collect();
    let mut out = vec![0f32; n];
    for round in 0..if want("bf16") { 3 } else { 0 } {
        let t = Instant::now();
        for w in &ws {
            matmul(isa, &WeightRef::Bf16 { data: w, rows: n, cols: k }, Acts::Bf16(&x), 1, &mut out);
        }
        let s = t.elapsed().as_secs_f64();
        let bytes = (mats * n * k * 2) as f64;
        println!(
            "bf16 gemv round {round}: {:.1} GB/s ({} calls, {:.1} us/call)",
            bytes / s / 1e9,
            mats,
            s / mats as f64 * 1e6
        );
    }
    drop(ws);
    for format in [QFormat::Q8, QFormat::Q4] {
        if !want(format.name()) {
            continue;
        }
        let rb = format.row_bytes(k);
        let bp = blocks_per_row(k);
        let per = n * rb + n * bp * 2;
        let count = (1usize << 30) / per;
        let src: Vec<f32> = (0..k).map(|i| ((i * 31 % 17) as f32 - 8.0) * 0.01).collect();
        let mut qs1 = vec![0u8; rb];
        let mut sc1 = vec![f16::ZERO; bp];
        quantize_row(format, &src, &mut qs1, &mut sc1);
        let qs: Vec<Vec<u8>> = (0..count).map(|_| qs1.repeat(n)).collect();
        let sc: Vec<Vec<f16>> = (0..count).map(|_| sc1.repeat(n)).collect();
        for round in 0..2 {
            let t = Instant::now();
            for (q, s) in qs.iter().zip(&sc) {
                let w = WeightRef::Quant(QMatRef { format, qs: q, scales: s, rows: n, cols: k });
                matmul(isa, &w, Acts::Bf16(&x), 1, &mut out);
            }
            let s = t.elapsed().as_secs_f64();
            println!("{} gemv round {round}: {:.1} GB/s", format.name(), (count * per) as f64 / s / 1e9);
        }
    }
    for format in [QFormat::Q8, QFormat::Q4] {
        if !want(&format!("{}hot", format.name())) {
            continue;
        }
        // A weight that stays in L2: the kernel's compute rate alone.
        let (n, k) = (512, 1280);
        let src: Vec<f32> = (0..n * k).map(|i| ((i * 31 % 17) as f32 - 8.0) * 0.01).collect();
        let (qs, sc) = docseek_kernels::linear::quantize_rows(format, &src, n, k);
        let w = WeightRef::Quant(QMatRef { format, qs: &qs, scales: &sc, rows: n, cols: k });
        let mut o = vec![0f32; n];
        let t = Instant::now();
        let reps = 5000;
        for _ in 0..reps {
            matmul(isa, &w, Acts::Bf16(&x), 1, &mut o);
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "{} hot gemv: {:.1} GB/s of weights, {:.2} us/call",
            format.name(),
            (reps * (qs.len() + sc.len() * 2)) as f64 / s / 1e9,
            s / reps as f64 * 1e6
        );
    }
    if !want("gemm") {
        return;
    }
    let (m, k, n) = (903, 1280, 6848);
    let a: Vec<bf16> = (0..m * k).map(|i| bf16::from_f32((i % 11) as f32 * 0.01)).collect();
    let w: Vec<bf16> = (0..n * k).map(|i| bf16::from_f32((i % 5) as f32 * 0.01)).collect();
    let mut out = vec![0f32; m * n];
    for round in 0..3 {
        let t = Instant::now();
        matmul(isa, &WeightRef::Bf16 { data: &w, rows: n, cols: k }, Acts::Bf16(&a), m, &mut out);
        let s = t.elapsed().as_secs_f64();
        println!("bf16 gemm {m}x{k}x{n} round {round}: {:.0} GFLOP/s", 2.0 * (m * k * n) as f64 / s / 1e9);
    }
    let (m2, n2) = (85, 896);
    for round in 0..2 {
        let t = Instant::now();
        for _ in 0..20 {
            matmul(
                isa,
                &WeightRef::Bf16 { data: &w[..n2 * k], rows: n2, cols: k },
                Acts::Bf16(&a[..m2 * k]),
                m2,
                &mut out,
            );
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "bf16 gemm {m2}x{k}x{n2} (expert) round {round}: {:.0} GFLOP/s",
            20.0 * 2.0 * (m2 * k * n2) as f64 / s / 1e9
        );
    }
    for format in [QFormat::Q8, QFormat::Q4] {
        let rb = format.row_bytes(k);
        let bp = blocks_per_row(k);
        let wf: Vec<f32> = w.iter().map(|v| v.to_f32()).collect();
        let mut qs = vec![0u8; n * rb];
        let mut sc = vec![f16::ZERO; n * bp];
        for r in 0..n {
            quantize_row(format, &wf[r * k..(r + 1) * k], &mut qs[r * rb..(r + 1) * rb], &mut sc[r * bp..(r + 1) * bp]);
        }
        let t = Instant::now();
        let wq = WeightRef::Quant(QMatRef { format, qs: &qs, scales: &sc, rows: n, cols: k });
        matmul(isa, &wq, Acts::Bf16(&a), m, &mut out);
        let s = t.elapsed().as_secs_f64();
        println!("{} gemm {m}x{k}x{n}: {:.0} GOP/s", format.name(), 2.0 * (m * k * n) as f64 / s / 1e9);
    }
}
