/* arena.h -- the arena's layout, shared by the library's .c files.
 * Not part of the public API (that is pygrad.h).
 *
 * Layout: structure of arrays.  Each field sits in its own dense array,
 * because a pass touches only some of them (the forward replay values, the
 * sweep grads and partials), and 8-byte columns stay in cache far longer
 * than a fat per-node struct would.
 * The columns are listed once, in PG_COLUMNS below (46 bytes a node).
 * n-ary nodes (PG_SUM, PG_DOT) also own a malloc'd
 * input list: aux.list holds in0 entries (for PG_DOT w[0..n) then x[0..n),
 * in0 = 2n), and in1 is the start node or PG_NONE.
 *
 * Stored partials: a node's local derivatives are computed when it is made
 * (d0 = dv/d input 0; for two-input ops aux.d1 = dv/d input 1), so that the
 * backward sweep is a multiply-add per edge with no per-op switch, whose
 * mispredictions on a random mix of ops cost more than the arithmetic.  They
 * go stale when a value they were computed from is overwritten (.data =,
 * bulk writes, optimizer steps, tape replays): every such write bumps
 * data_epoch, and a chunk started before the latest write has its partials
 * recomputed from the values, as micrograd's closures would, during the
 * sweep.
 *
 * Order: the backward pass needs no topological sort because an index's
 * position in "creation order" always follows its inputs'.  Nodes are
 * bump-allocated inside chunks of PG_CHUNK slots, and chunks are kept in a
 * doubly linked list in the order they were started.  A chunk is reused only
 * once every node in it is dead, and it is then appended at the end of the
 * list, so "later in the list, or later in the same chunk" is exactly
 * "created later".  Freed slots inside a partly live chunk stay empty until
 * the whole chunk empties (the price of that guarantee).
 */
#ifndef PYGRAD_ARENA_H
#define PYGRAD_ARENA_H

#include <pthread.h>
#include "pygrad.h"

#define PG_CHUNK_BITS 10
#define PG_CHUNK (1u << PG_CHUNK_BITS)
#define PG_NONE PG_NONE_INDEX
/* Highest chunk count whose indices stay below PG_NONE. */
#define PG_MAX_CHUNKS ((uint32_t)((UINT32_MAX >> PG_CHUNK_BITS) - 1))

/* flags bits */
#define PG_MARK    0x01u   /* reached by the running backward sweep */
#define PG_LABELED 0x02u   /* Python keeps a label for this index */
#define PG_STORED  0x04u   /* d0 (and aux.d1) hold the local partials: a
                            * one- or two-input op (pg_nparts() > 0), kept
                            * here because the sweep reads flags anyway */

typedef struct pg_chunk {
    uint32_t used;   /* bump pointer: slots [0, used) have been handed out */
    uint32_t live;   /* how many of those are alive */
    uint32_t prev;   /* neighbours in creation order, PG_NONE at the ends */
    uint32_t next;
    uint64_t seq;    /* when the chunk was (re)started: orders chunks */
    uint64_t epoch;  /* data_epoch when it was (re)started: stored partials
                      * are current while no write has happened since */
} pg_chunk;

/* An n-ary node's inputs (in0 of them) and its constant start. */
typedef struct pg_list {
    double k;           /* the start value when in1 is PG_NONE */
    pg_index item[];
} pg_list;

/* Per op kind: the partial dv/d input 1 (two-input ops), the constant k
 * (one-input ops; 0 where unused), or the input list (n-ary ops). */
typedef union pg_aux {
    double d1;
    double k;
    pg_list *list;
} pg_aux;

/* The arena's per-node columns, each a dense array of capacity entries.
 * Written once, here: the struct, growing, freeing and the bytes-per-node
 * figure are all generated from this list. */
/*   column  type      per node                                            */
#define PG_COLUMNS(X)                                                       \
    X(val,   double)   /* value                                          */ \
    X(grad,  double)   /* grad                                           */ \
    X(d0,    double)   /* dv/d input 0, stored at creation               */ \
    X(aux,   pg_aux)   /* dv/d input 1, constant operand, or n-ary list  */ \
    X(in0,   pg_index) /* input 0 (n-ary: how many list entries)         */ \
    X(in1,   pg_index) /* input 1 (n-ary: the start node)                */ \
    X(ref,   uint32_t) /* reference count; while being freed, a link     */ \
    X(op,    uint8_t)  /* enum pg_op                                     */ \
    X(flags, uint8_t)  /* PG_MARK, PG_LABELED, PG_STORED                 */

/* Bytes of one node slot across the columns (46). */
#define PG_COLUMN_SIZE(name, type) + sizeof(type)
#define PG_NODE_BYTES (0 PG_COLUMNS(PG_COLUMN_SIZE))

struct pg_arena {
    pthread_mutex_t lock;

