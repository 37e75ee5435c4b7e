/* pool.h -- worker threads for tape maps (pool.c).  Internal. */
#ifndef PYGRAD_POOL_H
#define PYGRAD_POOL_H

#include <pthread.h>
#include <stdint.h>

#define PG_MAX_THREADS 64

typedef struct pg_pool pg_pool;

/* A pool with no thread yet; NULL when out of memory. */
pg_pool *pg__pool_new(void);

/* Runs fn(ctx, w) for w in [0, n) at once, w = 0 on the calling thread,
 * and returns when all have returned; returns how many ran (fewer than n
 * if threads could not be started, 1 if the pool is busy with another
 * caller's job: then the caller runs alone). */
int pg__pool_run(pg_pool *p, int n, void (*fn)(void *, int), void *ctx);

/* In a fork()ed child: the threads do not exist there; start afresh. */
void pg__pool_forget(pg_pool *p);

/* Stops and joins the threads, frees the pool; NULL ok. */
void pg__pool_free(pg_pool *p);

#endif /* PYGRAD_POOL_H */
