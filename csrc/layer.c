/* layer.c -- a layer of neurons over a block of rows (see layer.h).
 *
 * Tiles.  Forward, a tile is NT neurons by RT rows: NT * RT sums live in
 * registers (vectors of RT, below) while the n inputs stream by (each
 * x_q[r..r+RT) loaded once for NT neurons, each weight once for RT rows);
 * the neurons left over run the same code with a smaller constant bound.
 * Backward, the input adjoints are tiled the same way (QT inputs by RT
 * rows, summed over the neurons), and the weights' derivatives RT neurons
 * by up to RT inputs (summed over the rows, the adjoints transposed first
 * so that the neurons of a row sit side by side, padded with zeros to
 * whole tiles).
 *
 * The last rows of a block, fewer than RT, run the same full tiles on a
 * copy of their inputs padded with zeros (in the scratch xt); only their
 * own rows are stored.  No row >= nb of a row array is read or written
 * (the block's unused rows are not initialised).
 */
#include <string.h>
#include "clones.h"
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

/* The two kernels are compiled for each vector unit (clones.h). */

/* The tiles' sums are vectors of GCC's (and clang's) vector extension, RT
 * doubles each, one register or a few, whatever the vector unit: written
 * as plain arrays the compiler left some sums in memory (a store and a
 * load between two adds of the same sum), or did not vectorise at all.
 * Each lane is the plain C expression it replaces: the same bits. */
typedef double pg_v8 __attribute__((vector_size(RT * sizeof(double))));
typedef long long pg_i8 __attribute__((vector_size(RT * sizeof(long long))));

/* A 64-byte vector passed or returned by value has a different ABI in each
 * clone, which GCC warns of (-Wpsabi); the functions that do are always
 * inlined, so no call passes one. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

/* Loads RT doubles from p (any alignment); stores the first nr lanes. */
INLINE void load_v(pg_v8 *v, const double *p)
{
    memcpy(v, p, sizeof *v);
}

INLINE void store_v(double *p, const pg_v8 *v, size_t nr)
{
    if (nr == RT)
        memcpy(p, v, sizeof *v);
    else
        for (size_t e = 0; e < RT; e++)
            if (e < nr)
                p[e] = (*v)[e];
}

/* dst[0 .. RT) = src[0 .. nr), then zeros: the last, ragged rows of a block
 * as a whole tile (the zeros' products add nothing). */
INLINE void pad_chunk(double *dst, const double *src, size_t nr)
{
    for (size_t e = 0; e < RT; e++)
        dst[e] = e < nr ? src[e] : 0.0;
}

/* Neurons i0 .. i0+ni by rows r0 .. r0+RT: each sum from its start, the
 * inputs in order; the first nr rows stored.  The inputs come from their
 * row arrays, or, for the last rows of a block (pad), from a copy padded
 * with zeros to RT rows, so the ragged end runs the same full tile. */
INLINE void fwd_tile(const pg_layer_args *L, double *V, const double *pad, size_t i0,
                     size_t ni, size_t r0, size_t nr)
{
    pg_v8 acc[NT];
    const size_t n = L->n;
    const double *w = L->w + i0 * n;
    for (size_t i = 0; i < ni; i++) {   /* each sum from its start, as eager's */
        double s[RT];   /* (0.0 + s, a zero vector plus s, made a -0.0 start 0.0) */
        for (size_t e = 0; e < RT; e++)
            s[e] = L->s[i0 + i];
        load_v(&acc[i], s);
    }
    for (size_t q = 0; q < n; q++) {
        pg_v8 x;
        load_v(&x, pad ? pad + q * RT : ROW(V, L->x[q], L->R) + r0);
        for (size_t i = 0; i < ni; i++)
            acc[i] = acc[i] + w[i * n + q] * x;
    }
    if (L->relu)   /* pg_relu's 0 > x ? 0 : x, lane by lane (NaN, -0.0 kept) */
        for (size_t i = 0; i < ni; i++) {
            pg_v8 z = {0};
            pg_v8 v = (pg_v8)((pg_i8)acc[i] & ~(pg_i8)(acc[i] < z));
            store_v(ROW(V, L->relu[i0 + i], L->R) + r0, &v, nr);
        }
    else
        for (size_t i = 0; i < ni; i++)
            store_v(ROW(V, L->out[i0 + i], L->R) + r0, &acc[i], nr);
}