    /* per node, capacity = nchunks_cap * PG_CHUNK entries each */
#define PG_COLUMN_FIELD(name, type) type *name;
    PG_COLUMNS(PG_COLUMN_FIELD)
#undef PG_COLUMN_FIELD

    pg_chunk *chunks;        /* nchunks_cap entries, nchunks ever started */
    uint32_t  nchunks;
    uint32_t  nchunks_cap;
    uint32_t  tail;          /* chunk taking new nodes; last in creation order */
    uint32_t *free_chunks;   /* stack of empty chunks, capacity nchunks_cap */
    uint32_t  nfree_chunks;
    uint64_t  chunk_seq;     /* seq for the next chunk started */
    uint64_t  data_epoch;    /* bumped by every write to an existing value */

    size_t live;             /* live nodes */
    size_t list_bytes;       /* held by n-ary input lists */
    size_t limit;            /* max live nodes, 0 = none */

    /* freed labeled nodes awaiting pg_drain_freed_labels(); capacity is kept
     * >= labeled count so freeing never has to allocate */
    pg_index *freed_labels;
    size_t    nfreed_labels;
    size_t    freed_labels_cap;
    size_t    nlabeled;      /* live labeled + queued */
};

/* Naming: a function or macro whose name starts with pg__ (two
 * underscores) is internal and must be called with the arena's lock held;
 * the public pg_* functions of pygrad.h take the lock themselves. */
#define LOCK(a)   pthread_mutex_lock(&(a)->lock)
#define UNLOCK(a) pthread_mutex_unlock(&(a)->lock)

/* Whether i names a live node. */
static inline int pg__is_live(const pg_arena *a, pg_index i)
{
    return (i >> PG_CHUNK_BITS) < a->nchunks && a->op[i] != PG_FREE;
}

/* PG_OK if every idx[0..n) is live, else PG_EINVAL. */
static inline int pg__all_live(const pg_arena *a, const pg_index *idx, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (!pg__is_live(a, idx[j]))
            return PG_EINVAL;
    return PG_OK;
}

/* True if node i was created after node j (both live). */
static inline int pg__newer(const pg_arena *a, pg_index i, pg_index j)
{
    uint64_t ci = a->chunks[i >> PG_CHUNK_BITS].seq;
    uint64_t cj = a->chunks[j >> PG_CHUNK_BITS].seq;
    return ci != cj ? ci > cj : i > j;
}

/* A value was overwritten: stored partials computed from the old one are
 * stale (see "Stored partials" above). */
static inline void pg__values_written(pg_arena *a)
{
    a->data_epoch++;
}

/* The walk over slots in reverse creation order, newest first, a chunk at
 * a time (the backward sweep and tape recording both walk this way):
 *
 *     pg_walk w = pg__walk_from(newest);
 *     while (pending && pg__walk_chunk(a, &w))
 *         for (uint32_t o = w.top; o-- > 0 && pending;) {
 *             pg_index i = w.base + o;
 *             ...
 *         }
 *
 * The first chunk is newest's, from newest down; each later one is the
 * chunk before in creation order, whole.  Freed slots are walked too (their
 * flags are 0).  The caller holds the lock for the whole walk. */
typedef struct pg_walk {
    uint32_t chunk;   /* the chunk being walked */
    pg_index base;    /* index of its slot 0 */
    uint32_t top;     /* its slots [0, top) are walked */
    uint32_t next;    /* the chunk to walk next, PG_NONE when none is left */
    int      first;   /* next is newest's chunk, walked from newest down */
} pg_walk;

static inline pg_walk pg__walk_from(pg_index newest)
{
    pg_walk w = {PG_NONE, 0, (newest & (PG_CHUNK - 1)) + 1,
                 newest >> PG_CHUNK_BITS, 1};
    return w;
}

/* Moves the walk to its next chunk (w->chunk, w->base, w->top); 0 when no
 * chunk is left. */
static inline int pg__walk_chunk(const pg_arena *a, pg_walk *w)
{
    uint32_t c = w->next;
    if (c == PG_NONE)
        return 0;
    w->chunk = c;
    w->base = c << PG_CHUNK_BITS;
    if (!w->first)
        w->top = a->chunks[c].used;
    w->first = 0;
    w->next = a->chunks[c].prev;
    return 1;
}

/* arena.c: a fresh slot with ref 1, flags 0, grad 0, or PG_NONE when out of
 * memory / over the limit (arena unchanged). */
pg_index pg__alloc(pg_arena *a);

/* ops.c: a fresh leaf holding value, or PG_NONE (arena unchanged). */
pg_index pg__leaf(pg_arena *a, double value);

/* arena.c: pg_decref under the lock. */
int pg__decref(pg_arena *a, pg_index i);

#endif /* PYGRAD_ARENA_H */
