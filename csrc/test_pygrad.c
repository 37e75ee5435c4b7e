/* test_pygrad.c -- the C library tested on its own (make test-c).
 * Gradients are checked against hand-derived formulas and against central
 * finite differences computed from the forward values only.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "arena.h"   /* white-box: test_index_space_exhausted */

static int failures, checks;

#define CHECK(cond)                                                        \
    do {                                                                   \
        checks++;                                                          \
        if (!(cond)) {                                                     \
            failures++;                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
        }                                                                  \
    } while (0)

#define CLOSE(a, b, tol) CHECK(fabs((a) - (b)) <= (tol) * (1.0 + fabs(b)))

static pg_index L(pg_arena *a, double v)
{
    int64_t r = pg_leaf(a, v);
    if (r < 0) {
        fprintf(stderr, "pg_leaf failed: %lld\n", (long long)r);
        exit(1);
    }
    return (pg_index)r;
}

static pg_index O1(pg_arena *a, int op, pg_index x, double k)
{
    int64_t r = pg_op1(a, op, x, k);
    if (r < 0) {
        fprintf(stderr, "pg_op1(%d) failed: %lld\n", op, (long long)r);
        exit(1);
    }
    return (pg_index)r;
}

static pg_index O2(pg_arena *a, int op, pg_index x, pg_index y)
{
    int64_t r = pg_op2(a, op, x, y);
    if (r < 0) {
        fprintf(stderr, "pg_op2(%d) failed: %lld\n", op, (long long)r);
        exit(1);
    }
    return (pg_index)r;
}

/* The seed exercise: f(a,b,c) = -a**3 + sin(3b) - 1/c + b**2.5 - a**0.5.
 * Builds it and returns the root; intermediate handles are released at once,
 * so only the graph's own references keep the interior alive. */
static pg_index build_f(pg_arena *a, pg_index A, pg_index B, pg_index C)
{
    pg_index t1 = O1(a, PG_POWC, A, 3.0);
    pg_index t2 = O1(a, PG_NEG, t1, 0);
    pg_index t3 = O1(a, PG_MULC, B, 3.0);
    pg_index t4 = O1(a, PG_SIN, t3, 0);
    pg_index t5 = O2(a, PG_ADD, t2, t4);
    pg_index t6 = O1(a, PG_RDIVC, C, 1.0);
    pg_index t7 = O2(a, PG_SUB, t5, t6);
    pg_index t8 = O1(a, PG_POWC, B, 2.5);
    pg_index t9 = O2(a, PG_ADD, t7, t8);
    pg_index t10 = O1(a, PG_POWC, A, 0.5);
    pg_index f = O2(a, PG_SUB, t9, t10);
    pg_index tmp[] = {t1, t2, t3, t4, t5, t6, t7, t8, t9, t10};
    CHECK(pg_decref_many(a, tmp, 10) == 10);
    return f;
}

static void test_seed(void)
{
    pg_arena *a = pg_arena_new();
    pg_index A = L(a, 2), B = L(a, 3), C = L(a, 4);
    pg_index f = build_f(a, A, B, C);
    CLOSE(pg_data(a, f), 6.336362190988558, 1e-15);
    CHECK(pg_backward(a, f) == PG_OK);
    CLOSE(pg_grad(a, A), -12.353553390593273, 1e-12);
    CLOSE(pg_grad(a, B), 10.25699027111255, 1e-12);
    CLOSE(pg_grad(a, C), 0.0625, 1e-12);
    CHECK(pg_live_nodes(a) == 14);   /* 3 leaves + 11 ops, held by f */
    pg_decref(a, f);
    CHECK(pg_live_nodes(a) == 3);
    pg_arena_free(a);
}

/* The facts derived from ops.h's table agree with each other for every op:
 * the kind fixes arity, stored partials and k; only formula kinds evaluate. */
static void test_op_table(void)
{
    CHECK(pg_op_kind(PG_FREE) == PG_EINVAL && pg_op_kind(PG_NOPS) == PG_EINVAL);
    for (int op = PG_LEAF; op < PG_NOPS; op++) {
        int kind = pg_op_kind(op);
        CHECK(kind >= PG_KIND_LEAF && kind <= PG_KIND_PYTHON);
        CHECK(pg_is_nary(op) == (kind == PG_KIND_NARY));
        CHECK(pg_has_list(op) == (kind == PG_KIND_NARY || kind == PG_KIND_PYTHON));
        CHECK(pg_has_k(op) == (kind == PG_KIND_CONST));
        CHECK(pg_nparts(op) == (pg_arity(op) == 1 || pg_arity(op) == 2 ? pg_arity(op) : 0));
        double v, dx, dy;
        int formula = kind == PG_KIND_BINARY || kind == PG_KIND_CONST || kind == PG_KIND_UNARY;
        CHECK((pg_eval(op, 0.5, 0.25, 2.0, &v, &dx, &dy) != PG_EINVAL) == formula);
        if (pg_fixed_partials(op))
            CHECK(formula);
    }
}

/* Every op's derivative against a central difference of its own forward. */
static void test_ops_fd(void)
{
    const double x0 = 1.3, y0 = 0.7, k = 2.5, h = 1e-6;
    /* every one-input op of the table (ops.h), so a new row is tested */
    for (int op = 0; op < PG_NOPS; op++) {
        if (pg_arity(op) != 1)
            continue;
        pg_arena *a = pg_arena_new();
        pg_index x = L(a, x0);
        pg_index r = O1(a, op, x, k);
        pg_backward(a, r);
        pg_index xp = L(a, x0 + h), xm = L(a, x0 - h);
        pg_index rp = O1(a, op, xp, k), rm = O1(a, op, xm, k);
        double fd = (pg_data(a, rp) - pg_data(a, rm)) / (2 * h);
        CLOSE(pg_grad(a, x), fd, 1e-7);
        pg_arena_free(a);
    }
    for (int op = 0; op < PG_NOPS; op++) {
        if (pg_arity(op) != 2)
            continue;
        pg_arena *a = pg_arena_new();
        pg_index x = L(a, x0), y = L(a, y0);
        pg_index r = O2(a, op, x, y);
        pg_backward(a, r);
        for (int which = 0; which < 2; which++) {
            double dxp = which == 0 ? h : 0, dyp = which == 1 ? h : 0;
            pg_index rp = O2(a, op, L(a, x0 + dxp), L(a, y0 + dyp));
            pg_index rm = O2(a, op, L(a, x0 - dxp), L(a, y0 - dyp));
            double fd = (pg_data(a, rp) - pg_data(a, rm)) / (2 * h);
            CLOSE(pg_grad(a, which == 0 ? x : y), fd, 1e-7);
        }
        pg_arena_free(a);
    }
}

/* Each math error is reported, and the arena is exactly as before. */
static void test_errors(void)
{
    pg_arena *a = pg_arena_new();
    pg_index zero = L(a, 0.0), neg = L(a, -2.0), big = L(a, 1000.0);
    pg_index inf = L(a, INFINITY), ten = L(a, 10.0);
    size_t live = pg_live_nodes(a);
    CHECK(pg_op1(a, PG_LOG, zero, 0) == PG_EDOMAIN);
    CHECK(pg_op1(a, PG_LOG, neg, 0) == PG_EDOMAIN);
    CHECK(pg_op2(a, PG_DIV, ten, zero) == PG_EZERODIV);
    CHECK(pg_op1(a, PG_DIVC, ten, 0.0) == PG_EZERODIV);
    CHECK(pg_op1(a, PG_RDIVC, zero, 1.0) == PG_EZERODIV);
    CHECK(pg_op1(a, PG_EXP, big, 0) == PG_ERANGE);
    CHECK(pg_op1(a, PG_POWC, neg, 0.5) == PG_EDOMAIN);
    CHECK(pg_op1(a, PG_POWC, zero, -1.0) == PG_EZERODIV);
    CHECK(pg_op1(a, PG_POWC, ten, 400.0) == PG_ERANGE);
    CHECK(pg_op2(a, PG_POW, neg, L(a, 0.5)) == PG_EDOMAIN);
    CHECK(pg_op1(a, PG_SIN, inf, 0) == PG_EDOMAIN);
    live++;   /* the 0.5 leaf above */
    /* not errors, as in Python: exp(inf), (-2)**3, 0**0, log(inf) */
    CHECK(pg_op1(a, PG_EXP, inf, 0) >= 0);
    CHECK(pg_op1(a, PG_POWC, neg, 3.0) >= 0);
    CHECK(pg_op1(a, PG_POWC, zero, 0.0) >= 0);
    CHECK(pg_op1(a, PG_LOG, inf, 0) >= 0);
    live += 4;
    CHECK(pg_live_nodes(a) == live);
    /* bad indices and op codes */
    CHECK(pg_op1(a, PG_ADD, ten, 0) == PG_EINVAL);
    CHECK(pg_op2(a, PG_EXP, ten, ten) == PG_EINVAL);
    CHECK(pg_op1(a, 999, ten, 0) == PG_EINVAL);
    CHECK(pg_op1(a, PG_EXP, 123456789u, 0) == PG_EINVAL);
    CHECK(pg_backward(a, 123456789u) == PG_EINVAL);
    CHECK(pg_decref(a, 123456789u) == PG_EINVAL);
    CHECK(isnan(pg_data(a, 123456789u)));
    CHECK(pg_live_nodes(a) == live);
    pg_arena_free(a);
}

