/* ops.h -- the table of ops.  Every fact about an op is on its row: what
 * kind of op it is (which fixes how many inputs it reads, whether it reads
 * a constant k, how many local partials a tape stores for it), whether
 * those partials ever change, its value and its partial derivatives side by
 * side (as in micrograd's engine.py), and the error Python raises for it.
 * The op codes themselves (enum pg_op, below) are generated from the rows,
 * so adding an op is adding a row here (and one in pygrad/_optable.py, which
 * a test ties to this one).
 *
 * Included by pygrad.h, after the status codes the checks return; include
 * pygrad.h, not this file.
 *
 * In the formulas: x is input 0's value, y input 1's (two-input ops), k the
 * constant operand (CONST ops), v the node's own value.  They are the ones
 * pygrad/reference.py uses, term for term, so both engines round alike.
 */
#ifndef PYGRAD_OPS_H
#define PYGRAD_OPS_H

#ifndef PYGRAD_H
#error "include pygrad.h, which includes ops.h after the status codes"
#endif

#include <math.h>
#include <stdint.h>

/* Kinds of op, and what each one means for the code that walks nodes:
 *   LEAF    no input: a Value made from a number;
 *   BINARY  two input nodes (x op y);
 *   CONST   one input node and a number k folded into the op (x + 2);
 *   UNARY   one input node;
 *   NARY    a list of input nodes and a start (pg_sum, pg_dot); their
 *           loops are pg_nary_forward below and pg_step_back (sweep.h);
 *   PYTHON  a list of input nodes and a value, both given by Python, whose
 *           backward is Python code (pg_custom, pg_sweep): C never
 *           computes its value or partials, and cannot replay it.
 * The facts of a kind: {kind, node inputs, partials a tape stores, reads k}.
 * PG_NARY stands for "a list" where a count of inputs is expected. */
enum pg_kind {
    PG_KIND_NONE = 0,   /* PG_FREE: a slot not in use */
    PG_KIND_LEAF, PG_KIND_BINARY, PG_KIND_CONST, PG_KIND_UNARY, PG_KIND_NARY,
    PG_KIND_PYTHON
};
#define PG_NARY 3
#define PG_FACTS_LEAF    PG_KIND_LEAF,   0,       0, 0
#define PG_FACTS_BINARY  PG_KIND_BINARY, 2,       2, 0
#define PG_FACTS_CONST   PG_KIND_CONST,  1,       1, 1
#define PG_FACTS_UNARY   PG_KIND_UNARY,  1,       1, 0
#define PG_FACTS_NARY    PG_KIND_NARY,   PG_NARY, 0, 0
#define PG_FACTS_PYTHON  PG_KIND_PYTHON, PG_NARY, 0, 0

/* The partials column: FIXED partials (1, -1, k, 1/k) never change, so a
 * tape's forward leaves them as compile time wrote them; VARY ones depend
 * on the values; NONE: the op stores none (leaves, n-ary ops). */
#define PG_FIXED_FIXED 1
#define PG_FIXED_VARY  0
#define PG_FIXED_NONE  0

/* Helpers the formulas call. */

/* Logistic function without overflow for large |x|: exp() only ever sees a
 * non-positive argument. */
