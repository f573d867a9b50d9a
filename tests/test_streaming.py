"""Streaming sessions: step and chunk forms of every causal family against the parallel form, state sizes
that do not grow with the stream, a trained run directory end to end (``seqjax.load``, ``seqjax stream``
fed one token at a time by a subprocess), and the exported step/chunk functions run without seqjax's models.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import seqjax
from seqjax.cli import main
from seqjax.errors import UserError
from seqjax.experiment.session import Session, state_bytes
from seqjax.models.registry import build_backbone, get_backbone
from seqjax.models.sequence_model import PerStepHead, SequenceModel

ROOT = Path(__file__).resolve().parents[1]
TIME, D_IN, D_OUT = 70, 3, 3  # 70 tokens: chunks of 64 leave a remainder of 6, chunks of 7 divide it
CHUNKS = (1, 7, 64)
TOL = 1e-5  # float32
# S4's step form rebuilds C = C~ (I - Abar^L)^{-1} from the kernel's C~ (a float32 solve): its recurrence meets the
# FFT form to ~3e-5 (tests/test_s4.py allows 1e-4); its chunk form is that recurrence, equal to its step form to TOL
PARALLEL_TOL = {"s4": 1e-4}

FAMILIES = {  # tiny options of every causal family; two layers where a stack threads its own state type
    "rnn": dict(hidden_size=8, num_layers=2),
    "lstm": dict(hidden_size=8, num_layers=2, learned_init=True),
    "gru": dict(hidden_size=8, num_layers=2),
    "tcn": dict(channels=8, levels=3),
    "s4": dict(d_model=8, n_layers=1, state_size=8, l_max=TIME),
    "s4d": dict(d_model=8, n_layers=2, state_size=8),
    "mamba": dict(d_model=8, n_layers=2, d_state=4),
    "transformer": dict(d_model=8, n_heads=2, n_layers=2, max_len=TIME + 10),
    "lru": dict(d_model=8, n_layers=1, d_state=8),
    "hawk": dict(d_model=8, n_layers=1, d_rnn=8, n_heads=2),
    "mingru": dict(d_model=8, n_layers=1),
    "minlstm": dict(d_model=8, n_layers=1),
    "s5": dict(d_model=8, n_layers=1, state_size=8, blocks=2),
    "mamba2": dict(d_model=8, n_layers=1, d_state=4, head_dim=4, chunk_size=16),
}
GROWING = {"transformer"}  # its KV cache is preallocated at max_len, but the stream it can hold is bounded


def _session(name: str) -> Session:
    opts = get_backbone(name).options(**FAMILIES[name])
    model = SequenceModel(build_backbone(name, opts), PerStepHead(D_OUT))
    return Session.create(model, jnp.zeros((1, TIME, D_IN)), key=jax.random.key(1))


def _parallel(session: Session, xs: jax.Array) -> np.ndarray:
    """The head read out at every step of the parallel form."""
    readout = lambda m, x: m.head.readout(m.backbone(m._features(x)))  # noqa: E731
    return np.asarray(session.model.apply({"params": session.params}, xs, method=readout))


def _streamed(session: Session, xs: jax.Array, chunk: int | None) -> np.ndarray:
    """Outputs of ``step`` token by token (``chunk=None``) or of ``chunk`` over pieces of ``chunk`` tokens."""
    state, ys = session.init_state(xs.shape[0]), []
    for start in range(0, xs.shape[1], chunk or 1):
        if chunk is None:
            state, y = session.step(state, xs[:, start])
            ys.append(np.asarray(y)[:, None])
        else:
            state, y = session.chunk(state, xs[:, start:start + chunk])
            ys.append(np.asarray(y))
    return np.concatenate(ys, axis=1)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_step_and_chunks_reproduce_the_parallel_form(name: str) -> None:
    session = _session(name)
    xs = jax.random.normal(jax.random.key(2), (2, TIME, D_IN))
    want = _parallel(session, xs)
    stepped = _streamed(session, xs, None)
    chunked = {c: _streamed(session, xs, c) for c in CHUNKS}
    errors = {form: float(np.max(np.abs(y - want))) for form, y in [("step", stepped), *chunked.items()]}
    print(name, {k: f"{v:.1e}" for k, v in errors.items()})
    scale = max(1.0, float(np.max(np.abs(want))))
    assert max(errors.values()) <= PARALLEL_TOL.get(name, TOL) * scale, errors
    for y in chunked.values():
        np.testing.assert_allclose(y, stepped, atol=TOL * scale, rtol=0)


@pytest.mark.parametrize("name", sorted(set(FAMILIES) - GROWING))
def test_state_does_not_grow_with_the_stream(name: str) -> None:
    session = _session(name)
    state = session.init_state(1)
    chunk = session._fn("chunk")

    def after(tokens: int):
        return jax.eval_shape(chunk, session.params, state, jax.ShapeDtypeStruct((1, tokens, D_IN), jnp.float32))[0]

    short, long = after(10), after(10_000)
    shapes = lambda tree: jax.tree.map(lambda x: (x.shape, x.dtype), tree)  # noqa: E731
    assert shapes(short) == shapes(long) == shapes(state)
    assert state_bytes(short) == state_bytes(long) == state_bytes(state) > 0


def test_a_transformer_cannot_stream_past_its_cache() -> None:
    session = _session("transformer")
    state, _ = session.chunk(session.init_state(1), jnp.zeros((1, TIME + 10, D_IN)))
    with pytest.raises(ValueError, match="max_len=80"):
        session.step(state, jnp.zeros((1, D_IN)))


def test_non_causal_models_refuse_in_one_line() -> None:
    opts = get_backbone("lstm").options(hidden_size=4, bidirectional=True)
    model = SequenceModel(build_backbone("lstm", opts), PerStepHead(2))
    with pytest.raises(UserError, match="cannot stream") as e:
        Session.create(model, jnp.zeros((1, 4, 2)))
    assert "\n" not in str(e.value)


SMALL = ["train.steps=3", "train.eval_every=3", "train.checkpoint_every=3", "train.log_every=1",
         "train.batch_size=4", "train.eval_examples=8", "train.test_examples=8", "train.eval_batch_size=8",
         "train.progress=false"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained LSTM on the copy task (token inputs, a per-step head), a few steps."""
    out = tmp_path_factory.mktemp("stream") / "copy_lstm"
    assert main(["train", str(ROOT / "configs/experiments/copy_lstm.yaml"), *SMALL, "model.hidden_size=8",
                 "model.embed_dim=4", "task.seq_len=10", f"run_dir={out}"]) == 0
    return out


