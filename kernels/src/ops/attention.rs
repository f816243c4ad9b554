//! Decode attention over the paged KV cache (MHA and MLA) and the write of new rows into the
//! paged pools, in the contract's layout (see [`crate::reference::paged_attention`]).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Device, InplaceOp3, Layout, Result, Tensor};

use super::{expect_dtype, host, no_kernel, same_device, with_float};
use crate::reference::paged_attention as reference;
pub use crate::reference::paged_attention::BLOCK_TOKENS;

fn check_tables(tables: &Tensor, lens: &Tensor, seqs: usize) -> Result<usize> {
    let (b, max_blocks) = tables.dims2()?;
    if b != seqs || lens.dims1()? != seqs {
        candle_core::bail!(
            "paged attention: tables {:?} / lens {:?} for {seqs} sequences",
            tables.shape(),
            lens.shape()
        );
    }
    expect_dtype(tables, DType::U32, "block tables")?;
    expect_dtype(lens, DType::U32, "context lens")?;
    Ok(max_blocks)
}

/// MHA decode: `q` `[seqs, heads, head_dim]` attends over the K/V pools
/// `[blocks, kv_heads, 16, head_dim]` through `tables` u32 `[seqs, max_blocks]` for `lens` u32
/// `[seqs]` tokens each; scores `q.k * scale`, softmax and sums in f32. Returns
/// `[seqs, heads, head_dim]` in q's dtype. Every table entry a sequence reads must be a valid
/// block (not checked on CUDA).
pub fn paged_attention_mha(
    q: &Tensor,
    k_pool: &Tensor,
    v_pool: &Tensor,
    tables: &Tensor,
    lens: &Tensor,
    scale: f32,
) -> Result<Tensor> {
    let (seqs, heads, dim) = q.dims3()?;
    let (_, kvh, bt, pdim) = k_pool.dims4()?;
    if bt != BLOCK_TOKENS || pdim != dim || v_pool.shape() != k_pool.shape() || kvh == 0 || heads % kvh != 0 {
        candle_core::bail!("paged_attention_mha: q {:?}, pools {:?} {:?}", q.shape(), k_pool.shape(), v_pool.shape());
    }
    let max_blocks = check_tables(tables, lens, seqs)?;
    expect_dtype(k_pool, q.dtype(), "k pool")?;
    expect_dtype(v_pool, q.dtype(), "v pool")?;
    same_device(q.device(), &[k_pool, v_pool, tables, lens], "paged_attention_mha")?;
    match q.device() {
        Device::Cpu => with_float!(q.dtype(), T => {
            let s = reference::MhaShape { heads, kv_heads: kvh, head_dim: dim, max_blocks };
            let o = reference::paged_mha(&host::<T>(q)?, &host::<T>(k_pool)?, &host::<T>(v_pool)?,
                &host::<u32>(tables)?, &host::<u32>(lens)?, s, scale);
            Tensor::from_vec(o, q.shape(), &Device::Cpu)
        }),
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => crate::cuda::attention::paged_mha(q, k_pool, v_pool, tables, lens, scale),
        dev => no_kernel("paged_attention_mha", dev),
    }
}

/// MLA decode with absorbed projections: `q_abs` `[seqs, heads, rank]` (the no-rope query
/// already multiplied by the key up-projection) and `q_pe` `[seqs, heads, rope_dim]` attend
/// over the latent pool `[blocks, 16, rank]` and rope-key pool `[blocks, 16, rope_dim]`:
/// `score = (q_abs.c + q_pe.k_pe) * scale`; returns `sum p c` `[seqs, heads, rank]` (apply
/// the value up-projection after).
#[allow(clippy::too_many_arguments)]
pub fn paged_attention_mla(
    q_abs: &Tensor,
    q_pe: &Tensor,
    latent_pool: &Tensor,
    kpe_pool: &Tensor,
    tables: &Tensor,
    lens: &Tensor,
    scale: f32,
) -> Result<Tensor> {
    let (seqs, heads, rank) = q_abs.dims3()?;
    let (s2, h2, rope_dim) = q_pe.dims3()?;
    let (nb, bt, r2) = latent_pool.dims3()?;
    if (s2, h2) != (seqs, heads) || bt != BLOCK_TOKENS || r2 != rank || kpe_pool.dims3()? != (nb, bt, rope_dim) {
        candle_core::bail!(
            "paged_attention_mla: q_abs {:?}, q_pe {:?}, pools {:?} {:?}",
            q_abs.shape(),
            q_pe.shape(),
            latent_pool.shape(),
            kpe_pool.shape()
        );
    }
    let max_blocks = check_tables(tables, lens, seqs)?;
    for (t, w) in [(q_pe, "q_pe"), (latent_pool, "latent pool"), (kpe_pool, "rope-key pool")] {
        expect_dtype(t, q_abs.dtype(), w)?;
    }
    same_device(q_abs.device(), &[q_pe, latent_pool, kpe_pool, tables, lens], "paged_attention_mla")?;
    match q_abs.device() {
        Device::Cpu => with_float!(q_abs.dtype(), T => {
            let s = reference::MlaShape { heads, rank, rope_dim, max_blocks };
            let o = reference::paged_mla(&host::<T>(q_abs)?, &host::<T>(q_pe)?, &host::<T>(latent_pool)?,
                &host::<T>(kpe_pool)?, &host::<u32>(tables)?, &host::<u32>(lens)?, s, scale);
            Tensor::from_vec(o, q_abs.shape(), &Device::Cpu)
        }),
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => crate::cuda::attention::paged_mla(q_abs, q_pe, latent_pool, kpe_pool, tables, lens, scale),
        dev => no_kernel("paged_attention_mla", dev),
    }
}

