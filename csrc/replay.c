/* replay.c -- a compiled tape's forward and backward passes (tape.h has
 * the layout).  Both are one loop over the instructions with no search of
 * the graph; what makes them fast on a big random graph:
 *   - the previous instruction's value (forward) and the grad it hands to
 *     its chained input (backward) stay in a register: most instructions
 *     read the one before (x in x*y, tanh(x+y)), and through memory each
 *     would wait for a store-to-load round trip;
 *   - backward has no per-op branch (stored partials; sinks for the adds
 *     that do not happen; a mask for the register's);
 *   - the far inputs are prefetched PG_AHEAD instructions ahead.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "tape.h"

/* c when `keep`, else +0.0.  Branch-free, as whether an instruction is
 * chained is a coin toss, and in an SSE register where there is one, as
 * it sits on backward's critical path.  Adding the +0.0 to the next grad
 * changes nothing: that grad is a sum started at +0.0, which is never
 * -0.0, and x + 0.0 == x for every other x. */
#ifdef __SSE2__
#include <emmintrin.h>
static inline double pg_keep(double c, unsigned keep)
{
    __m128d m = _mm_castsi128_pd(_mm_cvtsi64_si128(-(long long)(keep != 0)));
#if defined(__GNUC__)
    /* and c's whole register: _mm_set_sd(c) would first clear its upper
     * half, one cycle more on the critical path */
    __asm__("andpd %1, %0" : "+x"(c) : "x"(m));
    return c;
#else
    return _mm_cvtsd_f64(_mm_and_pd(_mm_set_sd(c), m));
#endif
}
#else
static inline double pg_keep(double c, unsigned keep)
{
    uint64_t b, m = -(uint64_t)(keep != 0);
    memcpy(&b, &c, sizeof b);
    b &= m;
    memcpy(&c, &b, sizeof c);
    return c;
}
#endif

#if defined(__GNUC__)
#define PG_PREFETCH(p, rw) __builtin_prefetch((p), (rw))
#else
#define PG_PREFETCH(p, rw) ((void)(p))
#endif

/* Where the replay loops fall relative to 64-byte lines changes their speed
 * by a third (forward on the bench dag: 5.2 or 6.8 ns per node, the same
 * machine code at two addresses), so they start on a line. */
#if defined(__GNUC__)
#define PG_LINE_ALIGNED __attribute__((aligned(64)))
#define PG_NOINLINE __attribute__((noinline))
#else
#define PG_LINE_ALIGNED
#define PG_NOINLINE
#endif

/* One instruction of pg_tape_forward, given x (input 0's value): the value
 * into `last`, the partials into d (the chained input's first), or the op's
 * error.  Case labels and bodies for one op and one way of chaining. */
#define PG_FORWARD_STEP(op_, v_, dx_, dy_, err_, x_, y_, chain1)            \
    {                                                                       \
        double x = (x_);                                                    \
        double y = pg_arity(op_) == 2 ? (y_) : 0.0;                         \
        double k = pg_has_k(op_) ? *kp++ : 0.0;                             \
        (void)y; (void)k;                                                   \
        double v = (v_);                                                    \
        rc = (err_);                                                        \
        if (rc != PG_OK)                                                    \
            goto fail;                                                      \
        if (!pg_fixed_partials(op_)) {                                      \
            d[chain1] = (dx_);                                              \
            if (pg_arity(op_) == 2)                                         \
                d[!(chain1)] = (dy_);                                       \
        }                                                                   \
        d += pg_nparts(op_);                                                \
        last = v;                                                           \
        break;                                                              \
    }
#define PG_FORWARD_CASES(op_, kind_, part_, v_, dx_, dy_, err_, ...)             \
    PG_IF_FORMULA(kind_,                                                    \
    case op_:                                                               \
        PG_FORWARD_STEP(op_, v_, dx_, dy_, err_, val[e.in0], val[e.in1], 0) \
    case op_ | PG_CHAIN0:                                                   \
        PG_FORWARD_STEP(op_, v_, dx_, dy_, err_, last, val[e.in1], 0)       \
    case op_ | PG_CHAIN1:                                                   \
        PG_FORWARD_STEP(op_, v_, dx_, dy_, err_, val[e.in0], last, 1))

