import json
import os
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from tellkit.cli import main
from tellkit.data.anchor import apply_anchor

QUERIES = ["Which colour is named here: red 3?", "Which colour is named here: blue 17?", "Tell me a story."]


def _anchored_ids(tok, query: str, template: str | None = None) -> torch.Tensor:
    """The anchored prompt rendered by ``template`` (default: the tokenizer's own)."""
    msgs = apply_anchor([{"role": "user", "content": query}], "ANCHOR: colour task.")
    return torch.tensor([tok.apply_chat_template(msgs, add_generation_prompt=True, return_dict=False,
                                                 chat_template=template)])


def _greedy(model, ids: torch.Tensor) -> list[int]:
    # min_new_tokens: compare a real continuation, not an immediate end-of-sequence
    out = model.generate(ids, max_new_tokens=16, min_new_tokens=16, do_sample=False, top_p=None, top_k=None)
    return out[0, ids.shape[1]:].tolist()


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory) -> Path:
    from tellkit.evaluate.runner import evaluate_run

    evaluate_run(trained_run, limit=2)  # scores for the model card
    out = tmp_path_factory.mktemp("exp") / "merged"
    assert main(["export", str(trained_run), "--out", str(out), "--gguf", "--outtype", "f32"]) == 0
    return out


def test_merged_export_equals_base_plus_adapter(trained_run, exported, tiny_model):
    base = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model),
                                        trained_run / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(exported).eval()
    tok = AutoTokenizer.from_pretrained(exported)
    assert any("lora" not in n for n, _ in merged.named_parameters())
    changed = False
    for q in QUERIES:
        ids = _anchored_ids(tok, q, (exported / "chat_template.no_anchor.jinja").read_text())
        assert _greedy(merged, ids) == _greedy(adapted, ids)
        with torch.no_grad():
            changed |= not torch.allclose(base(ids).logits, merged(ids).logits, atol=1e-4)
    assert changed  # the adapter is really in the weights
    assert (exported / "generation_config.json").is_file() and list(exported.glob("*.safetensors"))
    umask = os.umask(0)
    os.umask(umask)
    assert {p.stat().st_mode & 0o777 for p in exported.rglob("*") if p.is_file()} == {0o666 & ~umask}


def test_default_chat_template_applies_the_anchor(exported, trained_run):
    tok = AutoTokenizer.from_pretrained(exported)
    msgs = [{"role": "user", "content": "Which colour: red?"}]
    original = (exported / "chat_template.no_anchor.jinja").read_text()
    plain = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, chat_template=original)
    anchored = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert "ANCHOR" not in plain
    assert anchored == tok.apply_chat_template(apply_anchor(msgs, "ANCHOR: colour task."), tokenize=False,
                                               add_generation_prompt=True, chat_template=original)
    record = json.loads((exported / "tellkit_anchor.json").read_text())
    assert record["anchor"] == "ANCHOR: colour task." and record["position"] == "prefix"
    card = (exported / "README.md").read_text()
    assert "ANCHOR: colour task." in card and "| method | tell |" in card and "fingerprint" in card
    scores = json.loads((trained_run / "eval" / "scores.json").read_text())["metrics"]["json"]["scores"]
    assert f"| json/strict | {scores['strict']['value']:.4f} |" in card and "(n=2)" in card


def _gguf_round_trip(folder: Path, gguf_name: str, exported: Path) -> None:
    merged = AutoModelForCausalLM.from_pretrained(exported).eval()
    from_gguf = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_name, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(exported)
    gguf_tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_name)
    for q in QUERIES:
        ids = _anchored_ids(tok, q, (exported / "chat_template.no_anchor.jinja").read_text())
        msgs = [{"role": "user", "content": q}]
        assert gguf_tok.encode(q, add_special_tokens=False) == tok.encode(q, add_special_tokens=False)
        # the GGUF carries the anchoring chat template: a llama.cpp server applies the anchor itself
        assert gguf_tok.apply_chat_template(msgs, add_generation_prompt=True, return_dict=False) == ids[0].tolist()
        assert _greedy(from_gguf, ids) == _greedy(merged, ids)


def test_gguf_f32_round_trip(exported):
    _gguf_round_trip(exported / "gguf", "merged-f32.gguf", exported)


def test_gguf_f16_round_trip(exported, tmp_path):
    from tellkit.ship.gguf_export import write_gguf

    write_gguf(exported, tmp_path / "m.gguf", "f16")
    _gguf_round_trip(tmp_path, "m.gguf", exported)


def test_gguf_q8_0_is_quantized_and_close(exported, tmp_path):
    import gguf

    from tellkit.ship.gguf_export import write_gguf

    write_gguf(exported, tmp_path / "m.gguf", "q8_0")
    types = {t.name: t.tensor_type for t in gguf.GGUFReader(str(tmp_path / "m.gguf")).tensors}
    assert types["blk.0.ffn_up.weight"] == gguf.GGMLQuantizationType.Q8_0
    assert types["blk.0.attn_norm.weight"] == gguf.GGMLQuantizationType.F32  # norms stay f32, as in llama.cpp
    merged = AutoModelForCausalLM.from_pretrained(exported).eval()
    q8 = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf", dtype=torch.float32).eval()
    ids = _anchored_ids(AutoTokenizer.from_pretrained(exported), QUERIES[0],
                        (exported / "chat_template.no_anchor.jinja").read_text())
    with torch.no_grad():
        want, got = merged(ids).logits, q8(ids).logits
    assert not torch.equal(want, got)  # really quantized...
    assert torch.allclose(want, got, atol=0.05 * want.abs().max().item())  # ...to 8 bits: close


def test_bad_run_dir_and_existing_out(trained_run, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "nope"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    assert not out.exists()

    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", str(trained_run), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_failed_export_leaves_nothing(trained_run, tmp_path, monkeypatch, capsys):
    from tellkit.errors import TellkitError
    from tellkit.ship import export

    def boom(*a, **k):
        raise TellkitError("GGUF export: unknown pre-tokenizer")

    monkeypatch.setattr(export, "write_gguf", boom)
    assert main(["export", str(trained_run), "--out", str(tmp_path / "new" / "out"), "--gguf"]) == 2
    assert "pre-tokenizer" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # neither the folder, nor a temp folder, nor the parent it made


def test_the_gguf_is_named_after_the_export_folder(exported):
    """Not after the hidden temp folder the export is written in (llama.cpp prints general.name)."""
    import gguf

    field = gguf.GGUFReader(str(exported / "gguf" / "merged-f32.gguf")).fields["general.name"]
    assert bytes(field.parts[field.data[0]]).decode() == "merged"
