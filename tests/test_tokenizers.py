"""The bundled real tokenizers against independent references: llama.cpp's golden Llama-3 ids, the
SentencePiece model itself and the official Jinja templates rendered directly."""

from __future__ import annotations

import random
from pathlib import Path

import jinja2
import pytest

from rmvalues.assets import asset_path
from rmvalues.errors import ModelError, TemplateError
from rmvalues.models.tokenizers import (
    bundled_sources,
    bundled_tokenizer,
    decoded_vocabulary,
    load_tokenizer,
    reference_decoded_vocabulary,
    vocabulary_table,
)

PROMPT = "What, in one word, is the greatest thing ever?"
SEPARATOR = "\n__ggml_vocab_test__\n"


def golden_llama3() -> list[tuple[str, list[int]]]:
    """llama.cpp's test vectors: inputs separated by the marker, one line of ids (no BOS) each."""
    inp = asset_path("chat-templates", "ggml-vocab-llama-bpe.gguf.inp").read_bytes().decode()
    out = asset_path("chat-templates", "ggml-vocab-llama-bpe.gguf.out").read_bytes().decode()
    texts = inp.split(SEPARATOR)
    assert texts[-1] == ""  # every input, the last included, is followed by the marker
    ids = [[int(x) for x in line.split()] for line in out.split("\n")[: len(texts) - 1]]
    return list(zip(texts[:-1], ids, strict=True))


def test_llama3_reproduces_all_golden_vectors() -> None:
    tok = bundled_tokenizer("llama3")
    cases = golden_llama3()
    assert len(cases) == 46
    for text, expected in cases:
        assert tok.encode(text, add_special_tokens=False) == expected, repr(text)


def test_llama3_adds_bos_like_the_official_tokenizer() -> None:
    tok = bundled_tokenizer("llama3")
    assert tok("hello world").input_ids == [128000, 15339, 1917]
    assert (tok.bos_token, tok.eos_token) == ("<|begin_of_text|>", "<|eot_id|>")
    chat = tok.apply_chat_template(
        [{"role": "user", "content": PROMPT}], tokenize=True, add_generation_prompt=True
    )["input_ids"]
    assert chat.count(128000) == 1 and chat[0] == 128000  # the template's BOS only, not twice
    assert chat[-4:] == [128006, 78191, 128007, 271]  # <|start_header_id|>assistant<|end_header_id|>\n\n


def test_vocabulary_sizes() -> None:
    assert len(bundled_tokenizer("llama3")) == 128_256
    assert len(bundled_tokenizer("llama3.2")) == 128_256
    assert len(bundled_tokenizer("gemma2")) == 256_000
    assert bundled_tokenizer("qwen").vocab_size == 151_643


def test_llama_variants_differ_only_in_template() -> None:
    a, b = bundled_tokenizer("llama3"), bundled_tokenizer("llama3.2")
    assert a.encode(PROMPT) == b.encode(PROMPT)
    assert a.chat_template != b.chat_template
    assert "Cutting Knowledge Date" in a.chat_template


def render_reference(template_file: str, **context: object) -> str:
    """The official Jinja template rendered directly, as transformers' chat templating would."""

    def raise_exception(message: str) -> None:
        raise jinja2.TemplateError(message)

    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    text = asset_path("chat-templates", template_file).read_text("utf-8")
    return env.from_string(text).render(raise_exception=raise_exception, **context)


def test_gemma2_round_trips_the_prompt_through_its_chat_template() -> None:
    tok = bundled_tokenizer("gemma2")
    messages = [{"role": "user", "content": PROMPT}]
    reference = render_reference(
        "google-gemma-2-2b-it.jinja", messages=messages, bos_token="<bos>",
        add_generation_prompt=True,
    )
    assert reference == f"<bos><start_of_turn>user\n{PROMPT}<end_of_turn>\n<start_of_turn>model\n"
    assert tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == reference
    ids = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)["input_ids"]
    assert ids == tok.encode(reference, add_special_tokens=False)
    # Gemma-2's control ids: <bos> 2, <start_of_turn> 106, <end_of_turn> 107, "\n" 108.
    assert ids[:4] == [2, 106, 1645, 108] and ids[-5:] == [107, 108, 106, 2516, 108]
    assert tok.decode(ids) == reference
    body = tok.encode(PROMPT, add_special_tokens=False)
    assert ids[4 : 4 + len(body)] == body
    assert tok.decode(body) == PROMPT


