// Decode attention over the paged KV cache (one query token per sequence) and the kernel that
// writes new rows into the paged pools. Semantics: kernels/src/reference/paged_attention.rs.
//
// Pools: MHA K/V [blocks, kv_heads, 16, D]; MLA latent [blocks, 16, R], rope key [blocks, 16, Dr].
// Token t of sequence b is slot table[b][t / 16] * 16 + t % 16.
//
// One block of 4 warps per (head, sequence): warp w takes tokens w, w + 4, ... with an online
// softmax (running max m, sum l, accumulator in shared memory, each lane owning dims lane,
// lane + 32, ...); the warps' partial results are merged at the end. Scores, softmax and sums in f32.
#include "common.cuh"

#define BLOCK_TOKENS 16
#define WARPS 4

__device__ __forceinline__ size_t slot_of(const uint32_t* table, int t) {
    return (size_t)table[t / BLOCK_TOKENS] * BLOCK_TOKENS + t % BLOCK_TOKENS;
}

// Merges the warps' (m, l, acc[dim]) into out (one block).
template <typename T>
__device__ void merge_warps(float* acc, float* ms, float* ls, int dim, T* out) {
    __syncthreads();
    float M = -INFINITY;
    for (int w = 0; w < WARPS; ++w) M = fmaxf(M, ms[w]);
    float L = 0.f, f[WARPS];
    for (int w = 0; w < WARPS; ++w) {
        f[w] = ms[w] == -INFINITY ? 0.f : expf(ms[w] - M);
        L += ls[w] * f[w];
    }
    for (int d = threadIdx.x; d < dim; d += blockDim.x) {
        float v = 0.f;
        for (int w = 0; w < WARPS; ++w) v += acc[w * dim + d] * f[w];
        out[d] = from_f<T>(L > 0.f ? v / L : 0.f);
    }
}

// Online-softmax step of one warp for score s and value row v (dims lane, lane + 32, ...).
template <typename T>
__device__ __forceinline__ void online_step(float s, const T* v, float* acc, int dim, float& m, float& l) {
    int lane = threadIdx.x & 31;
    float mn = fmaxf(m, s);
    float c = m == -INFINITY ? 0.f : expf(m - mn);
    float p = expf(s - mn);
    l = l * c + p;
    for (int d = lane; d < dim; d += 32) acc[d] = acc[d] * c + p * to_f(v[d]);
    m = mn;
}

// q [B, H, D]; out [B, H, D]. Dynamic shared memory: (D + WARPS * D) floats.
template <typename T>
__device__ void paged_mha_impl(const T* q, const T* kp, const T* vp, const uint32_t* tables, const uint32_t* lens,
                               T* out, int H, int KVH, int D, int max_blocks, float scale) {
    extern __shared__ float sm[];
    __shared__ float ms[WARPS], ls[WARPS];
    float* qs = sm;
    float* acc_all = sm + D;
    int h = blockIdx.x, b = blockIdx.y;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int g = h / (H / KVH);
    int len = (int)lens[b];
    const uint32_t* table = tables + (size_t)b * max_blocks;
    const T* qh = q + ((size_t)b * H + h) * D;
    for (int d = threadIdx.x; d < D; d += blockDim.x) qs[d] = to_f(qh[d]);
    float* acc = acc_all + warp * D;
    for (int d = lane; d < D; d += 32) acc[d] = 0.f;
    __syncthreads();
    float m = -INFINITY, l = 0.f;
    for (int t = warp; t < len; t += WARPS) {
        size_t slot = slot_of(table, t);
        size_t base = (((slot / BLOCK_TOKENS) * KVH + g) * BLOCK_TOKENS + slot % BLOCK_TOKENS) * D;
        float dot = 0.f;
        for (int d = lane; d < D; d += 32) dot += qs[d] * to_f(kp[base + d]);
        dot = warp_sum(dot) * scale;
        online_step(dot, vp + base, acc, D, m, l);
    }
    if (lane == 0) {
        ms[warp] = m;
        ls[warp] = l;
    }
    merge_warps(acc_all, ms, ls, D, out + ((size_t)b * H + h) * D);
}

