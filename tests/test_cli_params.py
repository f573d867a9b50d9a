"""``seqjax params``: measured parameter counts, gates and cell state against the closed forms (written here
independently of ``seqjax/cli/params.py``), for several widths and input sizes."""

import json

import jax
import pytest

import seqjax
from seqjax.cli import main

SIZES = [(1, 1), (3, 5), (16, 2), (64, 64), (128, 7)]


@pytest.mark.parametrize("H, I", SIZES)
def test_count_params_of_each_cell_is_its_closed_form(H, I):  # noqa: E741
    expected = {  # W_h [H, G H], W_x [I, G H], b [G H] with G blocks; reset-after GRU adds b_hn [H]
        "rnn": (seqjax.rnn(H), H * H + I * H + H),
        "gru cho": (seqjax.gru(H, variant="cho"), 3 * (H * H + I * H + H)),
        "gru reset_after": (seqjax.gru(H), 3 * (H * H + I * H + H) + H),
        "lstm": (seqjax.lstm(H), 4 * (H * H + I * H + H)),
    }
    for name, (cell, count) in expected.items():
        assert seqjax.count_params(cell.init(jax.random.key(0), I)) == count, name


@pytest.mark.parametrize("H, I", SIZES[1:4])
def test_cli_prints_closed_form_and_measured_counts_that_agree(H, I, capsys):  # noqa: E741
    assert main(["params", "--hidden-size", str(H), "--input-size", str(I), "--output-size", "3", "--json"]) == 0
    rows = {r["cell"]: r for r in json.loads(capsys.readouterr().out)}
    assert {name: (r["gates"], r["cell_state"]) for name, r in rows.items()} == {
        "rnn": (0, False), "gru (cho)": (2, False), "gru (reset_after, default)": (2, False), "lstm": (3, True)}
    lstm = rows["lstm"]
    assert lstm["closed_form"] == lstm["measured"] == 4 * H * (H + I + 1)
    assert lstm["with_readout"] == 4 * H * (H + I + 1) + 3 * H + 3
    assert rows["gru (reset_after, default)"]["measured"] == 3 * H * (H + I + 1) + H
    assert all(r["match"] for r in rows.values())


def test_markdown_table_and_bad_sizes(capsys):
    assert main(["params", "--hidden-size", "4", "--input-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "| lstm | 3 | yes | 4H(H+I+1) | 112 | 112 | yes | 117 |" in out
    assert main(["params", "--hidden-size", "0"]) == 2
    assert "--hidden-size must be a positive integer" in capsys.readouterr().err
