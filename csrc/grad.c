/* grad.c -- gradients as numbers (pg_gradient), as new nodes that can be
 * differentiated again (pg_gradient_graph), and forward mode (pg_jvp).
 *
 * All three sweep the nodes under the outputs, found by collect.c, newest
 * first (reverse) or oldest first (forward), without touching any grad a
 * user can see: for the duration of the call, under the lock, the grad
 * column of those nodes holds the sweep's own numbers (adjoints, tangents,
 * or adjoint node indices as doubles, exact below 2^53), and their old
 * grads are put back before it returns.  PG_MARK flags the nodes in the
 * sweep meanwhile, so an input outside it is known to get 0.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sweep.h"

/* Saved state of a sweep's nodes: their grads, then restored. */
typedef struct sweep {
    pg_arena *a;
    pg_nodes set;
    double *saved;   /* node[0..n) then leaf[0..nleaf) */
} sweep;

static pg_index nth(const sweep *s, size_t j)
{
    return j < s->set.n ? s->set.node[j] : s->set.leaf[j - s->set.n];
}

/* Checks that the inputs ins[0..nin) are live (PG_EINVAL), collects the
 * nodes under outs, saves their grads, sets them to `fill` and flags them.
 * PG_ETYPE for an op written in Python (its backward is Python's, which
 * these sweeps do not run), and the errors of pg__collect. */
static int sweep_begin(sweep *s, pg_arena *a, const pg_index *outs, size_t nout,
                       const pg_index *ins, size_t nin, double fill, int cut_python)
{
    s->a = a;
    s->saved = NULL;
    int rc = pg__all_live(a, ins, nin);
    if (rc != PG_OK)
        return rc;
    rc = pg__collect_cut(a, outs, nout, &s->set, cut_python);
    if (rc != PG_OK) {
        pg__nodes_free(&s->set);
        return rc;
    }
    size_t total = s->set.n + s->set.nleaf;
    s->saved = malloc((total + 1) * sizeof *s->saved);
    if (!s->saved) {
        pg__nodes_free(&s->set);
        return PG_ENOMEM;
    }
    for (size_t j = 0; j < total; j++) {
        pg_index i = nth(s, j);
        s->saved[j] = a->grad[i];
        a->grad[i] = fill;
        a->flags[i] |= PG_MARK;
    }
    return PG_OK;
}

static void sweep_end(sweep *s)
{
    pg_arena *a = s->a;
    size_t total = s->set.n + s->set.nleaf;
    for (size_t j = 0; j < total; j++) {
        pg_index i = nth(s, j);
        a->grad[i] = s->saved[j];
        a->flags[i] &= (uint8_t)~PG_MARK;
    }
    free(s->saved);
    pg__nodes_free(&s->set);
}

int pg_gradient(pg_arena *a, const pg_index *outs, const double *seeds, size_t nout,
            const pg_index *ins, size_t nin, double *result)
{
    LOCK(a);
    sweep s;
    int rc = sweep_begin(&s, a, outs, nout, ins, nin, 0.0, 0);
    if (rc != PG_OK) {
        UNLOCK(a);
        return rc;
    }
    for (size_t r = 0; r < nout; r++)
        a->grad[outs[r]] += seeds[r];
    /* the backward sweep over the list, newest first: stored partials
     * where they are current, else from the values, as pg_backward */
    for (size_t j = 0; j < s.set.n; j++) {
        pg_index i = s.set.node[j];
        double g = a->grad[i];
        if ((a->flags[i] & PG_STORED) &&
            a->chunks[i >> PG_CHUNK_BITS].epoch == a->data_epoch) {
            a->grad[a->in0[i]] += a->d0[i] * g;
            if (a->in1[i] != PG_NONE)
                a->grad[a->in1[i]] += a->aux[i].d1 * g;
        } else {
            pg_step_back(a, a->op[i], a->in0[i], a->in1[i], a->aux[i], a->val[i],
                         g, 0, NULL);
        }
    }
    for (size_t j = 0; j < nin; j++)
        result[j] = (a->flags[ins[j]] & PG_MARK) ? a->grad[ins[j]] : 0.0;
    sweep_end(&s);
    UNLOCK(a);
    return PG_OK;
}

/* -- gradients as nodes --------------------------------------------------- */

/* Node-valued terms: a node index, or one of these. */
#define ONE  (PG_NONE - 2)   /* the number 1 (an output's default seed) */
#define ZERO (PG_NONE - 3)   /* nothing: no contribution */
#define BAD  (PG_NONE - 4)   /* a node could not be made: the builder's rc says why */

