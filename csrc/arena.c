/* arena.c -- node storage and lifetime: allocation in chunks (holes for
 * leaves), reference counts, iterative freeing, handing empty chunks' pages
 * back, accessors, and the fork hooks.  The layout is described in arena.h.
 */
#define _GNU_SOURCE   /* mremap, MADV_DONTNEED, MAP_ANONYMOUS */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "arena.h"

pg_arena *pg_arena_new(void)
{
    pg_arena *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    if (pthread_mutex_init(&a->lock, NULL) != 0) {
        free(a);
        return NULL;
    }
    a->tail = PG_NONE;
    a->holey = PG_NONE;
    return a;
}

/* The columns are anonymous mappings: page-aligned, so that an empty
 * chunk's pages can be handed back (release_empty), and grown with mremap
 * where the system has it. */
static void unmap(void *p, size_t bytes)
{
    if (p)
        munmap(p, bytes);
}

void pg_arena_free(pg_arena *a)
{
    if (!a)
        return;
    for (uint32_t c = 0; c < a->nchunks; c++)
        for (uint32_t o = 0; o < a->chunks[c].used; o++) {
            pg_index i = (c << PG_CHUNK_BITS) | o;
            if (pg_has_list(a->op[i]))
                free(a->aux[i].list);
        }
    size_t n = (size_t)a->nchunks_cap * PG_CHUNK;
#define PG_UNMAP_COLUMN(name, type) unmap(a->name, n * sizeof(type));
    PG_COLUMNS(PG_UNMAP_COLUMN)
#undef PG_UNMAP_COLUMN
    free(a->chunks);
    free(a->free_chunks);
    pg__side_free(&a->side);
    pg__pool_free(a->pool);
    while (a->nstash > 0)
        free(a->stash[--a->nstash].marked);
    free(a->stash);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

/* *p (old bytes, or NULL) grown to `bytes`, contents kept; *p untouched
 * and -1 on failure. */
static int remap(void **p, size_t old, size_t bytes)
{
    void *q;
    if (!*p) {
        q = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    } else {
#ifdef MREMAP_MAYMOVE
        q = mremap(*p, old, bytes, MREMAP_MAYMOVE);
#else
        q = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (q != MAP_FAILED) {
            memcpy(q, *p, old);
            munmap(*p, old);
        }
#endif
    }
    if (q == MAP_FAILED)
        return -1;
    *p = q;
    return 0;
}

/* realloc that leaves *p untouched on failure. */
static int resize(void **p, size_t bytes)
{
    void *q = realloc(*p, bytes);
    if (!q)
        return -1;
    *p = q;
    return 0;
}

/* Doubles the chunk capacity.  Every array is resized before the capacity
 * is raised, so a failure half-way leaves some arrays merely larger than
 * needed: the arena stays consistent and unchanged in content.  (A
 * column's mapping is as large as `nchunks_cap` says or larger: remap
 * takes the old size from it.) */
static int grow(pg_arena *a)
{
    uint32_t cap = a->nchunks_cap ? a->nchunks_cap : 4;
    if (a->nchunks_cap) {
        if (a->nchunks_cap >= PG_MAX_CHUNKS)
            return -1;
        cap = a->nchunks_cap > PG_MAX_CHUNKS / 2 ? PG_MAX_CHUNKS
                                                 : a->nchunks_cap * 2;
    }
    size_t old = (size_t)a->nchunks_cap * PG_CHUNK;
    size_t n = (size_t)cap * PG_CHUNK;   /* < 2^32: cannot overflow size_t */
#define PG_REMAP_COLUMN(name, type) \
    remap((void **)&a->name, old * sizeof(type), n * sizeof(type)) ||
    if (PG_COLUMNS(PG_REMAP_COLUMN)
        resize((void **)&a->chunks, cap * sizeof(pg_chunk)) ||
        resize((void **)&a->free_chunks, cap * sizeof(uint32_t)))
        return -1;
#undef PG_REMAP_COLUMN
    a->nchunks_cap = cap;
    return 0;
}

/* The list of chunks with holes. */
static void holey_add(pg_arena *a, uint32_t c)
{
    pg_chunk *ch = &a->chunks[c];
    ch->holey = 1;
    ch->hprev = PG_NONE;
    ch->hnext = a->holey;
    if (a->holey != PG_NONE)
        a->chunks[a->holey].hprev = c;
    a->holey = c;
}

static void holey_remove(pg_arena *a, uint32_t c)
{
    pg_chunk *ch = &a->chunks[c];
    if (ch->hprev != PG_NONE)
        a->chunks[ch->hprev].hnext = ch->hnext;
    else
        a->holey = ch->hnext;
    if (ch->hnext != PG_NONE)
        a->chunks[ch->hnext].hprev = ch->hprev;
    ch->holey = 0;
}

/* Appends chunk c at the end of the creation order, empty. */
static void start_chunk(pg_arena *a, uint32_t c)
{
    pg_chunk *ch = &a->chunks[c];
    ch->used = 0;
    ch->live = 0;
    ch->prev = a->tail;
    ch->next = PG_NONE;
    memset(ch->hole, 0, sizeof ch->hole);
    ch->holey = 0;
    ch->released = 0;
    ch->seq = a->chunk_seq++;
    ch->epoch = a->data_epoch;
    if (a->tail != PG_NONE)
        a->chunks[a->tail].next = c;
    a->tail = c;
    a->frontier = 0;
    /* op == PG_FREE marks every slot dead until it is handed out */
    memset(a->op + (size_t)c * PG_CHUNK, PG_FREE, PG_CHUNK);
    memset(a->flags + (size_t)c * PG_CHUNK, 0, PG_CHUNK);
}

/* A new tail chunk: an empty one if any (its pages, if handed back, come
 * again as zeros), else a chunk never used.  -1 if there is none and the
 * arena cannot grow. */
static int new_tail(pg_arena *a)
{
    uint32_t c;
    if (a->nfree_chunks) {
        c = a->free_chunks[--a->nfree_chunks];
        if (!a->chunks[c].released)
            a->nresident--;
    } else {
        if (a->nchunks == a->nchunks_cap && grow(a) != 0)
            return -1;
        c = a->nchunks++;
    }
    start_chunk(a, c);
    return 0;
}

/* The lowest hole of chunk ch at slot `from` or above, or PG_NONE. */
static uint32_t hole_from(const pg_chunk *ch, uint32_t from)
{
    for (uint32_t w = from / 64; w < PG_CHUNK / 64; w++) {
        uint64_t bits = ch->hole[w];
        if (w == from / 64)
            bits &= ~(uint64_t)0 << (from % 64);
        if (bits) {
            uint32_t b = 0;
            while (!(bits & 1)) {   /* (a count-trailing-zeros instruction) */
                bits >>= 1;
                b++;
            }
            return w * 64 + b;
        }
    }
    return PG_NONE;
}

/* Slot o of chunk c, a hole, is taken. */
static void fill_hole(pg_arena *a, uint32_t c, uint32_t o)
{
    pg_chunk *ch = &a->chunks[c];
    ch->hole[o / 64] &= ~((uint64_t)1 << (o % 64));
    if (ch->live + 1 == ch->used)   /* that was its last hole */
        holey_remove(a, c);
}

/* A slot of the tail chunk at `from` or above: its lowest hole there, else
 * the next never-used slot, else slot 0 of a new tail chunk.  PG_NONE when
 * the arena cannot grow. */
static pg_index tail_slot(pg_arena *a, uint32_t from)
{
    if (a->tail == PG_NONE || from >= PG_CHUNK) {
        if (new_tail(a) != 0)
            return PG_NONE;
        from = 0;
    }
    pg_chunk *t = &a->chunks[a->tail];
    uint32_t o = from < t->used ? hole_from(t, from) : PG_NONE;
    if (o != PG_NONE) {
        fill_hole(a, a->tail, o);
    } else if (t->used < PG_CHUNK) {
        o = t->used++;   /* (from <= used: the frontier and every live
                          * input are below it) */
    } else {
        return tail_slot(a, PG_CHUNK);   /* the chunk is full */
    }
    return (a->tail << PG_CHUNK_BITS) | o;
}

pg_index pg__alloc(pg_arena *a, pg_index after)
{
    if (a->limit && a->live >= a->limit)
        return PG_NONE;
    pg_index i;
    if (after == PG_NONE) {
        /* a leaf: the lowest hole of the first chunk with holes, if any */
        uint32_t c = a->holey;
        if (c != PG_NONE) {
            uint32_t o = hole_from(&a->chunks[c], 0);
            fill_hole(a, c, o);
            i = (c << PG_CHUNK_BITS) | o;
        } else {
            i = tail_slot(a, a->tail == PG_NONE ? 0 : a->chunks[a->tail].used);
        }
    } else {
        /* after the frontier (every live node with inputs) and after its
         * newest input, which may be a leaf above the frontier */
        uint32_t from = a->frontier;
        if (a->tail != PG_NONE && (after >> PG_CHUNK_BITS) == a->tail &&
            (after & (PG_CHUNK - 1)) >= from)
            from = (after & (PG_CHUNK - 1)) + 1;
        i = tail_slot(a, from);
        if (i != PG_NONE)
            a->frontier = (i & (PG_CHUNK - 1)) + 1;
    }
    if (i == PG_NONE)
        return PG_NONE;
    a->chunks[i >> PG_CHUNK_BITS].live++;
    a->live++;
    a->grad[i] = 0.0;
    a->d0[i] = 0.0;
    a->aux[i].k = 0.0;
    a->in0[i] = a->in1[i] = PG_NONE;
    a->ref[i] = 1;
    a->flags[i] = (uint8_t)(((a->flags[i] & PG_GEN) + PG_GEN_STEP) |
                            (after == PG_NONE ? PG_LEAFNODE : 0));
    return i;
}

/* In the tail chunk, slot o was just freed: the frontier moves back past
 * it to just after the newest live node with inputs, and `used` back past
 * the free slots at its top (whose hole bits go), so that a loop that
 * rebuilds its graph reuses the same slots. */
static void rewind_tail(pg_arena *a, uint32_t o)
{
    pg_chunk *t = &a->chunks[a->tail];
    pg_index base = a->tail << PG_CHUNK_BITS;
    if (o + 1 == a->frontier) {
        uint32_t f = o;
        while (f > 0 && (a->op[base + f - 1] == PG_FREE ||
                         (a->flags[base + f - 1] & PG_LEAFNODE)))
            f--;
        a->frontier = f;
    }
    while (t->used > 0 && a->op[base + t->used - 1] == PG_FREE) {
        t->used--;
        t->hole[t->used / 64] &= ~((uint64_t)1 << (t->used % 64));
    }
    if (t->holey && t->live == t->used)
        holey_remove(a, a->tail);
}

/* For a range of chunks [c0, c1), every column's whole pages in it. */
static void release_pages(pg_arena *a, uint32_t c0, uint32_t c1)
{
#ifdef MADV_DONTNEED
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
#define PG_RELEASE_COLUMN(name, type) {                                     \
        uintptr_t lo = (uintptr_t)(a->name + (size_t)c0 * PG_CHUNK);          \
        uintptr_t hi = (uintptr_t)(a->name + (size_t)c1 * PG_CHUNK);          \
        lo = (lo + page - 1) / page * page;                                  \
        hi = hi / page * page;                                               \
        if (hi > lo)                                                         \
            madvise((void *)lo, hi - lo, MADV_DONTNEED);                     \
    }
    PG_COLUMNS(PG_RELEASE_COLUMN)
#undef PG_RELEASE_COLUMN
#else
    (void)a; (void)c0; (void)c1;
#endif
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

/* Hands back the pages of every empty chunk still mapped, in runs of
 * neighbouring chunks (so that the 1-byte columns' pages go too), and keeps
 * the stack's order otherwise: the free stack is sorted only in a copy. */
static void release_empty(pg_arena *a)
{
    uint32_t n = 0, *run = malloc(a->nresident * sizeof *run);
    if (!run)
        return;   /* keep the pages: it is only memory */
    for (uint32_t j = 0; j < a->nfree_chunks; j++) {
        uint32_t c = a->free_chunks[j];
        if (!a->chunks[c].released) {
            run[n++] = c;
            a->chunks[c].released = 1;
        }
    }
    qsort(run, n, sizeof *run, cmp_u32);
    for (uint32_t j = 0; j < n;) {
        uint32_t k = j + 1;
        while (k < n && run[k] == run[k - 1] + 1)
            k++;
        release_pages(a, run[j], run[k - 1] + 1);
        j = k;
    }
    a->nresident = 0;
    free(run);
}

/* Returns slot i to its chunk.  In a chunk still holding live nodes it
 * becomes a hole; an emptied chunk is recycled: the tail chunk simply
 * rewinds, since it is already last in creation order; any other leaves
 * the order list and waits on the stack of empty chunks. */
static void release_slot(pg_arena *a, pg_index i)
{
    uint32_t c = i >> PG_CHUNK_BITS;
    pg_chunk *ch = &a->chunks[c];
    if (a->flags[i] & PG_SIDE)
        pg__side_forget(a, i);
    if (pg_has_list(a->op[i])) {
        a->list_bytes -= sizeof(pg_list) + (size_t)a->in0[i] * sizeof(pg_index);
        free(a->aux[i].list);
    }
    a->op[i] = PG_FREE;
    a->flags[i] &= PG_GEN;
    a->live--;
    if (--ch->live) {
        uint32_t o = i & (PG_CHUNK - 1);
        ch->hole[o / 64] |= (uint64_t)1 << (o % 64);
        if (!ch->holey)
            holey_add(a, c);
        if (c == a->tail)
            rewind_tail(a, o);
        return;
    }
    if (ch->holey)
        holey_remove(a, c);
    memset(ch->hole, 0, sizeof ch->hole);
    if (c == a->tail) {
        ch->used = 0;
        a->frontier = 0;
        ch->epoch = a->data_epoch;   /* a fresh start: no stale partials */
        return;
    }
    if (ch->prev != PG_NONE)
        a->chunks[ch->prev].next = ch->next;
    if (ch->next != PG_NONE)
        a->chunks[ch->next].prev = ch->prev;
    a->free_chunks[a->nfree_chunks++] = c;
    if (++a->nresident > PG_KEEP_EMPTY_BYTES / (PG_CHUNK * PG_NODE_BYTES))
        release_empty(a);
}

/* Drops one reference on input c of a node being freed; at zero, c joins
 * the chain of nodes awaiting release. */
static inline void drop_input(pg_arena *a, pg_index c, pg_index *head)
{
    if (c != PG_NONE && --a->ref[c] == 0) {
        a->ref[c] = *head;
        *head = c;
    }
}

/* Frees node i whose count just reached zero, and every input that thereby
 * reaches zero.  Depth-unbounded graphs (a 10^7 chain) are freed without
 * recursion or allocation: nodes awaiting release are chained through their
 * own ref fields, which nobody reads once the count is zero. */
static void free_from(pg_arena *a, pg_index i)
{
    pg_index head = i;
    a->ref[i] = PG_NONE;
    while (head != PG_NONE) {
        pg_index n = head;
        head = a->ref[n];
        if (pg_has_list(a->op[n])) {
            const pg_index *list = a->aux[n].list->item;
            for (uint32_t j = 0; j < a->in0[n]; j++)
                drop_input(a, list[j], &head);
        } else {
            drop_input(a, a->in0[n], &head);
        }
        drop_input(a, a->in1[n], &head);
        release_slot(a, n);
    }
}

int pg_incref(pg_arena *a, pg_index i)
{
    int rc = PG_OK;
    LOCK(a);
    if (!pg__is_live(a, i))
        rc = PG_EINVAL;
    else if (a->ref[i] == PG_NONE - 1)   /* PG_NONE is the free-list end mark */
        rc = PG_ENOMEM;
    else
        a->ref[i]++;
    UNLOCK(a);
    return rc;
}

int pg__decref(pg_arena *a, pg_index i)
{
    if (!pg__is_live(a, i))
        return PG_EINVAL;
    if (--a->ref[i] == 0)
        free_from(a, i);
    return PG_OK;
}

int pg_decref(pg_arena *a, pg_index i)
{
    LOCK(a);
    int rc = pg__decref(a, i);
    UNLOCK(a);
    return rc;
}

size_t pg_decref_many(pg_arena *a, const pg_index *idx, size_t n)
{
    size_t ok = 0;
    LOCK(a);
    for (size_t j = 0; j < n; j++)
        ok += pg__decref(a, idx[j]) == PG_OK;
    UNLOCK(a);
    return ok;
}

/* The nodes this thread made most recently for a caller who is to own them
 * (pg_leaf, pg_op1, pg_op2, pg_sum, pg_dot), so that a result lost between
 * the call's return and the caller taking it (a signal handler raising in
 * between) can be found again: pg_unclaimed.  Per thread, and each entry
 * tells its node from a later one in the same slot by the chunk's start and
 * the slot's generation. */
#define PG_RECENT 16
static _Thread_local struct {
    const pg_arena *a;
    pg_index i;
    uint64_t seq;
    uint8_t gen;
} recent[PG_RECENT];
static _Thread_local unsigned recent_next;

void pg__made(pg_arena *a, pg_index i)
{
    unsigned k = recent_next++ % PG_RECENT;
    recent[k].a = a;
    recent[k].i = i;
    recent[k].seq = a->chunks[i >> PG_CHUNK_BITS].seq;
    recent[k].gen = a->flags[i] & PG_GEN;
}

size_t pg_unclaimed(pg_arena *a, pg_index *out, size_t cap)
{
    size_t n = 0;
    LOCK(a);
    for (unsigned k = 0; k < PG_RECENT; k++) {
        if (recent[k].a != a)
            continue;
        pg_index i = recent[k].i;
        recent[k].a = NULL;
        if (pg__is_live(a, i) && a->chunks[i >> PG_CHUNK_BITS].seq == recent[k].seq &&
            (a->flags[i] & PG_GEN) == recent[k].gen && a->ref[i] == 1 && n < cap)
            out[n++] = i;
    }
    UNLOCK(a);
    return n;
}

/* Accessors: one lock each, because a concurrent grow() may move the
 * arrays under an unlocked reader. */
#define GETTER(name, type, field, dead)                  \
    type name(pg_arena *a, pg_index i)                   \
    {                                                    \
        type r = (dead);                                 \
        LOCK(a);                                         \
        if (pg__is_live(a, i))                           \
            r = a->field[i];                             \
        UNLOCK(a);                                       \
        return r;                                        \
    }
GETTER(pg_data, double, val, NAN)
GETTER(pg_grad, double, grad, NAN)
GETTER(pg_opcode, int, op, -1)

double pg_constant(pg_arena *a, pg_index i)
{
    double k = NAN;
    LOCK(a);
    if (pg__is_live(a, i))
        k = pg_has_list(a->op[i]) ? a->aux[i].list->k : a->aux[i].k;
    UNLOCK(a);
    return k;
}

/* The two setters: node i's value (is_value) or grad becomes v. */
static int set_number(pg_arena *a, pg_index i, double v, int is_value)
{
    int rc = PG_EINVAL;
    LOCK(a);
    if (pg__is_live(a, i)) {
        if (is_value) {
            a->val[i] = v;
            pg__values_written(a);
        } else {
            a->grad[i] = v;
        }
        rc = PG_OK;
    }
    UNLOCK(a);
    return rc;
}

int pg_set_data(pg_arena *a, pg_index i, double v)
{
    return set_number(a, i, v, 1);
}

int pg_set_grad(pg_arena *a, pg_index i, double g)
{
    return set_number(a, i, g, 0);
}

/* Node i's inputs, as pg_inputs says; with `take`, each gains a reference
 * for the caller (all or none: PG_ENOMEM if a count would overflow). */
static int64_t inputs(pg_arena *a, pg_index i, pg_index *in, size_t cap, int take)
{
    if (!pg__is_live(a, i))
        return PG_EINVAL;
    int nary = pg_has_list(a->op[i]);
    /* n-ary: start node first, then the list; else in0, in1 */
    pg_index first = nary ? a->in1[i] : a->in0[i];
    int64_t n = 0;
    if (first != PG_NONE && (size_t)n < cap)
        in[n] = first;
    n += first != PG_NONE;
    if (nary) {
        for (uint32_t j = 0; j < a->in0[i]; j++, n++)
            if ((size_t)n < cap)
                in[n] = a->aux[i].list->item[j];
    } else if (a->in1[i] != PG_NONE) {
        if ((size_t)n < cap)
            in[n] = a->in1[i];
        n++;
    }
    if (take) {
        size_t m = (size_t)n < cap ? (size_t)n : cap;
        for (size_t j = 0; j < m; j++)
            if (a->ref[in[j]] >= PG_NONE - 1 - m)
                return PG_ENOMEM;
        for (size_t j = 0; j < m; j++)
            a->ref[in[j]]++;
    }
    return n;
}

int64_t pg_inputs(pg_arena *a, pg_index i, pg_index *in, size_t cap)
{
    LOCK(a);
    int64_t n = inputs(a, i, in, cap, 0);
    UNLOCK(a);
    return n;
}

int pg_take_inputs(pg_arena *a, pg_index i, pg_index *in, size_t cap, int64_t *n)
{
    LOCK(a);
    int64_t r = inputs(a, i, in, cap, 1);
    if (r >= 0)
        *n = r;
    UNLOCK(a);
    return r < 0 ? (int)r : PG_OK;
}

int64_t pg_ninputs(pg_arena *a, pg_index i)
{
    return pg_inputs(a, i, NULL, 0);
}

size_t pg_live_nodes(pg_arena *a)
{
    LOCK(a);
    size_t n = a->live;
    UNLOCK(a);
    return n;
}

size_t pg_capacity(pg_arena *a)
{
    LOCK(a);
    size_t n = (size_t)a->nchunks_cap * PG_CHUNK;
    UNLOCK(a);
    return n;
}

size_t pg_arena_bytes(pg_arena *a)
{
    LOCK(a);
    size_t released = 0;
    for (uint32_t j = 0; j < a->nfree_chunks; j++)
        released += a->chunks[a->free_chunks[j]].released;
    size_t n = sizeof *a +
               ((size_t)a->nchunks_cap - released) * PG_CHUNK * PG_NODE_BYTES +
               (size_t)a->nchunks_cap * (sizeof(pg_chunk) + sizeof(uint32_t)) +
               pg__side_bytes(&a->side) + a->list_bytes;
    UNLOCK(a);
    return n;
}

void pg_set_node_limit(pg_arena *a, size_t max_nodes)
{
    LOCK(a);
    a->limit = max_nodes;
    UNLOCK(a);
}

/* fork(): the child gets a copy of the arena as it was when fork was
 * called, and of the lock as it was, held by whichever thread held it,
 * which does not exist in the child.  So the forking thread takes the lock
 * first (pg_fork_prepare: no other thread is then inside a call, and the
 * arena is consistent), and both sides release it after. */
void pg_fork_prepare(pg_arena *a)
{
    LOCK(a);
}

void pg_fork_parent(pg_arena *a)
{
    UNLOCK(a);
}

void pg_fork_child(pg_arena *a)
{
    /* the thread that forked holds it, and is the child's only thread */
    if (a->pool)
        pg__pool_forget(a->pool);
    a->forks++;
    UNLOCK(a);
}
