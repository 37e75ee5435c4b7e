/* codemap.h -- node index -> a number (a row, an operand code), open
 * addressing, for the tape passes that renumber a tape's nodes densely
 * (map.c's programs, jacobian.c's rows).  Internal.
 *
 * The caller allocates key and code with cap entries (a power of two, at
 * least twice the nodes put), sets every key to PG_NONE, and frees both.
 */
#ifndef PYGRAD_CODEMAP_H
#define PYGRAD_CODEMAP_H

#include <stddef.h>
#include <stdint.h>
#include "arena.h"   /* PG_NONE */

typedef struct pg_codemap {
    pg_index *key;
    int32_t *code;
    size_t cap;
} pg_codemap;

static inline size_t pg__cm_slot(const pg_codemap *m, pg_index i)
{
    size_t s = ((uint32_t)i * 2654435761u) & (m->cap - 1);
    while (m->key[s] != PG_NONE && m->key[s] != i)
        s = (s + 1) & (m->cap - 1);
    return s;
}

/* i's number, or `none` if i was never put. */
static inline int32_t pg__cm_get(const pg_codemap *m, pg_index i, int32_t none)
{
    size_t s = pg__cm_slot(m, i);
    return m->key[s] == i ? m->code[s] : none;
}

static inline void pg__cm_put(pg_codemap *m, pg_index i, int32_t code)
{
    size_t s = pg__cm_slot(m, i);
    m->key[s] = i;
    m->code[s] = code;
}

#endif /* PYGRAD_CODEMAP_H */
