"""The networks: shapes against the seed tables, every option forward and backward, conditioning, errors."""

from collections import OrderedDict
from dataclasses import replace
from functools import cache

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from models import CAPTION_ENCODERS, CRITICS, GENERATORS, build_caption_encoder, build_critic, build_generator
from models.fills import fill_hole
from models.generators import activate_output, mix_paths
from models.geometry import crop_center, hole_of, mask_context
from models.options import CaptionOptions, CriticOptions, GeneratorOptions
from raysearch import losses

BATCH = 4
VOCAB = 40
GENERATOR_NAMES = ["autoencoder", "cnn", "unet"]
# Narrow networks keep the option sweep fast; the seed-table tests use the real widths.
SMALL = dict(base_width=4, max_width=16, code_size=12)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # These tensors are tiny: on a 2-vCPU VM, waking a second OpenMP thread
    # has been seen to cost ~0.4 s per op, 10x the whole module's work.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def record_layers(model: nn.Module, names: list[str], *inputs: torch.Tensor) -> OrderedDict:
    """name -> (first input, output) of the named submodules, in the order they ran."""
    modules = dict(model.named_modules())
    records: OrderedDict = OrderedDict()

    def recorder(name: str):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            records[name] = (args[0], output)

        return hook

    handles = [modules[name].register_forward_hook(recorder(name)) for name in names]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return records


def layer_shapes(model: nn.Module, names: list[str], *inputs: torch.Tensor) -> OrderedDict:
    """name -> (input shape, output shape, its conv kernel sizes), batch dim dropped, in the order they ran."""
    modules = dict(model.named_modules())
    shapes = OrderedDict()
    for name, (x, y) in record_layers(model, names, *inputs).items():
        kernels = tuple(m.kernel_size[0] for m in modules[name].modules() if isinstance(m, nn.Conv2d))
        shapes[name] = (tuple(x.shape[1:]), tuple(y.shape[1:]), kernels)
    return shapes


def assert_finite_grads(*modules: nn.Module) -> None:
    for module in modules:
        for name, param in module.named_parameters():
            assert param.grad is not None, f"{name} got no gradient"
            assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"


def assert_learns(modules: list[nn.Module], loss, steps: int = 3) -> None:
    """A few Adam steps on `loss()` give finite gradients and move every weight of `modules` (a residual
    generator's inner layers start getting gradients at the second step, once its zero-initialised output
    layer has moved)."""
    named = [(name, param) for module in modules for name, param in module.named_parameters()]
    before = [param.detach().clone() for _, param in named]
    optimizer = torch.optim.Adam([param for _, param in named], lr=1e-3)
    for module in modules:
        module.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss().backward()
        assert_finite_grads(*modules)
        optimizer.step()
    still = [name for (name, param), old in zip(named, before) if torch.equal(param.detach(), old)]
    assert not still, f"never trained: {still[:5]}"


def tokens(captions: int, length: int = 7, empty: tuple[int, int] | None = (0, 0)) -> torch.Tensor:
    """Right-padded token ids [BATCH, captions, length]; caption `empty` is all padding."""
    ids = torch.randint(1, VOCAB, (BATCH, captions, length))
    lengths = torch.randint(1, length + 1, (BATCH, captions, 1))
    ids = ids * (torch.arange(length) < lengths)
    if empty is not None:
        ids[empty] = 0
    return ids


# --- seed tables, row by row ------------------------------------------------------------

SEED_NETWORKS = {
    # Seed 001, final WGAN generator.
    "unet": lambda: build_generator(
        GeneratorOptions(name="unet", kernel_size=5, base_width=32, max_width=256, norm="batch")
    ),
    # Seed 001, baseline autoencoder; its 512x1x1 code is code_size=512.
    "autoencoder": lambda: build_generator(
        GeneratorOptions(name="autoencoder", kernel_size=3, base_width=64, max_width=512, code_size=512)
    ),
    # Seed 000, best model: 3 x (conv, conv, pool) with batch norm, 32/64/128, code 500.
    "cnn": lambda: build_generator(
        GeneratorOptions(
            name="cnn", kernel_size=3, base_width=32, blocks_per_stage=2, stages=3, norm="batch",
            activation="relu", up_activation="relu", code_size=500,
        )
    ),
    # Seed 001's discriminator, on the whole image.
    "critic": lambda: build_critic(CriticOptions(input="whole", kernel_size=5, base_width=32, max_width=256), 64),
}

