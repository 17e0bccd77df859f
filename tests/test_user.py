"""Your model, your data: user model families (registration, import paths, lazy modules, counts on the real module,
shipping to fresh processes and Ray workers) and user data in every accepted form."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import tuneall
from tuneall.core.errors import ConfigError, DataError
from tuneall.models import count_params, create_model, get_family, param_count, resolve_family
from tuneall.models.flops import inference_flops
from tuneall.models import Architecture
from tuneall.data.user import to_dataset

FACTORY = textwrap.dedent('''
    import math
    from torch import nn

    def make_mlp(width, depth, input_shape, num_classes):
        h = max(1, round(16 * width))
        layers = [nn.Flatten(), nn.Linear(math.prod(input_shape), h), nn.ReLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(h, h), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(h, num_classes))
''')


def mlp_params(inputs: int, h: int, depth: int, classes: int) -> int:
    return inputs * h + h + (depth - 1) * (h * h + h) + h * classes + classes


def test_register_model_function_and_decorator_and_builtins_protected():
    def fac(width, depth, input_shape, num_classes):
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))

    assert tuneall.register_model("t_fn", fac, widths=[1, 2], default_depth=3, depths=[1, 3]) == "t_fn"
    fam = get_family("t_fn")
    assert fam.user and fam.widths == (1.0, 2.0) and fam.default_depth == 3 and fam.valid_depth(3)
    assert not fam.valid_depth(2)

    @tuneall.register_model("t_deco")
    def other(width, depth, input_shape, num_classes):
        return fac(width, depth, input_shape, num_classes)

    assert callable(other) and get_family("t_deco").builder is other
    with pytest.raises(ConfigError, match="built in"):
        tuneall.register_model("cnn3", fac)
    model = create_model("t_fn", 1.0, None, num_classes=4, input_shape=(2, 5))
    assert count_params(model) == 10 * 4 + 4


def test_import_paths_by_file_and_module(tmp_path, monkeypatch):
    (tmp_path / "mynets.py").write_text(FACTORY)
    by_file = resolve_family(f"{tmp_path}/mynets.py:make_mlp")
    monkeypatch.syspath_prepend(str(tmp_path))
    by_module = resolve_family("mynets:make_mlp")
    assert by_file == by_module == "make_mlp"
    # P counted on the real module (meta device), for the data's input shape.
    assert param_count("make_mlp", 2.0, 2, 30, 2, 0, (30,)) == mlp_params(30, 32, 2, 2)
    with pytest.raises(ConfigError, match="not found"):
        resolve_family("nowhere/mynets.py:make_mlp")
    with pytest.raises(ConfigError, match="importing no_such_module failed"):
        resolve_family("no_such_module:make_mlp")


def test_lazy_modules_are_materialised_once_and_counted():
    @tuneall.register_model("t_lazy")
    def lazy(width, depth, input_shape, num_classes):
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(8), nn.ReLU(), nn.LazyLinear(num_classes))

    assert param_count("t_lazy", 1.0, None, 1, 3, 2, (1, 4, 4)) == 16 * 8 + 8 + 8 * 3 + 3
    assert inference_flops(Architecture("t_lazy", 1.0, None, (1, 4, 4), 3)) == 2 * (16 * 8 + 8 * 3)
    torch.manual_seed(0)
    a = create_model("t_lazy", 1.0, None, num_classes=3, input_shape=(1, 4, 4))
    torch.manual_seed(0)
    b = create_model("t_lazy", 1.0, None, num_classes=3, input_shape=(1, 4, 4))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))  # seeded: same init
    assert a.training  # materialised in eval mode, handed back in train mode


def test_user_family_trains_on_user_data_with_adamw_and_label_smoothing():
    x, y = np.random.default_rng(0).normal(size=(300, 6)).astype(np.float32), np.arange(300) % 3
    x[:, 0] += 2.0 * y  # learnable
    tuneall.register_model("t_train", lambda w, d, s, c: nn.Sequential(nn.Linear(s[0], 8), nn.ReLU(),
                                                                         nn.Linear(8, c)))
    tuneall.register_data((x, y), "t_data")
    res = tuneall.train(dataset="t_data", budget=2e4, family="t_train", k=2, seeds=1, optimizer="adamw", lr=0.01,
                        weight_decay=0.01, label_smoothing=0.1, batch_size=32)
    s = res.summary
    assert res.plan.params_per_member == 6 * 8 + 8 + 8 * 3 + 3
    assert res.plan.row()["optimizer"] == "adamw" and res.plan.row()["label_smoothing"] == 0.1
    assert s["ensemble_acc_mean"] > 0.6 and s["val_ensemble_acc_mean"] > 0.6  # chance is 1/3


def test_a_registered_family_reaches_a_fresh_process_as_the_workers_get_it(tmp_path):
    """The family comes from a file loaded by path, so a fresh process cannot import it: only the bytes that
    TrialContext.families carries (by value) can give it the factory. The child runs the trial exactly as a Ray
    worker does (runner.run_job with the search's job) and reports the metrics."""
    from tuneall.core.budget import Budget
    from tuneall.core.config import Resources
    from tuneall.core.imports import _cloudpickle
    from tuneall.runner import TrialContext, ship_families
    from tuneall.tuning.driver import trial_metrics

    (tmp_path / "shipped_nets.py").write_text(FACTORY)
    name = resolve_family(f"{tmp_path}/shipped_nets.py:make_mlp")
    module = get_family(name).builder.__module__
    assert module.startswith("_tuneall_user_")  # not importable anywhere else
    x = np.random.default_rng(1).normal(size=(200, 4)).astype(np.float32)
    data = to_dataset((x, (np.arange(200) % 2)), "shipped")
    ctx = TrialContext(job=trial_metrics, resources=Resources(), seeds=1, seed=0, budget=Budget(1e5, min_steps=20),
                       families=ship_families())
    (tmp_path / "ctx.pkl").write_bytes(_cloudpickle().dumps((ctx, data)))  # what Ray's object store holds
    child = textwrap.dedent(f'''
        import json, pickle, sys
        from tuneall.runner import run_job
        ctx, data = pickle.loads(open({str(tmp_path / "ctx.pkl")!r}, "rb").read())
        import importlib.util
        assert importlib.util.find_spec({module!r}) is None  # the factory's module cannot be imported here
        out = run_job({{"point": {{"family": {name!r}, "width": 0.5, "depth": 2, "k": 2}}}}, ctx, data)
        print(json.dumps({{k: out.get(k) for k in ("status", "params_per_member", "reason")}}))
    ''')
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env={"PYTHONPATH": str(Path(__file__).parents[1]), "PATH": "/usr/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"status": "ok", "params_per_member": mlp_params(4, 8, 2, 2), "reason": None}


def test_without_the_shipped_families_the_fresh_process_does_not_know_the_family(tmp_path):
    (tmp_path / "unshipped.py").write_text(FACTORY.replace("make_mlp", "make_unshipped"))
    name = resolve_family(f"{tmp_path}/unshipped.py:make_unshipped")
    child = f"from tuneall.models import get_family\nget_family({name!r})"
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(Path(__file__).parents[1]), "PATH": "/usr/bin"})
    assert proc.returncode != 0 and "unknown model family" in proc.stderr


