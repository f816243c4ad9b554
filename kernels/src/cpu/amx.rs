//! Intel AMX tiles for the bf16 GEMM: `tdpbf16ps` multiplies a 16 x 32 bf16 tile of activations
//! by a 32 x 16 bf16 tile of weights into a 16 x 16 f32 tile, eight times the products of
//! sixteen `vdpbf16ps` in about the time of one (measured on a 2-vCPU Xeon with AMX: 1.8 TFLOP/s
//! per core from L1, against ~95 GFLOP/s of f32 FMAs).
//!
//! The weight panels of [`super::gemm_bf16`] already hold the tile layout `tdpbf16ps` reads
//! for its second operand (each packed row is one k pair of [`NR`] = 32 weight rows), so a
//! weight tile is a strided load of a panel; activation tiles are strided loads of the
//! row-major bf16 activations. Each call keeps a 32 x 32 output block in four tiles over all
//! the block's whole 32-column k steps; the last k columns (fewer than 32) go through the
//! `vdpbf16ps` kernel, and partial output blocks through a small scratch block.
//!
//! Linux gives a process the tile state only after `arch_prctl(ARCH_REQ_XCOMP_PERM)`; that is
//! asked once. The tiles are used only at the top level ([`Isa::Avx512Bf16`]) with bf16
//! activations; `DOCSEEK_AMX=off` turns them off.
//!
//! Rust has no stable AMX intrinsics, so the tile instructions are inline assembly; tiles 0-3
//! hold the output block, 4-5 the activations and 6-7 the weights.

// The tile bodies are `unsafe fn`s whose safety contract is the function's own.
#![allow(unsafe_op_in_unsafe_fn)]

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use super::isa::Isa;

/// Environment variable that turns the tiles off (`off`, `0`, `no`).
pub const AMX_ENV: &str = "DOCSEEK_AMX";

/// Weight rows per packed panel (the GEMM's `NR`): two 16-column tiles.
pub(crate) const NR: usize = 32;

/// 0: no override, 1: force on (where supported), 2: force off.
static FORCED: AtomicU8 = AtomicU8::new(0);

/// Forces the tiles on or off for this process (`None`: back to the detected choice); for
/// tests and benchmarks that compare both paths on one machine.
pub fn force(on: Option<bool>) {
    FORCED.store(
        match on {
            None => 0,
            Some(true) => 1,
            Some(false) => 2,
        },
        Ordering::SeqCst,
    );
}

/// Whether this CPU and kernel give the process AMX bf16 tiles (asks for them once).
pub fn is_supported() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(detect)
}

/// Whether the GEMM at level `isa` multiplies bf16 activations with the tiles.
pub fn active(isa: Isa) -> bool {
    if isa != Isa::Avx512Bf16 || !Isa::Avx512Bf16.is_supported() || !is_supported() {
        return false;
    }
    match FORCED.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => enabled_by_env(),
    }
}

