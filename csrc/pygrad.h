/* pygrad.h -- the whole public API of the pygrad C library.
 *
 * A scalar reverse-mode autograd graph.  Nodes live in an arena and are named
 * by a 32-bit index, never by pointer: the arena's arrays move when they grow,
 * an index stays valid for as long as the node is alive.
 *
 * Ownership is by reference count.  Every function that creates a node returns
 * it with one reference, owned by the caller; each input of a node holds one
 * reference on that input.  pg_decref() frees a node whose count reaches zero,
 * and with it (iteratively, never recursively) every input nobody else holds.
 *
 * Errors are return codes (PG_E*), never exit()/abort() and never a global
 * "last error": a call that fails leaves the arena exactly as it was.
 *
 * Thread safety: every function locks the arena, so Python threads (cffi
 * releases the GIL around calls) may use one arena concurrently.
 *
 * The block between the cffi markers is also the cffi cdef (pygrad/_build.py
 * reads it), so it must stay plain declarations: no macros, no #if.  The op
 * codes are not in it: they come from the table in ops.h, and the binding
 * names them from pygrad/_optable.py with values the compiler supplies.
 */
#ifndef PYGRAD_H
#define PYGRAD_H

#include <stddef.h>
#include <stdint.h>

/* cffi-cdef-begin */
/* "No node" where an index is optional (the start of pg_sum / pg_dot). */
#define PG_NONE_INDEX 0xFFFFFFFF

typedef uint32_t pg_index;
typedef struct pg_arena pg_arena;

/* Status codes.  Functions returning int64_t give an index (>= 0) or one of
 * these (< 0). */
enum {
    PG_OK       =  0,
    PG_EDOMAIN  = -1,   /* math domain error: log(0), sqrt-like of negative, sin(inf) */
    PG_EZERODIV = -2,   /* division by zero, or 0.0 to a negative power */
    PG_ERANGE   = -3,   /* result overflows a double: exp(1000), 10.0**400 */
    PG_ENOMEM   = -4,   /* out of memory, or the arena's node limit reached */
    PG_EINVAL   = -5,   /* not a live node index, or an op code that does not fit */
    PG_EBUSY    = -6,   /* a sweep is paused at a Python-defined op (pg_sweep) */
    PG_ETYPE    = -7,   /* the graph holds a Python-defined op, which C cannot
                         * replay (pg_compile) */
    PG_PYTHON   =  1    /* not an error: pg_sweep stopped at a Python-defined op */
};

/* Op codes: enum pg_op (PG_LEAF, PG_ADD, ... PG_NOPS), one per row of the
 * table in ops.h, included at the end of this header.  The CONST ops take a
 * plain number k instead of a second node, so Python never allocates a node
 * for a constant operand. */

/* The kind (enum pg_kind in ops.h: PG_KIND_LEAF, _BINARY, _CONST, _UNARY,
 * _NARY) of op code `op`, or PG_EINVAL if it is no op.  The binding checks
 * its op table against this. */
int pg_op_kind(int op);

/* A new, empty arena.  NULL when out of memory.  Owned by the caller. */
pg_arena *pg_arena_new(void);

/* Frees the arena and every node in it, whatever their reference counts. */
void pg_arena_free(pg_arena *a);

/* Creates a leaf holding `value` (grad 0).  Returns its index, or PG_ENOMEM. */
int64_t pg_leaf(pg_arena *a, double value);

/* Creates `op`(x, k) for a one-input op: the CONST ops use k, the others
 * ignore it.  Returns the new index, or PG_EINVAL / PG_ENOMEM / the op's math error
 * (PG_EDOMAIN, PG_EZERODIV, PG_ERANGE, with Python's float semantics). */
int64_t pg_op1(pg_arena *a, int op, pg_index x, double k);

/* Creates `op`(x, y) for a two-input op (kind BINARY in ops.h).  Errors as
 * pg_op1. */
int64_t pg_op2(pg_arena *a, int op, pg_index x, pg_index y);

/* n-ary nodes, one node however many inputs, with Python's sum() order:
 *   pg_sum: start + x[0] + x[1] + ... + x[n-1]
 *   pg_dot: start + w[0]*x[0] + ... + w[n-1]*x[n-1]
 * where start is node `start`, or the number k when start is PG_NONE_INDEX
 * (0xFFFFFFFF).  Inputs may repeat.  Returns the new index, PG_EINVAL for a
 * dead input (nothing is created), PG_ENOMEM. */
int64_t pg_sum(pg_arena *a, const pg_index *x, size_t n, pg_index start, double k);
int64_t pg_dot(pg_arena *a, const pg_index *w, const pg_index *x, size_t n,
               pg_index start, double k);

