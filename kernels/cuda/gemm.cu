// Grouped GEMM over the experts' sorted rows (one launch for every active expert) and the plain
// GEMM of FP8 linear layers, plus block-wise FP8 quantisation.
// Semantics: kernels/src/reference/moe_dispatch.rs (grouped_gemm), fp8.rs.
//
//   y[r, n] = sum_k x[src(r), k] * W[e(r), n, k]     (f32 accumulation)
//
// Grouped mode (tile_expert != nullptr): block row blockIdx.y is M-tile t of expert
// e = tile_expert[t] (-1: no tile, the block exits), rows tile_start[t] .. min(+TILE_M,
// offsets[e + 1]); src(r) = sorted_pair[r] / gather_k when gather_k > 0, else r.
// Plain mode: e = 0, rows blockIdx.y * TILE_M .. min(+TILE_M, M), src(r) = r.
//
// Weights: W [E, N, K] in float / bf16, or e4m3 codes with f32 scales [E, ceil(N/128), ceil(K/128)].
// f32 activations use a SIMT kernel (exact f32 products); bf16 activations use the tensor cores
// (wmma 16x16x16, f32 accumulators); FP8 blocks are summed per 128-wide K block and scaled once.
#include <mma.h>
#include <cuda_fp8.h>
#include "common.cuh"

#define TILE_M 32
#define TILE_N 64
#define TILE_K 32
#define FP8_BLOCK 128
#define THREADS 128

struct Rows {
    int e, row0, row_end;
};

__device__ __forceinline__ bool tile_rows(const int32_t* tile_expert, const uint32_t* tile_start,
                                          const uint32_t* offsets, int M, Rows* out) {
    if (tile_expert) {
        int e = tile_expert[blockIdx.y];
        if (e < 0) return false;
        int r0 = (int)tile_start[blockIdx.y];
        int end = (int)offsets[e + 1];
        out->e = e;
        out->row0 = r0;
        out->row_end = min(r0 + TILE_M, end);
    } else {
        out->e = 0;
        out->row0 = blockIdx.y * TILE_M;
        if (out->row0 >= M) return false;
        out->row_end = min(out->row0 + TILE_M, M);
    }
    return true;
}

__device__ __forceinline__ float load_w(const float* w, size_t i) { return w[i]; }
__device__ __forceinline__ float load_w(const bf16* w, size_t i) { return to_f(w[i]); }
__device__ __forceinline__ float load_w(const uint8_t* w, size_t i) { return e4m3_to_f(w[i]); }