# (network, layer, input shape, output shape, conv kernels in that layer)
SEED_TABLES = [
    ("unet", "encoder.conv1", (3, 64, 64), (32, 32, 32), (5,)),
    ("unet", "encoder.conv2", (32, 32, 32), (64, 16, 16), (5,)),
    ("unet", "encoder.conv3", (64, 16, 16), (128, 8, 8), (5,)),
    ("unet", "encoder.conv4", (128, 8, 8), (256, 4, 4), (5,)),
    ("unet", "decoder.deconv1", (256, 4, 4), (128 + 128, 8, 8), (5,)),
    # The seed table prints "(64+64) x 4 x 4": the next row's input shows it is 16x16.
    ("unet", "decoder.deconv2", (128 + 128, 8, 8), (64 + 64, 16, 16), (5,)),
    ("unet", "decoder.deconv3", (64 + 64, 16, 16), (3, 32, 32), (5,)),
    ("autoencoder", "encoder.conv1", (3, 64, 64), (64, 32, 32), (3,)),
    ("autoencoder", "encoder.conv2", (64, 32, 32), (128, 16, 16), (3,)),
    ("autoencoder", "encoder.conv3", (128, 16, 16), (256, 8, 8), (3,)),
    ("autoencoder", "encoder.conv4", (256, 8, 8), (512, 4, 4), (3,)),
    # The table's second "conv4" row: the 4x4 valid conv to the 1x1 code.
    ("autoencoder", "bottleneck", (512, 4, 4), (512, 1, 1), (4,)),
    ("autoencoder", "decoder.deconv1", (512, 1, 1), (256, 4, 4), (3,)),
    ("autoencoder", "decoder.deconv2", (256, 4, 4), (128, 8, 8), (3,)),
    # The table prints 64x4x4 and then a 128x16x16 input: typos for 64x16x16 (no skips here).
    ("autoencoder", "decoder.deconv3", (128, 8, 8), (64, 16, 16), (3,)),
    ("autoencoder", "decoder.deconv4", (64, 16, 16), (3, 32, 32), (3,)),
    ("cnn", "encoder.conv1", (3, 64, 64), (32, 32, 32), (3, 3)),
    ("cnn", "encoder.conv2", (32, 32, 32), (64, 16, 16), (3, 3)),
    ("cnn", "encoder.conv3", (64, 16, 16), (128, 8, 8), (3, 3)),
    ("cnn", "code", (128, 8, 8), (500,), ()),
    ("cnn", "dense", (500,), (128, 8, 8), ()),
    ("cnn", "decoder.deconv1", (128, 8, 8), (64, 16, 16), (3, 3)),
    ("cnn", "decoder.deconv2", (64, 16, 16), (32, 32, 32), (3, 3)),
    ("cnn", "decoder.output", (32, 32, 32), (3, 32, 32), (3,)),
    ("critic", "features.conv1", (3, 64, 64), (32, 32, 32), (5,)),
    ("critic", "features.conv2", (32, 32, 32), (64, 16, 16), (5,)),
    ("critic", "features.conv3", (64, 16, 16), (128, 8, 8), (5,)),
    ("critic", "features.conv4", (128, 8, 8), (256, 4, 4), (5,)),
    ("critic", "pool", (256, 4, 4), (256,), ()),
    ("critic", "output", (256,), (1,), ()),
]


@cache
def seed_shapes(network: str) -> OrderedDict:
    model = SEED_NETWORKS[network]()
    names = [row[1] for row in SEED_TABLES if row[0] == network]
    return layer_shapes(model, names, torch.randn(2, 3, 64, 64))


@pytest.mark.parametrize(
    "network,layer,shape_in,shape_out,kernels", SEED_TABLES, ids=[f"{row[0]}-{row[1]}" for row in SEED_TABLES]
)
def test_seed_table_row(network, layer, shape_in, shape_out, kernels) -> None:
    assert seed_shapes(network)[layer] == (shape_in, shape_out, kernels)


@pytest.mark.parametrize("network", ["unet", "autoencoder", "cnn", "critic"])
def test_seed_table_covers_the_whole_network(network) -> None:
    """The listed rows are all the network's top-level stages, in order of execution."""
    model = SEED_NETWORKS[network]()
    staged = []
    for name, child in model.named_children():
        inner = name in ("encoder", "decoder", "features")
        staged += [f"{name}.{sub}" for sub, _ in child.named_children()] if inner else [name]
    listed = [row[1] for row in SEED_TABLES if row[0] == network]
    assert list(seed_shapes(network)) == listed  # hooks fired in table order
    assert sorted(staged) == sorted(listed)


def test_seed_unet_concatenates_encoder_maps() -> None:
    model = SEED_NETWORKS["unet"]()
    names = ["encoder.conv2", "encoder.conv3", "decoder.deconv1", "decoder.deconv2"]
    out = {name: y for name, (_, y) in record_layers(model, names, torch.randn(2, 3, 64, 64)).items()}
    assert torch.equal(out["decoder.deconv1"][:, 128:], out["encoder.conv3"])
    assert torch.equal(out["decoder.deconv2"][:, 64:], out["encoder.conv2"])


def test_seed_cnn_batch_norms_every_conv() -> None:
    model = SEED_NETWORKS["cnn"]()
    for stage in [*model.encoder.values(), model.decoder.deconv1, model.decoder.deconv2]:
        convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
        norms = [m for m in stage.modules() if isinstance(m, nn.BatchNorm2d)]
        assert len(convs) == len(norms) == 2
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.decoder.output.modules())


# --- generators over the options ----------------------------------------------------------

GENERATOR_CASES = [
    *[({"norm": norm}, None) for norm in ["batch", "instance", "layer", "none"]],
    ({"context_margin": 2}, None),
    ({"context_margin": 2, "blocks_per_stage": 2}, None),
    ({"kernel_size": 3}, None),
    ({"kernel_size": 5, "activation": "relu", "up_activation": "leaky_relu", "leaky_slope": 0.1}, None),
    ({"noise_dim": 5}, None),
    ({"stages": 2}, None),
    ({"stages": 5, "norm": "instance"}, None),
    ({"input_fill": "harmonic", "mask_channel": True, "residual": True}, None),
    ({"input_fill": "mean", "residual": True, "context_margin": 2}, None),
    *[
        ({"caption_injection": injection, "noise_dim": 3}, encoder)
        for injection in ["concat", "bias"]
        for encoder in ["bow", "lstm", "gru"]
    ],
]


def case_id(case) -> str:
    options, encoder = case
    return "-".join([f"{k}={v}" for k, v in options.items()] + ([f"captions={encoder}"] if encoder else []))


