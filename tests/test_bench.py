"""Smoke tests of ``seqjax bench``: finite figures, the timing harness, the flop counts. Speed is never asserted."""

from __future__ import annotations

import json
import math
import time

import jax
import jax.numpy as jnp
import pytest

from seqjax import cli
from seqjax.benchmarks import backbones, gemm, linear_recurrences, suite
from seqjax.benchmarks.roofline import count_flops
from seqjax.cells import make_cell, scan
from seqjax.benchmarks.timing import time_interleaved
from seqjax.benchmarks.programs import Shape


def _bench_json(capsys, *argv: str) -> list[dict]:
    assert cli.main(["bench", *argv, "--quick", "--json", "--repeats", "1"]) == 0
    return json.loads(capsys.readouterr().out)


def test_quick_recurrent_bench_gives_finite_figures_for_every_peer(capsys):
    rows = _bench_json(capsys, "lstm")
    assert {(r["measure"], r["framework"]) for r in rows} >= {
        ("train_step", "seqjax"), ("train_step", "flax"), ("train_step", "torch"),
        ("forward", "seqjax"), ("forward", "flax"), ("forward", "torch"), ("gemm", "seqjax"),
    }
    for r in rows:
        for key in ("seconds", "cpu_seconds", "tokens_per_s", "ratio", "cpu_ratio"):
            assert math.isfinite(r[key]) and r[key] > 0, r
        if r["framework"] != "torch" and r["measure"] != "gemm":
            for key in ("peak_mb", "gflop", "roofline"):
                assert r[key] is not None and math.isfinite(r[key]) and r[key] > 0, r


def test_all_means_every_model():
    assert set(suite.MODELS) == {*suite.RECURRENT, *backbones.BACKBONE_MODELS, *linear_recurrences.FAMILIES}
    assert set(linear_recurrences.PEERS) == set(linear_recurrences.FAMILIES)


# Every model's quick bench but the LSTM's (above) and the linear-recurrence families' (the benchmarks README
# runs `seqjax bench lru hawk ... --no-torch`, --quick in the suite), one test each so the workers share them; and one
# family, to check that it runs beside its peer in both passes.
@pytest.mark.parametrize("model", [m for m in suite.MODELS if m not in (*linear_recurrences.FAMILIES, "lstm")]
                         + ["mingru"])
def test_quick_bench_of_every_model_gives_finite_figures(capsys, model):
    rows = _bench_json(capsys, model, "--no-torch")
    assert rows and {r["model"] for r in rows} == {model}
    if model in linear_recurrences.PEERS:
        peer = linear_recurrences.PEERS[model][0]
        assert {(r["measure"], r["framework"]) for r in rows} == {
            (m, f) for m in ("train_step", "forward") for f in ("seqjax", peer)}
    assert all(math.isfinite(r["seconds"]) and math.isfinite(r["ratio"]) for r in rows)
    assert all(r["gflop"] > 0 and r["roofline"] > 0 for r in rows if r["measure"] != "gemm")


def test_several_models_in_one_command():
    parse = lambda *argv: cli.build_parser().parse_args(["bench", *argv]).model  # noqa: E731
    assert parse() == "all" and parse("lru", "hawk") == ["lru", "hawk"]
    with pytest.raises(SystemExit) as exit_info:
        parse("lru", "lstn")
    assert exit_info.value.code == 2


def test_bench_on_a_missing_gpu_is_one_line_and_exit_2(capsys):
    if jax.devices()[0].platform == "gpu":
        pytest.skip("a GPU is present")
    assert cli.main(["bench", "lstm", "--device", "gpu", "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no GPU" in err and "--device cpu" in err


def test_time_interleaved_rotates_the_order_and_times_each_call():
    calls: list[str] = []

    def sleeper(name: str, seconds: float):
        def run():
            calls.append(name)
            time.sleep(seconds)

        return run

    times = time_interleaved({"a": sleeper("a", 0.002), "b": sleeper("b", 0.02)}, repeats=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then rounds starting at a, b, a
    assert times["a"].wall >= 0.002 and times["b"].wall >= 0.02  # a timer never reads less than the sleep
    assert times["b"].cpu < 0.02  # sleeping uses (almost) no CPU time


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_counted_flops_of_a_cell_are_its_matmuls_and_a_few_percent_more(name):
    """The jaxpr count of a layer's forward pass against the hand count ``2 B T (I + H) G H`` of its matmuls
    (the gates' elementwise work adds a few percent), and its gradient about twice that again."""
    B, T, I, H = 4, 16, 8, 64
    cell = make_cell(name, H)
    params, x = cell.init(jax.random.key(0), I), jnp.ones((B, T, I))
    matmuls = 2 * B * T * (I + H) * gemm.GATES[name] * H
    forward = count_flops(lambda p, x: scan.run(cell, p, x)[1], params, x)
    assert matmuls <= forward <= 1.05 * matmuls
    backward = count_flops(jax.grad(lambda p, x: jnp.mean(scan.run(cell, p, x)[1] ** 2)), params, x)
    assert 2.9 * matmuls <= backward <= 3.3 * matmuls


def test_xla_cost_analysis_counts_a_loop_body_once():
    """Why the roofline counts flops on the jaxpr: XLA reports the same flops for 16 and 32 scanned steps."""
    cell = make_cell("lstm", 16)
    params = cell.init(jax.random.key(0), 4)
    layer = jax.jit(lambda p, x: scan.run(cell, p, x)[1])
    xla = [layer.lower(params, jnp.ones((2, T, 4))).compile().cost_analysis()["flops"] for T in (16, 32)]
    counted = [count_flops(layer, params, jnp.ones((2, T, 4))) for T in (16, 32)]
    assert xla[0] == xla[1] and counted[1] == 2 * counted[0]


def test_recurrent_flops_matches_xla_cost_of_one_step_times_t():
    shape = Shape(batch=3, time=7, input=5, hidden=4)
    for name, gates in (("rnn", 1), ("lstm", 4), ("gru", 3)):
        h = jnp.ones((shape.batch, shape.hidden))
        w = jnp.ones((shape.hidden, gates * shape.hidden))
        per_step = jax.jit(jnp.matmul).lower(h, w).compile().cost_analysis()["flops"]
        assert gemm.recurrent_flops(name, shape) == per_step * shape.time
