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
#include <stddef.h>
#include <string.h>
#include "sweep.h"

/* One instruction as collect() finds it; the tape keeps its fields in
 * separate arrays (below). */
typedef struct pg_instr {
    pg_index out;
    pg_index in0, in1;
    uint32_t op;
    pg_aux aux;
} pg_instr;

/* An instruction as one replay direction reads it: 16 bytes, one stream,
 * one pointer (the loops around calls to tanh and exp run short of
 * registers).
 *   forward:  in0, in1 are the inputs as in the arena (n-ary: count,
 *             start), except that a one-input op's in1 is a sink;
 *   backward: the grads that its partials (d) times the node's grad are
 *             added to, in memory (a sink where the register does it).
 * far: the input whose value (forward) or grad (backward) the loop will
 * not find in a register, to prefetch. */
typedef struct pg_step {
    pg_index in0, in1;
    pg_index out;
    pg_index far;
} pg_step;

/* Junk targets for backward's branch-free adds.  Several, used in turn,
 * because every add to one sink would wait for the previous one (a
 * store-to-load round trip per node). */
#define PG_NSINKS 16

/* Structure of arrays, as the arena: each replay loop reads only the
 * streams it needs, front to back (forward) or back to front (backward). */
struct pg_tape {
    pg_arena *a;
    size_t ncode;       /* non-leaf nodes, oldest first: */
    uint8_t *op;        /*   their ops, */
    pg_step *fwd;       /*   as forward reads them, */
    pg_step *bwd;       /*   as backward does; both valid from -PG_AHEAD
                         *   to ncode + PG_AHEAD (padding: sinks) */
    double *k;          /* the C ops' constants, in instruction order */
    pg_list **list;     /* the n-ary ops' input lists (owned by the nodes) */
    size_t nlist;
    double *d;          /* the local partials, pg_nparts() per instruction,
                         * in instruction order (the chained input's first) */
    size_t nd;
    pg_index sink[PG_NSINKS];  /* leaves owned by the tape, grads junk */
    pg_index (*runs)[2];  /* the nodes as runs of consecutive indices: */
    size_t nruns;         /*   (first, count), for zeroing their grads */
    pg_index *leaf;     /* leaf nodes */
    size_t nleaf;
    pg_index *root;
    size_t nroots;
};

/* Flags on an instruction's op: its input 0 (CHAIN0) or input 1 (CHAIN1,
 * not both) is the previous instruction's node, whose value forward and
 * whose grad backward hand on in a register (see pg_tape_forward). */
#define PG_CHAIN0 0x80u
#define PG_CHAIN1 0x40u
#define PG_CHAINED (PG_CHAIN0 | PG_CHAIN1)
#define PG_OPMASK 0x3fu

/* c when `keep`, else +0.0; branch-free, as whether an instruction is
 * chained is a coin toss, and in SSE registers where there are some, since
 * this sits on the sweep's critical path (a round trip through an integer
 * register costs more than the multiply-add).  Adding +0.0 changes no sum
 * that started from +0.0 (x + 0.0 == x unless x is -0.0, and a sum that
 * starts at +0.0 is never -0.0). */
