/* map.c -- one tape replayed over many rows of inputs (pg_tape_map), as
 * CasADi's Function.map and JAX's vmap: the forward and backward sweeps of
 * the tape, each instruction over a block of rows at once (a plain loop
 * the compiler vectorises), blocks shared among worker threads (pool.c).
 *
 * The program.  The tape's instructions are renumbered for rows: the
 * inputs (the leaves each row feeds) are row arrays 0..nin-1, instruction
 * j's output is row array nin + j, and every other leaf of the tape is a
 * parameter, one number for all rows (operand code -1 - p).  A block holds
 * R rows of every row array, row-contiguous: values V[a][r] and, for
 * backward, adjoints A[a][r]; a parameter's adjoint is one number per
 * block, the sum over its rows.
 *
 * Layers.  Most of a network's work is in dots that read the same row
 * arrays (a layer's neurons: their weights and starts parameters).  The
 * program groups them (find_layers) and runs each group at its first node
 * through layer.c's kernels, a matrix times a block of rows kept in
 * registers, instead of neuron by neuron (and a layer whose neurons each
 * feed one relu runs the relus too: fuse_relus); every other op runs its
 * own loop over the rows.
 *
 * Determinism.  Blocks of R rows are fixed by the tape alone, not by the
 * thread count; each block's sums (root values, parameter gradients) run
 * over its rows in order, and the blocks' sums are added in block order,
 * after each wave of blocks: so the result is the same, bit for bit, with
 * any number of threads.  Per row, values are eager mode's to the bit (the
 * table's formulas, the same libm calls).
 *
 * All or nothing.  Parameter gradients are summed apart and added to the
 * nodes' grads only when every row succeeded; a math error reports the
 * lowest row that has one (a block that fails is replayed row by row to
 * find it) and the op.  No value of any node changes.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "clones.h"
#include "codemap.h"
#include "layer.h"
#include "pool.h"
#include "tape.h"

#define WAVE 32   /* blocks between two reductions */

struct pg_prog {
    uint32_t refs;        /* the tape's, and each map running it (arena lock) */
    uint32_t calls;       /* ... those maps (forget_forked_calls) */
    uint32_t forks;       /* the arena's fork count when calls was counted */
    uint32_t nin, npar, ncode, nroots, R;
    pg_index *in_node;    /* nin: the inputs, in the caller's order */
    pg_index *par_node;   /* npar */
    uint8_t *op;          /* ncode */
    int32_t *a0, *a1;     /* operands (n-ary: a1 the start, or INT32_MIN) */
    double *k;            /* CONST ops' k, n-ary constant start */
    uint32_t *lo, *ln;    /* n-ary: operands lst[lo .. lo+ln) */
    int32_t *lst;
    int32_t *root;        /* nroots */
    /* Layers (layer.h): dots that read the same row arrays, run together at
     * the first of them.  lay_of[j]: -1 not in a layer, g >= 0 the first
     * node of layer g, -2 a later node of one (done by then). */
    int32_t *lay_of;      /* ncode */
    uint32_t nlay;
    struct pg_lay {
        uint32_t n, m;    /* inputs, neurons */
        uint32_t x;       /* its inputs: lst[x .. x+n) */
        uint32_t first;   /* its first node (building only) */
        uint32_t on_inputs;   /* its inputs are all the map's inputs */
        uint32_t relu;        /* each neuron's one reader is a relu, run with it */
        uint32_t x_first;     /* its inputs' adjoints get their first adds from it */
        uint32_t o;       /* its neurons: lay_out, lay_spar, lay_sk [o .. o+m) */
        size_t w;         /* its weights: lay_wpar[w .. w + m*n) */
    } *lay;
    uint32_t *lay_out;    /* the neurons' row arrays */
    uint32_t *lay_act;    /* a relu layer's: the relus' row arrays */
    int32_t *lay_spar;    /* their starts' parameters, -1: a constant, ... */
    double *lay_sk;       /* ... this one */
    int32_t *lay_wpar;    /* the weights' parameters, neuron by neuron */
    size_t lay_nw, lay_nm;   /* weights, neurons in all layers */
    /* The row arrays whose adjoints a block zeroes before backward: runs
     * [zlo[z], zlo[z] + zn[z]) (scan_reads) */
    uint32_t nz, *zlo, *zn;
    /* A call's snapshot of the parameters (scan_reads): the nodes of the
     * layers' weights and starts (PG_NONE: a constant start), in lw's order,
     * and the parameters any other op or a root reads (the rest of the
     * snapshot is never read, and not copied) */
    pg_index *lay_node;   /* lay_nw + lay_nm */
    uint32_t nread, *read;
    uint32_t lay_maxn;       /* layer.h's scratch: n + m + 8 rows */
    /* Scratch kept from call to call: a training loop maps every step, and
     * megabytes freshly allocated each time cost their page faults again.
     * One call at a time holds it (busy, under the arena's lock); a call
     * made meanwhile by another thread allocates its own. */
    int busy;
    double *scratch[PG_MAX_THREADS];
    double *sums;         /* a call's numbers (call_doubles), or NULL */
};

#define NOSTART INT32_MIN

/* The maps that were running program p when this process was fork()ed
 * ran on threads that a child does not have: there they never end, and
 * would hold p and its scratch for good (every later map allocating its
 * own, the program outliving its tape).  In the child, forgets them.  (What
 * such a map alone held stays allocated in the child, once per fork: the
 * scratch of a map that did not get the program's, and a program replaced
 * meanwhile by a map with other inputs.)  Lock held. */
static void forget_forked_calls(const pg_arena *a, pg_prog *p)
{
    if (p && p->forks != a->forks) {
        p->refs -= p->calls;
        p->calls = 0;
        p->busy = 0;
        p->forks = a->forks;
    }
}

/* Two threads may map one tape at once with different inputs: the second
 * replaces the tape's program while the first still runs it, so each map
 * holds a reference, and the last one out frees it. */
void pg__prog_unref(const pg_arena *a, pg_prog *p)
{
    forget_forked_calls(a, p);
    if (!p || --p->refs > 0)
        return;
    for (int w = 0; w < PG_MAX_THREADS; w++)
        free(p->scratch[w]);
    free(p->sums);
    free(p->in_node);
    free(p->par_node);
    free(p->op);
    free(p->a0);
    free(p->a1);
    free(p->k);
    free(p->lo);
    free(p->ln);
    free(p->lst);
    free(p->root);
    free(p->lay_of);
    free(p->lay);
    free(p->lay_out);
    free(p->lay_act);
    free(p->lay_spar);
    free(p->lay_sk);
    free(p->lay_wpar);
    free(p->zlo);
    free(p->zn);
    free(p->lay_node);
    free(p->read);
    free(p);
}