@pytest.mark.parametrize("name", GENERATOR_NAMES)
@pytest.mark.parametrize("case", GENERATOR_CASES, ids=case_id)
def test_generator_fills_each_image_from_its_own_context_and_every_weight_learns(name, case) -> None:
    options, encoder_name = case
    opts = GeneratorOptions(name=name, **{**SMALL, **options})
    modules, encoder = [], None
    caption_tokens = tokens(5, empty=(1, 3))
    if encoder_name is not None:
        caption_opts = CaptionOptions(encoder=encoder_name, num_captions=5, code_size=6, embedding_dim=5, hidden_size=7)
        encoder = build_caption_encoder(caption_opts, VOCAB)
        modules.append(encoder)
    generator = build_generator(opts, caption_dim=0 if encoder is None else 6)
    modules.append(generator)
    noise = torch.randn(BATCH, opts.noise_length) if opts.noise_length else None

    def fill(context, ids=caption_tokens):
        return generator(context, encoder(ids) if encoder is not None else None,
                         noise[: len(context)] if noise is not None else None)

    context = torch.randn(BATCH, 3, 64, 64)
    size = 32 + 2 * opts.context_margin
    assert fill(context).shape == (BATCH, 3, size, size) and generator.output_size == size
    assert_learns(modules, lambda: (fill(context) - 0.5).square().mean())
    for module in modules:
        module.eval()
    with torch.no_grad():
        filled = fill(context)
        # Each image is filled from its own context (and captions) only; a change in the known pixels shows.
        assert torch.allclose(fill(context[:1], caption_tokens[:1]), filled[:1], atol=1e-5)
        moved = context.clone()
        moved[..., :8, :] += 1.0  # the top of the frame, outside the hole
        assert not torch.equal(fill(moved)[0], filled[0])
        if encoder is not None:
            assert not torch.equal(fill(context, tokens(5, empty=None)), filled)


@pytest.mark.parametrize("name", GENERATOR_NAMES)
@pytest.mark.parametrize("kind", ["none", "tanh", "sigmoid", "clip"])
def test_generator_output_activation(name, kind) -> None:
    generator = build_generator(GeneratorOptions(name=name, output_activation=kind, **SMALL))
    raw = 10 * generator(torch.randn(BATCH, 3, 64, 64))  # scaled so that `clip` clips
    image, penalty = activate_output(raw, generator.options.output_activation)
    assert image.shape == raw.shape
    loss = image.mean()
    if kind == "clip":
        assert penalty is not None and penalty.item() > 0
        loss = loss + penalty
    else:
        assert penalty is None
    if kind != "none":
        assert image.min() >= -1 and image.max() <= 1
    loss.backward()
    assert_finite_grads(generator)


def test_activate_output_values() -> None:
    raw = torch.tensor([-3.0, 0.0, 0.5, 2.0])
    assert torch.equal(activate_output(raw, "none")[0], raw)
    assert torch.allclose(activate_output(raw, "tanh")[0], torch.tanh(raw))
    assert torch.allclose(activate_output(raw, "sigmoid")[0], 2 * torch.sigmoid(raw) - 1)
    assert activate_output(torch.zeros(3), "sigmoid")[0].abs().max() == 0
    clipped, penalty = activate_output(raw, "clip")
    assert torch.equal(clipped, torch.tensor([-1.0, 0.0, 0.5, 1.0]))
    assert penalty.item() == pytest.approx((2.0**2 + 1.0**2) / 4)
    with pytest.raises(ValueError, match="output_activation: unknown 'relu'.*clip, none, sigmoid, tanh"):
        activate_output(raw, "relu")


@pytest.mark.parametrize("name", GENERATOR_NAMES)
@pytest.mark.parametrize("fill", ["zeros", "mean", "harmonic"])
@pytest.mark.parametrize("mask_channel", [False, True])
def test_generator_sees_the_filled_hole_and_the_mask(name, fill, mask_channel) -> None:
    generator = build_generator(GeneratorOptions(name=name, input_fill=fill, mask_channel=mask_channel, **SMALL))
    images = torch.rand(BATCH, 3, 64, 64) * 2 - 1
    (seen, _), = record_layers(generator, ["encoder.conv1"], mask_context(images)).values()
    assert torch.equal(seen[:, :3], fill_hole(images, fill))
    if mask_channel:
        expected = torch.zeros(64, 64)
        expected[16:48, 16:48] = 1
        assert seen.shape[1] == 4 and torch.equal(seen[:, 3], expected.expand(BATCH, 64, 64))
    else:
        assert seen.shape[1] == 3
    # Whatever the hole held on the way in is replaced by the fill.
    with torch.no_grad():
        generator.eval()
        assert torch.equal(generator(mask_context(images)), generator(images))


@pytest.mark.parametrize("name,aligned", [(name, False) for name in GENERATOR_NAMES] + [("unet", True)])
@pytest.mark.parametrize("kind", ["none", "tanh", "sigmoid", "clip"])
@pytest.mark.parametrize("margin", [0, 2])
def test_residual_generator_starts_at_its_input_fill(name, aligned, kind, margin) -> None:
    opts = GeneratorOptions(name=name, output_activation=kind, input_fill="harmonic", residual=True,
                            context_margin=margin, aligned_output=aligned, **SMALL)
    generator = build_generator(opts)
    images = torch.rand(BATCH, 3, 64, 64) * 1.8 - 0.9  # inside tanh's range, away from its ends
    image, _ = activate_output(generator(mask_context(images)), kind)
    fill = crop_center(fill_hole(images, "harmonic"), margin)
    assert torch.allclose(image, fill, atol=1e-5)
    # ... and learns a correction: the zeroed last convolution still gets a gradient.
    image.square().mean().backward()
    output = [m for m in generator.modules() if isinstance(m, nn.Conv2d)][-1]
    assert output.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("margin", [0, 2])
