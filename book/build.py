"""Build the course as a web book: English, Simplified and Traditional Chinese.

    python book/build.py [--out _build/html] [--lang en zh-hans zh-hant]

Each edition is a jupyter-book 1.0 (Sphinx) build of the committed notebooks, not
executed: a reader sees the outputs saved in them. English lands in OUT, the Chinese
editions in OUT/zh-hans and OUT/zh-hant, with the same page names, so every page can
link to itself in the other languages. Nothing is fetched: MathJax is the copy in the
sphinx-mathjax-offline package, and no page loads anything from another host
(tests/test_book.py checks the pages and, in Chromium, every request they make).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = ROOT / "notebooks"
STAGING = ROOT / "_build" / "book-src"

# code -> (label in the switch, Sphinx language, folder of its notebooks, its folder in OUT)
EDITIONS = {
    "en": ("English", "en", NOTEBOOKS, ""),
    "zh-hans": ("简体中文", "zh_CN", NOTEBOOKS / "zh-hans", "zh-hans/"),
    "zh-hant": ("繁體中文", "zh_TW", NOTEBOOKS / "zh-hant", "zh-hant/"),
}
TITLES = {
    "en": "Distributed random search, the d2l way",
    "zh-hans": "用d2l的方式做分布式随机搜索",
}
# fixes to the converted landing page that no lesson needs (the lessons' fixes are in
# translations/zh-hant-overrides.tsv, which must each change some lesson)
BOOK_ONLY_TRADITIONAL = [("notebooks/zh-hans/", "notebooks/zh-hant/"), ("倉庫", "儲存庫")]
DOWNLOAD = {"en": "Download this notebook", "zh-hans": "下载本课的记事本"}
SEARCH = {"en": "Search the lessons...", "zh-hans": "在课程中搜索……"}


class BookError(Exception):
    """The book cannot be built as asked: the message says why and what to do."""


def read_lessons(path: Path = BOOK / "lessons.yml", notebooks: Path = NOTEBOOKS) -> list[dict]:
    """book/lessons.yml, checked against notebooks/: the lessons in reading order."""
    lessons = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(lessons, list) or not all(
            isinstance(entry, dict) and entry.get("notebook") for entry in lessons):
        raise BookError(f"{path.name}: expected a list of entries, each with a 'notebook' "
                        "name and its lines 'en' and 'zh-hans'")
    listed = [entry["notebook"] for entry in lessons]
    present = sorted(p.stem for p in notebooks.glob("*.ipynb"))
    missing = [name for name in present if name not in listed]
    if missing:
        raise BookError(f"book/lessons.yml leaves out {', '.join(missing)}: add each "
                        "notebook of notebooks/ where it belongs in the reading order, "
                        "with its one line in English and Simplified Chinese")
    gone = [name for name in listed if name not in present]
    if gone:
        raise BookError(f"book/lessons.yml lists {', '.join(gone)}, which notebooks/ "
                        "does not have: remove or rename the entry")
    twice = sorted({name for name in listed if listed.count(name) > 1})
    if twice:
        raise BookError(f"book/lessons.yml lists {', '.join(twice)} more than once")
    for entry in lessons:
        for key in ("en", "zh-hans"):
            if not entry.get(key):
                raise BookError(f"book/lessons.yml: {entry['notebook']} has no {key} line")
    return lessons


def _translations():
    spec = importlib.util.spec_from_file_location(
        "translations_build", ROOT / "translations" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _title(notebook: Path) -> str:
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    raise BookError(f"{notebook.relative_to(ROOT)} has no '# title' line in a markdown cell")


def texts(lang: str, lessons: list[dict]) -> dict:
    """What the edition says in its own words: title, landing page, lines, labels."""
    if lang == "zh-hant":
        tr = _translations()
        convert, overrides = tr.converter(), tr.read_overrides() + BOOK_ONLY_TRADITIONAL

        def traditional(text):
            return tr.traditional(text, convert, overrides)

        simplified = texts("zh-hans", lessons)
        return {"title": traditional(simplified["title"]),
                "intro": traditional(simplified["intro"]),
                "download": traditional(simplified["download"]),
                "search": traditional(simplified["search"]),
                "lines": {k: traditional(v) for k, v in simplified["lines"].items()}}
    return {"title": TITLES[lang],
            "intro": (BOOK / "intro" / f"{lang}.md").read_text(encoding="utf-8"),
            "download": DOWNLOAD[lang],
            "search": SEARCH[lang],
            "lines": {e["notebook"]: e[lang] for e in lessons}}


def stage(lang: str, lessons: list[dict]) -> Path:
    """A jupyter-book source folder for one edition, under _build/book-src/."""
    label, sphinx_language, folder, _ = EDITIONS[lang]
    src = STAGING / lang
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    words = texts(lang, lessons)
    items = []
    for number, entry in enumerate(lessons, 1):
        notebook = folder / f"{entry['notebook']}.ipynb"
        if not notebook.exists():
            raise BookError(f"{notebook.relative_to(ROOT)} is missing: run `make notebooks-zh` "
                            "to write the Chinese editions")
        shutil.copyfile(notebook, src / notebook.name)
        items.append(f"{number}. [{_title(notebook)}]({notebook.name}): "
                     f"{words['lines'][entry['notebook']]}")
    intro = words["intro"]
    if "{lessons}" not in intro:
        raise BookError(f"book/intro/{lang}.md has no {{lessons}} line for the list of lessons")
    (src / "index.md").write_text(intro.replace("{lessons}", "\n".join(items)), encoding="utf-8")
    (src / "_toc.yml").write_text(yaml.safe_dump({
        "format": "jb-book", "root": "index",
        "chapters": [{"file": entry["notebook"]} for entry in lessons]}), encoding="utf-8")
    here = EDITIONS[lang][3]
    up = "../" * here.count("/")
    switch = [[code, EDITIONS[code][0], up + EDITIONS[code][3]] for code in EDITIONS]
    config = {
        "title": words["title"],
        "author": "d2l-hpo",
        "copyright": "2026",
        "only_build_toc_files": True,
        "exclude_patterns": ["_build"],
        "execute": {"execute_notebooks": "off"},
        "html": {"use_download_button": False, "use_repository_button": False,
                 "home_page_in_navbar": True, "use_multitoc_numbering": False},
        "launch_buttons": {"thebe": False, "binderhub_url": "", "colab_url": "",
                           "jupyterhub_url": "", "deepnote_url": ""},
        "parse": {"myst_enable_extensions": ["dollarmath", "colon_fence"]},
        "sphinx": {
            "local_extensions": {"d2l_hpo_book": str(BOOK / "_ext")},
            "config": {
                # jupyter-book's list without sphinx_thebe (its page script names a
                # CDN) and intersphinx, which this book does not use
                "extensions": ["sphinx_togglebutton", "sphinx_copybutton", "myst_nb",
                               "jupyter_book", "sphinx_comments", "sphinx_external_toc", "sphinx_design",
                               "sphinx_book_theme", "d2l_hpo_book"],
                "language": sphinx_language,
                "html_static_path": [str(BOOK / "_static")],
                "html_favicon": str(BOOK / "_static" / "favicon.svg"),
                "html_theme_options": {
                    "search_bar_text": words["search"],
                    "home_page_in_toc": True,
                    "use_download_button": False,
                    "use_repository_button": False,
                    "use_fullscreen_button": False,
                    "show_toc_level": 2,
                },
                # without it the theme logs an error on a reader's first visit
                "html_context": {"default_mode": "light"},
                "d2l_hpo_language": lang,
                "d2l_hpo_languages": switch,
                "d2l_hpo_download_label": words["download"],
                # myst-nb would load require.js and the widgets' manager from a CDN
                "nb_ipywidgets_js": {},
                # the download link serves _notebooks/; no second copy under _sources/
                "html_copy_source": False,
                "html_show_sourcelink": False,
                "html_last_updated_fmt": None,
            },
        },
    }
    (src / "_config.yml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return src


def build_one(lang: str, src: Path, out: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
         "build", str(src), "--quiet",
         "--keep-going", "--warningiserror"],
        capture_output=True, text=True)
    if result.returncode != 0:
        raise BookError(f"the {lang} edition did not build:\n{result.stdout[-4000:]}"
                        f"{result.stderr[-4000:]}")
    target = out / EDITIONS[lang][3]
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src / "_build" / "html", target, dirs_exist_ok=True)
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "html",
                        help="where the book goes (default: _build/html)")
    parser.add_argument("--lang", nargs="+", choices=list(EDITIONS), default=list(EDITIONS),
                        help="editions to build (default: all three)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        lessons = read_lessons()
        sources = {lang: stage(lang, lessons) for lang in args.lang}
        out = args.out.resolve()
        if out.exists():
            shutil.rmtree(out)
        # one Sphinx process per edition; two at a time (most of a build is one core)
        with ThreadPoolExecutor(max_workers=2) as pool:
            seconds = dict(zip(args.lang, pool.map(
                lambda lang: build_one(lang, sources[lang], out), args.lang)))
    except BookError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    pages = [p for p in out.rglob("*.html") if "_static" not in p.parts]
    for lang, s in seconds.items():
        print(f"{lang}: built in {s:.1f} s")
    print(f"{len(pages)} pages ({len(args.lang)} editions x the landing page, "
          f"{len(lessons)} lessons, search and index) in {out} "
          f"({time.perf_counter() - started:.1f} s); "
          f"open {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
