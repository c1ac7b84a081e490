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
