"""Encoder–decoder: teacher forcing equals stepping, context c = h_T, masked loss, scheduled sampling,
the bidirectional-decoder rejection, and the generated tasks against their definitions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.cli import main
from seqjax.errors import UserError
from seqjax.models.seq2seq import BOS, Seq2Seq, Seq2SeqOptions, decoder_of, decoder_step, generate, masked_loss, sequence_log_likelihood
from seqjax.tasks import make_task
from seqjax.tasks.tokens import EOS, PAD
from seqjax.tasks.seq2seq import PLUS, TranslateOptions, bleu, decoded_metrics, lexicon, strip

SRC = jnp.array([[3, 4, 5, 6, 7], [5, 6, 0, 0, 0], [7, 3, 4, 0, 0]])
SRC_LEN = jnp.array([5, 2, 3])
TGT = jnp.array([[7, 6, 5, 4, 3, 2], [6, 5, 2, 0, 0, 0], [4, 3, 7, 2, 0, 0]])
TGT_LEN = jnp.array([6, 3, 4])


def build(attention, cell="lstm", bidirectional=True, **kw):
    o = Seq2SeqOptions(attention=attention, embed_size=6, encoder_hidden_size=8, decoder_hidden_size=10,
                       attention_size=5, encoder_bidirectional=bidirectional, decoder_cell=cell,
                       encoder_cell=cell, **kw)
    model = Seq2Seq(o, 9, 9)
    return model, model.init(jax.random.key(0), SRC, SRC_LEN, TGT)


@pytest.mark.parametrize("attention,cell", [("none", "lstm"), ("bahdanau", "gru"), ("luong", "rnn")])
def test_teacher_forced_log_likelihood_equals_stepping(attention, cell):
    model, v = build(attention, cell)
    logits, weights = model.apply(v, SRC, SRC_LEN, TGT)
    ctx = model.apply(v, SRC, SRC_LEN, method=Seq2Seq.encode)
    dec, p = decoder_of(model.opts), v["params"]["decoder"]
    carry, prev = dec.cell.initial_carry((3,)), jnp.full((3,), BOS)
    stepped = np.zeros(3)
    for t in range(TGT.shape[1]):
        carry, step_logits, step_weights = decoder_step(dec, p, ctx, carry, prev)
        logp = np.asarray(jax.nn.log_softmax(step_logits))
        stepped += np.where(t < np.asarray(TGT_LEN), logp[np.arange(3), np.asarray(TGT[:, t])], 0.0)
        np.testing.assert_allclose(step_weights, weights[:, t], atol=1e-5)
        prev = TGT[:, t]
    np.testing.assert_allclose(sequence_log_likelihood(logits, TGT, TGT_LEN), stepped, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_context_is_final_encoder_state_of_each_unpadded_example(bidirectional):
    model, v = build("none", bidirectional=bidirectional)
    ctx = model.apply(v, SRC, SRC_LEN, method=Seq2Seq.encode)
    for b in range(3):
        L = int(SRC_LEN[b])
        alone = model.apply(v, SRC[b:b + 1, :L], SRC_LEN[b:b + 1], method=Seq2Seq.encode)
        if bidirectional:  # [h_T^fwd; h_1^bwd] = [y_fwd at T; y_bwd at 1]
            H = 8
            np.testing.assert_allclose(alone.c[0], jnp.concatenate([alone.memory[0, L - 1, :H],
                                                                     alone.memory[0, 0, H:]]), atol=1e-6)
        else:
            np.testing.assert_allclose(alone.c[0], alone.memory[0, L - 1], atol=1e-6)
        np.testing.assert_allclose(ctx.c[b], alone.c[0], atol=1e-5)
        np.testing.assert_allclose(ctx.memory[b, :L], alone.memory[0], atol=1e-5)
        assert np.all(np.asarray(ctx.memory[b, L:]) == 0.0)


def test_masked_loss_is_mean_cross_entropy_over_non_pad_targets():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 6, 9))
    mask = np.arange(6)[None] < np.asarray(TGT_LEN)[:, None]
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ref = -(np.take_along_axis(logp, np.asarray(TGT)[..., None], -1)[..., 0] * mask).sum() / mask.sum()
    assert float(masked_loss(jnp.asarray(logits), TGT, TGT_LEN)) == pytest.approx(ref, rel=1e-5)
    junk = jnp.where(jnp.asarray(mask), TGT, 8)  # padded targets do not count
    assert float(masked_loss(jnp.asarray(logits), junk, TGT_LEN)) == pytest.approx(ref, rel=1e-5)


def test_scheduled_sampling_rates():
    model, v = build("bahdanau", scheduled_sampling=0.0)
    forced = model.apply(v, SRC, SRC_LEN, TGT)[0]
    assert np.allclose(model.apply(v, SRC, SRC_LEN, TGT, key=jax.random.key(3))[0], forced)
    always, v = build("bahdanau", scheduled_sampling=1.0)
    key = jax.random.key(3)
    a = always.apply(v, SRC, SRC_LEN, TGT, key=key)[0]
    other = TGT.at[:, :-1].set(3)  # with rate 1 every input after BOS is the model's own sample
    np.testing.assert_allclose(always.apply(v, SRC, SRC_LEN, other, key=key)[0], a, atol=1e-6)
    assert not np.allclose(always.apply(v, SRC, SRC_LEN, other)[0], a)  # teacher forcing does read them


def test_bidirectional_decoder_and_wrong_workload_rejected(capsys):
    with pytest.raises(UserError, match="decoder generates left to right"):
        Seq2SeqOptions(decoder_bidirectional=True)
    code = main(["train", "configs/experiments/seq2seq_reverse.yaml", "model.decoder_bidirectional=true"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "decoder_bidirectional" in err and "encoder_bidirectional=true" in err
    code = main(["train", "configs/experiments/seq2seq_reverse.yaml", "workload=supervised", "model=lstm"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "set 'workload: seq2seq'" in err


def test_reverse_sort_tasks_match_definition():
    for name, fn in (("reverse", lambda x: x[::-1]), ("sort", sorted)):
        task = make_task(name, None)
        b = jax.tree.map(np.asarray, jax.jit(task.sample, static_argnums=1)(jax.random.key(1), 16))
        for i in range(16):
            L = b["src_len"][i]
            x = list(b["src"][i, :L])
            assert all(3 <= s < task.src_vocab for s in x) and np.all(b["src"][i, L:] == PAD)
            assert list(b["tgt"][i, :L]) == list(fn(x)) and b["tgt"][i, L] == EOS and b["tgt_len"][i] == L + 1


def test_addition_task_is_arithmetic():
    task = make_task("addition", None)
    b = jax.tree.map(np.asarray, task.sample(jax.random.key(2), 32))
    chars = lambda row: "".join("+" if t == PLUS else str(t - 3) for t in row)  # noqa: E731
    for src, tgt in zip(strip(b["src"]), strip(b["tgt"])):
        a, c = chars(src).split("+")
        assert int(a) + int(c) == int(chars(tgt)) and chars(tgt) == str(int(a) + int(c))


def test_translate_task_matches_grammar():
    task = make_task("translate", None)
    lex = lexicon(TranslateOptions())
    b = jax.tree.map(np.asarray, task.sample(jax.random.key(3), 16))

    def translate(src):
        out, clauses, cur = [], [], []
        for t in src + [lex.and_]:
            if t == lex.and_:
                clauses.append(cur)
                cur = []
            else:
                cur.append(t)
        for i, c in enumerate(clauses):
            v = next(j for j, t in enumerate(c) if lex.verb <= t < lex.and_)
            subj, obj, verb = c[:v], c[v + 1:], c[v] - lex.verb
            np_ = lambda ws: [lex.t_adj + a - lex.adj for a in ws[1:][::-1]] + [lex.t_noun + ws[0] - lex.noun]  # noqa
            out += ([lex.to] if i else []) + np_(subj) + [lex.wa] + np_(obj) + [lex.wo]
            out += [lex.t_stem + verb, lex.t_aux + verb % 2]
        return out

    assert len(set(map(len, strip(b["src"])))) > 1
    for src, tgt in zip(strip(b["src"]), strip(b["tgt"])):
        assert tgt == translate(src)


def test_decoded_metrics_and_bleu():
    pred = jnp.array([[7, 6, 5, 4, 3, 2, 0], [6, 5, 2, 9, 9, 9, 9], [4, 3, 3, 2, 0, 0, 0]])
    m = decoded_metrics(pred, TGT, TGT_LEN)
    # rows 0 and 1 are right on every target position (decoders write PAD after EOS); row 2 has one error
    assert float(m["exact_match"]) == pytest.approx(2 / 3)
    assert float(m["token_accuracy"]) == pytest.approx(12 / 13)
    assert bleu(np.asarray(TGT), np.asarray(TGT)) == pytest.approx(100.0)
    assert 0.0 < bleu(np.asarray(pred), np.asarray(TGT)) < 100.0


def test_workload_from_config_reports_decoded_metrics():
    """``workload: seq2seq`` from a config: training loss, and beam-decoded exact match / token accuracy / BLEU."""
    from seqjax.experiment.config import load_config
    from seqjax.experiment.workloads import build_workload

    small = ["model.embed_size=8", "model.encoder_hidden_size=8", "model.decoder_hidden_size=8",
             "model.attention_size=8", "model.beam_width=2", "model.length_penalty=0.6", "task.max_clauses=1",
             "task.max_adjectives=1"]
    cfg = load_config("configs/experiments/seq2seq_translate_attention.yaml", small)
    w = build_workload(cfg)
    params = w.init(jax.random.key(0))
    loss, _ = w.loss(params, w.sample_train(0), jax.random.key(1), True)
    batch = w.eval_set("val", 8)
    _, metrics = jax.jit(lambda p, b: w.loss(p, b, jax.random.key(0), False))(params, batch)
    assert np.isfinite(float(loss)) and set(metrics) >= {"loss", "exact_match", "token_accuracy", "bleu"}
    task = make_task("translate", TranslateOptions(max_clauses=1, max_adjectives=1))
    opts = Seq2SeqOptions(**{k: cfg.model[k] for k in Seq2SeqOptions.__dataclass_fields__})
    out = generate(Seq2Seq(opts, task.src_vocab, task.tgt_vocab), {"params": params}, batch["src"], batch["src_len"],
                   max_len=task.max_tgt_len, beam_width=2, alpha=0.6)
    assert float(metrics["bleu"]) == pytest.approx(bleu(np.asarray(out.tokens), np.asarray(batch["tgt"])), abs=1e-3)
    assert float(metrics["exact_match"]) == pytest.approx(float(decoded_metrics(out.tokens, batch["tgt"],
                                                                                batch["tgt_len"])["exact_match"]))
