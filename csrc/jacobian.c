/* jacobian.c -- a tape's Jacobian (pg_tape_jacobian): reverse sweeps that
 * carry eight roots' adjoints at once, as JAX's jacrev and CasADi's
 * reverse mode with several seeds do.  A Hessian is the Jacobian of a
 * compiled gradient tape: one sweep per eight of its rows instead of one
 * per row.
 *
 * Each of the eight lanes is exactly tape.backward(r) of its root r (the
 * multi-root sweep of replay.c, backward_marked): the same partials (the
 * last forward's), the same adds in the same order, and only the nodes
 * that root reaches pass anything on.  That last point is per lane: a
 * node reached by some lanes only adds to the others nothing at all, not
 * even 0 * partial (an infinite partial would make that NaN where the
 * scalar sweep has no term), so the lanes a node reaches are kept as a bit
 * mask per node and the adds are blended by it.
 *
 * Rows: instruction j's node is row j, leaf q's row ncode + q.  The sweep
 * reads operands as rows, precomputed once per call (a hash of node
 * indices, codemap.h); each row holds eight doubles, one cache line.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "clones.h"
#include "codemap.h"
#include "pool.h"
#include "tape.h"

#define LANES 8
typedef double pg_lanes __attribute__((vector_size(LANES * sizeof(double))));
typedef int64_t pg_lmask __attribute__((vector_size(LANES * sizeof(int64_t))));

/* Row r, reached by lanes m, gets k * g in those lanes (the others keep
 * their bits); the new row into *out, and stored.  A row no lane had
 * reached is zero first (a row is read only where its mask says, so the
 * rows need no clearing between sweeps: on a large tape that memset was
 * most of a sweep).  (Vectors by pointer: by value, GCC warns that the
 * baseline's calling convention for them differs, though it is inlined.) */
static inline void add_row(pg_lanes *adj, uint8_t *mask, int32_t r, double k,
                           const pg_lanes *g, unsigned m, pg_lanes *out)
{
    pg_lanes old = mask[r] ? adj[r] : (pg_lanes){0};
    pg_lanes s = old + k * *g;
    if (m != (1u << LANES) - 1) {
        const pg_lmask bit = {1, 2, 4, 8, 16, 32, 64, 128};
        pg_lmask keep = (bit & (int64_t)m) != 0;   /* all ones in the lanes of m */
        s = (pg_lanes)(((pg_lmask)s & keep) | ((pg_lmask)old & ~keep));
    }
    mask[r] |= (uint8_t)m;
    adj[r] = s;
    *out = s;
}

/* One operand of an n-ary instruction: its row, and the factor its
 * adjoint gets (1.0, or a dot's other value). */
typedef struct operand {
    int32_t row;
    double coef;
} operand;

/* What the sweep reads of instruction j, 24 bytes: the rows of its one or
 * two inputs (row[1] < 0 for one) and their partials, in the order
 * backward_marked adds to them.  An n-ary instruction has row[0] = -1 - k
 * and row[1] = c: its operands are opd[k .. k+c).  (The sweep streams
 * through these once per eight roots, with the rows: fewer bytes here
 * were a fifth of a sweep on a big tape.) */
typedef struct step {
    int32_t row[2];
    double part[2];
} step;

typedef struct plan {
    step *step;
    operand *opd;
} plan;

/* The plan of tape t (rows from m), under the lock: the partials of the
 * last forward, n-ary factors the values now, as the scalar sweep reads
 * them.  PG_OK, PG_ENOMEM (the caller frees what was allocated), or
 * PG_EINVAL for an operand that is not a node of the tape. */