/// Writes `rows` `[tokens, heads, dim]` into `pool` `[blocks, heads, 16, dim]` (in place) at
/// `slots` u32 `[tokens]` (`block * 16 + row`). MLA pools `[blocks, 16, dim]` take rows
/// `[tokens, dim]`. Slots must be inside the pool (checked on the CPU only).
pub fn write_paged(pool: &Tensor, rows: &Tensor, slots: &Tensor) -> Result<()> {
    let (heads, dim) = match pool.rank() {
        4 => {
            let (_, h, bt, d) = pool.dims4()?;
            if bt != BLOCK_TOKENS {
                candle_core::bail!("write_paged: pool {:?}", pool.shape());
            }
            (h, d)
        }
        3 => {
            let (_, bt, d) = pool.dims3()?;
            if bt != BLOCK_TOKENS {
                candle_core::bail!("write_paged: pool {:?}", pool.shape());
            }
            (1, d)
        }
        r => candle_core::bail!("write_paged: pool of rank {r}"),
    };
    let tokens = slots.dims1()?;
    if rows.elem_count() != tokens * heads * dim || rows.dim(0)? != tokens {
        candle_core::bail!("write_paged: rows {:?} for {tokens} slots into {:?}", rows.shape(), pool.shape());
    }
    expect_dtype(slots, DType::U32, "slots")?;
    expect_dtype(rows, pool.dtype(), "rows")?;
    if !pool.is_contiguous() {
        candle_core::bail!("write_paged: the pool must be contiguous");
    }
    same_device(pool.device(), &[rows, slots], "write_paged")?;
    pool.inplace_op3(&rows.contiguous()?, slots, &WriteRows { heads, dim })
}

/// The in-place write of [`write_paged`].
struct WriteRows {
    heads: usize,
    dim: usize,
}

impl InplaceOp3 for WriteRows {
    fn name(&self) -> &'static str {
        "write-paged"
    }

    fn cpu_fwd(
        &self,
        pool: &mut CpuStorage,
        pl: &Layout,
        rows: &CpuStorage,
        rl: &Layout,
        slots: &CpuStorage,
        sl: &Layout,
    ) -> Result<()> {
        let slots = contiguous(slots.as_slice::<u32>()?, sl)?;
        let cap = pl.shape().elem_count() / (self.heads * self.dim);
        if let Some(s) = slots.iter().find(|&&s| s as usize >= cap) {
            candle_core::bail!("write_paged: slot {s} outside a pool of {cap} slots");
        }
        let (o1, o2) = pl.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("pool not contiguous".into()))?;
        macro_rules! go {
            ($v:ident, $t:ty) => {{
                let src = contiguous(rows.as_slice::<$t>()?, rl)?;
                reference::write_rows(&mut $v[o1..o2], src, slots, self.heads, self.dim);
                Ok(())
            }};
        }
        match pool {
            CpuStorage::F32(v) => go!(v, f32),
            CpuStorage::BF16(v) => go!(v, half::bf16),
            CpuStorage::F16(v) => go!(v, half::f16),
            s => candle_core::bail!("write_paged: pool dtype {:?}", s.dtype()),
        }
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        pool: &mut candle_core::CudaStorage,
        pl: &Layout,
        rows: &candle_core::CudaStorage,
        rl: &Layout,
        slots: &candle_core::CudaStorage,
        sl: &Layout,
    ) -> Result<()> {
        crate::cuda::attention::write_rows(pool, pl, rows, rl, slots, sl, self.heads, self.dim)
    }
}

fn contiguous<'a, T>(v: &'a [T], l: &Layout) -> Result<&'a [T]> {
    let (o1, o2) = l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("input not contiguous".into()))?;
    Ok(&v[o1..o2])
}
