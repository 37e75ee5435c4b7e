/* ops.c -- creating nodes: evaluate the op, reject what Python's float
 * arithmetic would reject, and only then allocate, so a failed call leaves the
 * arena untouched.  The maths itself is the table in ops.h.
 */
#include <stdlib.h>
#include <string.h>
#include "arena.h"

int pg_op_kind(int op)
{
    return op > PG_FREE && op < PG_NOPS ? pg_kind(op) : PG_EINVAL;
}

pg_index pg__leaf(pg_arena *a, double value)
{
    pg_index i = pg__alloc(a, PG_NONE);
    if (i != PG_NONE) {
        a->op[i] = PG_LEAF;
        a->val[i] = value;
    }
    return i;
}

int64_t pg_leaf(pg_arena *a, double value)
{
    LOCK(a);
    pg_index i = pg__leaf(a, value);
    if (i != PG_NONE)
        pg__made(a, i);
    UNLOCK(a);
    return i == PG_NONE ? PG_ENOMEM : (int64_t)i;
}

/* Without gradients (pg_set_grad_mode): per thread, as torch's no_grad.
 * Then every op makes a leaf holding its value, with no inputs. */
static _Thread_local int no_grad;

int pg_set_grad_mode(int enabled)
{
    int was = !no_grad;
    no_grad = !enabled;
    return was;
}

/* A leaf holding v, for an op made without gradients; PG_ENOMEM. */
static int64_t leaf_instead(pg_arena *a, double v)
{
    pg_index i = pg__leaf(a, v);
    return i == PG_NONE ? PG_ENOMEM : (int64_t)i;
}

int64_t pg__op(pg_arena *a, int op, pg_index xi, pg_index yi, double k)
{
    double x = a->val[xi];
    double y = yi == PG_NONE ? 0.0 : a->val[yi];
    double v, dx, dy;
    int rc = pg_eval(op, x, y, k, &v, &dx, &dy);
    if (rc != PG_OK)
        return rc;
    if (no_grad)
        return leaf_instead(a, v);
    /* inputs gain one reference each (two if x is y): refuse before
     * allocating if that would overflow the count */
    if (a->ref[xi] >= PG_NONE - 2 || (yi != PG_NONE && a->ref[yi] >= PG_NONE - 2))
        return PG_ENOMEM;
    pg_index newest = yi != PG_NONE && pg__newer(a, yi, xi) ? yi : xi;
    pg_index i = pg__alloc(a, newest);
    if (i == PG_NONE)
        return PG_ENOMEM;
    a->op[i] = (uint8_t)op;
    a->flags[i] |= PG_STORED;
    a->val[i] = v;
    a->d0[i] = dx;
    if (yi != PG_NONE)
        a->aux[i].d1 = dy;
    else
        a->aux[i].k = k;
    a->in0[i] = xi;
    a->in1[i] = yi;
    a->ref[xi]++;
    if (yi != PG_NONE)
        a->ref[yi]++;
    return i;
}

/* The result of a public creating call: noted for pg_unclaimed. */
static int64_t made(pg_arena *a, int64_t r)
{
    if (r >= 0)
        pg__made(a, (pg_index)r);
    return r;
}

int64_t pg_op1(pg_arena *a, int op, pg_index x, double k)
{
    if (op < 0 || op >= PG_NOPS || pg_arity(op) != 1)
        return PG_EINVAL;
    if (!pg_has_k(op))
        k = 0.0;
    LOCK(a);
    int64_t r = pg__is_live(a, x) ? made(a, pg__op(a, op, x, PG_NONE, k)) : PG_EINVAL;
    UNLOCK(a);
    return r;
}

int64_t pg_op2(pg_arena *a, int op, pg_index x, pg_index y)
{
    if (op < 0 || op >= PG_NOPS || pg_arity(op) != 2)
        return PG_EINVAL;
    LOCK(a);
    int64_t r = pg__is_live(a, x) && pg__is_live(a, y)
                    ? made(a, pg__op(a, op, x, y, 0.0))
                    : PG_EINVAL;
    UNLOCK(a);
    return r;
}

/* pg_sum, pg_dot, pg_custom: the node's input list is p[0..np) then
 * q[0..nq); its value is *given, or computed (n-ary ops) when given is
 * NULL. */
static int64_t make_list_node(pg_arena *a, int op, const pg_index *p, size_t np,
                              const pg_index *q, size_t nq, pg_index start,
                              double k, const double *given)
{
    if (np > UINT32_MAX / 4 || nq > UINT32_MAX / 4)
        return PG_ENOMEM;
    size_t m = np + nq;
    int64_t r = PG_EINVAL;
    /* allocated before locking, so malloc never runs under the lock */
    size_t bytes = sizeof(pg_list) + m * sizeof(pg_index);
    pg_list *l = malloc(bytes);
    if (!l)
        return PG_ENOMEM;
    pg_index *list = l->item;
    l->k = k;
    if (np)
        memcpy(list, p, np * sizeof(pg_index));
    if (nq)
        memcpy(list + np, q, nq * sizeof(pg_index));
    LOCK(a);
    if (start != PG_NONE && !pg__is_live(a, start))
        goto fail;
    /* every input live, and its count able to take all its repeats */
    for (size_t j = 0; j < m; j++) {
        if (!pg__is_live(a, list[j]))
            goto fail;
        if (a->ref[list[j]] >= PG_NONE - 2 - m) {
            r = PG_ENOMEM;
            goto fail;
        }
    }
    double v = given ? *given
                     : pg_nary_forward(op, a->val, list, (uint32_t)m,
                                       start == PG_NONE ? k : a->val[start]);
    if (no_grad) {
        r = made(a, leaf_instead(a, v));
        goto fail;   /* (frees the list, which a leaf does not keep) */
    }
    pg_index newest = start;
    for (size_t j = 0; j < m; j++)
        if (newest == PG_NONE || pg__newer(a, list[j], newest))
            newest = list[j];
    pg_index i = pg__alloc(a, newest == PG_NONE ? PG_AFTER_ALL : newest);
    if (i == PG_NONE) {
        r = PG_ENOMEM;
        goto fail;
    }
    a->op[i] = (uint8_t)op;
    a->val[i] = v;
    a->aux[i].list = l;
    a->in0[i] = (uint32_t)m;
    a->in1[i] = start;
    for (size_t j = 0; j < m; j++)
        a->ref[list[j]]++;
    if (start != PG_NONE)
        a->ref[start]++;
    a->list_bytes += bytes;
    pg__made(a, i);
    UNLOCK(a);
    return i;
fail:
    UNLOCK(a);
    free(l);
    return r;
}

int64_t pg_sum(pg_arena *a, const pg_index *x, size_t n, pg_index start, double k)
{
    return make_list_node(a, PG_SUM, x, n, NULL, 0, start, k, NULL);
}

int64_t pg_dot(pg_arena *a, const pg_index *w, const pg_index *x, size_t n,
               pg_index start, double k)
{
    return make_list_node(a, PG_DOT, w, n, x, n, start, k, NULL);
}

int64_t pg_custom(pg_arena *a, const pg_index *in, size_t n, double value)
{
    return make_list_node(a, PG_PYOP, in, n, NULL, 0, PG_NONE, 0.0, &value);
}
