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
 * No lock on the way.  A job is opened and closed by the caller's stores
 * to `state` (2 * job + 1 open, even closed), and a worker joins by
 * counting itself in `active` and then seeing the same open state again:
 * with sequentially consistent atomics either the caller's close comes
 * first (the worker sees it, leaves and runs nothing) or the caller sees
 * the worker counted, and waits for it.  fn, ctx and want are written
 * before the job opens and read only by a worker that joined it, and not
 * changed until every worker that counted itself has left.  The mutex and
 * the two conditions are for sleeping only, and each side wakes the other
 * only when it has said it sleeps (asleep, caller_asleep; the same pairing
 * of a store and a load makes that safe).  Taking the mutex at each start
 * and end of a job, as this did before, cost the two-thread moons map
 * 0.4 us of its 6.5 (AMD EPYC): the worker, done, waited for the lock the
 * caller held to close the job.
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "pool.h"

#define SPIN_NS 100000   /* 0.1 ms */

struct pg_pool {
    pthread_mutex_t m;       /* for sleeping, and starting threads */
    pthread_cond_t go;       /* the state changed (a job opened), or stop */
    pthread_cond_t done;     /* the last worker of a job left */
    int nthreads;            /* started, besides the caller */
    pthread_t th[PG_MAX_THREADS];
    _Atomic uint64_t state;  /* 2 * jobs + 1 while a job is open, else even */
    void (*fn)(void *, int); /* the job: set while no worker is in one */
    void *ctx;
    int want;                /* workers 1..want-1 may take part in it */
    atomic_int active;       /* workers counted in (or leaving) the job */
    atomic_int joined;       /* workers that ran it */
    atomic_int asleep;       /* workers waiting on go */
    atomic_int caller_asleep;   /* the caller waits on done */
    atomic_int busy;         /* a caller's job is running */
    atomic_int stop;         /* the pool is being freed */
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

/* Returns once the state is no longer s, or a stop is asked: watching it
 * for up to SPIN_NS, then asleep.  The watching yields the core every so
 * often, in case a thread it holds up (the caller's, when the cores are
 * few) is waiting for one. */
static void wait_change(pg_pool *p, uint64_t s)
{
    uint64_t t0 = now_ns();
    for (unsigned i = 1; atomic_load(&p->state) == s && !atomic_load(&p->stop); i++) {
        cpu_relax();
        if (i % 64 == 0) {
            sched_yield();
            if (now_ns() - t0 > SPIN_NS)
                break;
        }
    }
    if (atomic_load(&p->state) != s || atomic_load(&p->stop))
        return;
    pthread_mutex_lock(&p->m);
    atomic_fetch_add(&p->asleep, 1);   /* before the check: see the top */
    while (atomic_load(&p->state) == s && !atomic_load(&p->stop))
        pthread_cond_wait(&p->go, &p->m);
    atomic_fetch_sub(&p->asleep, 1);
    pthread_mutex_unlock(&p->m);
}

/* A worker leaves the job it counted itself in; the last one out wakes
 * the caller if it sleeps. */
static void leave(pg_pool *p)
{
    if (atomic_fetch_sub(&p->active, 1) == 1 && atomic_load(&p->caller_asleep)) {
        pthread_mutex_lock(&p->m);
        pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->m);
    }
}

static void *worker(void *arg)
{
    start st = *(start *)arg;
    free(arg);
    pg_pool *p = st.p;
    uint64_t tried = 0;   /* the last open state this worker tried to join */
    while (!atomic_load(&p->stop)) {
        uint64_t s = atomic_load(&p->state);
        if (!(s & 1) || s == tried) {
            wait_change(p, s);
            continue;
        }
        tried = s;
        atomic_fetch_add(&p->active, 1);
        if (atomic_load(&p->state) == s && st.id < p->want) {   /* still open: in */
            void (*fn)(void *, int) = p->fn;
            void *ctx = p->ctx;
            atomic_fetch_add(&p->joined, 1);
            fn(ctx, st.id);
        }
        leave(p);
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
    pthread_mutex_lock(&p->m);
    while (p->nthreads < n - 1 && p->nthreads < PG_MAX_THREADS) {
        start *s = malloc(sizeof *s);
        if (!s)
            break;
        s->p = p;
        s->id = p->nthreads + 1;
        if (pthread_create(&p->th[p->nthreads], NULL, worker, s) != 0) {
            free(s);
            break;
        }
        p->nthreads++;
    }
    pthread_mutex_unlock(&p->m);
}

int pg__pool_run(pg_pool *p, int n, void (*fn)(void *, int), void *ctx)
{
    if (n < 1)
        n = 1;
    if (n == 1 || atomic_exchange(&p->busy, 1)) {   /* alone, or another's job runs */
        fn(ctx, 0);
        return 1;
    }
    if (p->nthreads < n - 1)
        grow_to(p, n);
    if (n > p->nthreads + 1)
        n = p->nthreads + 1;
    p->fn = fn;
    p->ctx = ctx;
    p->want = n;
    atomic_store(&p->joined, 0);
    uint64_t open = atomic_load(&p->state) + 1;   /* (even: no job open) */
    atomic_store(&p->state, open);
    if (atomic_load(&p->asleep)) {
        pthread_mutex_lock(&p->m);
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->m);
    }
    fn(ctx, 0);
    atomic_store(&p->state, open + 1);   /* closed: from now on no worker joins */
    uint64_t t0 = now_ns();   /* those in are running: they finish soon */
    for (unsigned i = 1; atomic_load(&p->active) > 0; i++) {
        cpu_relax();
        if (i % 256 == 0 && now_ns() - t0 > SPIN_NS)
            break;
    }
    if (atomic_load(&p->active) > 0) {
        pthread_mutex_lock(&p->m);
        atomic_store(&p->caller_asleep, 1);   /* before the check: see the top */
        while (atomic_load(&p->active) > 0)
            pthread_cond_wait(&p->done, &p->m);
        atomic_store(&p->caller_asleep, 0);
        pthread_mutex_unlock(&p->m);
    }
    int ran = 1 + atomic_load(&p->joined);
    atomic_store(&p->busy, 0);
    return ran;
}

void pg__pool_forget(pg_pool *p)
{
    /* In a fork()ed child: the threads are gone, and the mutex and
     * conditions may be in any state, as may a job the parent's other
     * thread had open.  Make them anew; the old thread handles are dropped
     * (there is nothing to join). */
    pthread_mutex_init(&p->m, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    p->nthreads = 0;
    uint64_t s = atomic_load(&p->state);
    atomic_store(&p->state, s + (s & 1));   /* closed */
    atomic_store(&p->active, 0);
    atomic_store(&p->asleep, 0);
    atomic_store(&p->caller_asleep, 0);
    atomic_store(&p->busy, 0);
}

void pg__pool_free(pg_pool *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, 1);
    pthread_mutex_lock(&p->m);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->m);
    for (int j = 0; j < p->nthreads; j++)
        pthread_join(p->th[j], NULL);
    pthread_mutex_destroy(&p->m);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p);
}