/* Every neuron over rows r0 .. r0+nr (nr <= RT). */
INLINE void fwd_rows(const pg_layer_args *L, double *V, const double *pad, size_t r0,
                     size_t nr)
{
    size_t i0 = 0;
    for (; i0 + NT <= L->m; i0 += NT)
        fwd_tile(L, V, pad, i0, NT, r0, nr);
    switch (L->m - i0) {   /* the neurons left, as constant bounds */
    case 3: fwd_tile(L, V, pad, i0, 3, r0, nr); break;
    case 2: fwd_tile(L, V, pad, i0, 2, r0, nr); break;
    case 1: fwd_tile(L, V, pad, i0, 1, r0, nr); break;
    default: break;
    }
}

PG_CLONES void pg__layer_forward(const pg_layer_args *L, double *V)
{
    size_t r0 = 0;
    for (; r0 + RT <= L->nb; r0 += RT)   /* rows outside: the x rows stay near */
        fwd_rows(L, V, NULL, r0, RT);
    if (r0 < L->nb) {   /* the last rows, padded */
        size_t nr = L->nb - r0;
        for (size_t q = 0; q < L->n; q++)
            pad_chunk(L->xt + q * RT, ROW(V, L->x[q], L->R) + r0, nr);
        fwd_rows(L, V, L->xt, r0, nr);
    }
}

/* Inputs q0 .. q0+nq by rows r0 .. r0+RT: each adjoint gets w_iq * g_i,
 * i from the last neuron down; the first nr rows stored.  The adjoints g_i
 * from their row arrays, or (pad) from a zero-padded copy, as above. */
INLINE void in_tile(const pg_layer_args *L, double *A, const double *pad, size_t q0,
                    size_t nq, size_t r0, size_t nr)
{
    pg_v8 acc[QT];
    const size_t n = L->n;
    for (size_t q = 0; q < nq; q++) {
        const double *t = ROW(A, L->x[q0 + q], L->R) + r0;
        if (L->x_first)
            acc[q] = (pg_v8){0};
        else if (nr == RT)
            load_v(&acc[q], t);
        else
            for (size_t e = 0; e < RT; e++)
                acc[q][e] = e < nr ? t[e] : 0.0;
    }
    for (size_t i = L->m; i-- > 0;) {
        pg_v8 g;
        load_v(&g, pad ? pad + i * RT : ROW(A, L->out[i], L->R) + r0);
        const double *w = L->w + i * n + q0;
        for (size_t q = 0; q < nq; q++)
            acc[q] = acc[q] + w[q] * g;
    }
    for (size_t q = 0; q < nq; q++)
        store_v(ROW(A, L->x[q0 + q], L->R) + r0, &acc[q], nr);
}

/* Every input's adjoint over rows r0 .. r0+nr (nr <= RT). */
INLINE void in_rows(const pg_layer_args *L, double *A, const double *pad, size_t r0,
                    size_t nr)
{
    size_t q0 = 0;
    for (; q0 + QT <= L->n; q0 += QT)
        in_tile(L, A, pad, q0, QT, r0, nr);
    switch (L->n - q0) {
    case 3: in_tile(L, A, pad, q0, 3, r0, nr); break;
    case 2: in_tile(L, A, pad, q0, 2, r0, nr); break;
    case 1: in_tile(L, A, pad, q0, 1, r0, nr); break;
    default: break;
    }
}