/* Adds a reference.  PG_EINVAL for a dead index, PG_ENOMEM if the count
 * would overflow; PG_OK otherwise. */
int pg_incref(pg_arena *a, pg_index i);

/* Drops one reference; at zero the node is freed, then its inputs lose the
 * reference it held, and so on down the graph, iteratively.  A dead index is
 * ignored (returns PG_EINVAL). */
int pg_decref(pg_arena *a, pg_index i);

/* pg_decref for n indices under one lock: how Python releases handles in
 * batches.  Dead indices are skipped.  Returns how many were live. */
size_t pg_decref_many(pg_arena *a, const pg_index *idx, size_t n);

/* Accessors.  Getters return NaN (or -1 for ints) for a dead index; setters
 * return PG_EINVAL for it. */
double pg_data(pg_arena *a, pg_index i);
double pg_grad(pg_arena *a, pg_index i);
int pg_set_data(pg_arena *a, pg_index i, double v);
int pg_set_grad(pg_arena *a, pg_index i, double g);
int pg_opcode(pg_arena *a, pg_index i);
double pg_constant(pg_arena *a, pg_index i);   /* k of a C op or n-ary start, else 0 */

/* How many inputs node i has (n-ary nodes count a start node and each list
 * entry, repeats included), or PG_EINVAL. */
int64_t pg_ninputs(pg_arena *a, pg_index i);

/* Writes the first `cap` input indices of node i into in[] (start node
 * first for n-ary nodes, then the list in order); returns how many inputs
 * the node has, as pg_ninputs, or PG_EINVAL. */
int64_t pg_inputs(pg_arena *a, pg_index i, pg_index *in, size_t cap);

/* Reverse-mode sweep from `root`, micrograd's semantics: root.grad = 1, every
 * node reachable from root adds (local derivative * its parent's grad) to its
 * grad; grads are never zeroed.  No recursion, no allocation: it cannot fail
 * except with PG_EINVAL for a dead root, or PG_EBUSY while a sweep is
 * paused.  Never raises on inf/NaN.  A Python-defined node (PG_PYOP)
 * passes nothing on: use pg_sweep to run those. */
int pg_backward(pg_arena *a, pg_index root);

/* Gradients without touching any grad (torch.autograd.grad):
 *   pg_gradient: result[j] = d(sum_r seeds[r] * outs[r]) / d ins[j], numbers;
 *   pg_gradient_graph: the same as new nodes (result[j] with one reference,
 *     the caller's), which can be differentiated, compiled, drawn; seeds[r]
 *     is a node, or PG_NONE_INDEX for 1;
 *   pg_jvp: forward mode, result[r] = sum_j d outs[r] / d ins[j] *
 *     tangents[j] (an input's value is taken as given: its own inputs do
 *     not move it).
 * An input the outputs do not depend on gets 0 (pg_gradient_graph: a new leaf
 * 0.0).  Errors: PG_EINVAL (a dead index), PG_ETYPE (an op written in
 * Python under the outputs: its backward is Python's), PG_EBUSY (a sweep
 * is paused), PG_ENOMEM; pg_gradient_graph also the math errors of the nodes
 * it makes (say a derivative 0 ** -0.5; then *bad_op, if not NULL, gets
 * the op that failed); on an error nothing is made or changed.
 * pg_gradient_graph builds only the terms that lead to an input asked for
 * (the derivative of sqrt(x) * y by y makes nothing of d/dx), and makes
 * nodes even where pg_set_grad_mode turned graphs off for the thread. */
int pg_gradient(pg_arena *a, const pg_index *outs, const double *seeds, size_t nout,
            const pg_index *ins, size_t nin, double *result);
int pg_gradient_graph(pg_arena *a, const pg_index *outs, const pg_index *seeds,
                  size_t nout, const pg_index *ins, size_t nin, pg_index *result,
                  int *bad_op);
int pg_jvp(pg_arena *a, const pg_index *outs, size_t nout, const pg_index *ins,
           const double *tangents, size_t nin, double *result);

/* For ops written in Python whose derivative is written with Values
 * (pygrad/autograd.py takes the chain rule through them):
 *   pg_python_nodes: how many ops written in Python lie under the outputs
 *     with one of the inputs ins[0..nin) under them (the ones whose
 *     derivative a gradient by those inputs needs), or a negative error, as
 *     pg_gradient's but for PG_ETYPE; the first `cap` of them into buf,
 *     newest first;
 *   pg_gradient_graph_cut: pg_gradient_graph, except that an op written in
 *     Python is where the sweep stops (its own adjoint is made, if it is an
 *     input, but nothing under it is reached through it), and an input no
 *     output reaches gets PG_NONE_INDEX instead of a new 0.0. */
