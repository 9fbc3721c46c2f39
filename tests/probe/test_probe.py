import json

import numpy as np
import pytest

from tellkit.api import load
from tellkit.errors import ConfigError, TellkitError
from tellkit.probe.probe import general_examples, hidden_states, probe, resolve_layer

METRIC_KEYS = {"centroid_cosine_distance", "silhouette", "probe_accuracy", "probe_accuracy_std", "probe_folds",
               "n_task", "n_general"}


@pytest.mark.parametrize("spec, n, want", [
    (None, 30, 15), (None, 32, 16), (None, 1, 0),
    (0, 30, 0), (7, 30, 7), (30, 30, 30), (-1, 30, 30), (-31, 30, 0), (16.0, 32, 16),
    (0.5, 30, 15), (0.25, 32, 8), (0.01, 30, 0), (0.99, 30, 30),
])
def test_resolve_layer(spec, n, want):
    assert resolve_layer(spec, n) == want


@pytest.mark.parametrize("spec", [31, -32, 1.5, -0.5, True, "mid"])
def test_resolve_layer_rejects(spec):
    with pytest.raises(ConfigError):
        resolve_layer(spec, 30)


@pytest.fixture(scope="module")
def model_tok(tiny_model):
    from tellkit.models import load_model_and_tokenizer

    return load_model_and_tokenizer(tiny_model)


PROMPTS = ["Which colour is named here: red 3?",
           "Write a short sentence about the quick brown fox that jumps over the lazy dog and runs far away.",
           "Hi", "Is the statement true or false? The sky is green and the grass is blue today."]


def _rendered(tok, texts):
    return [tok.apply_chat_template([{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True)
            for t in texts]


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_hidden_states_shape_and_padding_invariance(model_tok, pooling):
    model, tok = model_tok
    prompts = _rendered(tok, PROMPTS)
    batched = hidden_states(model, tok, prompts, layer=1, pooling=pooling, batch_size=4)
    assert batched.shape == (len(prompts), model.config.hidden_size) and batched.dtype == np.float32
    for i, p in enumerate(prompts):  # alone (no padding) == inside a padded batch, in the input order
        alone = hidden_states(model, tok, [p], layer=1, pooling=pooling)
        np.testing.assert_allclose(alone[0], batched[i], atol=1e-5)


def test_layer_zero_last_is_the_last_token_embedding(model_tok):
    import torch

    model, tok = model_tok
    prompt = _rendered(tok, ["Hi there"])[0]
    got = hidden_states(model, tok, [prompt], layer=0, pooling="last")[0]
    last_id = tok(prompt, add_special_tokens=False)["input_ids"][-1]
    with torch.no_grad():
        want = model.get_input_embeddings()(torch.tensor([last_id]))[0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_hidden_states_keeps_padding_side(model_tok):
    model, tok = model_tok
    tok.padding_side = "left"
    hidden_states(model, tok, _rendered(tok, PROMPTS[:2]), layer=1)
    assert tok.padding_side == "left"


def test_general_sample_is_seeded(config_file):
    cfg = load(config_file)
    a, b = general_examples(cfg, 10, seed=0), general_examples(cfg, 10, seed=0)
    assert [e["id"] for e in a] == [e["id"] for e in b] and len(a) == 10
    assert [e["id"] for e in general_examples(cfg, 10, seed=1)] != [e["id"] for e in a]
    assert len(general_examples(cfg, 10_000, seed=0)) == 600  # the whole pool when it is smaller


def test_probe_base(config_file):
    cfg = load(config_file, ["probe.n_queries=8"])
    result = probe(cfg)
    out = config_file.parent / "run" / "probe"
    on_disk = json.loads((out / "probe.json").read_text(encoding="utf-8"))
    assert on_disk == json.loads(json.dumps(result))
    assert result["layer"] == 1 and result["n_layers"] == 2 and result["pooling"] == "last"
    assert result["groups"] == ["task+anchor", "task", "general"]
    assert result["n_queries"] == {"task": 8, "general": 8}
    assert result["anchor"] == "ANCHOR: colour task."
    assert list(result["models"]) == ["base"]
    base = result["models"]["base"]
    assert set(base["metrics"]) == {"task+anchor_vs_general", "task_vs_general", "task+anchor_vs_task"}
    for m in base["metrics"].values():
        assert METRIC_KEYS <= set(m) and (m["n_task"], m["n_general"]) == (8, 8)
    assert (out / base["tsne"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "probe.md").exists() and "data:image/png;base64" in (out / "probe.html").read_text()


def test_probe_without_anchor_probes_task_only(config_file, tmp_path):
    cfg = load(config_file, ["probe.n_queries=6", "anchor.text=null", "mix.method=sft"])
    result = probe(cfg, out_dir=tmp_path / "p")
    assert result["groups"] == ["task", "general"] and result["anchor"] is None
    assert set(result["models"]["base"]["metrics"]) == {"task_vs_general"}


def test_probe_base_and_adapter(config_file):
    from tellkit.cli import main

    main(["train", str(config_file), "train.max_steps=3"])
    cfg = load(config_file, ["probe.n_queries=8", "probe.layer=-1", "probe.pooling=mean"])
    result = probe(cfg, run_dir=cfg.output.dir, out_dir=config_file.parent / "probe-run")
    assert list(result["models"]) == ["base", "adapter"]
    assert result["layer"] == 2 and result["pooling"] == "mean"
    for block in result["models"].values():
        assert set(block["metrics"]) == {"task+anchor_vs_general", "task_vs_general", "task+anchor_vs_task"}
        assert (config_file.parent / "probe-run" / block["tsne"]).is_file()
    assert "adapter" in (config_file.parent / "probe-run" / "probe.md").read_text()


def test_probe_refuses_an_unfinished_run(config_file, tmp_path):
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "run.json").write_text(json.dumps({"status": "running", "tellkit": {"run_format": 1}}))
    with pytest.raises(TellkitError, match="running"):
        probe(load(config_file), run_dir=tmp_path / "fake")


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_early_exit_matches_output_hidden_states(model_tok, layer):
    import torch

    from tellkit.probe.probe import _decoder_layers

    model, tok = model_tok
    assert len(_decoder_layers(model)) == 2  # layer 1 takes the early-exit path, 0 and 2 the plain one
    prompts = _rendered(tok, PROMPTS)
    got = hidden_states(model, tok, prompts, layer=layer, pooling="mean", batch_size=4)
    tok.padding_side = "right"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        h = model(**enc, output_hidden_states=True).hidden_states[layer]
    m = enc["attention_mask"].unsqueeze(-1).float()
    np.testing.assert_allclose(got, ((h * m).sum(1) / m.sum(1)).numpy(), atol=1e-5)


def test_cli_probe_and_anchor_commands(config_file, tmp_path, capsys):
    from tellkit.cli import main

    assert main(["probe", str(config_file), "probe.n_queries=6", "--out", str(tmp_path / "p")]) == 0
    assert "probe acc" in capsys.readouterr().out and (tmp_path / "p" / "probe.json").exists()
    anchors = tmp_path / "anchors.txt"
    assert main(["anchor", "draft", str(config_file), "--n", "2", "--max-new-tokens", "8", "--out", str(anchors)]) == 0
    assert main(["anchor", "rank", str(config_file), "probe.n_queries=6", "--anchors", str(anchors),
                 "--out", str(tmp_path / "r")]) == 0
    assert "1. acc" in capsys.readouterr().out
