/* layer.h -- a layer of neurons over a block of rows, for tape maps
 * (layer.c).  Internal.
 *
 * A layer is m PG_DOT nodes that read the same n row arrays in the same
 * order, each with its own weights (parameters) and start (a parameter or a
 * constant): out_i[r] = s_i + w_i0 * x_0[r] + ... + w_i,n-1 * x_n-1[r].  In
 * a map's block these are an m x n matrix times an n x nb one; run neuron
 * by neuron, each multiply-add would load and store its sum, and each
 * x_q[r] would be loaded m times.  These kernels keep a tile of sums (a few
 * neurons by a few rows) in registers instead.
 *
 * Row arrays are addressed as map.c does: row array a of a block is
 * base + a * R, rows 0 .. nb-1 of it are used (nb <= R).
 *
 * Rounding.  Forward, each row's sum is added up in eager mode's order
 * (start, then q = 0, 1, ...), so values are eager mode's to the bit.
 * Backward, an input's adjoint gets w_iq * g_i for i = m-1 down to 0, one
 * add at a time, as the reverse sweep of the separate nodes adds them
 * (unless another op reads x_q between the layer's first and last neuron:
 * its add then comes before the layer's, not among them; a fixed order
 * still, the tape's); a
 * weight's derivative, the sum over the block's rows of x_q[r] * g_i[r],
 * and a start's, the sum of g_i[r], are added up in row order -- or, in a
 * layer of fewer than 8 inputs or neurons, in eight sums of every eighth
 * row (r % 8), added up at the end in a fixed order.  So the order is
 * fixed by the block and the layer's shape alone: the same bits for any
 * thread count or vector unit.  Neither function can fail. */
#ifndef PYGRAD_LAYER_H
#define PYGRAD_LAYER_H

#include <stddef.h>
#include <stdint.h>

typedef struct pg_layer_args {
    size_t n, m;           /* inputs, neurons */
    size_t R, nb;          /* rows a row array holds, rows used */
    const int32_t *x;      /* n: the inputs' row arrays */
    const uint32_t *out;   /* m: the neurons' row arrays */
    const uint32_t *relu;  /* m: row arrays of relu(out_i), or NULL (below) */
    const double *w;       /* m * n: neuron i's weights at w[i*n ..] */
    const double *s;       /* m: the starts' values */
    const int32_t *wpar;   /* m * n: the weights' parameter numbers */
    const int32_t *spar;   /* m: the starts' parameter numbers, -1: a constant */
    double *xt;            /* (n + m + 8) * max(nb, 8) doubles of scratch */
    int no_x_adjoints;     /* backward: leave the x_q's adjoints alone (nobody
                            * reads them: the map's inputs, no input_grads) */
    int x_first;           /* backward: the x_q's adjoints are 0.0 (not read:
                            * they are set, as an add to 0.0 would) */
} pg_layer_args;

/* out_i[r] for every neuron i and row r < nb, into V; with relu, instead,
 * relu(out_i[r]) into relu_i's row (pg_relu's bits; out_i's row is not
 * written: nothing but the relu reads it). */
void pg__layer_forward(const pg_layer_args *L, double *V);

/* With A the adjoints (out_i's complete; with relu, relu_i's, and out_i's
 * row is set to 0.0 + (relu_i > 0) * its adjoint, as relu's backward adds
 * it to a zero adjoint): A's x_q rows += the products
 * (unless no_x_adjoints; with x_first, A's x_q rows are taken as 0.0, not read),
 * gpar[wpar[i*n + q]] += d/dw_iq and gpar[spar[i]] += d/ds_i (the sum of
 * g_i over the rows, in row order).  The x_q must be distinct row arrays
 * (an input given twice would lose an add). */
void pg__layer_backward(const pg_layer_args *L, const double *V, double *A,
                        double *gpar);

#endif /* PYGRAD_LAYER_H */
