/* tape.c -- compiled tapes: the nodes under some roots, listed once in
 * creation order (which is topological, see arena.h), then replayed forward
 * and backward without Python and without searching the graph again.
 *
 * The tape keeps a compact copy of each non-leaf node's instruction (op,
 * output, inputs, constant) in one array read front to back, while values
 * and grads stay in the arena's arrays, so the Values the user holds see
 * every replay.  The tape owns one reference per covered node: the nodes,
 * and so the instructions' indices, stay valid until pg_tape_free.
 *
 * Forward also stores each node's local partials (dx, dy), as CppAD's and
 * CasADi's tapes do, so that backward is a branch-free multiply-add sweep:
 * a one-input op sends its dy (0) to a private sink node instead of testing
 * its arity, and a random mix of ops no longer costs a mispredicted switch
 * per node.  Backward therefore uses the values of the last forward (or of
 * compile time), like torch's saved tensors.
 */
#include <stdlib.h>
#include <string.h>
#include "sweep.h"

typedef struct pg_instr {
    pg_index out;       /* the node */
    pg_index in0, in1;  /* as in the arena (n-ary: count, start) */
    uint32_t op;
    pg_aux aux;         /* constant, or n-ary list (owned by the node) */
} pg_instr;

struct pg_tape {
    pg_arena *a;
    pg_instr *code;     /* non-leaf nodes, oldest first */
    double *dx, *dy;    /* code[j]'s local partials */
    size_t ncode;
    pg_index sink;      /* a leaf owned by the tape, whose grad is junk */
    pg_index *leaf;     /* leaf nodes */
    size_t nleaf;
    pg_index *root;
    size_t nroots;
};

/* Appends x to a growable array; -1 (array unchanged) if it cannot grow. */
static int push(void **arr, size_t *n, size_t *cap, size_t size, const void *x)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        if (c > SIZE_MAX / size)
            return -1;
        void *grown = realloc(*arr, c * size);
        if (!grown)
            return -1;
        *arr = grown;
        *cap = c;
    }
    memcpy((char *)*arr + *n * size, x, size);
    (*n)++;
    return 0;
}

/* The marking sweep of pg_backward, minus the maths: records every node it
 * visits (newest first).  If an array cannot grow it keeps sweeping anyway,
 * to clear every mark, and reports PG_ENOMEM. */
static int collect(pg_arena *a, pg_tape *t, pg_index newest, size_t pending)
{
    size_t code_cap = 0, leaf_cap = 0;
    int rc = PG_OK;
    uint32_t c = newest >> PG_CHUNK_BITS;
    uint32_t top = (newest & (PG_CHUNK - 1)) + 1;
    while (pending) {
        pg_index base = c << PG_CHUNK_BITS;
        for (uint32_t o = top; o-- > 0 && pending;) {
            pg_index i = base + o;
            if (!(a->flags[i] & PG_MARK))
                continue;
            a->flags[i] &= (uint8_t)~PG_MARK;
            pending--;
            pg_mark_inputs(a, i, &pending);
            if (rc != PG_OK)
                continue;
            if (a->op[i] == PG_LEAF) {
                if (push((void **)&t->leaf, &t->nleaf, &leaf_cap, sizeof i, &i))
                    rc = PG_ENOMEM;
            } else {
                pg_instr ins = {i, a->in0[i], a->in1[i], a->op[i], a->aux[i]};
                if (push((void **)&t->code, &t->ncode, &code_cap, sizeof ins, &ins))
                    rc = PG_ENOMEM;
            }
        }
        if (!pending)
            break;
        c = a->chunks[c].prev;
        top = a->chunks[c].used;
    }
    return rc;
}

static void tape_release(pg_tape *t)
{
    free(t->dx);
    free(t->dy);
    free(t->code);
    free(t->leaf);
    free(t->root);
    free(t);
}

/* The local partials of every instruction from the arena's current values
 * (at compile time: the values the graph was built with).  Under the lock. */