// ---------------------------------------------------------------------------------------------
// SIMT kernel (f32 activations). 128 threads, each a 4x4 micro-tile of the 32x64 block tile.
template <typename TW, typename TO>
__device__ void gemm_simt(const float* x, const uint32_t* sorted_pair, int gather_k, const TW* w, const float* scales,
                          TO* y, const int32_t* tile_expert, const uint32_t* tile_start, const uint32_t* offsets,
                          int M, int N, int K) {
    __shared__ float As[TILE_K][TILE_M + 1];
    __shared__ float Bs[TILE_K][TILE_N + 1];
    __shared__ size_t src[TILE_M];
    Rows R;
    if (!tile_rows(tile_expert, tile_start, offsets, M, &R)) return;
    int col0 = blockIdx.x * TILE_N;
    int tid = threadIdx.x;
    if (tid < TILE_M) {
        int r = R.row0 + tid;
        size_t s = 0;
        if (r < R.row_end) s = (sorted_pair && gather_k > 0) ? sorted_pair[r] / gather_k : (size_t)r;
        src[tid] = s;
    }
    __syncthreads();
    int nrows = R.row_end - R.row0;
    const TW* we = w + (size_t)R.e * N * K;
    int nb = (N + FP8_BLOCK - 1) / FP8_BLOCK, kb = (K + FP8_BLOCK - 1) / FP8_BLOCK;
    int ty = tid / 16, tx = tid % 16;
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;

    for (int k0 = 0; k0 < K; k0 += TILE_K) {
        float s = scales ? scales[((size_t)R.e * nb + col0 / FP8_BLOCK) * kb + k0 / FP8_BLOCK] : 1.f;
        for (int i = tid; i < TILE_M * TILE_K; i += THREADS) {
            int m = i / TILE_K, kk = i % TILE_K;
            As[kk][m] = (m < nrows && k0 + kk < K) ? x[src[m] * K + k0 + kk] : 0.f;
        }
        for (int i = tid; i < TILE_N * TILE_K; i += THREADS) {
            int n = i / TILE_K, kk = i % TILE_K;
            float v = 0.f;
            if (col0 + n < N && k0 + kk < K) {
                v = load_w(we, (size_t)(col0 + n) * K + k0 + kk);
                if (scales) v *= s;
            }
            Bs[kk][n] = v;
        }
        __syncthreads();
#pragma unroll 8
        for (int kk = 0; kk < TILE_K; ++kk) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) a[i] = As[kk][ty * 4 + i];
#pragma unroll
            for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx * 4 + j];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        int r = ty * 4 + i;
        if (r >= nrows) continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            int c = col0 + tx * 4 + j;
            if (c < N) y[(size_t)(R.row0 + r) * N + c] = from_f<TO>(acc[i][j]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tensor-core kernel (bf16 activations, bf16 or e4m3 weights). 4 warps in a 2x2 grid, each a
// 16x32 piece of the 32x64 tile. FP8: each 128-wide K block is accumulated apart and added
// with its scale (the e4m3 values are exact in bf16).
using namespace nvcuda;
#define LDS (TILE_K + 8)   // bf16 row stride of the staging tiles (multiple of 8 for wmma)
#define LDC (TILE_N + 4)   // f32 row stride of the output staging tile

__device__ __forceinline__ void load_b_row(const bf16* we, size_t off, int avail, bf16* dst) {
    // 16 consecutive weights of one output column; zero past K.
    if (avail >= 16 && ((uintptr_t)(we + off) & 15) == 0) {
        const uint4* p = (const uint4*)(we + off);
        ((uint4*)dst)[0] = p[0];
        ((uint4*)dst)[1] = p[1];
    } else {
        for (int j = 0; j < 16; ++j) dst[j] = j < avail ? we[off + j] : __float2bfloat16_rn(0.f);
    }
}

__device__ __forceinline__ void load_b_row(const uint8_t* we, size_t off, int avail, bf16* dst) {
    uint8_t c[16];
    if (avail >= 16 && ((uintptr_t)(we + off) & 15) == 0) {
        *(uint4*)c = *(const uint4*)(we + off);
    } else {
        for (int j = 0; j < 16; ++j) c[j] = j < avail ? we[off + j] : 0;
    }
#pragma unroll
    for (int j = 0; j < 16; ++j) dst[j] = __float2bfloat16_rn(e4m3_to_f(c[j]));
}

template <typename TW, typename TO>
__device__ void gemm_wmma(const bf16* x, const uint32_t* sorted_pair, int gather_k, const TW* w, const float* scales,
                          TO* y, const int32_t* tile_expert, const uint32_t* tile_start, const uint32_t* offsets,
                          int M, int N, int K) {
    __shared__ __align__(32) bf16 As[TILE_M * LDS];
    __shared__ __align__(32) bf16 Bs[TILE_N * LDS];
    __shared__ __align__(32) float Cs[TILE_M * LDC];
    __shared__ size_t src[TILE_M];
    Rows R;
    if (!tile_rows(tile_expert, tile_start, offsets, M, &R)) return;
    int col0 = blockIdx.x * TILE_N;
    int tid = threadIdx.x, warp = tid / 32;
    int wm = warp / 2, wn = warp % 2;
    if (tid < TILE_M) {
        int r = R.row0 + tid;
        size_t s = 0;
        if (r < R.row_end) s = (sorted_pair && gather_k > 0) ? sorted_pair[r] / gather_k : (size_t)r;
        src[tid] = s;
    }
    __syncthreads();
    int nrows = R.row_end - R.row0;
    const TW* we = w + (size_t)R.e * N * K;
    int nb = (N + FP8_BLOCK - 1) / FP8_BLOCK, kb = (K + FP8_BLOCK - 1) / FP8_BLOCK;
    bool fp8 = scales != nullptr;

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2], part[2];
    for (int j = 0; j < 2; ++j) {
        wmma::fill_fragment(acc[j], 0.f);
        wmma::fill_fragment(part[j], 0.f);
    }
    for (int k0 = 0; k0 < K; k0 += TILE_K) {
        // A: 32 rows x 32 k = 128 threads x 8 values.
        {
            int m = tid / 4, kq = (tid % 4) * 8;
            bf16* dst = As + m * LDS + kq;
            int avail = K - (k0 + kq);
            const bf16* p = x + src[m] * K + k0 + kq;
            if (m < nrows && avail >= 8 && ((uintptr_t)p & 15) == 0) {
                *(uint4*)dst = *(const uint4*)p;
            } else {
                for (int j = 0; j < 8; ++j)
                    dst[j] = (m < nrows && j < avail) ? x[src[m] * K + k0 + kq + j] : __float2bfloat16_rn(0.f);
            }
        }
        // B: 64 columns x 32 k = 128 threads x 16 values.
        {
            int n = tid / 2, kq = (tid % 2) * 16;
            bf16* dst = Bs + n * LDS + kq;
            int avail = (col0 + n < N) ? K - (k0 + kq) : 0;
            load_b_row(we, (size_t)(col0 + n) * K + k0 + kq, avail, dst);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < TILE_K; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
            wmma::load_matrix_sync(a, As + (wm * 16) * LDS + kk, LDS);
#pragma unroll
            for (int j = 0; j < 2; ++j) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> b;
                wmma::load_matrix_sync(b, Bs + (wn * 32 + j * 16) * LDS + kk, LDS);
                if (fp8)
                    wmma::mma_sync(part[j], a, b, part[j]);
                else
                    wmma::mma_sync(acc[j], a, b, acc[j]);
            }
        }
        __syncthreads();
        if (fp8 && ((k0 + TILE_K) % FP8_BLOCK == 0 || k0 + TILE_K >= K)) {
            float s = scales[((size_t)R.e * nb + col0 / FP8_BLOCK) * kb + k0 / FP8_BLOCK];
            for (int j = 0; j < 2; ++j) {
                for (int t = 0; t < acc[j].num_elements; ++t) acc[j].x[t] += part[j].x[t] * s;
                wmma::fill_fragment(part[j], 0.f);
            }
        }
    }
    for (int j = 0; j < 2; ++j)
        wmma::store_matrix_sync(Cs + (wm * 16) * LDC + wn * 32 + j * 16, acc[j], LDC, wmma::mem_row_major);
    __syncthreads();
    for (int i = tid; i < TILE_M * TILE_N; i += THREADS) {
        int r = i / TILE_N, c = i % TILE_N;
        if (r < nrows && col0 + c < N) y[(size_t)(R.row0 + r) * N + col0 + c] = from_f<TO>(Cs[r * LDC + c]);
    }
}

