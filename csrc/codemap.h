/* codemap.h -- node index -> a number (a row, an operand code), open
 * addressing, for the tape passes that renumber a tape's nodes densely
 * (map.c's programs, jacobian.c's rows).  Internal.
 *
 * pg__cm_init makes an empty map for some number of nodes (cap, a power
 * of two, at least twice that); pg__cm_free frees it.
 */
#ifndef PYGRAD_CODEMAP_H
#define PYGRAD_CODEMAP_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include "arena.h"   /* PG_NONE */

typedef struct pg_codemap {
    pg_index *key;
    int32_t *code;
    size_t cap;
} pg_codemap;

/* An empty map for up to n nodes: 0, or -1 when out of memory (then
 * nothing is held; pg__cm_free is harmless either way). */
static inline int pg__cm_init(pg_codemap *m, size_t n)
{
    m->cap = 64;
    while (m->cap < 2 * (n + 1))
        m->cap *= 2;
    m->key = malloc(m->cap * sizeof *m->key);
    m->code = malloc(m->cap * sizeof *m->code);
    if (!m->key || !m->code) {
        free(m->key);
        free(m->code);
        m->key = NULL;
        m->code = NULL;
        return -1;
    }
    for (size_t s = 0; s < m->cap; s++)
        m->key[s] = PG_NONE;
    return 0;
}

static inline void pg__cm_free(pg_codemap *m)
{
    free(m->key);
    free(m->code);
    m->key = NULL;
    m->code = NULL;
}

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
