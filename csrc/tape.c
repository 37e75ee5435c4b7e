/* tape.c -- recording a compiled tape: the nodes under some roots, found
 * by the marking sweep of backward.c and listed once in creation order
 * (which is topological, see arena.h), then laid out as tape.h describes.
 * replay.c replays it.
 */
#include <stdlib.h>
#include <string.h>
#include "tape.h"

/* PG_OK if every node found can take the tape's reference (and the
 * nodes' own), else PG_ENOMEM. */
static int refs_can_grow(const pg_arena *a, const pg_tape *t, const pg_index *code)
{
    for (size_t j = 0; j < t->ncode; j++)
        if (a->ref[code[j]] >= PG_NONE - 2)
            return PG_ENOMEM;
    for (size_t j = 0; j < t->nleaf; j++)
        if (a->ref[t->leaf[j]] >= PG_NONE - 2)
            return PG_ENOMEM;
    return PG_OK;
}

/* The tape's PG_NSINKS sink leaves, or PG_ENOMEM with none made. */
static int make_sinks(pg_arena *a, pg_tape *t)
{
    for (size_t s = 0; s < PG_NSINKS; s++) {
        t->sink[s] = pg__leaf(a, 0.0);
        if (t->sink[s] == PG_NONE) {
            while (s)
                pg__decref(a, t->sink[--s]);
            return PG_ENOMEM;
        }
    }
    return PG_OK;
}

static void drop_sinks(pg_tape *t)
{
    for (size_t s = 0; s < PG_NSINKS; s++)
        pg__decref(t->a, t->sink[s]);
}

/* The tape's own reference on every node it covers. */
static void take_references(pg_tape *t)
{
    for (size_t j = 0; j < t->ncode; j++)
        t->a->ref[t->fwd[j].out]++;
    for (size_t j = 0; j < t->nleaf; j++)
        t->a->ref[t->leaf[j]]++;
}

/* Frees what the tape owns but its map program (pg_tape_free drops that
 * under the lock; a tape that failed to compile has none). */
static void tape_release(pg_tape *t)
{
    pg__jplan_free(t->jplan);
    free(t->op);
    free(t->back);
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
        if (pg__push((void **)&t->runs, &t->nruns, &cap, sizeof run, run))
            return PG_ENOMEM;
    }
    return PG_OK;
}

/* Lays the nodes code[0..ncode) (newest first) out in t's arrays, oldest
 * first, reading them from the arena.  PG_ENOMEM if an array cannot be had
 * (t keeps what it got, for tape_release). */
