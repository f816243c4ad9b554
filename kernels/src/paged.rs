//! Paged attention as a candle op: query rows of many sequences against one layer's paged KV
//! pools (the team contract's layout, see [`crate::reference::attention`]).
//!
//! `cpu_fwd` runs [`crate::cpu::attention::paged_attention`] on f32, bf16 or f16 storage;
//! other devices get a CUDA implementation under the `cuda` feature (engineer F) and until
//! then an error, so callers keep a device-generic path ([`PagedAttention::is_supported`]).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

use crate::reference::attention::{Chunk, Element, PagedKv};

pub use crate::reference::attention::BLOCK_SIZE;

/// Which pools the op reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagedPools {
    /// MHA: K and V pools `[num_blocks, kv_heads, BLOCK_SIZE, head_dim]`; queries
    /// `[rows, heads, head_dim]`.
    Mha {
        /// Heads of the pools.
        kv_heads: usize,
        /// Head width.
        head_dim: usize,
    },
    /// MLA: latent pool `[num_blocks, BLOCK_SIZE, rank]` (keys and values) and rotary-key pool
    /// `[num_blocks, BLOCK_SIZE, rope_dim]`; queries `[rows, heads, rank + rope_dim]` (the
    /// absorbed query, then the rotary query).
    Mla {
        /// `kv_lora_rank`.
        rank: usize,
        /// `qk_rope_head_dim`.
        rope_dim: usize,
    },
}

/// One sequence's query rows: positions `start..start + rows`, keys in `block_table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagedChunk {
    /// Block table of the sequence (at least `ceil((start + rows) / BLOCK_SIZE)` blocks).
    pub block_table: Vec<u32>,
    /// Position of the first row.
    pub start: usize,
    /// Rows.
    pub rows: usize,
}

/// The op: causal attention of each chunk's rows over its sequence's blocks, scores and
/// softmax in f32, output `[rows, heads, value_dim]` in the query dtype.
#[derive(Debug, Clone)]
pub struct PagedAttention {
    /// The chunks, in query-row order.
    pub chunks: Vec<PagedChunk>,
    /// Query heads.
    pub heads: usize,
    /// Pool kind and widths.
    pub pools: PagedPools,
    /// Score scale (`1/sqrt(d)`, or MLA's softmax scale).
    pub scale: f32,
}

impl PagedAttention {
    /// True when `device` has an implementation of this op.
    pub fn is_supported(device: &candle_core::Device) -> bool {
        device.is_cpu()
    }

    /// Width of a value row (and of an output row per head).
    pub fn value_dim(&self) -> usize {
        match self.pools {
            PagedPools::Mha { head_dim, .. } => head_dim,
            PagedPools::Mla { rank, .. } => rank,
        }
    }

    /// Runs the op: `q` `[rows, heads, key_dim]`, `a` the K (MHA) or latent (MLA) pool, `b` the
    /// V (MHA) or rotary-key (MLA) pool.
    pub fn apply(&self, q: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        q.apply_op3_no_bwd(a, b, self)
    }

    fn run<T: Element>(&self, q: &[T], a: &[T], b: &[T]) -> Result<Vec<f32>> {
        let kv = match self.pools {
            PagedPools::Mha { kv_heads, head_dim } => PagedKv::mha(a, b, kv_heads, head_dim),
            PagedPools::Mla { rank, rope_dim } => PagedKv::mla(a, b, rank, rope_dim),
        };
        let chunks: Vec<Chunk> =
            self.chunks.iter().map(|c| Chunk { block_table: &c.block_table, start: c.start, rows: c.rows }).collect();
        crate::cpu::attention::paged_attention(q, &kv, &chunks, self.heads, self.scale)
            .map_err(|e| candle_core::Error::Msg(format!("paged attention: {e}")))
    }
}

/// The contiguous slice a layout describes.
fn contiguous<'a, T>(data: &'a [T], layout: &Layout, what: &str) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("paged attention: {what} must be contiguous"),
    }
}