/* The state of one pg_gradient_graph call: the nodes it made (it holds one
 * reference on each until the end, then drops them: what a result does
 * not use dies) and its first error. */
typedef struct builder {
    pg_arena *a;
    int rc;
    int bad_op;          /* the op that could not be made, for the message */
    pg_index *made;
    size_t nmade, cap;
} builder;

static pg_index keep(builder *b, int64_t r)
{
    if (r < 0) {
        if (b->rc == PG_OK)
            b->rc = (int)r;
        return BAD;
    }
    pg_index i = (pg_index)r;
    if (pg__push((void **)&b->made, &b->nmade, &b->cap, sizeof i, &i)) {
        pg__decref(b->a, i);
        if (b->rc == PG_OK)
            b->rc = PG_ENOMEM;
        return BAD;
    }
    return i;
}

static pg_index leaf(builder *b, double v)
{
    pg_index i = pg__leaf(b->a, v);
    return keep(b, i == PG_NONE ? PG_ENOMEM : (int64_t)i);
}

/* A node for term t: ONE becomes a leaf 1.0. */
static pg_index node_of(builder *b, pg_index t)
{
    return t == ONE ? leaf(b, 1.0) : t;
}

/* op(p, q) (q PG_NONE for a one-input op, k its constant). */
static pg_index make(builder *b, int op, pg_index p, pg_index q, double k)
{
    if (p == BAD || q == BAD)
        return BAD;
    if (op == PG_MUL && (p == ONE || q == ONE))   /* 1 * q: q, to the bit */
        return p == ONE ? q : p;
    p = node_of(b, p);
    if (q != PG_NONE)
        q = node_of(b, q);
    if (p == BAD || q == BAD)
        return BAD;
    int64_t r = pg__op(b->a, op, p, q, k);
    if (r < 0 && b->rc == PG_OK)
        b->bad_op = op;
    return keep(b, r);
}

/* The table's graph columns (ops.h) speak these. */
#define G_ADJ            g
#define G_X              in0
#define G_Y              in1
#define G_V              i
#define G_ZERO           ZERO
#define G_IF(c, p, q)    ((c) ? (p) : (q))
#define G_MUL(p, q)      make(b, PG_MUL, (p), (q), 0.0)
#define G_DIV(p, q)      make(b, PG_DIV, (p), (q), 0.0)
#define G_POW(p, q)      make(b, PG_POW, (p), (q), 0.0)
#define G_NEG(p)         make(b, PG_NEG, (p), PG_NONE, 0.0)
#define G_LOG(p)         make(b, PG_LOG, (p), PG_NONE, 0.0)
#define G_SIN(p)         make(b, PG_SIN, (p), PG_NONE, 0.0)
#define G_COS(p)         make(b, PG_COS, (p), PG_NONE, 0.0)
#define G_STEP(p)        make(b, PG_STEP, (p), PG_NONE, 0.0)
#define G_MULC(p, c)     make(b, PG_MULC, (p), PG_NONE, (c))
#define G_SUBC(p, c)     make(b, PG_SUBC, (p), PG_NONE, (c))
#define G_POWC(p, c)     make(b, PG_POWC, (p), PG_NONE, (c))
#define G_RSUBC(c, p)    make(b, PG_RSUBC, (p), PG_NONE, (c))
#define G_RDIVC(c, p)    make(b, PG_RDIVC, (p), PG_NONE, (c))

/* The adjoint term of a node in the sweep, kept in its grad for the call:
 * a node index, or NONE_YET, or AWAY for a node that no input asked for
 * lies under (nothing it would receive could reach an input). */
#define NONE_YET (-1.0)
#define AWAY     (-2.0)

static pg_index adjoint(const pg_arena *a, pg_index i)
{
    double g = a->grad[i];
    return g < 0.0 ? ZERO : (pg_index)g;
}

/* Adds term t to node i's adjoint: the first term is the adjoint, the next
 * ones are summed in order, as the backward sweep sums grads.  A term for
 * a node AWAY is not even made: the derivative of sqrt(x) * y with respect
 * to y must not build d/dx, which does not exist at x = 0 (torch builds
 * only what leads to the inputs asked for, too). */
static void add_to(builder *b, pg_index i, pg_index t)
{
    if (t == ZERO || t == BAD)
        return;
    pg_index cur = adjoint(b->a, i);
    pg_index sum = cur == ZERO ? t : make(b, PG_ADD, cur, t, 0.0);
    if (sum != BAD)
        b->a->grad[i] = (double)sum;
}

