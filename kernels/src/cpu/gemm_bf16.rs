//! Blocked bf16 GEMM for many activation rows (prefill, the vision encoder):
//! `out[m, n] = Σ_k a[m, k] w[n, k]`, same semantics as [`super::gemv_bf16`].
//!
//! The weight `[N, K]` stays row-major in its storage; each task packs one block of
//! [`NC`] weight rows x [`KC`] columns into panels of [`NR`] rows with the k values of each row
//! in pairs (`[k pair][row][2]`), the layout `vdpbf16ps` reads with one activation pair
//! broadcast. The micro-kernel keeps an `MR x NR` f32 tile in registers. Tasks split N, so
//! threads never write the same output.

// The SIMD bodies are `unsafe fn`s with `#[target_feature]`: every line is raw-pointer and
// intrinsic work whose safety contract is the function's own (stated on each), so the lint that
// asks for an inner `unsafe` block on every operation is off for this module.
#![allow(unsafe_op_in_unsafe_fn)]
// Register-tiled loops index several arrays by the same lane or row counter.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use half::bf16;

use super::gemv_bf16::PreparedActs;
use super::isa::Isa;
use super::pool;

/// Weight rows per packed panel (two 16-lane vectors).
pub const NR: usize = 32;
/// Weight rows per task (packed together per k block).
pub const NC: usize = 128;
/// Columns (k) per packed block; even, so only the last block can end in a half pair.
pub const KC: usize = 512;

/// Source of packed weight blocks: the bf16 weight, or a quantized one dequantized while
/// packing.
pub trait PanelSource: Sync {
    /// Weight rows.
    fn rows(&self) -> usize;
    /// Weight columns (K).
    fn cols(&self) -> usize;
    /// Writes row `n`, columns `k0..k0 + out.len()`, as f32-exact bf16 values.
    fn row_slice(&self, n: usize, k0: usize, out: &mut [bf16]);
    /// The weight as row-major bf16 `[rows, cols]`, when it is stored so (packing then reads
    /// it directly).
    fn bf16_rows(&self) -> Option<&[bf16]> {
        None
    }
}

/// A row-major bf16 weight as a [`PanelSource`].
pub struct Bf16Rows<'a> {
    /// `[rows, cols]` values.
    pub data: &'a [bf16],
    /// Rows (N).
    pub rows: usize,
    /// Columns (K).
    pub cols: usize,
}

impl PanelSource for Bf16Rows<'_> {
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn row_slice(&self, n: usize, k0: usize, out: &mut [bf16]) {
        out.copy_from_slice(&self.data[n * self.cols + k0..n * self.cols + k0 + out.len()]);
    }
    fn bf16_rows(&self) -> Option<&[bf16]> {
        Some(self.data)
    }
}

/// Packs rows `n0..n0 + nc` and columns `k0..k0 + kc` of `w` into `buf`: panel p, pair j,
/// row r at `((p * pairs + j) * NR + r) * 2`; missing rows and the odd half pair are zero.
fn pack(
    isa: Isa,
    w: &dyn PanelSource,
    n0: usize,
    nc: usize,
    k0: usize,
    kc: usize,
    buf: &mut Vec<bf16>,
    row: &mut Vec<bf16>,
) {
    let pairs = kc.div_ceil(2);
    let panels = nc.div_ceil(NR);
    buf.clear();
    buf.resize(panels * pairs * NR * 2, bf16::ZERO);
    #[cfg(target_arch = "x86_64")]
    if let Some(data) = w.bf16_rows() {
        let k = w.cols();
        assert!(data.len() >= (n0 + nc) * k && k0 + kc <= k);
        if isa >= Isa::Avx512 && Isa::Avx512.is_supported() && k * 2 * 16 < i32::MAX as usize {
            // SAFETY: AVX-512 is present; rows n0..n0 + nc, columns k0..k0 + kc lie in `data`
            // (checked above) and `buf` holds every panel.
            unsafe {
                x86::pack_rows(data.as_ptr().add(n0 * k + k0) as *const u16, k, nc, kc, buf.as_mut_ptr() as *mut u16)
            };
            return;
        }
    }
    // One slot past the row so an odd row ends in a zero half pair.
    row.resize(2 * pairs, bf16::ZERO);
    for i in 0..nc {
        w.row_slice(n0 + i, k0, &mut row[..kc]);
        if kc % 2 == 1 {
            row[kc] = bf16::ZERO;
        }
        let (p, r) = (i / NR, i % NR);
        // Pairs move as 32-bit words: pair j of row r lands at word (p * pairs + j) * NR + r.
        let dst = &mut buf[p * pairs * NR * 2..(p + 1) * pairs * NR * 2];
        for (j, pair) in row.chunks_exact(2).enumerate() {
            let at = (j * NR + r) * 2;
            dst[at] = pair[0];
            dst[at + 1] = pair[1];
        }
    }
}

