/* peak.c -- this machine's peak rate of double-precision multiply-adds on
 * one core, for the benchmark's map step (make peak; the benchmark compiles
 * and runs it itself, pygrad/bench/peak.py).  Independent chains of fused
 * multiply-adds over registers, acc = acc * m + c, as wide as the compiler
 * is allowed to make them: with -march=native on an AVX-512 machine, 16
 * chains of 8 doubles (16 registers of 32), enough to cover the FMA
 * latency (4 cycles) times its ports (2).  No memory traffic, so it is the
 * arithmetic's ceiling, which no real loop reaches.
 *
 * Compile with -ffp-contract=fast (GNU C's default; ISO C's is off), so
 * that a * b + c is one FMA instruction; `fused` in the output says whether
 * the target has FMA at all.  Prints one line of key=value pairs. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__AVX512F__)
#define LANES 8
#define ISA "avx512"
#elif defined(__AVX__)
#define LANES 4
#define ISA "avx2"
#else
#define LANES 2
#define ISA "sse2"
#endif

#if defined(__FMA__) || defined(__AVX512F__)
#define FUSED 1
#else
#define FUSED 0
#endif

/* independent chains: enough for latency x ports, few enough to stay in
 * registers with m and c (32 vector registers with AVX-512, 16 below) */
#ifndef CHAINS
#if LANES == 8
#define CHAINS 16
#else
#define CHAINS 12
#endif
#endif

typedef double vec __attribute__((vector_size(8 * LANES)));

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* iters rounds of CHAINS vector FMAs; the sum of the lanes (kept, so the
 * loop is not thrown away) */
static double run(long iters, double m0, double c0)
{
    vec acc[CHAINS > 24 ? 24 : CHAINS], m, c;
    for (int l = 0; l < LANES; l++) {
        m[l] = m0;
        c[l] = c0;
    }
    for (int j = 0; j < CHAINS; j++)
        for (int l = 0; l < LANES; l++)
            acc[j][l] = (double)(j * LANES + l) * 1e-3;
    for (long i = 0; i < iters; i++) {
        /* the chains written out: an inner loop over an array of vectors
         * may be kept in memory at -O2 */
#define STEP(j) if (j < CHAINS) acc[j] = acc[j] * m + c;
        STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5) STEP(6) STEP(7)
        STEP(8) STEP(9) STEP(10) STEP(11) STEP(12) STEP(13) STEP(14) STEP(15)
        STEP(16) STEP(17) STEP(18) STEP(19) STEP(20) STEP(21) STEP(22) STEP(23)
#undef STEP
        __asm__ volatile("" : "+x"(m));   /* m is unknown each round: no folding */
    }
    double s = 0.0;
    for (int j = 0; j < CHAINS; j++)
        for (int l = 0; l < LANES; l++)
            s += acc[j][l];
    return s;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? strtod(argv[1], NULL) : 0.5;
    /* m < 1: each chain converges to c / (1 - m); no overflow, no denormals */
    double m = 0.999999, c = 1e-6, sink = 0.0;
    long iters = 1 << 12;
    for (;;) {   /* grow until one run takes a twentieth of the time asked */
        double t0 = now();
        sink += run(iters, m, c);
        double dt = now() - t0;
        if (dt > seconds / 20 || iters > (1L << 40))
            break;
        iters *= 2;
    }
    /* the fastest of ~20 runs: on a shared or virtual machine some runs
     * lose the core for a while */
    double best = 1e300, t_end = now() + seconds;
    for (int rep = 0; rep < 100 && (rep < 3 || now() < t_end); rep++) {
        double t0 = now();
        sink += run(iters, m, c);
        double t = (now() - t0) / (double)iters;
        if (t < best)
            best = t;
    }
    double fma_per_s = (double)(CHAINS * LANES) / best;
    printf("fma_per_s=%.6g lanes=%d isa=%s fused=%d chains=%d%s\n", fma_per_s, LANES, ISA,
           FUSED, CHAINS, sink == 42.0 ? " !" : "");
    return 0;
}
