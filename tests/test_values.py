"""The value objects: a Recipe built once at the API's boundary and carried whole, the API's keyword groups declared
once (signatures and recorded calls as before), and an Architecture through the model registry."""

from __future__ import annotations

import inspect
from dataclasses import fields

import pytest

import tuneall
from tuneall import api
from tuneall.core.config import RECIPE_FIELDS, Recipe, SpaceAxes, TrainConfig
from tuneall.core.errors import ConfigError
from tuneall.models import Architecture, create_model, param_count


def test_train_config_keeps_its_flat_fields_in_order():
    # Member-store keys are asdict(TrainConfig): its fields and their order are part of every stored key.
    assert [f.name for f in fields(TrainConfig)] == ["lr", "momentum", "batch_size", "weight_decay", "optimizer",
                                                     "label_smoothing", "device", "eval_batch_size", "channels_last",
                                                     "heartbeat_s"]


def test_recipe_round_trips_through_train_config():
    cfg = TrainConfig.from_recipe(Recipe(lr=0.1, optimizer="adamw"), device="cpu")
    assert cfg == TrainConfig(lr=0.1, optimizer="adamw")
    assert cfg.recipe == Recipe(lr=0.1, momentum=0.9, batch_size=128, weight_decay=0.0, optimizer="adamw",
                                label_smoothing=0.0)
    assert TrainConfig.from_recipe() == TrainConfig()
    assert list(cfg.optimiser_fields()) == list(RECIPE_FIELDS)  # the tables' column order


def test_recipe_of_a_point_has_train_config_types_and_is_checked():
    r = Recipe.of({"family": "cnn3", "lr": 1, "batch_size": 64.0, "k": 2})
    assert r == Recipe(lr=1.0, batch_size=64) and type(r.lr) is float and type(r.batch_size) is int
    assert r.given() == {"lr": 1.0, "batch_size": 64}
    for bad, field in (({"lr": 0}, "lr"), ({"momentum": -1}, "momentum"), ({"optimizer": "adam"}, "optimizer"),
                       ({"label_smoothing": 1.0}, "label_smoothing"), ({"batch_size": 0}, "batch_size")):
        with pytest.raises(ConfigError, match=field):
            Recipe(**bad)
    with pytest.raises(ConfigError, match="lr"):
        tuneall.search(3e7, lr=-1, dry_run=True)  # refused at the boundary, before anything runs


def test_api_keywords_stand_where_they_always_stood():
    recipe = ["lr", "momentum", "batch_size", "weight_decay", "optimizer", "label_smoothing"]
    axes = ["model", "widths", "depths", "k"]
    for verb, before in (("search", "study_storage"), ("sweep", "amp")):
        names = list(inspect.signature(getattr(api, verb)).parameters)
        i = names.index(before) + 1
        assert names[i:i + 12] == [*recipe, *axes, "data", "val_fraction"], verb
        assert "recipe" not in names and "axes" not in names
    assert list(inspect.signature(api.train).parameters)[11:17] == recipe
    assert list(inspect.signature(api.make_space).parameters) == ["space", "family", "widths", "depths", "k", *recipe]
    assert [f.name for f in fields(Recipe)] == recipe and [f.name for f in fields(SpaceAxes)] == axes


def test_a_recorded_call_names_the_recipe_and_axes_as_given(monkeypatch):
    calls = []

    def spy(verb, fn, given):
        from tuneall.core.call import python_call

        calls.append(python_call(verb, fn, given)[0])
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "python_call", spy)
    with pytest.raises(KeyboardInterrupt):
        api.search(3e7, optimizer="adamw", lr=0.1, k=[1, 2], model="cnn3", trials=3)
    with pytest.raises(KeyboardInterrupt):
        api.train(budget=1e6, weight_decay=1e-4, momentum=0.5, k=2)
    assert calls == ["tuneall.search(budget=30000000.0, trials=3, lr=0.1, optimizer='adamw', model='cnn3', k=[1, 2])",
                     "tuneall.train(budget=1000000.0, k=2, momentum=0.5, weight_decay=0.0001)"]


def test_make_space_fixes_the_recipe_in_the_yaml_it_records():
    sp = tuneall.make_space(widths=[0.5, 1], k=[1, 2], optimizer="adamw", lr=0.1)
    assert sp.source == "name: cnn3-w0.5_1-k1_2\nfamilies:\n- cnn3\nlr: 0.1\noptimizer: adamw\nwidth:\n- 0.5\n- 1\nk:\n- 1\n- 2\n"
    paper = tuneall.make_space("paper", momentum=0.5)
    assert paper.axes["momentum"].values == (0.5,) and paper.name == "paper"


def test_architecture_and_the_loose_form_count_the_same():
    arch = Architecture("cnn3", 0.5, 3, (1, 8, 8), 10)
    assert (arch.in_channels, arch.spatial_dims) == (1, 2)
    assert param_count(arch) == param_count("cnn3", 0.5, 3, 1, 10, 2) == param_count("cnn3", 0.5, 3, input_shape=(1, 8, 8))
    assert param_count(Architecture("cnn3", 1.0, 3)) == 94_986  # CIFAR-10's shape by default
    assert sum(p.numel() for p in create_model(arch).parameters()) == param_count(arch)
    assert list(inspect.signature(create_model).parameters) == ["name", "width", "depth", "in_channels", "num_classes",
                                                               "spatial_dims", "input_shape"]


def test_a_user_family_needs_the_input_shape_in_the_loose_form():
    from tuneall.models import register_model
    from torch import nn

    register_model("t_values_mlp", lambda w, d, shape, c: nn.Linear(shape[0], c))
    assert param_count(Architecture("t_values_mlp", 1.0, None, (6,), 3)) == 6 * 3 + 3
    with pytest.raises(ConfigError, match="needs the input shape"):
        param_count("t_values_mlp", 1.0, None)
