// MoE routing on the device: the gate (scores, group-limited / bias-corrected top-k, weights),
// the permutation of token-expert pairs by expert with the M-tiles of the grouped GEMM, and the
// weighted un-permutation. Semantics: kernels/src/reference/moe_gate.rs, moe_dispatch.rs.
#include "common.cuh"

#define TILE_M 32  // must equal reference::moe_dispatch::TILE_M

// (value, index) order of the reference's top-k: larger value first, ties to the lower index.
__device__ __forceinline__ bool better(float v, int i, float bv, int bi) {
    return v > bv || (v == bv && i < bi) || (bi < 0 && i >= 0);
}

// Warp-wide argmax of a[0..n) over entries with taken[i] == 0; every lane gets the index.
__device__ int warp_argmax(const float* a, const uint8_t* taken, int n) {
    int lane = threadIdx.x & 31;
    float bv = -INFINITY;
    int bi = -1;
    for (int i = lane; i < n; i += 32)
        if (!taken[i] && better(a[i], i, bv, bi)) {
            bv = a[i];
            bi = i;
        }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (oi >= 0 && better(ov, oi, bv, bi)) {
            bv = ov;
            bi = oi;
        }
    }
    return bi;
}

// One warp per token. logits [tokens, E] f32 -> ids [tokens, k] u32, weights [tokens, k] f32.
// scoring: 0 softmax, 1 sigmoid. method: 0 greedy, 1 group-limited, 2 noaux_tc (needs bias).
// Dynamic shared memory: 3 * E floats + E + G bytes + G floats (see gate_smem_bytes in Rust).
extern "C" __global__ void moe_gate(const float* logits, const float* bias, uint32_t* ids, float* weights, int E,
                                    int k, int scoring, int method, int n_group, int topk_group, int norm,
                                    float scaling) {
    extern __shared__ float smem[];
    float* score = smem;            // [E]
    float* choice = score + E;      // [E] biased scores (noaux) or scores
    float* masked = choice + E;     // [E]
    float* gscore = masked + E;     // [G]
    uint8_t* taken = (uint8_t*)(gscore + n_group);  // [E]
    uint8_t* gtaken = taken + E;    // [G]
    int lane = threadIdx.x & 31;
    size_t t = blockIdx.x;
    const float* x = logits + t * E;

    if (scoring == 0) {
        float mx = -INFINITY;
        for (int i = lane; i < E; i += 32) mx = fmaxf(mx, x[i]);
        mx = warp_max(mx);
        float s = 0.f;
        for (int i = lane; i < E; i += 32) {
            float e = expf(x[i] - mx);
            score[i] = e;
            s += e;
        }
        s = warp_sum(s);
        for (int i = lane; i < E; i += 32) score[i] = score[i] / s;
    } else {
        for (int i = lane; i < E; i += 32) score[i] = 1.f / (1.f + expf(-x[i]));
    }
    for (int i = lane; i < E; i += 32) {
        choice[i] = method == 2 ? score[i] + bias[i] : score[i];
        taken[i] = 0;
    }
    __syncwarp();

    if (method == 0 || n_group <= 1) {
        for (int i = lane; i < E; i += 32) masked[i] = choice[i];
    } else {
        int per = E / n_group;
        for (int g = lane; g < n_group; g += 32) {
            const float* c = choice + g * per;
            float v;
            if (method == 1) {
                v = -INFINITY;
                for (int j = 0; j < per; ++j) v = fmaxf(v, c[j]);
            } else {
                // Sum of the two largest (any tie order gives the same sum).
                float m1 = -INFINITY, m2 = -INFINITY;
                for (int j = 0; j < per; ++j) {
                    if (c[j] > m1) {
                        m2 = m1;
                        m1 = c[j];
                    } else if (c[j] > m2) {
                        m2 = c[j];
                    }
                }
                v = per >= 2 ? m1 + m2 : m1;
            }
            gscore[g] = v;
            gtaken[g] = 0;
        }
        __syncwarp();
        int keep = topk_group < n_group ? topk_group : n_group;
        for (int j = 0; j < keep; ++j) {
            int g = warp_argmax(gscore, gtaken, n_group);
            if (lane == 0 && g >= 0) gtaken[g] = 1;
            __syncwarp();
        }
        for (int i = lane; i < E; i += 32) masked[i] = gtaken[i / per] ? choice[i] : 0.f;
    }
    __syncwarp();

    float w_local[8];  // k <= 8 on lane 0 (checked on the host)
    for (int j = 0; j < k; ++j) {
        int i = warp_argmax(masked, taken, E);
        if (lane == 0) {
            taken[i] = 1;
            ids[t * k + j] = (uint32_t)i;
            w_local[j] = method == 2 ? score[i] : masked[i];
        }
        __syncwarp();
    }
    if (lane == 0) {
        if (k > 1 && norm) {
            float sum = 0.f;
            for (int j = 0; j < k; ++j) sum += w_local[j];
            sum += 1e-20f;
            for (int j = 0; j < k; ++j) weights[t * k + j] = w_local[j] / sum * scaling;
        } else {
            for (int j = 0; j < k; ++j) weights[t * k + j] = w_local[j] * scaling;
        }
    }
}

