"""The docs a clone has: every local link and anchor in README.md and docs/*.md resolves, nothing
points outside the repository, and the README's Python blocks run as written."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md"] + sorted(os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs"))
                              if f.endswith(".md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|__", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: str) -> set:
    text = FENCE.sub("", open(path, encoding="utf-8").read())
    seen, out = {}, set()
    for line in text.splitlines():
        m = re.match(r"^#{1,6}\s+(.*)$", line)
        if m:
            s = slug(m.group(1))
            n = seen.get(s, 0)
            seen[s] = n + 1
            out.add(s if n == 0 else f"{s}-{n}")
    return out


def test_slug_matches_githubs_rule():
    assert slug("Training at a thousand users (`benchmarks/large_scale.py`)") == \
        "training-at-a-thousand-users-benchmarkslarge_scalepy"
    assert slug("The paper's Fig. 4: PPO vs SAC vs DQN") == "the-papers-fig-4-ppo-vs-sac-vs-dqn"


@pytest.mark.parametrize("doc", DOCS)
def test_every_local_link_and_anchor_resolves(doc):
    path = os.path.join(ROOT, doc)
    text = FENCE.sub("", open(path, encoding="utf-8").read())
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part \
            else path
        if not dest.startswith(ROOT + os.sep):
            broken.append(f"{target} (outside the repository)")
        elif not os.path.exists(dest):
            broken.append(f"{target} (no such file)")
        elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
            broken.append(f"{target} (no heading with that anchor)")
    assert not broken, f"{doc}: " + "; ".join(broken)


def test_nothing_in_the_repository_points_outside_it():
    hits = []
    for base, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("runs", "__pycache__")]
        for f in files:
            if f.endswith((".md", ".py", ".toml", ".cfg")) or f == "run":
                p = os.path.join(base, f)
                for i, line in enumerate(open(p, encoding="utf-8", errors="replace"), 1):
                    if "../shared" in line and not p.endswith("test_docs.py"):
                        hits.append(f"{os.path.relpath(p, ROOT)}:{i}")
    assert not hits, hits


def readme_python_blocks():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    return [code for lang, code in FENCE.findall(text) if lang == "python"]


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(readme_python_blocks())))
def test_readme_python_block_runs_alone(index, tmp_path):
    """Each block as a reader pastes it into a fresh interpreter, from an empty folder."""
    code = readme_python_blocks()[index]
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=600, cwd=tmp_path)
    assert r.returncode == 0, f"README Python block {index} failed:\n{code}\n{r.stderr[-3000:]}"


def documented_commands():
    """Every ``semcom-jax`` command in a bash block of the README and docs/*.md, continuation
    lines joined, comments and a leading ``pip install ... &&`` dropped."""
    out = []
    for doc in DOCS:
        text = open(os.path.join(ROOT, doc), encoding="utf-8").read()
        for lang, code in FENCE.findall(text):
            if lang not in ("bash", "sh", ""):
                continue
            code = code.replace("\\\n", " ")
            for line in code.splitlines():
                line = line.split(" #")[0].split("&&")[-1].strip()
                if line.startswith("semcom-jax"):
                    out.append((doc, line))
    return out


def test_the_docs_show_commands():
    cmds = documented_commands()
    assert len(cmds) >= 15 and any("eval runs/across" in c for _, c in cmds)


@pytest.mark.parametrize("doc,line", documented_commands())
def test_every_documented_command_parses(doc, line):
    """Each command's sub-command, flags and choices exist as written (the CLI's own parser;
    nothing is run)."""
    import shlex

    from semcom_jax.cli.main import _parser

    argv = shlex.split(re.sub(r"\$\w+", "1", line))[1:]  # shell variables: the reader's to set
    try:
        _parser().parse_args(argv)
    except SystemExit as e:
        pytest.fail(f"{doc}: `{line}` does not parse (exit {e.code})")