/* Whether node i's term is to be made: not AWAY. */
static int wanted(const pg_arena *a, pg_index i)
{
    return a->grad[i] != AWAY;
}

/* What node i, whose adjoint is g, gives its inputs (only those with an
 * asked-for input under them: the terms are made lazily, per input). */
static void step_back(builder *b, pg_index i, pg_index g)
{
    pg_arena *a = b->a;
    int op = a->op[i];
    pg_index in0 = a->in0[i], in1 = a->in1[i];
    if (pg_has_list(op)) {   /* n-ary: the start, then the list, as sweep.h */
        const pg_index *list = a->aux[i].list->item;
        uint32_t m = in0;
        if (in1 != PG_NONE && wanted(a, in1))
            add_to(b, in1, g);
        if (op == PG_SUM) {
            for (uint32_t j = 0; j < m; j++)
                if (wanted(a, list[j]))
                    add_to(b, list[j], g);
        } else {
            for (uint32_t j = 0; j < m / 2; j++) {
                if (wanted(a, list[j]))
                    add_to(b, list[j], make(b, PG_MUL, list[m / 2 + j], g, 0.0));
                if (wanted(a, list[m / 2 + j]))
                    add_to(b, list[m / 2 + j], make(b, PG_MUL, list[j], g, 0.0));
            }
        }
        return;
    }
    double x = a->val[in0], v = a->val[i];
    double y = in1 != PG_NONE ? a->val[in1] : 0.0, k = a->aux[i].k;
    pg_index cx = ZERO, cy = ZERO;
    int want0 = wanted(a, in0), want1 = in1 != PG_NONE && wanted(a, in1);
    (void)x; (void)y; (void)k; (void)v;
    switch (op) {
#define PG_GRAPH_CASE(op_, kind_, part_, v_, dx_, dy_, err_, gdx_, gdy_)      \
    PG_IF_FORMULA(kind_,                                                     \
    case op_:                                                                \
        if (want0)                                                           \
            cx = (gdx_);                                                     \
        if (pg_arity(op_) == 2 && want1)                                     \
            cy = (gdy_);                                                     \
        break;)
    PG_OP_TABLE(PG_GRAPH_CASE)
#undef PG_GRAPH_CASE
    default:
        break;
    }
    add_to(b, in0, cx);
    if (pg_arity(op) == 2)
        add_to(b, in1, cy);
}

static int is_seed(const pg_index *seeds, size_t n, pg_index i)
{
    for (size_t r = 0; r < n; r++)
        if (seeds[r] == i)
            return 1;
    return 0;
}

/* Which nodes of the sweep an input lies under: the others are AWAY
 * (their grads, this call's, say so), oldest first so that a node's inputs
 * are settled before it. */
static void find_wanted(sweep *s, const pg_index *ins, size_t nin)
{
    /* (an op written in Python is only in the sweep where it is cut: an
     * input, or AWAY; its inputs, not in the sweep, are never looked at) */
    pg_arena *a = s->a;
    size_t total = s->set.n + s->set.nleaf;
    for (size_t j = 0; j < total; j++)
        a->grad[nth(s, j)] = AWAY;
    for (size_t j = 0; j < nin; j++)
        if (a->flags[ins[j]] & PG_MARK)   /* (outside the sweep: it gets 0) */
            a->grad[ins[j]] = NONE_YET;
    for (size_t j = s->set.n; j-- > 0;) {
        pg_index i = s->set.node[j];
        if (a->grad[i] != AWAY || pg_is_python(a->op[i]))
            continue;
        int any = a->in1[i] != PG_NONE && wanted(a, a->in1[i]);
        if (pg_has_list(a->op[i])) {
            for (uint32_t q = 0; q < a->in0[i] && !any; q++)
                any = wanted(a, a->aux[i].list->item[q]);
        } else {
            any = any || wanted(a, a->in0[i]);
        }
        if (any)
            a->grad[i] = NONE_YET;
    }
}

/* pg_gradient_graph, and with `cut` pg_gradient_graph_cut: ops written in
 * Python are where the sweep stops (pygrad/autograd.py goes on from there
 * with their Value-written derivatives), and an input no output reaches
 * gets PG_NONE instead of a new 0.0. */
