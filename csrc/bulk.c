/* bulk.c -- many nodes in one call: reading and writing values and grads,
 * and optimizer steps, so that Python never loops over scalars in a hot path.
 * Every function checks all indices before touching anything, so a bad index
 * changes nothing.
 */
#include <math.h>
#include <string.h>
#include "arena.h"

/* out[j] = the value (or grad) of idx[j].  The column is picked under the
 * lock, since growing the arena moves it. */
static int get_numbers(pg_arena *a, const pg_index *idx, size_t n,
                       double *out, int grads)
{
    LOCK(a);
    int rc = pg__all_live(a, idx, n);
    if (rc == PG_OK) {
        const double *col = grads ? a->grad : a->val;
        for (size_t j = 0; j < n; j++)
            out[j] = col[idx[j]];
    }
    UNLOCK(a);
    return rc;
}

/* The value (or grad) of idx[j] = in[j], or `fill` when in is NULL. */
static int put_numbers(pg_arena *a, const pg_index *idx, size_t n,
                       const void *in, double fill, int grads)
{
    LOCK(a);
    int rc = pg__all_live(a, idx, n);
    if (rc == PG_OK && n) {
        double *col = grads ? a->grad : a->val;
        const unsigned char *bytes = in;   /* (any alignment: pygrad.h) */
        for (size_t j = 0; j < n; j++) {
            double x = fill;
            if (bytes)
                memcpy(&x, bytes + j * sizeof x, sizeof x);
            col[idx[j]] = x;
        }
        if (!grads)
            pg__values_written(a);
    }
    UNLOCK(a);
    return rc;
}

int pg_get_data(pg_arena *a, const pg_index *idx, size_t n, double *out)
{
    return get_numbers(a, idx, n, out, 0);
}

int pg_get_grad(pg_arena *a, const pg_index *idx, size_t n, double *out)
{
    return get_numbers(a, idx, n, out, 1);
}

int pg_put_data(pg_arena *a, const pg_index *idx, size_t n, const void *in)
{
    return put_numbers(a, idx, n, in, 0.0, 0);
}

int pg_put_grad(pg_arena *a, const pg_index *idx, size_t n, const void *in)
{
    return put_numbers(a, idx, n, in, 0.0, 1);
}

int pg_fill_grad(pg_arena *a, const pg_index *idx, size_t n, double g)
{
    return put_numbers(a, idx, n, NULL, g, 1);
}

/* torch.optim.SGD's update, term for term.  Without momentum or weight
 * decay it is micrograd's `p.data -= lr * p.grad` exactly. */
int pg_sgd_step(pg_arena *a, const pg_index *idx, size_t n, double lr,
                double momentum, double weight_decay, double *velocity)
{
    LOCK(a);
    int rc = pg__all_live(a, idx, n);
    if (rc == PG_OK && n) {
        for (size_t j = 0; j < n; j++) {
            pg_index i = idx[j];
            double g = a->grad[i];
            if (weight_decay != 0.0)
                g = g + weight_decay * a->val[i];
            if (momentum != 0.0) {
                velocity[j] = momentum * velocity[j] + g;
                g = velocity[j];
            }
            a->val[i] -= lr * g;
        }
        pg__values_written(a);
    }
    UNLOCK(a);
    return rc;
}

/* torch.optim.Adam's update (L2 weight decay added to the gradient, bias
 * corrections as in torch's single-tensor path). */
int pg_adam_step(pg_arena *a, const pg_index *idx, size_t n, double lr,
                 double beta1, double beta2, double eps, double weight_decay,
                 int64_t t, double *m, double *v)
{
    double bc1 = 1.0 - pow(beta1, (double)t);
    double bc2 = 1.0 - pow(beta2, (double)t);
    double step = lr / bc1;
    double bc2_sqrt = sqrt(bc2);
    LOCK(a);
    int rc = pg__all_live(a, idx, n);
    if (rc == PG_OK && n) {
        for (size_t j = 0; j < n; j++) {
            pg_index i = idx[j];
            double g = a->grad[i];
            if (weight_decay != 0.0)
                g = g + weight_decay * a->val[i];
            m[j] = beta1 * m[j] + (1.0 - beta1) * g;
            v[j] = beta2 * v[j] + (1.0 - beta2) * g * g;
            double denom = sqrt(v[j]) / bc2_sqrt + eps;
            a->val[i] -= step * (m[j] / denom);
        }
        pg__values_written(a);
    }
    UNLOCK(a);
    return rc;
}