#ifdef __SSE2__
#include <emmintrin.h>
static inline double pg_keep(double c, unsigned keep)
{
    __m128d m = _mm_castsi128_pd(_mm_cvtsi64_si128(-(long long)(keep != 0)));
#if defined(__GNUC__)
    /* and c's whole register: _mm_set_sd(c) would first clear its upper
     * half, one more cycle on the chain */
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

/* How many instructions ahead the replay loops ask for the input values
 * (grads) they will read: the graph's far inputs (y in x*y) miss every
 * cache once it outgrows them, and a miss (about 250 ns here, see `make
 * latency`) is far longer than the out-of-order window, which holds only a
 * dozen instructions of a sweep.  64 instructions are a few hundred ns. */
#define PG_AHEAD 64
#if defined(__GNUC__)
#define PG_PREFETCH(p, rw) __builtin_prefetch((p), (rw))
#else
#define PG_PREFETCH(p, rw) ((void)(p))
#endif

/* Whether op's partials never change (they are 1, -1, k or 1/k): forward
 * leaves them as compile time's linearize() wrote them. */
static inline int pg_fixed_partials(int op)
{
    switch (op) {
    case PG_ADD: case PG_SUB: case PG_ADDC: case PG_SUBC: case PG_RSUBC:
    case PG_NEG: case PG_MULC: case PG_DIVC:
        return 1;
    default:
        return 0;
    }
}

/* How many partials the tape stores for op: one per input of a one- or
 * two-input op, none for an n-ary op (its backward reads the values).
 * Branch-free, from the order of enum pg_op, because backward computes it
 * for a random mix of ops. */
_Static_assert(PG_ADD == 2 && PG_POW == 6 && PG_RELU + 1 == PG_SUM &&
               PG_DOT + 1 == PG_NOPS, "enum pg_op order");
static inline size_t pg_nparts(int op)
{
    return (size_t)(1 + (op <= PG_POW) - (op >= PG_SUM));
}

/* Whether op reads a constant k (the "C" ops). */
static inline int pg_has_k(int op)
{
    return op >= PG_ADDC && op <= PG_RPOWC;
}

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
 * visits (newest first), leaves in t->leaf, the others in *code.  If an
 * array cannot grow it keeps sweeping anyway, to clear every mark, and
 * reports PG_ENOMEM. */
static int collect(pg_arena *a, pg_tape *t, pg_index newest, size_t pending,
                   pg_instr **code)
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
                if (push((void **)code, &t->ncode, &code_cap, sizeof ins, &ins))
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
    free(t->op);
    free(t->fwd ? t->fwd - PG_AHEAD : NULL);
    free(t->bwd ? t->bwd - PG_AHEAD : NULL);
    free(t->k);
    free(t->list);
    free(t->d);
    free(t->runs);
    free(t->leaf);
    free(t->root);
    free(t);
}

/* n steps, plus PG_AHEAD of padding (all fields `sink`) before and after;
 * returns a pointer to the first of the n, or NULL. */
static pg_step *steps(size_t n, pg_index sink)
{
    if (n > SIZE_MAX / sizeof(pg_step) - 2 * PG_AHEAD)
        return NULL;
    pg_step *s = malloc((n + 2 * PG_AHEAD) * sizeof *s);
    if (!s)
        return NULL;
    pg_step pad = {sink, sink, sink, sink};
    for (size_t j = 0; j < PG_AHEAD; j++)
        s[j] = s[n + PG_AHEAD + j] = pad;
    return s + PG_AHEAD;
}

/* t->runs from t->fwd[].out.  PG_ENOMEM if the array cannot be had. */
static int find_runs(pg_tape *t)
{
    size_t cap = 0;
    for (size_t j = 0; j < t->ncode; j++) {
        pg_index i = t->fwd[j].out;
        if (t->nruns && t->runs[t->nruns - 1][0] + t->runs[t->nruns - 1][1] == i) {
            t->runs[t->nruns - 1][1]++;
            continue;
        }
        pg_index run[2] = {i, 1};
        if (push((void **)&t->runs, &t->nruns, &cap, sizeof run, run))
            return PG_ENOMEM;
    }
    return PG_OK;
}

/* Lays code[0..ncode) (newest first) out in t's arrays, oldest first.
 * PG_ENOMEM if an array cannot be had (t keeps what it got, for
 * tape_release). */
