/* side.c -- the keys under which Python keeps state for a node (a label, a
 * Python-defined op's backward): a map from node to key, and a queue of the
 * keys whose node died.
 *
 * Why keys and not the node index: an index is reused once its node dies,
 * and a Python dict keyed by index could then show a dead node's label on
 * a new node if Python missed the death (an exception, Ctrl-C, between
 * learning of it and acting on it).  Keys are never reused, so a stale
 * entry is only unreachable memory, and Python removes it when it reads the
 * queue.  The queue is read in two steps, peek then commit, so that an
 * interrupt between the two only means the same keys are read again.
 *
 * Memory: the map is open addressing with linear probing, grown (under the
 * lock, rarely) when three quarters full; the queue's capacity is kept at
 * least the number of keys that can ever be queued, so that freeing a node
 * never allocates.
 */
#include <stdlib.h>
#include <string.h>
#include "arena.h"

#define DELETED (PG_NONE - 1)

static size_t slot_of(const pg_side *s, pg_index node)
{
    return ((uint32_t)node * 2654435761u) & (s->cap - 1);
}

/* The map entry of node, or NULL. */
static pg_side_entry *find(const pg_side *s, pg_index node)
{
    if (!s->cap)
        return NULL;
    for (size_t j = slot_of(s, node);; j = (j + 1) & (s->cap - 1)) {
        if (s->map[j].node == node)
            return &s->map[j];
        if (s->map[j].node == PG_NONE)
            return NULL;
    }
}

static void put(pg_side *s, pg_index node, uint64_t key)
{
    size_t j = slot_of(s, node);
    while (s->map[j].node != PG_NONE && s->map[j].node != DELETED)
        j = (j + 1) & (s->cap - 1);
    s->used += s->map[j].node == PG_NONE;
    s->map[j].node = node;
    s->map[j].key = key;
    s->count++;
}

/* Room for one more entry and one more queued key; -1 (nothing changed)
 * when memory runs out. */
static int reserve(pg_side *s)
{
    size_t queued = s->nfreed - s->head;
    if (s->count + queued + 1 > s->freed_cap) {
        if (s->head) {   /* move the queue to the front first */
            memmove(s->freed, s->freed + s->head, queued * sizeof *s->freed);
            s->nfreed = queued;
            s->head = 0;
        }
        size_t cap = s->freed_cap ? 2 * s->freed_cap : 64;
        uint64_t *q = realloc(s->freed, cap * sizeof *q);
        if (!q)
            return -1;
        s->freed = q;
        s->freed_cap = cap;
    }
    if (4 * (s->used + 1) > 3 * s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        while (4 * (s->count + 1) > 3 * cap / 2)
            cap *= 2;
        pg_side_entry *old = s->map;
        size_t oldcap = s->cap;
        pg_side_entry *map = malloc(cap * sizeof *map);
        if (!map)
            return -1;
        for (size_t j = 0; j < cap; j++)
            map[j].node = PG_NONE;
        s->map = map;
        s->cap = cap;
        s->count = s->used = 0;
        for (size_t j = 0; j < oldcap; j++)
            if (old[j].node != PG_NONE && old[j].node != DELETED)
                put(s, old[j].node, old[j].key);
        free(old);
    }
    return 0;
}

void pg__side_forget(pg_arena *a, pg_index i)
{
    pg_side *s = &a->side;
    pg_side_entry *e = find(s, i);
    if (!e)
        return;
    s->freed[s->nfreed++] = e->key;   /* room reserved by pg_side_set */
    e->node = DELETED;
    s->count--;
}

void pg__side_free(pg_side *s)
{
    free(s->map);
    free(s->freed);
}

size_t pg__side_bytes(const pg_side *s)
{
    return s->cap * sizeof *s->map + s->freed_cap * sizeof *s->freed;
}

uint64_t pg_side_key(pg_arena *a, pg_index i)
{
    uint64_t key = 0;
    LOCK(a);
    if (pg__is_live(a, i) && (a->flags[i] & PG_SIDE)) {
        const pg_side_entry *e = find(&a->side, i);
        key = e ? e->key : 0;
    }
    UNLOCK(a);
    return key;
}

int pg_side_set(pg_arena *a, pg_index i, uint64_t key, uint64_t *out)
{
    int rc = PG_OK;
    LOCK(a);
    if (!pg__is_live(a, i) || key == 0) {
        rc = PG_EINVAL;
    } else if (a->flags[i] & PG_SIDE) {
        *out = find(&a->side, i)->key;
    } else if (reserve(&a->side) != 0) {
        rc = PG_ENOMEM;
    } else {
        put(&a->side, i, key);
        a->flags[i] |= PG_SIDE;
        *out = key;
    }
    UNLOCK(a);
    return rc;
}

size_t pg_side_freed(pg_arena *a, uint64_t *out, size_t cap, uint64_t *mark)
{
    LOCK(a);
    pg_side *s = &a->side;
    size_t n = s->nfreed - s->head;
    if (n > cap)
        n = cap;
    if (n)
        memcpy(out, s->freed + s->head, n * sizeof *out);
    *mark = s->committed;
    UNLOCK(a);
    return n;
}

void pg_side_commit(pg_arena *a, uint64_t mark, size_t n)
{
    LOCK(a);
    pg_side *s = &a->side;
    if (mark == s->committed && n <= s->nfreed - s->head) {
        s->head += n;
        s->committed += n;
        if (s->head == s->nfreed)
            s->head = s->nfreed = 0;
    }
    UNLOCK(a);
}
