"""The web book (book/): what it lists, what its pages load, and how it reads in Chromium.

The fast tests check the table of contents and the page helpers. The others build the
whole book once (book/build.py, as `make book` does) into a temporary folder, parse
every page, then read it in headless Chromium over a local server, the way a student
would: every lesson in every language, next links, language switch, search.
"""
import importlib.util
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

# one pytest-xdist worker builds the book once for all of them
pytestmark = pytest.mark.xdist_group("book")

ROOT = Path(__file__).resolve().parents[1]
LANGS = {"en": "", "zh-hans": "zh-hans/", "zh-hant": "zh-hant/"}
HTML_LANG = {"en": "en", "zh-hans": "zh-CN", "zh-hant": "zh-TW"}
# a word of lesson 02 in each edition (the straggler)
SEARCH_WORD = {"en": "straggler", "zh-hans": "掉队者", "zh-hant": "掉隊者"}


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


build = _load("book_build", ROOT / "book" / "build.py")
browse = _load("book_browse", ROOT / "book" / "browse.py")
ext = _load("d2l_hpo_book", ROOT / "book" / "_ext" / "d2l_hpo_book.py")
LESSONS = [entry["notebook"] for entry in build.read_lessons()]


# ---- the table of contents and the page helpers (fast) ----

def test_the_table_of_contents_lists_every_notebook_once():
    assert sorted(LESSONS) == sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert len(set(LESSONS)) == len(LESSONS)
    for lang in ("zh-hans", "zh-hant"):
        assert sorted(LESSONS) == sorted(p.stem for p in (ROOT / "notebooks" / lang).glob("*.ipynb"))


def _toc_case(tmp_path, listed, present):
    (tmp_path / "nb").mkdir()
    for name in present:
        (tmp_path / "nb" / f"{name}.ipynb").write_text("{}")
    toc = tmp_path / "lessons.yml"
    toc.write_text("".join(f"- notebook: {n}\n  en: a line\n  zh-hans: 一行\n" for n in listed))
    return toc, tmp_path / "nb"


def test_a_notebook_the_table_of_contents_leaves_out_stops_the_build(tmp_path):
    toc, nb = _toc_case(tmp_path, ["01_a"], ["01_a", "08_new_lesson"])
    with pytest.raises(build.BookError, match="leaves out 08_new_lesson"):
        build.read_lessons(toc, nb)


def test_a_listed_lesson_that_is_gone_or_twice_is_named(tmp_path):
    toc, nb = _toc_case(tmp_path, ["01_a", "02_gone"], ["01_a"])
    with pytest.raises(build.BookError, match="lists 02_gone, which notebooks/ does not have"):
        build.read_lessons(toc, nb)
    toc.write_text("- notebook: 01_a\n  en: x\n  zh-hans: y\n" * 2)
    with pytest.raises(build.BookError, match="lists 01_a more than once"):
        build.read_lessons(toc, nb)
    toc.write_text("- notebook: 01_a\n  en: x\n")
    with pytest.raises(build.BookError, match="01_a has no zh-hans line"):
        build.read_lessons(toc, nb)


def test_claim_lines_in_outputs_are_marked_and_nothing_else():
    body = ('<p>✓ in prose</p><pre><span></span>✓ held — 3 against 1\n'
            'a line with ✓ inside\n<span class="x">✗ failed — 0</span>\n</pre>')
    marked = ext._mark_claims(body)
    assert marked.count('class="d2l-claim d2l-claim-held"') == 1
    assert marked.count('class="d2l-claim d2l-claim-failed"') == 1
    assert "<p>✓ in prose</p>" in marked and "a line with ✓ inside" in marked


def test_the_traditional_edition_speaks_traditional_chinese():
    words = build.texts("zh-hant", build.read_lessons())
    assert "隨機搜尋" in words["title"] and "随机" not in words["intro"]
    assert "{lessons}" in words["intro"]
    assert all(words["lines"][name] for name in LESSONS)


