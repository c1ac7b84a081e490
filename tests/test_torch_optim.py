"""Keras's optimizer rules in torch: five steps give the same weights as Keras's optimizers."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

from specc.runner.torch_optim import make_optimizer  # noqa: E402
from specc.spec import SGD, Adam, AdamW, RMSprop  # noqa: E402

CASES = [
    SGD(type="sgd", learning_rate=0.1),
    SGD(type="sgd", learning_rate=0.05, momentum=0.9, nesterov=True),
    SGD(type="sgd", learning_rate=0.05, momentum=0.8, weight_decay=0.01),
    Adam(type="adam"),
    Adam(type="adam", learning_rate=0.01, beta_1=0.8, epsilon=1e-3, amsgrad=True),
    AdamW(type="adamw", learning_rate=0.01, weight_decay=0.1),
    RMSprop(type="rmsprop", learning_rate=0.01),
    RMSprop(type="rmsprop", learning_rate=0.01, momentum=0.9, centered=True, epsilon=1e-3),
]


def keras_optimizer(spec):
    args = spec.model_dump(exclude={"type"})
    if args.get("weight_decay") is None:
        args.pop("weight_decay", None)
    cls = {
        "sgd": keras.optimizers.SGD,
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "rmsprop": keras.optimizers.RMSprop,
    }[spec.type]
    return cls(**args)


@pytest.mark.parametrize("spec", CASES, ids=lambda s: repr(s.model_dump()))
def test_five_steps_match_keras(spec):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(4, 3)).astype("float32")
    grads = [rng.normal(size=(4, 3)).astype("float32") for _ in range(5)]

    variable = keras.Variable(w0.copy())
    k_opt = keras_optimizer(spec)
    for g in grads:
        k_opt.apply_gradients([(keras.ops.convert_to_tensor(g), variable)])

    param = torch.nn.Parameter(torch.tensor(w0.copy()))
    t_opt = make_optimizer([param], spec)
    for g in grads:
        param.grad = torch.tensor(g)
        t_opt.step()

    np.testing.assert_allclose(param.detach().numpy(), np.asarray(variable), rtol=1e-5, atol=1e-6)
    assert not np.allclose(w0, np.asarray(variable))  # the weights really moved


# ---- the training scripts' optimizers vs the runner's: a documented, tested choice ----
# The scripts (`compile --with-training`) use stock torch.optim with the spec's values, the
# runner Keras's exact rules (docs/codegen.md, "Optimizers"). Both read the same spec model;
# these tests pin how far they may drift apart: SGD is the same rule; Adam differs only by
# where epsilon goes, RMSprop by eps inside/outside the root (bounds from 200 steps).
SCRIPT_BOUNDS = [
    (SGD(type="sgd", learning_rate=0.05, momentum=0.9, nesterov=True), 1e-7),  # measured 0
    (Adam(type="adam", learning_rate=0.01), 5e-7),  # measured 1.2e-7
    (AdamW(type="adamw", learning_rate=0.01, weight_decay=0.1), 2e-6),  # 7.0e-7
    (RMSprop(type="rmsprop", learning_rate=0.001), 2e-6),  # 5.7e-7
]


def _script_optimizer(spec, params):
    """Evaluate the constructor the training script writes for ``spec``."""
    from specc.codegen.pyformat import Renderer
    from specc.codegen.training import _torch_optimizer

    _, expr, decay = _torch_optimizer({"optimizer": spec.model_dump()})
    (line,) = [" ".join(x.strip() for x in Renderer([]).lines(expr, ""))]
    source = line.replace("model.parameters()", "params").replace("( ", "(").replace(", )", ")")
    return eval(source, {"torch": torch, "params": params}), decay  # noqa: S307 - our own code


@pytest.mark.parametrize(("spec", "bound"), SCRIPT_BOUNDS, ids=lambda v: getattr(v, "type", ""))
def test_script_optimizer_stays_close_to_the_runners_exact_rule(spec, bound):
    rng = np.random.default_rng(0)
    a = torch.tensor(rng.normal(size=(32, 8)), dtype=torch.float32)
    b = torch.tensor(rng.normal(size=(32,)), dtype=torch.float32)
    start = torch.tensor(rng.normal(size=(8,)), dtype=torch.float32)
    runs = {}
    for who in ("script", "runner"):
        w = start.clone().requires_grad_(True)
        if who == "script":
            opt, decay = _script_optimizer(spec, [w])
        else:
            opt, decay = make_optimizer([w], spec), 0.0
        for _ in range(200):
            opt.zero_grad()
            loss = ((a @ w - b) ** 2).mean()
            loss.backward()
            if decay:
                with torch.no_grad():
                    w.sub_(w * (spec.learning_rate * decay))
            opt.step()
        runs[who] = w.detach().numpy()
    difference = float(np.max(np.abs(runs["script"] - runs["runner"])))
    assert difference <= bound, difference