/* micrograd's accumulation: a second backward adds again, the root is
 * reset to 1; a node used twice gets both contributions. */
static void test_accumulate(void)
{
    pg_arena *a = pg_arena_new();
    pg_index x = L(a, 3.0);
    pg_index y = O2(a, PG_MUL, x, x);        /* x*x: dy/dx = 2x = 6 */
    pg_index z = O1(a, PG_ADDC, y, 1.0);
    pg_backward(a, z);
    CLOSE(pg_grad(a, x), 6.0, 0);
    CLOSE(pg_grad(a, y), 1.0, 0);
    pg_backward(a, z);
    /* y.grad = 2 now, x gets 6 + 2*3 + 2*3 = 18, exactly as micrograd */
    CLOSE(pg_grad(a, y), 2.0, 0);
    CLOSE(pg_grad(a, x), 18.0, 0);
    CLOSE(pg_grad(a, z), 1.0, 0);
    pg_arena_free(a);
}

/* A deep chain: backward and free without recursion. */
static void test_chain(size_t n)
{
    pg_arena *a = pg_arena_new();
    pg_index x = L(a, 0.5);
    pg_index y = x;
    pg_incref(a, y);
    for (size_t j = 0; j < n; j++) {
        pg_index t = O1(a, PG_MULC, y, 1.0);
        pg_index u = O1(a, PG_ADDC, t, 0.0);
        pg_decref(a, t);
        pg_decref(a, y);
        y = u;
    }
    CHECK(pg_live_nodes(a) == 2 * n + 1);
    CHECK(pg_backward(a, y) == PG_OK);
    CLOSE(pg_grad(a, x), 1.0, 0);
    pg_decref(a, y);
    CHECK(pg_live_nodes(a) == 1);
    pg_decref(a, x);
    CHECK(pg_live_nodes(a) == 0);
    pg_arena_free(a);
}

/* Dropped graphs give their chunks back: memory stays flat over rounds,
 * while a long-lived parameter keeps its old chunk alive. */
static void test_reuse(void)
{
    pg_arena *a = pg_arena_new();
    pg_index w = L(a, 0.5);
    size_t bytes = 0;
    for (int round = 0; round < 200; round++) {
        pg_index s = L(a, 0.0);
        for (int j = 0; j < 10000; j++) {
            pg_index t = O1(a, PG_MULC, w, (double)j);
            pg_index u = O2(a, PG_ADD, s, t);
            pg_decref(a, t);
            pg_decref(a, s);
            s = u;
        }
        pg_backward(a, s);
        pg_decref(a, s);
        if (round == 1)
            bytes = pg_arena_bytes(a);
    }
    CHECK(pg_arena_bytes(a) == bytes);
    CHECK(pg_live_nodes(a) == 1);
    /* 200 backward calls each added sum(j) = 49995000 */
    CLOSE(pg_grad(a, w), 200 * 49995000.0, 0);
    pg_arena_free(a);
}

static void test_limit(void)
{
    pg_arena *a = pg_arena_new();
    pg_set_node_limit(a, 3);
    pg_index x = L(a, 1.0), y = L(a, 2.0);
    pg_index s = O2(a, PG_ADD, x, y);
    CHECK(pg_leaf(a, 1.0) == PG_ENOMEM);
    CHECK(pg_op2(a, PG_MUL, s, x) == PG_ENOMEM);
    CHECK(pg_live_nodes(a) == 3);
    CHECK(pg_backward(a, s) == PG_OK);
    CLOSE(pg_grad(a, x), 1.0, 0);
    pg_set_node_limit(a, 0);
    CHECK(pg_leaf(a, 1.0) >= 0);
    pg_arena_free(a);
}

/* Side keys: set once per node, read back, queued when the node dies,
 * peeked twice and dropped once. */
static void test_side_keys(void)
{
    pg_arena *a = pg_arena_new();
    pg_index x = L(a, 1.0), y = L(a, 2.0);
    pg_index s = O2(a, PG_ADD, x, y);
    uint64_t k = 0, mark = 0, mark2 = 0, out[4];
    CHECK(pg_side_key(a, s) == 0);
    CHECK(pg_side_set(a, s, 7, &k) == PG_OK && k == 7);
    CHECK(pg_side_set(a, s, 9, &k) == PG_OK && k == 7);   /* keeps its key */
    CHECK(pg_side_set(a, y, 8, &k) == PG_OK && k == 8);
    CHECK(pg_side_set(a, 424242u, 3, &k) == PG_EINVAL);
    CHECK(pg_side_key(a, s) == 7 && pg_side_key(a, y) == 8);
    CHECK(pg_side_freed(a, out, 4, &mark) == 0);
    pg_decref(a, y);                      /* s still holds y */
    CHECK(pg_side_freed(a, out, 4, &mark) == 0);
    pg_decref(a, s);                      /* frees s, then y */
    CHECK(pg_side_freed(a, out, 4, &mark) == 2);
    CHECK((out[0] == 7 && out[1] == 8) || (out[0] == 8 && out[1] == 7));
    CHECK(pg_side_freed(a, out, 4, &mark2) == 2 && mark2 == mark);  /* a peek */
    pg_side_commit(a, mark, 2);
    pg_side_commit(a, mark2, 2);          /* stale: does nothing */
    CHECK(pg_side_freed(a, out, 4, &mark) == 0);
    /* many keyed nodes: the map grows and every key is found again */
    pg_index v[3000];
    for (int j = 0; j < 3000; j++) {
        v[j] = L(a, j);
        CHECK(pg_side_set(a, v[j], 100 + (uint64_t)j, &k) == PG_OK);
    }
    for (int j = 0; j < 3000; j += 2)
        pg_decref(a, v[j]);
    for (int j = 1; j < 3000; j += 2)
        CHECK(pg_side_key(a, v[j]) == 100 + (uint64_t)j);
    CHECK(pg_side_freed(a, out, 4, &mark) == 4);
    pg_arena_free(a);
}

/* A result the caller did not take is found again; one it did is not. */
static void test_unclaimed(void)
{
    pg_arena *a = pg_arena_new();
    pg_index out[16];
    pg_index x = L(a, 1.0);
    CHECK(pg_incref(a, x) == PG_OK);            /* x: two owners */
    pg_index y = O1(a, PG_MULC, x, 2.0);        /* y: one, the caller's */
    size_t n = pg_unclaimed(a, out, 16);
    CHECK(n == 1 && out[0] == y);
    CHECK(pg_unclaimed(a, out, 16) == 0);       /* forgotten once read */
    pg_index z = O1(a, PG_EXP, y, 0);
    pg_decref(a, z);                            /* dead: not a candidate */
    CHECK(pg_unclaimed(a, out, 16) == 0);
    pg_arena_free(a);
}

