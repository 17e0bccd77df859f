"""Your model, your data: how should a compute budget be spent on YOUR network and YOUR dataset?

This script is the template to copy. It defines its own network (an MLP; nothing of tuneall's), its own data (a
scikit-learn table: by default the 8x8 digits flattened to 64 features, 1,797 rows, 10 classes; `--table
breast_cancer` or `wine` for the others), and asks tuneall.search, on Ray, which width and ensemble size k spend
C = 3e6 parameter-steps best. tuneall carves a validation split from the training data (20 % here; 10 % by default),
chooses on it, and reports test accuracy beside it.

    python examples/your_model.py                 # about 2 minutes on 2 cores
    python examples/your_model.py --smoke-test    # seconds

The same from the command line, naming the factory and the data loader by import path:

    tuneall search --model examples/your_model.py:make_mlp --data examples/your_model.py:load_data \\
        --budget 3e6 --k 1,2,4,8 --searcher grid --optimizer adamw --lr 0.003 --weight-decay 1e-4
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from torch import nn

import tuneall

ROOT = Path(__file__).resolve().parent.parent


# 1. Your model: a factory fn(width, depth, input_shape, num_classes) -> nn.Module. tuneall counts its parameters
#    and FLOPs on the real module; `widths` is the grid searched unless you name others; depth = hidden layers.
@tuneall.register_model("mlp", widths=[0.25, 0.5, 1, 2], default_depth=2, depths=[1, 2, 3])
def make_mlp(width: float, depth: int, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    hidden = max(4, round(64 * width))
    layers, size = [nn.Flatten()], math.prod(input_shape)
    for _ in range(depth):
        layers += [nn.Linear(size, hidden), nn.ReLU()]
        size = hidden
    return nn.Sequential(*layers, nn.Linear(size, num_classes))


# 2. Your data: tensors or arrays as (x_train, y_train, x_test, y_test) (or a dict, a torch Dataset, or this
#    function itself). Integer class labels 0..C-1; inputs used as given, so standardise them here.
def load_data(table: str = "digits"):
    import sklearn.datasets
    from sklearn.model_selection import train_test_split

    x, y = getattr(sklearn.datasets, f"load_{table}")(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    mean, std = x_tr.mean(0), x_tr.std(0)
    std = np.where(std > 0, std, 1.0)  # digits has pixels that are blank in every training image
    f32 = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
    return f32(x_tr), y_tr, f32(x_te), y_te


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke-test", action="store_true", help="seconds-long run (used by the tests)")
    p.add_argument("--table", default="digits", choices=("digits", "breast_cancer", "wine"),
                   help="which scikit-learn table is 'your data'")
    p.add_argument("--out", default=str(ROOT / "results"), help="where the results directory goes")
    p.add_argument("--name", default=None, help="results directory name (default: your-model-TABLE)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    p.add_argument("--address", default=None, help="an existing Ray cluster HOST:PORT")
    args = p.parse_args(argv)
    smoke = args.smoke_test
    # 3. The question: C = 3e6 param-steps over widths x ensemble sizes, AdamW at a fixed learning rate.
    front = tuneall.search(
        budget=3e5 if smoke else 3e6, data=lambda: load_data(args.table), dataset=f"{args.table}-table",
        model="mlp",
        widths=[0.25, 1] if smoke else None, k=[1, 2] if smoke else [1, 2, 4, 8], searcher="grid",
        seeds=1 if smoke else 3, min_steps=20 if smoke else 50, optimizer="adamw", lr=3e-3, weight_decay=1e-4,
        val_fraction=0.2,  # 20 % of the training rows choose (10 % is the default; small tables want more)
        batch_size=64, storage_path=args.out, name=args.name or ("your-model-smoke" if smoke else
                                                                    f"your-model-{args.table}"),
        num_cpus=args.num_cpus, address=args.address, verbose=0,
    )
    # 4. The answer, chosen on validation, test reported beside it.
    best = front.iloc[0]
    print(f"\nBest way to spend C: mlp width {best['width']:g} (depth {int(best['depth'])}), k = {int(best['k'])} "
          f"members of {int(best['params_per_member']):,} parameters, {int(best['steps'])} AdamW steps each")
    print(f"  validation accuracy {best['val_ensemble_acc_mean']:.4f} ± {best['val_ensemble_acc_std']:.4f} "
          f"(chose it); test accuracy {best['ensemble_acc_mean']:.4f} ± {best['ensemble_acc_std']:.4f}")
    import pandas as pd

    summary = pd.read_csv(Path(front.attrs["results_dir"]) / "trials_summary.csv")
    tied = int(summary["tied_with_best"].sum()) - 1
    if tied > 0:
        print(f"  tied on validation with {tied} other allocation(s) (paired t-test over the seeds): equally good")
    print(f"Summary: {front.attrs['results_dir']}/summary.md")


if __name__ == "__main__":
    main()
