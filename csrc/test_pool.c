/* test_pool.c -- pool.c's job protocol under stress: every block of every
 * job is run exactly once, by the threads that joined it, and nothing of a
 * job runs after pg__pool_run returned.  The job's context is reused for
 * the next job at once, so a worker still in an old job (a join that
 * raced the close, a leave that came late) would run blocks of the new
 * one and be counted twice.  Jobs come back to back (the workers watching)
 * and after pauses long enough for them to fall asleep (woken by the next
 * job), and from two callers at once (the second runs its jobs alone).
 * make test-c runs it; make sanitize under ASan and UBSan; by hand,
 * -fsanitize=thread finds no race in it. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include "pool.h"

#define NBLOCKS 64
#define JOBS 20000

typedef struct job {
    atomic_size_t next;
    atomic_int done[NBLOCKS];
    atomic_int by[PG_MAX_THREADS];
    atomic_int live;   /* 0 once pg__pool_run returned: nothing may run */
    atomic_int late;   /* blocks run while live was 0 */
} job;

static void work(void *ctx, int w)
{
    job *J = ctx;
    for (;;) {
        size_t b = atomic_fetch_add(&J->next, 1);
        if (b >= NBLOCKS)
            return;
        if (!atomic_load(&J->live))
            atomic_fetch_add(&J->late, 1);
        atomic_fetch_add(&J->done[b], 1);
        atomic_fetch_add(&J->by[w], 1);
        for (volatile int spin = 0; spin < (int)(b % 7) * 20; spin++)
            ;
    }
}

static void reset(job *J)
{
    atomic_store(&J->next, 0);
    for (int b = 0; b < NBLOCKS; b++)
        atomic_store(&J->done[b], 0);
    for (int w = 0; w < PG_MAX_THREADS; w++)
        atomic_store(&J->by[w], 0);
    atomic_store(&J->late, 0);
    atomic_store(&J->live, 1);
}

typedef struct caller {
    pg_pool *p;
    int threads, jobs, pause_every;
    long bad, helped;
} caller;

static void *call_jobs(void *arg)
{
    caller *c = arg;
    static _Thread_local job J;
    for (int k = 0; k < c->jobs; k++) {
        reset(&J);
        int ran = pg__pool_run(c->p, c->threads, work, &J);
        atomic_store(&J.live, 0);
        int total = 0, ok = 1;
        for (int b = 0; b < NBLOCKS; b++)
            ok &= atomic_load(&J.done[b]) == 1;
        for (int w = 0; w < PG_MAX_THREADS; w++) {
            int n = atomic_load(&J.by[w]);
            total += n;
            ok &= w < c->threads || n == 0;   /* only workers 0 .. threads-1 */
        }
        ok &= total == NBLOCKS && ran >= 1 && ran <= c->threads;
        /* a worker still in the job would run the next job's blocks: caught
         * there (done == 2), or here if it ran after live went to 0 */
        ok &= atomic_load(&J.late) == 0;
        if (!ok)
            c->bad++;
        c->helped += ran > 1;
        if (c->pause_every && k % c->pause_every == 0) {   /* workers fall asleep */
            struct timespec t = {0, 300000};   /* 0.3 ms > SPIN_NS */
            nanosleep(&t, NULL);
        }
    }
    return NULL;
}

int main(void)
{
    int failed = 0;
    pg_pool *p = pg__pool_new();
    if (!p) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    /* one caller: back to back, then with pauses, with 2 and 4 threads */
    for (int threads = 2; threads <= 4; threads += 2)
        for (int pause = 0; pause <= 50; pause += 50) {
            caller c = {p, threads, pause ? JOBS / 20 : JOBS, pause, 0, 0};
            call_jobs(&c);
            printf("test_pool: %d threads, %s: %d jobs, %ld wrong, %ld with help\n", threads,
                   pause ? "pauses" : "back to back", c.jobs, c.bad, c.helped);
            failed |= c.bad != 0;
        }
    /* two callers at once: one job runs on the pool, the other alone */
    caller c[2] = {{p, 2, JOBS / 2, 0, 0, 0}, {p, 3, JOBS / 2, 97, 0, 0}};
    pthread_t t;
    if (pthread_create(&t, NULL, call_jobs, &c[1]) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        return 1;
    }
    call_jobs(&c[0]);
    pthread_join(t, NULL);
    printf("test_pool: two callers: %ld + %ld wrong\n", c[0].bad, c[1].bad);
    failed |= c[0].bad != 0 || c[1].bad != 0;
    pg__pool_free(p);
    return failed;
}