int64_t pg_python_nodes(pg_arena *a, const pg_index *outs, size_t nout, const pg_index *ins,
                        size_t nin, pg_index *buf, size_t cap);
/* 1 if node is one of roots[0..nroots) or lies under them, else 0;
 * PG_EINVAL (a dead index), PG_EBUSY (a sweep is paused), PG_ENOMEM. */
int pg_lies_under(pg_arena *a, const pg_index *roots, size_t nroots, pg_index node);
int pg_gradient_graph_cut(pg_arena *a, const pg_index *outs, const pg_index *seeds,
                          size_t nout, const pg_index *ins, size_t nin, pg_index *result,
                          int *bad_op);

/* The Jacobian out[r * nin + c] = d outs[r] / d ins[c] (nout >= 1): row r
 * is pg_gradient's for outs[r] alone, to the bit, but by a tape of the
 * outputs compiled for the call and eight outputs a reverse sweep
 * (pg_tape_jacobian), on `threads` threads (0: every core; the same bits
 * for any number).  Errors as pg_gradient's; nothing changes. */
int pg_jacobian(pg_arena *a, const pg_index *outs, size_t nout, const pg_index *ins,
                size_t nin, double *out, int threads);

/* Gradients on (1, the default) or off (0) for the calling thread; returns
 * the mode it replaces.  Off, every op (pg_op1, pg_op2, pg_sum, pg_dot,
 * pg_custom) makes a leaf holding its value: no graph, no references on its
 * inputs (torch's no_grad). */
int pg_set_grad_mode(int enabled);

/* pg_backward in steps, stopping at each Python-defined node so that its
 * caller can run the node's backward (which adds into its inputs' grads
 * with the node's grad, complete by then):
 *   pg_sweep(a, root, &node) starts a sweep from root; pg_sweep(a,
 *   PG_NONE_INDEX, &node) resumes the paused one.  Returns PG_OK when the
 *   sweep is done, PG_PYTHON with *node = the Python-defined node reached
 *   (the sweep is then paused), PG_EINVAL (dead root; nothing paused to
 *   resume), PG_EBUSY (start refused: a sweep is paused).
 * While a sweep is paused the arena's lock is free (the Python code may use
 * the arena) but every other sweep, compile or marked tape backward gets
 * PG_EBUSY.  pg_sweep_abort(a) ends a paused sweep (clearing its marks:
 * the rest of its nodes get nothing); no-op if none is paused. */
int pg_sweep(pg_arena *a, pg_index root, pg_index *node);
void pg_sweep_abort(pg_arena *a);

/* The Python code run at a paused sweep may itself differentiate (backward
 * of a little graph of its own, grad(), compile(): autograd inside a
 * custom op, which micrograd allows).  pg_sweep_stash sets the paused
 * sweep aside: its marked nodes are listed and unmarked, its place saved,
 * and no sweep is paused; pg_sweep_unstash puts the newest stashed sweep
 * back, paused as it was.  Stashes nest.  pg_sweep_stash: PG_EINVAL if
 * none is paused, PG_ENOMEM (nothing changed).  pg_sweep_unstash: PG_EBUSY
 * if a sweep is paused (the inner one was neither finished nor aborted),
 * PG_EINVAL if nothing is stashed.  pg_sweep_reset(a) aborts the paused
 * sweep and drops every stash: for a caller that knows no sweep of its
 * own is in progress (one left by an interrupted caller is stale). */
int pg_sweep_stash(pg_arena *a);
int pg_sweep_unstash(pg_arena *a);
void pg_sweep_reset(pg_arena *a);

/* Node i's local backward step alone, micrograd's _backward(): each input
 * gets (local derivative, from the current values) * i's grad added, once.
 * PG_OK (a leaf: nothing), PG_PYTHON for a Python-defined node (its
 * backward is Python's), PG_EINVAL. */
int pg_local_backward(pg_arena *a, pg_index i);

/* A Python-defined node (PG_PYOP): inputs in[0..n) (repeats allowed), the
 * value given.  Returns its index (one reference, the caller's), PG_EINVAL
 * for a dead input, PG_ENOMEM. */
int64_t pg_custom(pg_arena *a, const pg_index *in, size_t n, double value);

/* Bulk access over n indices.  All indices are checked first: PG_EINVAL if
 * any is dead, and then nothing is read or written.  `in`: n doubles at
 * any address (a caller's buffer, a numpy array at a byte offset: read as
 * bytes, so no alignment is assumed). */
