/* backward.c -- the reverse sweep.
 *
 * No topological sort: creation order is already one (an input is always
 * created before the node using it, and arena.h keeps creation order
 * walkable: chunks in a linked list, slots in a chunk in index order).  So we
 * walk backwards from the root, and a node whose MARK flag is set (it was
 * reached from the root) passes its grad on to its inputs and marks them.
 * `pending` counts marked nodes not yet visited; at zero the walk stops, so
 * the cost is the span between the root and its oldest input, not the arena.
 * Flags are cleared as nodes are visited, so nothing is left to reset.
 */
#include "sweep.h"

int pg_backward(pg_arena *a, pg_index root)
{
    LOCK(a);
    if (!pg__is_live(a, root)) {
        UNLOCK(a);
        return PG_EINVAL;
    }
    uint8_t *flags = a->flags;
    a->grad[root] = 1.0;
    flags[root] |= PG_MARK;
    size_t pending = 1;
    pg_walk w = pg__walk_from(root);
    /* Marked nodes are older than every node visited so far, so while any
     * is pending an earlier chunk exists: the walk ends with pending. */
    while (pending && pg__walk_chunk(a, &w)) {
        /* stored partials are current unless a value was written since
         * this chunk started (arena.h) */
        int fresh = a->chunks[w.chunk].epoch == a->data_epoch;
        for (uint32_t o = w.top; o-- > 0 && pending;) {
            pg_index i = w.base + o;
            uint8_t f = flags[i];
            if (!(f & PG_MARK))
                continue;
            flags[i] = (uint8_t)(f & ~PG_MARK);
            pending--;
            pg_propagate(a, i, fresh && (f & PG_STORED), &pending);
        }
    }
    UNLOCK(a);
    return PG_OK;
}
