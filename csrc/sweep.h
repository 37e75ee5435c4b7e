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

/* Forward mode (pg_jvp, pg_tape_jvp): whether node i moves -- its flag
 * PG_MARK is clear: an input, or a node below one whose tangent is made.
 * A term of what does not move is not made, not even 0 times an infinite
 * partial. */
static inline int pg_moves(const pg_arena *a, pg_index i)
{
    return !(a->flags[i] & PG_MARK);
}

/* Forward mode: a one- or two-input node's tangent (two: whether in1 is an
 * input), d0 * t(in0) + d1 * t(in1) over the inputs that move; *moved says
 * whether any did. */
static inline double pg_pair_tangent(const pg_arena *a, double d0, pg_index in0, double d1,
                                     pg_index in1, int two, int *moved)
{
    int m0 = pg_moves(a, in0), m1 = two && pg_moves(a, in1);
    *moved = m0 || m1;
    if (m0 && m1)
        return d0 * a->grad[in0] + d1 * a->grad[in1];
    if (m0)
        return d0 * a->grad[in0];
    return m1 ? d1 * a->grad[in1] : 0.0;
}

/* Forward mode: an n-ary node's tangent, from the tangents (in grad) of
 * its start s (PG_NONE: none) and list[0..m) that move, in the sweep's
 * order; *moved says whether any did. */
static inline double pg_nary_tangent(const pg_arena *a, int op, pg_index s,
                                     const pg_index *list, uint32_t m, int *moved)
{
    double t = 0.0;
    *moved = 0;
    if (s != PG_NONE && pg_moves(a, s)) {
        t = a->grad[s];
        *moved = 1;
    }
    if (op == PG_SUM) {
        for (uint32_t q = 0; q < m; q++)
            if (pg_moves(a, list[q])) {
                t += a->grad[list[q]];
                *moved = 1;
            }
        return t;
    }
    for (uint32_t q = 0; q < m / 2; q++) {   /* a pair's two terms together */
        pg_index w = list[q], x = list[m / 2 + q];
        int pair_moved;
        double pair = pg_pair_tangent(a, a->val[x], w, a->val[w], x, 1, &pair_moved);
        if (pair_moved) {
            t += pair;
            *moved = 1;
        }
    }
    return t;
}

#endif /* PYGRAD_SWEEP_H */
