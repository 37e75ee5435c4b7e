/* layer.c -- a layer of neurons over a block of rows (see layer.h).
 *
 * Tiles.  Forward, a tile is NT neurons by RT rows: NT * RT sums live in
 * registers while the n inputs stream by (each x_q[r..r+RT) loaded once
 * for NT neurons, each weight once for RT rows).  The loops over a tile
 * are written with constant bounds, so the compiler unrolls them into
 * vector registers; the ragged edges (fewer neurons or rows) run the same
 * code with smaller bounds.  Backward, the input adjoints are tiled the
 * same way (QT inputs by RT rows, summed over the neurons), and the weights'
 * derivatives NT neurons by RT inputs (summed over the rows, the inputs
 * transposed first so that consecutive inputs of a row sit side by side).
 *
 * Rows outside tiles: a tile never reads or writes rows >= nb (the block's
 * unused rows are not initialised).
 */
#include <string.h>
#include "layer.h"

#define NT 4    /* neurons a forward tile */
#define QT 4    /* inputs an input-adjoint tile */
#define RT 8    /* rows a tile (weights: inputs a tile) */

#define ROW(base, a, R) ((base) + (size_t)(a) * (R))

#if defined(__GNUC__)
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static inline
#endif

/* The two kernels, compiled for the x86-64 baseline (two doubles a vector
 * instruction) and for AVX2 (four) and AVX-512 (eight), the one for the
 * machine it runs on picked at load time (an ifunc).  The operations and
 * their order are the same in each: -ffp-contract=off (setup.py, Makefile)
 * keeps a multiply and an add from being fused, so the bits are too. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && !defined(PG_NO_CLONES)
#define PG_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define PG_CLONES
#endif

/* Neurons i0 .. i0+ni by rows r0 .. r0+nr: each sum from its start, the
 * inputs in order. */
INLINE void fwd_tile(const pg_layer_args *L, double *V, size_t i0, size_t ni,
                     size_t r0, size_t nr)
{
    double acc[NT][RT];
    const size_t n = L->n;
    const double *w = L->w + i0 * n;
    for (size_t i = 0; i < ni; i++)
        for (size_t e = 0; e < nr; e++)
            acc[i][e] = L->s[i0 + i];
    for (size_t q = 0; q < n; q++) {
        const double *x = ROW(V, L->x[q], L->R) + r0;
        for (size_t i = 0; i < ni; i++) {
            const double wi = w[i * n + q];
            for (size_t e = 0; e < nr; e++)
                acc[i][e] = acc[i][e] + wi * x[e];
        }
    }
    for (size_t i = 0; i < ni; i++) {
        double *o = ROW(V, L->out[i0 + i], L->R) + r0;
        for (size_t e = 0; e < nr; e++)
            o[e] = acc[i][e];
    }
}

PG_CLONES void pg__layer_forward(const pg_layer_args *L, double *V)
{
    size_t r0 = 0;
    for (; r0 + RT <= L->nb; r0 += RT) {   /* rows outside: the x rows stay near */
        size_t i0 = 0;
        for (; i0 + NT <= L->m; i0 += NT)
            fwd_tile(L, V, i0, NT, r0, RT);
        switch (L->m - i0) {   /* the neurons left, as constant bounds */
        case 3: fwd_tile(L, V, i0, 3, r0, RT); break;
        case 2: fwd_tile(L, V, i0, 2, r0, RT); break;
        case 1: fwd_tile(L, V, i0, 1, r0, RT); break;
        default: break;
        }
    }
    if (r0 < L->nb)
        for (size_t i0 = 0; i0 < L->m; i0 += NT)
            fwd_tile(L, V, i0, L->m - i0 < NT ? L->m - i0 : NT, r0, L->nb - r0);
}

/* Inputs q0 .. q0+nq by rows r0 .. r0+nr: each adjoint gets w_iq * g_i,
 * i from the last neuron down. */
INLINE void in_tile(const pg_layer_args *L, double *A, size_t q0, size_t nq, size_t r0,
                    size_t nr)
{
    double acc[QT][RT];
    const size_t n = L->n;
    for (size_t q = 0; q < nq; q++) {
        const double *t = ROW(A, L->x[q0 + q], L->R) + r0;
        for (size_t e = 0; e < nr; e++)
            acc[q][e] = t[e];
    }
    for (size_t i = L->m; i-- > 0;) {
        const double *g = ROW(A, L->out[i], L->R) + r0;
        const double *w = L->w + i * n + q0;
        for (size_t q = 0; q < nq; q++)
            for (size_t e = 0; e < nr; e++)
                acc[q][e] = acc[q][e] + w[q] * g[e];
    }
    for (size_t q = 0; q < nq; q++) {
        double *t = ROW(A, L->x[q0 + q], L->R) + r0;
        for (size_t e = 0; e < nr; e++)
            t[e] = acc[q][e];
    }
}

/* The derivative of neuron i's weight q: the sum over the rows, in row
 * order, of x_q[r] * g_i[r] (for the ragged edges of the tiles below). */
INLINE void weight_one(const pg_layer_args *L, const double *V, const double *A,
                       double *gpar, size_t i, size_t q)
{
    const double *x = ROW(V, L->x[q], L->R), *g = ROW(A, L->out[i], L->R);
    double s = 0.0;
    for (size_t r = 0; r < L->nb; r++)
        s = s + x[r] * g[r];
    gpar[L->wpar[i * L->n + q]] += s;
}

