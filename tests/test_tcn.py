"""TCN: exact receptive field by jax.jacobian, step form, PyTorch reference (Bai et al.'s block), warnings."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from step_form import run_steps

from seqjax.errors import UserError
from seqjax.models.tcn import TCN, levels_for_context, receptive_field
from seqjax.models.registry import build_backbone
from seqjax.models.tcn import TCNOptions, check_receptive_field


def _init(model, x, seed=0):
    return model.init(jax.random.key(seed), x)


@pytest.mark.parametrize("kernel_size,channels", [(3, (16, 16, 16)), (2, (12, 16, 12, 16))])
def test_jacobian_sees_exactly_the_receptive_field(kernel_size, channels):
    """d y_s / d x_t is zero for s < t and s >= t + RF, nonzero for t <= s <= t + RF - 1.

    (Enough channels that no level's ReLUs are all inactive at a step: the
    nonzero check needs one live path.)
    """
    model = TCN(channels=channels, kernel_size=kernel_size)
    rf = receptive_field(kernel_size, len(channels))
    steps = rf + 8
    x = jax.random.normal(jax.random.key(1), (1, steps, 3))
    params = _init(model, x)
    jac = jax.jit(jax.jacobian(lambda x: model.apply(params, x)[0]))(x)[:, :, 0]  # [T_out, C_out, T_in, C_in]
    reach = np.asarray(jnp.abs(jac).sum(axis=(1, 3)))  # [T_out, T_in]
    for t in (0, 3, 7):
        assert np.all(reach[:t, t] == 0), "an output before t depends on x_t (future leakage)"
        assert np.all(reach[t : t + rf, t] > 0), "an output within the receptive field ignores x_t"
        assert np.all(reach[t + rf :, t] == 0), "an output beyond the receptive field depends on x_t"


def test_levels_for_context_is_the_smallest_depth():
    for k in (2, 3, 5, 8):
        for context in (1, 2, 10, 29, 30, 100, 600, 1000):
            levels = levels_for_context(context, k)
            assert receptive_field(k, levels) >= context
            assert levels == 1 or receptive_field(k, levels - 1) < context


@pytest.mark.parametrize("weight_norm", [False, True])
def test_step_form_equals_parallel_form(weight_norm):
    model = build_backbone("tcn", TCNOptions(channel_sizes=[4, 6, 6], kernel_size=3, weight_norm=weight_norm))
    x = jax.random.normal(jax.random.key(2), (2, 20, 3))
    params = _init(model, x)
    np.testing.assert_allclose(run_steps(model, params, x), model.apply(params, x), rtol=1e-5, atol=1e-5)


class TorchTemporalBlock(torch.nn.Module):
    """Bai et al.'s reference block: Conv1d with (k-1)d padding on both sides, chomp the right end."""

    def __init__(self, c_in, c_out, k, d):
        super().__init__()
        self.pad = (k - 1) * d
        self.conv1 = torch.nn.Conv1d(c_in, c_out, k, padding=self.pad, dilation=d)
        self.conv2 = torch.nn.Conv1d(c_out, c_out, k, padding=self.pad, dilation=d)
        self.downsample = torch.nn.Conv1d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x):  # [B, C, T]
        chomp = lambda h: h[:, :, : -self.pad]  # noqa: E731
        h = torch.relu(chomp(self.conv1(x)))
        h = torch.relu(chomp(self.conv2(h)))
        return torch.relu(h + (x if self.downsample is None else self.downsample(x)))


def _copy(conv, p):
    conv.weight.data = torch.tensor(np.asarray(p["kernel"]).transpose(2, 1, 0).copy())
    conv.bias.data = torch.tensor(np.asarray(p["bias"]))


def test_matches_pytorch_reference_blocks():
    channels, k = (5, 5, 7), 3
    model = TCN(channels=channels, kernel_size=k)
    x = jax.random.normal(jax.random.key(3), (2, 25, 3))
    params = _init(model, x)
    h = torch.tensor(np.asarray(x).transpose(0, 2, 1))
    c_in = 3
    for i, c in enumerate(channels):
        p = params["params"][f"blocks_{i}"]
        block = TorchTemporalBlock(c_in, c, k, 2**i)
        _copy(block.conv1, p["conv1"])
        _copy(block.conv2, p["conv2"])
        if block.downsample is not None:
            _copy(block.downsample, p["project"])
        h, c_in = block(h), c
    want = h.detach().numpy().transpose(0, 2, 1)
    np.testing.assert_allclose(model.apply(params, x), want, rtol=1e-5, atol=1e-5)


def test_weight_norm_kernel_has_norm_g():
    """With weight norm the effective kernel is g V / ||V||: scaling V leaves the output unchanged."""
    model = TCN(channels=(4,), kernel_size=3, weight_norm=True)
    x = jax.random.normal(jax.random.key(4), (1, 10, 4))
    params = _init(model, x)
    scaled = jax.tree_util.tree_map_with_path(
        lambda path, v: 3.0 * v if path[-1].key == "kernel" else v, params
    )
    np.testing.assert_allclose(model.apply(scaled, x), model.apply(params, x), rtol=1e-5, atol=1e-6)


def test_dropout_only_in_training():
    model = TCN(channels=(8, 8), kernel_size=3, dropout=0.5)
    x = jax.random.normal(jax.random.key(5), (2, 12, 8))
    params = _init(model, x)
    a = model.apply(params, x, deterministic=False, rngs={"dropout": jax.random.key(0)})
    assert not np.allclose(a, model.apply(params, x))
    np.testing.assert_array_equal(model.apply(params, x), model.apply(params, x, deterministic=True))


def test_receptive_field_warning_names_the_numbers():
    opts = TCNOptions(levels=3, kernel_size=3)  # RF = 1 + 2*2*7 = 29
    assert opts.receptive_field == 29
    with pytest.warns(UserWarning, match=r"receptive field 29 .* dependency length 50: set levels >= 4"):
        assert check_receptive_field(opts, 50) is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_receptive_field(opts, 29) is None


@pytest.mark.parametrize("bad,message", [(dict(levels=0), "levels=0"), (dict(channel_sizes=[]), "channel_sizes"),
                                         (dict(dropout=1.0), "dropout=1.0")])
def test_bad_options_give_one_line_errors(bad, message):
    with pytest.raises(UserError, match=message):
        TCNOptions(**bad)


@pytest.mark.parametrize("dilation", [1, 3])
def test_depthwise_causal_conv_equals_xla_grouped_convolution(dilation):
    from seqjax.ops.conv import causal_conv

    x = jax.random.normal(jax.random.key(0), (2, 17, 5))
    kernel = jax.random.normal(jax.random.key(1), (4, 1, 5))
    pad = 3 * dilation
    reference = jax.lax.conv_general_dilated(
        x, kernel, (1,), [(pad, 0)], rhs_dilation=(dilation,), dimension_numbers=("NWC", "WIO", "NWC"),
        feature_group_count=5)
    np.testing.assert_allclose(causal_conv(x, kernel, dilation, groups=5), reference, rtol=1e-5, atol=1e-5)
