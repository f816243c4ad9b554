// RMSNorm (optionally fused with the residual add before it) and SiLU-and-multiply.
// Semantics: kernels/src/reference/norm.rs.
#include "common.cuh"

// One block per row. With r != nullptr: h = T(x + r) is written to h_out and normalised.
// m = sqrt(mean(h^2) + eps); y = T(T(h / m) * w).
template <typename T>
__device__ void rmsnorm_row(const T* x, const T* r, const T* w, T* h_out, T* y, int dim, float eps) {
    size_t row = blockIdx.x;
    x += row * dim;
    y += row * dim;
    if (r) {
        r += row * dim;
        h_out += row * dim;
    }
    float ss = 0.f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float v;
        if (r) {
            T h = from_f<T>(to_f(x[i]) + to_f(r[i]));
            h_out[i] = h;
            v = to_f(h);
        } else {
            v = to_f(x[i]);
        }
        ss += v * v;
    }
    ss = block_sum(ss);
    float m = sqrtf(ss / (float)dim + eps);
    const T* src = r ? h_out : x;  // each thread re-reads only what it wrote itself
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float n = round_to<T>(to_f(src[i]) / m);
        y[i] = from_f<T>(n * to_f(w[i]));
    }
}

#define RMSNORM(T, S)                                                                                   \
    extern "C" __global__ void rmsnorm_##S(const T* x, const T* r, const T* w, T* h_out, T* y, int dim, \
                                           float eps) {                                                 \
        rmsnorm_row<T>(x, r, w, h_out, y, dim, eps);                                                    \
    }
DS_FOR_TYPES(RMSNORM)

// out[r, i] = T(silu(g) * u) with g = gu[r, i], u = gu[r, inter + i].
template <typename T>
__device__ void silu_mul_impl(const T* gu, T* out, size_t rows, int inter) {
    size_t n = rows * (size_t)inter;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < n; idx += (size_t)gridDim.x * blockDim.x) {
        size_t r = idx / inter, i = idx % inter;
        float g = to_f(gu[r * 2 * inter + i]);
        float u = to_f(gu[r * 2 * inter + inter + i]);
        out[idx] = from_f<T>(g / (1.f + expf(-g)) * u);
    }
}

#define SILU_MUL(T, S)                                                                          \
    extern "C" __global__ void silu_mul_##S(const T* gu, T* out, unsigned long long rows, int inter) { \
        silu_mul_impl<T>(gu, out, (size_t)rows, inter);                                         \
    }
DS_FOR_TYPES(SILU_MUL)
