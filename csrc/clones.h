/* clones.h -- PG_CLONES: a function compiled for the x86-64 baseline (two
 * doubles a vector instruction) and for AVX2 (four) and AVX-512 (eight),
 * the one for the machine it runs on picked at load time (an ifunc).
 * Internal.
 *
 * For the loops written with GCC's vector extension (layer.c, jacobian.c):
 * on the baseline an eight-double vector is four instructions for each
 * operation, on AVX-512 one.  The operations and their order are the same
 * in each clone, and -ffp-contract=off (pygrad/_build.py, the Makefile)
 * keeps a multiply and an add from being fused: so the bits are too
 * (make test-isa checks).  -DPG_NO_CLONES builds one version, for the
 * flags given (test-isa builds each that way). */
#ifndef PYGRAD_CLONES_H
#define PYGRAD_CLONES_H

#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && !defined(PG_NO_CLONES)
#define PG_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define PG_CLONES
#endif

#endif /* PYGRAD_CLONES_H */
