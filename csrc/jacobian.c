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
 * Rows: each node's adjoints, eight doubles, one cache line, in slots that
 * rows share (below).  The sweep reads a plan of the tape, laid out on the
 * first call and kept with the tape (memory: 32 bytes an instruction,
 * 16 an n-ary operand): its structure is the tape's, fixed at compile
 * time; its partials and factors are refreshed from the last forward at
 * every call.
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

/* The row in slot r, reached by lanes m, gets k * g in those lanes (the
 * others keep their bits); the new row into *out, and stored.  A row no
 * lane has reached yet is all zeros (a sweep starts with its slots zeroed,
 * and zeroes a slot when it is given up: "Slots" below).  (Vectors by
 * pointer: by value, GCC warns that the baseline's calling convention for
 * them differs, though it is inlined.) */
static inline void add_row(pg_lanes *adj, uint8_t *mask, int32_t r, double k,
                           const pg_lanes *g, unsigned m, pg_lanes *out)
{
    pg_lanes old = adj[r];
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

/* One operand of an n-ary instruction: its slot (a row, while the plan is
 * laid out), and the factor its adjoint gets: 1.0, or a dot's other value
 * (that node's, `other`; PG_NONE for 1.0). */
typedef struct operand {
    int32_t slot;
    pg_index other;
    double coef;
} operand;

/* What the sweep reads of instruction j, 32 bytes: the slot of its own
 * row (below; -1 when no root reaches it), the slots of its one or two
 * inputs' rows (slot[1] < 0 for one) and their partials, in the order
 * backward_marked adds to them.  An n-ary instruction has slot[0] = -1 - k
 * and slot[1] = c: its operands are opd[k .. k+c).  (The sweep streams
 * through these once per eight roots: fewer bytes here were a fifth of a
 * sweep on a big tape.) */
typedef struct step {
    int32_t self;
    int32_t slot[2];
    int32_t unused;
    double part[2];
} step;

/* Slots.  A row is needed from the sweep's first add to it until its node
 * is visited, so rows share slots as registers do: a node's slot is free
 * again once the node has read it, and the next row first reached takes
 * it.  On the moons MLP's gradient tape (128,902 nodes) at most ~7,300
 * rows are needed at once: 470 KB a thread instead of 8 MB (so a
 * ten-million-node tape needs no 640 MB a thread).  The rows that are
 * never given up are pinned, slots 0 .. npin-1: the inputs' (read after
 * the sweep) and the leaves' (never visited).  Every other slot is zeroed
 * as it is given up, while in cache, so a row first reached is zero with
 * no question asked, and a sweep leaves all but the pinned slots zero:
 * those it clears itself, the ones it touched. */
struct pg_jplan {
    step *step;            /* ncode */
    operand *opd;
    int32_t nslots, npin;
    int32_t *root_slot;    /* per root */
    pg_index *ins;         /* the inputs the plan pins ... */
    int32_t *col_slot;     /* ... and their slots (-1: not in the tape) */
    size_t nin;
    int absent;            /* an input is not in the tape */
};

void pg__jplan_free(pg_jplan *P)
{
    if (!P)
        return;
    free(P->step);
    free(P->opd);
    free(P->root_slot);
    free(P->ins);
    free(P->col_slot);
    free(P);
}

/* Instruction j's operands' rows (from m) into its step; *k counts n-ary
 * operands.  0, or -1 for an operand not in the tape. */
static int operands(const pg_tape *t, const pg_codemap *m, size_t j, const pg_list *l,
                    pg_jplan *P, size_t *k)
{
    const pg_step e = t->fwd[j];
    int o = t->op[j] & PG_OPMASK;
    step *sj = &P->step[j];
    int bad = 0;
    if (pg_is_nary(o)) {   /* the start, then the list, as sweep.h */
        uint32_t cnt = e.in0;
        size_t k0 = *k;
        if (e.in1 != PG_NONE)
            P->opd[(*k)++] = (operand){pg__cm_get(m, e.in1, -1), PG_NONE, 1.0};
        if (o == PG_SUM) {
            for (uint32_t q = 0; q < cnt; q++)
                P->opd[(*k)++] = (operand){pg__cm_get(m, l->item[q], -1), PG_NONE, 1.0};
        } else {   /* w[q] gets x[q]'s value, then x[q] gets w[q]'s */
            for (uint32_t q = 0; q < cnt / 2; q++) {
                pg_index w = l->item[q], x = l->item[cnt / 2 + q];
                P->opd[(*k)++] = (operand){pg__cm_get(m, w, -1), x, 0.0};
                P->opd[(*k)++] = (operand){pg__cm_get(m, x, -1), w, 0.0};
            }
        }
        for (size_t q = k0; q < *k; q++)
            bad |= P->opd[q].slot < 0;
        *sj = (step){-1, {(int32_t)(-1 - (int64_t)k0), (int32_t)(*k - k0)}, 0, {0.0, 0.0}};
    } else {
        *sj = (step){-1, {pg__cm_get(m, e.in0, -1), -1}, 0, {0.0, 0.0}};
        bad |= sj->slot[0] < 0;
        if (pg_arity(o) == 2) {
            sj->slot[1] = pg__cm_get(m, e.in1, -1);
            bad |= sj->slot[1] < 0;
        }
    }
    return bad ? -1 : 0;
}

/* The slot of row r, given one if it has none. */
static int32_t slot_for(int32_t *slot_of, int32_t r, int32_t *free_slots, size_t *nfree,
                        int32_t *nslots)
{
    if (slot_of[r] < 0)
        slot_of[r] = *nfree ? free_slots[--*nfree] : (*nslots)++;
    return slot_of[r];
}

/* Slots for the rows (see "Slots"), in the sweep's order: the inputs' and
 * the roots' first, then, node by node from the last, the node's slot
 * given up and its operands' taken.  Rows become slots in the steps.
 * PG_OK or PG_ENOMEM. */
static int give_slots(const pg_tape *t, pg_jplan *P, const int32_t *root_row,
                      const int32_t *col_row)
{
    size_t n = t->ncode, nrows = n + t->nleaf, nfree = 0;
    int32_t *slot_of = malloc((nrows + 1) * sizeof *slot_of);
    int32_t *free_slots = malloc((nrows + 1) * sizeof *free_slots);
    int rc = slot_of && free_slots ? PG_OK : PG_ENOMEM;
    if (rc == PG_OK) {
        int32_t ns = 0;
        for (size_t r = 0; r < nrows; r++)
            slot_of[r] = -1;
        for (size_t c = 0; c < P->nin; c++)
            P->col_slot[c] = col_row[c] < 0 ? -1   /* not in the tape: 0 */
                             : slot_for(slot_of, col_row[c], free_slots, &nfree, &ns);
        for (size_t q = 0; q < t->nleaf; q++)
            slot_for(slot_of, (int32_t)(n + q), free_slots, &nfree, &ns);
        P->npin = ns;
        for (size_t r = 0; r < t->nroots; r++)
            P->root_slot[r] = slot_for(slot_of, root_row[r], free_slots, &nfree, &ns);
        for (size_t j = n; j-- > 0;) {
            step *sj = &P->step[j];
            sj->self = slot_of[j];
            if (sj->self < 0)
                continue;   /* no root reaches it: nor its operands through it */
            if (sj->self >= P->npin)
                free_slots[nfree++] = sj->self;
            if (sj->slot[0] >= 0) {
                sj->slot[0] = slot_for(slot_of, sj->slot[0], free_slots, &nfree, &ns);
                if (sj->slot[1] >= 0)
                    sj->slot[1] = slot_for(slot_of, sj->slot[1], free_slots, &nfree, &ns);
            } else {
                operand *op = P->opd + (-1 - (int64_t)sj->slot[0]), *end = op + sj->slot[1];
                for (; op < end; op++)
                    op->slot = slot_for(slot_of, op->slot, free_slots, &nfree, &ns);
            }
        }
        P->nslots = ns;
    }
    free(slot_of);
    free(free_slots);
    return rc;
}

/* A new plan of tape t for the inputs ins[0..nin), under the lock; its
 * partials not yet set (refresh).  PG_OK or PG_ENOMEM. */
static int make_plan(const pg_tape *t, const pg_index *ins, size_t nin, pg_jplan **out)
{
    size_t n = t->ncode, nrows = n + t->nleaf, nopd = 0;
    for (size_t j = 0; j < n; j++) {
        int o = t->op[j] & PG_OPMASK;
        if (pg_is_nary(o))
            nopd += t->fwd[j].in0 + (t->fwd[j].in1 != PG_NONE);
    }
    pg_jplan *P = calloc(1, sizeof *P);
    pg_codemap m;
    int have_map = pg__cm_init(&m, nrows) == 0;
    int32_t *col_row = malloc((nin + 1) * sizeof *col_row);
    int32_t *root_row = malloc((t->nroots + 1) * sizeof *root_row);
    int rc = P && have_map && col_row && root_row ? PG_OK : PG_ENOMEM;
    if (rc == PG_OK) {
        P->nin = nin;
        P->step = malloc((n + 1) * sizeof *P->step);
        P->opd = malloc((nopd + 1) * sizeof *P->opd);
        P->root_slot = malloc((t->nroots + 1) * sizeof *P->root_slot);
        P->ins = malloc((nin + 1) * sizeof *P->ins);
        P->col_slot = malloc((nin + 1) * sizeof *P->col_slot);
        if (!P->step || !P->opd || !P->root_slot || !P->ins || !P->col_slot)
            rc = PG_ENOMEM;
    }
    if (rc == PG_OK) {
        memcpy(P->ins, ins, nin * sizeof *ins);
        for (size_t j = 0; j < n; j++)
            pg__cm_put(&m, t->fwd[j].out, (int32_t)j);
        for (size_t q = 0; q < t->nleaf; q++)
            pg__cm_put(&m, t->leaf[q], (int32_t)(n + q));
        for (size_t c = 0; c < nin && rc == PG_OK; c++)
            if ((col_row[c] = pg__cm_get(&m, ins[c], -1)) < 0)
                P->absent = 1;   /* not a node of this tape */
        for (size_t r = 0; r < t->nroots; r++)
            root_row[r] = pg__cm_get(&m, t->root[r], -1);
    }
    if (rc == PG_OK) {
        pg_list *const *lp = t->list;
        size_t k = 0;
        int bad = 0;
        for (size_t j = 0; j < n; j++)
            bad |= operands(t, &m, j, pg_is_nary(t->op[j] & PG_OPMASK) ? *lp++ : NULL, P, &k);
        if (bad)
            rc = PG_EINVAL;   /* (cannot happen: a tape holds its nodes' inputs) */
    }
    if (rc == PG_OK)
        rc = give_slots(t, P, root_row, col_row);
    pg__cm_free(&m);
    free(col_row);
    free(root_row);
    if (rc != PG_OK) {
        pg__jplan_free(P);
        P = NULL;
    }
    *out = P;
    return rc;
}

/* The plan's numbers from the tape's last forward (under the lock): the
 * partials, chained input's first (tape.h), and the dots' factors, the
 * values now, as the scalar sweep reads them. */
static void refresh(const pg_tape *t, pg_jplan *P)
{
    const double *val = t->a->val;
    const double *d = t->d;
    for (size_t j = 0; j < t->ncode; j++) {
        int o = t->op[j] & PG_OPMASK;
        step *sj = &P->step[j];
        if (pg_is_nary(o)) {
            operand *op = P->opd + (-1 - (int64_t)sj->slot[0]), *end = op + sj->slot[1];
            for (; op < end; op++)
                if (op->other != PG_NONE)
                    op->coef = val[op->other];
        } else {
            int two = pg_arity(o) == 2;
            int swapped = (t->op[j] & PG_CHAIN1) != 0;
            sj->part[0] = d[swapped && two];
            sj->part[1] = two ? d[!swapped] : 0.0;
        }
        d += pg_nparts(o);
    }
}

/* One sweep, for roots r0 .. r0+nl-1 in lanes 0 .. nl-1, from all slots
 * zero.  A row is one AVX-512 register, four on the baseline (clones.h). */
PG_CLONES static void sweep(const pg_tape *t, const pg_jplan *P, pg_lanes *adj, uint8_t *mask,
                            size_t r0, size_t nl)
{
    for (size_t l = 0; l < nl; l++) {
        pg_lanes one = {0}, s;
        one[l] = 1.0;
        add_row(adj, mask, P->root_slot[r0 + l], 1.0, &one, 1u << l, &s);   /* 0 + 1.0 * 1.0 */
    }
    /* The row of the node visited next, as just computed: most nodes add
     * to the node made just before them, and loading it back from memory
     * right after storing it would put a store-to-load round trip (longer
     * for a whole 64-byte row) on every step of the chain. */
    pg_lanes next = {0};
    int32_t next_slot = -1;
    const step *steps = P->step;
    const int32_t npin = P->npin;
    for (size_t j = t->ncode; j-- > 0;) {
        const step sj = steps[j];
        if (sj.self < 0)
            continue;   /* no root reaches this node */
        unsigned m = mask[sj.self];
        if (!m)
            continue;   /* no lane of this sweep does */
        pg_lanes g = sj.self == next_slot ? next : adj[sj.self];
        next_slot = -1;
        if (sj.self >= npin) {   /* the slot is free again (see "Slots") */
            mask[sj.self] = 0;
            adj[sj.self] = (pg_lanes){0};
        }
        pg_lanes s0, s1;
        if (sj.slot[0] >= 0) {
            int32_t want = j ? steps[j - 1].self : -1;   /* the next node's slot */
            add_row(adj, mask, sj.slot[0], sj.part[0], &g, m, &s0);
            if (sj.slot[1] >= 0) {
                add_row(adj, mask, sj.slot[1], sj.part[1], &g, m, &s1);
                if (sj.slot[1] == want) {
                    next = s1;
                    next_slot = want;
                    continue;
                }
            }
            if (sj.slot[0] == want) {   /* (when both are, s1 is the newer) */
                next = s0;
                next_slot = want;
            }
            continue;
        }
        const operand *op = P->opd + (-1 - (int64_t)sj.slot[0]), *end = op + sj.slot[1];
        for (; op < end; op++)
            add_row(adj, mask, op->slot, op->coef, &g, m, &s0);
    }
}

/* The sweeps, shared among workers: batches of eight roots taken in turn
 * (each batch's numbers depend on it alone, so any thread count gives the
 * same bits), each worker with its own rows. */
typedef struct job {
    const pg_tape *t;
    const pg_jplan *P;
    size_t nin;
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
        sweep(J->t, J->P, adj, mask, r0, nl);
        double *out = J->out + r0 * J->nin;
        for (size_t c = 0; c < J->nin; c++) {   /* (a lane never reached: 0) */
            int32_t k = J->P->col_slot[c];
            if (k < 0) {   /* not in the tape */
                for (size_t l = 0; l < nl; l++)
                    out[l * J->nin + c] = 0.0;
                continue;
            }
            pg_lanes row = adj[k];
            unsigned mk = mask[k];
            for (size_t l = 0; l < nl; l++)
                out[l * J->nin + c] = mk >> l & 1 ? row[l] : 0.0;
        }
        for (int32_t k = 0; k < J->P->npin; k++)   /* all slots zero again */
            if (mask[k]) {
                mask[k] = 0;
                adj[k] = (pg_lanes){0};
            }
    }
}

