/* backward.c -- the reverse sweep.
 *
 * No topological sort: creation order is already one (an input is always
 * created before the node using it, and arena.h keeps creation order
 * walkable: chunks in a linked list, slots in a chunk in index order).  So we
 * walk backwards from the root, and a node whose MARK flag is set (it was
 * reached from the root) passes its grad on to its inputs and marks them.
 * `pending` counts marked nodes not yet visited; at zero the walk stops.
 * Leaves are never marked (their grad is all they get), and the walk skips
 * chunks holding no marked node, so the cost is the graph's, not that of
 * the unrelated nodes between its nodes (arena.h).  Flags are cleared as
 * nodes are visited, so nothing is left to reset.
 */
#include <stdlib.h>
#include "sweep.h"

/* How many slots ahead of the walk the far input's grad and flags are
 * prefetched.  On a graph just built, its nodes' lines have mostly left
 * the cache by the time backward runs (Python's objects for the same nodes
 * push them out: reading 16 MB evicts a 1e5-node graph here), and the sweep
 * waited on a miss at every edge that jumps far back; the walk knows those
 * edges long before it reaches them.  (16 to 64 measure the same.) */
#define PG_EAGER_AHEAD 32
/* ... when the arena spans this many chunks at least: a smaller one stays in
 * the cache, and the prefetches only cost (dag 1e4: 7.1 -> 8.2 ns/node). */
#define PG_EAGER_PREFETCH_CHUNKS 32
#if defined(__GNUC__)
#define PG_PREFETCH_W(p) __builtin_prefetch((p), 1)
#else
#define PG_PREFETCH_W(p) ((void)(p))
#endif

/* The carry: most nodes' input 0 is the node made just before, the next
 * one the walk visits, and adding to its grad in memory only for the next
 * step to load it again puts a store-to-load round trip on every step of
 * the chain.  So that add waits in a register (carry, for node carry_to)
 * and is done when the walk reaches carry_to -- or before anything else
 * touches a grad, so every grad still gets its adds in the same order, and
 * the same bits. */
typedef struct sweep_state {
    size_t pending;       /* marked nodes not yet visited */
    double carry;
    pg_index carry_to;    /* PG_NONE: no carry */
} sweep_state;