static int make_plan(const pg_tape *t, const pg_codemap *m, plan *P)
{
    const pg_arena *a = t->a;
    size_t n = t->ncode, nopd = 0;
    for (size_t j = 0; j < n; j++) {
        int o = t->op[j] & PG_OPMASK;
        if (pg_is_nary(o))
            nopd += t->fwd[j].in0 + (t->fwd[j].in1 != PG_NONE);
    }
    P->step = malloc((n + 1) * sizeof *P->step);
    P->opd = malloc((nopd + 1) * sizeof *P->opd);
    if (!P->step || !P->opd)
        return PG_ENOMEM;
    int bad = 0;
    const double *d = t->d;
    pg_list *const *lp = t->list;
    size_t k = 0;
    for (size_t j = 0; j < n; j++) {
        const pg_step e = t->fwd[j];
        int o = t->op[j] & PG_OPMASK;
        step *sj = &P->step[j];
        if (pg_is_nary(o)) {   /* the start, then the list, as sweep.h */
            const pg_list *l = *lp++;
            uint32_t cnt = e.in0;
            size_t k0 = k;
            if (e.in1 != PG_NONE)
                P->opd[k++] = (operand){pg__cm_get(m, e.in1, -1), 1.0};
            if (o == PG_SUM) {
                for (uint32_t q = 0; q < cnt; q++)
                    P->opd[k++] = (operand){pg__cm_get(m, l->item[q], -1), 1.0};
            } else {   /* w[q] gets x[q]'s value, then x[q] gets w[q]'s */
                for (uint32_t q = 0; q < cnt / 2; q++) {
                    pg_index w = l->item[q], x = l->item[cnt / 2 + q];
                    P->opd[k++] = (operand){pg__cm_get(m, w, -1), a->val[x]};
                    P->opd[k++] = (operand){pg__cm_get(m, x, -1), a->val[w]};
                }
            }
            for (size_t q = k0; q < k; q++)
                bad |= P->opd[q].row < 0;
            *sj = (step){{(int32_t)(-1 - (int64_t)k0), (int32_t)(k - k0)}, {0.0, 0.0}};
        } else {
            /* the partials come chained input first (tape.h) */
            int two = pg_arity(o) == 2;
            int swapped = (t->op[j] & PG_CHAIN1) != 0;
            *sj = (step){{pg__cm_get(m, e.in0, -1), -1}, {d[swapped && two], 0.0}};
            bad |= sj->row[0] < 0;
            if (two) {
                sj->row[1] = pg__cm_get(m, e.in1, -1);
                sj->part[1] = d[!swapped];
                bad |= sj->row[1] < 0;
            }
        }
        d += pg_nparts(o);
    }
    /* (cannot happen: a tape holds its nodes' inputs) */
    return bad ? PG_EINVAL : PG_OK;
}

/* One sweep, for the roots in lanes 0 .. nl-1 (rows rr[0..nl)).  A row
 * is one AVX-512 register, four on the baseline (clones.h). */
PG_CLONES static void sweep(const pg_tape *t, const plan *P, pg_lanes *adj, uint8_t *mask,
                  size_t nrows, const int32_t *rr, size_t nl)
{
    memset(mask, 0, nrows);
    for (size_t l = 0; l < nl; l++) {
        pg_lanes one = {0}, s;
        one[l] = 1.0;
        add_row(adj, mask, rr[l], 1.0, &one, 1u << l, &s);   /* 0 + 1.0 * 1.0 */
    }
    /* The row of the node visited next, as just computed: most nodes add
     * to the node made just before them, and loading it back from memory
     * right after storing it would put a store-to-load round trip (longer
     * for a whole 64-byte row) on every step of the chain. */
    pg_lanes next = {0};
    size_t next_row = SIZE_MAX;
    for (size_t j = t->ncode; j-- > 0;) {
        unsigned m = mask[j];
        if (!m)
            continue;   /* no lane reaches this node */
        pg_lanes g = j == next_row ? next : adj[j];
        const step sj = P->step[j];
        pg_lanes s0, s1;
        if (sj.row[0] >= 0) {
            add_row(adj, mask, sj.row[0], sj.part[0], &g, m, &s0);
            if (sj.row[1] >= 0) {
                add_row(adj, mask, sj.row[1], sj.part[1], &g, m, &s1);
                if ((size_t)sj.row[1] == j - 1) {
                    next = s1;
                    next_row = j - 1;
                    continue;
                }
            }
            if ((size_t)sj.row[0] == j - 1) {   /* (when both are, s1 is the newer) */
                next = s0;
                next_row = j - 1;
            }
            continue;
        }
        const operand *op = P->opd + (-1 - (int64_t)sj.row[0]), *end = op + sj.row[1];
        for (; op < end; op++)
            add_row(adj, mask, op->row, op->coef, &g, m, &s0);
    }
}

/* The sweeps, shared among workers: batches of eight roots taken in turn
 * (each batch's numbers depend on it alone, so any thread count gives the
 * same bits), each worker with its own rows. */