// One block. ids [pairs] -> offsets [E+1], sorted_pair [pairs], inv [pairs], and the M-tiles
// tile_expert / tile_start [max_tiles] (-1 / 0 past the last). Within an expert the order of
// the rows is whatever the atomics give: each output row depends only on its own pair.
// Dynamic shared memory: 2 * E u32.
extern "C" __global__ void moe_permute(const uint32_t* ids, int pairs, int E, uint32_t* offsets, uint32_t* sorted_pair,
                                       uint32_t* inv, int32_t* tile_expert, uint32_t* tile_start, int max_tiles) {
    extern __shared__ uint32_t cnt[];
    uint32_t* cursor = cnt + E;
    for (int e = threadIdx.x; e < E; e += blockDim.x) cnt[e] = 0;
    __syncthreads();
    for (int p = threadIdx.x; p < pairs; p += blockDim.x) {
        uint32_t e = ids[p];
        if (e < (uint32_t)E) atomicAdd(&cnt[e], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        uint32_t run = 0;
        int t = 0;
        for (int e = 0; e < E; ++e) {
            offsets[e] = run;
            cursor[e] = run;
            for (uint32_t r = run; r < run + cnt[e] && t < max_tiles; r += TILE_M, ++t) {
                tile_expert[t] = e;
                tile_start[t] = r;
            }
            run += cnt[e];
        }
        offsets[E] = run;
        for (; t < max_tiles; ++t) {
            tile_expert[t] = -1;
            tile_start[t] = 0;
        }
    }
    __syncthreads();
    for (int p = threadIdx.x; p < pairs; p += blockDim.x) {
        uint32_t e = ids[p];
        if (e >= (uint32_t)E) continue;
        uint32_t row = atomicAdd(&cursor[e], 1u);
        sorted_pair[row] = (uint32_t)p;
        inv[p] = row;
    }
}

// out[t, n] = T(sum_j w[t*k + j] * y[inv[t*k + j], n]), j ascending, f32.
template <typename T>
__device__ void unpermute_impl(const float* y, const uint32_t* inv, const float* w, T* out, int tokens, int k, int N) {
    size_t total = (size_t)tokens * N;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        size_t t = idx / N, n = idx % N;
        float acc = 0.f;
        for (int j = 0; j < k; ++j) {
            size_t p = t * k + j;
            acc += w[p] * y[(size_t)inv[p] * N + n];
        }
        out[idx] = from_f<T>(acc);
    }
}

#define UNPERMUTE(T, S)                                                                                    \
    extern "C" __global__ void moe_unpermute_##S(const float* y, const uint32_t* inv, const float* w, T* out, \
                                                 int tokens, int k, int N) {                               \
        unpermute_impl<T>(y, inv, w, out, tokens, k, N);                                                   \
    }
DS_FOR_TYPES(UNPERMUTE)