def test_without_chromium_the_browser_tests_say_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CHROME_BIN", raising=False)
    with pytest.raises(browse.BrowserMissing, match="apt-get install chromium chromium-driver"):
        browse.Reader(tmp_path)
    monkeypatch.setenv("CHROME_BIN", str(tmp_path / "no-such-chromium"))
    with pytest.raises(browse.BrowserMissing, match="CHROME_BIN is .*not a program"):
        browse.Reader(tmp_path)


class _Resources(HTMLParser):
    """What a page loads (not what it merely links to): (tag, attribute, value)."""
    LOADS = {"script": ["src"], "img": ["src", "srcset"], "source": ["src", "srcset"],
             "iframe": ["src"], "embed": ["src"], "object": ["data"], "video": ["src", "poster"],
             "audio": ["src"], "track": ["src"], "input": ["src"]}
    LINK_RELS = {"stylesheet", "icon", "preload", "modulepreload", "prefetch", "manifest",
                 "shortcut", "apple-touch-icon", "preconnect", "dns-prefetch"}

    def __init__(self):
        super().__init__()
        self.found, self._inside = [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in self.LOADS.get(tag, []):
            if attrs.get(name):
                self.found.append((tag, name, attrs[name]))
        if tag == "link" and set((attrs.get("rel") or "").lower().split()) & self.LINK_RELS:
            self.found.append((tag, "href", attrs.get("href", "")))
        if attrs.get("style"):
            self.found += [(tag, "style", u) for u in _css_urls(attrs["style"])]
        self._inside = tag if tag in ("style", "script") else None

    def handle_data(self, data):
        if self._inside == "style":
            self.found += [("style", "css", u) for u in _css_urls(data)]
        elif self._inside == "script":  # an address a page script would fetch (thebe's CDN)
            self.found += [("script", "inline", u) for u in re.findall(r"https?://[^\s'\"`]+", data)]

    def handle_endtag(self, tag):
        self._inside = None


def _css_urls(css: str) -> list[str]:
    return re.findall(r"""url\(\s*['"]?([^'")\s]+)""", css) + re.findall(
        r"""@import\s+['"]([^'"]+)""", css)


def _outside(value: str) -> bool:
    return any(urlparse(part.strip().split(" ")[0]).netloc or part.strip().startswith("//")
               for part in value.split(","))


def outside_resources(html: str) -> list[tuple]:
    parser = _Resources()
    parser.feed(html)
    return [item for item in parser.found if _outside(item[2])]


def test_the_page_check_finds_what_would_load_from_another_host():
    page = ('<link rel="stylesheet" href="https://cdn.example/x.css">'
            '<script src="//unpkg.com/thebe.js"></script><img src="_images/a.png">'
            '<a href="https://d2l.ai">the book</a><div style="background: url(http://x/y.png)">'
            '<style>@import "https://fonts.example/f.css";</style>'
            '<script>const THEBE_JS_URL = "https://unpkg.com/thebe@0.8.2/lib/index.js"</script>')
    found = outside_resources(page)
    assert [v for _, _, v in found] == ["https://cdn.example/x.css", "//unpkg.com/thebe.js",
                                        "http://x/y.png", "https://fonts.example/f.css",
                                        "https://unpkg.com/thebe@0.8.2/lib/index.js"]


# ---- the built book ----

@pytest.fixture(scope="module")
def book(tmp_path_factory):
    out = tmp_path_factory.mktemp("book") / "html"
    result = subprocess.run([sys.executable, str(ROOT / "book" / "build.py"), "--out", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


PAGES = ["index"] + LESSONS  # each edition's pages in reading order


@pytest.mark.slow
def test_every_lesson_is_built_in_every_language(book):
    built = {p.relative_to(book).as_posix() for p in book.rglob("*.html")
             if "_static" not in p.parts}
    expected = {f"{prefix}{page}.html" for prefix in LANGS.values()
                for page in PAGES + ["search", "genindex"]}
    assert built == expected


@pytest.mark.slow
def test_each_landing_page_lists_the_lessons_in_reading_order_with_their_titles(book):
    for lang, prefix in LANGS.items():
        html = (book / prefix / "index.html").read_text(encoding="utf-8")
        article = html[html.index("<article"):]
        order = [m for m in re.findall(r'href="(\d\d_\w+)\.html"', article)]
        assert list(dict.fromkeys(order)) == LESSONS, lang
        for name in LESSONS:
            assert build._title(_notebook(lang, name)) in article, (lang, name)
        text = re.sub(r"<[^>]+>", "", article)
        assert "make run" in text and "make test" in text and "{lessons}" not in text


@pytest.mark.slow
def test_no_page_loads_anything_from_another_host(book):
    pages = list(book.rglob("*.html"))
    offending = {str(p.relative_to(book)): outside_resources(p.read_text(encoding="utf-8"))
                 for p in pages}
    assert not {k: v for k, v in offending.items() if v}
    styles = {str(p.relative_to(book)): [u for u in _css_urls(p.read_text(errors="replace"))
                                         if _outside(u)]
              for p in book.rglob("*.css")}
    assert not {k: v for k, v in styles.items() if v}
    for prefix in LANGS.values():  # math from the local copy
        assert (book / prefix / "_static" / "mathjax" / "tex-chtml.js").is_file()
        assert '_static/mathjax/tex-chtml.js' in (book / prefix / "03_linear_speedup.html").read_text()


def _notebook(lang, name):
    folder = ROOT / "notebooks" / ("" if lang == "en" else lang)
    return folder / f"{name}.ipynb"


@pytest.mark.slow
def test_each_lesson_links_its_notebook_and_the_other_languages(book):
    for lang, prefix in LANGS.items():
        for name in PAGES:
            page = book / prefix / f"{name}.html"
            html = page.read_text(encoding="utf-8")
            links = dict(re.findall(r'<a class="d2l-lang" hreflang="([\w-]+)"[^>]*href="([^"]+)"', html))
            assert set(links) == set(LANGS) - {lang}, page
            for other, href in links.items():
                assert (page.parent / href).resolve() == (book / LANGS[other] / f"{name}.html").resolve()
            download = re.findall(r'<a class="d2l-download"[^>]*href="([^"]+)"', html)
            if name == "index":
                assert not download
                continue
            assert len(download) == 1, page
            assert (page.parent / download[0]).read_bytes() == _notebook(lang, name).read_bytes()


@pytest.mark.slow
def test_every_claim_line_a_lesson_printed_is_marked(book):
    for lang, prefix in LANGS.items():
        for name in LESSONS:
            cells = json.loads(_notebook(lang, name).read_text(encoding="utf-8"))["cells"]
            printed = sum(1 for c in cells if c["cell_type"] == "code"
                          for o in c.get("outputs", []) if o.get("output_type") == "stream"
                          for line in "".join(o["text"]).splitlines() if line.startswith("✓"))
            html = (book / prefix / f"{name}.html").read_text(encoding="utf-8")
            assert printed >= 2
            assert html.count('class="d2l-claim d2l-claim-held"') == printed, (lang, name)


# ---- in Chromium ----

@pytest.fixture(scope="module")
def reader(book):
    with browse.Reader(book) as reader:
        yield reader


def _check_page(reader, where):
    """What a reader would notice on the page just opened: errors, missing images,
    anything fetched from elsewhere, math left as TeX."""
    errors = [m["message"] for m in reader.console() if m["level"] == "SEVERE"]
    assert not errors, (where, errors)
    outside = [u for u in reader.requests() if not u.startswith(reader.base)
               and not u.startswith(("data:", "blob:", "about:"))]
    assert not outside, (where, outside)
    images = reader.driver.execute_script(
        "const col = (document.querySelector('article') || document.body).clientWidth;"
        "return [...document.images].map(i => [i.currentSrc, i.complete, i.naturalWidth,"
        " i.width, col, !!i.closest('.cell_output')]);")
    for src, complete, natural, shown, column, in_output in images:
        assert complete and natural > 0 and shown > 0, (where, src)
        if in_output:  # a figure is shown at its size, or as wide as the text allows
            assert shown >= min(natural, column) * 0.9 - 1, (where, src, natural, shown, column)
    return images


@pytest.mark.slow
def test_reading_each_edition_front_to_back_by_its_next_links(reader):
    for lang, prefix in LANGS.items():
        reader.console(), reader.requests()
        reader.open(f"{prefix}index.html")
        figures = 0
        for position, name in enumerate(PAGES):
            assert urlparse(reader.driver.current_url).path == f"/{prefix}{name}.html", lang
            assert reader.driver.execute_script("return document.documentElement.lang") == HTML_LANG[lang]
            figures += len(_check_page(reader, (lang, name)))
            if name != "index" and "$" in "".join("".join(c["source"]) for c in json.loads(
                    _notebook(lang, name).read_text(encoding="utf-8"))["cells"]
                    if c["cell_type"] == "markdown"):
                assert reader.driver.execute_script(
                    "return document.querySelectorAll('mjx-container').length") > 0, (lang, name)
            nxt = reader.driver.find_elements("css selector", "a.right-next")
            if position == len(PAGES) - 1:
                assert not nxt, (lang, name)
                break
            nxt[0].click()
            reader.settle()
        assert figures >= 20, (lang, figures)


@pytest.mark.slow
def test_the_language_switch_lands_on_the_same_lesson(reader):
    order = list(LANGS)
    for i, lang in enumerate(order):
        other = order[(i + 1) % len(order)]
        reader.open(f"{LANGS[lang]}05_early_stopping_asha.html")
        reader.driver.find_element("css selector", f'a.d2l-lang[hreflang="{other}"]').click()
        reader.settle()
        assert urlparse(reader.driver.current_url).path == f"/{LANGS[other]}05_early_stopping_asha.html"
        assert reader.driver.execute_script("return document.documentElement.lang") == HTML_LANG[other]
    reader.console(), reader.requests()


@pytest.mark.slow
def test_searching_a_word_of_lesson_02_lists_lesson_02(reader):
    from selenium.webdriver.support.ui import WebDriverWait

    for lang, prefix in LANGS.items():
        reader.open(f"{prefix}search.html?q={SEARCH_WORD[lang]}")
        hits = WebDriverWait(reader.driver, 30).until(lambda d: d.execute_script(
            "const s = document.querySelector('#search-results');"
            "return s && s.querySelector('p.search-summary') && s.querySelector('p.search-summary').textContent"
            " ? [...s.querySelectorAll('ul.search li a')].map(a => a.getAttribute('href')) : null;"))
        assert any(h.split("?")[0].endswith("02_sync_vs_async.html") for h in hits), (lang, hits)
        _check_page(reader, (lang, "search"))


@pytest.mark.slow
def test_a_screenshot_of_a_lesson_in_each_language_is_not_blank(reader, tmp_path):
    from PIL import Image, ImageStat

    for lang, page in browse.SCREENSHOTS.items():
        path = tmp_path / f"{lang}.png"
        browse.screenshot(reader, page, path)
        gray = Image.open(path).convert("L")
        assert gray.size == browse.WINDOW or gray.size[0] > 600, gray.size
        dark = sum(gray.histogram()[:128]) / (gray.size[0] * gray.size[1])
        assert ImageStat.Stat(gray).stddev[0] > 20 and dark > 0.01, (lang, dark)
        _check_page(reader, (lang, "screenshot"))


def test_chinese_is_indexed_by_pairs_of_characters_in_both_scripts():
    assert ext._han_pairs("含掉隊者的 LeNet 掉队者") == ["含掉", "掉隊", "隊者", "者的", "掉队", "队者"]
    assert ext._han_pairs("梯") == ["梯"]
