"""A tiny, randomly initialised chat model built offline in about a second.

It exists for tests and users' smoke tests: same shape of pieces as the real
default model (Llama architecture with tied embeddings and grouped-query
attention, byte-level BPE tokenizer with ``<|endoftext|>``/``<|im_start|>``/
``<|im_end|>`` at ids 0/1/2, a ChatML chat template with the same structure as
SmolLM2's), but a few hundred thousand parameters and nothing downloaded.

Its outputs are noise: use it to check that a pipeline runs, never to judge a
method.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path

from tellkit.errors import ModelError

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]  # ids 0, 1, 2, as in SmolLM2

TINY_SYSTEM_PROMPT = "You are a helpful assistant."

# Same structure as SmolLM2-Instruct's template (a default system turn when the
# first message is not a system message; every turn is
# ``<|im_start|>{role}\n{content}<|im_end|>\n``; the generation prompt is
# ``<|im_start|>assistant\n``), so rendering messages[:k] with
# add_generation_prompt=True is a prefix of rendering messages[:k+1] when
# message k is the assistant's reply.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\n" + TINY_SYSTEM_PROMPT + "<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_MIN_VOCAB = 256 + len(SPECIAL_TOKENS) + 1  # byte alphabet + specials + at least one merge
_CORPUS_SEED = 20240401  # fixed: the tokenizer does not depend on the model seed


def builtin_corpus() -> list[str]:
    """A few hundred varied English sentences and JSON-ish strings (deterministic)."""
    rng = random.Random(_CORPUS_SEED)
    names = ["Alice", "Bob", "Carol", "Dmitri", "Esther", "Farid", "Grace", "Hiro", "Ines", "Jamal"]
    nouns = [
        "the report", "a small model", "the river", "an old map", "the kitchen", "a red bicycle",
        "the museum", "a short story", "the garden", "the train", "a letter", "the market",
        "the answer", "a new recipe", "the weather", "the library", "a question", "the dataset",
    ]
    verbs = [
        "reads", "writes", "finds", "repairs", "paints", "describes", "visits", "checks",
        "translates", "summarises", "opens", "explains", "remembers", "counts", "builds",
    ]
    adverbs = ["quickly", "carefully", "slowly", "again", "today", "yesterday", "every morning", "at night"]
    places = ["in Paris", "in the city", "at home", "near the sea", "in Berlin", "at school", "in Tokyo", "on the farm"]
    adjectives = ["happy", "tired", "curious", "careful", "quiet", "bright", "busy", "kind"]
    questions = [
        "What is the capital of France?", "How many days are in a week?", "Why is the sky blue?",
        "Can you summarise this text?", "What time is it?", "Where is the nearest station?",
        "Who wrote this letter?", "Which answer is correct?", "How do I make tea?",
        "Translate this sentence into French.", "Is the statement true or false?",
    ]
    answers = [
        "The capital of France is Paris.", "There are seven days in a week.",
        "Sunlight is scattered by the air, and blue light scatters most.",
        "Sure, here is a short summary.", "The answer is yes.", "The answer is no.",
        "Boil water, add the tea, and wait three minutes.", "The statement is false.",
        "I am not sure, but I think it is correct.", "Here is the translation.",
    ]
    out: list[str] = []
    for _ in range(160):
        out.append(
            f"{rng.choice(names)} {rng.choice(verbs)} {rng.choice(nouns)} "
            f"{rng.choice(places)} {rng.choice(adverbs)}."
        )
    for _ in range(60):
        out.append(
            f"{rng.choice(names)} was {rng.choice(adjectives)} because {rng.choice(nouns)} "
            f"was {rng.choice(adjectives)}, so {rng.choice(names)} {rng.choice(verbs)} it."
        )
    for _ in range(60):
        q, a = rng.choice(questions), rng.choice(answers)
        out.append(f"user: {q}\nassistant: {a}")
    for _ in range(40):
        n1, n2 = rng.randint(0, 999), rng.randint(0, 999)
        out.append(f"What is {n1} plus {n2}? It is {n1 + n2}. In {rng.randint(1900, 2030)} there were {n2} of them.")
    for _ in range(60):
        record = {
            "name": rng.choice(names),
            "age": rng.randint(18, 90),
            "city": rng.choice(["Paris", "Berlin", "Tokyo", "Lagos", "Lima", "Oslo"]),
            "tags": rng.sample(["a", "b", "news", "sport", "food", "tech", "travel"], k=2),
            "score": round(rng.random(), 3),
            "valid": rng.random() < 0.5,
            "note": None,
        }
        out.append(json.dumps(record))
    for _ in range(20):
        out.append(
            json.dumps(
                {"instruction": rng.choice(questions), "input": "", "output": rng.choice(answers)}
            )
        )
    out.extend(
        [
            "system", "user", "assistant", TINY_SYSTEM_PROMPT,
            "Question: Answer: Context: Label: positive negative neutral true false yes no",
            "Hello, world! (Parentheses), [brackets], {braces}; colons: and \"quotes\" and 'apostrophes'.",
            "\tTabs\tand\nnew lines\n\nand    spaces.",
        ]
    )
    return out


def _train_tokenizer(vocab_size: int, corpus: Iterable[str] | None):
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # The SmolLM2 pre-tokenizer: digits one by one, then GPT-2 byte-level.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = builtin_corpus()
    if corpus is not None:
        texts.extend(str(t) for t in corpus)
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    for i, t in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(t) == i, (t, tok.token_to_id(t))

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=IM_START,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        unk_token=ENDOFTEXT,
        model_max_length=2048,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = TINY_CHAT_TEMPLATE
    return fast


def build_tiny_model(
    path: Path,
    *,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
    corpus: Iterable[str] | None = None,
) -> Path:
    """Build and save a tiny random Llama chat model + tokenizer into ``path``.

    Writes config.json, model.safetensors, generation_config.json and the
    tokenizer files (with the ChatML template); returns ``path``. The same
    arguments give byte-identical weights and tokenizer. ``corpus`` adds text
    to the built-in tokenizer training corpus. Takes about a second.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if vocab_size < _MIN_VOCAB:
        raise ModelError(
            f"tiny model vocab_size={vocab_size} is too small; use at least {_MIN_VOCAB} "
            "(256 bytes + 3 special tokens + merges)"
        )
    if hidden_size <= 0 or num_layers <= 0 or num_heads <= 0 or hidden_size % num_heads:
        raise ModelError(
            f"tiny model hidden_size={hidden_size} must be a positive multiple of num_heads={num_heads}, "
            f"and num_layers={num_layers} must be positive"
        )
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)

    tokenizer = _train_tokenizer(vocab_size, corpus)
    n_vocab = len(tokenizer)
    # Grouped-query attention like SmolLM2 (9 heads, 3 key/value heads).
    kv_heads = num_heads // 2 if num_heads % 2 == 0 else num_heads
    config = LlamaConfig(
        vocab_size=n_vocab,
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        initializer_range=0.02,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids(IM_START),
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
        dtype="float32",
        architectures=["LlamaForCausalLM"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path