# ---------------------------------------------------------------------------------------------------------------
# user data


def _xy(n, d=3, classes=3, seed=0):
    g = np.random.default_rng(seed)
    return g.normal(size=(n, d)).astype(np.float32), np.arange(n) % classes


def test_user_data_forms_and_carves():
    x, y = _xy(100)
    two = to_dataset((x, y))  # test (20 %) carved, then validation (10 % of the rest)
    assert (two.info.n_train, two.info.n_val, two.info.n_test) == (72, 8, 20)
    assert two.info.input_shape == (3,) and two.info.num_classes == 3
    xt, yt = _xy(30, seed=1)
    four = to_dataset((x, y, xt, yt))  # train + test: validation carved from train
    assert (four.info.n_train, four.info.n_val, four.info.n_test) == (90, 10, 30)
    xv, yv = _xy(11, seed=2)
    six = to_dataset((x, y, xv, yv, xt, yt))
    assert (six.info.n_train, six.info.n_val, six.info.n_test) == (100, 11, 30)
    assert torch.equal(six.x_val, torch.from_numpy(xv)) and six.y_val.dtype == torch.int64
    as_dict = to_dataset(lambda: {"x_train": torch.from_numpy(x), "y_train": torch.from_numpy(y), "x_test": xt,
                                  "y_test": yt, "num_classes": 5})
    assert as_dict.info.num_classes == 5 and torch.equal(as_dict.x_train, four.x_train)
    ds = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    assert torch.equal(to_dataset(ds).x_train, two.x_train)
    assert torch.equal(to_dataset((x, y)).x_val, two.x_val)  # deterministic