static void linearize(pg_tape *t)
{
    const double *val = t->a->val;
    for (size_t j = 0; j < t->ncode; j++) {
        const pg_instr *ins = &t->code[j];
        double v = val[ins->out];
        switch (ins->op) {
#define PG_PARTIALS_CASE(op_, v_, dx_, dy_)                                 \
        case op_: {                                                         \
            double x = val[ins->in0];                                       \
            double y = pg_arity(op_) == 2 ? val[ins->in1] : 0.0;            \
            double k = ins->aux.k;                                          \
            (void)x; (void)y; (void)k; (void)v;                             \
            t->dx[j] = (dx_);                                               \
            t->dy[j] = (dy_);                                               \
            break;                                                          \
        }
        PG_OP_TABLE(PG_PARTIALS_CASE)
#undef PG_PARTIALS_CASE
        default:   /* n-ary: partials read from the values in backward */
            t->dx[j] = t->dy[j] = 0.0;
        }
    }
}

int pg_compile(pg_arena *a, const pg_index *roots, size_t nroots, pg_tape **out)
{
    *out = NULL;
    if (nroots == 0 || nroots > SIZE_MAX / sizeof(pg_index))
        return PG_EINVAL;
    pg_tape *t = calloc(1, sizeof *t);
    if (!t)
        return PG_ENOMEM;
    t->a = a;
    t->nroots = nroots;
    t->root = malloc(nroots * sizeof(pg_index));
    if (!t->root) {
        free(t);
        return PG_ENOMEM;
    }
    memcpy(t->root, roots, nroots * sizeof(pg_index));

    LOCK(a);
    int rc = pg__all_live(a, roots, nroots);
    if (rc != PG_OK)
        goto fail;
    pg_index newest = roots[0];
    size_t pending = 0;
    for (size_t r = 0; r < nroots; r++) {
        if (pg_newer(a, roots[r], newest))
            newest = roots[r];
        pg_mark(a, roots[r], &pending);
    }
    rc = collect(a, t, newest, pending);
    if (rc != PG_OK)
        goto fail;
    if (t->ncode > SIZE_MAX / sizeof(double) ||
        !(t->dx = malloc((t->ncode + 1) * sizeof(double))) ||
        !(t->dy = malloc((t->ncode + 1) * sizeof(double)))) {
        rc = PG_ENOMEM;
        goto fail;
    }
    for (size_t j = 0; j < t->ncode; j++)
        if (a->ref[t->code[j].out] >= PG_NONE - 2)
            rc = PG_ENOMEM;
    for (size_t j = 0; j < t->nleaf; j++)
        if (a->ref[t->leaf[j]] >= PG_NONE - 2)
            rc = PG_ENOMEM;
    if (rc != PG_OK || (t->sink = pg__alloc(a)) == PG_NONE) {
        rc = rc != PG_OK ? rc : PG_ENOMEM;
        goto fail;
    }
    a->op[t->sink] = PG_LEAF;
    a->val[t->sink] = 0.0;
    /* newest-first -> creation order; take the tape's references */
    for (size_t j = 0, n = t->ncode; j < n / 2; j++) {
        pg_instr tmp = t->code[j];
        t->code[j] = t->code[n - 1 - j];
        t->code[n - 1 - j] = tmp;
    }
    for (size_t j = 0; j < t->ncode; j++) {
        pg_instr *ins = &t->code[j];
        a->ref[ins->out]++;
        if (pg_arity((int)ins->op) == 1)
            ins->in1 = t->sink;
    }
    for (size_t j = 0; j < t->nleaf; j++)
        a->ref[t->leaf[j]]++;
    linearize(t);
    UNLOCK(a);
    *out = t;
    return PG_OK;
fail:
    UNLOCK(a);
    tape_release(t);
    return rc;
}