int pg_get_data(pg_arena *a, const pg_index *idx, size_t n, double *out);
int pg_get_grad(pg_arena *a, const pg_index *idx, size_t n, double *out);
int pg_put_data(pg_arena *a, const pg_index *idx, size_t n, const void *in);
int pg_put_grad(pg_arena *a, const pg_index *idx, size_t n, const void *in);
int pg_fill_grad(pg_arena *a, const pg_index *idx, size_t n, double g);

/* Optimizer steps over parameters idx[0..n), in C.  State arrays (velocity,
 * m, v) have n doubles owned by the caller, zeroed before the first step.
 * SGD as torch.optim.SGD (momentum 0 leaves velocity unused, may be NULL):
 *   g = grad + wd*data; buf = momentum*buf + g; data -= lr * buf
 * Adam as torch.optim.Adam, t = step number from 1.  PG_EINVAL as bulk. */
int pg_sgd_step(pg_arena *a, const pg_index *idx, size_t n, double lr,
                double momentum, double weight_decay, double *velocity);
int pg_adam_step(pg_arena *a, const pg_index *idx, size_t n, double lr,
                 double beta1, double beta2, double eps, double weight_decay,
                 int64_t t, double *m, double *v);

/* Tapes: the subgraph under some roots frozen into creation (topological)
 * order, replayed without Python.  A tape holds a reference on every node
 * it covers, so they stay alive until pg_tape_free. */
typedef struct pg_tape pg_tape;

/* Records the nodes reachable from roots[0..n).  *out gets the tape (owned
 * by the caller, free with pg_tape_free).  PG_EINVAL for a dead root or
 * n == 0, PG_ETYPE if a Python-defined node is among them, PG_EBUSY while a
 * sweep is paused, PG_ENOMEM; on error *out is NULL and the arena
 * unchanged. */
int pg_compile(pg_arena *a, const pg_index *roots, size_t n, pg_tape **out);

/* Recomputes every non-leaf node's value from the current leaf values, in
 * order.  On a math error (PG_EDOMAIN...) stops there: *failed_op gets that
 * node's op and *failed_node its index; nodes before it hold new values, the
 * rest old ones, and the tape stays usable. */
int pg_tape_forward(pg_tape *t, int *failed_op, pg_index *failed_node);

/* Zeroes every non-leaf grad in the tape, sets roots[r]'s grad to 1 and
 * sweeps back over the nodes reachable from it: leaf grads accumulate, as
 * with pg_backward.  PG_EINVAL if r is out of range. */
int pg_tape_backward(pg_tape *t, size_t r);

/* Forward mode over the tape (CppAD's Forward(1)): result[r] = the tangent
 * of root r given the tangents of nodes ins[0..nin) of the tape (their own
 * inputs do not move them; other leaves have no tangent: a node nothing
 * moves adds no term, not even 0 times an infinite partial), from the local
 * partials of the last pg_tape_forward (or of compile time).  No grad
 * changes.  PG_EINVAL if an input is given twice, or is not a node of the
 * tape (unless absent_ok: then it moves nothing; a tape compiled with
 * inputs some root does not depend on lacks them); PG_EBUSY while a sweep
 * is paused (it flags the tape's nodes, as a sweep does); PG_ENOMEM. */
int pg_tape_jvp(pg_tape *t, const pg_index *ins, const double *tangents, size_t nin,
                int absent_ok, double *result);

/* The Jacobian of the tape's roots (JAX's jacrev on a compiled function):
 * out[r * nin + c] = d root r / d ins[c], for any nodes ins[c] of the tape
 * (leaves or not), from the local partials of the last pg_tape_forward (or
 * of compile time) -- row r is what pg_tape_backward(t, r) would add to
 * zeroed grads, to the bit.  Eight roots per reverse sweep, the sweeps on
 * `threads` threads (0: every core; the same bits for any number).  No
 * value or grad changes.  PG_EINVAL if an input is dead, or is not a node
 * of the tape (unless absent_ok: then its column is zeros); PG_ENOMEM. */
int pg_tape_jacobian(pg_tape *t, const pg_index *ins, size_t nin, double *out, int threads,
                     int absent_ok);