def test_aligned_unet_crops_its_center_from_a_whole_frame(margin) -> None:
    generator = build_generator(GeneratorOptions(aligned_output=True, context_margin=margin, **SMALL))
    last = f"decoder.deconv{generator.stages}"
    joined = record_layers(generator, [f"decoder.deconv{generator.stages - 1}", last], torch.randn(BATCH, 3, 64, 64))
    (_, skip_join), (_, frame) = joined.values()
    assert skip_join.shape[-2:] == (32, 32) and frame.shape[-2:] == (64, 64)
    with torch.no_grad():
        generator.eval()
        context = torch.randn(BATCH, 3, 64, 64)
        (_, frame), = record_layers(generator, [last], context).values()
        assert torch.equal(generator(context), crop_center(frame, margin))


FULL_RES = dict(aligned_output=True, full_res_width=4, **SMALL)


@pytest.mark.parametrize("margin", [0, 2])
@pytest.mark.parametrize("blocks,kernel", [(1, 3), (2, 3), (1, 5)])
def test_full_res_unet_reads_enough_around_the_center_to_match_the_whole_frame(margin, blocks, kernel) -> None:
    # The 64x64 end runs on the output square plus what its convolutions reach; run on the whole
    # frame instead (a reach to the image's edge), the output must be the same, and one pixel
    # less reach must not be (the zero padding at the crop's edge then leaks into the output).
    generator = build_generator(GeneratorOptions(context_margin=margin, blocks_per_stage=blocks, kernel_size=kernel,
                                                 **FULL_RES)).eval()
    reach = generator.full_res_reach()
    assert reach == (2 * blocks + 1) * (kernel // 2)
    context = torch.randn(BATCH, 3, 64, 64)
    with torch.no_grad():
        cropped = generator(context)
        generator.full_res_reach = lambda: 16 - margin
        whole = generator(context)
        generator.full_res_reach = lambda: reach - 1
        short = generator(context)
    size = 32 + 2 * margin
    assert cropped.shape == whole.shape == short.shape == (BATCH, 3, size, size)
    assert torch.allclose(cropped, whole, atol=1e-6)
    assert not torch.allclose(short, whole, atol=1e-4)


def test_full_res_unet_whose_reach_passes_the_image_edge_runs_on_the_whole_frame() -> None:
    # Kernel 7, two blocks: 5 convolutions reach 15 pixels, 17 with a margin of 2, past the frame's 16.
    generator = build_generator(GeneratorOptions(context_margin=2, blocks_per_stage=2, kernel_size=7,
                                                 **FULL_RES)).eval()
    context = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = generator(context)
        generator.full_res_reach = lambda: 14  # exactly the whole frame
        whole = generator(context)
    assert out.shape == (2, 3, 36, 36) and torch.allclose(out, whole, atol=1e-6)


def test_full_res_unet_keeps_a_64x64_map_and_joins_it_at_the_end() -> None:
    generator = build_generator(GeneratorOptions(input_fill="harmonic", mask_channel=True, **FULL_RES))
    images = torch.rand(BATCH, 3, 64, 64) * 2 - 1
    seen = record_layers(generator, ["encoder.conv0", "encoder.conv1", f"decoder.deconv{generator.stages}"],
                         mask_context(images))
    (top_in, top_out), (_, first_down), (_, joined) = seen.values()
    assert torch.equal(top_in[:, :3], fill_hole(images, "harmonic")) and top_in.shape[1] == 4
    assert top_out.shape[-3:] == (4, 64, 64) and first_down.shape[-2:] == (32, 32)
    # The last up stage's output joined with the full-resolution map, cropped to the reach.
    side = 32 + 2 * generator.full_res_reach()
    assert joined.shape[-3:] == (2 * 4, side, side)


@pytest.mark.parametrize("margin", [0, 2])
def test_full_res_residual_generator_starts_at_its_input_fill(margin) -> None:
    generator = build_generator(GeneratorOptions(input_fill="harmonic", residual=True, context_margin=margin,
                                                 **FULL_RES))
    images = torch.rand(BATCH, 3, 64, 64) * 1.8 - 0.9
    image, _ = activate_output(generator(mask_context(images)), "tanh")
    assert torch.allclose(image, crop_center(fill_hole(images, "harmonic"), margin), atol=1e-5)
    image.square().mean().backward()
    assert generator.decoder.output.blocks[-1].conv.weight.grad.abs().sum() > 0


def test_full_res_width_needs_the_aligned_unet() -> None:
    with pytest.raises(ValueError, match="full_res_width: needs aligned_output"):
        build_generator(GeneratorOptions(full_res_width=4, **SMALL))
    with pytest.raises(ValueError, match="full_res_width: must be 0 \\(none\\) to 256, got -1"):
        GeneratorOptions(full_res_width=-1)


@pytest.mark.parametrize("name", ["autoencoder", "cnn"])
def test_aligned_output_only_on_unet(name) -> None:
    with pytest.raises(ValueError, match="aligned_output: only the unet"):
        build_generator(GeneratorOptions(name=name, aligned_output=True, **SMALL))


def test_without_residual_the_output_is_not_the_fill() -> None:
    generator = build_generator(GeneratorOptions(input_fill="harmonic", **SMALL))
    images = torch.rand(BATCH, 3, 64, 64) * 2 - 1
    image, _ = activate_output(generator(mask_context(images)), "tanh")
    assert not torch.allclose(image, hole_of(fill_hole(images, "harmonic")), atol=1e-2)


@pytest.mark.parametrize("name", GENERATOR_NAMES)
def test_generator_noise(name) -> None:
    generator = build_generator(GeneratorOptions(name=name, noise_dim=6, **SMALL)).eval()
    assert generator.noise_dim == 6
    context = torch.randn(BATCH, 3, 64, 64)
    noise = torch.randn(BATCH, 6)
    with torch.no_grad():
        assert torch.equal(generator(context, noise=noise), generator(context, noise=noise.clone()))
        assert not torch.allclose(generator(context, noise=noise), generator(context, noise=-noise))
        assert not torch.allclose(generator(context), generator(context))  # sampled when not given
    with pytest.raises(ValueError, match="noise: expected shape"):
        generator(context, noise=torch.randn(BATCH, 5))


@pytest.mark.parametrize("name", GENERATOR_NAMES)
def test_a_noise_map_reaches_each_hole_pixel_and_nothing_else(name) -> None:
    opts = GeneratorOptions(name=name, noise_dim=2, noise_map=True, **SMALL)
    generator = build_generator(opts).eval()
    assert opts.noise_length == 2 + 32 * 32 and generator.in_channels == 4
    context, noise = torch.randn(BATCH, 3, 64, 64), torch.randn(BATCH, opts.noise_length)
    inputs = generator.network_input(context, noise)
    # The map is the vector's tail laid over the hole in raster order; the context and the border untouched.
    assert torch.equal(inputs[:, :3], context)
    assert torch.equal(inputs[:, 3, 16:48, 16:48].reshape(BATCH, -1), noise[:, 2:])
    inputs[:, 3, 16:48, 16:48] = 0
    assert not inputs[:, 3].any()
    changed = noise.clone()
    changed[:, -1] += 1.0  # the last hole pixel's noise alone
    with torch.no_grad():
        assert not torch.allclose(generator(context, noise=noise), generator(context, noise=changed))
    with pytest.raises(ValueError, match=rf"noise: expected shape \[{BATCH}, 1026\]"):
        generator(context, noise=torch.randn(BATCH, 2))


@pytest.mark.parametrize("name", GENERATOR_NAMES)
@pytest.mark.parametrize("injection", ["concat", "bias"])
def test_generator_captions_condition_the_output(name, injection) -> None:
    generator = build_generator(GeneratorOptions(name=name, caption_injection=injection, **SMALL), caption_dim=9)
    generator.eval()
    assert generator.caption_dim == 9
    assert (generator.caption_bias is not None) == (injection == "bias")
    context, code = torch.randn(BATCH, 3, 64, 64), torch.randn(BATCH, 9)
    with torch.no_grad():
        assert not torch.allclose(generator(context, code), generator(context, code + 1))
    with pytest.raises(ValueError, match="caption_code: .*got None"):
        generator(context)


@pytest.mark.parametrize("name", GENERATOR_NAMES)
def test_generator_rejects_unexpected_inputs(name) -> None:
    generator = build_generator(GeneratorOptions(name=name, **SMALL))
    with pytest.raises(ValueError, match="noise: .*without one"):
        generator(torch.randn(2, 3, 64, 64), noise=torch.randn(2, 3))
    with pytest.raises(ValueError, match="caption_code: .*without one"):
        generator(torch.randn(2, 3, 64, 64), torch.randn(2, 3))
    with pytest.raises(ValueError, match="context: expected shape"):
        generator(torch.randn(2, 3, 32, 32))


def conv_layers(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("name", GENERATOR_NAMES)
@pytest.mark.parametrize("kernel", [3, 5, 7])
def test_generator_kernel_size_and_blocks_per_stage(name, kernel) -> None:
    generator = build_generator(GeneratorOptions(name=name, kernel_size=kernel, blocks_per_stage=3, **SMALL))
    for stage in generator.encoder.values():
        assert [c.kernel_size for c in conv_layers(stage)] == [(kernel, kernel)] * 3
    for conv in conv_layers(generator.decoder):
        assert conv.kernel_size == (kernel, kernel) and conv.padding == (kernel // 2, kernel // 2)


NORM_TYPES = {"batch": nn.BatchNorm2d, "instance": nn.InstanceNorm2d, "layer": nn.GroupNorm}


@pytest.mark.parametrize("name", GENERATOR_NAMES)
@pytest.mark.parametrize("norm", ["batch", "instance", "layer", "none"])
def test_generator_norm(name, norm) -> None:
    generator = build_generator(GeneratorOptions(name=name, norm=norm, **SMALL))
    for part in [*generator.encoder.values(), generator.decoder]:
        found = {type(m) for m in part.modules() if isinstance(m, tuple(NORM_TYPES.values()))}
        assert found == ({NORM_TYPES[norm]} if norm != "none" else set())
    if norm == "layer":
        assert all(m.num_groups == 1 for m in generator.modules() if isinstance(m, nn.GroupNorm))


@pytest.mark.parametrize("name", GENERATOR_NAMES)
def test_generator_activations_per_path(name) -> None:
    opts = GeneratorOptions(name=name, activation="leaky_relu", leaky_slope=0.3, up_activation="relu", **SMALL)
    generator = build_generator(opts)
    down = [m for m in generator.encoder.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU))]
    up = [m for m in generator.decoder.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU))]
    assert down and all(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.3 for m in down)
    assert up and all(type(m) is nn.ReLU for m in up)