typedef struct job {
    const pg_tape *t;
    const plan *P;
    size_t nrows, nin;
    const int32_t *rr, *col;
    double *out;
    pg_lanes *adj[PG_MAX_THREADS];
    uint8_t *mask[PG_MAX_THREADS];
    atomic_size_t next;   /* the next batch's first root */
} job;

static void work(void *ctx, int w)
{
    job *J = ctx;
    size_t nroots = J->t->nroots;
    for (;;) {
        size_t r0 = atomic_fetch_add(&J->next, LANES);
        if (r0 >= nroots)
            return;
        size_t nl = nroots - r0 < LANES ? nroots - r0 : LANES;
        pg_lanes *adj = J->adj[w];
        uint8_t *mask = J->mask[w];
        sweep(J->t, J->P, adj, mask, J->nrows, J->rr + r0, nl);
        for (size_t l = 0; l < nl; l++)
            for (size_t c = 0; c < J->nin; c++) {   /* (a lane never reached: 0) */
                int32_t k = J->col[c];
                J->out[(r0 + l) * J->nin + c] = mask[k] >> l & 1 ? adj[k][l] : 0.0;
            }
    }
}

int pg_tape_jacobian(pg_tape *t, const pg_index *ins, size_t nin, double *out, int threads)
{
    pg_arena *a = t->a;
    size_t n = t->ncode, nrows = n + t->nleaf;
    int nt = threads > 0 ? threads : pg__pool_cores();
    size_t batches = (t->nroots + LANES - 1) / LANES;
    if (nt > PG_MAX_THREADS)
        nt = PG_MAX_THREADS;
    if ((size_t)nt > batches)
        nt = batches ? (int)batches : 1;
    pg_codemap m = {NULL, NULL, 64};
    while (m.cap < 2 * (nrows + 1))
        m.cap *= 2;
    m.key = malloc(m.cap * sizeof *m.key);
    m.code = malloc(m.cap * sizeof *m.code);
    plan P = {NULL, NULL};
    job J = {.t = t, .P = &P, .nrows = nrows, .nin = nin, .out = out};
    int32_t *col = malloc((nin + 1) * sizeof *col);
    int32_t *rr = malloc((t->nroots + 1) * sizeof *rr);
    int rc = m.key && m.code && col && rr ? PG_OK : PG_ENOMEM;
    for (int w = 0; w < nt && rc == PG_OK; w++) {
        J.adj[w] = aligned_alloc(sizeof(pg_lanes), (nrows + 1) * sizeof(pg_lanes));
        J.mask[w] = malloc(nrows + 1);
        if (!J.adj[w] || !J.mask[w])
            rc = PG_ENOMEM;
    }
    J.rr = rr;
    J.col = col;
    atomic_init(&J.next, 0);
    LOCK(a);   /* held throughout: a forward() elsewhere would change the partials */
    if (rc == PG_OK) {
        for (size_t s = 0; s < m.cap; s++)
            m.key[s] = PG_NONE;
        for (size_t j = 0; j < n; j++)
            pg__cm_put(&m, t->fwd[j].out, (int32_t)j);
        for (size_t q = 0; q < t->nleaf; q++)
            pg__cm_put(&m, t->leaf[q], (int32_t)(n + q));
        for (size_t c = 0; c < nin && rc == PG_OK; c++)
            if ((col[c] = pg__cm_get(&m, ins[c], -1)) < 0)
                rc = PG_EINVAL;   /* not a node of this tape */
        for (size_t r = 0; r < t->nroots; r++)
            rr[r] = pg__cm_get(&m, t->root[r], -1);
    }
    if (rc == PG_OK)
        rc = make_plan(t, &m, &P);
    if (rc == PG_OK && nt > 1 && !a->pool && !(a->pool = pg__pool_new()))
        nt = 1;   /* (no pool: this thread alone) */
    if (rc == PG_OK) {
        if (nt > 1)
            pg__pool_run(a->pool, nt, work, &J);
        else
            work(&J, 0);
    }
    UNLOCK(a);
    free(m.key);
    free(m.code);
    free(P.step);
    free(P.opd);
    free(col);
    free(rr);
    for (int w = 0; w < nt; w++) {
        free(J.adj[w]);
        free(J.mask[w]);
    }
    return rc;
}
