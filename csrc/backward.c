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
    if (!pg_is_live(a, root)) {
        UNLOCK(a);
        return PG_EINVAL;
    }
    uint8_t *flags = a->flags;

    a->grad[root] = 1.0;
    flags[root] |= PG_MARK;
    size_t pending = 1;
    uint32_t c = root >> PG_CHUNK_BITS;
    uint32_t top = (root & (PG_CHUNK - 1)) + 1;   /* slots [0, top) to scan */

    while (pending) {
        pg_index base = c << PG_CHUNK_BITS;
        /* stored partials are current unless a value was written since
         * this chunk started (arena.h) */
        int fresh = a->chunks[c].epoch == a->data_epoch;
        for (uint32_t o = top; o-- > 0 && pending;) {
            pg_index i = base + o;
            if (!(flags[i] & PG_MARK))
                continue;
            flags[i] &= (uint8_t)~PG_MARK;
            pending--;
            pg_propagate(a, i, fresh, &pending);
        }
        if (!pending)
            break;
        /* Marked nodes remain, so they are older: an earlier chunk exists
         * and, being live and not the tail, has used > 0. */
        c = a->chunks[c].prev;
        top = a->chunks[c].used;
    }
    UNLOCK(a);
    return PG_OK;
}
