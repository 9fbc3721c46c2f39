from transformers import AutoTokenizer

from tellkit.data.tokenize import IGNORE, encode


def test_loss_mask_covers_exactly_the_assistant_turns(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    msgs = [{"role": "user", "content": "hello there"}, {"role": "assistant", "content": "general kenobi"},
            {"role": "user", "content": "again"}, {"role": "assistant", "content": "once more"}]
    enc = encode(tok, msgs, max_length=512)
    supervised = tok.decode([i for i, l in zip(enc["input_ids"], enc["labels"]) if l != IGNORE])
    assert "general kenobi" in supervised and "once more" in supervised
    assert "hello" not in supervised and "again" not in supervised and "user" not in supervised
    assert enc["n_supervised"] == sum(l != IGNORE for l in enc["labels"]) > 0
    assert enc["n_tokens"] == len(enc["input_ids"])


def test_truncation_counts_what_is_trained(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    msgs = [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "end"}]
    enc = encode(tok, msgs, max_length=32)
    assert enc["n_tokens"] == 32 and enc["n_supervised"] == 0