// q_abs [B, H, R], q_pe [B, H, Dr]; out [B, H, R]. Dynamic shared memory: (R + Dr + WARPS * R) floats.
template <typename T>
__device__ void paged_mla_impl(const T* q_abs, const T* q_pe, const T* lat, const T* kpe, const uint32_t* tables,
                               const uint32_t* lens, T* out, int H, int R, int Dr, int max_blocks, float scale) {
    extern __shared__ float sm[];
    __shared__ float ms[WARPS], ls[WARPS];
    float* qa = sm;
    float* qp = sm + R;
    float* acc_all = sm + R + Dr;
    int h = blockIdx.x, b = blockIdx.y;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int len = (int)lens[b];
    const uint32_t* table = tables + (size_t)b * max_blocks;
    for (int d = threadIdx.x; d < R; d += blockDim.x) qa[d] = to_f(q_abs[((size_t)b * H + h) * R + d]);
    for (int d = threadIdx.x; d < Dr; d += blockDim.x) qp[d] = to_f(q_pe[((size_t)b * H + h) * Dr + d]);
    float* acc = acc_all + warp * R;
    for (int d = lane; d < R; d += 32) acc[d] = 0.f;
    __syncthreads();
    float m = -INFINITY, l = 0.f;
    for (int t = warp; t < len; t += WARPS) {
        size_t slot = slot_of(table, t);
        const T* c = lat + slot * R;
        const T* kr = kpe + slot * Dr;
        float nope = 0.f, pe = 0.f;
        for (int d = lane; d < R; d += 32) nope += qa[d] * to_f(c[d]);
        for (int d = lane; d < Dr; d += 32) pe += qp[d] * to_f(kr[d]);
        float s = (warp_sum(nope) + warp_sum(pe)) * scale;
        online_step(s, c, acc, R, m, l);
    }
    if (lane == 0) {
        ms[warp] = m;
        ls[warp] = l;
    }
    merge_warps(acc_all, ms, ls, R, out + ((size_t)b * H + h) * R);
}

// rows [tokens, heads, D] -> pool [blocks, heads, 16, D] at slots[t] (MLA pools: heads = 1).
template <typename T>
__device__ void write_rows_impl(T* pool, const T* rows, const uint32_t* slots, int tokens, int heads, int D) {
    size_t n = (size_t)tokens * heads * D;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t d = i % D, th = i / D;
        size_t h = th % heads, t = th / heads;
        size_t slot = slots[t];
        pool[(((slot / BLOCK_TOKENS) * heads + h) * BLOCK_TOKENS + slot % BLOCK_TOKENS) * D + d] = rows[i];
    }
}

#define ATTN(T, S)                                                                                            \
    extern "C" __global__ void paged_mha_##S(const T* q, const T* kp, const T* vp, const uint32_t* tables,    \
                                             const uint32_t* lens, T* out, int H, int KVH, int D,             \
                                             int max_blocks, float scale) {                                   \
        paged_mha_impl<T>(q, kp, vp, tables, lens, out, H, KVH, D, max_blocks, scale);                        \
    }                                                                                                         \
    extern "C" __global__ void paged_mla_##S(const T* q_abs, const T* q_pe, const T* lat, const T* kpe,       \
                                             const uint32_t* tables, const uint32_t* lens, T* out, int H,     \
                                             int R, int Dr, int max_blocks, float scale) {                    \
        paged_mla_impl<T>(q_abs, q_pe, lat, kpe, tables, lens, out, H, R, Dr, max_blocks, scale);             \
    }                                                                                                         \
    extern "C" __global__ void write_rows_##S(T* pool, const T* rows, const uint32_t* slots, int tokens,      \
                                              int heads, int D) {                                             \
        write_rows_impl<T>(pool, rows, slots, tokens, heads, D);                                              \
    }
DS_FOR_TYPES(ATTN)