/* -- building the program ------------------------------------------------ */

/* node index -> operand code (codemap.h), for building only */
typedef pg_codemap codemap;
#define cm_get(m, i) pg__cm_get((m), (i), NOSTART)
#define cm_put pg__cm_put

static int find_layers(pg_prog *p);
static int scan_reads(pg_prog *p);

/* The program of tape t for inputs ins[0..nin) (each once, none computed
 * by the tape): NULL with *rc PG_EINVAL if they are not, or PG_ENOMEM.
 * Under the lock. */
static pg_prog *build(pg_tape *t, const pg_index *ins, size_t nin, int *rc)
{
    size_t n = t->ncode, nl = t->nleaf;
    pg_prog *p = calloc(1, sizeof *p);
    if (p) {
        p->refs = 1;   /* the tape's */
        p->forks = t->a->forks;
    }
    codemap m;
    int have_map = pg__cm_init(&m, n + nl + nin) == 0;
    size_t nlst = 0;
    for (size_t j = 0, q = 0; j < n; j++)
        if (pg_is_nary(t->op[j] & PG_OPMASK))
            nlst += t->list[q++] ? t->fwd[j].in0 : 0;
    if (p) {
        p->in_node = malloc((nin + 1) * sizeof *p->in_node);
        p->par_node = malloc((nl + 1) * sizeof *p->par_node);
        p->op = malloc(n + 1);
        p->a0 = malloc((n + 1) * sizeof *p->a0);
        p->a1 = malloc((n + 1) * sizeof *p->a1);
        p->k = malloc((n + 1) * sizeof *p->k);
        p->lo = malloc((n + 1) * sizeof *p->lo);
        p->ln = malloc((n + 1) * sizeof *p->ln);
        p->lst = malloc((nlst + 1) * sizeof *p->lst);
        p->root = malloc((t->nroots + 1) * sizeof *p->root);
    }
    if (!p || !have_map || !p->in_node || !p->par_node || !p->op || !p->a0 ||
        !p->a1 || !p->k || !p->lo || !p->ln || !p->lst || !p->root) {
        *rc = PG_ENOMEM;
        goto fail;
    }
    p->nin = (uint32_t)nin;
    p->ncode = (uint32_t)n;
    p->nroots = (uint32_t)t->nroots;
    /* the tape's leaves: inputs or parameters; an input the roots do not
     * depend on is a row array that nothing reads (its derivatives: 0) */
    for (size_t j = 0; j < n; j++)
        cm_put(&m, t->fwd[j].out, -3);   /* "computed by the tape" */
    for (size_t j = 0; j < nl; j++)
        cm_put(&m, t->leaf[j], -2);      /* "a leaf, not yet numbered" */
    for (size_t i = 0; i < nin; i++) {
        int32_t code = cm_get(&m, ins[i]);
        if (code != -2 && code != NOSTART) {   /* computed, or given twice */
            *rc = PG_EINVAL;
            goto fail;
        }
        cm_put(&m, ins[i], (int32_t)i);
        p->in_node[i] = ins[i];
    }
    for (size_t j = 0; j < nl; j++)
        if (cm_get(&m, t->leaf[j]) == -2) {
            cm_put(&m, t->leaf[j], -1 - (int32_t)p->npar);
            p->par_node[p->npar++] = t->leaf[j];
        }
    for (size_t j = 0; j < n; j++)
        cm_put(&m, t->fwd[j].out, (int32_t)(nin + j));
    /* the instructions */
    const double *kp = t->k;
    pg_list *const *lp = t->list;
    nlst = 0;
    for (size_t j = 0; j < n; j++) {
        int op = t->op[j] & PG_OPMASK;
        pg_step e = t->fwd[j];
        p->op[j] = (uint8_t)op;
        p->k[j] = pg_has_k(op) ? *kp++ : 0.0;
        if (pg_is_nary(op)) {
            const pg_list *l = *lp++;
            p->lo[j] = (uint32_t)nlst;
            p->ln[j] = e.in0;
            for (uint32_t q = 0; q < e.in0; q++)
                p->lst[nlst++] = cm_get(&m, l->item[q]);
            p->a0[j] = 0;
            p->a1[j] = e.in1 == PG_NONE ? NOSTART : cm_get(&m, e.in1);
            p->k[j] = l->k;
        } else {
            p->a0[j] = cm_get(&m, e.in0);
            p->a1[j] = pg_arity(op) == 2 ? cm_get(&m, e.in1) : p->a0[j];
        }
    }
    for (size_t r = 0; r < t->nroots; r++)
        p->root[r] = cm_get(&m, t->root[r]);
    /* rows per block: 64, fewer for a big tape (a block's values and
     * adjoints stay within a few MiB) */
    size_t per_row = ((size_t)nin + n) * 2 * sizeof(double);
    p->R = 64;
    while (p->R > 8 && per_row * p->R > ((size_t)4 << 20))
        p->R /= 2;
    if (find_layers(p) != PG_OK || scan_reads(p) != PG_OK) {
        *rc = PG_ENOMEM;
        goto fail;
    }
    pg__cm_free(&m);
    return p;
fail:
    pg__cm_free(&m);
    pg__prog_unref(t->a, p);
    return NULL;
}

/* -- layers ----------------------------------------------------------------- */

/* Is instruction j a neuron: a dot of n >= 1 weights, all parameters, on n
 * distinct row arrays, its start a parameter or a constant?  seen: a stamp
 * per row array (j + 1 marks this dot's inputs). */
static int is_neuron(const pg_prog *p, size_t j, uint32_t *seen)
{
    if (p->op[j] != PG_DOT || p->ln[j] < 2 || (p->a1[j] != NOSTART && p->a1[j] >= 0))
        return 0;
    uint32_t n = p->ln[j] / 2;
    const int32_t *l = p->lst + p->lo[j];
    for (uint32_t q = 0; q < n; q++) {
        if (l[q] >= 0 || l[n + q] < 0 || seen[l[n + q]] == (uint32_t)j + 1)
            return 0;
        seen[l[n + q]] = (uint32_t)j + 1;
    }
    return 1;
}

static uint64_t list_hash(const int32_t *x, uint32_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15u * (n + 1u);
    for (uint32_t q = 0; q < n; q++)
        h = (h ^ (uint32_t)x[q]) * 0x100000001B3u;
    return h;
}

