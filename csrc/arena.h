/* arena.h -- the arena's layout, shared by the library's .c files.
 * Not part of the public API (that is pygrad.h).
 *
 * Layout: structure of arrays.  Each field sits in its own dense array,
 * because a pass touches only some of them (the forward replay values, the
 * sweep grads and partials), and 8-byte columns stay in cache far longer
 * than a fat per-node struct would.  The columns are listed once, in
 * PG_COLUMNS below (46 bytes a node).  They are mapped pages of their own
 * (mmap), so that the pages of empty chunks can be handed back to the
 * system (see "Memory").  n-ary nodes (PG_SUM, PG_DOT) also own a malloc'd
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
 * Order: the backward pass needs no topological sort because a node's
 * position always follows its inputs'.  Positions: chunks of PG_CHUNK slots
 * are kept in a doubly linked list in the order they were started, and a
 * position is "later in the list, or a higher slot in the same chunk".  A
 * node that has inputs goes into the last chunk (the tail), above its
 * "frontier": after every live node with inputs, so the sweep meets such
 * nodes in the order they were made (and sums into a grad in that order,
 * whatever came and went before), and after its own inputs.  A leaf has no
 * inputs, so its position does not matter: a new leaf takes a free slot in
 * a partly used chunk first (a "hole"), and the sweeps never visit leaves
 * (a reached leaf gets its grad, and is not counted as pending).  When the
 * newest nodes die, the frontier moves back down, so a loop that rebuilds
 * its graph reuses the same slots.  Together that keeps memory proportional
 * to live nodes when long-lived nodes are scattered over many chunks (one
 * kept Value(loss.data) a training step, or a node made from it): later
 * leaves fill the holes around them, and later nodes the tail above them,
 * instead of leaving chunks 1023/1024 empty.  A chunk whose nodes all die goes on
 * a stack of empty chunks and is started again, at the end of the list,
 * when the tail is full.
 *
 * Memory: the pages of empty chunks are handed back to the system
 * (madvise) once more than PG_KEEP_EMPTY_BYTES of them pile up, so a
 * process that built one big graph and dropped it gets its memory back.
 */
#ifndef PYGRAD_ARENA_H
#define PYGRAD_ARENA_H

#include <pthread.h>
#include <string.h>
#include "pool.h"
#include "pygrad.h"

#define PG_CHUNK_BITS 10
#define PG_CHUNK (1u << PG_CHUNK_BITS)
#define PG_NONE PG_NONE_INDEX
/* Highest chunk count whose indices stay below PG_NONE. */
#define PG_MAX_CHUNKS ((uint32_t)((UINT32_MAX >> PG_CHUNK_BITS) - 1))
/* Empty chunks' pages kept mapped (reused first) before the rest are handed
 * back: a few MiB, so that a loop rebuilding its graph never pays a page
 * fault per node. */
#define PG_KEEP_EMPTY_BYTES ((size_t)16 << 20)

/* flags bits */
#define PG_MARK    0x01u   /* reached by the running sweep, not yet visited */
#define PG_SIDE    0x02u   /* Python keeps state for this node (side.c) */
#define PG_STORED  0x04u   /* d0 (and aux.d1) hold the local partials: a
                            * one- or two-input op (pg_nparts() > 0), kept
                            * here because the sweep reads flags anyway */
#define PG_LEAFNODE 0x08u  /* a leaf: the sweeps never mark or visit it */
#define PG_GEN     0xf0u   /* how many times the slot was handed out, mod 16:
                            * tells a node from a later one in its slot */
#define PG_GEN_STEP 0x10u