/* The weights' derivatives in register tiles: the sums of weight_one, the
 * same operations in the same order (so the same bits), for RT weights at
 * once in one vector register.  A vector of GCC's (or clang's) vector
 * extension: the plain loops leave the sums in memory, a store and a load
 * between two adds of the same sum. */
typedef double pg_v8 __attribute__((vector_size(RT * sizeof(double))));

/* Neurons i0 .. i0+ni (ni <= NT), inputs q0 .. q0+RT side by side, x read
 * transposed (xt[r*n + q]): each g_i[r] loaded once for RT inputs. */
INLINE void weight_tile_v(const pg_layer_args *L, const double *A, const double *xt,
                          double *gpar, size_t i0, size_t ni, size_t q0)
{
    const size_t n = L->n;
    const double *g[NT];
    pg_v8 acc[NT];
    for (size_t i = 0; i < ni; i++) {
        g[i] = ROW(A, L->out[i0 + i], L->R);
        acc[i] = (pg_v8){0};
    }
    for (size_t r = 0; r < L->nb; r++) {
        pg_v8 x;
        memcpy(&x, xt + r * n + q0, sizeof x);   /* (unaligned) */
        for (size_t i = 0; i < ni; i++)
            acc[i] = acc[i] + x * g[i][r];
    }
    for (size_t i = 0; i < ni; i++) {
        const int32_t *wp = L->wpar + (i0 + i) * n + q0;
        for (size_t e = 0; e < RT; e++)
            gpar[wp[e]] += acc[i][e];
    }
}

/* The same with the roles of neurons and inputs swapped, for a layer of
 * few inputs (fewer than RT): neurons i0 .. i0+RT side by side in a
 * register, the adjoints transposed (gt[r*m + i]), each x_q[r] loaded once
 * for them. */
INLINE void weight_tile_t(const pg_layer_args *L, const double *V, const double *gt,
                          double *gpar, size_t i0, size_t q)
{
    const size_t n = L->n, m = L->m;
    const double *x = ROW(V, L->x[q], L->R);
    pg_v8 acc = {0};
    for (size_t r = 0; r < L->nb; r++) {
        pg_v8 g;
        memcpy(&g, gt + r * m + i0, sizeof g);
        acc = acc + g * x[r];
    }
    for (size_t e = 0; e < RT; e++)
        gpar[L->wpar[(i0 + e) * n + q]] += acc[e];
}

PG_CLONES void pg__layer_backward(const pg_layer_args *L, const double *V, double *A, double *gpar)
{
    const size_t n = L->n, R = L->R, nb = L->nb;
    /* the starts: the adjoint summed in row order, as a parameter's sum is */
    for (size_t i = 0; i < L->m; i++)
        if (L->spar[i] >= 0) {
            const double *g = ROW(A, L->out[i], R);
            double s = 0.0;
            for (size_t r = 0; r < nb; r++)
                s = s + g[r];
            gpar[L->spar[i]] += s;
        }
    /* the weights (read the adjoints g_i and the values x_q) */
    size_t i0 = 0, q0 = 0;
    if (n >= RT || L->m < RT) {   /* inputs side by side */
        for (size_t q = 0; q < n; q++) {
            const double *x = ROW(V, L->x[q], R);
            for (size_t r = 0; r < nb; r++)
                L->xt[r * n + q] = x[r];
        }
        for (; q0 + RT <= n; q0 += RT) {
            for (i0 = 0; i0 + NT <= L->m; i0 += NT)
                weight_tile_v(L, A, L->xt, gpar, i0, NT, q0);
            switch (L->m - i0) {   /* the neurons left, as constant bounds */
            case 3: weight_tile_v(L, A, L->xt, gpar, i0, 3, q0); break;
            case 2: weight_tile_v(L, A, L->xt, gpar, i0, 2, q0); break;
            case 1: weight_tile_v(L, A, L->xt, gpar, i0, 1, q0); break;
            default: break;
            }
        }
        i0 = 0;   /* left: inputs q0 .. n of every neuron */
    } else {                      /* few inputs: neurons side by side */
        for (size_t i = 0; i < L->m; i++) {
            const double *g = ROW(A, L->out[i], R);
            for (size_t r = 0; r < nb; r++)
                L->xt[r * L->m + i] = g[r];
        }
        for (; i0 + RT <= L->m; i0 += RT)
            for (size_t q = 0; q < n; q++)
                weight_tile_t(L, V, L->xt, gpar, i0, q);
        /* left: neurons i0 .. m, every input */
    }
    for (size_t i = i0; i < L->m; i++)
        for (size_t q = q0; q < n; q++)
            weight_one(L, V, A, gpar, i, q);
    /* the inputs (write the x_q's adjoints: after the weights, which read
     * only values, so the order of the two does not matter) */
    size_t r0 = 0;
    for (; r0 + RT <= nb; r0 += RT) {
        size_t q0 = 0;
        for (; q0 + QT <= n; q0 += QT)
            in_tile(L, A, q0, QT, r0, RT);
        switch (n - q0) {
        case 3: in_tile(L, A, q0, 3, r0, RT); break;
        case 2: in_tile(L, A, q0, 2, r0, RT); break;
        case 1: in_tile(L, A, q0, 1, r0, RT); break;
        default: break;
        }
    }
    if (r0 < nb)
        for (size_t q0 = 0; q0 < n; q0 += QT)
            in_tile(L, A, q0, n - q0 < QT ? n - q0 : QT, r0, nb - r0);
}