impl CustomOp3 for PagedAttention {
    fn name(&self) -> &'static str {
        "paged-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let rows: usize = self.chunks.iter().map(|c| c.rows).sum();
        let shape = Shape::from((rows, self.heads, self.value_dim()));
        let storage = match (s1, s2, s3) {
            (CpuStorage::F32(q), CpuStorage::F32(a), CpuStorage::F32(b)) => {
                let out =
                    self.run(contiguous(q, l1, "q")?, contiguous(a, l2, "pool a")?, contiguous(b, l3, "pool b")?)?;
                CpuStorage::F32(out)
            }
            (CpuStorage::BF16(q), CpuStorage::BF16(a), CpuStorage::BF16(b)) => {
                let out =
                    self.run(contiguous(q, l1, "q")?, contiguous(a, l2, "pool a")?, contiguous(b, l3, "pool b")?)?;
                CpuStorage::BF16(out.into_iter().map(half::bf16::from_f32).collect())
            }
            (CpuStorage::F16(q), CpuStorage::F16(a), CpuStorage::F16(b)) => {
                let out =
                    self.run(contiguous(q, l1, "q")?, contiguous(a, l2, "pool a")?, contiguous(b, l3, "pool b")?)?;
                CpuStorage::F16(out.into_iter().map(half::f16::from_f32).collect())
            }
            _ => candle_core::bail!(
                "paged attention wants one float dtype for q and pools, got {:?}/{:?}/{:?}",
                s1.dtype(),
                s2.dtype(),
                s3.dtype()
            ),
        };
        Ok((storage, shape))
    }
}

/// The dtypes [`PagedAttention`] runs on.
pub fn supports_dtype(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::BF16 | DType::F16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_op_matches_the_reference_through_candle() {
        let dev = Device::Cpu;
        let (blocks, kvh, hd, heads) = (3usize, 2usize, 8usize, 4usize);
        let n = blocks * kvh * BLOCK_SIZE * hd;
        let k: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
        let v: Vec<f32> = (0..n).map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0).collect();
        let q: Vec<f32> = (0..2 * heads * hd).map(|i| ((i * 29 % 89) as f32 - 44.0) / 44.0).collect();
        let op = PagedAttention {
            chunks: vec![
                PagedChunk { block_table: vec![2], start: 3, rows: 1 },
                PagedChunk { block_table: vec![0, 1], start: 20, rows: 1 },
            ],
            heads,
            pools: PagedPools::Mha { kv_heads: kvh, head_dim: hd },
            scale: 0.5,
        };
        let qt = Tensor::from_slice(&q, (2, heads, hd), &dev).unwrap();
        let kt = Tensor::from_slice(&k, (blocks, kvh, BLOCK_SIZE, hd), &dev).unwrap();
        let vt = Tensor::from_slice(&v, (blocks, kvh, BLOCK_SIZE, hd), &dev).unwrap();
        let got = op.apply(&qt, &kt, &vt).unwrap();
        assert_eq!(got.dims(), &[2, heads, hd]);
        let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
        let t0 = [2u32];
        let t1 = [0u32, 1];
        let chunks = [Chunk { block_table: &t0, start: 3, rows: 1 }, Chunk { block_table: &t1, start: 20, rows: 1 }];
        let want = crate::reference::attention::paged_attention(
            &q,
            &PagedKv::mha(&k[..], &v[..], kvh, hd),
            &chunks,
            heads,
            0.5,
        );
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // bf16 storage gives the same result to bf16 precision.
        let bf = |t: &Tensor| t.to_dtype(DType::BF16).unwrap();
        let got_b = op.apply(&bf(&qt), &bf(&kt), &bf(&vt)).unwrap();
        assert_eq!(got_b.dtype(), DType::BF16);
        let got_b: Vec<f32> = got_b.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        for (a, b) in got_b.iter().zip(&want) {
            assert!((a - b).abs() < 3e-2, "{a} vs {b}");
        }
    }
}