/* A layer whose every neuron is read by one relu and nothing else (no
 * other op, no root) runs the relus too, at its first node: forward, the
 * kernel stores relu(sum) straight from its registers; backward, it makes
 * the neurons' adjoints from the relus' as the relu ops would (0.0 +
 * (v > 0) * g: the same bits).  The relus' own loops are skipped
 * (lay_of -2): in the moons MLP they were 32 of the 69 ops, each a loop
 * of its own over the block, forward and backward.  Sound for the same
 * reason as running the layer early: a relu reads only its neuron, and
 * its readers (all later) have finished with its adjoint by the time
 * the backward sweep reaches the layer.  uses, who: scratch of ncode +
 * nin entries. */
static void fuse_relus(pg_prog *p, uint32_t *uses, int32_t *who)
{
    size_t n = p->ncode, narr = (size_t)p->nin + n;
    memset(uses, 0, narr * sizeof *uses);
    for (size_t j = 0; j < n; j++) {
        if (pg_is_nary(p->op[j])) {
            if (p->a1[j] != NOSTART && p->a1[j] >= 0)
                uses[p->a1[j]] += 2;   /* (never one relu's) */
            for (uint32_t q = 0; q < p->ln[j]; q++)
                if (p->lst[p->lo[j] + q] >= 0)
                    uses[p->lst[p->lo[j] + q]] += 2;
            continue;
        }
        if (p->a0[j] >= 0) {
            uses[p->a0[j]]++;
            who[p->a0[j]] = (int32_t)j;
        }
        if (pg_arity(p->op[j]) == 2 && p->a1[j] >= 0)
            uses[p->a1[j]] += 2;
    }
    for (uint32_t r = 0; r < p->nroots; r++)
        if (p->root[r] >= 0)
            uses[p->root[r]] += 2;
    for (uint32_t g = 0; g < p->nlay; g++) {
        struct pg_lay *y = &p->lay[g];
        y->relu = 1;
        for (uint32_t i = 0; i < y->m && y->relu; i++) {
            uint32_t a = p->lay_out[y->o + i];
            y->relu = uses[a] == 1 && p->op[who[a]] == PG_RELU;
        }
        if (!y->relu)
            continue;
        for (uint32_t i = 0; i < y->m; i++) {
            int32_t c = who[p->lay_out[y->o + i]];
            p->lay_act[y->o + i] = p->nin + (uint32_t)c;
            p->lay_of[c] = -2;
        }
    }
}

/* Groups the neurons of p into layers: the dots with the same inputs in
 * the same order (a hash of the input list finds the layer), each layer in
 * tape order, run at its first node.  Running the later ones early is
 * sound: they read only parameters, constants and the first one's inputs,
 * computed before it.  Backward, at the first node every later one's
 * adjoint is complete.  PG_OK or PG_ENOMEM. */
static int find_layers(pg_prog *p)
{
    size_t n = p->ncode, narr = (size_t)p->nin + n, ndot = 0, nw = 0, cap = 16;
    for (size_t j = 0; j < n; j++)
        if (p->op[j] == PG_DOT) {
            ndot++;
            nw += p->ln[j] / 2;
        }
    while (cap < 2 * ndot)
        cap *= 2;
    p->lay_of = malloc((n + 1) * sizeof *p->lay_of);
    p->lay = malloc((ndot + 1) * sizeof *p->lay);
    p->lay_out = malloc((ndot + 1) * sizeof *p->lay_out);
    p->lay_act = malloc((ndot + 1) * sizeof *p->lay_act);
    p->lay_spar = malloc((ndot + 1) * sizeof *p->lay_spar);
    p->lay_sk = malloc((ndot + 1) * sizeof *p->lay_sk);
    p->lay_wpar = malloc((nw + 1) * sizeof *p->lay_wpar);
    uint32_t *seen = calloc(narr + 1, sizeof *seen);
    uint32_t *slot = calloc(cap, sizeof *slot);     /* layer + 1, 0: empty */
    int32_t *next = malloc((narr + 1) * sizeof *next);  /* the layer's next node */
    int32_t *last = malloc((ndot + 1) * sizeof *last);
    int rc = PG_ENOMEM;
    if (!p->lay_of || !p->lay || !p->lay_out || !p->lay_act || !p->lay_spar || !p->lay_sk ||
        !p->lay_wpar ||
        !seen || !slot || !next || !last)
        goto out;
    uint32_t nlay = 0;
    for (size_t j = 0; j < n; j++) {
        p->lay_of[j] = -1;
        if (!is_neuron(p, j, seen))
            continue;
        uint32_t m2 = p->ln[j] / 2;
        const int32_t *x = p->lst + p->lo[j] + m2;
        size_t h = (size_t)list_hash(x, m2) & (cap - 1);
        for (;; h = (h + 1) & (cap - 1)) {
            if (slot[h] == 0) {   /* a new layer, j its first node */
                struct pg_lay *y = &p->lay[nlay];
                y->n = m2;
                y->m = 1;
                y->x = p->lo[j] + m2;
                y->first = (uint32_t)j;
                y->on_inputs = 1;
                for (uint32_t q = 0; q < m2; q++)
                    y->on_inputs &= x[q] < (int32_t)p->nin;
                slot[h] = nlay + 1;
                last[nlay] = (int32_t)j;
                p->lay_of[j] = (int32_t)nlay++;
                break;
            }
            struct pg_lay *y = &p->lay[slot[h] - 1];
            if (y->n == m2 && memcmp(p->lst + y->x, x, m2 * sizeof *x) == 0) {
                y->m++;
                next[last[slot[h] - 1]] = (int32_t)j;
                last[slot[h] - 1] = (int32_t)j;
                p->lay_of[j] = -2;
                break;
            }
        }
        next[j] = -1;
    }
    /* each layer's neurons, weights and starts, in tape order */
    size_t o = 0, w = 0;
    for (uint32_t g = 0; g < nlay; g++) {
        struct pg_lay *y = &p->lay[g];
        y->o = (uint32_t)o;
        y->w = w;
        uint32_t need = y->n + y->m + 8;   /* layer.h's xt, in rows of R >= 8 */
        if (need > p->lay_maxn)
            p->lay_maxn = need;
        for (int32_t j = (int32_t)y->first; j >= 0; j = next[j]) {
            const int32_t *l = p->lst + p->lo[j];
            int32_t st = p->a1[j];
            p->lay_out[o] = p->nin + (uint32_t)j;
            p->lay_spar[o] = st == NOSTART ? -1 : -1 - st;
            p->lay_sk[o] = st == NOSTART ? p->k[j] : 0.0;
            o++;
            for (uint32_t q = 0; q < y->n; q++)
                p->lay_wpar[w++] = -1 - l[q];
        }
    }
    p->nlay = nlay;
    p->lay_nm = o;
    p->lay_nw = w;
    fuse_relus(p, seen, next);
    rc = PG_OK;
out:
    free(seen);
    free(slot);
    free(next);
    free(last);
    return rc;
}

