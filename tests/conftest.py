"""Shared test fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _restore_user_registries():
    """Model families and datasets registered from 'user code' by a test are forgotten after it, so tests that walk
    the registry (every built-in family) never meet another test's factories."""
    import sys

    if "tuneall.models" not in sys.modules:  # nothing registered yet, and no torch import just for this
        yield
        _forget_new(None, None)
        return
    from tuneall.models import _registry
    from tuneall.data import user as user_data

    models, data = dict(_registry._REGISTRY), dict(user_data._USER)
    yield
    _forget_new(models, data)


@pytest.fixture(autouse=True)
def _no_ray_left_running():
    """A test that starts Ray stops it (a module's shared Ray is started before this runs and stopped after): a
    leaked Ray makes every later ``ray.init`` in the session fail, far from its cause."""
    import sys

    def connected() -> bool:
        worker = sys.modules.get("ray._private.worker")
        return worker is not None and worker.global_worker.connected

    before = connected()
    yield
    if not before and connected():
        import ray

        ray.shutdown()
        pytest.fail("the test left a Ray running (something called Ray outside a session and started one)")


def _forget_new(models, data) -> None:
    import sys

    if "tuneall.models" not in sys.modules:
        return
    from tuneall.models import _registry
    from tuneall.data import user as user_data

    if models is None:
        models = {k: v for k, v in _registry._REGISTRY.items() if not v.user}
        data = {}
    if _registry._REGISTRY != models:
        _registry._REGISTRY.clear()
        _registry._REGISTRY.update(models)
        _registry._clear_caches()
    user_data._USER.clear()
    user_data._USER.update(data)
