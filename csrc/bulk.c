/* bulk.c -- many nodes in one call: reading and writing values and grads,
 * and optimizer steps, so that Python never loops over scalars in a hot path.
 * Every function checks all indices before touching anything, so a bad index
 * changes nothing.
 */
#include <math.h>
#include "arena.h"

int pg__all_live(const pg_arena *a, const pg_index *idx, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (!pg_is_live(a, idx[j]))
            return PG_EINVAL;
    return PG_OK;
}

/* Under the lock: validate, then run BODY for each j with i = idx[j]. */
#define FOR_EACH_LIVE(a, idx, n, BODY)                   \
    do {                                                 \
        LOCK(a);                                         \
        int rc_ = pg__all_live(a, idx, n);               \
        if (rc_ == PG_OK)                                \
            for (size_t j = 0; j < (n); j++) {           \
                pg_index i = (idx)[j];                   \
                BODY;                                    \
            }                                            \
        UNLOCK(a);                                       \
        return rc_;                                      \
    } while (0)

int pg_get_data(pg_arena *a, const pg_index *idx, size_t n, double *out)
{
    FOR_EACH_LIVE(a, idx, n, out[j] = a->val[i]);
}

int pg_get_grad(pg_arena *a, const pg_index *idx, size_t n, double *out)
{
    FOR_EACH_LIVE(a, idx, n, out[j] = a->grad[i]);
}

/* Writes to values make stored partials stale: see arena.h. */
int pg_put_data(pg_arena *a, const pg_index *idx, size_t n, const double *in)
{
    FOR_EACH_LIVE(a, idx, n, a->val[i] = in[j]; a->data_epoch += j == 0);
}

int pg_put_grad(pg_arena *a, const pg_index *idx, size_t n, const double *in)
{
    FOR_EACH_LIVE(a, idx, n, a->grad[i] = in[j]);
}

int pg_fill_grad(pg_arena *a, const pg_index *idx, size_t n, double g)
{
    FOR_EACH_LIVE(a, idx, n, a->grad[i] = g);
}

/* torch.optim.SGD's update, term for term.  Without momentum or weight
 * decay it is micrograd's `p.data -= lr * p.grad` exactly. */
int pg_sgd_step(pg_arena *a, const pg_index *idx, size_t n, double lr,
                double momentum, double weight_decay, double *velocity)
{
    FOR_EACH_LIVE(a, idx, n, {
        double g = a->grad[i];
        if (weight_decay != 0.0)
            g = g + weight_decay * a->val[i];
        if (momentum != 0.0) {
            velocity[j] = momentum * velocity[j] + g;
            g = velocity[j];
        }
        a->val[i] -= lr * g;
        a->data_epoch += j == 0;
    });
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
    FOR_EACH_LIVE(a, idx, n, {
        double g = a->grad[i];
        if (weight_decay != 0.0)
            g = g + weight_decay * a->val[i];
        m[j] = beta1 * m[j] + (1.0 - beta1) * g;
        v[j] = beta2 * v[j] + (1.0 - beta2) * g * g;
        double denom = sqrt(v[j]) / bc2_sqrt + eps;
        a->val[i] -= step * (m[j] / denom);
        a->data_epoch += j == 0;
    });
}