@pytest.mark.parametrize("name", GENERATOR_NAMES)
@pytest.mark.parametrize("stages", [2, 3, 5])
def test_generator_stages_and_widths(name, stages) -> None:
    generator = build_generator(GeneratorOptions(name=name, stages=stages, base_width=4, max_width=8, code_size=12))
    names = [f"encoder.{stage}" for stage, _ in generator.encoder.named_children()]
    shapes = layer_shapes(generator, names, torch.randn(2, 3, 64, 64))
    expected = [(min(4 * 2**i, 8), 64 >> (i + 1), 64 >> (i + 1)) for i in range(stages)]
    assert [out for _, out, _ in shapes.values()] == expected


def test_autoencoder_code_size_and_channelwise_fc() -> None:
    opts = GeneratorOptions(name="autoencoder", noise_dim=3, **{**SMALL, "code_size": 20})
    shapes = layer_shapes(build_generator(opts), ["bottleneck", "decoder.deconv1"], torch.randn(2, 3, 64, 64))
    assert shapes["bottleneck"][1] == (20, 1, 1)
    assert shapes["decoder.deconv1"][0] == (20 + 3, 1, 1)  # noise concatenated to the code

    channelwise = build_generator(replace(opts, channelwise_fc=True))
    shapes = layer_shapes(channelwise, ["bottleneck", "decoder.deconv1"], torch.randn(2, 3, 64, 64))
    assert shapes["bottleneck"][:2] == ((16, 4, 4), (16, 4, 4))
    assert shapes["decoder.deconv1"][:2] == ((16 + 3, 4, 4), (16, 4, 4))  # widths 4, 8, 16, 16