static int gradient_graph(pg_arena *a, const pg_index *outs, const pg_index *seeds,
                          size_t nout, const pg_index *ins, size_t nin, pg_index *result,
                          int *bad_op, int cut)
{
    /* The derivative is a graph even inside no_grad (torch's
     * create_graph=True asks for one there too). */
    int was = pg_set_grad_mode(1);
    LOCK(a);
    sweep s;
    builder b = {a, PG_OK, -1, NULL, 0, 0};
    int rc = PG_OK;
    for (size_t r = 0; rc == PG_OK && r < nout; r++)
        if (seeds[r] != PG_NONE && !pg__is_live(a, seeds[r]))
            rc = PG_EINVAL;
    if (rc == PG_OK)
        rc = sweep_begin(&s, a, outs, nout, ins, nin, NONE_YET, cut);
    if (rc != PG_OK) {
        UNLOCK(a);
        pg_set_grad_mode(was);
        return rc;
    }
    find_wanted(&s, ins, nin);
    for (size_t r = 0; r < nout; r++)
        if (wanted(a, outs[r]))
            add_to(&b, outs[r], seeds[r] == PG_NONE ? ONE : seeds[r]);
    for (size_t j = 0; j < s.set.n && b.rc == PG_OK; j++) {
        pg_index i = s.set.node[j];
        pg_index g = adjoint(a, i);
        if (g != ZERO && !pg_is_python(a->op[i]))   /* (a cut: see above) */
            step_back(&b, i, g);
    }
    /* the results, written out only when all is made, each with a
     * reference for the caller */
    pg_index *got = malloc((nin + 1) * sizeof *got);
    if (!got && b.rc == PG_OK)
        b.rc = PG_ENOMEM;
    for (size_t j = 0; j < nin && b.rc == PG_OK; j++) {
        pg_index t = (a->flags[ins[j]] & PG_MARK) ? adjoint(a, ins[j]) : ZERO;
        if (t == ZERO && cut) {
            got[j] = PG_NONE;
            continue;
        }
        got[j] = t == ZERO ? leaf(&b, 0.0) : node_of(&b, t);
        if (got[j] != BAD && (is_seed(seeds, nout, got[j]) || (a->flags[got[j]] & PG_MARK)))
            got[j] = make(&b, PG_MULC, got[j], PG_NONE, 1.0);   /* a node of its own
                               * (d(x*y)/dx is y, not the caller's y itself) */
    }
    rc = b.rc;
    if (rc == PG_OK)
        for (size_t j = 0; j < nin; j++) {
            if (got[j] != PG_NONE)
                a->ref[got[j]]++;
            result[j] = got[j];
        }
    free(got);
    sweep_end(&s);
    for (size_t j = 0; j < b.nmade; j++)   /* the builder's own references */
        pg__decref(a, b.made[j]);
    free(b.made);
    UNLOCK(a);
    pg_set_grad_mode(was);
    if (rc != PG_OK && bad_op)
        *bad_op = b.bad_op;
    return rc;
}

int pg_gradient_graph(pg_arena *a, const pg_index *outs, const pg_index *seeds,
                  size_t nout, const pg_index *ins, size_t nin, pg_index *result,
                  int *bad_op)
{
    return gradient_graph(a, outs, seeds, nout, ins, nin, result, bad_op, 0);
}

int pg_gradient_graph_cut(pg_arena *a, const pg_index *outs, const pg_index *seeds,
                          size_t nout, const pg_index *ins, size_t nin, pg_index *result,
                          int *bad_op)
{
    return gradient_graph(a, outs, seeds, nout, ins, nin, result, bad_op, 1);
}

/* Whether node i (under the lock) has a node flagged in `lead` among its
 * inputs. */
static int leads(const pg_arena *a, pg_index i, const uint8_t *lead)
{
#define LEAD(j) (lead[(j) >> 3] >> ((j) & 7) & 1)
    if (a->in1[i] != PG_NONE && LEAD(a->in1[i]))
        return 1;
    if (pg_has_list(a->op[i])) {
        for (uint32_t q = 0; q < a->in0[i]; q++)
            if (LEAD(a->aux[i].list->item[q]))
                return 1;
        return 0;
    }
    return LEAD(a->in0[i]);
#undef LEAD
}