/* Who reads what, found in one walk over the program, for two uses.
 *
 * The adjoints a block need not zero.  Backward adds into a row array's
 * adjoint from each op that reads the array, in reverse tape order, so the
 * first of those adds comes from its last reader; when that reader writes
 * the adjoint whole instead of adding to it, the zeros are never read.  Two
 * readers do, with the bits of an add to 0.0: a relu run with its layer
 * (fuse_relus) sets its neuron's adjoint, the neuron's only reader; and a
 * layer whose inputs all have it for their last reader (x_first) starts
 * their sums from zero instead of loading them (layer.h).  A layer runs at
 * its first node, so that is where it reads; a root is seeded before the
 * sweep, as if read after the last op.  The inputs of the map and every
 * other array are zeroed as before.  Zeroing every adjoint of a block, and
 * the layers reading the zeros back, took 7% of the moons step's map (AMD
 * EPYC, one thread: 9.1 -> 8.4 us without).
 *
 * What a call copies of the parameters' values (see lay_node).  A layer
 * reads its weights and starts from lw, in the kernels' order, and every
 * other reader of a parameter (an op that is no layer's, a root) from the
 * snapshot par.  The snapshot copied whole and the layers' numbers then
 * packed from it were two passes over every parameter in each call, made
 * by the caller alone however many threads map.
 *
 * PG_OK or PG_ENOMEM. */
static int scan_reads(pg_prog *p)
{
    size_t n = p->ncode, narr = (size_t)p->nin + n;
    int64_t *last = malloc((narr + 1) * sizeof *last);   /* last reader's place */
    int32_t *by = malloc((narr + 1) * sizeof *by);       /* ... the layer, or -1 */
    uint8_t *keep = calloc(narr + 1, 1);                 /* not zeroed */
    uint8_t *seen = calloc(p->npar + 1, 1);              /* parameters listed */
    p->zlo = malloc((narr + 1) * sizeof *p->zlo);
    p->zn = malloc((narr + 1) * sizeof *p->zn);
    p->lay_node = malloc((p->lay_nw + p->lay_nm + 1) * sizeof *p->lay_node);
    p->read = malloc((p->npar + 1) * sizeof *p->read);
    int rc = PG_ENOMEM;
    if (!last || !by || !keep || !seen || !p->zlo || !p->zn || !p->lay_node || !p->read)
        goto out;
    for (size_t a = 0; a < narr; a++) {
        last[a] = -1;
        by[a] = -1;
    }
    for (size_t q = 0; q < p->lay_nw; q++)
        p->lay_node[q] = p->par_node[p->lay_wpar[q]];
    for (size_t i = 0; i < p->lay_nm; i++)
        p->lay_node[p->lay_nw + i] = p->lay_spar[i] >= 0 ? p->par_node[p->lay_spar[i]] : PG_NONE;
    /* operand a read at place j, by layer g (or -1): a row array's last
     * reader, or a parameter listed once (a layer reads only row arrays) */
#define READ_AT(a_, j_, g_)                                                  \
    do {                                                                    \
        int32_t a1_ = (a_);                                                 \
        if (a1_ >= 0) {                                                     \
            if ((int64_t)(j_) >= last[a1_]) {                               \
                by[a1_] = (int64_t)(j_) == last[a1_] ? -1 : (g_);           \
                last[a1_] = (int64_t)(j_);                                  \
            }                                                               \
        } else if (a1_ != NOSTART && !seen[-1 - a1_]) {                     \
            seen[-1 - a1_] = 1;                                             \
            p->read[p->nread++] = (uint32_t)(-1 - a1_);                     \
        }                                                                   \
    } while (0)
    p->nread = 0;
    for (size_t j = 0; j < n; j++) {
        int32_t g = p->lay_of[j];
        if (g >= 0) {   /* a layer, reading its inputs here */
            const struct pg_lay *y = &p->lay[g];
            for (uint32_t q = 0; q < y->n; q++)
                READ_AT(p->lst[y->x + q], j, g);
            continue;
        }
        if (g == -2)    /* a later neuron (its reads: the layer's), or a fused relu */
            continue;
        if (pg_is_nary(p->op[j])) {
            READ_AT(p->a1[j], j, -1);   /* the start (NOSTART: none) */
            for (uint32_t q = 0; q < p->ln[j]; q++)
                READ_AT(p->lst[p->lo[j] + q], j, -1);
        } else {
            READ_AT(p->a0[j], j, -1);
            if (pg_arity(p->op[j]) == 2)
                READ_AT(p->a1[j], j, -1);
        }
    }
    for (uint32_t r = 0; r < p->nroots; r++)   /* seeded before any op's adds */
        READ_AT(p->root[r], n, -1);
#undef READ_AT
    for (uint32_t g = 0; g < p->nlay; g++) {
        struct pg_lay *y = &p->lay[g];
        y->x_first = !y->on_inputs;
        for (uint32_t q = 0; q < y->n && y->x_first; q++)
            y->x_first = by[p->lst[y->x + q]] == (int32_t)g;
        for (uint32_t q = 0; q < y->n && y->x_first; q++)
            keep[p->lst[y->x + q]] = p->lst[y->x + q] >= (int32_t)p->nin;
        for (uint32_t i = 0; i < y->m && y->relu; i++)
            keep[p->lay_out[y->o + i]] = 1;
    }
    p->nz = 0;
    for (size_t a = 0; a < narr; a++)
        if (!keep[a]) {
            if (p->nz && p->zlo[p->nz - 1] + p->zn[p->nz - 1] == a) {
                p->zn[p->nz - 1]++;
            } else {
                p->zlo[p->nz] = (uint32_t)a;
                p->zn[p->nz++] = 1;
            }
        }
    rc = PG_OK;
out:
    free(last);
    free(by);
    free(keep);
    free(seen);
    return rc;
}

/* -- one block ------------------------------------------------------------ */

typedef struct job {
    const pg_prog *p;
    const unsigned char *rows;   /* nrows * nin doubles, any alignment */
    size_t nrows, nblocks;
    size_t R;                 /* rows a block (the last may have fewer) */
    const double *par;        /* the parameters' values, a snapshot */
    const double *lw;         /* the layers' weights, then starts (lay_nw + lay_nm) */
    int broot;                /* root to differentiate, -1: none */
    double seed;              /* d(reduced)/d(root of a row): 1 or 1/nrows */
    double *values;           /* nrows * nroots, or NULL */
    double *in_grads;         /* nrows * nin, or NULL */
    size_t wave0, wave_n;     /* the wave: blocks wave0 .. wave0+wave_n */
    atomic_size_t next;
    double *blk_par;          /* wave_n * npar */
    double *blk_val;          /* wave_n * nroots */
    double *scratch[PG_MAX_THREADS];
    atomic_int failed;        /* some block of the wave failed */
    size_t bad_row;           /* the lowest failing row of the wave, ... */
    int bad_op, bad_rc;       /* ... its op and error (under err_m) */
    pthread_mutex_t err_m;
} job;

