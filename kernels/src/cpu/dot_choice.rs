//! Which products the bf16 GEMM uses on a CPU with AVX-512 BF16: `vdpbf16ps` on the bf16
//! values, or f32 FMAs on the values widened (exact either way, f32 accumulation).
//!
//! Some CPUs run `vdpbf16ps` at a fraction of their FMA rate (measured on a 2-vCPU Intel Xeon
//! with AVX-512 BF16 and no AMX: the f32 kernel reaches about 1.4x the `vdpbf16ps` kernel's
//! GFLOP/s), others at the full rate. The choice is timed once per process on two tight loops
//! of independent chains; `DOCSEEK_GEMM_DOT=dpbf16|fma` fixes it.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use super::isa::Isa;

/// Environment variable that fixes the GEMM's products (`dpbf16` or `fma`).
pub const DOT_ENV: &str = "DOCSEEK_GEMM_DOT";

/// `vdpbf16ps` is used while its time per instruction is below this many FMA times: it does
/// twice an FMA's products, and the f32 kernel pays for widening the weights.
const MAX_DP_TO_FMA_TIME: f64 = 2.4;

/// 0: no override, 1: force `vdpbf16ps`, 2: force FMA (tests).
static FORCED: AtomicU8 = AtomicU8::new(0);

/// Forces the choice for this process (`None`: back to the timed one); for tests that run
/// both kernels on one machine.
pub fn force(native: Option<bool>) {
    FORCED.store(
        match native {
            None => 0,
            Some(true) => 1,
            Some(false) => 2,
        },
        Ordering::SeqCst,
    );
}

/// Whether the GEMM at level `isa` multiplies with `vdpbf16ps`.
pub fn native_dot(isa: Isa) -> bool {
    if !(isa == Isa::Avx512Bf16 && Isa::Avx512Bf16.is_supported()) {
        return false;
    }
    match FORCED.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => dpbf16_is_faster(),
    }
}

fn dpbf16_is_faster() -> bool {
    static CHOICE: OnceLock<bool> = OnceLock::new();
    *CHOICE.get_or_init(|| match std::env::var(DOT_ENV).ok().as_deref().map(str::trim) {
        Some("dpbf16") => true,
        Some("fma") => false,
        _ => time_ratio() < MAX_DP_TO_FMA_TIME,
    })
}

/// Best-of-5 time of the `vdpbf16ps` loop over the FMA loop (same instruction count).
fn time_ratio() -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        const ITERS: u64 = 20_000;
        let (mut dp, mut fma) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..5 {
            let t = Instant::now();
            // SAFETY: callers checked AVX-512 BF16 (see `native_dot`).
            std::hint::black_box(unsafe { x86::dp_chains(ITERS) });
            dp = dp.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            // SAFETY: AVX-512 F is part of the level.
            std::hint::black_box(unsafe { x86::fma_chains(ITERS) });
            fma = fma.min(t.elapsed().as_secs_f64());
        }
        dp / fma.max(1e-12)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = Instant::now();
        0.0
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_op_in_unsafe_fn)]
mod x86 {
    use std::arch::x86_64::*;

    /// 24 independent `vdpbf16ps` chains, `iters` rounds.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn dp_chains(iters: u64) -> f32 {
        let a: __m512bh = std::mem::transmute(_mm512_set1_epi32(0x3f80_3f80));
        let b: __m512bh = std::mem::transmute(_mm512_set1_epi32(0x3c00_3c00));
        let mut acc = [_mm512_setzero_ps(); 24];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_dpbf16_ps(*v, a, b);
            }
        }
        acc.iter().fold(0.0, |s, v| s + _mm512_reduce_add_ps(*v))
    }

    /// 24 independent f32 FMA chains, `iters` rounds.
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
