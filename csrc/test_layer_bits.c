/* test_layer_bits.c -- layer.c's kernels give the same bits whatever the
 * vector unit they are compiled for (make test-c builds this once per
 * instruction set the machine has, with -DPG_NO_CLONES, and compares the
 * hashes it prints).  The same operations in the same order, no fused
 * multiply-add: so a map's results do not depend on the machine's vector
 * width.  Layers of 1..19 neurons, 1..21 inputs, 1..40 rows: every ragged
 * edge of the tiles; and each with its neurons' relus run in the kernels.
 * Also: x_first (the inputs' adjoints taken as 0.0, not read) gives the
 * bytes of a backward whose inputs' adjoints were zeroed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "layer.h"

int main(void)
{
    unsigned long long h = 1469598103934665603ull;   /* FNV-1a over the bytes */
    for (size_t m = 1; m <= 19; m += 3)
        for (size_t n = 1; n <= 21; n += 4)
            for (size_t nb = 1; nb <= 40; nb += 7)
            for (int mode = 0; mode < 4; mode++) {
                int relu = mode & 1, x_first = mode >> 1;
                size_t R = 64, narr = n + 2 * m, nw = m * n;
                double *V = calloc(narr * R, sizeof *V), *A = calloc(narr * R, sizeof *A);
                double *xt = calloc((n + m + 8) * R, sizeof *xt);
                double *w = malloc(nw * sizeof *w), *s = malloc(m * sizeof *s);
                double *gpar = calloc(nw + m, sizeof *gpar);
                int32_t *x = malloc(n * sizeof *x), *wpar = malloc(nw * sizeof *wpar);
                int32_t *spar = malloc(m * sizeof *spar);
                uint32_t *out = malloc(m * sizeof *out), *act = malloc(m * sizeof *act);
                if (!V || !A || !xt || !w || !s || !gpar || !x || !wpar || !spar || !out ||
                    !act) {
                    fprintf(stderr, "out of memory\n");
                    return 1;
                }
                for (size_t q = 0; q < n; q++)
                    x[q] = (int32_t)q;
                for (size_t i = 0; i < m; i++) {
                    out[i] = (uint32_t)(n + i);
                    act[i] = (uint32_t)(n + m + i);
                    spar[i] = i % 3 ? (int32_t)(nw + i) : -1;
                    s[i] = 0.1 * (double)i - 0.3;
                }
                for (size_t k = 0; k < nw; k++) {
                    wpar[k] = (int32_t)k;
                    w[k] = 0.37 * (double)((k * 7919) % 23) - 2.1;
                }
                for (size_t k = 0; k < narr * R; k++) {
                    V[k] = 0.013 * (double)((k * 104729) % 31) - 0.2;
                    A[k] = 0.031 * (double)((k * 7) % 11) - 0.17;
                }
                pg_layer_args L = {n, m, R, nb, x, out, relu ? act : NULL, w, s, wpar, spar,
                                   xt, 0, x_first};
                pg__layer_forward(&L, V);
                double *A0 = malloc(narr * R * sizeof *A0), *g0 = calloc(nw + m, sizeof *g0);
                if (!A0 || !g0) {
                    fprintf(stderr, "out of memory\n");
                    return 1;
                }
                memcpy(A0, A, narr * R * sizeof *A0);
                memset(A0, 0, n * R * sizeof *A0);     /* the inputs' rows: 0.0 */
                pg__layer_backward(&L, V, A, gpar);
                if (x_first) {
                    pg_layer_args L0 = L;
                    L0.x_first = 0;
                    pg__layer_backward(&L0, V, A0, g0);
                    int same = memcmp(g0, gpar, (nw + m) * sizeof *g0) == 0 &&
                               memcmp(A0 + n * R, A + n * R, (narr - n) * R * sizeof *A) == 0;
                    for (size_t q = 0; q < n; q++)   /* (rows past nb: unused) */
                        same = same && memcmp(A0 + q * R, A + q * R, nb * sizeof *A) == 0;
                    if (!same) {
                        fprintf(stderr, "x_first differs from zeroed adjoints: "
                                "m %zu n %zu nb %zu relu %d\n", m, n, nb, relu);
                        return 1;
                    }
                }
                free(A0), free(g0);
                const unsigned char *b[3] = {(void *)V, (void *)A, (void *)gpar};
                size_t len[3] = {narr * R * sizeof *V, narr * R * sizeof *A,
                                 (nw + m) * sizeof *gpar};
                for (int t = 0; t < 3; t++)
                    for (size_t k = 0; k < len[t]; k++)
                        h = (h ^ b[t][k]) * 1099511628211ull;
                free(V), free(A), free(xt), free(w), free(s), free(gpar);
                free(x), free(wpar), free(spar), free(out), free(act);
            }
    printf("%016llx\n", h);
    return 0;
}