/* The weights' derivatives: the sum over the rows, in row order, of
 * x_q[r] * g_i[r], for neurons i0 .. i0+RT side by side in a register
 * (the adjoints read transposed, gt[r*mp + i], mp >= i0 + RT) and inputs
 * q0 .. q0+nq (nq <= RT sums in flight): each x_q[r] is loaded once for
 * RT neurons.  Only the first ni neurons' sums are kept (a last tile
 * runs over gt's zero padding).  With `starts`, the same pass sums the
 * starts' derivatives too (the g_i[r], in row order, from 0.0 as a
 * parameter's sum is): alone, that sum was one chain of dependent adds,
 * each waiting on the one before. */
INLINE void weight_tile(const pg_layer_args *L, const double *V, const double *gt,
                        size_t mp, double *gpar, size_t i0, size_t ni, size_t q0, size_t nq,
                        int starts)
{
    const size_t n = L->n;
    const double *x[RT];
    pg_v8 acc[RT], sacc = {0};
    for (size_t q = 0; q < nq; q++) {
        x[q] = ROW(V, L->x[q0 + q], L->R);
        acc[q] = (pg_v8){0};
    }
    for (size_t r = 0; r < L->nb; r++) {
        pg_v8 g;
        load_v(&g, gt + r * mp + i0);
        if (starts)
            sacc = sacc + g;
        for (size_t q = 0; q < nq; q++)
            acc[q] = acc[q] + g * x[q][r];
    }
    for (size_t q = 0; q < nq; q++)
        for (size_t e = 0; e < RT; e++)   /* (a constant bound keeps acc in registers) */
            if (e < ni)
                gpar[L->wpar[(i0 + e) * n + q0 + q]] += acc[q][e];
    if (starts)
        for (size_t e = 0; e < RT; e++)
            if (e < ni && L->spar[i0 + e] >= 0)
                gpar[L->spar[i0 + e]] += sacc[e];
}

/* The weights of neurons i0 .. i0+ni against inputs q0 .. q0+nq (nq <=
 * RT, a constant in each call); the first tile of a row of them (q0 == 0)
 * with the starts. */
INLINE void weight_tile_at(const pg_layer_args *L, const double *V, const double *gt,
                           size_t mp, double *gpar, size_t i0, size_t ni, size_t q0,
                           size_t nq)
{
    if (q0 == 0)
        weight_tile(L, V, gt, mp, gpar, i0, ni, q0, nq, 1);
    else
        weight_tile(L, V, gt, mp, gpar, i0, ni, q0, nq, 0);
}

/* -- small layers: rows in the lanes -------------------------------------- */

/* In a layer of fewer than 8 inputs or neurons (the moons MLP's 2 -> 16
 * and 16 -> 1) the tiles above run mostly on padding (one neuron in eight
 * lanes) or on chains of adds too short to hide an add's latency; both of
 * those layers cost more than the 16 x 16 one between them, for an eighth
 * of its work.  There the lanes hold eight rows instead, each weight's
 * derivative summed in eight sums of every eighth row, and the lanes
 * added up at the end. */

/* Eight sums at once: s[k] = the sum of v[k]'s lanes, for k < 8, each as
 * ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)): three rounds of
 * shuffles and adds instead of seven adds a sum.  A fixed order, the same
 * in every clone. */

#define PAIR_SUMS(a, b, lo, hi) (__builtin_shuffle((a), (b), (lo)) + __builtin_shuffle((a), (b), (hi)))

/* The shuffles of two vectors a, b that lane_sums and transpose8 take in
 * three rounds: the even / odd lanes of each, then pairs of lanes, then
 * halves (index 8 + k is b's lane k). */
static const pg_i8 EVEN1 = {0, 8, 2, 10, 4, 12, 6, 14}, ODD1 = {1, 9, 3, 11, 5, 13, 7, 15};
static const pg_i8 EVEN2 = {0, 1, 8, 9, 4, 5, 12, 13}, ODD2 = {2, 3, 10, 11, 6, 7, 14, 15};
static const pg_i8 LOW4 = {0, 1, 2, 3, 8, 9, 10, 11}, HIGH4 = {4, 5, 6, 7, 12, 13, 14, 15};

