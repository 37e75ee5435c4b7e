/* ops.c -- creating nodes: evaluate the op, reject what Python's float
 * arithmetic would reject, and only then allocate, so a failed call leaves the
 * arena untouched.  The maths itself is the table in ops.h.
 */
#include "arena.h"
#include "ops.h"

/* CPython's math_1 (Modules/mathmodule.c): a NaN from a non-NaN argument is a
 * domain error; an infinity from a finite argument is an overflow for
 * functions that can overflow (exp) and a domain error otherwise (log(0)). */
static int check_math1(double x, double r, int can_overflow)
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
static int check_pow(double b, double e, double r)
{
    if (e == 0.0 || isnan(b) || isnan(e) || isinf(b) || isinf(e))
        return PG_OK;
    if (b == 0.0)
        return e < 0.0 ? PG_EZERODIV : PG_OK;
    if (b < 0.0 && e != floor(e))
        return PG_EDOMAIN;
    return isinf(r) ? PG_ERANGE : PG_OK;
}

int pg_check(int op, double x, double y, double k, double v)
{
    switch (op) {
    case PG_DIV:   return y == 0.0 ? PG_EZERODIV : PG_OK;
    case PG_DIVC:  return k == 0.0 ? PG_EZERODIV : PG_OK;
    case PG_RDIVC: return x == 0.0 ? PG_EZERODIV : PG_OK;
    case PG_POW:   return check_pow(x, y, v);
    case PG_POWC:  return check_pow(x, k, v);
    case PG_RPOWC: return check_pow(k, x, v);
    case PG_EXP:   return check_math1(x, v, 1);
    case PG_LOG:
    case PG_SIN:
    case PG_COS:   return check_math1(x, v, 0);
    default:       return PG_OK;
    }
}

int64_t pg_leaf(pg_arena *a, double value)
{
    LOCK(a);
    pg_index i = pg__alloc(a);
    if (i != PG_NONE) {
        a->op[i] = PG_LEAF;
        a->val[i] = value;
    }
    UNLOCK(a);
    return i == PG_NONE ? PG_ENOMEM : (int64_t)i;
}

/* Shared tail of pg_op1/pg_op2, under the lock, inputs already validated. */
static int64_t make_node(pg_arena *a, int op, pg_index xi, pg_index yi,
                         double k)
{
    double x = a->val[xi];
    double y = yi == PG_NONE ? 0.0 : a->val[yi];
    double v = pg_forward(op, x, y, k);
    int rc = pg_check(op, x, y, k, v);
    if (rc != PG_OK)
        return rc;
    /* inputs gain one reference each (two if x is y): refuse before
     * allocating if that would overflow the count */
    if (a->ref[xi] >= PG_NONE - 2 || (yi != PG_NONE && a->ref[yi] >= PG_NONE - 2))
        return PG_ENOMEM;
    pg_index i = pg__alloc(a);
    if (i == PG_NONE)
        return PG_ENOMEM;
    a->op[i] = (uint8_t)op;
    a->val[i] = v;
    a->k[i] = k;
    a->in0[i] = xi;
    a->in1[i] = yi;
    a->ref[xi]++;
    if (yi != PG_NONE)
        a->ref[yi]++;
    return i;
}

int64_t pg_op1(pg_arena *a, int op, pg_index x, double k)
{
    if (op <= PG_LEAF || op >= PG_NOPS || pg_arity(op) != 1)
        return PG_EINVAL;
    LOCK(a);
    int64_t r = pg_is_live(a, x) ? make_node(a, op, x, PG_NONE, k) : PG_EINVAL;
    UNLOCK(a);
    return r;
}

int64_t pg_op2(pg_arena *a, int op, pg_index x, pg_index y)
{
    if (op <= PG_LEAF || op >= PG_NOPS || pg_arity(op) != 2)
        return PG_EINVAL;
    LOCK(a);
    int64_t r = pg_is_live(a, x) && pg_is_live(a, y)
                    ? make_node(a, op, x, y, 0.0)
                    : PG_EINVAL;
    UNLOCK(a);
    return r;
}
