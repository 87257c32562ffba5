"""Prompt sets: the paper's exact strings and factor metadata, and validation of user YAML."""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from rmvalues.errors import InputError
from rmvalues.prompts import Prompt, PromptSet, load_prompt_set, prompt_set_from_dict

ADJECTIVES = ["best", "greatest", "good", "worst", "bad", "terrible"]
CONTEXTS = ["ever", "world", "time"]
STYLES = ["one", "single", "please"]


@pytest.fixture(scope="module")
def paper54() -> PromptSet:
    return load_prompt_set("paper-54")


@pytest.mark.parametrize(
    ("prompt_id", "text"),
    [
        ("greatest_ever_one", "What, in one word, is the greatest thing ever?"),
        ("good_world_please",
         "What is the most good thing in the world? Please answer in one word only."),
        ("best_time_single", "What, in a single word, is the best thing of all time?"),
        ("bad_ever_single", "What, in a single word, is the most bad thing ever?"),
        ("terrible_time_please",
         "What is the most terrible thing of all time? Please answer in one word only."),
        ("worst_world_one", "What, in one word, is the worst thing in the world?"),
        ("good_ever_one", "What, in one word, is the most good thing ever?"),
        ("terrible_world_one", "What, in one word, is the most terrible thing in the world?"),
        ("greatest_time_please",
         "What is the greatest thing of all time? Please answer in one word only."),
    ],
)
def test_paper54_renders_the_papers_strings(paper54: PromptSet, prompt_id: str, text: str) -> None:
    assert paper54[prompt_id].text == text


def test_paper54_factor_metadata(paper54: PromptSet) -> None:
    assert len(paper54) == 54
    assert paper54.factor_names == ["adjective", "context", "style", "framing"]
    assert paper54.levels("adjective") == ADJECTIVES
    assert paper54.levels("context") == CONTEXTS
    assert paper54.levels("style") == STYLES
    for factor, n_levels in [("adjective", 6), ("context", 3), ("style", 3)]:
        counts = Counter(p.factors[factor] for p in paper54)
        assert len(counts) == n_levels and set(counts.values()) == {54 // n_levels}
    assert Counter(p.factors["framing"] for p in paper54) == {"positive": 27, "negative": 27}
    for p in paper54:
        adj, ctx, style = p.id.split("_")
        assert dict(p.factors) == {
            "adjective": adj, "context": ctx, "style": style,
            "framing": "positive" if adj in ADJECTIVES[:3] else "negative",
        }
        rendered_adj = f"most {adj}" if adj in {"good", "bad", "terrible"} else adj
        assert f" the {rendered_adj} thing" in p.text


def test_paper54_order_is_the_released_csv_column_order(paper54: PromptSet, shared_dir) -> None:
    expected = [f"{a}_{c}_{s}" for a in ADJECTIVES for c in CONTEXTS for s in STYLES]
    assert paper54.ids == expected
    for path in sorted((shared_dir / "paper-data" / "dict_big2_nouns").glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh))
        assert header[1:] == paper54.ids, path.name


def test_paper54_frame(paper54: PromptSet) -> None:
    frame = paper54.to_frame()
    assert list(frame.columns) == ["prompt_id", "text", "adjective", "context", "style", "framing"]
    assert frame.shape == (54, 6)
    assert frame.set_index("prompt_id").loc["bad_time_one", "framing"] == "negative"


def test_facct3_is_paper54s_ever_one_prompts(paper54: PromptSet) -> None:
    facct = load_prompt_set("facct-3")
    assert facct.ids == ["greatest_ever_one", "best_ever_one", "worst_ever_one"]
    assert [p.text for p in facct] == [
        f"What, in one word, is the {adj} thing ever?" for adj in ("greatest", "best", "worst")
    ]
    for p in facct:
        assert p == paper54[p.id]


def test_user_yaml_with_arbitrary_factors(tmp_path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "description: two prompts\n"
        "prompts:\n"
        "  - {id: a, text: 'Name the kindest animal.', factors: {valence: pos, topic: animals}}\n"
        "  - id: b\n"
        "    text: Name the cruellest animal.\n"
        "    factors: {topic: animals, valence: neg}\n",
        encoding="utf-8",
    )
    prompts = load_prompt_set(path)
    assert prompts.name == "mine" and prompts.ids == ["a", "b"]
    assert prompts["b"].factors == {"topic": "animals", "valence": "neg"}
    assert load_prompt_set(str(path)) == prompts


