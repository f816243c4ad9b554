//! Where the decoder uses docseek's own kernels (`docseek_kernels::ops`) instead of candle's
//! generic ops: on CUDA devices (in a `--features cuda` build) by default, on the CPU only when
//! forced (their CPU path is the plain reference: slow, for tests of the wiring).
//!
//! The call sites are small hooks: [`super::layers::RmsNorm`] (fused RMSNorm, and with the
//! residual add before it), [`super::layers::Mlp`] (SiLU-and-multiply) and [`super::moe::Moe`]
//! (the whole routed MoE on the device: [`super::cuda_moe::FusedMoe`]).
//!
//! `DOCSEEK_KERNELS=off` turns every hook off (candle's generic ops only), e.g. to compare;
//! `DOCSEEK_FP8=1` stores the routed experts as FP8 e4m3 with 128x128 block scales.

use std::sync::atomic::{AtomicU8, Ordering};

use candle_core::{DType, Device};

/// Process-wide override: 0 = by device (default), 1 = on everywhere, 2 = off everywhere.
static OVERRIDE: AtomicU8 = AtomicU8::new(0);

/// Forces the hooks on (also on the CPU) or off for models loaded from now on; `None`
/// restores the default (on for CUDA when the kernels are built, off for the CPU).
pub fn force_kernels(on: Option<bool>) {
    OVERRIDE.store(
        match on {
            None => 0,
            Some(true) => 1,
            Some(false) => 2,
        },
        Ordering::SeqCst,
    );
}

fn env_off() -> bool {
    std::env::var("DOCSEEK_KERNELS").is_ok_and(|v| matches!(v.trim(), "off" | "0" | "false" | "no"))
}

/// Whether the hooks run docseek's kernels for activations on `dev` in `dtype`.
pub fn use_kernels(dev: &Device, dtype: DType) -> bool {
    if !matches!(dtype, DType::F32 | DType::BF16 | DType::F16) {
        return false;
    }
    match OVERRIDE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => docseek_kernels::ops::has_cuda_kernels(dev) && !env_off(),
    }
}

/// Whether the MoE's routed experts run fused (device gate, one grouped GEMM per projection)
/// for a model on `dev` in `dtype`: bf16 or f32 (the grouped GEMM's activation types).
pub fn use_fused_moe(dev: &Device, dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::BF16) && use_kernels(dev, dtype)
}

/// Whether routed experts are stored as FP8 (`DOCSEEK_FP8=1`; or forced by [`force_fp8`]).
pub fn fp8_experts() -> bool {
    FP8.load(Ordering::Relaxed) == 1
        || (FP8.load(Ordering::Relaxed) == 0
            && std::env::var("DOCSEEK_FP8").is_ok_and(|v| matches!(v.trim(), "1" | "on" | "true")))
}

static FP8: AtomicU8 = AtomicU8::new(0);

/// Forces FP8 experts on or off for models loaded from now on (`None`: `DOCSEEK_FP8` decides).
pub fn force_fp8(on: Option<bool>) {
    FP8.store(
        match on {
            None => 0,
            Some(true) => 1,
            Some(false) => 2,
        },
        Ordering::SeqCst,
    );
}

/// One line for logs and `--version`: the kernel build and whether the hooks are on here.
pub fn describe(dev: &Device) -> String {
    format!(
        "kernels: {} ({})",
        docseek_kernels::build_info(),
        if use_kernels(dev, DType::BF16) { "on for this device" } else { "generic candle ops on this device" }
    )
}
