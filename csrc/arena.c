/* arena.c -- node storage and lifetime: allocation in chunks, reference
 * counts, iterative freeing, accessors.  The layout is described in arena.h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
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
    return a;
}

void pg_arena_free(pg_arena *a)
{
    if (!a)
        return;
    for (uint32_t c = 0; c < a->nchunks; c++)
        for (uint32_t o = 0; o < PG_CHUNK; o++) {
            pg_index i = (c << PG_CHUNK_BITS) | o;
            if (pg_is_nary(a->op[i]))
                free(a->aux[i].list);
        }
#define PG_FREE_COLUMN(name, type) free(a->name);
    PG_COLUMNS(PG_FREE_COLUMN)
#undef PG_FREE_COLUMN
    free(a->chunks);
    free(a->free_chunks);
    free(a->freed_labels);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

/* realloc that leaves *p untouched on failure.  n*size is checked for
 * overflow by the caller (grow()). */
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
 * needed: the arena stays consistent and unchanged in content. */
static int grow(pg_arena *a)
{
    uint32_t cap = a->nchunks_cap ? a->nchunks_cap : 4;
    if (a->nchunks_cap) {
        if (a->nchunks_cap >= PG_MAX_CHUNKS)
            return -1;
        cap = a->nchunks_cap > PG_MAX_CHUNKS / 2 ? PG_MAX_CHUNKS
                                                 : a->nchunks_cap * 2;
    }
    size_t n = (size_t)cap * PG_CHUNK;   /* < 2^32: cannot overflow size_t */
#define PG_RESIZE_COLUMN(name, type) resize((void **)&a->name, n * sizeof(type)) ||
    if (PG_COLUMNS(PG_RESIZE_COLUMN)
        resize((void **)&a->chunks, cap * sizeof(pg_chunk)) ||
        resize((void **)&a->free_chunks, cap * sizeof(uint32_t)))
        return -1;
#undef PG_RESIZE_COLUMN
    a->nchunks_cap = cap;
    return 0;
}

/* Appends chunk c at the end of the creation order, empty. */
static void start_chunk(pg_arena *a, uint32_t c)
{
    pg_chunk *ch = &a->chunks[c];
    ch->used = 0;
    ch->live = 0;
    ch->prev = a->tail;
    ch->next = PG_NONE;
    ch->seq = a->chunk_seq++;
    ch->epoch = a->data_epoch;
    if (a->tail != PG_NONE)
        a->chunks[a->tail].next = c;
    a->tail = c;
    /* op == PG_FREE marks every slot dead until it is handed out */
    memset(a->op + (size_t)c * PG_CHUNK, PG_FREE, PG_CHUNK);
    memset(a->flags + (size_t)c * PG_CHUNK, 0, PG_CHUNK);
}

pg_index pg__alloc(pg_arena *a)
{
    if (a->limit && a->live >= a->limit)
        return PG_NONE;
    if (a->tail == PG_NONE || a->chunks[a->tail].used == PG_CHUNK) {
        uint32_t c;
        if (a->nfree_chunks) {
            c = a->free_chunks[--a->nfree_chunks];
        } else {
            if (a->nchunks == a->nchunks_cap && grow(a) != 0)
                return PG_NONE;
            c = a->nchunks++;
        }
        start_chunk(a, c);
    }
    pg_chunk *ch = &a->chunks[a->tail];
    pg_index i = (a->tail << PG_CHUNK_BITS) | ch->used;
    ch->used++;
    ch->live++;
    a->live++;
    a->grad[i] = 0.0;
    a->d0[i] = 0.0;
    a->aux[i].k = 0.0;
    a->in0[i] = a->in1[i] = PG_NONE;
    a->ref[i] = 1;
    a->flags[i] = 0;
    return i;
}

/* Returns slot i to its chunk; an emptied chunk is recycled.  The tail chunk
 * simply rewinds, since it is already last in creation order; any other
 * leaves the order list and waits on the free stack. */
