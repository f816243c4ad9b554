//! Token-major batches for [`super::DeepseekDecoder::forward_batch`]: the rows of many
//! sequences in one `[T, hidden]` tensor, each run of rows a [`SeqChunk`] (a prefill chunk or
//! one decode token), and the per-forward plan every layer shares (row offsets, cache slots,
//! how each chunk's attention is computed).
//!
//! Attention is the only op that knows about sequences. On devices with the paged kernel
//! ([`docseek_kernels::paged::PagedAttention`]) runs of short chunks (decode rows) attend in
//! one kernel call, reading the pools in place; long chunks (prefill) gather their
//! sequence's rows and use the same matrix products as the single-sequence path, whose cost is
//! dominated by the products, not the gather.

use candle_core::{DType, Device, Result, Tensor};
use docseek_kernels::paged::{supports_dtype, PagedAttention, PagedChunk};

use super::paged_cache::{PagedKvCache, RowSlots, SeqId};

/// Longest chunk that goes through the paged kernel when it is available.
pub const KERNEL_MAX_ROWS: usize = 8;

/// A run of consecutive rows of one sequence in a batch: positions `start..start + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqChunk {
    /// The sequence (its blocks in the cache).
    pub seq: SeqId,
    /// Position of the first row; the cache must hold exactly `start` tokens of `seq`.
    pub start: usize,
    /// Rows (tokens) in this chunk, at least 1.
    pub len: usize,
}

/// How attention reads the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionPath {
    /// The paged kernel for short chunks where the device has it, gathering otherwise.
    #[default]
    Auto,
    /// Always gather (the device-generic path; tests compare the two).
    Gather,
}

/// One chunk as the layers see it.
#[derive(Debug, Clone)]
pub struct PlannedChunk {
    /// The sequence.
    pub seq: SeqId,
    /// First position.
    pub start: usize,
    /// Rows.
    pub len: usize,
    /// Offset of its first row in the batch.
    pub row: usize,
    /// Additive causal mask `[len, start + len]` for the gather path (None for one row).
    pub mask: Option<Tensor>,
}

/// How a group of chunks attends.
#[derive(Debug, Clone)]
pub enum Group {
    /// Consecutive short chunks in one paged-kernel call over batch rows `row..row + rows`.
    Kernel {
        /// The chunks' block tables and positions.
        chunks: Vec<PagedChunk>,
        /// First batch row.
        row: usize,
        /// Rows.
        rows: usize,
    },
    /// One chunk through gather + matrix products.
    Gather(usize),
}

/// What every layer of one batched forward shares.
#[derive(Debug, Clone)]
pub struct BatchPlan {
    /// The chunks, in row order.
    pub chunks: Vec<PlannedChunk>,
    /// Where each row's keys and values are written.
    pub slots: RowSlots,
    /// Attention groups, in row order.
    pub groups: Vec<Group>,
    /// Position of every row.
    pub positions: Vec<usize>,
}

impl BatchPlan {
    /// Plans `chunks` over `cache` (every chunk's blocks already reserved).
    pub fn new(chunks: &[SeqChunk], cache: &PagedKvCache, path: AttentionPath, dtype: DType) -> Result<Self> {
        let device = cache.device();
        let kernel = path == AttentionPath::Auto && PagedAttention::is_supported(device) && supports_dtype(dtype);
        let mut planned = Vec::with_capacity(chunks.len());
        let mut rows = Vec::new();
        let mut positions = Vec::new();
        let mut groups: Vec<Group> = Vec::new();
        let mut row = 0;
        for (i, c) in chunks.iter().enumerate() {
            let short = kernel && c.len <= KERNEL_MAX_ROWS;
            let mask = if c.len > 1 && !short { Some(causal_mask(c.len, c.start, dtype, device)?) } else { None };
            planned.push(PlannedChunk { seq: c.seq, start: c.start, len: c.len, row, mask });
            rows.extend((c.start..c.start + c.len).map(|p| (c.seq, p)));
            positions.extend(c.start..c.start + c.len);
            if short {
                let pc = PagedChunk { block_table: cache.table(c.seq).to_vec(), start: c.start, rows: c.len };
                match groups.last_mut() {
                    Some(Group::Kernel { chunks, rows, .. }) => {
                        chunks.push(pc);
                        *rows += c.len;
                    }
                    _ => groups.push(Group::Kernel { chunks: vec![pc], row, rows: c.len }),
                }
            } else {
                groups.push(Group::Gather(i));
            }
            row += c.len;
        }
        Ok(BatchPlan { chunks: planned, slots: cache.slots(&rows)?, groups, positions })
    }

    /// Total rows.
    pub fn rows(&self) -> usize {
        self.positions.len()
    }

    /// Batch row of the last token of each chunk.
    pub fn last_rows(&self) -> Vec<u32> {
        self.chunks.iter().map(|c| (c.row + c.len - 1) as u32).collect()
    }
}

/// Additive causal mask `[n, start + n]`: row i may see columns `0..=start + i`.
pub fn causal_mask(n: usize, start: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let total = start + n;
    let mut m = vec![0f32; n * total];
    for i in 0..n {
        for j in (start + i + 1)..total {
            m[i * total + j] = f32::NEG_INFINITY;
        }
    }
    Tensor::from_vec(m, (n, total), device)?.to_dtype(dtype)
}
