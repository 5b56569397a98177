"""Sphinx extension for the course's web book (book/build.py loads it).

On every page: a bar with the language switch (the same page in the other editions)
and, on a lesson, a link that downloads its notebook; output lines of a checked claim
(``✓ ...`` / ``✗ ...``, printed by ``d2l_hpo.claim``) wrapped so the stylesheet can mark
them. Everything is decided at build time, so the page needs no script for it.
"""
import html
import importlib.util
import re
import shutil
from pathlib import Path

# A claim line inside a <pre> block, possibly after the highlighter's tags
# (Pygments opens each block with an empty <span></span>).
CLAIM = re.compile(r"^((?:<[^>\n]+>)*)([✓✗])([^\n]*)$", re.M)
PRE = re.compile(r"(<pre>)(.*?)(</pre>)", re.S)


def _mark_claims(body: str) -> str:
    def one_line(m):
        kind = "held" if m.group(2) == "✓" else "failed"
        return (f'{m.group(1)}<span class="d2l-claim d2l-claim-{kind}">'
                f"{m.group(2)}{m.group(3)}</span>")

    def one_pre(m):
        return m.group(1) + CLAIM.sub(one_line, m.group(2)) + m.group(3)

    return PRE.sub(one_pre, body)


def _bar(app, pagename: str, context: dict) -> str:
    here = app.config.d2l_hpo_language
    depth = pagename.count("/")
    up = "../" * depth
    links = []
    for code, label, root in app.config.d2l_hpo_languages:
        if code == here:
            links.append(f'<span class="d2l-lang-current" lang="{code}">{html.escape(label)}</span>')
        else:
            # root: the other edition's folder, relative to this edition's root
            href = f"{up}{root}{pagename}.html"
            links.append(f'<a class="d2l-lang" hreflang="{code}" lang="{code}" '
                         f'href="{href}">{html.escape(label)}</a>')
    parts = ['<nav class="d2l-lang-switch" aria-label="language">' + " · ".join(links) + "</nav>"]
    source = context.get("page_source_suffix")
    if source == ".ipynb":
        name = Path(pagename).name + ".ipynb"
        parts.append(f'<a class="d2l-download" download="{name}" '
                     f'href="{up}_notebooks/{name}">{html.escape(app.config.d2l_hpo_download_label)}'
                     f" ({name})</a>")
    return '<div class="d2l-bar">' + "".join(parts) + "</div>\n"


def page_context(app, pagename, templatename, context, doctree):
    body = context.get("body")
    if body is None:
        return
    context["body"] = _bar(app, pagename, context) + _mark_claims(body)


def copy_notebooks(app, exception):
    """The lessons' notebooks, as they are, under _notebooks/ (the download links)."""
    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir) / "_notebooks"
    out.mkdir(exist_ok=True)
    for docname in app.env.found_docs:
        source = Path(app.env.doc2path(docname))
        if source.suffix == ".ipynb":
            (out / source.name).write_bytes(source.read_bytes())


# What a page needs of MathJax 3 (tex-chtml and what it loads on demand), from the
# copy in the sphinx-mathjax-offline package: 3 MB of its 24.
MATHJAX_PARTS = ["tex-chtml.js", "output/chtml", "input/tex", "ui", "a11y/assistive-mml.js",
                 "a11y/complexity.js", "a11y/explorer.js", "a11y/semantic-enrich.js"]


def mathjax_source() -> Path:
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or spec.origin is None:
        raise RuntimeError("the book needs the package sphinx-mathjax-offline for a local "
                           "MathJax: install the project's [book] extra (make setup does)")
    return Path(spec.origin).parent / "static" / "mathjax"


def copy_mathjax(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    source, target = mathjax_source(), Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, dirs_exist_ok=True)
        else:
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / part, target / part)


# Chinese search by overlapping pairs of characters. Sphinx's own Chinese search cuts
# words with jieba at build time but not in the reader's query, so a query that jieba
# would cut differently (掉队者: 掉队 + 者) finds nothing, and jieba's Simplified dictionary
# cuts Traditional text badly (掉隊者: 掉 + 隊者). Pairs are cut the same way on both
# sides, in both scripts; the search keeps the pages that have every pair.
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
HAN_RUN = re.compile(f"[{HAN}]+")

JS_SPLITTER = """
function splitQuery(query) {
  const terms = [];
  query.split(/[^\\p{Letter}\\p{Number}_]+/u).forEach((token) => {
    (token.match(/[%(han)s]+|[^%(han)s]+/gu) || []).forEach((run) => {
      if (!/^[%(han)s]/u.test(run) || run.length < 2) { terms.push(run); return; }
      for (let i = 0; i + 2 <= run.length; i++) terms.push(run.slice(i, i + 2));
    });
  });
  return terms.filter((term) => term);
}
""" % {"han": HAN}


def _han_pairs(text: str) -> list[str]:
    pairs = []
    for run in HAN_RUN.findall(text):
        pairs += [run] if len(run) < 2 else [run[i:i + 2] for i in range(len(run) - 1)]
    return pairs


def chinese_search_language():
    from sphinx.search.zh import SearchChinese

    class SearchChinesePairs(SearchChinese):
        js_splitter_code = JS_SPLITTER

        def split(self, input: str) -> list[str]:
            latin = [term.strip() for term in self.latin1_letters.findall(input)]
            self.latin_terms.extend(latin)
            return _han_pairs(input) + latin

    return SearchChinesePairs


def setup(app):
    app.add_search_language(chinese_search_language())
    mathjax_source()  # fail before the build, not after it
    app.config.mathjax_path = "mathjax/tex-chtml.js"
    app.connect("build-finished", copy_mathjax)
    app.add_config_value("d2l_hpo_language", "en", "html")
    # (code, label, folder of that edition relative to this edition's root)
    app.add_config_value("d2l_hpo_languages", [], "html")
    app.add_config_value("d2l_hpo_download_label", "Download this notebook", "html")
    app.connect("html-page-context", page_context)
    app.connect("build-finished", copy_notebooks)
    app.add_css_file("d2l-hpo.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