PG_LINE_ALIGNED
int pg_tape_forward(pg_tape *t, int *failed_op, pg_index *failed_node)
{
    pg_arena *a = t->a;
    int rc = PG_OK;
    LOCK(a);
    double *val = a->val;
    const uint8_t *op = t->op;
    const pg_step *step = t->fwd;
    const double *kp = t->k;
    pg_list *const *lp = t->list;
    double *d = t->d;
    pg__values_written(a);   /* stored partials elsewhere go stale */
    /* The previous instruction's value, which the next one mostly reads
     * (x in x*y, the inner op in tanh(x+y)): from a register, it costs
     * that op's latency; from val[], a store-to-load round trip more. */
    double last = 0.0;
    size_t j, n = t->ncode;
    for (j = 0; j < n; j++) {
        pg_step e = step[j];
        PG_PREFETCH(&val[step[j + PG_AHEAD].far], 0);
        switch (op[j]) {
        PG_OP_TABLE(PG_FORWARD_CASES)
        PG_OP_TABLE(PG_NARY_CASE) {
            const pg_list *l = *lp++;
            double s = e.in1 == PG_NONE ? l->k : val[e.in1];
            last = pg_nary_forward(op[j] & PG_OPMASK, val, l->item, e.in0, s);
            break;
        }
        default:   /* leaves are not instructions */
            continue;
        }
        val[e.out] = last;
    }
    UNLOCK(a);
    return PG_OK;
fail:
    *failed_op = op[j] & PG_OPMASK;
    *failed_node = step[j].out;
    UNLOCK(a);
    return rc;
}
#undef PG_FORWARD_CASES
#undef PG_FORWARD_STEP

/* Backward over a one-root tape: every node is reachable from the root, so
 * every instruction is swept, with no mark and no per-op branch. */
PG_LINE_ALIGNED PG_NOINLINE
static void backward_one_root(pg_tape *t)
{
    pg_arena *a = t->a;
    double *grad = a->grad;
    const double *val = a->val;
    const uint8_t *op = t->op, *back = t->back;
    const double *d = t->d + t->nd;            /* taken from the back */
    pg_list *const *lp = t->list + t->nlist;
    const pg_step *step = t->bwd;
    double carry = 0.0;   /* from the instruction after j, if chained */
    for (size_t j = t->ncode; j-- > 0;) {
        pg_step e = step[j];
        PG_PREFETCH(&grad[step[(ptrdiff_t)j - PG_AHEAD].far], 1);
        double g = grad[e.out] + carry;
        grad[e.out] = g;
        unsigned b = back[j];
        if (b & PG_NARYOP) {
            pg_aux aux = {.list = *--lp};
            pg_step_back(a, op[j] & PG_OPMASK, e.in0, e.in1, aux, val[e.out], g, 0, NULL);
            carry = 0.0;
            continue;
        }
        d -= b & PG_NPARTSMASK;
        double c0 = d[0] * g;
        grad[e.in0] += c0;          /* a sink, if chained */
        grad[e.in1] += d[1] * g;    /* a sink, for one-input ops (d[1]
                                     * is the next one's partial) */
        carry = pg_keep(c0, b & PG_CHAINED);
    }
}

/* Backward from one root of a multi-root tape: other roots' nodes have
 * grad 0 here, and 0 times an infinite partial would leak NaN, so only the
 * nodes this root reaches are swept (marked, as the eager sweep does). */
PG_NOINLINE
static void backward_marked(pg_tape *t, pg_index root)
{
    pg_arena *a = t->a;
    double *grad = a->grad;
    const double *val = a->val;
    const uint8_t *op = t->op;
    const double *d = t->d + t->nd;
    pg_list *const *lp = t->list + t->nlist;
    const pg_step *step = t->fwd;
    size_t pending = 0;
    pg__mark(a, root, &pending);
    for (size_t j = t->ncode; j-- > 0 && pending;) {
        pg_step e = step[j];
        int o = op[j] & PG_OPMASK;
        pg_list *list = pg_is_nary(o) ? *--lp : NULL;
        d -= pg_nparts(o);
        if (!(a->flags[e.out] & PG_MARK))
            continue;
        pg__unmark(a, e.out, &pending);
        double g = grad[e.out];
        if (list) {
            pg_aux aux = {.list = list};
            pg_step_back(a, o, e.in0, e.in1, aux, val[e.out], g, 1, &pending);
            continue;
        }
        int swapped = (op[j] & PG_CHAIN1) != 0;
        pg_reach(a, e.in0, d[swapped] * g, 1, &pending);
        if (pg_arity(o) == 2)
            pg_reach(a, e.in1, d[!swapped] * g, 1, &pending);
    }
}