typedef struct pg_chunk {
    uint32_t used;      /* bump pointer: slots [0, used) have been handed out */
    uint32_t live;      /* how many of those are alive */
    uint32_t prev;      /* neighbours in creation order, PG_NONE at the ends */
    uint32_t next;
    uint32_t hprev;     /* neighbours in the list of chunks with holes */
    uint32_t hnext;
    uint64_t seq;       /* when the chunk was (re)started: orders chunks */
    uint64_t epoch;     /* data_epoch when it was (re)started: stored partials
                         * are current while no write has happened since */
    uint8_t  holey;     /* in the list of chunks with holes */
    uint8_t  released;  /* empty, and its pages handed back */
    uint64_t hole[PG_CHUNK / 64];   /* free slots below `used` (one bit each) */
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
 * Written once, here: the struct, growing, freeing, handing pages back and
 * the bytes-per-node figure are all generated from this list. */
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
    X(flags, uint8_t)  /* PG_MARK ... PG_GEN                             */

/* Bytes of one node slot across the columns (46). */
#define PG_COLUMN_SIZE(name, type) + sizeof(type)
#define PG_NODE_BYTES (0 PG_COLUMNS(PG_COLUMN_SIZE))

/* side.c: the keys Python keeps node state under (labels, Python ops),
 * an open-addressing map node -> key, and the queue of keys whose node
 * died, which Python reads (peek) and then drops (commit). */
typedef struct pg_side_entry {
    pg_index node;      /* PG_NONE: empty; PG_NONE - 1: deleted */
    uint64_t key;
} pg_side_entry;

typedef struct pg_side {
    pg_side_entry *map;
    size_t cap;         /* a power of two, or 0 */
    size_t count;       /* live entries */
    size_t used;        /* live + deleted entries */
    uint64_t *freed;    /* keys of dead nodes: [head, nfreed) queued */
    size_t head;
    size_t nfreed;
    size_t freed_cap;   /* kept >= count + queued, so freeing never allocates */
    uint64_t committed; /* keys dropped from the queue so far: a peek's mark */
} pg_side;

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
    uint32_t  frontier;      /* in the tail: the slot after its newest live
                              * node with inputs; such nodes go above */
    uint32_t  holey;         /* first chunk with holes, PG_NONE if none */
    uint32_t *free_chunks;   /* stack of empty chunks, capacity nchunks_cap */
    uint32_t  nfree_chunks;
    uint32_t  nresident;     /* empty chunks whose pages are still mapped */
    uint64_t  chunk_seq;     /* seq for the next chunk started */
    uint64_t  data_epoch;    /* bumped by every write to an existing value */

    size_t live;             /* live nodes */
    size_t list_bytes;       /* held by n-ary input lists */
    size_t limit;            /* max live nodes, 0 = none */

    pg_side side;
    pg_pool *pool;           /* worker threads for tape maps, or NULL */
    uint32_t forks;          /* pg_fork_child calls: a fork()ed child counts
                              * one more than its parent (map.c: calls in
                              * flight at the fork never end in the child) */

    struct {                 /* the sweep paused at a Python-defined node */
        int paused;
        uint32_t chunk;      /* it goes on in this chunk ... */
        uint32_t top;        /* ... below this slot */
        size_t pending;      /* marked nodes not yet visited */
    } sweep;
    /* Paused sweeps set aside while the Python code of one of them runs
     * sweeps of its own (pg_sweep_stash): a stack, the newest last. */
    struct pg_stashed *stash;
    size_t nstash, stash_cap;
};