/* One chunk of the walk, its slots from w->top down.  With `python`, it
 * stops at a Python-defined node and returns it, w->top left where the
 * walk goes on; otherwise such nodes pass nothing on.  PG_NONE otherwise.
 * `fresh` says whether the chunk's stored partials are current (arena.h).
 * Both are constants at every call, so the compiler makes a loop for each
 * case, and a fresh chunk's -- the common one -- tests no epoch per node
 * (dag, 1e5 and 1e6 nodes: 7.3-7.8 -> 6.8-7.2 ns a node with the prefetch
 * change below, -> 6.5-6.9 with both; AMD EPYC, 2026-12-07).  The count
 * and the columns are locals whose address never leaves this function
 * (the slow path counts in a variable of its own), for the reason given
 * at pg__mark (arena.h). */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline pg_index sweep_chunk(pg_arena *a, pg_walk *w, sweep_state *st, int fresh,
                                   int python)
{
    size_t pending = st->pending;
    double carry = st->carry;
    pg_index carry_to = st->carry_to;
    pg_index stop = PG_NONE;
    double *const grad = a->grad;
    uint8_t *const flags = a->flags;
    const double *const d0 = a->d0;
    const pg_aux *const aux = a->aux;
    const pg_index *const in0 = a->in0, *const in1 = a->in1;
    const pg_index live_end = a->nchunks << PG_CHUNK_BITS;
    const uint32_t ahead = a->nchunks >= PG_EAGER_PREFETCH_CHUNKS ? PG_EAGER_AHEAD : PG_CHUNK;
    for (uint32_t o = w->top; o-- > 0 && pending;) {
        pg_index i = w->base + o;
        if (o >= ahead) {
            /* both inputs of the slot AHEAD below (a leaf's or a missing
             * input, PG_NONE, reads as i; a free slot's stale inputs and an
             * n-ary node's count name a line that is fetched for nothing,
             * harmlessly: a prefetch never faults).  Picking the one that is
             * not the slot just below it, which the walk is about to touch
             * anyway, halves the prefetches but puts a load and a compare
             * before them: 6.8-7.2 against 7.3-7.8 ns a node, dag 1e5..1e6. */
            pg_index p = i - PG_EAGER_AHEAD;
            pg_index p0 = in0[p], p1 = in1[p];
            p0 = p0 < live_end ? p0 : i;
            p1 = p1 < live_end ? p1 : i;
            PG_PREFETCH_W(&grad[p1]);
            PG_PREFETCH_W(&flags[p1]);
            PG_PREFETCH_W(&grad[p0]);
            PG_PREFETCH_W(&flags[p0]);
        }
        uint8_t f = flags[i];
        if (!(f & PG_MARK))
            continue;
        flags[i] = (uint8_t)(f & ~PG_MARK);
        pending--;
        /* i's grad, complete: the carry meant for it added in a register,
         * or a carry meant for another node (one the walk did not reach
         * next: input 0 in the chunk before) flushed */
        double g = grad[i];
        if (carry_to == i) {
            g += carry;
            grad[i] = g;
        } else if (carry_to != PG_NONE) {
            grad[carry_to] += carry;
        }
        carry_to = PG_NONE;
        if (fresh && (f & PG_STORED)) {
            /* stored partials, current: two multiply-adds and no per-op
             * branch; a one-input node sends -0.0, which leaves any sum
             * unchanged, to input 0 a second time */
            pg_index i0 = in0[i], i1 = in1[i];
            int two = i1 != PG_NONE;
            double c0 = d0[i] * g;
            if (i0 == i - 1 && i1 != i0 && !(flags[i0] & PG_LEAFNODE)) {
                carry = c0;   /* (+ -0.0 for a one-input op: no change) */
                carry_to = i0;
                pg__mark_in(flags, i0, &pending);
                if (two) {
                    grad[i1] += aux[i].d1 * g;
                    pg__mark_in(flags, i1, &pending);
                }
            } else {
                grad[i0] += c0;
                pg__mark_in(flags, i0, &pending);
                double c = aux[i].d1 * g;          /* garbage for one-input ops */
                pg_index j = two ? i1 : i0;
                grad[j] += two ? c : -0.0;
                pg__mark_in(flags, j, &pending);
            }
            continue;
        }
        size_t counted = pending;   /* its address goes to the step */
        int is_python = pg_propagate(a, i, &counted);
        pending = counted;
        if (is_python && python) {
            w->top = o;              /* go on below i, in i's chunk */
            w->next = w->chunk;
            w->first = 1;
            stop = i;
            break;
        }
    }
    st->pending = pending;
    st->carry = carry;
    st->carry_to = carry_to;
    return stop;
}

/* The sweep itself, from walk w with *pending marked nodes: sweep_chunk
 * over the walk's chunks.  PG_NONE when the sweep is done, else the
 * Python-defined node it stopped at (with `python`).  Inlined into each
 * caller (`python` a constant there). */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline pg_index run(pg_arena *a, pg_walk *w, size_t *pending_at, int python)
{
    sweep_state st = {*pending_at, 0.0, PG_NONE};
    pg_index stop = PG_NONE;
    while (st.pending && stop == PG_NONE && pg__walk_chunk(a, w)) {
        if (a->chunks[w->chunk].epoch == a->data_epoch)
            stop = sweep_chunk(a, w, &st, 1, python);
        else
            stop = sweep_chunk(a, w, &st, 0, python);
    }
    if (st.carry_to != PG_NONE)
        a->grad[st.carry_to] += st.carry;
    *pending_at = st.pending;
    return stop;
}

/* Starts a sweep from root: root.grad = 1, root marked (a leaf root stays
 * unmarked: nothing to do); the walk from root. */
static pg_walk start(pg_arena *a, pg_index root, size_t *pending)
{
    a->grad[root] = 1.0;
    *pending = 0;
    pg__mark(a, root, pending);
    return pg__walk_from(root);
}

int pg_backward(pg_arena *a, pg_index root)
{
    LOCK(a);
    int rc = PG_OK;
    if (a->sweep.paused) {
        rc = PG_EBUSY;
    } else if (!pg__is_live(a, root)) {
        rc = PG_EINVAL;
    } else {
        size_t pending;
        pg_walk w = start(a, root, &pending);
        run(a, &w, &pending, 0);
    }
    UNLOCK(a);
    return rc;
}