/* Row array a of a block (V or A), or the parameter's number. */
#define ROWS(base, a, R) ((base) + (size_t)(a) * (R))

/* The loops over the rows of one instruction, specialised (by inlining
 * with constant arguments) on the op and on which operands are parameters
 * (xa, ya: 1 for a row array, 0 for one number). */
#if defined(__GNUC__)
#define PG_INLINE static inline __attribute__((always_inline))
#else
#define PG_INLINE static inline
#endif

/* Forward: o[r] = op(x, y; k) for r < nb; the row of the first math error
 * (and *rc), or nb. */
PG_INLINE size_t fwd_rows(int op, const double *xs, int xa, const double *ys, int ya,
                          double k, double *o, size_t nb, int *rc)
{
    for (size_t r = 0; r < nb; r++) {
        double x = xa ? xs[r] : xs[0], y = ya ? ys[r] : ys[0], v = 0.0;
        int err = PG_OK;
        (void)y; (void)k;
        switch (op) {
#define PG_MAP_FWD(op_, kind_, part_, v_, dx_, dy_, err_, ...)               \
        PG_IF_FORMULA(kind_, case op_: v = (v_); err = (err_); break;)
        PG_OP_TABLE(PG_MAP_FWD)
#undef PG_MAP_FWD
        default:
            break;
        }
        if (err != PG_OK) {
            *rc = err;
            return r;
        }
        o[r] = v;
    }
    return nb;
}

/* Backward: input 0 gets dx * g, input 1 dy * g (two: a two-input op),
 * into row arrays tx, ty, or summed over the rows into one number. */
PG_INLINE void bwd_rows(int op, const double *xs, int xa, const double *ys, int ya,
                        const double *vs, double k, const double *g, double *tx,
                        double *ty, int two, size_t nb)
{
    double sx = 0.0, sy = 0.0;
    for (size_t r = 0; r < nb; r++) {
        double x = xa ? xs[r] : xs[0], y = ya ? ys[r] : ys[0], v = vs[r];
        double dx = 0.0, dy = 0.0;
        (void)x; (void)y; (void)k; (void)v;
        switch (op) {
#define PG_MAP_BWD(op_, kind_, part_, v_, dx_, dy_, err_, ...)               \
        PG_IF_FORMULA(kind_, case op_: dx = (dx_); dy = (dy_); break;)
        PG_OP_TABLE(PG_MAP_BWD)
#undef PG_MAP_BWD
        default:
            break;
        }
        if (xa)
            tx[r] += dx * g[r];
        else
            sx += dx * g[r];
        if (two) {
            if (ya)
                ty[r] += dy * g[r];
            else
                sy += dy * g[r];
        }
    }
    if (!xa)
        *tx += sx;
    if (two && !ya)
        *ty += sy;
}

/* The operand's values (a row array of V, or the parameter's number) and
 * its adjoint target (a row array of A, or the parameter's sum). */
static const double *val_of(const job *J, const double *V, int32_t a)
{
    return a >= 0 ? ROWS(V, a, J->R) : &J->par[-1 - a];
}

static double *adj_of(const job *J, double *A, double *gpar, int32_t a)
{
    return a >= 0 ? ROWS(A, a, J->R) : &gpar[-1 - a];
}

/* t (a row array, ta, or one number: the sum over rows) += 1.0 * g. */
static void add_rows(double *t, int ta, const double *g, size_t nb)
{
    if (ta) {
        for (size_t r = 0; r < nb; r++)
            t[r] += 1.0 * g[r];
    } else {
        double acc = 0.0;
        for (size_t r = 0; r < nb; r++)
            acc += 1.0 * g[r];
        *t += acc;
    }
}

/* Layer g's arguments for a block of nb rows (xt: backward's scratch). */
static pg_layer_args layer_args(const job *J, uint32_t g, size_t nb, double *xt)
{
    const pg_prog *p = J->p;
    const struct pg_lay *y = &p->lay[g];
    pg_layer_args L = {y->n, y->m, J->R, nb, p->lst + y->x, p->lay_out + y->o,
                       y->relu ? p->lay_act + y->o : NULL, J->lw + y->w, J->lw + p->lay_nw + y->o,
                       p->lay_wpar + y->w, p->lay_spar + y->o, xt,
                       /* a first layer's input adjoints are a third of its
                        * backward, and only input_grads reads them */
                       y->on_inputs && !J->in_grads, (int)y->x_first};
    return L;
}

/* Forward over nb rows of block V; the instruction and row of the first
 * error (rows in [0, nb)), or instruction ncode. */
PG_CLONES static size_t forward(const job *J, double *V, double *xt, size_t nb, size_t *row,
                                int *rc)
{
    const pg_prog *p = J->p;
    size_t R = J->R;
    for (size_t j = 0; j < p->ncode; j++) {
        int op = p->op[j];
        double *o = ROWS(V, p->nin + j, R);
        if (p->lay_of[j] != -1) {   /* a layer's: run with its first node */
            if (p->lay_of[j] >= 0) {
                pg_layer_args L = layer_args(J, (uint32_t)p->lay_of[j], nb, xt);
                pg__layer_forward(&L, V);
            }
            continue;
        }
        if (pg_is_nary(op)) {
            int32_t s = p->a1[j];
            for (size_t r = 0; r < nb; r++)
                o[r] = s == NOSTART ? p->k[j] : s >= 0 ? ROWS(V, s, R)[r] : J->par[-1 - s];
            const int32_t *l = p->lst + p->lo[j];
            uint32_t m = p->ln[j];
            if (op == PG_SUM) {
                for (uint32_t q = 0; q < m; q++) {
                    const double *x = val_of(J, V, l[q]);
                    int xa = l[q] >= 0;
                    for (size_t r = 0; r < nb; r++)
                        o[r] = o[r] + (xa ? x[r] : x[0]);
                }
            } else {
                for (uint32_t q = 0; q < m / 2; q++) {
                    const double *w = val_of(J, V, l[q]), *x = val_of(J, V, l[m / 2 + q]);
                    int wa = l[q] >= 0, xa = l[m / 2 + q] >= 0;
                    if (!wa && xa)   /* the usual neuron: a weight, an input */
                        for (size_t r = 0; r < nb; r++)
                            o[r] = o[r] + w[0] * x[r];
                    else
                        for (size_t r = 0; r < nb; r++)
                            o[r] = o[r] + (wa ? w[r] : w[0]) * (xa ? x[r] : x[0]);
                }
            }
            continue;
        }
        const double *x = val_of(J, V, p->a0[j]), *y = val_of(J, V, p->a1[j]);
        int xa = p->a0[j] >= 0, ya = p->a1[j] >= 0, err = PG_OK;
        if (op == PG_RELU && xa) {   /* (pg_relu's bits, vectorised: ops.h) */
            for (size_t r = 0; r < nb; r++)
                o[r] = pg_relu_plain(x[r]);
            continue;
        }
        double k = p->k[j];
        size_t got = nb;
        switch (op) {
#define PG_MAP_FWD_CASE(op_, kind_, ...)                                     \
        PG_IF_FORMULA(kind_, case op_:                                       \
            got = xa ? (ya ? fwd_rows(op_, x, 1, y, 1, k, o, nb, &err)       \
                           : fwd_rows(op_, x, 1, y, 0, k, o, nb, &err))      \
                     : (ya ? fwd_rows(op_, x, 0, y, 1, k, o, nb, &err)       \
                           : fwd_rows(op_, x, 0, y, 0, k, o, nb, &err));     \
            break;)
        PG_OP_TABLE(PG_MAP_FWD_CASE)
#undef PG_MAP_FWD_CASE
        default:
            break;
        }
        if (got < nb) {
            *row = got;
            *rc = err;
            return j;
        }
    }
    return p->ncode;
}