static void release_slot(pg_arena *a, pg_index i)
{
    uint32_t c = i >> PG_CHUNK_BITS;
    pg_chunk *ch = &a->chunks[c];
    if (a->flags[i] & PG_LABELED)   /* capacity reserved by pg_mark_labeled */
        a->freed_labels[a->nfreed_labels++] = i;
    if (pg_is_nary(a->op[i])) {
        a->list_bytes -= sizeof(pg_list) + (size_t)a->in0[i] * sizeof(pg_index);
        free(a->aux[i].list);
    }
    a->op[i] = PG_FREE;
    a->flags[i] = 0;
    a->live--;
    if (--ch->live)
        return;
    if (c == a->tail) {
        ch->used = 0;
        ch->epoch = a->data_epoch;   /* a fresh start: no stale partials */
        return;
    }
    if (ch->prev != PG_NONE)
        a->chunks[ch->prev].next = ch->next;
    if (ch->next != PG_NONE)
        a->chunks[ch->next].prev = ch->prev;
    a->free_chunks[a->nfree_chunks++] = c;
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
        if (pg_is_nary(a->op[n])) {
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

/* Accessors: one lock each, because a concurrent grow() may move the
 * arrays under an unlocked reader. */
#define GETTER(name, type, field, dead)                  \
    type name(pg_arena *a, pg_index i)                   \
    {                                                    \
        type r = (dead);                                 \
        LOCK(a);                                         \
        if (pg__is_live(a, i))                            \
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
        k = pg_is_nary(a->op[i]) ? a->aux[i].list->k : a->aux[i].k;
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

int64_t pg_inputs(pg_arena *a, pg_index i, pg_index *in, size_t cap)
{
    int64_t n = PG_EINVAL;
    LOCK(a);
    if (pg__is_live(a, i)) {
        int nary = pg_is_nary(a->op[i]);
        /* n-ary: start node first, then the list; else in0, in1 */
        pg_index first = nary ? a->in1[i] : a->in0[i];
        n = 0;
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
    }
    UNLOCK(a);
    return n;
}

int64_t pg_ninputs(pg_arena *a, pg_index i)
{
    return pg_inputs(a, i, NULL, 0);
}

int pg_mark_labeled(pg_arena *a, pg_index i)
{
    int rc = PG_OK;
    LOCK(a);
    if (!pg__is_live(a, i)) {
        rc = PG_EINVAL;
    } else if (!(a->flags[i] & PG_LABELED)) {
        /* Reserve the queue slot now, so that freeing never allocates. */
        if (a->nlabeled == a->freed_labels_cap) {
            size_t cap = a->freed_labels_cap ? a->freed_labels_cap * 2 : 64;
            if (cap > SIZE_MAX / sizeof(pg_index) ||
                resize((void **)&a->freed_labels, cap * sizeof(pg_index)))
                rc = PG_ENOMEM;
            else
                a->freed_labels_cap = cap;
        }
        if (rc == PG_OK) {
            a->flags[i] |= PG_LABELED;
            a->nlabeled++;
        }
    }
    UNLOCK(a);
    return rc;
}

size_t pg_drain_freed_labels(pg_arena *a, pg_index *out, size_t cap)
{
    LOCK(a);
    size_t n = a->nfreed_labels < cap ? a->nfreed_labels : cap;
    /* take from the end: the rest stays queued for the next call */
    a->nfreed_labels -= n;
    if (n)   /* freed_labels may still be NULL: memcpy from NULL is UB */
        memcpy(out, a->freed_labels + a->nfreed_labels, n * sizeof(pg_index));
    a->nlabeled -= n;
    UNLOCK(a);
    return n;
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
    size_t n = sizeof *a + (size_t)a->nchunks_cap * PG_CHUNK * PG_NODE_BYTES +
               (size_t)a->nchunks_cap * (sizeof(pg_chunk) + sizeof(uint32_t)) +
               a->freed_labels_cap * sizeof(pg_index) + a->list_bytes;
    UNLOCK(a);
    return n;
}

void pg_set_node_limit(pg_arena *a, size_t max_nodes)
{
    LOCK(a);
    a->limit = max_nodes;
    UNLOCK(a);
}