def test_gemma2_matches_the_sentencepiece_model() -> None:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(asset_path("gemma2-tokenizer", "tokenizer.model")))
    tok = bundled_tokenizer("gemma2")
    assert tok("hello").input_ids[0] == 2  # add_bos_token, like the official config
    for text, _ in golden_llama3():
        assert tok.encode(text, add_special_tokens=False) == sp.encode(text), repr(text)


def test_qwen_uses_the_qwen25_template() -> None:
    tok = bundled_tokenizer("qwen")
    messages = [{"role": "user", "content": PROMPT}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    reference = render_reference(
        "Qwen-Qwen2.5-7B-Instruct.jinja", messages=messages, add_generation_prompt=True
    )
    assert text == reference
    assert text.endswith(f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n")
    assert "<think>" not in text


@pytest.mark.parametrize("name", ["llama3", "gemma2", "qwen"])
def test_decoded_vocabulary_equals_reference_on_a_sample(name: str) -> None:
    tok = bundled_tokenizer(name)
    vocab = decoded_vocabulary(tok)
    assert len(vocab) == len(tok)
    ids = sorted(set(random.Random(0).sample(range(len(vocab)), 1500))
                 | set(range(300)) | set(range(len(vocab) - 300, len(vocab)))
                 | set(tok.added_tokens_decoder))
    assert [vocab[i] for i in ids] == [tok.decode([i]) for i in ids]


def test_decoded_vocabulary_equals_reference_in_full() -> None:
    tok = bundled_tokenizer("qwen")
    assert decoded_vocabulary(tok) == reference_decoded_vocabulary(tok)


def test_vocabulary_table() -> None:
    tok = bundled_tokenizer("llama3")
    table = vocabulary_table(tok)
    assert list(table.columns) == ["token_id", "piece", "decoded", "is_special", "is_added",
                                   "normalized"]
    assert table["token_id"].tolist() == list(range(128_256))
    good = table.loc[tok.convert_tokens_to_ids("Ġgood")]
    assert (good.piece, good.decoded, good.is_special, good.is_added) == ("Ġgood", " good", False, False)
    assert table.loc[128000, "is_special"] and table.loc[128000, "is_added"]
    assert table["is_added"].sum() == 256
    assert good.normalized == "good"
    assert table.loc[tok.convert_tokens_to_ids("ĠGood"), "normalized"] == "good"


def test_bundled_sources_name_files_and_hashes() -> None:
    sources = bundled_sources("gemma2")
    assert sources["gemma2-tokenizer/tokenizer.model"].startswith("61a7b147")
    assert "chat-templates/google-gemma-2-2b-it.jinja" in sources


def test_load_tokenizer_local_dir_with_template_text_and_file(tmp_path) -> None:
    folder = asset_path("qwen-tokenizer")
    tok = load_tokenizer(folder, chat_template="{{ messages[0]['content'] }}!")
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == "hi!"
    path = tmp_path / "t.jinja"
    path.write_text("<{{ messages[0]['content'] }}>", "utf-8")
    tok = load_tokenizer(str(folder), chat_template=path)
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == "<hi>"


def test_load_tokenizer_errors(tmp_path) -> None:
    with pytest.raises(ModelError, match="no such folder"):
        load_tokenizer(tmp_path / "missing")
    with pytest.raises(ModelError, match="no such folder"):
        load_tokenizer("./not/a/model")
    with pytest.raises(ModelError, match="is a file, not a model folder"):
        load_tokenizer(asset_path("qwen-tokenizer", "vocab.json"))
    with pytest.raises(TemplateError, match="neither an existing file nor Jinja"):
        load_tokenizer(asset_path("qwen-tokenizer"), chat_template="missing.jinja")
    with pytest.raises(ModelError, match="could not load the tokenizer"):
        load_tokenizer(tmp_path)  # an empty folder
    (tmp_path / "tokenizer.json").write_text('{"model": 1}', "utf-8")
    with pytest.raises(ModelError, match="could not load the tokenizer"):
        load_tokenizer(tmp_path)  # a malformed tokenizer.json
    with pytest.raises(ModelError, match="hub or its local cache"):
        load_tokenizer("nobody-here/no-such-model", local_files_only=True)
    with pytest.raises(ModelError, match="unknown bundled tokenizer"):
        bundled_tokenizer("llama2")  # type: ignore[arg-type]


def test_trust_remote_code_is_passed_only_when_asked(monkeypatch) -> None:
    import transformers

    seen: list[bool] = []

    def fake(source, **kwargs):
        seen.append(kwargs["trust_remote_code"])
        raise OSError("stop")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake)
    for asked in (False, True):
        with pytest.raises(ModelError, match="could not load the tokenizer of 'owner/model'"):
            load_tokenizer("owner/model", trust_remote_code=asked, local_files_only=True)
    assert seen == [False, True]


def test_load_tokenizer_from_a_gguf_file() -> None:
    folder = asset_path("smollm2-135m-instruct")
    tok = load_tokenizer(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    assert len(tok) == 49_152 and tok.eos_token == "<|im_end|>"
    text = tok.apply_chat_template([{"role": "user", "content": PROMPT}], tokenize=False,
                                   add_generation_prompt=True)
    assert f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n" in text
    assert tok.decode(tok.encode(PROMPT, add_special_tokens=False)) == PROMPT


GGUF_MODELS = [("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf"),
               ("gemma3-270m", "gemma-3-270m-q4_k_m.gguf")]


@pytest.mark.slow
@pytest.mark.parametrize(("asset", "gguf"), GGUF_MODELS)
def test_gguf_tokenizer_from_the_cache_folder_equals_the_gguf_one(asset: str, gguf: str) -> None:
    """Loads read the tokenizer from the de-quantised cache folder, not the GGUF: it must give the
    same vocabulary, ids, special tokens and chat-template rendering as transformers' GGUF reader."""
    from transformers import AutoTokenizer

    from rmvalues.assets import is_fetched
    from rmvalues.models.gguf_cache import dequantised_folder

    if not is_fetched(asset):
        pytest.skip(f"the bundled {asset} asset is not fetched (rmvalues assets fetch)")
    folder = asset_path(asset)
    direct = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf)  # the reference path
    loaded = load_tokenizer(folder, gguf_file=gguf)
    assert Path(loaded.name_or_path) == dequantised_folder(folder, gguf)  # not the GGUF file
    assert len(loaded) == len(direct) and loaded.get_vocab() == direct.get_vocab()
    for attr in ("bos_token", "eos_token", "pad_token", "unk_token", "all_special_ids"):
        assert getattr(loaded, attr) == getattr(direct, attr), attr
    texts = [PROMPT, " leading space,  double  spaces\tand tabs\n\nnew lines", "Ünïcödé – 日本語 🙂",
             "<|im_start|>user\nspecial tokens in text<|im_end|>", "<bos>x<eos> 12345 + 0.5e-3"]
    for text in texts:
        for special in (True, False):
            ids = direct(text, add_special_tokens=special)["input_ids"]
            assert loaded(text, add_special_tokens=special)["input_ids"] == ids, (text, special)
            assert loaded.decode(ids) == direct.decode(ids)
    assert loaded.chat_template == direct.chat_template
    if direct.chat_template is None:  # a pretrained model's GGUF has none: nothing to render
        return
    chat = [{"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": PROMPT}, {"role": "assistant", "content": "Love."},
            {"role": "user", "content": "And the worst?"}]
    for generation in (True, False):
        rendered = direct.apply_chat_template(chat, tokenize=False, add_generation_prompt=generation)
        assert loaded.apply_chat_template(chat, tokenize=False,
                                          add_generation_prompt=generation) == rendered
        assert (loaded.apply_chat_template(chat, add_generation_prompt=generation)
                == direct.apply_chat_template(chat, add_generation_prompt=generation))