/* Long-lived leaves scattered over many chunks (one kept a "step") do not
 * keep those chunks 1023/1024 empty: later leaves fill the holes, and the
 * arena stays proportional to its live nodes. */
static void test_holes_for_leaves(void)
{
    pg_arena *a = pg_arena_new();
    pg_index p = L(a, 0.5);
    pg_index kept[400];
    for (int step = 0; step < 400; step++) {
        pg_index x = L(a, step * 1e-3), y = O2(a, PG_MUL, p, x);
        for (int j = 0; j < 1500; j++) {
            pg_index t = O1(a, PG_ADDC, y, 1.0);
            pg_decref(a, y);
            y = t;
        }
        kept[step] = L(a, pg_data(a, y));       /* Value(loss.data) */
        CHECK(pg_backward(a, y) == PG_OK);
        pg_decref(a, y);
        pg_decref(a, x);
    }
    CHECK(pg_live_nodes(a) == 401);
    /* 401 live nodes; before holes were filled this held ~400 chunks */
    CHECK(pg_capacity(a) <= 16 * PG_CHUNK);
    CLOSE(pg_grad(a, p), 1e-3 * (399 * 400 / 2), 1e-12);   /* sum of the x */
    for (int step = 0; step < 400; step++) {   /* each a leaf that works */
        pg_index k2 = O1(a, PG_MULC, kept[step], 2.0);
        CHECK(pg_backward(a, k2) == PG_OK);
        CLOSE(pg_grad(a, kept[step]), 2.0, 0);
        pg_decref(a, k2);
        pg_decref(a, kept[step]);
    }
    CHECK(pg_live_nodes(a) == 1);
    pg_arena_free(a);
}

/* A node with inputs kept a step (Value(loss.data) * 2): it stays where the
 * frontier put it (creation order), every backward is still right, and all
 * of it is freed.  (Such kept nodes can hold a chunk each: see the README's
 * guarantees.) */
static void test_kept_nodes_with_inputs(void)
{
    pg_arena *a = pg_arena_new();
    pg_index p = L(a, 0.5), kept[400], made[400];
    for (int step = 0; step < 400; step++) {
        pg_index x = L(a, 1.0 + step * 1e-3), y = O2(a, PG_MUL, p, x);
        for (int j = 0; j < 1500; j++) {
            pg_index t = O1(a, PG_ADDC, y, 1.0);
            pg_decref(a, y);
            y = t;
        }
        kept[step] = L(a, pg_data(a, y));
        made[step] = O1(a, PG_MULC, kept[step], 2.0);
        CHECK(pg_backward(a, y) == PG_OK);
        pg_decref(a, y);
        pg_decref(a, x);
    }
    CHECK(pg_live_nodes(a) == 801);
    CLOSE(pg_grad(a, p), 400.0 + 1e-3 * (399 * 400 / 2), 1e-9);
    for (int step = 0; step < 400; step++) {
        CHECK(pg_backward(a, made[step]) == PG_OK);
        CLOSE(pg_grad(a, kept[step]), 2.0, 0);
        CLOSE(pg_data(a, made[step]), 2.0 * pg_data(a, kept[step]), 0);
        pg_decref(a, made[step]);
        pg_decref(a, kept[step]);
    }
    CHECK(pg_live_nodes(a) == 1);
    pg_arena_free(a);
}

/* A node in slot 0 of a reused chunk whose input 0 sits in the last slot
 * of the chunk below it by index, made long before: adjacent indices, yet
 * the walk reaches the chunk made before the reused one first.  The add
 * the eager sweep holds back for input 0 (backward.c's carry, meant for
 * the slot below) must land before the walk touches any other grad, not
 * be lost. */
static void test_carry_across_reused_chunk(void)
{
    pg_arena *a = pg_arena_new();
    pg_index p = L(a, 0.5), q = L(a, 0.25), x = O1(a, PG_MULC, p, 1.0);
    while ((x & (PG_CHUNK - 1)) != PG_CHUNK - 1) {  /* a chain to chunk 0's top */
        pg_index t = O1(a, PG_ADDC, x, 0.001);
        pg_decref(a, x);
        x = t;
    }
    pg_index doomed[PG_CHUNK], kept[PG_CHUNK];
    for (uint32_t j = 0; j < PG_CHUNK; j++)                /* chunk 1, whole */
        doomed[j] = O1(a, PG_MULC, q, 1.0);
    pg_index z = O1(a, PG_MULC, q, 2.0);              /* chunk 2, slot 0 */
    for (uint32_t j = 0; j < PG_CHUNK; j++)                /* chunk 1 empties */
        pg_decref(a, doomed[j]);
    for (uint32_t j = 1; j < PG_CHUNK; j++)                /* chunk 2 fills */
        kept[j] = O1(a, PG_MULC, q, 3.0);
    pg_index y = O2(a, PG_MUL, x, z);                 /* chunk 1 again */
    CHECK(y == x + 1 && (y & (PG_CHUNK - 1)) == 0);   /* the case, made */
    CHECK(pg_backward(a, y) == PG_OK);
    CHECK(pg_grad(a, x) == pg_data(a, z));
    CHECK(pg_grad(a, z) == pg_data(a, x));
    CHECK(pg_grad(a, p) == pg_data(a, z));            /* through 1021 adds */
    CHECK(pg_grad(a, q) == 2.0 * pg_data(a, x));
    for (uint32_t j = 1; j < PG_CHUNK; j++)
        pg_decref(a, kept[j]);
    pg_arena_free(a);
}

/* The tail's frontier: a graph rebuilt after the last one died takes the
 * same slots; a leaf kept among them is stepped over; nodes with inputs
 * stay in the order they were made, above every live one. */
static void test_frontier(void)
{
    pg_arena *a = pg_arena_new();
    pg_index w = L(a, 0.5), first[50], keep = PG_NONE;
    for (int round = 0; round < 3; round++) {
        pg_index y = w, made[50];
        for (int j = 0; j < 50; j++) {
            made[j] = O1(a, PG_MULC, y, 1.0);
            if (round == 0)
                first[j] = made[j];
            else if (round == 1)   /* the same slots, then one up: the leaf */
                CHECK(made[j] == first[j] + (j > 20));
            else
                CHECK(made[j] > made[j > 0 ? j - 1 : 0] || j == 0);
            if (j == 20 && round == 1)
                keep = L(a, 7.0);                    /* a leaf among them */
            y = made[j];
        }
        CHECK(pg_backward(a, y) == PG_OK);
        for (int j = 49; j >= 0; j--)
            pg_decref(a, made[j]);
    }
    CHECK(pg_live_nodes(a) == 2 && pg_capacity(a) == 4 * PG_CHUNK);
    pg_decref(a, keep);
    pg_arena_free(a);
}

/* Leaves in holes of old chunks, used by nodes made later: backward is
 * right whatever the slots, and a leaf reached from a far root is never
 * visited (its chunk is skipped). */
static void test_far_leaves(void)
{
    pg_arena *a = pg_arena_new();
    pg_index w = L(a, 3.0), old = O1(a, PG_MULC, w, 2.0);   /* a far non-leaf */
    pg_index junk[5000];
    for (int j = 0; j < 5000; j++)
        junk[j] = L(a, 1.0);
    for (int j = 0; j < 5000; j += 3)
        pg_decref(a, junk[j]);                  /* holes everywhere */
    pg_index x = L(a, 0.25);                    /* lands in a hole */
    CHECK(x < junk[4999]);                      /* below the bump pointer */
    pg_index y = O2(a, PG_MUL, w, x);
    pg_index z = O2(a, PG_MUL, y, x);           /* w x^2 */
    pg_index u = O2(a, PG_MUL, old, x);         /* reaches x, then old: the
                                                 * walk passes x's slot */
    CHECK(pg_backward(a, z) == PG_OK);
    CLOSE(pg_grad(a, w), 0.0625, 0);
    CLOSE(pg_grad(a, x), 2 * 3.0 * 0.25, 0);
    CLOSE(pg_grad(a, y), 0.25, 0);
    for (uint32_t c = 0; c < a->nchunks; c++)
        CHECK(!pg__chunk_marked(a, c));
    /* a tape over u = 2w * x: the leaf x, in a hole between u and old, is
     * recorded, not visited as a node */
    pg_tape *t = NULL;
    CHECK(pg_compile(a, &u, 1, &t) == PG_OK && pg_tape_size(t) == 4);
    pg_set_grad(a, w, 0.0);
    pg_set_grad(a, x, 0.0);
    CHECK(pg_tape_backward(t, 0) == PG_OK);
    CLOSE(pg_grad(a, w), 2 * 0.25, 0);
    CLOSE(pg_grad(a, x), 6.0, 0);
    pg_tape_free(t);
    for (uint32_t c = 0; c < a->nchunks; c++)
        CHECK(!pg__chunk_marked(a, c));
    pg_arena_free(a);
}

