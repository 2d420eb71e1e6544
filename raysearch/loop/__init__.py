"""The training loop of one trial, without Ray: build a trial from its config (networks, optimisers, data on
its device), run its epochs through the GAN update's named phases, validate, checkpoint and report.

    trial.py       the state: build, checkpoint, restore (Trial, Runtime, local_runtime)
    networks.py    networks, weight average, optimisers and schedules
    batches.py     the data on the device, each epoch's batches, augmentation, validation noise
    phases.py      the GAN update: phases `critic`, `critic_gp`, `generator` (their log keys' prefixes)
    epoch.py       one epoch: batches through the phases, logs, the divergence watch
    validation.py  the generator on the validation subset or any images; a checkpoint's networks
    run.py         the epoch loop of one trial (run_trial) and what a shared process resets between trials

`raysearch.runtime` runs it under Ray Train and Tune; tests and benches call `run_trial` directly.
"""

from raysearch.loop.batches import load_split, open_dataset, validation_noise
from raysearch.loop.epoch import train_epoch
from raysearch.loop.networks import Networks, unwrap
from raysearch.loop.phases import phase_cycle
from raysearch.loop.run import DIVERGED_METRICS, VAL_HISTORY_KEY, Report, recent_scores, run_trial, trial_process_scope
from raysearch.loop.trial import Runtime, Trial, local_runtime
from raysearch.loop.validation import (checkpoint_trial, evaluate, fill_centers, set_realism_alpha, trained_generator,
                                       validate)

__all__ = [
    "DIVERGED_METRICS", "VAL_HISTORY_KEY", "Networks", "Report", "Runtime", "Trial", "checkpoint_trial", "evaluate",
    "fill_centers", "load_split", "local_runtime", "open_dataset", "phase_cycle", "recent_scores", "run_trial", "set_realism_alpha",
    "train_epoch", "trained_generator", "trial_process_scope", "unwrap", "validate", "validation_noise",
]