struct pg_stashed {
    uint32_t chunk, top;     /* the paused sweep's place ... */
    size_t pending;          /* ... and its marked nodes: */
    pg_index *marked;        /* pending of them, marks cleared meanwhile */
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

/* True if node i's position is after node j's (both live). */
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

/* Marking, for the sweeps (the eager backward, tape recording, a
 * multi-root tape's backward): a reached node i that is not a leaf is flagged
 * and counted in *pending the first time.  Branch-free: whether i was
 * reached already is a coin toss in a DAG.  (Nothing else is kept per
 * mark: a count per chunk, which would let a walk skip chunks without
 * looking, cost the eager sweep a fifth of its time; pg__chunk_marked
 * looks instead, and only when a chunk starts.) */
static inline void pg__mark_in(uint8_t *flags, pg_index i, size_t *pending)
{
    uint8_t f = flags[i];
    unsigned fresh = !(f & (PG_MARK | PG_LEAFNODE));
    *pending += fresh;
    flags[i] = (uint8_t)(f | (fresh * PG_MARK));
}

/* The same, the flags column read from the arena.  (A hot loop holds the
 * column in a local and calls pg__mark_in: through the arena, every store
 * to a flag, a character type that C lets alias anything, makes the
 * compiler reload the column pointers, and a count kept in memory, before
 * their next use.) */
static inline void pg__mark(pg_arena *a, pg_index i, size_t *pending)
{
    pg__mark_in(a->flags, i, pending);
}

/* Clears the mark of node i, which is marked. */
static inline void pg__unmark(pg_arena *a, pg_index i, size_t *pending)
{
    a->flags[i] = (uint8_t)(a->flags[i] & ~PG_MARK);
    (*pending)--;
}

/* The walk over slots in reverse creation order, newest first, a chunk at
 * a time, for the sweeps, which visit the marked nodes:
 *
 *     pg_walk w = pg__walk_from(newest);
 *     while (pending && pg__walk_chunk(a, &w))
 *         for (uint32_t o = w.top; o-- > 0 && pending;) {
 *             pg_index i = w.base + o;
 *             ...
 *         }
 *
 * The first chunk is newest's, from newest down; each later one is the
 * chunk before in creation order, whole, skipping the chunks that hold no
 * marked node (so a sweep costs its graph's chunks, not the span of
 * unrelated live nodes between its nodes).  Free slots are walked too
 * (their flags are never marked).  The caller holds the lock for the whole
 * walk. */
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

/* Whether chunk c holds a marked node: its flags read 8 at a time (the
 * compiler makes it a few dozen vector loads, ~20 ns). */
static inline int pg__chunk_marked(const pg_arena *a, uint32_t c)
{
    const uint8_t *f = a->flags + (size_t)c * PG_CHUNK;
    uint64_t any = 0;
    for (uint32_t j = 0; j < PG_CHUNK; j += 8) {
        uint64_t word;
        memcpy(&word, f + j, 8);
        any |= word;
    }
    return (any & 0x0101010101010101ull * PG_MARK) != 0;
}

/* Moves the walk to its next chunk with a marked node (w->chunk, w->base,
 * w->top); 0 when no chunk is left. */
static inline int pg__walk_chunk(const pg_arena *a, pg_walk *w)
{
    uint32_t c = w->next;
    if (!w->first)
        while (c != PG_NONE && !pg__chunk_marked(a, c))
            c = a->chunks[c].prev;
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

/* collect.c: the nodes under roots[0..nroots): those with inputs in
 * node[0..n), newest first, and the leaves in leaf[0..nleaf), in no order.
 * PG_OK; PG_ETYPE if an op written in Python is among them (the lists are
 * complete all the same); PG_EINVAL (a dead root), PG_EBUSY (a sweep is
 * paused), PG_ENOMEM (then the lists are empty).  Marks left clear.  Free
 * the lists with pg__nodes_free. */
typedef struct pg_nodes {
    pg_index *node;
    size_t n, cap;
    pg_index *leaf;
    size_t nleaf, leaf_cap;
} pg_nodes;
int pg__collect(pg_arena *a, const pg_index *roots, size_t nroots, pg_nodes *s);
/* The same; with cut_python, an op written in Python is listed with the
 * nodes but what lies under it is not reached through it (no PG_ETYPE):
 * the gradient graph of pg_gradient_graph_cut stops there. */
int pg__collect_cut(pg_arena *a, const pg_index *roots, size_t nroots, pg_nodes *s,
                    int cut_python);
void pg__nodes_free(pg_nodes *s);

/* collect.c: appends x (size bytes) to a growable array; -1 (array
 * unchanged) if it cannot grow. */
int pg__push(void **arr, size_t *n, size_t *cap, size_t size, const void *x);

/* arena.c: a fresh slot with ref 1, grad 0, flags 0 but for PG_LEAFNODE
 * and its generation, or PG_NONE when out of memory / over the limit (arena
 * unchanged).  For a leaf pass after = PG_NONE; for any other node, its
 * newest input (the slot will come after it), or PG_NONE - 1 to go after
 * every position in use. */
#define PG_AFTER_ALL (PG_NONE - 1)
pg_index pg__alloc(pg_arena *a, pg_index after);

/* arena.c: notes that this thread just made node i for its caller, who is
 * to own it (pg_unclaimed). */
void pg__made(pg_arena *a, pg_index i);

/* ops.c: pg_op1/pg_op2 under the lock, inputs live (op checked by the
 * caller): the new node's index (one reference), its math error, or
 * PG_ENOMEM.  A leaf holding the value while gradients are off. */
int64_t pg__op(pg_arena *a, int op, pg_index x, pg_index y, double k);

/* ops.c: a fresh leaf holding value, or PG_NONE (arena unchanged). */
pg_index pg__leaf(pg_arena *a, double value);

/* arena.c: pg_decref under the lock. */
int pg__decref(pg_arena *a, pg_index i);

/* side.c: node i (flagged PG_SIDE) dies: its key moves to the queue. */
void pg__side_forget(pg_arena *a, pg_index i);
void pg__side_free(pg_side *s);
size_t pg__side_bytes(const pg_side *s);

#endif /* PYGRAD_ARENA_H */
