/* sweep.h -- one node's step of a reverse sweep, shared by the eager
 * backward pass (backward.c) and tape replay (replay.c).
 *
 * One switch on the op, each case generated from ops.h's table with the op
 * a constant, so the compiler keeps just that op's formulas: a random mix of
 * ops then costs one unpredictable branch per node, not three.
 */
#ifndef PYGRAD_SWEEP_H
#define PYGRAD_SWEEP_H

#include "arena.h"

/* Adds d to input i's grad.  With marking on, also marks i as reached
 * (pg__mark: the eager sweep's bookkeeping). */
static inline void pg_reach(pg_arena *a, pg_index i, double d, int marking,
                            size_t *pending)
{
    a->grad[i] += d;
    if (marking)
        pg__mark(a, i, pending);
}

/* Passes the grad g of a node (op, in0, in1, aux, value v) on to its
 * inputs as micrograd's _backward does: input 0 first, then input 1
 * (n-ary: the start, then the list in order).  `marking` is a constant at
 * every call site. */
static inline void pg_step_back(pg_arena *a, int op, pg_index in0, pg_index in1,
                                pg_aux aux, double v, double g, int marking,
                                size_t *pending)
{
    const double *val = a->val;
    switch (op) {
#define PG_BACK_CASE(op_, kind_, part_, v_, dx_, dy_, err_, ...)                  \
    PG_IF_FORMULA(kind_,                                                     \
    case op_: {                                                              \
        double x = val[in0];                                                 \
        double y = pg_arity(op_) == 2 ? val[in1] : 0.0;                      \
        double k = aux.k;                                                    \
        (void)x; (void)y; (void)k; (void)v;                                  \
        pg_reach(a, in0, (dx_) * g, marking, pending);                       \
        if (pg_arity(op_) == 2)                                              \
            pg_reach(a, in1, (dy_) * g, marking, pending);                   \
        return;                                                              \
    })
    PG_OP_TABLE(PG_BACK_CASE)
#undef PG_BACK_CASE
    default:
        break;
    }
    if (!pg_is_nary(op))   /* a leaf: nothing below */
        return;
    const pg_index *list = aux.list->item;
    uint32_t m = in0;
    if (in1 != PG_NONE)
        pg_reach(a, in1, 1.0 * g, marking, pending);
    if (op == PG_SUM) {
        for (uint32_t j = 0; j < m; j++)
            pg_reach(a, list[j], 1.0 * g, marking, pending);
    } else {   /* PG_DOT: w[j] gets x[j]*g, then x[j] gets w[j]*g */
        uint32_t n = m / 2;
        for (uint32_t j = 0; j < n; j++) {
            pg_reach(a, list[j], val[list[n + j]] * g, marking, pending);
            pg_reach(a, list[n + j], val[list[j]] * g, marking, pending);
        }
    }
}

/* The eager sweep's step for node i: propagate and mark.  With `stored`
 * (node i has stored partials, PG_STORED, and they are current, see
 * arena.h) a one- or two-input node costs two multiply-adds and no per-op
 * branch: a one-input node sends -0.0, which leaves any sum unchanged, to
 * input 0 a second time.  Returns 1 for a Python-defined node, whose
 * backward is Python's: its inputs are marked, their grads untouched;
 * else 0. */
static inline int pg_propagate(pg_arena *a, pg_index i, int stored,
                               size_t *pending)
{
    if (stored) {
        double g = a->grad[i];
        pg_index i0 = a->in0[i], i1 = a->in1[i];
        int two = i1 != PG_NONE;
        pg_reach(a, i0, a->d0[i] * g, 1, pending);
        double c = a->aux[i].d1 * g;          /* garbage for one-input ops */
        pg_reach(a, two ? i1 : i0, two ? c : -0.0, 1, pending);
        return 0;
    }
    int op = a->op[i];
    if (pg_is_python(op)) {
        /* its backward is Python's, and adds to its inputs' grads: they
         * must be visited after it */
        for (uint32_t j = 0; j < a->in0[i]; j++)
            pg__mark(a, a->aux[i].list->item[j], pending);
        return 1;
    }
    pg_step_back(a, op, a->in0[i], a->in1[i], a->aux[i], a->val[i],
                 a->grad[i], 1, pending);
    return 0;
}

#endif /* PYGRAD_SWEEP_H */
