// Rotary embedding over token-major activations with per-token positions.
// Semantics: kernels/src/reference/rope.rs.
#include "common.cuh"

// x, y: [tokens, heads, dim]; cos, sin: [rows, dim/2] (same type as x); one thread per pair.
template <typename T>
__device__ void rope_impl(const T* x, T* y, const uint32_t* pos, const T* cos, const T* sin, int tokens, int heads,
                          int dim, int interleaved) {
    int half = dim / 2;
    size_t n = (size_t)tokens * heads * half;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < n; idx += (size_t)gridDim.x * blockDim.x) {
        size_t th = idx / half;
        int i = idx % half;
        size_t t = th / heads;
        size_t base = th * dim;
        size_t a = interleaved ? base + 2 * i : base + i;
        size_t b = interleaved ? base + 2 * i + 1 : base + i + half;
        size_t cs = (size_t)pos[t] * half + i;
        float c = to_f(cos[cs]), s = to_f(sin[cs]);
        float xa = to_f(x[a]), xb = to_f(x[b]);
        y[a] = from_f<T>(xa * c - xb * s);
        y[b] = from_f<T>(xb * c + xa * s);
    }
}

#define ROPE(T, S)                                                                                           \
    extern "C" __global__ void rope_##S(const T* x, T* y, const uint32_t* pos, const T* cos, const T* sin,   \
                                        int tokens, int heads, int dim, int interleaved) {                   \
        rope_impl<T>(x, y, pos, cos, sin, tokens, heads, dim, interleaved);                                  \
    }
DS_FOR_TYPES(ROPE)