/* Backward over nb rows: A zeroed (but for the arrays written before they
 * are read: scan_reads) and seeded; parameter sums into gpar. */
PG_CLONES static void backward(const job *J, const double *V, double *A, double *gpar, double *xt,
                     size_t nb)
{
    const pg_prog *p = J->p;
    size_t R = J->R;
    for (size_t j = p->ncode; j-- > 0;) {
        int op = p->op[j];
        if (p->lay_of[j] != -1) {   /* a layer's: all of it at its first node */
            if (p->lay_of[j] >= 0) {
                pg_layer_args L = layer_args(J, (uint32_t)p->lay_of[j], nb, xt);
                pg__layer_backward(&L, V, A, gpar);
            }
            continue;
        }
        const double *g = ROWS(A, p->nin + j, R), *v = ROWS(V, p->nin + j, R);
        if (pg_is_nary(op)) {   /* the start, then the list, as sweep.h */
            int32_t s = p->a1[j];
            const int32_t *l = p->lst + p->lo[j];
            uint32_t m = p->ln[j];
            (void)v;
            if (s != NOSTART)
                add_rows(adj_of(J, A, gpar, s), s >= 0, g, nb);
            if (op == PG_SUM) {
                for (uint32_t q = 0; q < m; q++)
                    add_rows(adj_of(J, A, gpar, l[q]), l[q] >= 0, g, nb);
            } else {
                for (uint32_t q = 0; q < m / 2; q++) {
                    int32_t wi = l[q], xi = l[m / 2 + q];
                    const double *w = val_of(J, V, wi), *x = val_of(J, V, xi);
                    double *tw = adj_of(J, A, gpar, wi), *tx = adj_of(J, A, gpar, xi);
                    int wa = wi >= 0, xa = xi >= 0;
                    double sw = 0.0, sx = 0.0;
                    for (size_t r = 0; r < nb; r++) {   /* w gets x*g, then x gets w*g */
                        double cw = (xa ? x[r] : x[0]) * g[r];
                        double cx = (wa ? w[r] : w[0]) * g[r];
                        if (wa)
                            tw[r] += cw;
                        else
                            sw += cw;
                        if (xa)
                            tx[r] += cx;
                        else
                            sx += cx;
                    }
                    if (!wa)
                        *tw += sw;
                    if (!xa)
                        *tx += sx;
                }
            }
            continue;
        }
        int32_t ia = p->a0[j], ib = p->a1[j];
        const double *x = val_of(J, V, ia), *y = val_of(J, V, ib);
        double *tx = adj_of(J, A, gpar, ia), *ty = adj_of(J, A, gpar, ib);
        int xa = ia >= 0, ya = ib >= 0;
        double k = p->k[j];
        switch (op) {
#define PG_MAP_BWD_CASE(op_, kind_, ...)                                     \
        PG_IF_FORMULA(kind_, case op_:                                       \
            if (pg_arity(op_) == 1)                                          \
                xa ? bwd_rows(op_, x, 1, x, 1, v, k, g, tx, NULL, 0, nb)     \
                   : bwd_rows(op_, x, 0, x, 0, v, k, g, tx, NULL, 0, nb);    \
            else if (xa)                                                     \
                ya ? bwd_rows(op_, x, 1, y, 1, v, k, g, tx, ty, 1, nb)       \
                   : bwd_rows(op_, x, 1, y, 0, v, k, g, tx, ty, 1, nb);      \
            else                                                             \
                ya ? bwd_rows(op_, x, 0, y, 1, v, k, g, tx, ty, 1, nb)       \
                   : bwd_rows(op_, x, 0, y, 0, v, k, g, tx, ty, 1, nb);      \
            break;)
        PG_OP_TABLE(PG_MAP_BWD_CASE)
#undef PG_MAP_BWD_CASE
        default:
            break;
        }
    }
}

/* Records a failure at row `row`, op `op`, if it is the lowest so far. */
static void fail_at(job *J, size_t row, int op, int rc)
{
    pthread_mutex_lock(&J->err_m);
    if (!atomic_load(&J->failed) || row < J->bad_row) {
        J->bad_row = row;
        J->bad_op = op;
        J->bad_rc = rc;
    }
    atomic_store(&J->failed, 1);
    pthread_mutex_unlock(&J->err_m);
}

/* Input i of row r.  The rows are the caller's buffer, at any address (a
 * numpy array made at a byte offset is one): read as bytes, which costs
 * nothing where unaligned loads do, and is defined everywhere. */
static inline double row_input(const job *J, size_t r, uint32_t i)
{
    double x;
    memcpy(&x, J->rows + (r * J->p->nin + i) * sizeof x, sizeof x);
    return x;
}