fn enabled_by_env() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        !matches!(
            std::env::var(AMX_ENV).ok().as_deref().map(str::trim).map(str::to_ascii_lowercase).as_deref(),
            Some("off" | "0" | "no" | "false")
        )
    })
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    use std::arch::x86_64::__cpuid_count;
    let leaf7 = __cpuid_count(7, 0);
    let (amx_bf16, amx_tile) = (leaf7.edx & (1 << 22) != 0, leaf7.edx & (1 << 24) != 0);
    if !(amx_bf16 && amx_tile) {
        return false;
    }
    // arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA): 0 when the kernel grants the tile
    // data state to this process.
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: a plain system call with integer arguments; it touches no memory of ours.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        );
    }
    ret == 0
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// One packed weight block (panels of [`NR`] rows, `kc` columns in pairs) against `m_rows`
/// bf16 activation rows: `c[m * ldc + n] (+)= Σ_k a[m * lda + k] w[n, k]` for `n < nc`
/// (overwrites when `first`).
///
/// # Safety
/// [`active`] returned true for this process; `a` holds `m_rows` rows of stride `lda` with
/// at least `kc` readable values each; `panels` holds `nc.div_ceil(NR)` panels of
/// `kc.div_ceil(2)` pairs; `c` holds `m_rows` rows of stride `ldc` with `nc` writable values.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn block(
    a: *const u16,
    lda: usize,
    m_rows: usize,
    kc: usize,
    panels: *const u16,
    nc: usize,
    c: *mut f32,
    ldc: usize,
    first: bool,
) {
    let pairs = kc.div_ceil(2);
    let steps = kc / 32;
    let k_main = steps * 32;
    if steps > 0 {
        tile::configure();
        let mut a_pad = Vec::new();
        let mut m = 0;
        while m < m_rows {
            let rows = (m_rows - m).min(32);
            // A short last row block is copied into 32 zero-padded rows (the tiles load 32).
            let (ap, ap_ld) = if rows == 32 {
                (a.add(m * lda), lda)
            } else {
                a_pad.clear();
                a_pad.resize(32 * k_main, 0u16);
                for r in 0..rows {
                    std::ptr::copy_nonoverlapping(a.add((m + r) * lda), a_pad.as_mut_ptr().add(r * k_main), k_main);
                }
                (a_pad.as_ptr(), k_main)
            };
            for p in 0..nc.div_ceil(NR) {
                let cols = (nc - p * NR).min(NR);
                let b = panels.add(p * pairs * NR * 2);
                let cp = c.add(m * ldc + p * NR);
                if rows == 32 && cols == NR {
                    tile::block_32x32(ap, ap_ld * 2, b, steps, cp, ldc * 4, !first);
                } else {
                    let mut scratch = [0f32; 32 * NR];
                    if !first {
                        for r in 0..rows {
                            std::ptr::copy_nonoverlapping(cp.add(r * ldc), scratch.as_mut_ptr().add(r * NR), cols);
                        }
                    }
                    tile::block_32x32(ap, ap_ld * 2, b, steps, scratch.as_mut_ptr(), NR * 4, !first);
                    for r in 0..rows {
                        std::ptr::copy_nonoverlapping(scratch.as_ptr().add(r * NR), cp.add(r * ldc), cols);
                    }
                }
            }
            m += rows;
        }
        tile::release();
    }
    if k_main < kc {
        // The last k columns (fewer than 32, possibly an odd half pair) on `vdpbf16ps`.
        for p in 0..nc.div_ceil(NR) {
            let cols = (nc - p * NR).min(NR);
            let panel = std::slice::from_raw_parts(
                panels.add((p * pairs + k_main / 2) * NR * 2) as *const half::bf16,
                (pairs - k_main / 2) * NR * 2,
            );
            super::gemm_bf16::x86::panel_dpbf16(
                a.add(k_main),
                lda,
                m_rows,
                kc - k_main,
                panel,
                c.add(p * NR),
                ldc,
                cols,
                first && steps == 0,
            );
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod tile {
    use std::arch::asm;

    /// The tile palette: eight tiles of 16 rows x 64 bytes.
    #[repr(C, align(64))]
    struct Config([u8; 64]);

    static CONFIG: Config = {
        let mut c = [0u8; 64];
        c[0] = 1; // palette 1
        let mut t = 0;
        while t < 8 {
            c[16 + 2 * t] = 64; // bytes per row (u16 little-endian: 64, 0)
            c[48 + t] = 16; // rows
            t += 1;
        }
        Config(c)
    };

    /// Loads the palette on this thread (zeroes every tile).
    #[inline]
    pub unsafe fn configure() {
        asm!("ldtilecfg [{}]", in(reg) CONFIG.0.as_ptr(), options(nostack, readonly));
    }

    /// Hands the tile state back (so context switches do not save it).
    #[inline]
    pub unsafe fn release() {
        asm!("tilerelease", options(nostack, nomem));
    }

    /// `c[32 x 32] (+)= a[32 x 32 * steps] · b`, `a` row-major bf16 (stride `a_ld` bytes), `b`
    /// one packed panel (pair j of 32 columns at `j * 128` bytes), `c` f32 (stride `c_ld`
    /// bytes); `c` is read first when `load`.
    #[inline]
    pub unsafe fn block_32x32(
        a: *const u16,
        a_ld: usize,
        b: *const u16,
        steps: usize,
        c: *mut f32,
        c_ld: usize,
        load: bool,
    ) {
        let c_lo = c as *mut u8;
        let c_hi = c_lo.add(16 * c_ld);
        if load {
            asm!(
                "tileloadd tmm0, [{c0} + {ld}*1]",
                "tileloadd tmm1, [{c0} + {ld}*1 + 64]",
                "tileloadd tmm2, [{c1} + {ld}*1]",
                "tileloadd tmm3, [{c1} + {ld}*1 + 64]",
                c0 = in(reg) c_lo, c1 = in(reg) c_hi, ld = in(reg) c_ld,
                options(nostack, readonly)
            );
        } else {
            asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
        }
        let a_lo = a as *const u8;
        let a_hi = a_lo.add(16 * a_ld);
        let b = b as *const u8;
        for s in 0..steps {
            asm!(
                "tileloadd tmm4, [{a0} + {lda}*1]",
                "tileloadd tmm6, [{b0} + {ldb}*1]",
                "tileloadd tmm7, [{b0} + {ldb}*1 + 64]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tileloadd tmm5, [{a1} + {lda}*1]",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                a0 = in(reg) a_lo.add(s * 64),
                a1 = in(reg) a_hi.add(s * 64),
                b0 = in(reg) b.add(s * 16 * 128),
                lda = in(reg) a_ld,
                ldb = in(reg) 128usize,
                options(nostack, readonly)
            );
        }
        asm!(
            "tilestored [{c0} + {ld}*1], tmm0",
            "tilestored [{c0} + {ld}*1 + 64], tmm1",
            "tilestored [{c1} + {ld}*1], tmm2",
            "tilestored [{c1} + {ld}*1 + 64], tmm3",
            c0 = in(reg) c_lo, c1 = in(reg) c_hi, ld = in(reg) c_ld,
            options(nostack)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forcing_off_wins_and_forcing_on_needs_the_cpu() {
        force(Some(false));
        assert!(!active(Isa::Avx512Bf16));
        force(Some(true));
        assert_eq!(active(Isa::Avx512Bf16), Isa::Avx512Bf16.is_supported() && is_supported());
        assert!(!active(Isa::Avx512), "tiles only at the top level");
        force(None);
    }
}