/* A big graph built and dropped hands its empty chunks' pages back. */
static void test_pages_handed_back(void)
{
    pg_arena *a = pg_arena_new();
    size_t before = pg_arena_bytes(a);
    pg_index y = L(a, 1.0);
    for (int j = 0; j < 2000000; j++) {
        pg_index t = O1(a, PG_MULC, y, 1.0);
        pg_decref(a, y);
        y = t;
    }
    size_t peak = pg_arena_bytes(a);
    CHECK(peak > before + (size_t)2000000 * PG_NODE_BYTES);
    pg_decref(a, y);
    size_t after = pg_arena_bytes(a);
    CHECK(after < before + PG_KEEP_EMPTY_BYTES + (size_t)4 * PG_CHUNK * PG_NODE_BYTES +
                      (size_t)a->nchunks_cap * sizeof(pg_chunk));
    pg_index z = L(a, 2.0);                     /* and the arena works on */
    pg_index u = O2(a, PG_MUL, z, z);
    CHECK(pg_backward(a, u) == PG_OK);
    CLOSE(pg_grad(a, z), 4.0, 0);
    pg_arena_free(a);
}

/* n-ary nodes: values in Python's sum() order, gradients by hand. */
static void test_nary(void)
{
    pg_arena *a = pg_arena_new();
    pg_index w[3] = {L(a, 0.5), L(a, -2.0), L(a, 4.0)};
    pg_index x[3] = {L(a, 3.0), L(a, 0.25), w[0]};   /* w[0] used twice */
    pg_index b = L(a, 0.125);
    int64_t d = pg_dot(a, w, x, 3, b, 0.0);
    CHECK(d >= 0);
    CLOSE(pg_data(a, (pg_index)d), 0.125 + 0.5 * 3.0 + -2.0 * 0.25 + 4.0 * 0.5, 0);
    CHECK(pg_ninputs(a, (pg_index)d) == 7);
    pg_backward(a, (pg_index)d);
    CLOSE(pg_grad(a, w[0]), 3.0 + 4.0, 0);   /* as weight, and as x[2] */
    CLOSE(pg_grad(a, w[2]), 0.5, 0);
    CLOSE(pg_grad(a, x[1]), -2.0, 0);
    CLOSE(pg_grad(a, b), 1.0, 0);
    int64_t s = pg_sum(a, x, 3, PG_NONE_INDEX, 10.0);
    CLOSE(pg_data(a, (pg_index)s), 10.0 + 3.0 + 0.25 + 0.5, 0);
    CLOSE(pg_constant(a, (pg_index)s), 10.0, 0);
    pg_index dead[1] = {123456u};
    size_t live = pg_live_nodes(a);
    CHECK(pg_sum(a, dead, 1, PG_NONE_INDEX, 0) == PG_EINVAL);
    CHECK(pg_dot(a, w, x, 3, 99999u, 0) == PG_EINVAL);
    CHECK(pg_live_nodes(a) == live);
    pg_index drop[] = {(pg_index)d, (pg_index)s};
    pg_decref_many(a, drop, 2);
    CHECK(pg_live_nodes(a) == 6);   /* the six leaves */
    pg_arena_free(a);   /* with n-ary lists still around: no leak (valgrind) */
}

/* Tapes replay what eager mode computes, and survive errors. */
static void test_tape(void)
{
    pg_arena *a = pg_arena_new();
    pg_index x = L(a, 2.0), y = L(a, 0.5);
    pg_index p = O2(a, PG_MUL, x, y);
    pg_index l = O1(a, PG_LOG, p, 0);
    pg_index f = O2(a, PG_ADD, l, x);
    pg_tape *t;
    CHECK(pg_compile(a, &f, 1, &t) == PG_OK);
    CHECK(pg_tape_size(t) == 5);
    size_t own = pg_live_nodes(a) - 5;   /* the tape's sinks */
    CHECK(own >= 1);
    int op;
    pg_index bad;
    pg_set_data(a, x, 4.0);
    CHECK(pg_tape_forward(t, &op, &bad) == PG_OK);
    CLOSE(pg_data(a, f), log(2.0) + 4.0, 1e-15);
    pg_tape_backward(t, 0);
    CLOSE(pg_grad(a, x), 1.0 / 4.0 + 1.0, 1e-15);
    CLOSE(pg_grad(a, y), 1.0 / 0.5, 1e-15);
    pg_set_data(a, x, -1.0);
    CHECK(pg_tape_forward(t, &op, &bad) == PG_EDOMAIN);
    CHECK(op == PG_LOG && bad == l);
    pg_set_data(a, x, 2.0);
    CHECK(pg_tape_forward(t, &op, &bad) == PG_OK);
    CLOSE(pg_data(a, f), 0.0 + 2.0, 1e-15);
    CHECK(pg_tape_backward(t, 1) == PG_EINVAL);
    pg_index drop[] = {p, l, f};
    pg_decref_many(a, drop, 3);
    CHECK(pg_live_nodes(a) == 5 + own);   /* the tape holds them */
    pg_tape_free(t);
    CHECK(pg_live_nodes(a) == 2);
    pg_index deadroot = 777777u;
    CHECK(pg_compile(a, &deadroot, 1, &t) == PG_EINVAL && t == NULL);
    pg_arena_free(a);
}

static void test_bulk(void)
{
    pg_arena *a = pg_arena_new();
    pg_index v[3] = {L(a, 1.0), L(a, 2.0), L(a, 3.0)};
    double in[3] = {4.0, 5.0, 6.0}, out[3];
    CHECK(pg_put_data(a, v, 3, in) == PG_OK);
    CHECK(pg_get_data(a, v, 3, out) == PG_OK && out[2] == 6.0);
    CHECK(pg_fill_grad(a, v, 3, 1.0) == PG_OK);
    CHECK(pg_sgd_step(a, v, 3, 0.5, 0.0, 0.0, NULL) == PG_OK);
    CHECK(pg_get_data(a, v, 3, out) == PG_OK && out[0] == 3.5 && out[2] == 5.5);
    pg_index bad[2] = {v[0], 424242u};
    CHECK(pg_put_data(a, bad, 2, in) == PG_EINVAL);
    CLOSE(pg_data(a, v[0]), 3.5, 0);   /* nothing written */
    /* side keys never used: reading must not touch the NULL queue */
    uint64_t q[4], mark;
    CHECK(pg_side_freed(a, q, 4, &mark) == 0);
    pg_arena_free(a);
}

/* The 32-bit index space cannot be filled for real (4.29e9 nodes, ~200 GB),
 * so pretend it is: every chunk index handed out and the tail chunk full.
 * Creating a node must then fail with PG_ENOMEM, leaving the graph usable. */
