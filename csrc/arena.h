/* arena.h -- the arena's layout, shared by the library's .c files.
 * Not part of the public API (that is pygrad.h).
 *
 * Layout: structure of arrays.  Each field sits in its own dense array,
 * because a pass touches only some of them (the forward replay values, the
 * sweep grads and partials), and 8-byte columns stay in cache far longer
 * than a fat per-node struct would.
 * Per node: val 8 + grad 8 + d0 8 + aux 8 + in0 4 + in1 4 + ref 4 + op 1
 * + flags 1 = 46 bytes.  n-ary nodes (PG_SUM, PG_DOT) also own a malloc'd
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
#define PG_NONE UINT32_MAX   /* == PG_NONE_INDEX */
/* Highest chunk count whose indices stay below PG_NONE. */
#define PG_MAX_CHUNKS ((uint32_t)((UINT32_MAX >> PG_CHUNK_BITS) - 1))

/* flags bits */
#define PG_MARK    0x01u   /* reached by the running backward sweep */
#define PG_LABELED 0x02u   /* Python keeps a label for this index */

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

struct pg_arena {
    pthread_mutex_t lock;

    /* per node, capacity = nchunks_cap * PG_CHUNK entries each */
    double   *val;
    double   *grad;
    double   *d0;     /* dv/d input 0, stored at creation */
    pg_aux   *aux;    /* dv/d input 1, constant operand, or n-ary list */
    pg_index *in0;
    pg_index *in1;
    uint32_t *ref;    /* reference count; while a node is being freed, a link */
    uint8_t  *op;
    uint8_t  *flags;

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

#define LOCK(a)   pthread_mutex_lock(&(a)->lock)
#define UNLOCK(a) pthread_mutex_unlock(&(a)->lock)

/* Whether op keeps its inputs in a list (aux.list), not in in0/in1. */
static inline int pg_is_nary(int op)
{
    return op == PG_SUM || op == PG_DOT;
}

static inline int pg_is_live(const pg_arena *a, pg_index i)
{
    return (i >> PG_CHUNK_BITS) < a->nchunks && a->op[i] != PG_FREE;
}

/* arena.c: under the lock.  Returns a fresh slot with ref 1, flags 0, grad 0,
 * or PG_NONE when out of memory / over the limit (arena unchanged). */
pg_index pg__alloc(pg_arena *a);

/* ops.c: pg_leaf under the lock: a fresh leaf holding value, or PG_NONE
 * (arena unchanged). */
pg_index pg__leaf(pg_arena *a, double value);

/* arena.c: pg_decref for callers already holding the lock. */
int pg__decref_locked(pg_arena *a, pg_index i);

/* bulk.c: PG_OK if every idx[0..n) is live, else PG_EINVAL.  Under the lock. */
int pg__all_live(const pg_arena *a, const pg_index *idx, size_t n);


/* True if node i was created after node j (both live). */
static inline int pg_newer(const pg_arena *a, pg_index i, pg_index j)
{
    uint64_t ci = a->chunks[i >> PG_CHUNK_BITS].seq;
    uint64_t cj = a->chunks[j >> PG_CHUNK_BITS].seq;
    return ci != cj ? ci > cj : i > j;
}

#endif /* PYGRAD_ARENA_H */
