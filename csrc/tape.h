/* tape.h -- a compiled tape's layout, shared by tape.c (which records it)
 * and replay.c (which replays it).  Not part of the public API (pygrad.h).
 *
 * A tape lists the non-leaf nodes under its roots once, oldest first (a
 * topological order, see arena.h), as instructions.  Values and grads stay
 * in the arena's arrays, so the Values the user holds see every replay.
 * What the replay loops read is laid out as streams, each read front to
 * back by forward and back to front by backward:
 *   op    the op, flagged when the instruction reads the previous
 *         instruction's node (PG_CHAIN0/1): the loops then hand that value
 *         and that grad on in a register instead of a store and a load;
 *   fwd,  the inputs, the node, and the input to prefetch, as forward
 *   bwd   and as backward want them;
 *   k     the C ops' constants, in instruction order;
 *   list  the n-ary ops' input lists, in instruction order;
 *   d     the local partials, which forward stores, as CppAD's and
 *         CasADi's tapes do, so that backward is a multiply-add per edge
 *         with no per-op branch (a switch on a random mix of ops
 *         mispredicts at every other node).  Backward therefore uses the
 *         partials of the last forward (or of compile time), like torch's
 *         saved tensors.
 * The tape owns one reference on each node it covers, so every index in it
 * stays valid until pg_tape_free, and owns a few sink leaves (below).
 */
#ifndef PYGRAD_TAPE_H
#define PYGRAD_TAPE_H

#include "sweep.h"

/* An instruction as one replay direction reads it: 16 bytes in one stream
 * (one pointer: the loops around calls to tanh and exp run short of
 * registers).
 *   fwd: in0, in1 are the inputs as in the arena (n-ary: count, start),
 *        except that a one-input op's in1 is a sink;
 *   bwd: in0, in1 are the grads that the partials d[0], d[1] times the
 *        node's grad are added to in memory (a sink stands in where the
 *        register does the adding, and for a one-input op's d[1]).
 * far: the input whose value (fwd) or grad (bwd) is not in a register,
 * which the loop prefetches. */
typedef struct pg_step {
    pg_index in0, in1;
    pg_index out;
    pg_index far;
} pg_step;

/* Junk targets of backward's branch-free adds.  Several, used in turn,
 * because adds to one sink would each wait for the one before (a
 * store-to-load round trip per node). */
#define PG_NSINKS 16

/* How many instructions ahead the replay loops ask for the values (grads)
 * they will read: the graph's far inputs (y in x*y) miss every cache once
 * the graph outgrows them, and a miss (about 250 ns here, `make latency`)
 * is far longer than the out-of-order window, which holds a dozen
 * instructions of a sweep.  64 instructions take a few hundred ns. */
#define PG_AHEAD 64

/* map.c: a tape's program for maps over rows (built on first use). */
typedef struct pg_prog pg_prog;
void pg__prog_unref(const pg_arena *a, pg_prog *p);   /* frees it with the last reference; lock held */

/* jacobian.c: a tape's plan for Jacobians (built on first use). */
typedef struct pg_jplan pg_jplan;
void pg__jplan_free(pg_jplan *p);

struct pg_tape {
    pg_arena *a;
    pg_prog *prog;      /* for pg_tape_map, or NULL */
    pg_jplan *jplan;    /* for pg_tape_jacobian, or NULL */
    size_t ncode;       /* instructions: the non-leaf nodes, oldest first */
    uint8_t *op;        /* forward's: op code | PG_CHAIN* */
    uint8_t *back;      /* backward's: partials stored | PG_NARYOP | PG_CHAIN* */
    pg_step *fwd;       /* both valid from -PG_AHEAD to ncode + PG_AHEAD */
    pg_step *bwd;       /* (the padding: sinks) */
    double *k;
    pg_list **list;     /* owned by the nodes */
    size_t nlist;
    double *d;          /* pg_nparts() per instruction, chained input's
                         * first, and one spare (backward reads d[1] of a
                         * one-input op, for its sink) */
    size_t nd;
    pg_index sink[PG_NSINKS];  /* leaves owned by the tape, grads junk */
    pg_index (*runs)[2];  /* the nodes as runs of consecutive indices */
    size_t nruns;         /* (first, count): how backward zeroes them */
    pg_index *leaf;
    size_t nleaf;
    pg_index *root;
    size_t nroots;
};

/* Flags in t->op and t->back: input 0 (CHAIN0) or input 1 (CHAIN1; never
 * both) is the previous instruction's node. */
#define PG_CHAIN0 0x80u
#define PG_CHAIN1 0x40u
#define PG_CHAINED (PG_CHAIN0 | PG_CHAIN1)
#define PG_OPMASK 0x3fu
/* t->back: the op's facts that backward's loop needs, copied from the op
 * table at compile time: the partials stored (pg_nparts, in the low bits)
 * and whether it is n-ary.  Read with the instruction they cost nothing;
 * looked up in the table they put a dependent load on every step of the
 * sweep (5% slower at 1e6 nodes). */
#define PG_NPARTSMASK 0x03u
#define PG_NARYOP     0x20u

_Static_assert(PG_NOPS <= PG_OPMASK + 1, "op codes fit below the chain flags");

#endif /* PYGRAD_TAPE_H */