static void test_index_space_exhausted(void)
{
    pg_arena *a = pg_arena_new();
    pg_index x = L(a, 2.0);
    pg_index y = O1(a, PG_MULC, x, 3.0);
    while (pg_live_nodes(a) < PG_CHUNK)          /* fill the tail chunk */
        L(a, 0.0);
    uint32_t nchunks = a->nchunks, cap = a->nchunks_cap;
    a->nchunks = a->nchunks_cap = PG_MAX_CHUNKS;  /* "no index left" */
    CHECK(pg_leaf(a, 1.0) == PG_ENOMEM);
    CHECK(pg_op1(a, PG_EXP, y, 0) == PG_ENOMEM);
    CHECK(pg_op2(a, PG_MUL, x, y) == PG_ENOMEM);
    a->nchunks = nchunks;
    a->nchunks_cap = cap;
    CHECK(pg_live_nodes(a) == PG_CHUNK);
    CHECK(pg_backward(a, y) == PG_OK);
    CLOSE(pg_grad(a, x), 3.0, 0);
    CHECK(pg_leaf(a, 1.0) >= 0);                 /* and it grows again */
    pg_arena_free(a);
}

/* Threads building and backpropagating their own graphs in one arena. */
struct job { pg_arena *a; int bad; };

static void *worker(void *arg)
{
    struct job *j = arg;
    for (int round = 0; round < 50; round++) {
        pg_index A = L(j->a, 2), B = L(j->a, 3), C = L(j->a, 4);
        pg_index f = build_f(j->a, A, B, C);
        pg_backward(j->a, f);
        if (fabs(pg_grad(j->a, A) + 12.353553390593273) > 1e-12 ||
            fabs(pg_grad(j->a, B) - 10.25699027111255) > 1e-12)
            j->bad++;
        pg_index drop[] = {f, A, B, C};
        pg_decref_many(j->a, drop, 4);
    }
    return NULL;
}

static void test_threads(void)
{
    pg_arena *a = pg_arena_new();
    pthread_t t[4];
    struct job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct job){a, 0};
        pthread_create(&t[i], NULL, worker, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK(jobs[i].bad == 0);
    }
    CHECK(pg_live_nodes(a) == 0);
    pg_arena_free(a);
}

/* Gradients without touching grads: the seed exercise's gradient as
 * numbers, as nodes (then its Hessian against the hand-derived entries),
 * forward mode, and no grad changed anywhere. */
static void test_gradients(void)
{
    pg_arena *a = pg_arena_new();
    pg_index in[3] = {L(a, 2), L(a, 3), L(a, 4)};
    pg_index f = build_f(a, in[0], in[1], in[2]);
    pg_set_grad(a, in[0], 7.0);                      /* must survive */
    double g[3], one = 1.0;
    CHECK(pg_gradient(a, &f, &one, 1, in, 3, g) == PG_OK);
    CLOSE(g[0], -12.353553390593273, 1e-12);
    CLOSE(g[1], 10.25699027111255, 1e-12);
    CLOSE(g[2], 0.0625, 1e-12);
    CHECK(pg_grad(a, in[0]) == 7.0 && pg_grad(a, in[1]) == 0.0);
    /* as nodes: equal to the numbers, to the bit */
    pg_index gn[3], none = PG_NONE;
    size_t before = pg_live_nodes(a);
    CHECK(pg_gradient_graph(a, &f, &none, 1, in, 3, gn, NULL) == PG_OK);
    for (int j = 0; j < 3; j++)
        CHECK(pg_data(a, gn[j]) == g[j]);
    CHECK(pg_grad(a, in[0]) == 7.0);
    /* the Hessian: d2f/da2 = -6a + 0.25 a^-1.5, d2f/db2 = -9 sin(3b) +
     * 3.75 b^0.5, d2f/dc2 = -2/c^3, no mixed terms */
    double H[3][3];
    for (int r = 0; r < 3; r++)
        CHECK(pg_gradient(a, &gn[r], &one, 1, in, 3, H[r]) == PG_OK);
    CLOSE(H[0][0], -12.0 + 0.25 * pow(2.0, -1.5), 1e-12);
    CLOSE(H[1][1], -9.0 * sin(9.0) + 3.75 * sqrt(3.0), 1e-12);
    CLOSE(H[2][2], -2.0 / 64.0, 1e-12);
    CHECK(H[0][1] == 0 && H[0][2] == 0 && H[1][0] == 0 && H[1][2] == 0 &&
          H[2][0] == 0 && H[2][1] == 0);
    /* third derivative through the graph of the graph: d3f/da3 =
     * -6 - 0.375 a^-2.5 */
    pg_index g2[1];
    CHECK(pg_gradient_graph(a, &gn[0], &none, 1, in, 1, g2, NULL) == PG_OK);
    double t3;
    CHECK(pg_gradient(a, g2, &one, 1, in, 1, &t3) == PG_OK);
    CLOSE(t3, -6.0 - 0.375 * pow(2.0, -2.5), 1e-12);
    /* an input f does not depend on: 0, and a leaf 0.0 as a node */
    pg_index other = L(a, 5.0), z;
    double zero = -1;
    CHECK(pg_gradient(a, &f, &one, 1, &other, 1, &zero) == PG_OK && zero == 0.0);
    CHECK(pg_gradient_graph(a, &f, &none, 1, &other, 1, &z, NULL) == PG_OK && pg_data(a, z) == 0.0);
    /* forward mode: the directional derivative along (1, 2, 3) */
    double tan[3] = {1, 2, 3}, jv;
    CHECK(pg_jvp(a, &f, 1, in, tan, 3, &jv) == PG_OK);
    CLOSE(jv, g[0] + 2 * g[1] + 3 * g[2], 1e-12);
    pg_tape *t = NULL;
    CHECK(pg_compile(a, &f, 1, &t) == PG_OK);
    double tjv;
    CHECK(pg_tape_jvp(t, in, tan, 3, 0, &tjv) == PG_OK);
    CLOSE(tjv, jv, 1e-14);
    CHECK(pg_tape_jvp(t, &other, tan, 1, 0, &tjv) == PG_EINVAL);
    /* absent_ok: an input not in the tape moves nothing; twice is refused */
    pg_index with_other[4] = {in[0], other, in[1], in[2]}, twice[2] = {in[0], in[0]};
    double tan4[4] = {1, 99, 2, 3};
    CHECK(pg_tape_jvp(t, with_other, tan4, 4, 1, &tjv) == PG_OK);
    CLOSE(tjv, jv, 1e-14);
    CHECK(pg_tape_jvp(t, twice, tan, 2, 1, &tjv) == PG_EINVAL);
    pg_tape_free(t);
    CHECK(pg_grad(a, in[0]) == 7.0 && pg_grad(a, f) == 0.0);
    /* d(x*y)/dx is a node of its own, equal to y, not y */
    pg_index prod = O2(a, PG_MUL, in[0], in[1]), dp;
    CHECK(pg_gradient_graph(a, &prod, &none, 1, in, 1, &dp, NULL) == PG_OK);
    CHECK(dp != in[1] && pg_data(a, dp) == 3.0);
    /* a math error while making the derivative: nothing is made */
    pg_index zero_leaf = L(a, 0.0), r = O1(a, PG_POWC, zero_leaf, 0.5), dr;
    size_t live = pg_live_nodes(a);
    int bad_op = -1;
    CHECK(pg_gradient_graph(a, &r, &none, 1, &zero_leaf, 1, &dr, &bad_op) == PG_EZERODIV);
    CHECK(pg_live_nodes(a) == live && bad_op == PG_POWC);
    /* only what leads to the input asked for: d(sqrt(z) * y)/dy at z = 0
     * is sqrt(z), and d/dz (0 ** -0.5) is never made */
    pg_index ry = O2(a, PG_MUL, r, in[1]), dy;
    CHECK(pg_gradient_graph(a, &ry, &none, 1, &in[1], 1, &dy, NULL) == PG_OK);
    CHECK(pg_data(a, dy) == 0.0);
    pg_decref(a, dy);
    /* x ** 0: derivative 0, also at 0 (not 0 * inf) */
    pg_index p0 = O1(a, PG_POWC, zero_leaf, 0.0), d0;
    CHECK(pg_backward(a, p0) == PG_OK && pg_grad(a, zero_leaf) == 0.0);
    CHECK(pg_gradient_graph(a, &p0, &none, 1, &zero_leaf, 1, &d0, NULL) == PG_OK);
    CHECK(pg_data(a, d0) == 0.0);
    pg_decref(a, d0);
    /* without gradients: a leaf */
    int was = pg_set_grad_mode(0);
    pg_index q = O2(a, PG_MUL, in[0], in[1]);
    CHECK(was == 1 && pg_opcode(a, q) == PG_LEAF && pg_data(a, q) == 6.0);
    CHECK(pg_ninputs(a, q) == 0);
    /* ... but a gradient graph is a graph (create_graph asks for one) */
    pg_index dq;
    CHECK(pg_gradient_graph(a, &prod, &none, 1, in, 1, &dq, NULL) == PG_OK);
    CHECK(pg_opcode(a, dq) != PG_LEAF && pg_set_grad_mode(0) == 0);
    pg_decref(a, dq);
    pg_set_grad_mode(was);
    CHECK(pg_opcode(a, O2(a, PG_MUL, in[0], in[1])) == PG_MUL);
    /* the Hessian as the Jacobian of the gradient's tape, eight roots a
     * sweep (11 roots, the three gradient entries over again): each row
     * pg_tape_backward's to the bit, and the hand-derived entries */
    pg_index roots[11];
    for (int r = 0; r < 11; r++)
        roots[r] = gn[r % 3];
    pg_tape *ht = NULL;
    CHECK(pg_compile(a, roots, 11, &ht) == PG_OK);
    double J[11][3];
    CHECK(pg_tape_jacobian(ht, in, 3, &J[0][0], 2, 0) == PG_OK);
    for (int r = 0; r < 11; r++) {
        for (int c = 0; c < 3; c++)
            pg_set_grad(a, in[c], 0.0);
        CHECK(pg_tape_backward(ht, (size_t)r) == PG_OK);
        for (int c = 0; c < 3; c++) {
            CHECK(memcmp(&J[r][c], &a->grad[in[c]], sizeof(double)) == 0);
            CLOSE(J[r][c], H[r % 3][c], 1e-12);
        }
    }
    CHECK(pg_tape_jacobian(ht, &other, 1, &J[0][0], 1, 0) == PG_EINVAL);
    {   /* absent_ok: its column is zeros, the others as before */
        pg_index with_other[4] = {in[0], other, in[1], in[2]};
        double J4o[11][4];
        CHECK(pg_tape_jacobian(ht, with_other, 4, &J4o[0][0], 1, 1) == PG_OK);
        for (int r = 0; r < 11; r++)
            CHECK(J4o[r][1] == 0.0 && J4o[r][0] == J[r][0] && J4o[r][2] == J[r][1] &&
                  J4o[r][3] == J[r][2]);
    }
    pg_tape_free(ht);
    /* the same without a tape of one's own (pg_jacobian): rows pg_gradient's
     * to the bit, an input under no output a column of zeros */
    pg_index ins4[4] = {in[0], in[1], other, in[2]};
    double J4[11][4], row4[4];
    CHECK(pg_jacobian(a, roots, 11, ins4, 4, &J4[0][0], 3) == PG_OK);
    for (int r = 0; r < 11; r++) {
        CHECK(pg_gradient(a, &roots[r], &one, 1, ins4, 4, row4) == PG_OK);
        CHECK(memcmp(J4[r], row4, sizeof row4) == 0 && J4[r][2] == 0.0);
    }
    (void)before;
    pg_arena_free(a);
}

