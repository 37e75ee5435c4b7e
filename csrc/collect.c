/* collect.c -- the nodes under some roots, found by the marking walk of
 * the backward sweep (arena.h), listed once: those with inputs newest
 * first (a reverse topological order, see arena.h), the leaves apart.
 * Tapes record them (tape.c); the gradient functions sweep them (grad.c).
 */
#include <stdlib.h>
#include <string.h>
#include "arena.h"

int pg__push(void **arr, size_t *n, size_t *cap, size_t size, const void *x)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        if (c > SIZE_MAX / size)
            return -1;
        void *grown = realloc(*arr, c * size);
        if (!grown)
            return -1;
        *arr = grown;
        *cap = c;
    }
    memcpy((char *)*arr + *n * size, x, size);
    (*n)++;
    return 0;
}

/* A node the walk reaches: a leaf is recorded once (flagged PG_MARK
 * meanwhile, which the sweeps never set on leaves); any other node is
 * marked, for the walk to visit.  *rc becomes PG_ENOMEM if the leaf array
 * cannot grow. */
static void reach(pg_arena *a, pg_nodes *s, pg_index i, size_t *pending, int *rc)
{
    if (!(a->flags[i] & PG_LEAFNODE)) {
        pg__mark(a, i, pending);
    } else if (!(a->flags[i] & PG_MARK)) {
        a->flags[i] |= PG_MARK;
        if (pg__push((void **)&s->leaf, &s->nleaf, &s->leaf_cap, sizeof i, &i)) {
            a->flags[i] &= (uint8_t)~PG_MARK;
            *rc = PG_ENOMEM;
        }
    }
}

int pg__collect(pg_arena *a, const pg_index *roots, size_t nroots, pg_nodes *s)
{
    return pg__collect_cut(a, roots, nroots, s, 0);
}

int pg__collect_cut(pg_arena *a, const pg_index *roots, size_t nroots, pg_nodes *s,
                    int cut_python)
{
    memset(s, 0, sizeof *s);
    if (a->sweep.paused)
        return PG_EBUSY;
    int rc = pg__all_live(a, roots, nroots);
    if (rc != PG_OK || nroots == 0)
        return rc;
    pg_index newest = roots[0];
    size_t pending = 0;
    for (size_t r = 0; r < nroots; r++) {
        if (pg__newer(a, roots[r], newest))
            newest = roots[r];
        reach(a, s, roots[r], &pending, &rc);
    }
    pg_walk w = pg__walk_from(newest);
    while (pending && pg__walk_chunk(a, &w)) {
        for (uint32_t o = w.top; o-- > 0 && pending;) {
            pg_index i = w.base + o;
            /* (a leaf's PG_MARK here only says it is recorded already) */
            if ((a->flags[i] & (PG_MARK | PG_LEAFNODE)) != PG_MARK)
                continue;
            pg__unmark(a, i, &pending);
            int python = pg_is_python(a->op[i]);
            if (python && !cut_python && rc == PG_OK)
                rc = PG_ETYPE;   /* the walk goes on, to clear the marks */
            if (python && cut_python) {
                /* listed, but nothing under it is reached through it */
            } else {
                if (pg_has_list(a->op[i])) {
                    for (uint32_t j = 0; j < a->in0[i]; j++)
                        reach(a, s, a->aux[i].list->item[j], &pending, &rc);
                } else {
                    reach(a, s, a->in0[i], &pending, &rc);
                }
                if (a->in1[i] != PG_NONE)
                    reach(a, s, a->in1[i], &pending, &rc);
            }
            if ((rc == PG_OK || rc == PG_ETYPE) &&
                pg__push((void **)&s->node, &s->n, &s->cap, sizeof i, &i))
                rc = PG_ENOMEM;   /* (after PG_ETYPE too: the lists stay whole) */
        }
    }
    for (size_t j = 0; j < s->nleaf; j++)
        a->flags[s->leaf[j]] &= (uint8_t)~PG_MARK;
    if (rc != PG_OK && rc != PG_ETYPE)
        pg__nodes_free(s);
    return rc;
}

void pg__nodes_free(pg_nodes *s)
{
    free(s->node);
    free(s->leaf);
    memset(s, 0, sizeof *s);
}

int pg_lies_under(pg_arena *a, const pg_index *roots, size_t nroots, pg_index node)
{
    LOCK(a);
    int rc = pg__all_live(a, roots, nroots);
    if (rc == PG_OK && !pg__is_live(a, node))
        rc = PG_EINVAL;
    /* A leaf root has nothing under it, and when node is no leaf, only a
     * root placed after it can have it under it (a node's position follows
     * its inputs', arena.h; leaves sit anywhere): most calls (a _vjp
     * holding its op's inputs) walk nothing. */
    int leaf = rc == PG_OK && (a->flags[node] & PG_LEAFNODE);
    pg_index *later = rc == PG_OK ? malloc((nroots + 1) * sizeof *later) : NULL;
    size_t nlater = 0;
    int found = 0;
    if (rc == PG_OK && !later)
        rc = PG_ENOMEM;
    for (size_t r = 0; rc == PG_OK && r < nroots && !found; r++) {
        found = roots[r] == node;
        if (!(a->flags[roots[r]] & PG_LEAFNODE) && (leaf || pg__newer(a, roots[r], node)))
            later[nlater++] = roots[r];
    }
    if (rc == PG_OK && !found && nlater) {
        pg_nodes set;
        rc = pg__collect(a, later, nlater, &set);
        if (rc == PG_OK || rc == PG_ETYPE) {
            for (size_t j = 0; j < set.n && !found; j++)
                found = set.node[j] == node;
            for (size_t j = 0; j < set.nleaf && !found; j++)
                found = set.leaf[j] == node;
            rc = PG_OK;
            pg__nodes_free(&set);
        }
    }
    free(later);
    UNLOCK(a);
    return rc == PG_OK ? found : rc;
}