/* Block b (its slot w in the wave) with scratch V, A. */
static void run_block(job *J, size_t b, size_t w, double *V, double *A)
{
    const pg_prog *p = J->p;
    size_t R = J->R, r0 = b * R, nb = J->nrows - r0 < R ? J->nrows - r0 : R;
    for (uint32_t i = 0; i < p->nin; i++) {
        double *in = ROWS(V, i, R);
        for (size_t r = 0; r < nb; r++)
            in[r] = row_input(J, r0 + r, i);
    }
    size_t row = 0;
    int rc = PG_OK;
    double *xt = A + ((size_t)p->nin + p->ncode) * R;   /* the layers' scratch */
    size_t j = forward(J, V, xt, nb, &row, &rc);
    if (j < p->ncode) {
        /* the lowest failing row may fail at a later op: replay the rows
         * one by one, in order, to find it (in A, free until backward) */
        for (size_t r = 0; r < nb; r++) {
            for (uint32_t i = 0; i < p->nin; i++)
                ROWS(A, i, R)[0] = row_input(J, r0 + r, i);
            size_t one = 0;
            int rc1 = PG_OK;
            size_t jj = forward(J, A, xt, 1, &one, &rc1);
            if (jj < p->ncode) {
                fail_at(J, r0 + r, p->op[jj], rc1);
                return;
            }
        }
        fail_at(J, r0 + row, p->op[j], rc);   /* (a row failed above) */
        return;
    }
    double *vsum = J->blk_val + w * p->nroots;
    for (uint32_t q = 0; q < p->nroots; q++) {
        const double *rv = val_of(J, V, p->root[q]);
        int ra = p->root[q] >= 0;
        double s = 0.0;
        for (size_t r = 0; r < nb; r++)
            s += ra ? rv[r] : rv[0];
        vsum[q] = s;
        if (J->values)
            for (size_t r = 0; r < nb; r++)
                J->values[(r0 + r) * p->nroots + q] = ra ? rv[r] : rv[0];
    }
    if (J->broot < 0)
        return;
    double *gpar = J->blk_par + w * p->npar;
    for (uint32_t z = 0; z < p->nz; z++)
        memset(ROWS(A, p->zlo[z], R), 0, p->zn[z] * R * sizeof *A);
    memset(gpar, 0, p->npar * sizeof *gpar);
    int32_t root = p->root[J->broot];
    double *seed = adj_of(J, A, gpar, root);
    if (root >= 0)
        for (size_t r = 0; r < nb; r++)
            seed[r] = J->seed;
    else
        *seed += J->seed * (double)nb;
    backward(J, V, A, gpar, xt, nb);
    if (J->in_grads)
        for (uint32_t i = 0; i < p->nin; i++) {
            const double *gi = ROWS(A, i, R);
            for (size_t r = 0; r < nb; r++)
                J->in_grads[(r0 + r) * p->nin + i] = gi[r];
        }
}

#ifdef PG_TEST_TAKEN
/* The tests' seam (test_map_order.c): called by a thread right after it
 * took block w of a wave, where a preemption could stop it. */
void PG_TEST_TAKEN(size_t w);
#endif

static void work(void *ctx, int worker)
{
    job *J = ctx;
    const pg_prog *p = J->p;
    double *V = J->scratch[worker];
    double *A = V + ((size_t)p->nin + p->ncode) * J->R;
    /* After a failure no block is taken, but a block taken is always run:
     * blocks are taken in order, so every block below a failing one was
     * taken before it and runs, and the lowest failing row is found
     * (checked after the take, a thread stopped between the two would skip
     * its block once a later one failed, and the error name a later row) */
    while (!atomic_load(&J->failed)) {
        size_t w = atomic_fetch_add(&J->next, 1);
#ifdef PG_TEST_TAKEN
        PG_TEST_TAKEN(w);
#endif
        if (w >= J->wave_n)
            return;
        run_block(J, J->wave0 + w, w, V, A);
    }
}

/* -- the call ------------------------------------------------------------- */

/* Rows a block: the fewest blocks of at most R rows (the program's, up to
 * 64), or, when the batch has rows for more, an even number of them, up to
 * eight, of 32 rows or more (for the threads to share: an even number
 * splits evenly between two); the rows evened out among the blocks, in
 * multiples of 8 (the layers' tiles), which can leave the count odd after
 * all (200 rows: six blocks asked for, five of 40 made).  A block's fixed costs (each
 * instruction's loop set up, the layers' ragged edges, a parameter's sum)
 * are paid per block: 100 rows in blocks of 32, 32, 32 and 4 took 14.1 us
 * of C on one thread, in blocks of 56 and 44 13.0 (the moons step's map,
 * AMD EPYC), and two threads share two blocks evenly, four of those not.
 * It depends on the rows alone, never on the threads, so the sums, made
 * per block, are the same bits for any thread count. */
static size_t block_rows(size_t R, size_t nrows)
{
    if (nrows == 0)
        return R;
    size_t nblocks = (nrows + R - 1) / R, pairs = 2 * (nrows / 64);
    if (pairs > 8)
        pairs = 8;
    if (pairs > nblocks)
        nblocks = pairs;
    size_t rows = (nrows + nblocks - 1) / nblocks;
    rows = (rows + 7) / 8 * 8;
    return rows < R ? rows : R;
}

/* A thread's block scratch, n doubles, on a 64-byte boundary: row arrays
 * are R doubles apart, R a multiple of 8, so each starts on a cache line
 * and the layers' 8-row vectors never straddle two (with malloc's 16-byte
 * alignment, where the scratch fell decided whether they did). */
static double *scratch_new(size_t n)
{
    size_t bytes = ((n + 1) * sizeof(double) + 63) / 64 * 64;
    void *mem = NULL;
    return posix_memalign(&mem, 64, bytes) == 0 ? mem : NULL;
}

/* A call's numbers, one allocation of call_doubles(p) (see pg_tape_map):
 * the parameters' values, the layers' weights and starts packed, the sums
 * over blocks of the parameters' derivatives and of the roots' values, and
 * those sums for each block of a wave.  The two functions below are the
 * one description of its layout. */
typedef struct call_nums {
    double *par, *lw, *gtot, *vtot, *blk_par, *blk_val;
} call_nums;

static call_nums call_parts(const pg_prog *p, double *mem)
{
    call_nums c;
    c.par = mem;
    c.lw = c.par + p->npar;
    c.gtot = c.lw + p->lay_nw + p->lay_nm;
    c.vtot = c.gtot + p->npar;
    c.blk_par = c.vtot + p->nroots;
    c.blk_val = c.blk_par + WAVE * (size_t)p->npar;
    return c;
}

static size_t call_doubles(const pg_prog *p)
{
    return (size_t)p->npar + p->lay_nw + p->lay_nm + p->npar + p->nroots +
           WAVE * ((size_t)p->npar + p->nroots);
}

/* Ends a call's use of program p (and of its scratch, if it held it). */
static void drop(pg_arena *a, pg_prog *p, int held_scratch)
{
    LOCK(a);
    if (held_scratch)
        p->busy = 0;
    if (p)     /* (NULL: the program could not be built) */
        p->calls--;
    pg__prog_unref(a, p);
    UNLOCK(a);
}