/* A tape mapped over rows against the row-by-row loop (set the inputs,
 * forward, backward): values to the bit, parameter and input gradients to
 * 1e-12; the same bits with 1, 2 and 3 threads; a math error names the
 * lowest failing row and changes nothing. */
static void test_map(void)
{
    pg_arena *a = pg_arena_new();
    pg_index x1 = L(a, 0.0), x2 = L(a, 0.0), tg = L(a, 0.0);
    pg_index w[3] = {L(a, 0.3), L(a, -0.7), L(a, 0.2)}, b = L(a, 0.1);
    pg_index xs[3] = {x1, x2, x1};
    pg_index d = (pg_index)pg_dot(a, w, xs, 3, b, 0.0);       /* an n-ary neuron */
    pg_index h = O1(a, PG_TANH, d, 0);
    pg_index e = O2(a, PG_SUB, h, tg);
    pg_index loss = O2(a, PG_MUL, e, e);
    pg_index lg = O1(a, PG_LOG, O1(a, PG_ADDC, O2(a, PG_MUL, x2, x2), 1.0), 0);
    pg_index root = O2(a, PG_ADD, loss, O1(a, PG_MULC, lg, 0.01));
    pg_tape *t = NULL;
    CHECK(pg_compile(a, &root, 1, &t) == PG_OK);
    enum { B = 300 };
    static double rows[B * 3], vals[3][B], ig[3][B * 3];
    uint64_t s = 12345;
    for (int j = 0; j < B * 3; j++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        rows[j] = (double)(s >> 11) / 9007199254740992.0 * 2.0 - 1.0;
    }
    pg_index ins[3] = {x1, x2, tg};
    /* the row-by-row loop */
    double want_g[4] = {0}, want_ig[B * 3], want_v[B];
    pg_index params[4] = {w[0], w[1], w[2], b};
    for (int r = 0; r < B; r++) {
        CHECK(pg_put_data(a, ins, 3, rows + 3 * r) == PG_OK);
        int op; pg_index bad;
        CHECK(pg_tape_forward(t, &op, &bad) == PG_OK);
        want_v[r] = pg_data(a, root);
        CHECK(pg_fill_grad(a, params, 4, 0.0) == PG_OK && pg_fill_grad(a, ins, 3, 0.0) == PG_OK);
        CHECK(pg_tape_backward(t, 0) == PG_OK);
        for (int q = 0; q < 4; q++)
            want_g[q] += pg_grad(a, params[q]);
        for (int i = 0; i < 3; i++)
            want_ig[3 * r + i] = pg_grad(a, ins[i]);
    }
    CHECK(pg_fill_grad(a, params, 4, 0.0) == PG_OK);
    double g1[4];
    for (int nt = 1; nt <= 3; nt++) {
        double red = 0;
        int64_t bad[2];
        CHECK(pg_tape_map(t, ins, 3, rows, B, 0, 1, 1, vals[nt - 1], &red, ig[nt - 1],
                          nt, bad) == PG_OK);
        CHECK(bad[0] == -1);
        double g[4];
        CHECK(pg_get_grad(a, params, 4, g) == PG_OK);
        CHECK(pg_fill_grad(a, params, 4, 0.0) == PG_OK);
        if (nt == 1) {
            for (int r = 0; r < B; r++)
                CHECK(vals[0][r] == want_v[r]);                /* to the bit */
            for (int q = 0; q < 4; q++) {
                CLOSE(g[q], want_g[q], 1e-12);
                g1[q] = g[q];
            }
            for (int j = 0; j < B * 3; j++)
                CLOSE(ig[0][j], want_ig[j], 1e-12);
        } else {
            CHECK(memcmp(vals[nt - 1], vals[0], sizeof vals[0]) == 0);
            CHECK(memcmp(ig[nt - 1], ig[0], sizeof ig[0]) == 0);
            CHECK(memcmp(g, g1, sizeof g) == 0);
        }
    }
    /* no value changed by the maps: the inputs hold the loop's last row */
    CHECK(pg_data(a, x1) == rows[3 * (B - 1)] && pg_data(a, root) == want_v[B - 1]);
    /* log of a negative at rows 250 and 37: row 37 is named, nothing added */
    for (int r = 0; r < B; r++)
        rows[3 * r + 1] = fabs(rows[3 * r + 1]) + 0.1;
    pg_set_data(a, x2, 0.5);
    pg_index lin = O1(a, PG_LOG, x2, 0);
    pg_tape *t2 = NULL;
    pg_index roots2[2] = {root, lin};
    CHECK(pg_compile(a, roots2, 2, &t2) == PG_OK);
    rows[3 * 250 + 1] = -2.0;
    rows[3 * 37 + 1] = -1.0;
    int64_t bad[2];
    CHECK(pg_tape_map(t2, ins, 3, rows, B, 0, 2, 1, NULL, NULL, NULL, 2, bad) == PG_EDOMAIN);
    CHECK(bad[0] == 37 && bad[1] == PG_LOG);
    double g[4];
    CHECK(pg_get_grad(a, params, 4, g) == PG_OK && g[0] == 0 && g[3] == 0);
    pg_index not_leaf[1] = {root};
    CHECK(pg_tape_map(t2, not_leaf, 1, rows, B, 0, 2, 1, NULL, NULL, NULL, 1, bad) == PG_EINVAL);
    /* input derivatives asked for with no backward sweep: refused (it
     * returned PG_OK, in_grads never written) */
    double *unwritten = malloc(B * 3 * sizeof *unwritten);
    CHECK(unwritten != NULL);
    if (unwritten) {
        CHECK(pg_tape_map(t2, ins, 3, rows, B, -1, 1, 0, NULL, NULL, unwritten, 1, bad) ==
              PG_EINVAL);
        free(unwritten);
    }
    /* rows at an odd address (a numpy array at a byte offset): read as
     * bytes; the same sums as from aligned rows (UBSan flagged the load) */
    rows[3 * 250 + 1] = rows[3 * 37 + 1] = 1.0;
    double aligned_sum[2], odd_sum[2];   /* (t2 has two roots) */
    unsigned char *odd = malloc(B * 3 * sizeof(double) + 1);
    CHECK(odd != NULL);
    if (odd) {
        memcpy(odd + 1, rows, B * 3 * sizeof(double));
        CHECK(pg_tape_map(t2, ins, 3, rows, B, -1, 1, 0, NULL, aligned_sum, NULL, 1, bad) ==
              PG_OK);
        CHECK(pg_tape_map(t2, ins, 3, odd + 1, B, -1, 1, 0, NULL, odd_sum, NULL, 1, bad) ==
              PG_OK);
        CHECK(memcmp(odd_sum, aligned_sum, sizeof odd_sum) == 0);
        double back[3];
        CHECK(pg_put_data(a, params, 3, odd + 1 + 8) == PG_OK);
        CHECK(pg_get_data(a, params, 3, back) == PG_OK);
        CHECK(memcmp(back, rows + 1, sizeof back) == 0);
        free(odd);
    }
    pg_tape_free(t2);
    pg_tape_free(t);
    pg_arena_free(a);
}