def test_channelwise_fc_does_not_mix_channels() -> None:
    from models.layers import ChannelwiseFC

    layer = ChannelwiseFC(channels=3, size=4)
    x = torch.randn(2, 3, 4, 4)
    y = x.clone()
    y[:, 1] += 1
    changed = (layer(x) - layer(y)).abs().amax(dim=(0, 2, 3))
    assert changed[0] == 0 and changed[2] == 0 and changed[1] > 0


@pytest.mark.parametrize("name", ["cnn", "unet"])
def test_channelwise_fc_only_on_autoencoder(name) -> None:
    with pytest.raises(ValueError, match="channelwise_fc: only the autoencoder"):
        build_generator(GeneratorOptions(name=name, channelwise_fc=True))


@pytest.mark.parametrize(
    "options,message",
    [
        ({"stages": 1}, "stages: .*at least 2"),
        ({"norm": "group"}, "norm: unknown 'group'; choose one of: batch, instance, layer, none"),
        ({"norm": "spectral"}, "norm: unknown 'spectral'"),
        ({"activation": "gelu"}, "activation: unknown 'gelu'; choose one of: leaky_relu, relu"),
        ({"up_activation": "none"}, "up_activation: unknown 'none'"),
        ({"output_activation": "softplus"}, "output_activation: unknown 'softplus'"),
        ({"caption_injection": "film"}, "caption_injection: unknown 'film'"),
    ],
)
@pytest.mark.parametrize("name", GENERATOR_NAMES)
def test_generator_rejects_bad_options(name, options, message) -> None:
    with pytest.raises(ValueError, match=message):
        build_generator(GeneratorOptions(name=name, **options), caption_dim=4)


# --- critics ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 36, 64], ids=["center32", "center36", "whole"])
@pytest.mark.parametrize("pooling", ["strided", "max", "avg"])
@pytest.mark.parametrize("norm", ["batch", "layer", "none", "spectral"])
def test_critic_scores_each_image_and_every_weight_learns(norm, pooling, size) -> None:
    kind = "whole" if size == 64 else "center"
    opts = CriticOptions(input=kind, norm=norm, pooling=pooling, base_width=4, max_width=16)
    critic = build_critic(opts, size)
    images = torch.randn(BATCH, 3, size, size)
    assert critic(images).shape == (BATCH,)
    assert_learns([critic], lambda: critic(images).mean())
    critic.eval()
    with torch.no_grad():
        scores = critic(images)
        assert torch.allclose(critic(images[:1]), scores[:1], atol=1e-5)  # one score per image, from it alone
        assert not torch.equal(critic(images.flip(-1)), scores)  # it looks at the pixels


@pytest.mark.parametrize("norm", ["batch", "layer", "none", "spectral"])
def test_critic_norm(norm) -> None:
    critic = build_critic(CriticOptions(norm=norm, depth=3), 64)
    stages = list(critic.features.children())
    kinds = {"batch": nn.BatchNorm2d, "layer": nn.GroupNorm}
    for i, stage in enumerate(stages):
        norms = [m for m in stage.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))]
        expected = [kinds[norm]] if norm in kinds and i > 0 else []  # none on the first conv
        assert [type(m) for m in norms] == expected
    weighted = [m for m in critic.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weighted) == 4
    assert all(parametrize.is_parametrized(m, "weight") == (norm == "spectral") for m in weighted)


@pytest.mark.parametrize(
    "pooling,pool_type,stride", [("strided", None, 2), ("max", nn.MaxPool2d, 1), ("avg", nn.AvgPool2d, 1)]
)
def test_critic_pooling(pooling, pool_type, stride) -> None:
    critic = build_critic(CriticOptions(pooling=pooling, input="center", depth=4, base_width=4), 36)
    assert [c.stride for c in conv_layers(critic)] == [(stride, stride)] * 4
    pools = [m for m in critic.features.modules() if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]
    assert [type(m) for m in pools] == ([pool_type] * 4 if pool_type else [])
    shapes = layer_shapes(critic, ["features.conv4", "pool"], torch.randn(2, 3, 36, 36))
    assert shapes["pool"][1] == (32,)


def test_critic_head_averages_then_scores() -> None:
    critic = build_critic(CriticOptions(base_width=4, max_width=8), 64)
    records = record_layers(critic, ["features", "pool", "output"], torch.randn(2, 3, 64, 64))
    features, pooled = records["features"][1], records["pool"][1]
    assert torch.allclose(pooled, features.mean(dim=(2, 3)))
    assert records["output"][1].shape == (2, 1)


@pytest.mark.parametrize(
    "options,size,message",
    [
        ({"input": "whole"}, 32, "input: a 'whole' critic cannot take 32x32"),
        ({"input": "center"}, 64, "input: a 'center' critic cannot take 64x64"),
        ({"input": "middle"}, 64, "input: unknown 'middle'; choose one of: center, whole"),
        ({"pooling": "stochastic"}, 64, "pooling: unknown 'stochastic'; choose one of: avg, max, strided"),
        ({"norm": "instance"}, 64, "norm: unknown 'instance'; choose one of: batch, layer, none, spectral"),
        ({"activation": "elu"}, 64, "activation: unknown 'elu'"),
    ],
)
def test_critic_rejects_bad_options(options, size, message) -> None:
    with pytest.raises(ValueError, match=message):
        build_critic(CriticOptions(**options), size)