static int lay_out(pg_tape *t, const pg_index *code)
{
    const pg_arena *a = t->a;
    size_t n = t->ncode, nk = 0, nlist = 0;
    if (n > SIZE_MAX / (2 * sizeof(double)) - 1)
        return PG_ENOMEM;
    for (size_t j = 0; j < n; j++) {
        nk += pg_has_k(a->op[code[j]]);
        nlist += pg_is_nary(a->op[code[j]]);
        t->nd += pg_nparts(a->op[code[j]]);
    }
    t->op = malloc(n + 1);
    t->back = malloc(n + 1);
    t->fwd = steps(n, t->sink[0]);
    t->bwd = steps(n, t->sink[0]);
    t->k = malloc((nk + 1) * sizeof *t->k);
    t->list = malloc((nlist + 1) * sizeof *t->list);
    t->d = malloc((t->nd + 1) * sizeof *t->d);
    if (!t->op || !t->back || !t->fwd || !t->bwd || !t->k || !t->list || !t->d)
        return PG_ENOMEM;
    t->d[t->nd] = 0.0;   /* the spare */
    nk = 0;
    for (size_t j = 0; j < n; j++) {
        pg_index i = code[n - 1 - j];
        int op = a->op[i];
        pg_aux aux = a->aux[i];
        pg_index sink = t->sink[j % PG_NSINKS];
        pg_step f = {a->in0[i], pg_arity(op) == 1 ? sink : a->in1[i], i, 0};
        f.far = pg_is_nary(op) ? sink : pg_arity(op) == 1 ? f.in0 : f.in1;
        pg_step b = f;
        t->op[j] = (uint8_t)op;
        t->back[j] = (uint8_t)(pg_nparts(op) | (pg_is_nary(op) ? PG_NARYOP : 0));
        if (pg_has_k(op))
            t->k[nk++] = aux.k;
        if (pg_is_nary(op))
            t->list[t->nlist++] = aux.list;
        /* chained: the register hands the value and grad on, a sink
         * stands in for the chained input in bwd, and the partial of the
         * chained input comes first in d */
        if (j > 0 && pg_arity(op) <= 2 && f.in0 != f.in1) {
            pg_index prev = t->fwd[j - 1].out;
            if (f.in0 == prev) {
                t->op[j] |= PG_CHAIN0;
                t->back[j] |= PG_CHAIN0;
                b.in0 = sink;
                f.far = b.far = f.in1;
            } else if (f.in1 == prev) {
                t->op[j] |= PG_CHAIN1;
                t->back[j] |= PG_CHAIN1;
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
 * Forward rewrites them, except those of pg_fixed_partials ops. */
static void linearize(pg_tape *t)
{
    const double *val = t->a->val;
    const double *kp = t->k;
    double *d = t->d;
    for (size_t j = 0; j < t->ncode; d += pg_nparts(t->op[j] & PG_OPMASK), j++) {
        pg_step e = t->fwd[j];
        double v = val[e.out];
        switch (t->op[j] & PG_OPMASK) {
#define PG_PARTIALS_CASE(op_, kind_, part_, v_, dx_, dy_, err_, ...)             \
        PG_IF_FORMULA(kind_,                                                \
        case op_: {                                                         \
            double x = val[e.in0];                                          \
            double y = pg_arity(op_) == 2 ? val[e.in1] : 0.0;               \
            double k = pg_has_k(op_) ? *kp++ : 0.0;                         \
            (void)x; (void)y; (void)k; (void)v;                             \
            d[0] = (dx_);                                                   \
            if (pg_arity(op_) == 2)                                         \
                d[1] = (dy_);                                               \
            break;                                                          \
        })
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

/* A tape for roots[0..nroots), empty but for its roots (no lock
 * needed); NULL when out of memory. */
static pg_tape *tape_new(pg_arena *a, const pg_index *roots, size_t nroots)
{
    pg_tape *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->a = a;
    t->nroots = nroots;
    t->root = malloc(nroots * sizeof(pg_index));
    if (!t->root) {
        free(t);
        return NULL;
    }
    memcpy(t->root, roots, nroots * sizeof(pg_index));
    return t;
}

/* Compiling, in order: find the nodes (collect), check that each can take
 * one more reference, make the sinks, lay the instructions out, then (it
 * can no longer fail) take the references and store the partials.  A step
 * that fails has undone its own work; the ones before it are undone here. */
int pg_compile(pg_arena *a, const pg_index *roots, size_t nroots, pg_tape **out)
{
    *out = NULL;
    if (nroots == 0 || nroots > SIZE_MAX / sizeof(pg_index))
        return PG_EINVAL;
    pg_tape *t = tape_new(a, roots, nroots);
    if (!t)
        return PG_ENOMEM;
    pg_nodes found;
    LOCK(a);
    int rc = pg__collect(a, roots, nroots, &found);
    t->ncode = found.n;
    t->leaf = found.leaf;     /* the tape's own from here, freed with it */
    t->nleaf = found.nleaf;
    const pg_index *code = found.node;   /* newest first */
    if (rc == PG_OK)
        rc = refs_can_grow(a, t, code);
    if (rc == PG_OK)
        rc = make_sinks(a, t);
    if (rc == PG_OK) {
        rc = lay_out(t, code);
        if (rc != PG_OK)
            drop_sinks(t);
    }
    if (rc == PG_OK) {
        take_references(t);
        linearize(t);
    }
    UNLOCK(a);
    free(found.node);
    if (rc != PG_OK) {
        tape_release(t);
        return rc;
    }
    *out = t;
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
        pg__decref(t->a, t->fwd[j].out);
    for (size_t j = 0; j < t->nleaf; j++)
        pg__decref(t->a, t->leaf[j]);
    drop_sinks(t);
    pg__prog_unref(t->a, t->prog);   /* (under the lock, as each map drops its own) */
    t->prog = NULL;
    UNLOCK(t->a);
    tape_release(t);
}

void pg_tape_free_at(pg_tape **t)
{
    pg_tape_free(*t);
    *t = NULL;
}