static int lay_out(pg_tape *t, const pg_instr *code)
{
    size_t n = t->ncode, nk = 0, nlist = 0;
    if (n > SIZE_MAX / (2 * sizeof(double)) - 1)
        return PG_ENOMEM;
    for (size_t j = 0; j < n; j++) {
        nk += pg_has_k((int)code[j].op);
        nlist += pg_is_nary((int)code[j].op);
    }
    t->op = malloc(n + 1);
    t->fwd = steps(n, t->sink[0]);
    t->bwd = steps(n, t->sink[0]);
    t->k = malloc((nk + 1) * sizeof *t->k);
    t->list = malloc((nlist + 1) * sizeof *t->list);
    for (size_t j = 0; j < n; j++)
        t->nd += pg_nparts((int)code[j].op);
    /* + 1: backward reads a pair even for a one-input op (the second goes
     * to a sink) */
    t->d = malloc((t->nd + 1) * sizeof *t->d);
    if (!t->op || !t->fwd || !t->bwd || !t->k || !t->list || !t->d)
        return PG_ENOMEM;
    nk = 0;
    for (size_t j = 0; j < n; j++) {
        const pg_instr *ins = &code[n - 1 - j];
        int op = (int)ins->op;
        pg_index sink = t->sink[j % PG_NSINKS];
        pg_step f = {ins->in0, pg_arity(op) == 1 ? sink : ins->in1, ins->out, 0};
        f.far = pg_is_nary(op) ? sink : pg_arity(op) == 1 ? f.in0 : f.in1;
        pg_step b = f;
        t->op[j] = (uint8_t)op;
        if (pg_has_k(op))
            t->k[nk++] = ins->aux.k;
        if (pg_is_nary(op))
            t->list[t->nlist++] = ins->aux.list;
        /* a chained input's partial goes first, to the register,
         * and a sink stands in for its grad */
        if (j > 0 && pg_arity(op) <= 2 && f.in0 != f.in1) {
            pg_index prev = t->fwd[j - 1].out;
            if (f.in0 == prev) {
                t->op[j] |= PG_CHAIN0;
                b.in0 = sink;
                f.far = b.far = f.in1;
            } else if (f.in1 == prev) {
                t->op[j] |= PG_CHAIN1;
                b.in0 = sink;
                b.in1 = f.in0;
                f.far = b.far = f.in0;
            }
        }
        t->fwd[j] = f;
        t->bwd[j] = b;
    }
    return find_runs(t);
}

/* The local partials of every instruction from the arena's current values
 * (at compile time: the values the graph was built with).  Under the lock.
 * One-input ops get dy = 0, which forward never rewrites. */
