/* pool.c -- the worker threads that tape maps run on (map.c): started on
 * first use, kept for the arena's life (starting threads costs tens of
 * microseconds, a small map step less), and forgotten in a fork()ed child,
 * where they do not exist.
 *
 * A job is fn(ctx, worker) run by up to `n` workers at once, the caller
 * being worker 0; pg__pool_run returns when all that joined are done (see
 * below).  One job at a time
 * (pool->busy): a second caller runs its job on its own thread instead.
 *
 * Spinning.  Waking a thread asleep on a condition variable takes 5 to 50
 * microseconds here, as long as a whole 100-row moons step's map (a
 * two-thread map of it was slower than a one-thread one: 31.7 vs 20.8 us,
 * AMD EPYC).  So a worker that finished a job watches for the next one for
 * a while (SPIN_NS, yielding the core now and then) before it sleeps: a
 * training loop calls map every few microseconds, and its workers stay
 * awake between the calls, as OpenMP's and BLAS's do.
 *
 * Nobody waits for a late worker.  A worker takes part in a job only if it
 * picks it up before the caller has finished its own part (the job is then
 * closed), so fn must share its work out dynamically (map.c's blocks come
 * from an atomic counter).  Otherwise a worker the scheduler has not run
 * yet (two cores, and other threads spinning too: OpenBLAS's, seen in the
 * benchmark) would hold up the caller, who had done all the work itself:
 * the moons map took 131 us that way instead of 14.
 *
 * generation, active and stop are atomics for the watching; they change
 * only under the lock, so sleeping works as before.
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "pool.h"

#define SPIN_NS 100000   /* 0.1 ms */

struct pg_pool {
    pthread_mutex_t m;
    pthread_cond_t go;       /* a new job, or stop */
    pthread_cond_t done;     /* a worker finished the job */
    int nthreads;            /* started, besides the caller */
    pthread_t th[PG_MAX_THREADS];
    _Atomic uint64_t generation;   /* bumped per job */
    int want;                /* workers 1..want-1 may take part in this job */
    int closed;              /* the caller is done: no worker joins now */
    int joined;              /* workers that took part */
    atomic_int active;       /* of those, still working */
    int busy;                /* a job is running */
    atomic_int stop;         /* the pool is being freed */
    void (*fn)(void *, int);
    void *ctx;
};

typedef struct start {
    pg_pool *p;
    int id;
} start;

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void cpu_relax(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_ia32_pause();
#elif defined(__GNUC__) && defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Watches *x for up to SPIN_NS while it equals v and no stop is asked:
 * returns having seen a change or not (the caller checks under the lock).
 * It yields the core every so often, in case a thread it holds up (the
 * caller's, when the cores are few) is waiting for one. */
static void spin_while_u64(_Atomic uint64_t *x, uint64_t v, atomic_int *stop)
{
    uint64_t t0 = now_ns();
    for (unsigned i = 1; atomic_load(x) == v && !atomic_load(stop); i++) {
        cpu_relax();
        if (i % 64 == 0) {
            sched_yield();
            if (now_ns() - t0 > SPIN_NS)
                return;
        }
    }
}

static void *worker(void *arg)
{
    start s = *(start *)arg;
    free(arg);
    pg_pool *p = s.p;
    uint64_t seen = 0;
    for (;;) {
        spin_while_u64(&p->generation, seen, &p->stop);
        pthread_mutex_lock(&p->m);
        while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop))
            pthread_cond_wait(&p->go, &p->m);
        if (atomic_load(&p->stop)) {
            pthread_mutex_unlock(&p->m);
            break;
        }
        seen = atomic_load(&p->generation);
        if (s.id >= p->want || p->closed) {   /* not wanted, or too late */
            pthread_mutex_unlock(&p->m);
            continue;
        }
        p->joined++;
        atomic_fetch_add(&p->active, 1);
        void (*fn)(void *, int) = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->m);
        fn(ctx, s.id);
        pthread_mutex_lock(&p->m);
        if (atomic_fetch_sub(&p->active, 1) == 1)
            pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->m);
    }
    return NULL;
}

/* Read once: glibc's sysconf reads a file in /sys each time, some
 * microseconds, as much as a small map's sweeps. */
int pg__pool_cores(void)
{
    static atomic_int cores;
    int n = atomic_load(&cores);
    if (n == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (c < PG_MAX_THREADS ? (int)c : PG_MAX_THREADS) : 1;
        atomic_store(&cores, n);
    }
    return n;
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
    p->closed = 0;
    p->joined = 0;
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->m);
    fn(ctx, 0);
    pthread_mutex_lock(&p->m);
    p->closed = 1;   /* from now on only those who joined count */
    pthread_mutex_unlock(&p->m);
    uint64_t t0 = now_ns();   /* they are running: they finish soon */
    for (unsigned i = 1; atomic_load(&p->active) > 0; i++) {
        cpu_relax();
        if (i % 256 == 0 && now_ns() - t0 > SPIN_NS)
            break;
    }
    pthread_mutex_lock(&p->m);
    while (atomic_load(&p->active) > 0)
        pthread_cond_wait(&p->done, &p->m);
    p->busy = 0;
    int ran = 1 + p->joined;
    pthread_mutex_unlock(&p->m);
    return ran;
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
    atomic_store(&p->active, 0);
}

void pg__pool_free(pg_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->m);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->m);
    for (int j = 0; j < p->nthreads; j++)
        pthread_join(p->th[j], NULL);
    pthread_mutex_destroy(&p->m);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p);
}
