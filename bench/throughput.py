"""Images per second of raysearch's training step versus a bare PyTorch loop.

Same networks, same optimisers, same batch size, same device, same process:
the bare loop is what one would write by hand (a float tensor of images in
memory, random batches, forward, loss, backward, step). The ratio shows what
the loop's bookkeeping costs: phases, divergence watch, metric accumulation,
uint8 -> float conversion per batch. Target: >= 0.95.

    python bench/throughput.py                       # l2 and wgan (n_critic 5), CPU
    python bench/throughput.py --device cuda --bf16 --channels-last
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from models.generators import activate_output
from models.geometry import crop_center, mask_context, paste_center
from raysearch import losses
from raysearch.config import load_config
from raysearch.data import to_float_images
from raysearch.train import Runtime, Trial


def raysearch_rate(trial: Trial, batches: int) -> float:
    """Images/s of Trial.train_epoch limited to `batches` batches."""
    trial.cfg = _with_steps(trial.cfg, batches // len(trial._phase_cycle(trial.critic is not None)))
    _sync(trial.device)
    start = time.perf_counter()
    logs, diverged = trial.train_epoch()
    _sync(trial.device)
    assert diverged is None, diverged
    used = trial.cfg.train.steps_per_epoch * len(trial._phase_cycle(trial.critic is not None))
    return used * trial.cfg.train.batch_size / (time.perf_counter() - start)


def bare_rate(trial: Trial, batches: int) -> float:
    """The same networks trained by a hand-written loop over a float tensor."""
    cfg = trial.cfg
    gen, critic, opt_g, opt_d = trial.generator, trial.critic, trial.opt_g, trial.opt_d
    images_all = to_float_images(trial.train_images)  # converted once, up front
    tokens_all = trial.train_tokens
    size, n_critic = cfg.train.batch_size, cfg.train.critic_steps
    autocast = trial.autocast
    _sync(trial.device)
    start = time.perf_counter()
    for step in range(batches):
        index = torch.randint(0, len(images_all), (size,), device=trial.device)
        real, tokens = images_all[index], tokens_all[index]
        if cfg.train.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        context = mask_context(real)
        target = crop_center(real)
        critic_turn = critic is not None and step % (n_critic + 1) < n_critic
        with autocast():
            if critic_turn:
                with torch.no_grad():
                    fake, _ = activate_output(gen(context, tokens, None).float(), cfg.generator.output_activation)
                loss = critic(paste_center(context, fake)).float().mean() - critic(real).float().mean()
                opt_d.zero_grad(set_to_none=True)
                loss.backward()
                opt_d.step()
                losses.clip_weights(critic, cfg.objective.clip)
                continue
            fake, _ = activate_output(gen(context, tokens, None).float(), cfg.generator.output_activation)
            loss = torch.nn.functional.mse_loss(fake, target)
            if critic is not None:
                loss = loss - cfg.objective.adv_weight * critic(paste_center(context, fake)).float().mean()
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
    _sync(trial.device)
    return batches * size / (time.perf_counter() - start)


def _with_steps(cfg, steps: int):
    import dataclasses

    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps_per_epoch=steps))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(space: str, overrides: list[str], device: str, batches: int, repeats: int) -> tuple[float, float]:
    cfg = load_config(space, overrides)
    trial = Trial(cfg, Runtime(device=torch.device(device)))
    raysearch_rate(trial, batches)  # warm-up (allocator, kernels, autotuning)
    bare_rate(trial, batches)
    ours, bare = [], []
    for _ in range(repeats):  # interleaved, so drift affects both sides alike
        ours.append(raysearch_rate(trial, batches))
        bare.append(bare_rate(trial, batches))
    return statistics.median(ours), statistics.median(bare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=24, help="batches per measurement (a multiple of 6)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    common = [
        f"train.batch_size={args.batch_size}", f"train.bf16={str(args.bf16).lower()}",
        f"train.channels_last={str(args.channels_last).lower()}", "data.val_images=16", "train.preview_images=0",
        f"train.device={args.device}", *args.overrides,
    ]
    print(f"device={args.device} batch={args.batch_size} batches={args.batches} repeats={args.repeats} "
          f"bf16={args.bf16} channels_last={args.channels_last} threads={torch.get_num_threads()}")
    print(f"{'objective':<22}{'raysearch img/s':>16}{'bare img/s':>12}{'ratio':>8}")
    for label, space, extra in (("l2", "l2", []), ("wgan (n_critic 5)", "wgan", ["train.critic_steps=5"])):
        ours, bare = measure(space, common + extra, args.device, args.batches, args.repeats)
        print(f"{label:<22}{ours:>16.1f}{bare:>12.1f}{ours / bare:>8.3f}")


if __name__ == "__main__":
    main()