# --- caption encoders ---------------------------------------------------------------------


def caption_encoder(name: str, captions: int) -> nn.Module:
    opts = CaptionOptions(encoder=name, num_captions=captions, code_size=10, embedding_dim=6, hidden_size=8)
    return build_caption_encoder(opts, VOCAB)


@pytest.mark.parametrize("captions", [1, 5])
@pytest.mark.parametrize("name", ["bow", "lstm", "gru"])
def test_caption_encoder_forward_backward(name, captions) -> None:
    encoder = caption_encoder(name, captions)
    ids = tokens(captions, empty=(2, captions - 1))  # image 2's last caption is all padding
    code = encoder(ids)
    assert code.shape == (BATCH, 10) and encoder.code_size == 10
    assert torch.isfinite(code).all()
    code.sum().backward()
    assert_finite_grads(encoder)


@pytest.mark.parametrize("name", ["bow", "lstm", "gru"])
def test_caption_encoder_averages_non_empty_captions(name) -> None:
    encoder = caption_encoder(name, 5).eval()
    ids = tokens(5, empty=(0, 2))
    with torch.no_grad():
        code = encoder(ids)
        without = encoder(ids[:, [0, 1, 3, 4]])
        singles = torch.stack([encoder.summarize(ids[:, k]) for k in range(5)], dim=1)
    assert torch.allclose(code[0], without[0], atol=1e-6)
    assert not torch.allclose(code[1], without[1], atol=1e-6)  # image 1's caption 2 is real
    assert torch.allclose(encoder.output(singles[1].mean(dim=0)), code[1], atol=1e-6)


@pytest.mark.parametrize("name", ["bow", "lstm", "gru"])
def test_caption_encoder_ignores_trailing_padding(name) -> None:
    encoder = caption_encoder(name, 3).eval()
    ids = tokens(3)
    with torch.no_grad():
        assert torch.allclose(encoder(ids), encoder(nn.functional.pad(ids, (0, 5))), atol=1e-6)


@pytest.mark.parametrize("name", ["bow", "lstm", "gru"])
def test_caption_encoder_all_captions_empty(name) -> None:
    encoder = caption_encoder(name, 1).eval()
    ids = tokens(1)
    ids[:2] = 0
    with torch.no_grad():
        code = encoder(ids)
    assert torch.isfinite(code).all()
    assert torch.equal(code[0], code[1])  # no words: the same code for both images
    assert not torch.equal(code[0], code[2])


def test_bag_of_words_is_a_multi_hot_set() -> None:
    encoder = caption_encoder("bow", 1)
    ids = torch.tensor([[[5, 3, 3, 1, 0, 0]]])
    words = encoder.summarize(ids[:, 0])
    expected = torch.zeros(1, VOCAB)
    expected[0, [1, 3, 5]] = 1
    assert torch.equal(words, expected)
    shuffled = torch.tensor([[[3, 1, 5, 0, 0, 0]]])
    assert torch.equal(encoder(ids), encoder(shuffled))


def test_recurrent_encoder_reads_word_order() -> None:
    encoder = caption_encoder("gru", 1).eval()
    with torch.no_grad():
        assert not torch.allclose(encoder(torch.tensor([[[5, 3, 7]]])), encoder(torch.tensor([[[7, 3, 5]]])))


def test_caption_encoder_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="tokens: expected shape"):
        caption_encoder("lstm", 1)(torch.ones(4, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="encoder: 'none'"):
        build_caption_encoder(CaptionOptions(), VOCAB)
    with pytest.raises(ValueError, match="vocab_size"):
        build_caption_encoder(CaptionOptions(encoder="bow"), 1)


# --- registries ---------------------------------------------------------------------------


def test_registered_names() -> None:
    assert GENERATORS.names() == ["autoencoder", "cnn", "unet"]
    assert CRITICS.names() == ["conv", "patch"]
    assert CAPTION_ENCODERS.names() == ["bow", "gru", "lstm"]


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown generator 'resnet'; choose one of: autoencoder, cnn, unet"):
        build_generator(GeneratorOptions(name="resnet"))
    with pytest.raises(ValueError, match="unknown critic 'resnet'; choose one of: conv, patch"):
        build_critic(CriticOptions(name="resnet"), 64)
    with pytest.raises(ValueError, match="unknown caption encoder 'transformer'; choose one of: bow, gru, lstm"):
        build_caption_encoder(CaptionOptions(encoder="transformer"), VOCAB)


@pytest.mark.parametrize("pooling", ["strided", "max", "avg"])
@pytest.mark.parametrize("norm", ["layer", "none", "spectral"])
def test_critic_supports_a_gradient_penalty(norm, pooling) -> None:
    """WGAN-GP differentiates the critic's input gradient: every layer needs a double backward, and the penalty
    is (||grad D(x_hat)|| - 1)^2 at the interpolates drawn from the generator it is given."""
    critic = build_critic(CriticOptions(norm=norm, pooling=pooling, base_width=4, max_width=8), 64)
    real, fake = torch.randn(BATCH, 3, 64, 64), torch.randn(BATCH, 3, 64, 64)
    critic.eval()  # spectral norm's power iteration would move the weights between the two computations
    penalty = losses.gradient_penalty(critic, real, fake, torch.Generator().manual_seed(0))
    # The same penalty computed here, at the same interpolates.
    alpha = torch.rand(BATCH, 1, 1, 1, generator=torch.Generator().manual_seed(0))
    points = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grads,) = torch.autograd.grad(critic(points).sum(), points)
    assert penalty.item() == pytest.approx(((grads.flatten(1).norm(dim=1) - 1) ** 2).mean().item(), rel=1e-4)
    critic.train()
    penalty = losses.gradient_penalty(critic, real, fake, torch.Generator().manual_seed(0))
    scores = critic(torch.cat([real, fake]))
    (scores.mean() + 10 * penalty).backward()  # a WGAN-GP critic loss (its real term left out)
    assert_finite_grads(critic)
    # The penalty's own gradient reaches the critic's weights (create_graph), not only the score's.
    critic.zero_grad()
    penalty2 = losses.gradient_penalty(critic, real, fake, torch.Generator().manual_seed(0))
    penalty2.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in critic.parameters())


