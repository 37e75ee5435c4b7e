/* pool.c -- the worker threads that tape maps run on (map.c): started on
 * first use, kept for the arena's life (starting threads costs tens of
 * microseconds, a small map step less), and forgotten in a fork()ed child,
 * where they do not exist.
 *
 * A job is fn(ctx, worker) run by `n` workers at once, the caller being
 * worker 0; pg__pool_run returns when all are done.  One job at a time
 * (pool->busy): a second caller runs its job on its own thread instead.
 */
#include <stdlib.h>
#include <string.h>
#include "pool.h"

struct pg_pool {
    pthread_mutex_t m;
    pthread_cond_t go;       /* a new job, or stop */
    pthread_cond_t done;     /* a worker finished the job */
    int nthreads;            /* started, besides the caller */
    pthread_t th[PG_MAX_THREADS];
    uint64_t generation;     /* bumped per job */
    int want;                /* workers 1..want-1 take part in this job */
    int active;              /* of those, still working */
    int busy;                /* a job is running */
    int stop;                /* the pool is being freed */
    void (*fn)(void *, int);
    void *ctx;
};

typedef struct start {
    pg_pool *p;
    int id;
} start;

static void *worker(void *arg)
{
    start s = *(start *)arg;
    free(arg);
    pg_pool *p = s.p;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->m);
    for (;;) {
        while (p->generation == seen && !p->stop)
            pthread_cond_wait(&p->go, &p->m);
        if (p->stop)
            break;
        seen = p->generation;
        if (s.id >= p->want)
            continue;
        void (*fn)(void *, int) = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->m);
        fn(ctx, s.id);
        pthread_mutex_lock(&p->m);
        if (--p->active == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->m);
    return NULL;
}

pg_pool *pg__pool_new(void)
{
    pg_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    if (pthread_mutex_init(&p->m, NULL) || pthread_cond_init(&p->go, NULL) ||
        pthread_cond_init(&p->done, NULL)) {
        free(p);
        return NULL;
    }
    return p;
}

/* Starts threads until n - 1 exist (as many as can be started). */
static void grow_to(pg_pool *p, int n)
{
    while (p->nthreads < n - 1 && p->nthreads < PG_MAX_THREADS) {
        start *s = malloc(sizeof *s);
        if (!s)
            return;
        s->p = p;
        s->id = p->nthreads + 1;
        if (pthread_create(&p->th[p->nthreads], NULL, worker, s) != 0) {
            free(s);
            return;
        }
        p->nthreads++;
    }
}

int pg__pool_run(pg_pool *p, int n, void (*fn)(void *, int), void *ctx)
{
    if (n < 1)
        n = 1;
    pthread_mutex_lock(&p->m);
    if (p->busy || n == 1) {
        pthread_mutex_unlock(&p->m);
        fn(ctx, 0);
        return 1;
    }
    grow_to(p, n);
    if (n > p->nthreads + 1)
        n = p->nthreads + 1;
    p->busy = 1;
    p->fn = fn;
    p->ctx = ctx;
    p->want = n;
    p->active = n - 1;
    p->generation++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->m);
    fn(ctx, 0);
    pthread_mutex_lock(&p->m);
    while (p->active > 0)
        pthread_cond_wait(&p->done, &p->m);
    p->busy = 0;
    pthread_mutex_unlock(&p->m);
    return n;
}

void pg__pool_forget(pg_pool *p)
{
    /* In a fork()ed child: the threads are gone, and the mutex and
     * conditions may be in any state.  Make them anew; the old thread
     * handles are dropped (there is nothing to join). */
    pthread_mutex_init(&p->m, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    p->nthreads = 0;
    p->busy = 0;
    p->active = 0;
}

void pg__pool_free(pg_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->m);
    p->stop = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->m);
    for (int j = 0; j < p->nthreads; j++)
        pthread_join(p->th[j], NULL);
    pthread_mutex_destroy(&p->m);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p);
}