@pytest.mark.parametrize("data, words", [
    ((np.zeros((5, 2), np.float32),), "tuple of 1 items"),
    (("a", "b"), "x of the train split is a str"),
    ((np.zeros(5, np.float32), np.zeros(5, int)), "expected (N, features...)"),
    ((np.zeros((5, 2), np.float32), np.zeros((5, 1), int)), "expected (N,) class labels"),
    ((np.zeros((5, 2), np.float32), np.zeros(5, int)), "num_classes must be an integer >= 2"),
    ({"x_train": np.zeros((5, 2), np.float32)}, "needs both x_train and y_train"),
    (42, "got int"),
])
def test_bad_user_data_is_one_line(data, words):
    with pytest.raises(DataError) as err:
        to_dataset(data)
    assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_local_ray_search_with_a_user_family_and_user_data(tmp_path):
    """The issue's first failure: a family registered in the user's script came back `unknown model family` from
    every Ray worker. Here the family is defined in a file loaded by path and the data are tensors."""
    (tmp_path / "ray_nets.py").write_text(FACTORY.replace("make_mlp", "make_ray_mlp"))
    x, y = _xy(400, d=6, classes=3)
    x[:, 0] += 2.0 * y
    front = tuneall.search(budget=3e5, data=(x, y), dataset="ray-user", model=f"{tmp_path}/ray_nets.py:make_ray_mlp",
                           widths=[0.5, 1], k=[1, 2], searcher="grid", seeds=1, min_steps=20, num_cpus=2,
                           storage_path=str(tmp_path), name="user", verbose=0, optimizer="adamw", lr=0.01)
    trials = pd.read_csv(tmp_path / "user" / "trials.csv")
    assert len(trials) == 4 and (trials["status"] == "ok").all(), trials[["status", "error", "reason"]]
    assert (trials["val_ensemble_acc"] > 0.5).all() and (trials["ensemble_acc"] > 0.5).all()
    assert front.attrs["complete"] and len(front)
    meta = json.loads((tmp_path / "user" / "tuneall.json").read_text())
    assert meta["data"]["n_val"] == 32 and meta["config"]["dataset"] == "ray-user"