static void linearize(pg_tape *t)
{
    const double *val = t->a->val;
    const double *kp = t->k;
    double *d = t->d;
    for (size_t j = 0; j < t->ncode; d += pg_nparts(t->op[j] & PG_OPMASK), j++) {
        pg_step e = t->fwd[j];
        double v = val[e.out];
        switch (t->op[j] & PG_OPMASK) {
#define PG_PARTIALS_CASE(op_, v_, dx_, dy_)                                 \
        case op_: {                                                         \
            double x = val[e.in0];                                          \
            double y = pg_arity(op_) == 2 ? val[e.in1] : 0.0;               \
            double k = pg_has_k(op_) ? *kp++ : 0.0;                         \
            (void)x; (void)y; (void)k; (void)v;                             \
            d[0] = (dx_);                                                   \
            if (pg_arity(op_) == 2)                                         \
                d[1] = (dy_);                                               \
            break;                                                          \
        }
        PG_OP_TABLE(PG_PARTIALS_CASE)
#undef PG_PARTIALS_CASE
        default:   /* n-ary: partials read from the values in backward */
            break;
        }
        if (t->op[j] & PG_CHAIN1) {   /* the chained input's partial first */
            double dx = d[0];
            d[0] = d[1];
            d[1] = dx;
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
    pg_instr *code = NULL;   /* newest first, until lay_out */

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
    rc = collect(a, t, newest, pending, &code);
    if (rc != PG_OK)
        goto fail;
    for (size_t j = 0; j < t->ncode; j++)
        if (a->ref[code[j].out] >= PG_NONE - 2)
            rc = PG_ENOMEM;
    for (size_t j = 0; j < t->nleaf; j++)
        if (a->ref[t->leaf[j]] >= PG_NONE - 2)
            rc = PG_ENOMEM;
    size_t nsinks = 0;
    while (rc == PG_OK && nsinks < PG_NSINKS) {
        pg_index s = pg__alloc(a);
        if (s == PG_NONE) {
            rc = PG_ENOMEM;
            break;
        }
        a->op[s] = PG_LEAF;
        a->val[s] = 0.0;
        t->sink[nsinks++] = s;
    }
    if (rc == PG_OK)
        rc = lay_out(t, code);
    if (rc != PG_OK) {
        while (nsinks)
            pg__decref_locked(a, t->sink[--nsinks]);
        goto fail;
    }
    free(code);
    /* the tape's references */
    for (size_t j = 0; j < t->ncode; j++)
        a->ref[t->fwd[j].out]++;
    for (size_t j = 0; j < t->nleaf; j++)
        a->ref[t->leaf[j]]++;
    linearize(t);
    UNLOCK(a);
    *out = t;
    return PG_OK;
fail:
    UNLOCK(a);
    free(code);
    tape_release(t);
    return rc;
}

/* One instruction of pg_tape_forward, given x (input 0's value): the value
 * into `last`, the partials into d (the chained input's first), or the op's
 * error.  Case labels and bodies for one op and one way of chaining. */
#define PG_FORWARD_STEP(op_, v_, dx_, dy_, x_, y_, chain1)                  \
    {                                                                       \
        double x = (x_);                                                    \
        double y = pg_arity(op_) == 2 ? (y_) : 0.0;                         \
        double k = pg_has_k(op_) ? *kp++ : 0.0;                             \
        (void)y; (void)k;                                                   \
        double v = (v_);                                                    \
        rc = pg_check(op_, x, y, k, v);                                     \
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
#define PG_FORWARD_CASES(op_, v_, dx_, dy_)                                 \
    case op_:                                                               \
        PG_FORWARD_STEP(op_, v_, dx_, dy_, val[e.in0], val[e.in1], 0)       \
    case op_ | PG_CHAIN0:                                                   \
        PG_FORWARD_STEP(op_, v_, dx_, dy_, last, val[e.in1], 0)             \
    case op_ | PG_CHAIN1:                                                   \
        PG_FORWARD_STEP(op_, v_, dx_, dy_, val[e.in0], last, 1)

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
    a->data_epoch++;   /* values change: stored partials elsewhere go stale */
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
        case PG_SUM:
        case PG_DOT:
            last = pg_nary_forward(op[j], val, *lp++, e.in0, e.in1);
            break;
        default:
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

int pg_tape_backward(pg_tape *t, size_t r)
{
    pg_arena *a = t->a;
    if (r >= t->nroots)
        return PG_EINVAL;
    LOCK(a);
    double *grad = a->grad;
    const double *val = a->val;
    const uint8_t *op = t->op;
    const double *d = t->d + t->nd;            /* taken from the back */
    pg_list *const *lp = t->list + t->nlist;
    size_t n = t->ncode;
    for (size_t j = 0; j < t->nruns; j++)
        memset(&grad[t->runs[j][0]], 0, t->runs[j][1] * sizeof *grad);
    pg_index root = t->root[r];
    grad[root] = 1.0;
    if (t->nroots == 1) {
        /* every node of a one-root tape is reachable from that root */
        const pg_step *step = t->bwd;
        double carry = 0.0;   /* from the instruction after j, if chained */
        for (size_t j = n; j-- > 0;) {
            pg_step e = step[j];
            PG_PREFETCH(&grad[step[(ptrdiff_t)j - PG_AHEAD].far], 1);
            double g = grad[e.out] + carry;
            grad[e.out] = g;
            uint8_t o = op[j];
            if ((o & PG_OPMASK) >= PG_SUM) {
                pg_aux aux = {.list = *--lp};
                pg_step_back(a, o & PG_OPMASK, e.in0, e.in1, aux, val[e.out], g, 0, NULL);
                carry = 0.0;
                continue;
            }
            d -= 1 + ((o & PG_OPMASK) <= PG_POW);   /* pg_nparts, no branch */
            double c0 = d[0] * g;
            grad[e.in0] += c0;          /* a sink, if chained */
            grad[e.in1] += d[1] * g;    /* a sink, for one-input ops (d[1]
                                         * is the next one's partial) */
            carry = pg_keep(c0, o & PG_CHAINED);
        }
    } else {
        /* other roots' nodes have grad 0 here, and 0 times an infinite
         * partial would leak NaN: visit only what this root reaches */
        const pg_step *step = t->fwd;
        size_t pending = 0;
        pg_mark(a, root, &pending);
        for (size_t j = n; j-- > 0;) {
            pg_step e = step[j];
            int o = op[j] & PG_OPMASK;
            pg_list *list = pg_is_nary(o) ? *--lp : NULL;
            d -= pg_nparts(o);
            if (!(a->flags[e.out] & PG_MARK))
                continue;
            a->flags[e.out] &= (uint8_t)~PG_MARK;
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
        pg__decref_locked(t->a, t->fwd[j].out);
    for (size_t j = 0; j < t->nleaf; j++)
        pg__decref_locked(t->a, t->leaf[j]);
    for (size_t s = 0; s < PG_NSINKS; s++)
        pg__decref_locked(t->a, t->sink[s]);
    UNLOCK(t->a);
    tape_release(t);
}
