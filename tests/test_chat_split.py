"""Splitting real chat templates into prefix / response / suffix ids."""

from __future__ import annotations

import pytest

from _engine_models import tokenizer
from rmvalues.errors import TemplateError
from rmvalues.models.chat import DEFAULT_DATE_STRING, render_conversation, split_chat

PROMPT = "What is the best word?"


@pytest.mark.parametrize(
    ("name", "prefix_tail", "suffix"),
    [
        ("llama3", ["<|start_header_id|>", "assistant", "<|end_header_id|>", "ĊĊ"], ["<|eot_id|>"]),
        ("llama3.2", ["<|start_header_id|>", "assistant", "<|end_header_id|>", "ĊĊ"],
         ["<|eot_id|>"]),
        ("gemma2", ["<start_of_turn>", "model", "\n"], ["<end_of_turn>", "\n"]),
        ("qwen", ["<|im_start|>", "assistant", "Ċ"], ["<|im_end|>", "Ċ"]),
    ],
)
def test_split_real_templates(name, prefix_tail, suffix):
    tok = tokenizer(name)
    split = split_chat(tok, PROMPT)
    pieces = tok.convert_ids_to_tokens(list(split.prefix_ids))
    assert pieces[-len(prefix_tail):] == prefix_tail
    assert tok.convert_ids_to_tokens(list(split.suffix_ids)) == suffix
    assert split.prefix_ids[0] == (tok.bos_token_id if name != "qwen" else split.prefix_ids[0])
    # a single-token response spliced as ids == the whole conversation tokenised
    for word in ["good", "Hello", "people"]:
        (token_id,) = tok(word, add_special_tokens=False)["input_ids"]
        text = render_conversation(tok, PROMPT, word, template=split.template)
        assert split.token_ids(token_id) == tok(text, add_special_tokens=False)["input_ids"]
    assert len(split.template_hash) == 64


def test_llama_date_is_pinned_configurable_and_recorded():
    tok = tokenizer("llama3.2")  # this template would otherwise read the wall clock
    default = split_chat(tok, PROMPT)
    assert default.uses_date and default.date_string == DEFAULT_DATE_STRING
    assert f"Today Date: {DEFAULT_DATE_STRING}" in tok.decode(list(default.prefix_ids))
    other = split_chat(tok, PROMPT, date_string="01 Jan 2025")
    assert "Today Date: 01 Jan 2025" in tok.decode(list(other.prefix_ids))
    assert other.prefix_ids != default.prefix_ids
    assert not split_chat(tokenizer("gemma2"), PROMPT).uses_date


def test_text_responses_go_through_the_template():
    tok = tokenizer("llama3")
    split = split_chat(tok, PROMPT)
    assert split.response_ids(tok, "common good") == tok("common good",
                                                         add_special_tokens=False)["input_ids"]
    # the Llama-3 template trims content: a leading space is not part of the response
    assert split.response_ids(tok, " honesty ") == split.response_ids(tok, "honesty")
    with pytest.raises(TemplateError, match="empty after the template trims"):
        split.response_ids(tok, "   ")


def test_tokenizer_without_template_asks_for_one(tmp_path):
    import copy

    from rmvalues.assets import asset_path

    tok = copy.deepcopy(tokenizer("llama3"))
    tok.chat_template = None
    with pytest.raises(TemplateError, match="--chat-template"):
        split_chat(tok, PROMPT)
    template = asset_path("chat-templates", "meta-llama-Llama-3.1-8B-Instruct.jinja")
    with_file = split_chat(tok, PROMPT, chat_template=template)
    assert with_file.prefix_ids == split_chat(tokenizer("llama3"), PROMPT).prefix_ids
    with pytest.raises(TemplateError, match="neither an existing file nor Jinja"):
        split_chat(tok, PROMPT, chat_template=str(tmp_path / "missing.jinja"))


def test_template_that_drops_the_response_is_refused():
    tok = tokenizer("llama3")
    template = "{% for m in messages %}{% if m.role == 'user' %}{{ m.content }}{% endif %}{% endfor %}"
    with pytest.raises(TemplateError, match="exactly once"):
        split_chat(tok, PROMPT, chat_template=template)