# --- recipes of current inpainting models ---------------------------------------------------


@pytest.mark.parametrize("size,aligned", [(16, False), (16, True), (32, True)])
def test_unet_contextual_attention_joins_copies_to_the_decoder_map(size, aligned) -> None:
    opts = GeneratorOptions(contextual_attention=size, aligned_output=aligned, **SMALL)
    generator = build_generator(opts)
    plain = build_generator(replace(opts, contextual_attention=0))
    assert generator.attention is not None and generator.attention.size == (size, size)
    after = {16: "decoder.deconv3", 32: "decoder.deconv4"}[size]  # the stage after the map of that size
    context = mask_context(torch.randn(BATCH, 3, 64, 64))
    with_attention = layer_shapes(generator, [after], context)[after][0]
    without = layer_shapes(plain, [after], context)[after][0]
    assert with_attention == (2 * without[0], size, size)  # the map and its copies, side by side
    records = record_layers(generator, ["attention", after], context)
    (read, copies), (joined, _) = records["attention"], records[after]
    assert torch.equal(joined, torch.cat([read, copies], dim=1))
    assert not torch.equal(copies, read)
    raw = generator(context)
    assert raw.shape == (BATCH, 3, 32, 32)
    raw.square().mean().backward()
    assert_finite_grads(generator)


def test_contextual_attention_is_refused_where_there_is_no_such_decoder_map() -> None:
    with pytest.raises(ValueError, match="contextual_attention: only the unet generator has one, not 'cnn'"):
        build_generator(GeneratorOptions(name="cnn", contextual_attention=16, **SMALL))
    with pytest.raises(ValueError, match=r"makes 8, 16-px maps, not 32 \(32 needs aligned_output\)"):
        build_generator(GeneratorOptions(contextual_attention=32, **SMALL))
    with pytest.raises(ValueError, match="contextual_attention: must be 0"):
        GeneratorOptions(contextual_attention=8)


REALISM_CASES = [
    ("unet", {}), ("unet", {"aligned_output": True, "full_res_width": 4, "context_margin": 2}),
    ("autoencoder", {}), ("cnn", {"residual": True, "input_fill": "harmonic"}),
]


def realism_generator(name: str, extra: dict) -> nn.Module:
    generator = build_generator(GeneratorOptions(name=name, realism_residual=True, **SMALL, **extra))
    with torch.no_grad():  # a trained residual: its head starts at zero
        for parameter in generator.parameters():
            if parameter.dim() == 4 and parameter.shape[0] == 6:
                parameter[3:] = 0.1 * torch.randn_like(parameter[3:])
    return generator.eval()


@pytest.mark.parametrize("name,extra", REALISM_CASES, ids=[c[0] + str(i) for i, c in enumerate(REALISM_CASES)])
def test_realism_residual_mixes_the_l2_path_and_the_residual_by_alpha(name, extra) -> None:
    generator = realism_generator(name, extra)
    context = mask_context(torch.randn(BATCH, 3, 64, 64))
    with torch.no_grad():
        l2_path, residual = generator(context, return_paths=True)
        assert torch.equal(generator(context, alpha=0.0), l2_path)
        assert torch.allclose(generator(context, alpha=0.3), l2_path + 0.3 * residual)
        assert torch.allclose(generator(context), l2_path + residual)  # alpha 1.0 by default
        assert residual.abs().max() > 1e-3
        generator.alpha = 0.0
        assert torch.equal(generator(context), l2_path)


@pytest.mark.parametrize("name,extra", REALISM_CASES, ids=[c[0] + str(i) for i, c in enumerate(REALISM_CASES)])
def test_an_untrained_realism_residual_is_zero(name, extra) -> None:
    generator = build_generator(GeneratorOptions(name=name, realism_residual=True, **SMALL, **extra)).eval()
    with torch.no_grad():
        _, residual = generator(mask_context(torch.randn(BATCH, 3, 64, 64)), return_paths=True)
    assert torch.equal(residual, torch.zeros_like(residual))


def test_the_full_outputs_losses_reach_the_residual_head_not_the_l2_head() -> None:
    generator = realism_generator("unet", {})
    head = generator.decoder["deconv3"].blocks[-1].conv
    l2_path, residual = generator(mask_context(torch.randn(BATCH, 3, 64, 64)), return_paths=True)
    full, _ = activate_output(mix_paths(l2_path.detach(), residual, 1.0), "tanh")
    full.square().mean().backward()
    assert torch.equal(head.weight.grad[:3], torch.zeros_like(head.weight.grad[:3]))
    assert head.weight.grad[3:].abs().sum() > 0
    assert generator.encoder["conv1"].blocks[0].conv.weight.grad.abs().sum() > 0  # the shared trunk learns from it


def test_alpha_and_paths_need_a_realism_residual() -> None:
    generator = build_generator(GeneratorOptions(**SMALL))
    context = mask_context(torch.randn(2, 3, 64, 64))
    with pytest.raises(ValueError, match="alpha, return_paths: this generator has no realism residual"):
        generator(context, alpha=0.5)
    with pytest.raises(ValueError, match="no realism residual"):
        generator(context, return_paths=True)