int pg_tape_forward(pg_tape *t, int *failed_op, pg_index *failed_node)
{
    pg_arena *a = t->a;
    int rc = PG_OK;
    LOCK(a);
    double *val = a->val;
    double *dx = t->dx, *dy = t->dy;
    a->data_epoch++;   /* values change: stored partials elsewhere go stale */
    const pg_instr *ins = t->code, *end = t->code + t->ncode;
    for (; ins < end; ins++, dx++, dy++) {
        double v;
        switch (ins->op) {
#define PG_FORWARD_CASE(op_, v_, dx_, dy_)                                  \
        case op_: {                                                         \
            double x = val[ins->in0];                                       \
            double y = pg_arity(op_) == 2 ? val[ins->in1] : 0.0;            \
            double k = ins->aux.k;                                          \
            (void)y; (void)k;                                               \
            v = (v_);                                                       \
            rc = pg_check(op_, x, y, k, v);                                 \
            if (rc != PG_OK)                                                \
                goto fail;                                                  \
            *dx = (dx_);                                                    \
            if (pg_arity(op_) == 2)   /* one-input ops keep dy = 0 */       \
                *dy = (dy_);                                                \
            break;                                                          \
        }
        PG_OP_TABLE(PG_FORWARD_CASE)
#undef PG_FORWARD_CASE
        case PG_SUM:
        case PG_DOT:
            v = pg_nary_forward((int)ins->op, val, ins->aux.list, ins->in0, ins->in1);
            break;
        default:
            continue;
        }
        val[ins->out] = v;
    }
    UNLOCK(a);
    return PG_OK;
fail:
    *failed_op = (int)ins->op;
    *failed_node = ins->out;
    UNLOCK(a);
    return rc;
}

int pg_tape_backward(pg_tape *t, size_t r)
{
    pg_arena *a = t->a;
    if (r >= t->nroots)
        return PG_EINVAL;
    LOCK(a);
    double *grad = a->grad;
    const double *val = a->val;
    for (size_t j = 0; j < t->ncode; j++)
        grad[t->code[j].out] = 0.0;
    pg_index root = t->root[r];
    grad[root] = 1.0;
    if (t->nroots == 1) {
        /* every node of a one-root tape is reachable from that root */
        const double *dx = t->dx, *dy = t->dy;
        for (size_t j = t->ncode; j-- > 0;) {
            const pg_instr *ins = &t->code[j];
            double g = grad[ins->out];
            if (ins->op >= PG_SUM) {
                pg_step_back(a, (int)ins->op, ins->in0, ins->in1, ins->aux,
                             val[ins->out], g, 0, NULL);
                continue;
            }
            grad[ins->in0] += dx[j] * g;
            grad[ins->in1] += dy[j] * g;   /* the sink, for one-input ops */
        }
    } else {
        /* other roots' nodes have grad 0 here, and 0 times an infinite
         * partial would leak NaN: visit only what this root reaches */
        size_t pending = 0;
        pg_mark(a, root, &pending);
        for (size_t j = t->ncode; j-- > 0;) {
            const pg_instr *ins = &t->code[j];
            if (!(a->flags[ins->out] & PG_MARK))
                continue;
            a->flags[ins->out] &= (uint8_t)~PG_MARK;
            double g = grad[ins->out];
            if (ins->op >= PG_SUM) {
                pg_step_back(a, (int)ins->op, ins->in0, ins->in1, ins->aux,
                             val[ins->out], g, 1, &pending);
                continue;
            }
            pg_reach(a, ins->in0, t->dx[j] * g, 1, &pending);
            if (ins->in1 != t->sink)
                pg_reach(a, ins->in1, t->dy[j] * g, 1, &pending);
        }
        for (size_t j = 0; j < t->nleaf; j++)   /* leaves are never visited */
            a->flags[t->leaf[j]] &= (uint8_t)~PG_MARK;
    }
    UNLOCK(a);
    return PG_OK;
}

size_t pg_tape_size(pg_tape *t)
{
    return t->ncode + t->nleaf;
}

void pg_tape_free(pg_tape *t)
{
    if (!t)
        return;
    LOCK(t->a);
    for (size_t j = 0; j < t->ncode; j++)
        pg__decref_locked(t->a, t->code[j].out);
    for (size_t j = 0; j < t->nleaf; j++)
        pg__decref_locked(t->a, t->leaf[j]);
    pg__decref_locked(t->a, t->sink);
    UNLOCK(t->a);
    tape_release(t);
}