@pytest.mark.slow
def test_user_family_and_data_on_a_two_node_cluster(tmp_path):
    """Trials of a user family on user data run on both nodes of a loopback two-node Ray cluster."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    (tmp_path / "cluster_nets.py").write_text(FACTORY.replace("make_mlp", "make_cluster_mlp"))
    x, y = _xy(400, d=6, classes=3)
    x[:, 0] += 2.0 * y
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=1, node_ip_address="127.0.0.2",
                                                                include_dashboard=False))
    try:
        cluster.add_node(num_cpus=1, node_ip_address="127.0.0.2")
        ray.init(address=cluster.address, _node_ip_address="127.0.0.2")
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        tuneall.search(budget=3e5, data=(x, y), dataset="cluster-user", model=f"{tmp_path}/cluster_nets.py:"
                       "make_cluster_mlp", widths=[0.5, 1], k=[1, 2], searcher="grid", seeds=1, min_steps=20,
                       storage_path=str(tmp_path), name="cluster", verbose=0)
        trials = pd.read_csv(tmp_path / "cluster" / "trials.csv")
        assert len(trials) == 4 and (trials["status"] == "ok").all(), trials[["status", "error", "reason"]]
        assert trials["node_id"].nunique() == 2  # both nodes trained trials of the user's family
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.slow
def test_your_model_example_and_the_same_from_the_cli(tmp_path, capsys, monkeypatch):
    """examples/your_model.py --smoke-test on Ray, then the README's CLI form with --model / --data import paths."""
    import importlib.util

    from tuneall import cli

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("your_model_example", root / "examples" / "your_model.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    example.main(["--smoke-test", "--out", str(tmp_path), "--num-cpus", "2"])
    out = capsys.readouterr().out
    assert "Best way to spend C: mlp width" in out and "validation accuracy" in out and "test accuracy" in out
    monkeypatch.chdir(root)
    assert cli.main(["search", "--model", "examples/your_model.py:make_mlp", "--data", "examples/your_model.py:"
                     "load_data", "--budget", "3e5", "--widths", "0.25,1", "--k", "1,2", "--searcher", "grid",
                     "--seeds", "1", "--min-steps", "20", "--optimizer", "adamw", "--lr", "0.003",
                     "--storage-path", str(tmp_path), "--name", "cli", "--verbose", "0", "--num-cpus", "2"]) == 0
    out = capsys.readouterr().out
    assert "Best allocation: mlp width" in out and "(chosen on validation)" in out
    trials = pd.read_csv(tmp_path / "cli" / "trials.csv")
    # w=1, k=2 gets 16 < 20 steps at this budget: the grid runs the 3 feasible points
    assert len(trials) == 3 and (trials["status"] == "ok").all() and (trials["optimizer"] == "adamw").all()
    assert (trials["val_ensemble_acc"] > 0.5).all()


def test_search_space_yaml_names_a_factory_by_import_path_and_samples_the_recipe(tmp_path):
    from tuneall.planning.space import grid, parse_space

    (tmp_path / "yaml_nets.py").write_text(FACTORY.replace("make_mlp", "make_yaml_mlp") + textwrap.dedent('''
        import tuneall
        tuneall.register_model("yaml_mlp", make_yaml_mlp, widths=[0.5, 2], default_depth=1)
    '''))
    space = parse_space({"families": [f"{tmp_path}/yaml_nets.py:make_yaml_mlp"], "k": [1, 2],
                         "optimizer": ["sgd", "adamw"], "weight_decay": [0, 1e-4], "label_smoothing": 0.1})
    assert space.families == ("yaml_mlp",)  # the name the module registered its factory under
    points = grid(space)
    assert {p["width"] for p in points} == {0.5, 2.0}  # the family's own width grid
    assert {(p["optimizer"], p["weight_decay"]) for p in points} == {("sgd", 0), ("sgd", 1e-4), ("adamw", 0),
                                                                   ("adamw", 1e-4)}
    assert len(points) == 2 * 2 * 2 * 2 and all(p["label_smoothing"] == 0.1 for p in points)
    with pytest.raises(ConfigError, match="unknown optimizer 'adam'"):
        parse_space({"families": ["cnn3"], "optimizer": "adam"})
    with pytest.raises(ConfigError, match="label_smoothing"):
        parse_space({"families": ["cnn3"], "label_smoothing": 1.0})


def test_user_data_cannot_shadow_a_built_in_dataset():
    with pytest.raises(DataError, match="built-in"):
        tuneall.register_data(_xy(50), "digits")
