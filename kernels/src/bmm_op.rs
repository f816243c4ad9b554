//! Batched products for attention on the CPU kernels: `out[b] = a[b] · c[b]ᵀ` for
//! `a` `[batch, m, k]` and `c` `[batch, n, k]` (both k-contiguous, the layout of `q·kᵀ`, and of
//! `p·v` once v is transposed), bf16 inputs, f32 accumulation and output. The batch is split
//! over the threads; each product runs the packed GEMM on one thread.

use candle_core::{CpuStorage, DType, Layout, Result, Shape, Tensor};
use half::bf16;

use crate::cpu::gemm_bf16::{gemm_serial, Bf16Rows};
use crate::cpu::gemv_bf16::{prepare, Acts};
use crate::cpu::{pool, Isa};

struct BmmNt;

fn bf16_slice<'s>(s: &'s CpuStorage, l: &Layout) -> Result<&'s [bf16]> {
    let (start, end) = l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("bmm_nt takes contiguous inputs".into()))?;
    match s {
        CpuStorage::BF16(v) => Ok(&v[start..end]),
        other => candle_core::bail!("bmm_nt takes bf16 inputs, got {:?}", candle_core::backend::BackendStorage::dtype(other)),
    }
}

impl candle_core::CustomOp2 for BmmNt {
    fn name(&self) -> &'static str {
        "docseek-bmm-nt"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (batch, m, k) = l1.shape().dims3()?;
        let (b2, n, k2) = l2.shape().dims3()?;
        if batch != b2 || k != k2 {
            candle_core::bail!("bmm_nt: {:?} x {:?}ᵀ", l1.shape(), l2.shape());
        }
        let (a, c) = (bf16_slice(s1, l1)?, bf16_slice(s2, l2)?);
        let isa = Isa::active();
        let mut out = vec![0f32; batch * m * n];
        let ptr = SendPtr(out.as_mut_ptr());
        pool::for_each_task(batch, |b| {
            let w = Bf16Rows { data: &c[b * n * k..(b + 1) * n * k], rows: n, cols: k };
            let p = prepare(isa, Acts::Bf16(&a[b * m * k..(b + 1) * m * k]));
            // SAFETY: batch item b alone writes out[b * m * n..(b + 1) * m * n].
            let o = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(b * m * n), m * n) };
            gemm_serial(isa, &w, &p, m, o, n);
        });
        Ok((CpuStorage::F32(out), Shape::from((batch, m, n))))
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint output ranges to tasks.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Whether [`bmm_nt`] runs these operands (bf16 CPU tensors).
pub fn supports(a: &Tensor, c: &Tensor) -> bool {
    a.device().is_cpu() && a.dtype() == DType::BF16 && c.dtype() == DType::BF16
}

/// `a` `[batch, m, k]` times `c` `[batch, n, k]` transposed: `[batch, m, n]` in f32.
pub fn bmm_nt(a: &Tensor, c: &Tensor) -> Result<Tensor> {
    a.contiguous()?.apply_op2_no_bwd(&c.contiguous()?, &BmmNt)
}
