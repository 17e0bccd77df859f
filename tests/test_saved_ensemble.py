"""A saved ensemble carries its input transform: raw inputs (pixels as the dataset ships them), numpy arrays, tensors
and single examples predict what the search recorded; evaluate((x, y)); user data found again in a new process or
one line saying how."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tuneall


def _raw_digits_test():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from tuneall.data import DIGITS_SEED, DIGITS_TEST_SIZE

    bunch = load_digits()
    _, x_te, _, y_te = train_test_split(bunch.images, bunch.target, test_size=DIGITS_TEST_SIZE,
                                        stratify=bunch.target, random_state=DIGITS_SEED)
    return x_te, y_te  # float64 pixels 0..16, (360, 8, 8): not standardised


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ens")
    tuneall.train(dataset="digits", budget=3e5, min_steps=20, width=0.25, k=2, seeds=1, storage_path=str(out),
                  name="t", progress=False)
    return out / "t"


def test_raw_inputs_score_the_recorded_accuracy(trained):
    ens = tuneall.load_ensemble(trained)
    assert ens.transform["kind"] == "standardize" and len(ens.transform["mean"]) == 1
    x, y = _raw_digits_test()
    got = ens.evaluate((x[:, None], y))["ensemble_acc"]  # raw pixels with the channel axis
    assert got == pytest.approx(ens.recorded_accuracy, abs=1e-12)
    assert ens.evaluate()["ensemble_acc"] == pytest.approx(ens.recorded_accuracy, abs=1e-12)
    # Without the channel axis, flattened (sklearn's digits.data), numpy or torch: the same labels.
    import torch

    labels = ens.predict(x)
    assert isinstance(labels, np.ndarray) and labels.shape == (360,)
    assert (labels == y).mean() == pytest.approx(ens.recorded_accuracy, abs=1e-12)
    assert np.array_equal(ens.predict(x.reshape(360, 64)), labels)
    assert torch.equal(ens.predict(torch.as_tensor(x, dtype=torch.float32)), torch.as_tensor(labels))
    one = ens.predict(x[0])
    assert isinstance(one, int) and one == labels[0]
    assert ens.predict_log_proba(x[0]).shape == (10,)


def test_wrong_shapes_and_data_get_one_line(trained):
    from tuneall.core.errors import ConfigError

    ens = tuneall.load_ensemble(trained)
    with pytest.raises(ConfigError, match=r"fit neither one example \(1, 8, 8\)"):
        ens.predict(np.zeros((3, 7)))
    with pytest.raises(ConfigError, match="evaluate: data must be"):
        ens.evaluate("digits")


def _run(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_user_data_in_a_new_process(tmp_path):
    (tmp_path / "mydata.py").write_text(textwrap.dedent("""
        import numpy as np

        def load():
            rng = np.random.default_rng(0)
            x = rng.normal(size=(600, 1, 8, 8)).astype("float32")
            y = (x.mean(axis=(1, 2, 3)) > 0).astype("int64")
            return x, y
    """))
    train = """
        import tuneall, mydata
        {register}
        tuneall.train(dataset={data!r}, budget=2e5, min_steps=20, width=0.25, k=1, seeds=1, storage_path=".",
                      name="{name}")
    """
    assert _run(train.format(register="", data="mydata:load", name="a"), tmp_path).returncode == 0
    reg = "x, y = mydata.load(); tuneall.register_data({'x_train': x[:500], 'y_train': y[:500], 'x_test': x[500:], " \
          "'y_test': y[500:]}, name='mine')"
    assert _run(train.format(register=reg, data="mine", name="b"), tmp_path).returncode == 0
    again = "import tuneall; e = tuneall.load_ensemble('{name}'); print(e.evaluate()['ensemble_acc'], " \
            "e.recorded_accuracy)"
    r = _run(again.format(name="a"), tmp_path)  # a module-level loader: found again by its import path
    got, recorded = map(float, r.stdout.split())
    assert r.returncode == 0 and got == pytest.approx(recorded, abs=1e-12)
    r = _run(again.format(name="b"), tmp_path)  # tensors registered in another process: one line saying how
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode != 0 and "not registered in this process" in last and "ensemble.evaluate((x_test" in last
