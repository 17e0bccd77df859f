"""Datasets as in-memory CPU tensors, behind a small name registry.

Every dataset is float32 inputs normalised per channel with statistics of its *training* split, int64 labels, no
augmentation. ``dataset_info`` is static so a budget can be planned without the data; ``load_dataset`` reads,
downloads or generates the data and caches it in-process (treat the returned tensors as read-only: they are shared).

Validation. Every loaded dataset holds a validation split carved from its training split (:func:`with_validation`:
``val_fraction`` of the rows, 10 % by default, chosen by a permutation with a fixed seed, so it is the same for every
member, budget and run). Searches and sweeps choose on validation and report test beside it. The normalisation
statistics are those of the training split before the carve (no test input enters them).
"""

from __future__ import annotations

from tuneall.core.lazy import exports

# Public names -> the module that defines them, imported on first use: ``import tuneall.data`` (and the registry the
# CLI lists datasets from) stays torch-free until a tensor is needed.
_WHERE = {
    **dict.fromkeys(("DatasetInfo", "INFOS", "DEFAULT_VAL_FRACTION", "VAL_SEED", "SYNTHETIC_SHAPE", "SYNTHETIC_SIGNAL",
                     "SYNTHETIC_N_TRAIN", "SYNTHETIC_N_TEST", "DIGITS_TEST_SIZE", "DIGITS_SEED", "list_datasets",
                     "val_count", "fraction_size"), "registry"),
    **dict.fromkeys(("Dataset", "split_indices", "with_validation", "with_fraction", "check_batch_sizes",
                     "make_synthetic"), "tensors"),
    **dict.fromkeys(("dataset_info", "resolve_data_dir", "load_dataset", "clear_cache"), "loading"),
    **dict.fromkeys(("CIFAR_URLS", "CIFAR_MD5", "CIFAR_MEMBER_MD5", "DOWNLOAD_TIMEOUT_S", "load_cifar"), "cifar"),
    **dict.fromkeys(("register_data", "to_dataset"), "user"),
}


__getattr__, __dir__ = exports(__name__, _WHERE)

__all__ = sorted(_WHERE)