/* Whether plan P pins exactly the inputs ins[0..nin). */
static int same_inputs(const pg_jplan *P, const pg_index *ins, size_t nin)
{
    return P->nin == nin && memcmp(P->ins, ins, nin * sizeof *ins) == 0;
}

/* pg_tape_jacobian; an input not in the tape is PG_EINVAL when `strict`,
 * else a column of zeros (pg_jacobian). */
static int tape_jacobian(pg_tape *t, const pg_index *ins, size_t nin, double *out,
                         int threads, int strict)
{
    pg_arena *a = t->a;
    int nt = threads > 0 ? threads : pg__pool_cores();
    size_t batches = (t->nroots + LANES - 1) / LANES;
    if (nt > PG_MAX_THREADS)
        nt = PG_MAX_THREADS;
    if ((size_t)nt > batches)
        nt = batches ? (int)batches : 1;
    job J = {.t = t, .nin = nin, .out = out};
    atomic_init(&J.next, 0);
    int rc = PG_OK;
    LOCK(a);   /* held throughout: a forward() elsewhere would change the partials */
    /* (a dead index is PG_NONE, the node map's empty key: looked up, it
     * found an empty slot's unwritten row) */
    rc = pg__all_live(a, ins, nin);
    if (rc == PG_OK && (!t->jplan || !same_inputs(t->jplan, ins, nin))) {
        pg_jplan *P;
        rc = make_plan(t, ins, nin, &P);
        if (rc == PG_OK) {   /* (a failed plan leaves the old one) */
            pg__jplan_free(t->jplan);
            t->jplan = P;
        }
    }
    if (rc == PG_OK && strict && t->jplan->absent)
        rc = PG_EINVAL;
    if (rc == PG_OK) {
        J.P = t->jplan;
        refresh(t, t->jplan);
    }
    for (int w = 0; w < nt && rc == PG_OK; w++) {   /* each thread's rows */
        size_t ns = (size_t)J.P->nslots + 1;
        J.adj[w] = aligned_alloc(sizeof(pg_lanes), ns * sizeof(pg_lanes));
        J.mask[w] = calloc(ns, 1);
        if (!J.adj[w] || !J.mask[w])
            rc = PG_ENOMEM;
        else
            memset(J.adj[w], 0, ns * sizeof(pg_lanes));
    }
    if (rc == PG_OK && nt > 1 && !a->pool && !(a->pool = pg__pool_new()))
        nt = 1;   /* (no pool: this thread alone) */
    if (rc == PG_OK) {
        if (nt > 1)
            pg__pool_run(a->pool, nt, work, &J);
        else
            work(&J, 0);
    }
    UNLOCK(a);
    for (int w = 0; w < PG_MAX_THREADS; w++) {   /* (nt may have dropped to 1) */
        free(J.adj[w]);
        free(J.mask[w]);
    }
    return rc;
}

int pg_tape_jacobian(pg_tape *t, const pg_index *ins, size_t nin, double *out, int threads,
                     int absent_ok)
{
    return tape_jacobian(t, ins, nin, out, threads, !absent_ok);
}

/* A tape of the outputs, for the one call: compiling costs a small
 * fraction of the sweeps it saves (on the moons MLP's gradient, 5 ms
 * against 100 ms of one sweep per output).  Its partials are compile
 * time's, from the values now, as pg_gradient's sweep reads them. */
int pg_jacobian(pg_arena *a, const pg_index *outs, size_t nout, const pg_index *ins,
                size_t nin, double *out, int threads)
{
    LOCK(a);
    int rc = pg__all_live(a, ins, nin);
    UNLOCK(a);
    if (rc != PG_OK)
        return rc;
    pg_tape *t;
    rc = pg_compile(a, outs, nout, &t);
    if (rc != PG_OK)
        return rc;
    rc = tape_jacobian(t, ins, nin, out, threads, 0);
    pg_tape_free(t);
    return rc;
}
