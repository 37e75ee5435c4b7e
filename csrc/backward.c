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
#include "sweep.h"

int pg_backward(pg_arena *a, pg_index root)
{
    LOCK(a);
    if (!pg__is_live(a, root)) {
        UNLOCK(a);
        return PG_EINVAL;
    }
    a->grad[root] = 1.0;
    size_t pending = 0;
    pg__mark(a, root, &pending);   /* (a leaf root stays unmarked: done) */
    pg_walk w = pg__walk_from(root);
    /* Marked nodes are older than every node visited so far, so while any
     * is pending an earlier chunk holding one exists. */
    while (pending && pg__walk_chunk(a, &w)) {
        /* stored partials are current unless a value was written since
         * this chunk started (arena.h) */
        int fresh = a->chunks[w.chunk].epoch == a->data_epoch;
        for (uint32_t o = w.top; o-- > 0 && pending;) {
            pg_index i = w.base + o;
            uint8_t f = a->flags[i];
            if (!(f & PG_MARK))
                continue;
            pg__unmark(a, i, &pending);
            pg_propagate(a, i, fresh && (f & PG_STORED), &pending);
        }
    }
    UNLOCK(a);
    return PG_OK;
}
