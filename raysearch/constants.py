"""Names shared by the search command, the loop, the report and the readers of an experiment.

One small module without imports, so `tune`, `loop`, `report` and `experiment`
agree on these names without importing one another.
"""

# What `python -m raysearch.tune` records in an experiment so --resume and analyze can rebuild it.
EXPERIMENT_FILE = "raysearch_experiment.yaml"

# A trial's score for a metric: the mean of its last SCORE_WINDOW epochs, reported
# every epoch as `score/<metric>` (e.g. score/val/swd). One lucky epoch cannot win
# a search: a trial's val/swd moves 10-20 units between epochs, as much as the
# spread between trials (docs/benchmarks.md).
SCORE_WINDOW = 3
SCORE_PREFIX = "score/"


def score_key(metric: str) -> str:
    """The reported key of a metric's score, e.g. val/swd -> score/val/swd."""
    return f"{SCORE_PREFIX}{metric}"


# --smoke-test (Ray's convention): a tiny dataset and a tiny budget. best_config.yaml leaves these out.
SMOKE_OVERRIDES = [
    "data.synthetic_train=192",
    "data.synthetic_val=32",
    "data.val_images=32",
    "train.batch_size=16",
    "train.steps_per_epoch=6",
    "train.preview_images=4",
]