static inline double pg_sigmoid(double x)
{
    if (x >= 0.0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* x < 0 ? 0 : x, so relu(-0.0) is -0.0 and relu(NaN) NaN, as in micrograd.
 * SSE's maxsd(0, x) is exactly that ("0 > x ? 0 : x") and has no branch on
 * the sign of x, which is a coin toss in a graph: GCC compiles the plain
 * expression, one number at a time, to a jump.  In a loop over many
 * numbers the plain expression is what the compiler vectorises (the
 * intrinsic it does not): map.c's loops use pg_relu_plain. */
static inline double pg_relu_plain(double x)
{
    return x < 0.0 ? 0.0 : x;
}

#ifdef __SSE2__
#include <emmintrin.h>
static inline double pg_relu(double x)
{
    return _mm_cvtsd_f64(_mm_max_sd(_mm_setzero_pd(), _mm_set_sd(x)));
}
#else
static inline double pg_relu(double x)
{
    return pg_relu_plain(x);
}
#endif

/* relu's derivative, x > 0 ? 1 : 0 (micrograd's convention at 0), an op
 * of its own so that a gradient graph through relu can be differentiated
 * again (its own derivative is 0). */
static inline double pg_unit_step(double x)
{
    return x > 0.0 ? 1.0 : 0.0;
}

/* d(b**e)/de = b**e * log(b).  At b == 0 the product is 0 * -inf; torch and
 * we take the limit 0 (forward already rejected 0 to a negative power). */
static inline double pg_dpow_dexp(double b, double v)
{
    return b == 0.0 ? 0.0 : v * log(b);
}

/* d(b ** e)/db = e * b ** (e - 1), except for an exponent 0: b ** 0 is 1
 * for every b, so its derivative is 0, also at base 0, where the formula
 * would be 0 * inf (torch's convention too; micrograd raises there). */
static inline double pg_dpow_dbase(double b, double e)
{
    return e == 0.0 ? 0.0 : e * pow(b, e - 1.0);
}

/* The error checks: PG_OK, or what Python's float arithmetic / math module
 * raises for the same operands. */
static inline int pg_zerodiv(double divisor)
{
    return divisor == 0.0 ? PG_EZERODIV : PG_OK;
}

/* CPython's math_1 (Modules/mathmodule.c): a NaN from a non-NaN argument is a
 * domain error; an infinity from a finite argument is `inf_error`: an
 * overflow for functions that can overflow (exp), a domain error otherwise
 * (log(0)). */
static inline int pg_check_math(double x, double r, int inf_error)
{
    if (isnan(r) && !isnan(x))
        return PG_EDOMAIN;
    if (isinf(r) && isfinite(x))
        return inf_error;
    return PG_OK;
}

/* Python's float ** (float_pow, Objects/floatobject.c), except that a
 * negative base to a non-integer power is a domain error, as math.pow says,
 * instead of a complex result a real-valued graph cannot hold. */
static inline int pg_check_pow(double b, double e, double r)
{
    if (e == 0.0 || isnan(b) || isnan(e) || isinf(b) || isinf(e))
        return PG_OK;
    if (b == 0.0)
        return e < 0.0 ? PG_EZERODIV : PG_OK;
    if (b < 0.0 && e != floor(e))
        return PG_EDOMAIN;
    return isinf(r) ? PG_ERANGE : PG_OK;
}

/* The table.  LEAF, NARY and PYTHON rows have no formulas here (0.0
 * stands in): a leaf's value is given, the n-ary loops are written out
 * below, a Python-defined op is Python's.
 *
 * The last two columns are the same derivatives as graphs, for gradients
 * that can themselves be differentiated (grad.c): what input 0 and input 1
 * receive, (dv/dx) * G and (dv/dy) * G, built from new nodes, where G is
 * the node's adjoint, a node too.  G_X, G_Y, G_V name the nodes of x, y, v;
 * G_MUL(p, q), G_NEG(p), G_MULC(p, c) ... make a node of that op; x, y, k,
 * v are the numbers, for choices made where the formula has a branch
 * (G_IF: at base 0, the exponent's derivative is 0, as in pg_dpow_dexp;
 * for an exponent 0 the base's is 0, as in pg_dpow_dbase, but a term is
 * dropped only where its graph cannot be made, 0 ** -1: elsewhere it is
 * 0 * x ** -1, whose derivative in the exponent, 1/x, the mixed second
 * derivative needs, which torch's masking loses); G_ZERO: nothing.
 * Each term has at most one node-making argument, so nodes are made in one
 * order (C leaves the order of arguments open), and each multiplies in the
 * same order as the column before, so a gradient graph's values are the
 * backward sweep's, bit for bit, with one exception: where the sweep
 * multiplies a partial that is 0 by an infinite adjoint (0 * inf = NaN, as
 * micrograd's closures do), the graph has no term at all (0, as torch's
 * relu and pow backward give). */
/*    op          kind    partials value v          dv/dx                 dv/dy               error, else PG_OK                 (dv/dx)*G as a graph                                 (dv/dy)*G as a graph */
#define PG_OP_TABLE(X)                                                                                              \
    X(PG_LEAF,    LEAF,   NONE,    0.0,             0.0,                  0.0,                PG_OK,                           G_ZERO,                                              G_ZERO) \
    X(PG_ADD,     BINARY, FIXED,   x + y,           1.0,                  1.0,                PG_OK,                           G_ADJ,                                               G_ADJ) \
    X(PG_SUB,     BINARY, FIXED,   x - y,           1.0,                 -1.0,                PG_OK,                           G_ADJ,                                               G_NEG(G_ADJ)) \
    X(PG_MUL,     BINARY, VARY,    x * y,           y,                    x,                  PG_OK,                           G_MUL(G_Y, G_ADJ),                                   G_MUL(G_X, G_ADJ)) \
    X(PG_DIV,     BINARY, VARY,    x / y,           1.0 / y,             -v / y,              pg_zerodiv(y),                   G_MUL(G_RDIVC(1.0, G_Y), G_ADJ),                     G_MUL(G_DIV(G_NEG(G_V), G_Y), G_ADJ)) \
    X(PG_POW,     BINARY, VARY,    pow(x, y),       pg_dpow_dbase(x, y),  pg_dpow_dexp(x, v), pg_check_pow(x, y, v),           G_IF(y == 0.0 && x == 0.0, G_ZERO, G_MUL(G_MUL(G_Y, G_POW(G_X, G_SUBC(G_Y, 1.0))), G_ADJ)), \
                                                                                                                                   G_IF(x == 0.0, G_ZERO, G_IF(x < 0.0, G_MULC(G_ADJ, NAN), G_MUL(G_MUL(G_V, G_LOG(G_X)), G_ADJ)))) \
    X(PG_ADDC,    CONST,  FIXED,   x + k,           1.0,                  0.0,                PG_OK,                           G_ADJ,                                               G_ZERO) \
    X(PG_MULC,    CONST,  FIXED,   x * k,           k,                    0.0,                PG_OK,                           G_MULC(G_ADJ, k),                                    G_ZERO) \
    X(PG_SUBC,    CONST,  FIXED,   x - k,           1.0,                  0.0,                PG_OK,                           G_ADJ,                                               G_ZERO) \
    X(PG_RSUBC,   CONST,  FIXED,   k - x,          -1.0,                  0.0,                PG_OK,                           G_NEG(G_ADJ),                                        G_ZERO) \
    X(PG_DIVC,    CONST,  FIXED,   x / k,           1.0 / k,              0.0,                pg_zerodiv(k),                   G_MULC(G_ADJ, 1.0 / k),                              G_ZERO) \
    X(PG_RDIVC,   CONST,  VARY,    k / x,          -v / x,                0.0,                pg_zerodiv(x),                   G_MUL(G_DIV(G_NEG(G_V), G_X), G_ADJ),                G_ZERO) \
    X(PG_POWC,    CONST,  VARY,    pow(x, k),       pg_dpow_dbase(x, k),  0.0,                pg_check_pow(x, k, v),           G_IF(k == 0.0, G_ZERO, G_MUL(G_MULC(G_POWC(G_X, k - 1.0), k), G_ADJ)), G_ZERO) \
    X(PG_RPOWC,   CONST,  VARY,    pow(k, x),       pg_dpow_dexp(k, v),   0.0,                pg_check_pow(k, x, v),           G_IF(k == 0.0, G_ZERO, G_MUL(G_MULC(G_V, log(k)), G_ADJ)), G_ZERO) \
    X(PG_NEG,     UNARY,  FIXED,   -x,             -1.0,                  0.0,                PG_OK,                           G_NEG(G_ADJ),                                        G_ZERO) \
    X(PG_EXP,     UNARY,  VARY,    exp(x),          v,                    0.0,                pg_check_math(x, v, PG_ERANGE),  G_MUL(G_V, G_ADJ),                                   G_ZERO) \
    X(PG_LOG,     UNARY,  VARY,    log(x),          1.0 / x,              0.0,                pg_check_math(x, v, PG_EDOMAIN), G_MUL(G_RDIVC(1.0, G_X), G_ADJ),                     G_ZERO) \
    X(PG_SIN,     UNARY,  VARY,    sin(x),          cos(x),               0.0,                pg_check_math(x, v, PG_EDOMAIN), G_MUL(G_COS(G_X), G_ADJ),                            G_ZERO) \
    X(PG_COS,     UNARY,  VARY,    cos(x),         -sin(x),               0.0,                pg_check_math(x, v, PG_EDOMAIN), G_MUL(G_NEG(G_SIN(G_X)), G_ADJ),                     G_ZERO) \
    X(PG_TANH,    UNARY,  VARY,    tanh(x),         1.0 - v * v,          0.0,                PG_OK,                           G_MUL(G_RSUBC(1.0, G_MUL(G_V, G_V)), G_ADJ),         G_ZERO) \
    X(PG_SIGMOID, UNARY,  VARY,    pg_sigmoid(x),   v * (1.0 - v),        0.0,                PG_OK,                           G_MUL(G_MUL(G_V, G_RSUBC(1.0, G_V)), G_ADJ),         G_ZERO) \
    X(PG_RELU,    UNARY,  VARY,    pg_relu(x),      (double)(v > 0.0),    0.0,                PG_OK,                           G_MUL(G_STEP(G_V), G_ADJ),                           G_ZERO) \
    X(PG_STEP,    UNARY,  FIXED,   pg_unit_step(x), 0.0,                  0.0,                PG_OK,                           G_ZERO,                                              G_ZERO) \
    X(PG_SUM,     NARY,   NONE,    0.0,             0.0,                  0.0,                PG_OK,                           G_ZERO,                                              G_ZERO) \
    X(PG_DOT,     NARY,   NONE,    0.0,             0.0,                  0.0,                PG_OK,                           G_ZERO,                                              G_ZERO) \
    X(PG_PYOP,    PYTHON, NONE,    0.0,             0.0,                  0.0,                PG_OK,                           G_ZERO,                                              G_ZERO)

/* The op codes, one per row, in the table's order.  The binding gets their
 * values from the compiler (pygrad/_build.py), so none is retyped. */
enum pg_op {
    PG_FREE = 0,   /* a slot not in use */
#define PG_ENUM_ROW(op_, ...) op_,
    PG_OP_TABLE(PG_ENUM_ROW)
#undef PG_ENUM_ROW
    PG_NOPS
};

/* PG_IF_FORMULA(kind, text): text for the kinds whose value and partials
 * are the table's formulas (one- and two-input ops), nothing for the
 * others.  Code generated from the table uses it to skip LEAF and NARY. */
#define PG_IF_FORMULA(kind, ...) PG_IF_FORMULA_##kind(__VA_ARGS__)
#define PG_IF_FORMULA_LEAF(...)
#define PG_IF_FORMULA_NARY(...)
#define PG_IF_FORMULA_PYTHON(...)
#define PG_IF_FORMULA_BINARY(...) __VA_ARGS__
#define PG_IF_FORMULA_CONST(...) __VA_ARGS__
#define PG_IF_FORMULA_UNARY(...) __VA_ARGS__

/* PG_NARY_CASE: `case op:` for each n-ary op, for switches generated from
 * the table that handle n-ary nodes in one case. */
#define PG_NARY_CASE(op_, kind_, ...) PG_IF_NARY_##kind_(case op_:)
#define PG_IF_NARY_LEAF(...)
#define PG_IF_NARY_BINARY(...)
#define PG_IF_NARY_CONST(...)
#define PG_IF_NARY_UNARY(...)
#define PG_IF_NARY_NARY(...) __VA_ARGS__
#define PG_IF_NARY_PYTHON(...)

/* The facts of every op, indexed by op code: generated from the rows in
 * the order that enum pg_op (pygrad.h) is, after PG_FREE's empty entry.
 * Each query below is one load, or a constant where op is one. */
typedef struct pg_opinfo {
    uint8_t kind, arity, nparts, has_k, fixed;
} pg_opinfo;

#define PG_INFO_ROW(op_, kind_, part_, ...) {PG_FACTS_##kind_, PG_FIXED_##part_},
static const pg_opinfo pg_opinfo_table[] = {
    {PG_KIND_NONE, 0, 0, 0, 0},   /* PG_FREE */
    PG_OP_TABLE(PG_INFO_ROW)
};
#undef PG_INFO_ROW
_Static_assert(sizeof pg_opinfo_table / sizeof pg_opinfo_table[0] == PG_NOPS,
               "one pg_opinfo_table entry per op code");

/* op's kind (PG_KIND_*); op must be below PG_NOPS. */
static inline int pg_kind(int op) { return pg_opinfo_table[op].kind; }

/* How many node inputs op reads: 0 (leaf), 1, 2, or PG_NARY (a list). */
static inline int pg_arity(int op) { return pg_opinfo_table[op].arity; }

/* How many local partials are stored for op: one per input node of a one-
 * or two-input op; none for leaves and n-ary ops (whose backward reads the
 * values). */
static inline int pg_nparts(int op) { return pg_opinfo_table[op].nparts; }

/* Whether op reads a constant k (the CONST ops). */
static inline int pg_has_k(int op) { return pg_opinfo_table[op].has_k; }

/* Whether op is one of the n-ary sums (pg_sum, pg_dot). */
static inline int pg_is_nary(int op) { return pg_kind(op) == PG_KIND_NARY; }

/* Whether op keeps its inputs in a list (aux.list: in0 entries, in1 the
 * start node or PG_NONE), not in in0/in1: the n-ary and Python ops. */
static inline int pg_has_list(int op) { return pg_arity(op) == PG_NARY; }

/* Whether op's backward is Python's. */
static inline int pg_is_python(int op) { return pg_kind(op) == PG_KIND_PYTHON; }

/* Whether op's partials never change (1, -1, k or 1/k). */
static inline int pg_fixed_partials(int op) { return pg_opinfo_table[op].fixed; }

/* All three columns of a one- or two-input op: the value (*out) and the
 * local partials (*dx, *dy), or its math error (nothing written); PG_EINVAL
 * for other ops.  For making a node. */
static inline int pg_eval(int op, double x, double y, double k,
                          double *out, double *dx, double *dy)
{
    switch (op) {
#define PG_EVAL_CASE(op_, kind_, part_, v_, dx_, dy_, err_, ...)                  \
    PG_IF_FORMULA(kind_,                                                     \
    case op_: {                                                              \
        double v = (v_);                                                     \
        int rc = (err_);                                                     \
        if (rc != PG_OK)                                                     \
            return rc;                                                       \
        *dx = (dx_);                                                         \
        *dy = (dy_);                                                         \
        *out = v;                                                            \
        return PG_OK;                                                        \
    })
    PG_OP_TABLE(PG_EVAL_CASE)
#undef PG_EVAL_CASE
    default:
        return PG_EINVAL;
    }
}

/* The error check of a one- or two-input op alone (a tape's forward, which
 * computes the value and partials itself). */
static inline int pg_check(int op, double x, double y, double k, double v)
{
    switch (op) {
#define PG_CHECK_CASE(op_, kind_, part_, v_, dx_, dy_, err_, ...)                 \
    PG_IF_FORMULA(kind_, case op_: return (err_);)
    PG_OP_TABLE(PG_CHECK_CASE)
#undef PG_CHECK_CASE
    default:
        return PG_OK;
    }
}

/* The n-ary ops, in Python's sum() order so that a Neuron built from one
 * PG_DOT node rounds exactly like micrograd's chain of * and +:
 *   PG_SUM  v = s + x[0] + ... + x[m-1]          dv/dx[j] = 1
 *   PG_DOT  v = s + w[0]*x[0] + ... + w[n-1]*x[n-1]   (m = 2n entries,
 *           w first)          dv/dw[j] = x[j],  dv/dx[j] = w[j]
 * s is the start's value; dv/ds = 1. */
static inline double pg_nary_forward(int op, const double *val,
                                     const pg_index *list, uint32_t m,
                                     double s)
{
    if (op == PG_SUM) {
        for (uint32_t j = 0; j < m; j++)
            s = s + val[list[j]];
    } else {
        uint32_t n = m / 2;
        for (uint32_t j = 0; j < n; j++)
            s = s + val[list[j]] * val[list[n + j]];
    }
    return s;
}

#endif /* PYGRAD_OPS_H */
