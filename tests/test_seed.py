"""The seed exercise (shared/seed-exercise.txt) as tests: its numbers are the
ground truth, computed there by hand, numerically and with torch."""
from math import cos, sin

import pytest

from pygrad import Value
from pygrad import reference

# section 1: f and its analytic gradient at (2, 3, 4)
F_AT_234 = 6.336362190988558
GRAD_F_AT_234 = [-12.353553390593273, 10.25699027111255, 0.0625]
# section 2: softmax + negative log likelihood, logits [0, 3, -2, 1], label 3
LOGITS = [0.0, 3.0, -2.0, 1.0]
NLL_GRADS = [0.041772570515350445, 0.8390245074625319,
             0.005653302662216329, -0.8864503806400986]


def f(a, b, c, sin=sin):
    """The seed's f; pass sin=value_sin to run it on Values."""
    return -a**3 + sin(3*b) - 1.0/c + b**2.5 - a**0.5


def value_sin(v):
    return v.sin()


def test_f_value():
    assert f(2, 3, 4) == pytest.approx(F_AT_234, abs=1e-15)
    assert f(Value(2), Value(3), Value(4), value_sin).data == pytest.approx(F_AT_234, abs=1e-15)


@pytest.mark.parametrize("engine", [Value, reference.Value], ids=["pygrad", "reference"])
def test_f_gradient_by_backward(engine):
    a, b, c = engine(2), engine(3), engine(4)
    f(a, b, c, value_sin).backward()
    assert [a.grad, b.grad, c.grad] == pytest.approx(GRAD_F_AT_234, abs=1e-12)


def test_analytic_gradient_formula():
    a, b, c = 2, 3, 4
    analytic = [-3*a**2 - 0.5*a**-0.5, 3*cos(3*b) + 2.5*b**1.5, 1.0/c**2]
    assert analytic == pytest.approx(GRAD_F_AT_234, abs=1e-12)


def test_numerical_estimates_and_symmetric_is_closer():
    h = 0.000001
    a, b, c = 2, 3, 4
    one_sided = [(f(a + h, b, c) - f(a, b, c)) / h,
                 (f(a, b + h, c) - f(a, b, c)) / h,
                 (f(a, b, c + h) - f(a, b, c)) / h]
    symmetric = [(f(a + h, b, c) - f(a - h, b, c)) / (2*h),
                 (f(a, b + h, c) - f(a, b - h, c)) / (2*h),
                 (f(a, b, c + h) - f(a, b, c - h)) / (2*h)]
    # the estimates agree with pygrad's backward within 1e-5 ...
    A, B, C = Value(a), Value(b), Value(c)
    f(A, B, C, value_sin).backward()
    exact = [A.grad, B.grad, C.grad]
    for est in (one_sided, symmetric):
        assert est == pytest.approx(exact, abs=1e-5)
    # ... and the symmetric one is closer, as the seed's section 1 concludes
    div1 = sum(abs(e - x) for e, x in zip(one_sided, exact))
    div2 = sum(abs(e - x) for e, x in zip(symmetric, exact))
    assert div2 < div1 / 100


def softmax(logits):
    counts = [logit.exp() for logit in logits]
    denominator = sum(counts)
    return [c / denominator for c in counts]


@pytest.mark.parametrize("engine", [Value, reference.Value], ids=["pygrad", "reference"])
def test_softmax_nll(engine):
    logits = [engine(x) for x in LOGITS]
    probs = softmax(logits)
    loss = -probs[3].log()
    loss.backward()
    assert [v.grad for v in logits] == pytest.approx(NLL_GRADS, abs=1e-12)


def test_softmax_nll_against_torch():
    torch = pytest.importorskip("torch")
    logits = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    loss = -torch.softmax(logits, dim=0)[3].log()
    loss.backward()
    ours = [Value(x) for x in LOGITS]
    (-softmax(ours)[3].log()).backward()
    assert [v.grad for v in ours] == pytest.approx(logits.grad.tolist(), abs=1e-12)