INLINE pg_v8 lane_sums(const pg_v8 v[RT])
{
    pg_v8 a = PAIR_SUMS(v[0], v[1], EVEN1, ODD1), b = PAIR_SUMS(v[2], v[3], EVEN1, ODD1);
    pg_v8 c = PAIR_SUMS(v[4], v[5], EVEN1, ODD1), d = PAIR_SUMS(v[6], v[7], EVEN1, ODD1);
    pg_v8 ab = PAIR_SUMS(a, b, EVEN2, ODD2), cd = PAIR_SUMS(c, d, EVEN2, ODD2);
    return PAIR_SUMS(ab, cd, LOW4, HIGH4);
}
/* Rows 8c .. 8c+8 of a block's row array a, or, for the last chunk when
 * it is ragged (c == nfull), its copy padded with zeros at pad + k * RT. */
#define CHUNK(base, a, pad, k, c, nfull, R) \
    ((c) < (nfull) ? ROW(base, a, R) + (c) * RT : (pad) + (size_t)(k) * RT)

/* The weights of neurons i0 .. i0+NI by inputs q0 .. q0+NQ (NI * NQ <= 8
 * sums in registers, constants in each call): x_q * g_i summed over the
 * block's chunks of rows, then the lanes.  xp, gp: the ragged chunk's
 * copies of the x_q and the g_i. */
INLINE void row_weight_tile(const pg_layer_args *L, const double *V, const double *A,
                            const double *xp, const double *gp, size_t nfull, size_t nch,
                            double *gpar, size_t i0, size_t NI, size_t q0, size_t NQ)
{
    pg_v8 acc[RT];
    for (size_t k = 0; k < RT; k++)
        acc[k] = (pg_v8){0};
    for (size_t c = 0; c < nch; c++) {
        pg_v8 g[RT], x[RT];
        for (size_t i = 0; i < NI; i++)
            load_v(&g[i], CHUNK(A, L->out[i0 + i], gp, i0 + i, c, nfull, L->R));
        for (size_t q = 0; q < NQ; q++)
            load_v(&x[q], CHUNK(V, L->x[q0 + q], xp, q0 + q, c, nfull, L->R));
        for (size_t i = 0; i < NI; i++)
            for (size_t q = 0; q < NQ; q++)
                acc[i * NQ + q] = acc[i * NQ + q] + x[q] * g[i];
    }
    pg_v8 s = lane_sums(acc);
    for (size_t i = 0; i < NI; i++)
        for (size_t q = 0; q < NQ; q++)
            gpar[L->wpar[(i0 + i) * L->n + q0 + q]] += s[i * NQ + q];
}

/* Neurons i0 .. i0+NI against every input, NQ at a time, then one. */
INLINE void row_weight_tiles(const pg_layer_args *L, const double *V, const double *A,
                             const double *xp, const double *gp, size_t nfull, size_t nch,
                             double *gpar, size_t i0, size_t NI, size_t NQ)
{
    size_t q = 0;
    for (; q + NQ <= L->n; q += NQ)
        row_weight_tile(L, V, A, xp, gp, nfull, nch, gpar, i0, NI, q, NQ);
    for (; q < L->n; q++)
        row_weight_tile(L, V, A, xp, gp, nfull, nch, gpar, i0, NI, q, 1);
}

/* The starts of neurons i0 .. i0+NI (NI <= 8): g_i summed as above. */
INLINE void row_start_tile(const pg_layer_args *L, const double *A, const double *gp,
                           size_t nfull, size_t nch, double *gpar, size_t i0, size_t NI)
{
    pg_v8 acc[RT];
    for (size_t k = 0; k < RT; k++)
        acc[k] = (pg_v8){0};
    for (size_t c = 0; c < nch; c++)
        for (size_t i = 0; i < NI; i++) {
            pg_v8 g;
            load_v(&g, CHUNK(A, L->out[i0 + i], gp, i0 + i, c, nfull, L->R));
            acc[i] = acc[i] + g;
        }
    pg_v8 s = lane_sums(acc);
    for (size_t i = 0; i < NI; i++)
        if (L->spar[i0 + i] >= 0)
            gpar[L->spar[i0 + i]] += s[i];
}

