"""The Chinese editions: one per English lesson and edition, the English code and
outputs unchanged, every markdown cell translated from the current English text, the
committed editions what a build writes, each edition in its own script, and none
using a variant of a glossary term that has been fixed before.

(nbval executes only the English notebooks; the editions run the same code.)
"""
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EDITIONS = ("zh-hans", "zh-hant")
CJK = re.compile(r"[\u3400-\u9fff]")


def load_build():
    spec = importlib.util.spec_from_file_location("zh_build", ROOT / "translations" / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["zh_build"] = module
    spec.loader.exec_module(module)
    return module


build = load_build()


def cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


@pytest.mark.parametrize("edition", EDITIONS)
def test_every_english_lesson_has_both_editions_and_nothing_else(edition):
    names = sorted(p.name for p in (ROOT / "notebooks" / edition).glob("*.ipynb"))
    assert names == [p.name for p in LESSONS]


@pytest.mark.parametrize("edition", EDITIONS)
@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_code_cells_and_outputs_are_the_english_ones(lesson, edition):
    english = json.loads(lesson.read_text(encoding="utf-8"))
    chinese = json.loads((ROOT / "notebooks" / edition / lesson.name).read_text(encoding="utf-8"))
    assert chinese["metadata"] == english["metadata"]
    assert [c["id"] for c in chinese["cells"]] == [c["id"] for c in english["cells"]]
    for en, zh in zip(english["cells"], chinese["cells"]):
        assert zh["cell_type"] == en["cell_type"]
        if en["cell_type"] == "code":
            assert zh == en, f"code cell {en['id']} differs from the English one"
        else:
            assert CJK.search("".join(zh["source"])), f"markdown cell {en['id']} is not translated"


def test_a_rebuild_changes_nothing():
    # the committed editions are exactly what the build writes from the committed sources
    files = build.editions()
    stale = [str(p.relative_to(ROOT)) for p, text in files.items()
             if p.read_text(encoding="utf-8") != text]
    assert not stale, f"out of date (run python translations/build.py): {stale}"


def test_every_markdown_cell_has_a_translation_of_its_current_text():
    for lesson in LESSONS:
        sections = build.read_sections(build.SOURCES / (lesson.stem + ".md"))
        for cell in cells(lesson):
            if cell["cell_type"] == "markdown":
                recorded = sections[cell["id"]][0]
                assert recorded == build.english_hash("".join(cell["source"])), \
                    f"{lesson.name} cell {cell['id']}: translation made for another English text"


def test_a_changed_english_cell_is_an_error_that_names_it(tmp_path, monkeypatch):
    lesson = LESSONS[0]
    nb = json.loads(lesson.read_text(encoding="utf-8"))
    first = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    first["source"] = "".join(first["source"]) + "\nOne more sentence."
    (tmp_path / lesson.name).write_text(json.dumps(nb), encoding="utf-8")
    monkeypatch.setattr(build, "ENGLISH", tmp_path)
    with pytest.raises(build.TranslationError, match=f"markdown cell {first['id']}.*changed in English"):
        build.translate(tmp_path / lesson.name)
    stub = build.stub(lesson.stem)
    assert f"<!-- cell: {first['id']} | en: {build.english_hash(first['source'])} -->" in stub
    assert "One more sentence." in stub


def test_a_lesson_without_translation_is_an_error_that_says_what_to_write(tmp_path, monkeypatch):
    (tmp_path / "09_new_lesson.ipynb").write_text(LESSONS[0].read_text(encoding="utf-8"))
    monkeypatch.setattr(build, "ENGLISH", tmp_path)
    with pytest.raises(build.TranslationError, match="09_new_lesson.md"):
        build.translate(tmp_path / "09_new_lesson.ipynb")


# Characters that OpenCC converts on their own but that the other script also writes in
# words of its own: Traditional keeps 干 in 若干, 了 in 說明了, 台 in 台灣, 后 in 皇后,
# 里 in 公里, 只 in 只有, 面 in 表面, 群 in 種群 (s2t's 羣 is not Taiwan's usage); Simplified keeps 著 in 著作, 乾 in 乾坤.
SHARED = {"zh-hant": set("干了台后里只面群"), "zh-hans": set("著乾")}


def _script_errors(edition: str) -> list[str]:
    """Characters of the other script: Traditional-only ones (which t2s changes) in the
    Simplified edition, Simplified-only ones (which s2t changes) in the Traditional one."""
    import opencc

    convert = opencc.OpenCC("t2s" if edition == "zh-hans" else "s2t")
    found = []
    for path in sorted((ROOT / "notebooks" / edition).glob("*.ipynb")):
        for cell in cells(path):
            if cell["cell_type"] != "markdown":
                continue
            for char in set(CJK.findall("".join(cell["source"]))) - SHARED[edition]:
                if convert.convert(char) != char:
                    found.append(f"{path.name} cell {cell['id']}: {char} -> {convert.convert(char)}")
    return sorted(found)


def test_the_script_check_finds_a_character_of_the_other_script(tmp_path, monkeypatch):
    # a Simplified 试 left in a Traditional edition, a Traditional 試 in a Simplified one
    for edition, char in (("zh-hant", "试"), ("zh-hans", "試")):
        folder = tmp_path / "notebooks" / edition
        folder.mkdir(parents=True)
        nb = {"cells": [{"cell_type": "markdown", "id": "x", "source": f"若干{char}"}]}
        (folder / "a.ipynb").write_text(json.dumps(nb, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _script_errors("zh-hant") == ["a.ipynb cell x: 试 -> 試"]
    assert _script_errors("zh-hans") == ["a.ipynb cell x: 試 -> 试"]


@pytest.mark.parametrize("edition", EDITIONS)
def test_each_edition_is_written_in_its_own_script(edition):
    assert _script_errors(edition) == []


# Variants of glossary terms (notebooks/zh-hans/README.md) that have crept into an edition
# before: (edition, wrong variant as a regular expression, the term to write instead).
# The Traditional edition is converted from the Simplified one, so a variant fixed at the
# source is listed for both.
WRONG_VARIANTS = [
    ("zh-hans", "墙钟", "挂钟时间 (wall-clock time)"),
    ("zh-hant", "牆鍾|牆鐘", "掛鐘時間 (wall-clock time)"),
    ("zh-hans", "剪除", "剪枝 (pruned)"),
    ("zh-hant", "剪除", "剪枝 (pruned)"),
    ("zh-hant", "複用", "重複使用 (reuse; 複用 is mainland usage)"),
    # a core is CPU核心 in both editions; the Jupyter kernel is 内核 in Simplified and
    # Jupyter kernel in Traditional, where OpenCC turns 内核 into 核心 as well
    ("zh-hans", "(?<!CPU)核心", "CPU核心 (a core) or 内核 (the Jupyter kernel)"),
    ("zh-hant", "(?<!CPU)核心", "CPU核心 (a core) or Jupyter kernel (the Jupyter kernel)"),
]


def _wrong_variants(edition: str) -> list[str]:
    found = []
    for path in sorted((ROOT / "notebooks" / edition).glob("*.ipynb")):
        for cell in cells(path):
            if cell["cell_type"] != "markdown":
                continue
            text = "".join(cell["source"])
            for where, wrong, right in WRONG_VARIANTS:
                if where != edition:
                    continue
                for match in re.finditer(wrong, text):
                    context = text[max(0, match.start() - 20):match.end() + 20].replace("\n", " ")
                    found.append(f"{path.stem} cell {cell['id']}: {match[0]!r} should be "
                                 f"{right}: ...{context}...")
    return found


def test_the_variant_check_names_the_lesson_cell_and_context_of_a_wrong_variant(tmp_path, monkeypatch):
    # 墙钟 in a Simplified lesson, a bare 核心 in a Traditional one; CPU核心 is right
    for edition, text in (("zh-hans", "记录的墙钟时间"), ("zh-hant", "每個CPU核心；本核心中")):
        folder = tmp_path / "notebooks" / edition
        folder.mkdir(parents=True)
        nb = {"cells": [{"cell_type": "markdown", "id": "x", "source": text},
                        {"cell_type": "code", "id": "y", "source": "# 墙钟 核心", "outputs": []}]}
        (folder / "a.ipynb").write_text(json.dumps(nb, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    [simplified] = _wrong_variants("zh-hans")
    assert simplified.startswith("a cell x: '墙钟' should be 挂钟时间") and "记录的墙钟时间" in simplified
    [traditional] = _wrong_variants("zh-hant")
    assert traditional.startswith("a cell x: '核心' should be CPU核心") and "本核心中" in traditional


@pytest.mark.parametrize("edition", EDITIONS)
def test_no_edition_uses_a_known_wrong_variant_of_a_glossary_term(edition):
    found = _wrong_variants(edition)
    assert not found, "\n".join(found)
