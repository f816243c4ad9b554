//! One decode step's attention over a sequence's contiguous KV cache on the CPU, as a tensor
//! function around [`crate::cpu::decode_attention`]: the cache is read in place (candle's
//! bf16 matmul would widen the whole cache buffer to f32 twice per layer and step).

use candle_core::{CpuStorage, DType, Device, Layout, Result, Storage, Tensor};
use half::bf16;

use crate::cpu::decode_attention::{decode_attention, CacheView};
use crate::cpu::Isa;

/// Whether [`attend_one`] runs these tensors: CPU, bf16 keys and values.
pub fn supports(q: &Tensor, k_all: &Tensor, v_all: &Tensor) -> bool {
    [q, k_all, v_all].iter().all(|t| t.device().is_cpu())
        && k_all.dtype() == DType::BF16
        && v_all.dtype() == DType::BF16
}

/// `[kv_heads, len, dim]` view: (start offset, head stride), checked to have unit row strides.
fn view(layout: &Layout) -> Result<(usize, usize)> {
    let (kvh, len, dim) = layout.shape().dims3()?;
    let stride = layout.stride();
    if stride[2] != 1 || (len > 1 && stride[1] != dim) || (kvh > 1 && stride[0] < len * dim) {
        candle_core::bail!("decode attention takes cache views with contiguous rows, got strides {stride:?}");
    }
    Ok((layout.start_offset(), if kvh > 1 { stride[0] } else { len * dim }))
}

/// Attention of one query row `q` `[heads, 1, dim]` over the cached `k_all`, `v_all`
/// `[kv_heads, len, dim]` (views of a `[kv_heads, capacity, dim]` cache; the row itself must
/// already be appended): `softmax(scale · q kᵀ) v` per head in f32 (see
/// [`crate::cpu::decode_attention`]). Returns `[1, heads * dim]` in `q`'s dtype.
pub fn attend_one(q: &Tensor, k_all: &Tensor, v_all: &Tensor, scale: f32) -> Result<Tensor> {
    let (heads, one, dim) = q.dims3()?;
    let (kvh, len, kdim) = k_all.dims3()?;
    if one != 1 || kdim != dim || v_all.dims3()? != (kvh, len, dim) || kvh == 0 || !heads.is_multiple_of(kvh) {
        candle_core::bail!("decode attention: q {:?}, k {:?}, v {:?}", q.dims(), k_all.dims(), v_all.dims());
    }
    let qf: Vec<f32> = q.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
    let (ks, kl) = k_all.storage_and_layout();
    let (vs, vl) = v_all.storage_and_layout();
    let ((k0, kstride), (v0, vstride)) = (view(kl)?, view(vl)?);
    if kstride != vstride {
        candle_core::bail!("decode attention: keys and values with different head strides");
    }
    let (k, v): (&[bf16], &[bf16]) = match (&*ks, &*vs) {
        (Storage::Cpu(CpuStorage::BF16(k)), Storage::Cpu(CpuStorage::BF16(v))) => (&k[k0..], &v[v0..]),
        _ => candle_core::bail!("decode attention takes bf16 CPU caches"),
    };
    let cache = CacheView { k, v, kv_heads: kvh, head_stride: kstride, len, dim };
    let mut out = vec![0f32; heads * dim];
    decode_attention(Isa::active(), &qf, &cache, heads, scale, &mut out);
    Tensor::from_vec(out, (1, heads * dim), &Device::Cpu)?.to_dtype(q.dtype())
}