int64_t pg_python_nodes(pg_arena *a, const pg_index *outs, size_t nout, const pg_index *ins,
                        size_t nin, pg_index *buf, size_t cap)
{
    LOCK(a);
    pg_nodes set;
    int rc = pg__all_live(a, ins, nin);
    if (rc == PG_OK)
        rc = pg__collect(a, outs, nout, &set);
    else
        memset(&set, 0, sizeof set);
    /* which nodes an input lies under, oldest first, through everything
     * (a bit per slot of the arena) */
    uint8_t *lead = NULL;
    if (rc == PG_OK || rc == PG_ETYPE) {
        lead = calloc(((size_t)a->nchunks << PG_CHUNK_BITS) / 8 + 1, 1);
        rc = lead ? PG_OK : PG_ENOMEM;
    }
    int64_t n = 0;
    if (rc == PG_OK) {
        for (size_t j = 0; j < nin; j++)
            lead[ins[j] >> 3] |= (uint8_t)(1u << (ins[j] & 7));
        for (size_t j = set.n; j-- > 0;) {
            pg_index i = set.node[j];
            if (leads(a, i, lead))
                lead[i >> 3] |= (uint8_t)(1u << (i & 7));
        }
        for (size_t j = 0; j < set.n; j++) {   /* newest first */
            pg_index i = set.node[j];
            if (pg_is_python(a->op[i]) && leads(a, i, lead)) {
                if ((size_t)n < cap)
                    buf[n] = i;
                n++;
            }
        }
    }
    free(lead);
    pg__nodes_free(&set);
    UNLOCK(a);
    return rc == PG_OK ? n : rc;
}

/* -- forward mode --------------------------------------------------------- */

int pg_jvp(pg_arena *a, const pg_index *outs, size_t nout, const pg_index *ins,
           const double *tangents, size_t nin, double *result)
{
    LOCK(a);
    sweep s;
    int rc = sweep_begin(&s, a, outs, nout, ins, nin, 0.0, 0);
    if (rc != PG_OK) {
        UNLOCK(a);
        return rc;
    }
    /* the inputs' tangents, fixed: an input's own inputs do not move it.
     * Inputs in the sweep lose their flag meanwhile ("is an input"). */
    unsigned char *member = malloc(nin + 1);
    if (!member) {
        sweep_end(&s);
        UNLOCK(a);
        return PG_ENOMEM;
    }
    for (size_t j = 0; j < nin; j++)
        member[j] = (a->flags[ins[j]] & PG_MARK) != 0;
    for (size_t j = 0; j < nin; j++)
        if (member[j]) {
            a->grad[ins[j]] = tangents[j];
            a->flags[ins[j]] &= (uint8_t)~PG_MARK;
        }
    /* oldest first: t(node) = sum of (local partial) * t(input), over the
     * inputs that move (an input, or a node below one: flag cleared once
     * its tangent is made).  A node nothing moves keeps tangent 0 and makes
     * no term: a leaf that is no input has no tangent at all (as torch's
     * forward mode), and 0 times an infinite partial (sqrt's at 0) would be
     * NaN where the derivative is 0. */
    for (size_t j = s.set.n; j-- > 0;) {
        pg_index i = s.set.node[j];
        if (!(a->flags[i] & PG_MARK))
            continue;   /* an input */
        int op = a->op[i];
        pg_index in0 = a->in0[i], in1 = a->in1[i];
        double t = 0.0;
        int moved = 0;
        if (pg_has_list(op)) {
            t = pg_nary_tangent(a, op, in1, a->aux[i].list->item, in0, &moved);
        } else {
            double x = a->val[in0], v = a->val[i];
            double y = in1 != PG_NONE ? a->val[in1] : 0.0, k = a->aux[i].k;
            double dx = 0.0, dy = 0.0;
            (void)x; (void)y; (void)k; (void)v;
            switch (op) {
#define PG_JVP_CASE(op_, kind_, part_, v_, dx_, dy_, err_, ...)               \
            PG_IF_FORMULA(kind_, case op_: dx = (dx_); dy = (dy_); break;)
            PG_OP_TABLE(PG_JVP_CASE)
#undef PG_JVP_CASE
            default:
                break;
            }
            t = pg_pair_tangent(a, dx, in0, dy, in1, pg_arity(op) == 2, &moved);
        }
        a->grad[i] = t;
        if (moved)
            a->flags[i] &= (uint8_t)~PG_MARK;
    }
    for (size_t j = 0; j < nin; j++)
        if (member[j])
            a->flags[ins[j]] |= PG_MARK;  /* back, for sweep_end */
    free(member);
    for (size_t r = 0; r < nout; r++)
        result[r] = a->grad[outs[r]];
    sweep_end(&s);
    UNLOCK(a);
    return PG_OK;
}
