"""Model families. Importing this package registers every built-in family."""

from tuneall.core.architecture import Architecture
from tuneall.models._registry import (
    ModelFamily,
    add_family,
    as_architecture,
    check_arch,
    check_family,
    check_width_scales,
    count_params,
    create_model,
    get_family,
    list_models,
    param_count,
    register_builtin,
    register_model,
    resolve_family,
    scaled,
    use_model,
    user_families,
)
from tuneall.models import cnn  # noqa: F401  (registers cnn3)
from tuneall.models import resnet, wrn  # noqa: F401  (register resnet, wrn)

__all__ = [
    "ModelFamily",
    "check_arch",
    "count_params",
    "create_model",
    "get_family",
    "list_models",
    "param_count",
    "register_model",
    "register_builtin",
    "resolve_family",
    "user_families",
    "use_model",
    "add_family",
    "check_family",
    "check_width_scales",
    "as_architecture",
    "Architecture",
    "scaled",
]
