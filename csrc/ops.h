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
#include "pygrad.h"

/* Logistic function without overflow for large |x|: exp() only ever sees a
 * non-positive argument. */
static inline double pg_sigmoid(double x)
{
    if (x >= 0.0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

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
    X(PG_RELU,     (x < 0.0 ? 0.0 : x), (double)(v > 0.0),     0.0)

/* How many node inputs an op reads: 0 (leaf), 1 or 2. */
static inline int pg_arity(int op)
{
    switch (op) {
    case PG_ADD: case PG_SUB: case PG_MUL: case PG_DIV: case PG_POW:
        return 2;
    case PG_LEAF: case PG_FREE:
        return 0;
    default:
        return 1;
    }
}

/* The value column.  op must be a table op. */
static inline double pg_forward(int op, double x, double y, double k)
{
    switch (op) {
#define PG_FORWARD_CASE(op_, v_, dx_, dy_) case op_: return (v_);
    PG_OP_TABLE(PG_FORWARD_CASE)
#undef PG_FORWARD_CASE
    default:
        return NAN;
    }
}

/* The derivative columns, given the node's value v.  op must be a table op. */
static inline void pg_partials(int op, double x, double y, double k, double v,
                               double *dx, double *dy)
{
    (void)k; (void)y;
    switch (op) {
#define PG_PARTIALS_CASE(op_, v_, dx_, dy_) \
    case op_: *dx = (dx_); *dy = (dy_); return;
    PG_OP_TABLE(PG_PARTIALS_CASE)
#undef PG_PARTIALS_CASE
    default:
        *dx = *dy = 0.0;
    }
}

/* PG_OK, or the error Python's float arithmetic / math module raises for the
 * same operands (pg_check_math is CPython's math_1 rule, mathmodule.c). */
int pg_check(int op, double x, double y, double k, double v);

#endif /* PYGRAD_OPS_H */
