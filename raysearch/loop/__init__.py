"""The training loop of one trial, without Ray: build a trial from its config (networks, optimisers, data on
its device), run its epochs through the GAN update's named phases, validate, checkpoint and report.

    trial.py       the state: build, checkpoint, restore (Trial; Worker: rank, device, DDP wrapping)
    networks.py    networks, weight average, optimisers and schedules
    batches.py     the data on the device, each epoch's batches, augmentation
    phases.py      the GAN update: `critic_step` and `generator_step` (phases `critic`, `critic_gp`, `critic_r1`,
                   `generator`: their log keys' prefixes)
    epoch.py       one epoch: batches through the phases, logs, the divergence watch
    validation.py  the generator on the fixed validation subset every epoch (filled by raysearch.fill)
    run.py         the epoch loop of one trial (run_trial) and what a shared process resets between trials

`raysearch.runtime` runs it under Ray Train and Tune; tests and benches call `run_trial` directly. A trained
generator filling holes outside a run (inpaint, analyze, the judge) is `raysearch.fill`'s.
"""

from raysearch.loop.epoch import train_epoch
from raysearch.loop.networks import Networks, unwrap
from raysearch.loop.phases import phase_cycle
from raysearch.loop.run import VAL_HISTORY_KEY, Report, diverged_metrics, recent_scores, run_trial, trial_process_scope
from raysearch.loop.trial import Trial, Worker, local_worker
from raysearch.loop.validation import validate

__all__ = [
    "VAL_HISTORY_KEY", "Networks", "Report", "Trial", "Worker", "diverged_metrics", "local_worker", "phase_cycle",
    "recent_scores", "run_trial", "train_epoch", "trial_process_scope", "unwrap", "validate",
]