/* A small layer's weights and starts: tiles of four neurons by two inputs,
 * the neurons left as three by two, two by four or one by eight. */
INLINE void small_layer_weights(const pg_layer_args *L, const double *V, const double *A,
                                double *gpar)
{
    const size_t n = L->n, m = L->m, R = L->R, nb = L->nb;
    const size_t nfull = nb / RT, nch = (nb + RT - 1) / RT;
    double *xp = L->xt, *gp = L->xt + n * RT;
    if (nch > nfull) {
        size_t r0 = nfull * RT, nr = nb - r0;
        for (size_t q = 0; q < n; q++)
            pad_chunk(xp + q * RT, ROW(V, L->x[q], R) + r0, nr);
        for (size_t i = 0; i < m; i++)
            pad_chunk(gp + i * RT, ROW(A, L->out[i], R) + r0, nr);
    }
    size_t i0 = 0;
    for (; i0 + RT <= m; i0 += RT)
        row_start_tile(L, A, gp, nfull, nch, gpar, i0, RT);
    switch (m - i0) {   /* the neurons left, as a constant bound */
    case 7: row_start_tile(L, A, gp, nfull, nch, gpar, i0, 7); break;
    case 6: row_start_tile(L, A, gp, nfull, nch, gpar, i0, 6); break;
    case 5: row_start_tile(L, A, gp, nfull, nch, gpar, i0, 5); break;
    case 4: row_start_tile(L, A, gp, nfull, nch, gpar, i0, 4); break;
    case 3: row_start_tile(L, A, gp, nfull, nch, gpar, i0, 3); break;
    case 2: row_start_tile(L, A, gp, nfull, nch, gpar, i0, 2); break;
    case 1: row_start_tile(L, A, gp, nfull, nch, gpar, i0, 1); break;
    default: break;
    }
    for (i0 = 0; i0 + 4 <= m; i0 += 4)
        row_weight_tiles(L, V, A, xp, gp, nfull, nch, gpar, i0, 4, 2);
    switch (m - i0) {
    case 3: row_weight_tiles(L, V, A, xp, gp, nfull, nch, gpar, i0, 3, 2); break;
    case 2: row_weight_tiles(L, V, A, xp, gp, nfull, nch, gpar, i0, 2, 4); break;
    case 1: row_weight_tiles(L, V, A, xp, gp, nfull, nch, gpar, i0, 1, 8); break;
    default: break;
    }
}

/* w[e][k] = v[k][e]: eight vectors transposed in three rounds of
 * two-vector shuffles (pairs, then fours, then halves), moving the numbers
 * only. */
INLINE void transpose8(const pg_v8 v[RT], pg_v8 w[RT])
{
    pg_v8 a[RT], b[RT];
    for (size_t k = 0; k < RT; k += 2) {   /* a[k]: lanes 0,2,4,6 of v[k], v[k+1] */
        a[k] = __builtin_shuffle(v[k], v[k + 1], EVEN1);
        a[k + 1] = __builtin_shuffle(v[k], v[k + 1], ODD1);
    }
    for (size_t k = 0; k < RT; k += 4)     /* b[k + e]: lanes e, e+4 of v[k..k+4) */
        for (size_t e = 0; e < 2; e++) {
            b[k + e] = __builtin_shuffle(a[k + e], a[k + e + 2], EVEN2);
            b[k + e + 2] = __builtin_shuffle(a[k + e], a[k + e + 2], ODD2);
        }
    for (size_t e = 0; e < 4; e++) {
        w[e] = __builtin_shuffle(b[e], b[e + 4], LOW4);
        w[e + 4] = __builtin_shuffle(b[e], b[e + 4], HIGH4);
    }
}

/* gt[r*mp + i] = g_i[r] for the block's rows, zeros for i in [m, mp): the
 * weights' pass reads a row's adjoints side by side.  Eight neurons by
 * eight rows a time, transposed in registers (one number at a time, a
 * strided store each, this took two thirds as long as the weights'
 * products); the rows and neurons left over one by one. */
