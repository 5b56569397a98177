"""Build the Chinese editions of the lessons from the English notebooks.

    python translations/build.py            # write notebooks/zh-hans/ and notebooks/zh-hant/
    python translations/build.py --check    # change nothing; exit 1 if an edition is out of date
    python translations/build.py --stub 01_async_random_search
                                            # the sections to (re)write after an English edit

Each Chinese notebook is the English one with its markdown cells replaced: code cells,
their outputs and the notebook's metadata stay exactly as in English. The Simplified
prose lives in ``translations/zh-hans/<notebook>.md``, one section per English markdown
cell, headed by that cell's id and a hash of its English text:

    <!-- cell: e76fb21e | en: 3a9f0c2d71b4 -->
    # 异步随机搜索
    ...

When an English cell changes, its hash no longer matches and the build stops with an
error that names the cell: update the Chinese text, then the hash (``--stub`` prints
both). The Traditional edition (Taiwan usage) is converted from the Simplified one with
OpenCC (``s2twp``), then ``translations/zh-hant-overrides.tsv`` fixes what OpenCC gets
wrong (one ``wrong<TAB>right`` pair a line, applied in order).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGLISH = ROOT / "notebooks"
SOURCES = ROOT / "translations" / "zh-hans"
OVERRIDES = ROOT / "translations" / "zh-hant-overrides.tsv"
EDITIONS = {"zh-hans": ENGLISH / "zh-hans", "zh-hant": ENGLISH / "zh-hant"}
HEADER = re.compile(r"^<!-- cell: (?P<id>[\w-]+) \| en: (?P<hash>[0-9a-f]{12}) -->[ \t]*$", re.M)
ENGLISH_NOW = re.compile(r"<!-- English now:.*?\n-->\n?", re.S)


class TranslationError(Exception):
    """A translation that is missing, stale, or does not belong to its notebook."""


def _rel(path: Path) -> str:
    """``path`` as the messages show it: relative to the repository when inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def english_hash(source: str) -> str:
    """The hash a translation records of the English cell it translates."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:12]


def lessons() -> list[Path]:
    return sorted(ENGLISH.glob("*.ipynb"))


def read_sections(path: Path) -> dict[str, tuple[str, str]]:
    """cell id -> (hash of the English text it translates, Chinese text)."""
    text = path.read_text(encoding="utf-8")
    headers = list(HEADER.finditer(text))
    if not headers or text[:headers[0].start()].strip():
        raise TranslationError(f"{_rel(path)}: it must start with a section header "
                               "'<!-- cell: ID | en: HASH -->'")
    sections = {}
    for header, after in zip(headers, headers[1:] + [None]):
        body = text[header.end():after.start() if after else len(text)]
        body = ENGLISH_NOW.sub("", body).strip("\n")  # --stub's reminder, if left in
        if header["id"] in sections:
            raise TranslationError(f"{_rel(path)}: cell {header['id']} is translated twice")
        sections[header["id"]] = (header["hash"], body)
    return sections


def _markdown(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def translate(notebook: Path) -> dict:
    """The Simplified edition of one English notebook (a notebook dict)."""
    source = SOURCES / (notebook.stem + ".md")
    if not source.is_file():
        raise TranslationError(f"{_rel(notebook)} has no translation: write "
                               f"{_rel(source)} (python translations/build.py --stub "
                               f"{notebook.stem} prints its skeleton)")
    sections = read_sections(source)
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    ids = set()
    for index, cell in enumerate(nb["cells"]):
        ids.add(cell.get("id"))
        if cell["cell_type"] != "markdown":
            continue
        where = f"{notebook.name}, markdown cell {cell.get('id')} (cell {index})"
        english = _markdown(cell)
        if cell.get("id") not in sections:
            raise TranslationError(f"{where} has no translation in {_rel(source)}; "
                                   f"it starts: {english[:60]!r}")
        recorded, chinese = sections[cell["id"]]
        if recorded != english_hash(english):
            raise TranslationError(
                f"{where} changed in English since it was translated (its hash is now "
                f"{english_hash(english)}, the translation was made for {recorded}): update the "
                f"text in {_rel(source)}, then its hash; --stub {notebook.stem} shows both")
        if not chinese.strip():
            raise TranslationError(f"{where}: the translation in {_rel(source)} is empty")
        cell["source"] = chinese
    unknown = sorted(set(sections) - {c.get("id") for c in nb["cells"]
                                      if c["cell_type"] == "markdown"})
    if unknown:
        raise TranslationError(f"{_rel(source)} translates cells that are not markdown "
                               f"cells of {notebook.name} (any more): {', '.join(unknown)}")
    return nb


def to_traditional(nb: dict, converter, overrides: list[tuple[str, str]],
                   used: set | None = None) -> dict:
    """The Traditional edition of a Simplified notebook; ``used`` collects the overrides
    that changed something."""
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            cell["source"] = traditional(_markdown(cell), converter, overrides, used)
    return nb


def traditional(text: str, converter, overrides: list[tuple[str, str]],
                used: set | None = None) -> str:
    """Simplified text in Traditional Chinese with Taiwan usage: OpenCC, then the fixes
    (the lessons' prose here, the web book's landing page in book/build.py)."""
    text = converter.convert(text)
    for wrong, right in overrides:
        if used is not None and wrong in text:
            used.add((wrong, right))
        text = text.replace(wrong, right)
    return text


def read_overrides() -> list[tuple[str, str]]:
    pairs = []
    for number, line in enumerate(OVERRIDES.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not all(parts):
            raise TranslationError(f"{_rel(OVERRIDES)}:{number}: expected "
                                   "'wrong<TAB>right', got {line!r}")
        pairs.append((parts[0], parts[1]))
    return pairs


def converter():
    import opencc
    return opencc.OpenCC("s2twp")


def serialise(nb: dict) -> str:
    # the way nbformat writes notebooks, so that a rebuild is byte for byte the same
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def editions() -> dict[Path, str]:
    """Every file of both editions: path -> its text."""
    convert, overrides = converter(), read_overrides()
    files, used = {}, set()
    for notebook in lessons():
        simplified = translate(notebook)
        files[EDITIONS["zh-hans"] / notebook.name] = serialise(simplified)
        files[EDITIONS["zh-hant"] / notebook.name] = serialise(
            to_traditional(simplified, convert, overrides, used))
    unused = [wrong for wrong, right in overrides if (wrong, right) not in used]
    if unused:  # a translation changed under it: it would silently stop fixing anything
        raise TranslationError(f"{_rel(OVERRIDES)}: these no longer match the "
                               f"converted text, update or remove them: {unused}")
    return files


def stub(name: str) -> str:
    """Sections for the English cells whose translation is missing or stale, with the
    English text to translate as a comment."""
    notebook = ENGLISH / f"{name.removesuffix('.ipynb')}.ipynb"
    if not notebook.is_file():
        raise TranslationError(f"no English lesson {_rel(notebook)}")
    source = SOURCES / (notebook.stem + ".md")
    sections = read_sections(source) if source.is_file() else {}
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    out = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        english = _markdown(cell)
        if sections.get(cell["id"], ("", ""))[0] == english_hash(english):
            continue
        old = sections.get(cell["id"], (None, ""))[1]
        out.append(f"<!-- cell: {cell['id']} | en: {english_hash(english)} -->\n"
                   + (old or "(translate)") + "\n\n<!-- English now:\n"
                   + english.replace("-->", "-- >") + "\n-->\n")
    return "\n".join(out) or f"{notebook.name}: every markdown cell has a current translation\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if an edition is not what a build writes")
    parser.add_argument("--stub", metavar="NOTEBOOK",
                        help="print the sections of NOTEBOOK to write or update")
    args = parser.parse_args(argv)
    try:
        if args.stub:
            sys.stdout.write(stub(args.stub))
            return 0
        files = editions()
    except TranslationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stale = [path for path, text in files.items()
             if not path.is_file() or path.read_text(encoding="utf-8") != text]
    extra = [path for folder in EDITIONS.values() for path in folder.glob("*.ipynb")
             if path not in files]
    if args.check:
        for path in stale:
            print(f"out of date: {_rel(path)} (run python translations/build.py)")
        for path in extra:
            print(f"no English lesson for {_rel(path)}")
        return 1 if stale or extra else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path], encoding="utf-8")
        print(f"wrote {_rel(path)}")
    for path in extra:
        path.unlink()
        print(f"removed {_rel(path)} (its English lesson is gone)")
    if not stale and not extra:
        print("both editions are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
