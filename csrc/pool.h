/* pool.h -- worker threads for tape maps (pool.c).  Internal. */
#ifndef PYGRAD_POOL_H
#define PYGRAD_POOL_H

#include <pthread.h>
#include <stdint.h>

#define PG_MAX_THREADS 64

typedef struct pg_pool pg_pool;

/* The cores online (1 .. PG_MAX_THREADS): how many workers "every core"
 * means. */
int pg__pool_cores(void);

/* A pool with no thread yet; NULL when out of memory. */
pg_pool *pg__pool_new(void);

/* Runs fn(ctx, 0) on the calling thread and fn(ctx, w) on those of the
 * workers w in [1, n) that pick the job up before that call returns (none,
 * if threads could not be started or the pool is busy with another
 * caller's job), so fn must share the work out dynamically: any of them
 * may end up doing all of it.  Returns when all that started have
 * returned (fn and ctx are not used after), with how many ran. */
int pg__pool_run(pg_pool *p, int n, void (*fn)(void *, int), void *ctx);

/* In a fork()ed child: the threads do not exist there; start afresh. */
void pg__pool_forget(pg_pool *p);

/* Stops and joins the threads, frees the pool; NULL ok. */
void pg__pool_free(pg_pool *p);

#endif /* PYGRAD_POOL_H */
