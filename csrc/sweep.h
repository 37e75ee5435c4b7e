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

/* The eager sweep's step for node i, from the values (a node whose stored
 * partials are current takes backward.c's shorter path): propagate and
 * mark.  Returns 1 for a Python-defined node, whose backward is Python's:
 * its inputs are marked, their grads untouched; else 0. */
static inline int pg_propagate(pg_arena *a, pg_index i, size_t *pending)
{
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

/* Forward mode (pg_jvp, pg_tape_jvp): an n-ary node's tangent, from the
 * tangents (in grad) of its start s (PG_NONE: none) and list[0..m) that
 * move -- a node moves when its flag PG_MARK is clear: an input, or a node
 * below one -- in the sweep's order; *moved says whether any did.  A term
 * of what does not move is not made, not even 0 times an infinite partial. */
static inline double pg_nary_tangent(const pg_arena *a, int op, pg_index s,
                                     const pg_index *list, uint32_t m, int *moved)
{
#define PG_MOVES(i) (!(a->flags[i] & PG_MARK))
    double t = 0.0;
    *moved = 0;
    if (s != PG_NONE && PG_MOVES(s)) {
        t = a->grad[s];
        *moved = 1;
    }
    if (op == PG_SUM) {
        for (uint32_t q = 0; q < m; q++)
            if (PG_MOVES(list[q])) {
                t += a->grad[list[q]];
                *moved = 1;
            }
        return t;
    }
    for (uint32_t q = 0; q < m / 2; q++) {   /* a pair's two terms together */
        pg_index w = list[q], x = list[m / 2 + q];
        if (PG_MOVES(w) && PG_MOVES(x))
            t += a->val[x] * a->grad[w] + a->val[w] * a->grad[x];
        else if (PG_MOVES(w))
            t += a->val[x] * a->grad[w];
        else if (PG_MOVES(x))
            t += a->val[w] * a->grad[x];
        else
            continue;
        *moved = 1;
    }
    return t;
#undef PG_MOVES
}

#endif /* PYGRAD_SWEEP_H */
