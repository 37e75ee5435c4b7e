/* ops.h -- every op's maths on one screen: its value and its local partial
 * derivatives side by side, as in micrograd's engine.py.  ops.c evaluates the
 * value column when a node is created, backward.c the derivative columns.
 *
 * In each row: x is input 0's value, y input 1's (two-input ops), k the
 * constant operand (the C ops), v the node's own value.  The formulas are
 * the ones pygrad/reference.py uses, term for term, so both engines round
 * alike.
 */
#ifndef PYGRAD_OPS_H
#define PYGRAD_OPS_H

#include <math.h>
#include "arena.h"

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
 * the sign of x, which is a coin toss in a graph. */
#ifdef __SSE2__
#include <emmintrin.h>
static inline double pg_relu(double x)
{
    return _mm_cvtsd_f64(_mm_max_sd(_mm_setzero_pd(), _mm_set_sd(x)));
}
#else
static inline double pg_relu(double x)
{
    return x < 0.0 ? 0.0 : x;
}
#endif

/* d(b**e)/de = b**e * log(b).  At b == 0 the product is 0 * -inf; torch and
 * we take the limit 0 (forward already rejected 0 to a negative power). */
static inline double pg_dpow_dexp(double b, double v)
{
    return b == 0.0 ? 0.0 : v * log(b);
}

/*    op           value v            dv/dx                    dv/dy          */
#define PG_OP_TABLE(X)                                                        \
    X(PG_ADD,      x + y,             1.0,                     1.0)           \
    X(PG_SUB,      x - y,             1.0,                    -1.0)           \
    X(PG_MUL,      x * y,             y,                       x)             \
    X(PG_DIV,      x / y,             1.0 / y,                -v / y)         \
    X(PG_POW,      pow(x, y),         y * pow(x, y - 1.0),     pg_dpow_dexp(x, v)) \
    X(PG_ADDC,     x + k,             1.0,                     0.0)           \
    X(PG_MULC,     x * k,             k,                       0.0)           \
    X(PG_SUBC,     x - k,             1.0,                     0.0)           \
    X(PG_RSUBC,    k - x,            -1.0,                     0.0)           \
    X(PG_DIVC,     x / k,             1.0 / k,                 0.0)           \
    X(PG_RDIVC,    k / x,            -v / x,                   0.0)           \
    X(PG_POWC,     pow(x, k),         k * pow(x, k - 1.0),     0.0)           \
    X(PG_RPOWC,    pow(k, x),         pg_dpow_dexp(k, v),      0.0)           \
    X(PG_NEG,      -x,               -1.0,                     0.0)           \
    X(PG_EXP,      exp(x),            v,                       0.0)           \
    X(PG_LOG,      log(x),            1.0 / x,                 0.0)           \
    X(PG_SIN,      sin(x),            cos(x),                  0.0)           \
    X(PG_COS,      cos(x),           -sin(x),                  0.0)           \
    X(PG_TANH,     tanh(x),           1.0 - v * v,             0.0)           \
    X(PG_SIGMOID,  pg_sigmoid(x),     v * (1.0 - v),           0.0)           \
    X(PG_RELU,     pg_relu(x),        (double)(v > 0.0),       0.0)

/* How many node inputs an op reads: 0 (leaf), 1, 2, or PG_NARY (a list). */
#define PG_NARY 3
static inline int pg_arity(int op)
{
    switch (op) {
    case PG_ADD: case PG_SUB: case PG_MUL: case PG_DIV: case PG_POW:
        return 2;
    case PG_LEAF: case PG_FREE:
        return 0;
    case PG_SUM: case PG_DOT:
        return PG_NARY;
    default:
        return 1;
    }
}


/* The n-ary ops, in Python's sum() order so that a Neuron built from one
 * PG_DOT node rounds exactly like micrograd's chain of * and +:
 *   PG_SUM  v = s + x[0] + ... + x[n-1]          dv/dx[j] = 1
 *   PG_DOT  v = s + w[0]*x[0] + ... + w[n-1]*x[n-1]
 *                              dv/dw[j] = x[j],  dv/dx[j] = w[j]
 * s is the start node's value, or the constant k; dv/ds = 1.
 * `l` is the node's aux.list, `m` its in0 (entries, 2n for PG_DOT), `start`
 * its in1. */
static inline double pg_nary_forward(int op, const double *val,
                                     const pg_list *l, uint32_t m,
                                     pg_index start)
{
    const pg_index *list = l->item;
    double s = start == PG_NONE_INDEX ? l->k : val[start];
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

/* Checks: PG_OK, or the error Python's float arithmetic / math module
 * raises for the same operands.  Inline, so that a switch case with a
 * constant op keeps only its own test. */
/* CPython's math_1 (Modules/mathmodule.c): a NaN from a non-NaN argument is a
 * domain error; an infinity from a finite argument is an overflow for
 * functions that can overflow (exp) and a domain error otherwise (log(0)). */
static inline int pg_check_math1(double x, double r, int can_overflow)
{
    if (isnan(r) && !isnan(x))
        return PG_EDOMAIN;
    if (isinf(r) && isfinite(x))
        return can_overflow ? PG_ERANGE : PG_EDOMAIN;
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

static inline int pg_check(int op, double x, double y, double k, double v)
{
    switch (op) {
    case PG_DIV:   return y == 0.0 ? PG_EZERODIV : PG_OK;
    case PG_DIVC:  return k == 0.0 ? PG_EZERODIV : PG_OK;
    case PG_RDIVC: return x == 0.0 ? PG_EZERODIV : PG_OK;
    case PG_POW:   return pg_check_pow(x, y, v);
    case PG_POWC:  return pg_check_pow(x, k, v);
    case PG_RPOWC: return pg_check_pow(k, x, v);
    case PG_EXP:   return pg_check_math1(x, v, 1);
    case PG_LOG:
    case PG_SIN:
    case PG_COS:   return pg_check_math1(x, v, 0);
    default:       return PG_OK;
    }
}


/* All three columns: the value (*out) and the local partials (*dx, *dy) of
 * a table op, or its math error (nothing written).  For making a node. */
static inline int pg_eval(int op, double x, double y, double k,
                          double *out, double *dx, double *dy)
{
    switch (op) {
#define PG_EVAL_CASE(op_, v_, dx_, dy_)                                       \
    case op_: {                                                               \
        double v = (v_);                                                      \
        int rc = pg_check(op_, x, y, k, v);                                   \
        if (rc != PG_OK)                                                      \
            return rc;                                                        \
        *dx = (dx_);                                                          \
        *dy = (dy_);                                                          \
        *out = v;                                                             \
        return PG_OK;                                                         \
    }
    PG_OP_TABLE(PG_EVAL_CASE)
#undef PG_EVAL_CASE
    default:
        return PG_EINVAL;
    }
}

#endif /* PYGRAD_OPS_H */
