/* latency.c -- the machine's memory latency, for the benchmark's 1e7-node
 * figures: a dependent chain of loads through a random cyclic permutation
 * of a buffer far larger than the caches (make latency).  Each load waits
 * for the previous one, so ns per step = one cache miss to DRAM (plus a
 * TLB miss now and then). */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 512;
    size_t n = mib * 1024 * 1024 / sizeof(size_t);
    size_t *next = malloc(n * sizeof *next);
    size_t *order = malloc(n * sizeof *order);
    if (!next || !order)
        return 1;
    uint64_t s = 88172645463325252ull;     /* xorshift: a fixed shuffle */
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        size_t j = s % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < n; i++)          /* one cycle through all slots */
        next[order[i]] = order[(i + 1) % n];
    free(order);
    size_t p = 0, steps = 20 * 1000 * 1000;
    double t0 = now();
    for (size_t i = 0; i < steps; i++)
        p = next[p];
    double dt = now() - t0;
    printf("memory latency: %.1f ns per dependent random load (%zu MiB buffer)%s\n",
           dt / (double)steps * 1e9, mib, p == (size_t)-1 ? "!" : "");
    free(next);
    return 0;
}