/* Python-defined nodes: a sweep stops at each, its grad complete, and goes
 * on after the caller's step; while paused, other sweeps wait (EBUSY);
 * aborting clears the marks; C cannot compile them. */
static void test_python_ops(void)
{
    pg_arena *a = pg_arena_new();
    pg_index x = L(a, 1.5), y = L(a, 2.0);
    pg_index in[2] = {x, y};
    int64_t c = pg_custom(a, in, 2, 5.0);
    CHECK(c >= 0 && pg_data(a, (pg_index)c) == 5.0 && pg_ninputs(a, (pg_index)c) == 2);
    CHECK(pg_op_kind(pg_opcode(a, (pg_index)c)) == PG_KIND_PYTHON);
    pg_index z = O1(a, PG_MULC, (pg_index)c, 2.0);
    pg_index u = O2(a, PG_MUL, z, x);               /* x also used later */
    pg_index q = O1(a, PG_MULC, y, 3.0);            /* another graph's tape */
    pg_tape *tq = NULL;
    CHECK(pg_compile(a, &q, 1, &tq) == PG_OK);
    double one = 1.0, dq = 0.0;
    pg_index node = PG_NONE;
    CHECK(pg_sweep(a, u, &node) == PG_PYTHON && node == (pg_index)c);
    CLOSE(pg_grad(a, (pg_index)c), 2.0 * 1.5, 0);   /* complete when stopped */
    CHECK(pg_backward(a, u) == PG_EBUSY);
    CHECK(pg_sweep(a, u, &node) == PG_EBUSY);
    pg_tape *t = NULL;
    CHECK(pg_compile(a, &u, 1, &t) == PG_EBUSY && t == NULL);
    CHECK(pg_tape_jvp(tq, &y, &one, 1, 0, &dq) == PG_EBUSY);   /* it flags nodes too */
    /* "Python": c = x * y, so x gets y * grad and y gets x * grad */
    pg_set_grad(a, x, pg_grad(a, x) + 2.0 * pg_grad(a, (pg_index)c));
    pg_set_grad(a, y, pg_grad(a, y) + 1.5 * pg_grad(a, (pg_index)c));
    CHECK(pg_sweep(a, PG_NONE, &node) == PG_OK);
    CLOSE(pg_grad(a, x), 10.0 + 6.0, 0);             /* z directly, and via c */
    CHECK(pg_tape_jvp(tq, &y, &one, 1, 0, &dq) == PG_OK && dq == 3.0);
    pg_tape_free(tq);
    pg_decref(a, q);
    /* a gradient graph cut at the Python node: its adjoint (z's 2.0 times
     * u's x), x's from u alone (z = 2c), y (only under c) PG_NONE; the
     * Python node listed, once; the plain call refuses it */
    pg_index cut_in[3] = {(pg_index)c, x, y}, got[3], none = PG_NONE, py[2];
    CHECK(pg_gradient_graph_cut(a, &u, &none, 1, cut_in, 3, got, NULL) == PG_OK);
    CHECK(got[0] != PG_NONE && pg_data(a, got[0]) == 3.0);
    CHECK(got[1] != PG_NONE && pg_data(a, got[1]) == 10.0 && got[2] == PG_NONE);
    pg_decref(a, got[0]);
    pg_decref(a, got[1]);
    CHECK(pg_gradient_graph(a, &u, &none, 1, cut_in, 3, got, NULL) == PG_ETYPE);
    CHECK(pg_python_nodes(a, &u, 1, &y, 1, py, 2) == 1 && py[0] == (pg_index)c);
    CHECK(pg_python_nodes(a, &u, 1, &z, 1, py, 2) == 0);   /* z is above c */
    CHECK(pg_python_nodes(a, &x, 1, &x, 1, py, 2) == 0);
    CHECK(pg_lies_under(a, &u, 1, x) == 1 && pg_lies_under(a, &u, 1, u) == 1);
    CHECK(pg_lies_under(a, &x, 1, u) == 0 && pg_lies_under(a, &z, 1, y) == 1);
    CLOSE(pg_grad(a, y), 4.5, 0);
    CHECK(pg_sweep(a, PG_NONE, &node) == PG_EINVAL); /* nothing paused */
    /* abort: marks cleared, the next sweep is right */
    CHECK(pg_sweep(a, u, &node) == PG_PYTHON);
    pg_sweep_abort(a);
    for (uint32_t ch = 0; ch < a->nchunks; ch++)
        CHECK(!pg__chunk_marked(a, ch));
    CHECK(pg_backward(a, z) == PG_OK);               /* passes c nothing */
    CHECK(pg_compile(a, &u, 1, &t) == PG_ETYPE && t == NULL);
    for (uint32_t ch = 0; ch < a->nchunks; ch++)
        CHECK(!pg__chunk_marked(a, ch));
    /* micrograd's _backward(): one local step, from the values */
    pg_set_grad(a, z, 1.0);
    pg_set_grad(a, (pg_index)c, 0.0);
    CHECK(pg_local_backward(a, z) == PG_OK);
    CLOSE(pg_grad(a, (pg_index)c), 2.0, 0);
    CHECK(pg_local_backward(a, (pg_index)c) == PG_PYTHON);
    CHECK(pg_local_backward(a, x) == PG_OK);         /* a leaf: nothing */
    pg_index dead[1] = {424242u};
    CHECK(pg_custom(a, dead, 1, 0.0) == PG_EINVAL);
    /* a Python-defined node whose input has inputs: the sweep goes on
     * below it (the input is visited after the Python step) */
    pg_index h = O1(a, PG_MULC, x, 2.0);
    int64_t c2 = pg_custom(a, &h, 1, 9.0);
    pg_set_grad(a, x, 0.0);
    pg_set_grad(a, h, 0.0);
    CHECK(pg_sweep(a, (pg_index)c2, &node) == PG_PYTHON && node == (pg_index)c2);
    pg_set_grad(a, h, pg_grad(a, h) + 5.0 * pg_grad(a, (pg_index)c2));   /* "Python" */
    CHECK(pg_sweep(a, PG_NONE, &node) == PG_OK);
    CLOSE(pg_grad(a, x), 10.0, 0);
    /* nested: while paused at c2, its "Python" runs a sweep of its own over
     * a graph that shares h (marked, pending in the outer sweep) */
    pg_set_grad(a, x, 0.0);
    pg_set_grad(a, h, 0.0);
    CHECK(pg_sweep_stash(a) == PG_EINVAL);           /* nothing paused */
    CHECK(pg_sweep_unstash(a) == PG_EINVAL);         /* nothing stashed */
    CHECK(pg_sweep(a, (pg_index)c2, &node) == PG_PYTHON);
    pg_index three = L(a, 3.0);
    pg_index tt = O2(a, PG_MUL, three, h);               /* d tt/d h = 3, d/dx = 6 */
    CHECK(pg_backward(a, tt) == PG_EBUSY);
    CHECK(pg_sweep_stash(a) == PG_OK);
    for (uint32_t ch = 0; ch < a->nchunks; ch++)
        CHECK(!pg__chunk_marked(a, ch));
    CHECK(pg_sweep(a, tt, &node) == PG_OK);          /* the inner sweep */
    CLOSE(pg_grad(a, x), 6.0, 0);
    CLOSE(pg_grad(a, three), pg_data(a, h), 0);
    CHECK(pg_sweep(a, tt, &node) == PG_OK);          /* the inner may pause too: */
    CHECK(pg_sweep(a, (pg_index)c2, &node) == PG_PYTHON);
    CHECK(pg_sweep_unstash(a) == PG_EBUSY);          /* inner still paused */
    pg_sweep_abort(a);
    pg_set_grad(a, x, 0.0);
    pg_set_grad(a, h, 0.0);
    CHECK(pg_sweep_unstash(a) == PG_OK);             /* the outer, as it was */
    CHECK(pg_backward(a, tt) == PG_EBUSY);
    pg_set_grad(a, h, pg_grad(a, h) + 5.0 * pg_grad(a, (pg_index)c2));
    CHECK(pg_sweep(a, PG_NONE, &node) == PG_OK);     /* h visited: x gets 2*5 */
    CLOSE(pg_grad(a, x), 10.0, 0);
    for (uint32_t ch = 0; ch < a->nchunks; ch++)
        CHECK(!pg__chunk_marked(a, ch));
    /* reset: a stale stash and a stale paused sweep go, marks cleared */
    CHECK(pg_sweep(a, (pg_index)c2, &node) == PG_PYTHON);
    CHECK(pg_sweep_stash(a) == PG_OK);
    CHECK(pg_sweep(a, (pg_index)c2, &node) == PG_PYTHON);
    pg_sweep_reset(a);
    CHECK(a->nstash == 0 && !a->sweep.paused);
    for (uint32_t ch = 0; ch < a->nchunks; ch++)
        CHECK(!pg__chunk_marked(a, ch));
    CHECK(pg_sweep(a, (pg_index)c2, &node) == PG_PYTHON);
    CHECK(pg_sweep_stash(a) == PG_OK);               /* freed by pg_arena_free */
    pg_arena_free(a);
}