@pytest.fixture(scope="module")
def tokens(run_dir: Path) -> np.ndarray:
    session = seqjax.load(str(run_dir))
    return np.asarray(jax.random.randint(jax.random.key(3), (1, 40), 0, session.vocab))


def test_a_trained_run_streams(run_dir: Path, tokens: np.ndarray) -> None:
    session = seqjax.load(str(run_dir))
    assert session.step_number == 3 and session.kind == "classify_steps"
    want = np.asarray(session.model.apply({"params": session.params}, jnp.asarray(tokens)))
    for chunk in (None, *CHUNKS):
        np.testing.assert_allclose(_streamed(session, jnp.asarray(tokens), chunk), want, atol=TOL, rtol=0)
    with pytest.raises(UserError, match="token ids"):
        session.step(session.init_state(1), jnp.zeros((1, 2)))


def _stream_command(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "seqjax.cli", "stream", str(run_dir), *extra]


def test_seqjax_stream_answers_each_token_before_the_next(run_dir: Path, tokens: np.ndarray) -> None:
    session = seqjax.load(str(run_dir))
    want = np.asarray(session.model.apply({"params": session.params}, jnp.asarray(tokens)))[0]
    proc = subprocess.Popen(_stream_command(run_dir), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, bufsize=1)
    try:
        for t, token in enumerate(tokens[0, :12]):
            proc.stdin.write(f"{int(token)}\n")
            proc.stdin.flush()
            line = json.loads(proc.stdout.readline())  # blocks until this token's prediction is written
            assert line["t"] == t
            np.testing.assert_allclose(line["output"], want[t], atol=1e-5)
            assert line["argmax"] == int(np.argmax(want[t]))
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
        report = proc.stderr.read()
    finally:
        proc.kill()
    assert "median" in report and "p99" in report and f"{state_bytes(session.init_state(1))} bytes" in report


def test_seqjax_stream_in_chunks_from_a_file(run_dir: Path, tokens: np.ndarray, tmp_path: Path) -> None:
    session = seqjax.load(str(run_dir))
    want = np.asarray(session.model.apply({"params": session.params}, jnp.asarray(tokens)))[0]
    (tmp_path / "in.jsonl").write_text("".join(f"{int(t)}\n" for t in tokens[0]))
    done = subprocess.run(_stream_command(run_dir, "--input", str(tmp_path / "in.jsonl"), "--chunk", "16"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["t"] for line in lines] == list(range(tokens.shape[1]))
    np.testing.assert_allclose([line["output"] for line in lines], want, atol=1e-5)


def test_seqjax_stream_refuses_bad_input_in_one_line(run_dir: Path) -> None:
    done = subprocess.run(_stream_command(run_dir), input="1\nbanana\n", capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "line 2" in done.stderr


def test_exported_functions_run_without_seqjax_models(run_dir: Path, tokens: np.ndarray, tmp_path: Path) -> None:
    out = tmp_path / "export"
    assert main(["export", str(run_dir), str(out), "--chunk", "8"]) == 0
    session = seqjax.load(str(run_dir))
    state, by_step = session.init_state(1), []
    for t in range(16):
        state, y = session.step(state, jnp.asarray(tokens[:, t]))
        by_step.append(np.asarray(y))
    _, by_chunk = session.chunk(session.init_state(1), jnp.asarray(tokens[:, :16]))
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from seqjax.export_loader import load
        streamer = load({str(out)!r})
        tokens = np.asarray({tokens[:, :16].tolist()}, np.int32)
        state, by_step = streamer.init_state(), []
        for t in range(16):
            state, y = streamer.step(state, tokens[:, t])
            by_step.append(np.asarray(y).tolist())
        state, first = streamer.chunk(streamer.init_state(), tokens[:, :8])
        state, second = streamer.chunk(state, tokens[:, 8:])
        by_chunk = np.concatenate([first, second], axis=1).tolist()
        assert not any(m.startswith("seqjax.models") for m in sys.modules), "loaded seqjax.models"
        print(json.dumps({{"step": by_step, "chunk": by_chunk}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    np.testing.assert_allclose(np.asarray(got["step"]), np.stack(by_step), atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.asarray(got["chunk"]), np.asarray(by_chunk), atol=1e-6, rtol=0)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["chunk_size"] == 8 and manifest["input"]["vocab"] == session.vocab