int pg_sweep(pg_arena *a, pg_index root, pg_index *node)
{
    LOCK(a);
    int rc = PG_OK;
    size_t pending = 0;
    pg_walk w;
    if (root != PG_NONE) {
        if (a->sweep.paused)
            rc = PG_EBUSY;
        else if (!pg__is_live(a, root))
            rc = PG_EINVAL;
        else
            w = start(a, root, &pending);
    } else if (!a->sweep.paused) {
        rc = PG_EINVAL;
    } else {
        pending = a->sweep.pending;
        w = (pg_walk){PG_NONE, 0, a->sweep.top, a->sweep.chunk, 1};
        a->sweep.paused = 0;
    }
    if (rc == PG_OK) {
        pg_index i = run(a, &w, &pending, 1);
        if (i != PG_NONE) {
            a->sweep.paused = 1;
            a->sweep.chunk = w.next;
            a->sweep.top = w.top;
            a->sweep.pending = pending;
            *node = i;
            rc = PG_PYTHON;
        }
    }
    UNLOCK(a);
    return rc;
}

/* Clears the paused sweep's marks, each node's index into out[] when out
 * is not NULL (room for sweep.pending), and unpauses it.  Returns how many
 * it found (sweep.pending, unless something cleared marks meanwhile). */
static size_t unmark_paused(pg_arena *a, pg_index *out)
{
    size_t pending = a->sweep.pending, n = 0;
    pg_walk w = {PG_NONE, 0, a->sweep.top, a->sweep.chunk, 1};
    while (pending && pg__walk_chunk(a, &w))
        for (uint32_t o = w.top; o-- > 0 && pending;)
            if (a->flags[w.base + o] & PG_MARK) {
                pg__unmark(a, w.base + o, &pending);
                if (out)
                    out[n] = w.base + o;
                n++;
            }
    a->sweep.paused = 0;
    return n;
}

void pg_sweep_abort(pg_arena *a)
{
    LOCK(a);
    if (a->sweep.paused)
        unmark_paused(a, NULL);
    UNLOCK(a);
}

/* Room for one more stashed sweep; 0, or -1 when out of memory. */
static int stash_room(pg_arena *a)
{
    if (a->nstash < a->stash_cap)
        return 0;
    size_t cap = a->stash_cap ? 2 * a->stash_cap : 4;
    struct pg_stashed *grown = realloc(a->stash, cap * sizeof *grown);
    if (!grown)
        return -1;
    a->stash = grown;
    a->stash_cap = cap;
    return 0;
}

int pg_sweep_stash(pg_arena *a)
{
    LOCK(a);
    int rc = PG_OK;
    pg_index *marked = NULL;
    if (!a->sweep.paused) {
        rc = PG_EINVAL;
    } else if (stash_room(a) != 0 ||
               !(marked = malloc((a->sweep.pending + 1) * sizeof *marked))) {
        rc = PG_ENOMEM;
    } else {
        struct pg_stashed *st = &a->stash[a->nstash++];
        st->chunk = a->sweep.chunk;
        st->top = a->sweep.top;
        st->marked = marked;
        st->pending = unmark_paused(a, marked);   /* (the entries written) */
    }
    UNLOCK(a);
    return rc;
}

int pg_sweep_unstash(pg_arena *a)
{
    LOCK(a);
    int rc = PG_OK;
    if (a->sweep.paused) {
        rc = PG_EBUSY;
    } else if (a->nstash == 0) {
        rc = PG_EINVAL;
    } else {
        /* Its nodes are alive: the root of the stashed sweep is held by
         * whoever runs it, and every node it marked is under that root. */
        struct pg_stashed *st = &a->stash[--a->nstash];
        size_t pending = 0;
        for (size_t j = 0; j < st->pending; j++)
            pg__mark(a, st->marked[j], &pending);
        free(st->marked);
        a->sweep.paused = 1;
        a->sweep.chunk = st->chunk;
        a->sweep.top = st->top;
        a->sweep.pending = pending;
    }
    UNLOCK(a);
    return rc;
}

void pg_sweep_reset(pg_arena *a)
{
    LOCK(a);
    if (a->sweep.paused)
        unmark_paused(a, NULL);
    while (a->nstash > 0)
        free(a->stash[--a->nstash].marked);
    UNLOCK(a);
}

int pg_local_backward(pg_arena *a, pg_index i)
{
    LOCK(a);
    int rc = PG_OK;
    if (!pg__is_live(a, i))
        rc = PG_EINVAL;
    else if (pg_is_python(a->op[i]))
        rc = PG_PYTHON;
    else   /* from the values, as a micrograd closure reads .data */
        pg_step_back(a, a->op[i], a->in0[i], a->in1[i], a->aux[i], a->val[i],
                     a->grad[i], 0, NULL);
    UNLOCK(a);
    return rc;
}