int pg_tape_map(pg_tape *t, const pg_index *ins, size_t nin, const void *rows,
                size_t nrows, int broot, int reduce, int add_grads, double *values, double *reduced,
                double *in_grads, int threads, int64_t bad[2])
{
    bad[0] = bad[1] = -1;
    pg_arena *a = t->a;
    if (broot >= (int)t->nroots || reduce < 0 || reduce > 2 || (in_grads && broot < 0))
        return PG_EINVAL;
    LOCK(a);
    int rc = PG_OK;
    /* the program, kept while the inputs stay the same */
    pg_prog *p = t->prog;
    forget_forked_calls(a, p);
    if (p && (p->nin != nin || memcmp(p->in_node, ins, nin * sizeof *ins) != 0)) {
        pg__prog_unref(a, p);
        p = t->prog = NULL;
    }
    if (!p)
        p = t->prog = build(t, ins, nin, &rc);
    if (p) {
        p->refs++;     /* this call's, dropped at the end */
        p->calls++;
    }
    /* this call's numbers, one allocation (kept with the program, like the
     * scratch, for the next call: a training loop's map made and freed six
     * blocks of memory a step, one of them 86 KB): the parameters as they
     * are now, the layers' weights and starts packed neuron by neuron, the
     * sums over blocks and the sums of each block of a wave */
    int cached = rc == PG_OK && !p->busy;   /* this call uses p's scratch */
    if (cached)
        p->busy = 1;
    double *mem = NULL;
    if (rc == PG_OK) {
        mem = cached ? p->sums : NULL;
        if (!mem && !(mem = malloc((call_doubles(p) + 1) * sizeof *mem)))
            rc = PG_ENOMEM;
        else if (cached)
            p->sums = mem;
    }
    call_nums c = {NULL, NULL, NULL, NULL, NULL, NULL};
    if (mem) {
        /* (the columns and lists in locals: stored through a double *, the
         * copies made the compiler reload them at every number) */
        const double *val = a->val;
        const pg_index *node = p->lay_node, *par_node = p->par_node;
        const uint32_t *read = p->read;
        c = call_parts(p, mem);
        for (uint32_t q = 0; q < p->nread; q++)
            c.par[read[q]] = val[par_node[read[q]]];
        for (size_t q = 0; q < p->lay_nw; q++)
            c.lw[q] = val[node[q]];
        for (size_t i = 0; i < p->lay_nm; i++) {
            pg_index s = node[p->lay_nw + i];
            c.lw[p->lay_nw + i] = s != PG_NONE ? val[s] : p->lay_sk[i];
        }
    }
    if (rc == PG_OK && !a->pool && !(a->pool = pg__pool_new()))
        rc = PG_ENOMEM;
    UNLOCK(a);
    if (rc != PG_OK) {
        if (!cached)
            free(mem);
        drop(a, p, cached);
        return rc;
    }

    /* The sweeps, with no lock held: they read only the program, the
     * snapshot and the rows, and write only their own memory.  (The job
     * lives on this stack: pg__pool_run returns when its workers are done.) */
    job job_here, *J = &job_here;
    memset(J, 0, sizeof *J);
    double *gtot = c.gtot, *vtot = c.vtot;
    memset(gtot, 0, ((size_t)p->npar + p->nroots) * sizeof *gtot);
    pthread_mutex_init(&J->err_m, NULL);
    J->p = p;
    J->rows = rows;
    J->nrows = nrows;
    J->R = block_rows(p->R, nrows);
    J->nblocks = (nrows + J->R - 1) / J->R;
    J->par = c.par;
    J->lw = c.lw;
    J->broot = broot;
    J->seed = reduce == 2 ? 1.0 / (double)nrows : 1.0;
    J->values = values;
    J->in_grads = in_grads;
    J->blk_par = c.blk_par;
    J->blk_val = c.blk_val;
    int nt = threads > 0 ? threads : pg__pool_cores();
    if (nt > PG_MAX_THREADS)
        nt = PG_MAX_THREADS;
    if ((size_t)nt > J->nblocks)
        nt = J->nblocks ? (int)J->nblocks : 1;
    size_t block_doubles = (((size_t)p->nin + p->ncode) * 2 + p->lay_maxn) * p->R;
    for (int w = 0; w < nt && rc == PG_OK; w++) {
        double *mine = cached ? p->scratch[w] : NULL;
        if (!mine && !(mine = scratch_new(block_doubles)))
            rc = PG_ENOMEM;
        else if (cached)
            p->scratch[w] = mine;   /* (the program is not shared meanwhile: busy) */
        J->scratch[w] = mine;
    }
    /* (the last wave's parameter sums -- the only wave's, usually -- are
     * added up below, in the pass that adds them to the grads, in the same
     * order: one pass over the parameters fewer) */
    for (size_t b0 = 0; b0 < J->nblocks && rc == PG_OK; b0 += WAVE) {
        int last_wave = b0 + WAVE >= J->nblocks;
        J->wave0 = b0;
        J->wave_n = J->nblocks - b0 < WAVE ? J->nblocks - b0 : WAVE;
        atomic_store(&J->next, 0);
        pg__pool_run(a->pool, nt, work, J);
        if (atomic_load(&J->failed)) {
            rc = J->bad_rc;
            bad[0] = (int64_t)J->bad_row;
            bad[1] = J->bad_op;
            break;
        }
        for (size_t w = 0; w < J->wave_n; w++) {   /* in block order */
            for (uint32_t q = 0; q < p->nroots; q++)
                vtot[q] += J->blk_val[w * p->nroots + q];
            if (broot >= 0 && !last_wave)
                for (uint32_t q = 0; q < p->npar; q++)
                    gtot[q] += J->blk_par[w * p->npar + q];
        }
    }
    if (rc == PG_OK && reduced)
        for (uint32_t q = 0; q < p->nroots; q++)
            reduced[q] = reduce == 2 ? vtot[q] / (double)nrows : vtot[q];
    if (rc == PG_OK && broot >= 0 && add_grads) {
        LOCK(a);   /* all or nothing: only now, and only when all rows ran */
        double *grad = a->grad;   /* (in locals, as above) */
        const pg_index *par_node = p->par_node;
        const double *blk = J->blk_par;
        size_t nw = J->wave_n, npar = p->npar;   /* (the last wave's blocks) */
        for (size_t q = 0; q < npar; q++) {
            double g = gtot[q];   /* (0.0 + each block's, in block order) */
            for (size_t w = 0; w < nw; w++)
                g += blk[w * npar + q];
            if (pg__is_live(a, par_node[q]))
                grad[par_node[q]] += g;
        }
        UNLOCK(a);
    }
    if (!cached)
        for (int w = 0; w < nt; w++)
            free(J->scratch[w]);
    pthread_mutex_destroy(&J->err_m);
    if (!cached)
        free(mem);
    drop(a, p, cached);
    return rc;
}