#define GEMM_ARGS                                                                                         \
    const uint32_t *sorted_pair, int gather_k, const float *scales, const int32_t *tile_expert,          \
        const uint32_t *tile_start, const uint32_t *offsets, int M, int N, int K
#define GEMM_PASS sorted_pair, gather_k, w, scales, y, tile_expert, tile_start, offsets, M, N, K

#define SIMT(TW, SW, TO, SO)                                                                                 \
    extern "C" __global__ void __launch_bounds__(THREADS) gemm_f32_##SW##_##SO(const float* x, const TW* w, \
                                                                                TO* y, GEMM_ARGS) {         \
        gemm_simt<TW, TO>(x, GEMM_PASS);                                                                     \
    }
SIMT(float, f32, float, f32)
SIMT(bf16, bf16, float, f32)
SIMT(uint8_t, e4m3, float, f32)

#define WMMA(TW, SW, TO, SO)                                                                                 \
    extern "C" __global__ void __launch_bounds__(THREADS) gemm_bf16_##SW##_##SO(const bf16* x, const TW* w, \
                                                                                 TO* y, GEMM_ARGS) {        \
        gemm_wmma<TW, TO>(x, GEMM_PASS);                                                                     \
    }
WMMA(bf16, bf16, bf16, bf16)
WMMA(bf16, bf16, float, f32)
WMMA(uint8_t, e4m3, bf16, bf16)
WMMA(uint8_t, e4m3, float, f32)

// ---------------------------------------------------------------------------------------------
// Block-wise e4m3 quantisation of W [E, N, K]: one block per 128x128 block.
// scale = amax / 448 (1 for an all-zero block); code = e4m3_satfinite_rn(v / scale).
template <typename T>
__device__ void quantize_impl(const T* w, uint8_t* codes, float* scales, int N, int K) {
    int bj = blockIdx.x, bi = blockIdx.y, e = blockIdx.z;
    int nb = gridDim.y, kb = gridDim.x;
    const T* we = w + (size_t)e * N * K;
    uint8_t* ce = codes + (size_t)e * N * K;
    int r0 = bi * FP8_BLOCK, c0 = bj * FP8_BLOCK;
    int rn = min(FP8_BLOCK, N - r0), cn = min(FP8_BLOCK, K - c0);
    float amax = 0.f;
    for (int i = threadIdx.x; i < rn * cn; i += blockDim.x) amax = fmaxf(amax, fabsf(to_f(we[(size_t)(r0 + i / cn) * K + c0 + i % cn])));
    __shared__ float part[32];
    amax = warp_max(amax);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = amax;
    __syncthreads();
    if (threadIdx.x < 32) {
        float v = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : 0.f;
        v = warp_max(v);
        if (threadIdx.x == 0) part[0] = v;
    }
    __syncthreads();
    amax = part[0];
    float s = amax > 0.f ? amax / 448.f : 1.f;
    if (threadIdx.x == 0) scales[((size_t)e * nb + bi) * kb + bj] = s;
    for (int i = threadIdx.x; i < rn * cn; i += blockDim.x) {
        size_t o = (size_t)(r0 + i / cn) * K + c0 + i % cn;
        ce[o] = (uint8_t)__nv_cvt_float_to_fp8(to_f(we[o]) / s, __NV_SATFINITE, __NV_E4M3);
    }
}

#define QUANT(T, S)                                                                                         \
    extern "C" __global__ void fp8_quantize_##S(const T* w, uint8_t* codes, float* scales, int N, int K) { \
        quantize_impl<T>(w, codes, scales, N, K);                                                          \
    }
DS_FOR_TYPES(QUANT)