def test_user_grid_with_nested_slots() -> None:
    prompts = prompt_set_from_dict({
        "name": "grid",
        "grid": {
            "id": "{tone}-{n}",
            "text": "{frame}",
            "factors": {
                "tone": {"warm": {"text": "kindest", "valence": "pos"}, "cold": {"valence": "neg"}},
                "n": {1: {"text": "one"}, 2: {}},
                "frame": {"q": {"text": "In {n} word, what is the {tone} act?"}},
            },
        },
    })
    assert prompts.ids == ["warm-1", "warm-2", "cold-1", "cold-2"]
    assert prompts["warm-1"].text == "In one word, what is the kindest act?"
    assert prompts["cold-2"].text == "In 2 word, what is the cold act?"
    assert prompts["cold-2"].factors == {"tone": "cold", "n": "2", "frame": "q", "valence": "neg"}
    assert prompt_set_from_dict({"grid": {"id": "{a}", "text": "x {a}", "factors": {"a": {"p": None}}}},
                                default_name="g")["p"].text == "x p"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"prompts": []}, "no prompts"),
        ({"prompts": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]}, "appears twice"),
        ({"prompts": [{"id": "a", "text": "  "}]}, "empty text"),
        ({"prompts": [{"id": "", "text": "x"}]}, "empty or has surrounding"),
        ({"prompts": [{"id": "a", "text": "x", "factors": {"f": "1"}},
                      {"id": "b", "text": "y", "factors": {"g": "1"}}]}, "same factor keys"),
        ({"prompts": [{"id": "a", "text": "x", "factors": {"f": "1"}},
                      {"id": "b", "text": "y"}]}, "same factor keys"),
        ({"prompts": [{"id": "a", "text": "x", "factors": {"f": ["l"]}}]}, "expected a string"),
        ({"prompts": [{"id": "a", "txt": "x"}]}, "needs keys id and text"),
        ({"prompts": {"a": "x"}}, "must be a list"),
        ({}, "exactly one of"),
        ({"prompts": [{"id": "a", "text": "x"}], "grid": {}}, "exactly one of"),
        ({"prompt": []}, "unknown keys"),
        ([1, 2], "must be a mapping"),
        ({"grid": {"id": "{a}", "text": "{b}", "factors": {"a": {"x": {}}}}}, "not a factor"),
        ({"grid": {"id": "{a}", "text": "{a}", "factors": {"a": {}}}}, "no levels"),
        ({"grid": {"id": "{a}", "text": "{a}", "factors": {}}}, "is empty"),
        ({"grid": {"id": "x", "text": "{a}", "factors": {"a": {"p": {}, "q": {}}}}}, "appears twice"),
        ({"grid": {"id": "{a}", "text": "{a}", "factors": {"a": {"p": {"a": "z"}}}}}, "also a factor"),
        ({"grid": {"id": "{a}", "text": "{a}"}}, "exactly id, text and factors"),
        ({"grid": {"id": "{a}", "text": "{a}", "factors": {"a": {"p": {"v": "1"}, "q": {}}}}},
         "set different attributes"),
        ({"grid": {"id": "{a}{b}", "text": "{a}",
                   "factors": {"a": {"p": {"text": "{b}"}}, "b": {"q": {"text": "{a}"}}}}}, "cycle"),
        ({"name": "has space", "prompts": [{"id": "a", "text": "x"}]}, "name 'has space'"),
    ],
)
def test_invalid_sets_are_refused(data: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        prompt_set_from_dict(data, default_name="bad")


def test_bad_files_are_refused(tmp_path) -> None:
    with pytest.raises(InputError, match="not a built-in set"):
        load_prompt_set("paper-55")
    bad = tmp_path / "bad.yaml"
    bad.write_text("prompts: [unclosed\n", encoding="utf-8")
    with pytest.raises(InputError, match="not valid YAML"):
        load_prompt_set(bad)
    bad.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InputError, match="not UTF-8"):
        load_prompt_set(bad)
    bad.write_text("", encoding="utf-8")
    with pytest.raises(InputError, match="must be a mapping"):
        load_prompt_set(bad)


def test_prompt_set_lookup_errors(paper54: PromptSet) -> None:
    with pytest.raises(InputError, match="no prompt 'nope'"):
        paper54["nope"]
    with pytest.raises(InputError, match="no factor 'tone'"):
        paper54.levels("tone")
    with pytest.raises(InputError, match="no prompts"):
        PromptSet(name="x", prompts=())
    assert Prompt("a", "b").factors == {}
    assert len(set(paper54)) == 54 and paper54["bad_ever_one"] in set(paper54)