thread_local! {
    static PACK: std::cell::RefCell<(Vec<bf16>, Vec<bf16>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// `out[m * ldc + n] = Σ_k a[m, k] w[n, k]` for all `m < m_rows`, `n < w.rows()`, threaded
/// over blocks of [`NC`] weight rows.
pub fn gemm(isa: Isa, w: &dyn PanelSource, a: &PreparedActs, m_rows: usize, out: &mut [f32], ldc: usize) {
    gemm_on(isa, w, a, m_rows, out, ldc, true)
}

/// [`gemm`] on the calling thread only (for callers that split a batch of products over the
/// threads themselves).
pub fn gemm_serial(isa: Isa, w: &dyn PanelSource, a: &PreparedActs, m_rows: usize, out: &mut [f32], ldc: usize) {
    gemm_on(isa, w, a, m_rows, out, ldc, false)
}

fn gemm_on(
    isa: Isa,
    w: &dyn PanelSource,
    a: &PreparedActs,
    m_rows: usize,
    out: &mut [f32],
    ldc: usize,
    threaded: bool,
) {
    let (n, k) = (w.rows(), w.cols());
    assert!(ldc >= n && (m_rows == 0 || (m_rows - 1) * ldc + n <= out.len()), "output too small");
    match a {
        PreparedActs::Bf16(v) => assert!(v.len() >= m_rows * k),
        PreparedActs::F32(v) => assert!(v.len() >= m_rows * k),
    }
    // Without native bf16 products (or where f32 FMAs are faster) the activations are read
    // as f32.
    let widened;
    let a = match a {
        PreparedActs::Bf16(v) if !super::dot_choice::native_dot(isa) && !super::amx::active(isa) => {
            widened = PreparedActs::F32(std::borrow::Cow::Owned(v[..m_rows * k].iter().map(|x| x.to_f32()).collect()));
            &widened
        }
        _ => a,
    };
    let out_ptr = SendPtr(out.as_mut_ptr());
    // Blocks of at most NC rows, as many per thread (so threads finish together): 896 rows
    // on 2 threads are 8 blocks of 96-128 rows, not 7 of 128.
    let threads = if threaded { pool::threads() } else { 1 };
    let per_round = threads * NC;
    let ranges = pool::split_aligned(n, threads * n.div_ceil(per_round), NR);
    let tasks = ranges.len();
    let run = |t: usize| {
        let n0 = ranges[t].start;
        let nc = ranges[t].len();
        PACK.with(|cell| {
            let (buf, row) = &mut *cell.borrow_mut();
            let mut k0 = 0;
            while k0 < k {
                let kc = KC.min(k - k0);
                pack(isa, w, n0, nc, k0, kc, buf, row);
                // SAFETY: tasks write disjoint column ranges n0..n0 + nc of `out`, whose
                // extent was checked above.
                unsafe { block(isa, a, k, m_rows, k0, kc, buf, n0, nc, out_ptr.get(), ldc) };
                k0 += kc;
            }
        });
    };
    if threaded {
        pool::for_each_task(tasks, run);
    } else {
        (0..tasks).for_each(run);
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint output ranges to tasks.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// One packed block against all activation rows.
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    isa: Isa,
    a: &PreparedActs,
    k: usize,
    m_rows: usize,
    k0: usize,
    kc: usize,
    packed: &[bf16],
    n0: usize,
    nc: usize,
    out: *mut f32,
    ldc: usize,
) {
    let first = k0 == 0;
    let pairs = kc.div_ceil(2);
    let panels = nc.div_ceil(NR);
    #[cfg(target_arch = "x86_64")]
    if let PreparedActs::Bf16(v) = a {
        if super::amx::active(isa) {
            debug_assert!(packed.len() >= panels * pairs * NR * 2);
            super::amx::block(
                v.as_ptr().add(k0) as *const u16,
                k,
                m_rows,
                kc,
                packed.as_ptr() as *const u16,
                nc,
                out.add(n0),
                ldc,
                first,
            );
            return;
        }
    }
    for p in 0..panels {
        let cols = NR.min(nc - p * NR);
        let panel = &packed[p * pairs * NR * 2..(p + 1) * pairs * NR * 2];
        let c = out.add(n0 + p * NR);
        match a {
            PreparedActs::Bf16(v) => {
                // `gemm` hands bf16 activations only to a supported native level.
                #[cfg(target_arch = "x86_64")]
                x86::panel_dpbf16(v.as_ptr().add(k0) as *const u16, k, m_rows, kc, panel, c, ldc, cols, first);
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!("bf16 activations without a native bf16 level {v:?}");
            }
            PreparedActs::F32(v) => {
                #[cfg(target_arch = "x86_64")]
                match isa {
                    Isa::Avx512 | Isa::Avx512Bf16 if Isa::Avx512.is_supported() => {
                        x86::panel_avx512(v.as_ptr().add(k0), k, m_rows, kc, panel, c, ldc, cols, first);
                        continue;
                    }
                    Isa::Avx2 if Isa::Avx2.is_supported() => {
                        x86::panel_avx2(v.as_ptr().add(k0), k, m_rows, kc, panel, c, ldc, cols, first);
                        continue;
                    }
                    _ => {}
                }
                panel_portable(v.as_ptr().add(k0), k, m_rows, kc, panel, c, ldc, cols, first);
            }
        }
    }
}

/// Scalar micro-kernel over one panel: rows of `a` (f32, stride `lda`) against `kc` packed
/// columns; accumulates into (or, when `first`, overwrites) `cols` columns of `c`.
#[allow(clippy::too_many_arguments)]
unsafe fn panel_portable(
    a: *const f32,
    lda: usize,
    m_rows: usize,
    kc: usize,
    panel: &[bf16],
    c: *mut f32,
    ldc: usize,
    cols: usize,
    first: bool,
) {
    for m in 0..m_rows {
        let ar = std::slice::from_raw_parts(a.add(m * lda), kc);
        let cr = std::slice::from_raw_parts_mut(c.add(m * ldc), cols);
        let mut acc = [0f32; NR];
        for (j, pair) in panel.chunks_exact(NR * 2).enumerate() {
            let a0 = ar[2 * j];
            let a1 = if 2 * j + 1 < kc { ar[2 * j + 1] } else { 0.0 };
            for (r, v) in acc.iter_mut().enumerate() {
                *v += pair[2 * r].to_f32() * a0 + pair[2 * r + 1].to_f32() * a1;
            }
        }
        for (r, v) in cr.iter_mut().enumerate() {
            *v = if first { acc[r] } else { *v + acc[r] };
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    use half::bf16;

    use super::NR;

    /// Activation rows per micro-tile on the AVX-512 levels.
    const MR512: usize = 12;
    /// Activation rows per micro-tile on AVX2 (16 weight rows per pass).
    const MR256: usize = 4;

    macro_rules! dispatch_mr12 {
        ($f:ident, $mr:expr, $($arg:expr),*) => {
            match $mr {
                1 => $f::<1>($($arg),*), 2 => $f::<2>($($arg),*), 3 => $f::<3>($($arg),*),
                4 => $f::<4>($($arg),*), 5 => $f::<5>($($arg),*), 6 => $f::<6>($($arg),*),
                7 => $f::<7>($($arg),*), 8 => $f::<8>($($arg),*), 9 => $f::<9>($($arg),*),
                10 => $f::<10>($($arg),*), 11 => $f::<11>($($arg),*), _ => $f::<12>($($arg),*),
            }
        };
    }

    /// Packs `nc` rows of `kc` values (row stride `ld`) at `src` into the panels at `dst`
    /// (the layout of [`super::pack`], every slot written): 16 rows' pair `j` at a time with
    /// one gather; missing rows and the odd half pair are zero.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn pack_rows(src: *const u16, ld: usize, nc: usize, kc: usize, dst: *mut u16) {
        let pairs = kc.div_ceil(2);
        let full = kc / 2;
        let stride = (ld * 2) as i32;
        let lanes = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(stride),
        );
        for p in 0..nc.div_ceil(NR) {
            let panel = dst.add(p * pairs * NR * 2) as *mut i32;
            for half in 0..2 {
                let r0 = p * NR + half * 16;
                let rows = nc.saturating_sub(r0).min(16);
                let mask: __mmask16 = if rows == 16 { 0xFFFF } else { ((1u32 << rows) - 1) as u16 };
                let base = src.add(r0.min(nc) * ld) as *const u8;
                for j in 0..full {
                    let v = if rows == 0 {
                        _mm512_setzero_si512()
                    } else {
                        _mm512_mask_i32gather_epi32::<1>(
                            _mm512_setzero_si512(),
                            mask,
                            lanes,
                            base.add(4 * j) as *const _,
                        )
                    };
                    _mm512_storeu_si512(panel.add(j * NR + half * 16) as *mut _, v);
                }
                if kc % 2 == 1 {
                    for r in 0..16 {
                        let lo = if r < rows { *src.add((r0 + r) * ld + 2 * full) as i32 } else { 0 };
                        *panel.add(full * NR + half * 16 + r) = lo;
                    }
                }
            }
        }
    }

    #[inline(always)]
    fn col_mask(cols: usize, half: usize) -> __mmask16 {
        let n = cols.saturating_sub(half * 16).min(16);
        if n == 16 {
            0xFFFF
        } else {
            ((1u32 << n) - 1) as u16
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub unsafe fn panel_dpbf16(
        a: *const u16,
        lda: usize,
        m_rows: usize,
        kc: usize,
        panel: &[bf16],
        c: *mut f32,
        ldc: usize,
        cols: usize,
        first: bool,
    ) {
        // Tiles of even height: 85 rows are 8 tiles of 10-11, not 7 of 12 and one lone row.
        let tiles = m_rows.div_ceil(MR512);
        let mut m = 0;
        for t in 0..tiles {
            let mr = (m_rows - m).div_ceil(tiles - t);
            dispatch_mr12!(
                tile_dpbf16,
                mr,
                a.add(m * lda),
                lda,
                kc,
                panel.as_ptr() as *const u16,
                c.add(m * ldc),
                ldc,
                cols,
                first
            );
            m += mr;
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn tile_dpbf16<const MR: usize>(
        a: *const u16,
        lda: usize,
        kc: usize,
        b: *const u16,
        c: *mut f32,
        ldc: usize,
        cols: usize,
        first: bool,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        let full = kc / 2;
        for j in 0..full {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(j * NR * 2) as *const _));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(j * NR * 2 + 32) as *const _));
            for i in 0..MR {
                let pair = (a.add(i * lda + 2 * j) as *const i32).read_unaligned();
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair));
                acc[i][0] = _mm512_dpbf16_ps(acc[i][0], av, b0);
                acc[i][1] = _mm512_dpbf16_ps(acc[i][1], av, b1);
            }
        }
        if kc % 2 == 1 {
            let j = full;
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(j * NR * 2) as *const _));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(j * NR * 2 + 32) as *const _));
            for i in 0..MR {
                let lo = *a.add(i * lda + 2 * j) as i32;
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(lo));
                acc[i][0] = _mm512_dpbf16_ps(acc[i][0], av, b0);
                acc[i][1] = _mm512_dpbf16_ps(acc[i][1], av, b1);
            }
        }
        store_tile::<MR>(&acc, c, ldc, cols, first);
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn store_tile<const MR: usize>(acc: &[[__m512; 2]; MR], c: *mut f32, ldc: usize, cols: usize, first: bool) {
        let (m0, m1) = (col_mask(cols, 0), col_mask(cols, 1));
        for i in 0..MR {
            let p = c.add(i * ldc);
            let (mut v0, mut v1) = (acc[i][0], acc[i][1]);
            if !first {
                v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, p));
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, p.add(16)));
            }
            _mm512_mask_storeu_ps(p, m0, v0);
            if m1 != 0 {
                _mm512_mask_storeu_ps(p.add(16), m1, v1);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn panel_avx512(
        a: *const f32,
        lda: usize,
        m_rows: usize,
        kc: usize,
        panel: &[bf16],
        c: *mut f32,
        ldc: usize,
        cols: usize,
        first: bool,
    ) {
        let mut m = 0;
        while m < m_rows {
            let mr = (m_rows - m).min(8);
            match mr {
                1 => tile_avx512::<1>(
                    a.add(m * lda),
                    lda,
                    kc,
                    panel.as_ptr() as *const u16,
                    c.add(m * ldc),
                    ldc,
                    cols,
                    first,
                ),
                2 => tile_avx512::<2>(
                    a.add(m * lda),
                    lda,
                    kc,
                    panel.as_ptr() as *const u16,
                    c.add(m * ldc),
                    ldc,
                    cols,
                    first,
                ),
                3 => tile_avx512::<3>(
                    a.add(m * lda),
                    lda,
                    kc,
                    panel.as_ptr() as *const u16,
                    c.add(m * ldc),
                    ldc,
                    cols,
                    first,
                ),
                4 => tile_avx512::<4>(
                    a.add(m * lda),
                    lda,
                    kc,
                    panel.as_ptr() as *const u16,
                    c.add(m * ldc),
                    ldc,
                    cols,
                    first,
                ),
                5 => tile_avx512::<5>(
                    a.add(m * lda),
                    lda,
                    kc,
                    panel.as_ptr() as *const u16,
                    c.add(m * ldc),
                    ldc,
                    cols,
                    first,
                ),
                6 => tile_avx512::<6>(
                    a.add(m * lda),
                    lda,
                    kc,
                    panel.as_ptr() as *const u16,
                    c.add(m * ldc),
                    ldc,
                    cols,
                    first,
                ),
                7 => tile_avx512::<7>(
                    a.add(m * lda),
                    lda,
                    kc,
                    panel.as_ptr() as *const u16,
                    c.add(m * ldc),
                    ldc,
                    cols,
                    first,
                ),
                _ => tile_avx512::<8>(
                    a.add(m * lda),
                    lda,
                    kc,
                    panel.as_ptr() as *const u16,
                    c.add(m * ldc),
                    ldc,
                    cols,
                    first,
                ),
            }
            m += mr;
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn tile_avx512<const MR: usize>(
        a: *const f32,
        lda: usize,
        kc: usize,
        b: *const u16,
        c: *mut f32,
        ldc: usize,
        cols: usize,
        first: bool,
    ) {
        let hi_mask = _mm512_set1_epi32(0xFFFF_0000u32 as i32);
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        let pairs = kc.div_ceil(2);
        for j in 0..pairs {
            let v0 = _mm512_loadu_si512(b.add(j * NR * 2) as *const _);
            let v1 = _mm512_loadu_si512(b.add(j * NR * 2 + 32) as *const _);
            let e0 = _mm512_castsi512_ps(_mm512_slli_epi32(v0, 16));
            let o0 = _mm512_castsi512_ps(_mm512_and_si512(v0, hi_mask));
            let e1 = _mm512_castsi512_ps(_mm512_slli_epi32(v1, 16));
            let o1 = _mm512_castsi512_ps(_mm512_and_si512(v1, hi_mask));
            let has_odd = 2 * j + 1 < kc;
            for i in 0..MR {
                let a0 = _mm512_set1_ps(*a.add(i * lda + 2 * j));
                acc[i][0] = _mm512_fmadd_ps(a0, e0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(a0, e1, acc[i][1]);
                if has_odd {
                    let a1 = _mm512_set1_ps(*a.add(i * lda + 2 * j + 1));
                    acc[i][0] = _mm512_fmadd_ps(a1, o0, acc[i][0]);
                    acc[i][1] = _mm512_fmadd_ps(a1, o1, acc[i][1]);
                }
            }
        }
        store_tile::<MR>(&acc, c, ldc, cols, first);
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn panel_avx2(
        a: *const f32,
        lda: usize,
        m_rows: usize,
        kc: usize,
        panel: &[bf16],
        c: *mut f32,
        ldc: usize,
        cols: usize,
        first: bool,
    ) {
        let b = panel.as_ptr() as *const u16;
        let mut m = 0;
        while m < m_rows {
            let mr = (m_rows - m).min(MR256);
            for half in 0..2 {
                if cols <= half * 16 {
                    break;
                }
                let (a_m, c_m) = (a.add(m * lda), c.add(m * ldc + half * 16));
                let hc = (cols - half * 16).min(16);
                match mr {
                    1 => tile_avx2::<1>(a_m, lda, kc, b.add(half * 32), c_m, ldc, hc, first),
                    2 => tile_avx2::<2>(a_m, lda, kc, b.add(half * 32), c_m, ldc, hc, first),
                    3 => tile_avx2::<3>(a_m, lda, kc, b.add(half * 32), c_m, ldc, hc, first),
                    _ => tile_avx2::<4>(a_m, lda, kc, b.add(half * 32), c_m, ldc, hc, first),
                }
            }
            m += mr;
        }
    }

    /// 16 packed weight rows (`b` points at their first pair in the panel).
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn tile_avx2<const MR: usize>(
        a: *const f32,
        lda: usize,
        kc: usize,
        b: *const u16,
        c: *mut f32,
        ldc: usize,
        cols: usize,
        first: bool,
    ) {
        let hi_mask = _mm256_set1_epi32(0xFFFF_0000u32 as i32);
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let pairs = kc.div_ceil(2);
        for j in 0..pairs {
            let v0 = _mm256_loadu_si256(b.add(j * NR * 2) as *const _);
            let v1 = _mm256_loadu_si256(b.add(j * NR * 2 + 16) as *const _);
            let e0 = _mm256_castsi256_ps(_mm256_slli_epi32(v0, 16));
            let o0 = _mm256_castsi256_ps(_mm256_and_si256(v0, hi_mask));
            let e1 = _mm256_castsi256_ps(_mm256_slli_epi32(v1, 16));
            let o1 = _mm256_castsi256_ps(_mm256_and_si256(v1, hi_mask));
            let has_odd = 2 * j + 1 < kc;
            for i in 0..MR {
                let a0 = _mm256_set1_ps(*a.add(i * lda + 2 * j));
                acc[i][0] = _mm256_fmadd_ps(a0, e0, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(a0, e1, acc[i][1]);
                if has_odd {
                    let a1 = _mm256_set1_ps(*a.add(i * lda + 2 * j + 1));
                    acc[i][0] = _mm256_fmadd_ps(a1, o0, acc[i][0]);
                    acc[i][1] = _mm256_fmadd_ps(a1, o1, acc[i][1]);
                }
            }
        }
        for i in 0..MR {
            let mut tmp = [0f32; 16];
            _mm256_storeu_ps(tmp.as_mut_ptr(), acc[i][0]);
            _mm256_storeu_ps(tmp.as_mut_ptr().add(8), acc[i][1]);
            let p = c.add(i * ldc);
            for (r, v) in tmp.iter().take(cols).enumerate() {
                *p.add(r) = if first { *v } else { *p.add(r) + *v };
            }
        }
    }
}

/// A weight packed once into the GEMM's panels (every [`NC`] x [`KC`] block, in order), for
/// products that reuse it many times (attention's keys and values).
#[derive(Debug, Clone, Default)]
pub struct PackedWeight {
    rows: usize,
    cols: usize,
    data: Vec<bf16>,
}

/// Values in the packed block of `nc` rows and `kc` columns.
fn block_len(nc: usize, kc: usize) -> usize {
    nc.div_ceil(NR) * kc.div_ceil(2) * NR * 2
}

impl PackedWeight {
    /// Packs all of `w`, reusing this value's buffer.
    pub fn pack(&mut self, w: &dyn PanelSource) {
        let (n, k) = (w.rows(), w.cols());
        self.rows = n;
        self.cols = k;
        self.data.clear();
        let mut buf = Vec::new();
        let mut row = Vec::new();
        for n0 in (0..n).step_by(NC) {
            let nc = NC.min(n - n0);
            for k0 in (0..k).step_by(KC) {
                let kc = KC.min(k - k0);
                pack(Isa::active(), w, n0, nc, k0, kc, &mut buf, &mut row);
                debug_assert_eq!(buf.len(), block_len(nc, kc));
                self.data.extend_from_slice(&buf);
            }
        }
    }
}

/// [`gemm_serial`] against a weight packed by [`PackedWeight::pack`].
pub fn gemm_packed(isa: Isa, w: &PackedWeight, a: &PreparedActs, m_rows: usize, out: &mut [f32], ldc: usize) {
    gemm_packed_limited(isa, w, a, m_rows, out, ldc, w.rows, w.cols)
}

/// [`gemm_packed`] over the first `n_lim` weight rows and the k blocks that start below
/// `k_lim` (whole blocks: the activations must hold zeros from `k_lim` to the end of its
/// block). `a` keeps the row stride `w.cols`; only columns `..n_lim` of `out` are written.
pub fn gemm_packed_limited(
    isa: Isa,
    w: &PackedWeight,
    a: &PreparedActs,
    m_rows: usize,
    out: &mut [f32],
    ldc: usize,
    n_lim: usize,
    k_lim: usize,
) {
    let (n, k) = (w.rows, w.cols);
    let n_lim = n_lim.min(n);
    assert!(ldc >= n_lim && (m_rows == 0 || (m_rows - 1) * ldc + n_lim <= out.len()), "output too small");
    let widened;
    let a = match a {
        PreparedActs::Bf16(v) if !super::dot_choice::native_dot(isa) && !super::amx::active(isa) => {
            widened = PreparedActs::F32(std::borrow::Cow::Owned(v[..m_rows * k].iter().map(|x| x.to_f32()).collect()));
            &widened
        }
        _ => a,
    };
    match a {
        PreparedActs::Bf16(v) => assert!(v.len() >= m_rows * k),
        PreparedActs::F32(v) => assert!(v.len() >= m_rows * k),
    }
    let mut at = 0;
    for n0 in (0..n).step_by(NC) {
        let nc = NC.min(n - n0);
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            let len = block_len(nc, kc);
            if n0 < n_lim && k0 < k_lim {
                // SAFETY: the output extent was checked above; this call writes columns
                // n0..n0 + nc' (nc' <= n_lim - n0).
                unsafe {
                    block(
                        isa,
                        a,
                        k,
                        m_rows,
                        k0,
                        kc,
                        &w.data[at..at + len],
                        n0,
                        nc.min(n_lim - n0),
                        out.as_mut_ptr(),
                        ldc,
                    )
                };
            }
            at += len;
        }
    }
}
