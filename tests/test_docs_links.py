"""Every relative link in the README, docs/*.md and results/FINDINGS.md resolves: the file (or
folder) exists, and an anchor names a heading of the target file by GitHub's slug rules.
Links to http(s) and mailto addresses are not checked."""

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`+[^`\n]*`+")
COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.MULTILINE)
EXTERNAL = ("http://", "https://", "mailto:")


def documents():
    """The checked Markdown files, relative to the repository root."""
    names = ["README.md", os.path.join("results", "FINDINGS.md")]
    docs = os.path.join(ROOT, "docs")
    if os.path.isdir(docs):
        names += [os.path.join("docs", name) for name in sorted(os.listdir(docs))
                  if name.endswith(".md")]
    return names


def strip_code(text):
    """The text without fenced code blocks, inline code spans and HTML comments (links there
    are not links)."""
    text = FENCE.sub("", text)
    text = COMMENT.sub("", text)
    return INLINE_CODE.sub("", text)


def slug(heading):
    """GitHub's anchor of a heading: its rendered text lower-cased, punctuation other than
    hyphens and underscores removed, each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links: their text
    text = text.replace("`", "")
    text = re.sub(r"(\*+|(?<!\w)_+|_+(?!\w))", "", text)  # emphasis markers
    text = re.sub(r"<[^>]+>", "", text)
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text):
    """Every anchor the headings of a Markdown text define (repeats get -1, -2, ...)."""
    seen = {}
    result = set()
    for match in HEADING.finditer(FENCE.sub("", text)):
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(text):
    """The link targets of a Markdown text, outside code."""
    return [match.group(1) for match in LINK.finditer(strip_code(text))]


def broken_links(text, folder, read=None):
    """The relative links of ``text`` (a file in ``folder``) that do not resolve, each with the
    reason. ``read(path)`` returns a target file's text (default: read it from disk)."""
    read = read or (lambda path: open(path, encoding="utf-8").read())
    broken = []
    for target in links(text):
        if target.lower().startswith(EXTERNAL):
            continue
        path, _, anchor = target.partition("#")
        if path:
            full = os.path.normpath(os.path.join(folder, path))
            if not os.path.exists(full):
                broken.append(f"{target}: no file {os.path.relpath(full, ROOT)}")
                continue
        else:
            full = None
        if anchor:
            if full is None:
                target_text = text
            elif os.path.isdir(full) or not full.endswith(".md"):
                broken.append(f"{target}: an anchor into a file that is not Markdown")
                continue
            else:
                target_text = read(full)
            if anchor not in anchors(target_text):
                broken.append(f"{target}: no heading with the anchor #{anchor}")
    return broken


def test_slug_follows_github():
    assert slug("Quick start") == "quick-start"
    assert slug("XING (RecSys Challenge 2016 / 2017)") == "xing-recsys-challenge-2016--2017"
    assert slug("Config keys (`properties/model/HierTCN.yaml`)") == \
        "config-keys-propertiesmodelhiertcnyaml"
    assert slug("Protocol `last_session`") == "protocol-last_session"
    assert slug("**Bold** and [a link](x.md)") == "bold-and-a-link"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "there.md").write_text("# Some heading\n", encoding="utf-8")
    text = ("[ok](there.md) [ok](there.md#some-heading) [ok](#local) [web](https://x.org/y)\n"
            "# Local\n"
            "[missing](nowhere.md) [bad anchor](there.md#other) [bad local](#nope)\n"
            "`[in code](nowhere.md)`\n")
    broken = broken_links(text, str(tmp_path))
    assert len(broken) == 3, broken
    assert broken[0].startswith("nowhere.md: no file")
    assert broken[1] == "there.md#other: no heading with the anchor #other"
    assert broken[2] == "#nope: no heading with the anchor #nope"


@pytest.mark.parametrize("name", documents())
def test_relative_links_resolve(name):
    path = os.path.join(ROOT, name)
    assert os.path.exists(path), f"{name} is missing"
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    assert broken_links(text, os.path.dirname(path)) == []


def test_docs_index_lists_every_doc():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        readme = links(handle.read())
    for name in documents():
        if name.startswith("docs"):
            assert name.replace(os.sep, "/") in readme, f"README does not link {name}"
