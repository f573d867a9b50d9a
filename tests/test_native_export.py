"""``seqjax export`` of a session whose model runs a compiled kernel: the export serializes the JAX form (the kernel
is not in the export's runtime), and the exported chunk form gives the kernel's outputs."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.experiment.export import export_session
from seqjax.experiment.session import Session
from seqjax.export_loader import load
from seqjax.models.mamba import MambaOptions
from seqjax.models.registry import build_backbone
from seqjax.models.sequence_model import PerStepHead, SequenceModel
from seqjax.models.transformer import TransformerOptions

pytestmark = pytest.mark.skipif(os.environ.get("SEQJAX_NATIVE") == "0", reason="compiled kernels disabled")


@pytest.mark.parametrize("name, options, target", [
    ("mamba", MambaOptions(d_model=8, n_layers=1, d_state=4), b"seqjax_SelectiveScan"),
    ("transformer", TransformerOptions(d_model=8, n_heads=2, n_layers=1, max_len=16), b"seqjax_Attention"),
])
def test_export_holds_no_kernel_and_matches(tmp_path, name, options, target):
    session = Session.create(SequenceModel(build_backbone(name, options), PerStepHead(3)), jnp.zeros((1, 1, 2)))
    export_session(session, tmp_path, chunk=6)
    assert target not in (tmp_path / "chunk.stablehlo").read_bytes()
    x = jax.random.normal(jax.random.key(0), (1, 6, 2))
    _, want = session.chunk(session.init_state(1), x)  # here the chunk form runs the kernel
    streamer = load(str(tmp_path))
    _, got = streamer.chunk(streamer.init_state(), np.asarray(x))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