/* The exit status of child pid, or -1 if it has not ended within ms
 * milliseconds (it is killed then: a hung child fails, not hangs). */
static int child_status(pid_t pid, int ms)
{
    int status = -1;
    for (int t = 0; t < ms; t++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

/* fork() while another thread is busy in the arena: with the fork hooks
 * the child can use the arena (without them it would inherit the lock held
 * by a thread it does not have, and hang). */
static volatile int fork_stop;

static void *busy(void *arg)
{
    pg_arena *a = arg;
    while (!fork_stop) {
        pg_index x = L(a, 0.5), y = x;
        for (int j = 0; j < 2000; j++) {
            pg_index t = O1(a, PG_TANH, y, 0);
            if (y != x)
                pg_decref(a, y);
            y = t;
        }
        pg_backward(a, y);
        pg_decref(a, y);
        pg_decref(a, x);
    }
    return NULL;
}

static void test_fork(void)
{
    pg_arena *a = pg_arena_new();
    pthread_t t;
    fork_stop = 0;
    pthread_create(&t, NULL, busy, a);
    for (int k = 0; k < 20; k++) {
        pg_fork_prepare(a);
        pid_t pid = fork();
        if (pid == 0) {
            pg_fork_child(a);
            pg_index x = L(a, 2.0), y = O2(a, PG_MUL, x, x);
            int ok = pg_backward(a, y) == PG_OK && pg_grad(a, x) == 4.0;
            pg_arena_free(a);   /* (for valgrind's leak check of the child) */
            _exit(ok ? 0 : 1);
        }
        pg_fork_parent(a);
        CHECK(child_status(pid, 5000) == 0);
    }
    fork_stop = 1;
    pthread_join(t, NULL);
    pg_arena_free(a);
}

/* fork() while another thread maps a tape.  In the child that thread's
 * call never ends, so the tape's program must not stay held by it: if it
 * did, every map there would allocate its own scratch, and the program
 * would outlive the tape (what `make valgrind` checks: the child frees
 * the tape and the arena before it exits, and nothing may be left). */
static volatile int map_stop;

typedef struct {
    pg_tape *t;
    pg_index in;
    const double *rows;
    size_t n;
} map_job;

static void *mapping(void *arg)
{
    map_job *m = arg;
    while (!map_stop) {
        double sum;
        int64_t bad[2];
        pg_tape_map(m->t, &m->in, 1, m->rows, m->n, -1, 1, 0, NULL, &sum, NULL, 2, bad);
    }
    return NULL;
}

static void test_fork_during_map(void)
{
    pg_arena *a = pg_arena_new();
    pg_index x = L(a, 0.5), p = L(a, 0.3);
    pg_index root = O1(a, PG_TANH, O2(a, PG_ADD, O2(a, PG_MUL, x, p), p), 0);
    pg_tape *t = NULL;
    CHECK(pg_compile(a, &root, 1, &t) == PG_OK);
    enum { B = 20000 };
    static double rows[B];
    for (int j = 0; j < B; j++)
        rows[j] = j * 1e-4;
    double want = 0.0;
    int64_t bad[2];
    CHECK(pg_tape_map(t, &x, 1, rows, B, -1, 1, 0, NULL, &want, NULL, 1, bad) == PG_OK);
    map_job job = {t, x, rows, B};
    pthread_t th;
    map_stop = 0;
    pthread_create(&th, NULL, mapping, &job);
    for (int k = 0; k < 10; k++) {
        nanosleep(&(struct timespec){0, 300000}, NULL);   /* mostly mid-map */
        pg_fork_prepare(a);
        pid_t pid = fork();
        if (pid == 0) {
            pg_fork_child(a);
            double sum = 0.0;
            int ok = 1;
            for (int j = 0; j < 3; j++)
                ok &= pg_tape_map(t, &x, 1, rows, B, -1, 1, 0, NULL, &sum, NULL, 2, bad) == PG_OK
                      && sum == want;
            pg_tape_free(t);
            pg_arena_free(a);
            _exit(ok ? 0 : 1);
        }
        pg_fork_parent(a);
        CHECK(child_status(pid, 20000) == 0);
    }
    map_stop = 1;
    pthread_join(th, NULL);
    pg_tape_free(t);
    pg_arena_free(a);
}

int main(int argc, char **argv)
{
    size_t chain = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
    test_op_table();
    test_seed();
    test_ops_fd();
    test_errors();
    test_accumulate();
    test_chain(chain);
    test_reuse();
    test_limit();
    test_index_space_exhausted();
    test_side_keys();
    test_unclaimed();
    test_holes_for_leaves();
    test_frontier();
    test_kept_nodes_with_inputs();
    test_carry_across_reused_chunk();
    test_far_leaves();
    test_pages_handed_back();
    test_nary();
    test_tape();
    test_python_ops();
    test_gradients();
    test_map();
    test_bulk();
    test_threads();
    test_fork();
    test_fork_during_map();
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
