"""The held-out general loss: fast path (length-sorted examples packed into padding-free rows with
per-example attention, LM head on supervised positions only) against the plain computation over full logits."""

import pytest
import torch

from tellkit.api import load
from tellkit.data.formats import to_examples
from tellkit.data.readers import read_records
from tellkit.data.tokenize import encode
from tellkit.evaluate.runner import general_loss, supervised_losses
from tellkit.models import load_model_and_tokenizer
from tests.helpers import general_rows, write_jsonl


def _naive(model, encoded, pad_id, batch_size):
    """The old computation: input order, full logits over every position, CE where labels are set."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start: start + batch_size]
            width = max(e["n_tokens"] for e in chunk)
            ids = torch.tensor([e["input_ids"] + [pad_id] * (width - e["n_tokens"]) for e in chunk])
            mask = torch.tensor([[1] * e["n_tokens"] + [0] * (width - e["n_tokens"]) for e in chunk])
            labels = torch.tensor([e["labels"] + [-100] * (width - e["n_tokens"]) for e in chunk])[:, 1:]
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
            loss = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), labels, reduction="none",
                                                     ignore_index=-100)
            out += (loss.sum(1) / (labels != -100).sum(1)).tolist()
    return out


@pytest.fixture
def heldout(config_file):
    # lengths vary from 5 to 40 words, so sorting really reorders the batches
    write_jsonl(config_file.parent / "heldout.jsonl", general_rows(23, seed=7))
    cfg = load(config_file, ["general.heldout_path=heldout.jsonl", "eval.batch_size=4"])
    model, tok = load_model_and_tokenizer(cfg.model.name)
    rows = to_examples(read_records(cfg.general.heldout_path), "auto", {}, id_prefix="heldout")
    encoded = [encode(tok, ex["messages"], cfg.train.max_length) for ex in rows]
    return cfg, model.eval(), tok, encoded


def test_fast_losses_equal_the_full_logits_computation_per_example(heldout, monkeypatch):
    import tellkit.evaluate.runner as runner

    cfg, model, tok, encoded = heldout
    assert len({e["n_tokens"] for e in encoded}) > 5
    fused, real = [], runner.linear_cross_entropy  # the fused head + loss runs: the tiny model's head is a projection

    def spy(hidden, weight, targets):
        fused.append(hidden.shape)
        return real(hidden, weight, targets)

    monkeypatch.setattr(runner, "linear_cross_entropy", spy)
    forwards = []  # the packed forwards (fuse_head's own probe of the head has no segments)
    model.register_forward_pre_hook(lambda m, args, kwargs: forwards.append(kwargs["input_ids"].shape)
                                    if "cu_seq_lens_q" in kwargs else None, with_kwargs=True)
    attention = model.config._attn_implementation
    fast = supervised_losses(model, encoded, tok.pad_token_id, batch_size=4)
    # packed: one padding-free row per forward, 4 x the longest example at most, every token a real one
    longest = max(e["n_tokens"] for e in encoded)
    assert all(rows == 1 and width <= 4 * longest for rows, width in forwards)
    assert sum(width for _, width in forwards) == sum(e["n_tokens"] for e in encoded) and len(forwards) < 23
    assert len(fused) == len(forwards) and sum(n for n, _ in fused) == sum(e["n_supervised"] for e in encoded)
    assert type(model.get_output_embeddings()) is torch.nn.Linear  # the head is given back
    assert model.config._attn_implementation == attention  # and the attention
    assert fast == pytest.approx(_naive(model, encoded, tok.pad_token_id, 4), abs=1e-5)


def test_a_model_that_cannot_pack_gets_padded_batches_with_the_same_losses(heldout, monkeypatch):
    import tellkit.evaluate.runner as runner

    cfg, model, tok, encoded = heldout
    monkeypatch.setattr(runner, "_varlen", lambda m: None)  # attention that cannot be switched
    forwards = []  # the padded forwards (fuse_head's own probe of the head has no mask)
    model.register_forward_pre_hook(lambda m, args, kwargs: forwards.append(kwargs["input_ids"].shape)
                                    if "attention_mask" in kwargs else None, with_kwargs=True)
    padded = supervised_losses(model, encoded, tok.pad_token_id, batch_size=4)
    assert [rows for rows, _ in forwards] == [4, 4, 4, 4, 4, 3]
    assert padded == pytest.approx(_naive(model, encoded, tok.pad_token_id, 4), abs=1e-5)


def test_a_model_whose_head_cannot_be_fused_gives_the_same_losses_from_its_own_logits(heldout, monkeypatch):
    import tellkit.evaluate.runner as runner

    cfg, model, tok, encoded = heldout
    monkeypatch.setattr(runner, "fuse_head", lambda m: None)  # as for a soft-capped or biased head
    fast = supervised_losses(model, encoded, tok.pad_token_id, batch_size=4)
    assert fast == pytest.approx(_naive(model, encoded, tok.pad_token_id, 4), abs=1e-5)


def test_general_loss_keeps_per_example_losses_as_items(heldout):
    cfg, model, tok, encoded = heldout
    result = general_loss(cfg, model, tok)
    naive = _naive(model, encoded, tok.pad_token_id, 4)
    assert result["n"] == len(naive) == 23
    assert result["items"]["loss"] == pytest.approx(naive, abs=1e-5)
    loss = result["scores"]["loss"]
    assert loss["value"] == pytest.approx(sum(naive) / len(naive), abs=1e-5)
    assert loss["ci_low"] < loss["value"] < loss["ci_high"]
    assert result["scores"]["perplexity"]["value"] == pytest.approx(torch.tensor(loss["value"]).exp().item())