INLINE void transpose_adjoints(const pg_layer_args *L, const double *A, double *gt, size_t mp)
{
    const size_t m = L->m, R = L->R, nb = L->nb;
    const size_t mfull = m / RT * RT, nbfull = nb / RT * RT;
    for (size_t i0 = 0; i0 < mfull; i0 += RT)
        for (size_t r0 = 0; r0 < nbfull; r0 += RT) {
            pg_v8 v[RT], w[RT];
            for (size_t k = 0; k < RT; k++)
                load_v(&v[k], ROW(A, L->out[i0 + k], R) + r0);
            transpose8(v, w);
            for (size_t e = 0; e < RT; e++)
                memcpy(gt + (r0 + e) * mp + i0, &w[e], sizeof w[e]);
        }
    for (size_t i = 0; i < m; i++) {
        const double *g = ROW(A, L->out[i], R);
        for (size_t r = i < mfull ? nbfull : 0; r < nb; r++)
            gt[r * mp + i] = g[r];
    }
    for (size_t r = 0; r < nb; r++)
        for (size_t i = m; i < mp; i++)
            gt[r * mp + i] = 0.0;
}

PG_CLONES void pg__layer_backward(const pg_layer_args *L, const double *V, double *A, double *gpar)
{
    const size_t n = L->n, m = L->m, R = L->R, nb = L->nb;
    if (L->relu)   /* the relus' backward: g_i = 0.0 + (v > 0) * the relu's adjoint */
        for (size_t i = 0; i < m; i++) {
            const double *v = ROW(V, L->relu[i], R), *gr = ROW(A, L->relu[i], R);
            double *g = ROW(A, L->out[i], R);
            for (size_t r = 0; r < nb; r++)
                g[r] = 0.0 + (double)(v[r] > 0.0) * gr[r];
        }
    /* the weights and the starts (read the adjoints and the values) */
    if (n < RT || m < RT) {
        small_layer_weights(L, V, A, gpar);
    } else {   /* neurons in the lanes (weight_tile) */
        const size_t mp = (m + RT - 1) / RT * RT;   /* m, padded to whole tiles */
        /* the adjoints, transposed: gt[r*mp + i] = g_i[r], zeros past m */
        double *gt = L->xt;
        transpose_adjoints(L, A, gt, mp);
        for (size_t i0 = 0; i0 < m; i0 += RT) {
            size_t ni = m - i0 < RT ? m - i0 : RT, q = 0;
            for (; q + RT <= n; q += RT)
                weight_tile_at(L, V, gt, mp, gpar, i0, ni, q, RT);
            switch (n - q) {   /* the inputs left, as a constant bound */
            case 7: weight_tile_at(L, V, gt, mp, gpar, i0, ni, q, 7); break;
            case 6: weight_tile_at(L, V, gt, mp, gpar, i0, ni, q, 6); break;
            case 5: weight_tile_at(L, V, gt, mp, gpar, i0, ni, q, 5); break;
            case 4: weight_tile_at(L, V, gt, mp, gpar, i0, ni, q, 4); break;
            case 3: weight_tile_at(L, V, gt, mp, gpar, i0, ni, q, 3); break;
            case 2: weight_tile_at(L, V, gt, mp, gpar, i0, ni, q, 2); break;
            case 1: weight_tile_at(L, V, gt, mp, gpar, i0, ni, q, 1); break;
            default: break;
            }
        }
    }
    /* the inputs (write the x_q's adjoints: after the weights, which read
     * only values, so the order of the two does not matter; xt is free) */
    if (L->no_x_adjoints)
        return;
    size_t r0 = 0;
    for (; r0 + RT <= nb; r0 += RT)
        in_rows(L, A, NULL, r0, RT);
    if (r0 < nb) {   /* the last rows, padded */
        size_t nr = nb - r0;
        for (size_t i = 0; i < m; i++)
            pad_chunk(L->xt + i * RT, ROW(A, L->out[i], R) + r0, nr);
        in_rows(L, A, L->xt, r0, nr);
    }
}