/* The tape replayed over rows (CasADi's map, JAX's vmap): ins[0..nin) are
 * leaves of the tape that each row feeds, rows the nrows x nin doubles
 * (row-major, at any address, as pg_put_data's); every other leaf is a
 * parameter, its value taken as the
 * call starts.  Outputs, each optional (NULL): values[b * nroots + q] the
 * value of root q for row b; reduced[q] its sum over the rows (reduce 1)
 * or mean (reduce 2); in_grads[b * nin + i] the derivative of the reduced
 * root broot (of its sum for reduce 0) with respect to input i of row b.
 * With broot >= 0 and add_grads, that derivative with respect to every
 * parameter is added into its grad (broot < 0: no backward sweep).
 * threads: how many (0: every core).  The results are the same, bit for
 * bit, whatever the number of threads; no value changes, no other grad.
 * A math error: its status, bad[0] the lowest row with one and bad[1] its
 * op, and no grad changed (bad[0] stays -1 otherwise); values and in_grads
 * may be partly written (rows of blocks that ran).  An input the roots do
 * not depend on is read by nothing (its in_grads: 0).  PG_EINVAL if an
 * input is a node the tape computes, or is given twice, or if in_grads is
 * given with broot < 0 (no sweep would write it); PG_ENOMEM. */
int pg_tape_map(pg_tape *t, const pg_index *ins, size_t nin, const void *rows,
                size_t nrows, int broot, int reduce, int add_grads, double *values, double *reduced,
                double *in_grads, int threads, int64_t bad[2]);

size_t pg_tape_size(pg_tape *t);    /* nodes covered, leaves included */
void pg_tape_free(pg_tape *t);      /* drops the tape's references; NULL ok; not
                                     * while another call uses t */
void pg_tape_free_at(pg_tape **t);  /* pg_tape_free(*t), then *t = NULL */

/* State Python keeps for a node (its label, a Python-defined op) lives in
 * Python under a key that is never reused; the arena maps each such node to
 * its key, and queues the keys of nodes that die.
 *   pg_side_key: node i's key, 0 if it has none (or i is dead);
 *   pg_side_set: gives node i the key `key` (non-zero) unless it has one:
 *     *out gets the key node i has now.  PG_EINVAL, PG_ENOMEM;
 *   pg_side_freed: copies up to cap queued keys (oldest first) into out,
 *     returns how many, and *mark gets the queue's position; the keys stay
 *     queued until
 *   pg_side_commit(mark, n), which drops those n, unless the queue moved
 *     since the peek (another thread committed them): then it does nothing.
 * Reading twice is harmless, so an interrupt between peek and commit loses
 * nothing. */
uint64_t pg_side_key(pg_arena *a, pg_index i);
int pg_side_set(pg_arena *a, pg_index i, uint64_t key, uint64_t *out);
size_t pg_side_freed(pg_arena *a, uint64_t *out, size_t cap, uint64_t *mark);
void pg_side_commit(pg_arena *a, uint64_t mark, size_t n);

/* Node i's inputs as pg_inputs, each with a new reference for the caller,
 * and their number in *n (written only on success, like in[]): a call whose
 * results sit in caller-owned memory, so a caller interrupted just after
 * it can still find (and release) what it now owns.  PG_EINVAL, PG_ENOMEM
 * (then nothing is taken). */
int pg_take_inputs(pg_arena *a, pg_index i, pg_index *in, size_t cap, int64_t *n);

/* Nodes this thread made for the caller in its last calls (up to 16) that
 * are still alive and still have exactly the one reference they were
 * returned with: the candidates for a result the caller lost (a signal
 * handler raised between the call's return and the caller taking the
 * index).  Only the caller can tell which of them it does own.  Writes at
 * most cap indices and forgets all of this thread's entries for a. */
size_t pg_unclaimed(pg_arena *a, pg_index *out, size_t cap);

/* fork(): call pg_fork_prepare in the forking thread just before fork()
 * (it waits for any call in progress and holds the arena's lock), then
 * pg_fork_parent in the parent or pg_fork_child in the child: both release
 * it, so the child can use the arena although the threads that may have
 * been using it are gone. */
void pg_fork_prepare(pg_arena *a);
void pg_fork_parent(pg_arena *a);
void pg_fork_child(pg_arena *a);

/* Statistics: live nodes, node slots allocated (live, free and spare), and
 * bytes the arena holds (its mapped columns, less the pages of empty chunks
 * handed back to the system, plus its bookkeeping and n-ary lists). */
size_t pg_live_nodes(pg_arena *a);
size_t pg_capacity(pg_arena *a);
size_t pg_arena_bytes(pg_arena *a);

/* Caps the number of live nodes (0 = only the 32-bit index limit).  Beyond
 * it, node creation returns PG_ENOMEM.  For tests of the out-of-memory path. */
void pg_set_node_limit(pg_arena *a, size_t max_nodes);
/* cffi-cdef-end */

#include "ops.h"   /* enum pg_op and every fact about each op */

#endif /* PYGRAD_H */