int pg_tape_backward(pg_tape *t, size_t r)
{
    pg_arena *a = t->a;
    if (r >= t->nroots)
        return PG_EINVAL;
    LOCK(a);
    if (t->nroots > 1 && a->sweep.paused) {   /* its marks would mix */
        UNLOCK(a);
        return PG_EBUSY;
    }
    for (size_t j = 0; j < t->nruns; j++)
        memset(&a->grad[t->runs[j][0]], 0, t->runs[j][1] * sizeof *a->grad);
    a->grad[t->root[r]] = 1.0;
    if (t->nroots == 1)
        backward_one_root(t);
    else
        backward_marked(t, t->root[r]);
    UNLOCK(a);
    return PG_OK;
}

/* Whether ins[j] is one of ins[0..j).  (Only asked of an input whose flag
 * is already clear: one not in the tape, or given twice.) */
static int given_before(const pg_index *ins, size_t j)
{
    for (size_t k = 0; k < j; k++)
        if (ins[k] == ins[j])
            return 1;
    return 0;
}

/* Forward mode over the tape: the tangent of every node, oldest first,
 * from the stored partials of the last forward(), as CppAD's Forward(1).
 * The tangents live in the nodes' grads for the call (saved and put back);
 * PG_MARK flags the tape's nodes meanwhile, minus the inputs, whose
 * tangents are given. */
int pg_tape_jvp(pg_tape *t, const pg_index *ins, const double *tangents, size_t nin,
                int absent_ok, double *result)
{
    pg_arena *a = t->a;
    size_t n = t->ncode, total = n + t->nleaf;
    double *saved = malloc((total + 1) * sizeof *saved);
    if (!saved)
        return PG_ENOMEM;
    LOCK(a);
    if (a->sweep.paused) {   /* its marks would mix with the paused sweep's */
        UNLOCK(a);
        free(saved);
        return PG_EBUSY;
    }
    for (size_t j = 0; j < total; j++) {
        pg_index i = j < n ? t->fwd[j].out : t->leaf[j - n];
        saved[j] = a->grad[i];
        a->grad[i] = 0.0;
        a->flags[i] |= PG_MARK;
    }
    int rc = PG_OK;
    for (size_t j = 0; j < nin; j++)
        if (pg__is_live(a, ins[j]) && (a->flags[ins[j]] & PG_MARK)) {
            a->grad[ins[j]] = tangents[j];
            a->flags[ins[j]] &= (uint8_t)~PG_MARK;
        } else if (!absent_ok || !pg__is_live(a, ins[j]) || given_before(ins, j)) {
            rc = PG_EINVAL;   /* not a node of this tape (or given twice) */
        }   /* (else absent, and allowed: its tangent moves nothing) */
    /* A node's tangent: the sum of (local partial) * tangent over its
     * inputs that move (an input, or a node below one: its flag cleared
     * once its tangent is made).  A node nothing moves keeps 0 and makes no
     * term: a leaf that is no input has no tangent at all (as torch's
     * forward mode), and 0 times an infinite partial (sqrt's at 0) would be
     * NaN where the derivative is 0. */
    const double *d = t->d;
    pg_list *const *lp = t->list;
    for (size_t j = 0; j < n && rc == PG_OK; j++) {
        pg_step e = t->fwd[j];
        int o = t->op[j] & PG_OPMASK;
        const pg_list *l = pg_is_nary(o) ? *lp++ : NULL;
        const double *dj = d;
        d += pg_nparts(o);
        if (!(a->flags[e.out] & PG_MARK))
            continue;   /* an input: its tangent is given */
        double tan = 0.0;
        int moved = 0;
        if (l) {
            tan = pg_nary_tangent(a, o, e.in1, l->item, e.in0, &moved);
        } else {
            int swapped = (t->op[j] & PG_CHAIN1) != 0;   /* chained input first */
            int two = pg_nparts(o) == 2;
            tan = pg_pair_tangent(a, dj[swapped && two], e.in0, two ? dj[!swapped] : 0.0,
                                  e.in1, two, &moved);
        }
        a->grad[e.out] = tan;
        if (moved)
            a->flags[e.out] &= (uint8_t)~PG_MARK;
    }
    if (rc == PG_OK)
        for (size_t r = 0; r < t->nroots; r++)
            result[r] = a->grad[t->root[r]];
    for (size_t j = 0; j < total; j++) {
        pg_index i = j < n ? t->fwd[j].out : t->leaf[j - n];
        a->grad[i] = saved[j];
        a->flags[i] &= (uint8_t)~PG_MARK;
    }
    UNLOCK(a);
    free(saved);
    return rc;
}
