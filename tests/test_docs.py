"""docs/attention.md cannot go stale: its numbers and its quoted code are checked here."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

from minillm import reference as ref

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "attention.md"
QUOTE_HEADER = re.compile(r"# (minillm/[\w/]+\.py), ([\w.]+)\(\)")


def load_worked_example():
    """docs/worked_example.py, the script that writes section 3 (it is not in the package)."""
    path = ROOT / "docs" / "worked_example.py"
    spec = importlib.util.spec_from_file_location("worked_example", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


worked = load_worked_example()


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def worked_example_section() -> str:
    text = doc_text()
    start = text.index(worked.START) + len(worked.START)
    return text[start : text.index(worked.END)].strip()


def parse_tables(markdown: str) -> dict[str, np.ndarray]:
    """Each Markdown table as {its top-left cell: matrix of its numbers}."""
    tables, lines = {}, markdown.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            name = line.strip("|").split("|")[0].strip()
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                cells = [c.strip() for c in row.strip("|").split("|")[1:]]
                rows.append([-np.inf if c == "−∞" else float(c) for c in cells])
            tables[name] = np.array(rows)
    return tables


def test_worked_example_is_what_the_reference_computes_today():
    assert worked_example_section() == worked.walkthrough_markdown(), (
        "docs/attention.md is stale: run `python docs/worked_example.py --update docs/attention.md`"
    )


def test_update_rewrites_only_the_worked_example(tmp_path):
    stale = tmp_path / "doc.md"
    stale.write_text(f"# top\n{worked.START}\nold numbers\n{worked.END}\nrest\n", encoding="utf-8")
    assert worked.main(["--update", str(stale)]) == 0
    expected = f"# top\n{worked.START}\n{worked.walkthrough_markdown()}\n{worked.END}\nrest\n"
    assert stale.read_text(encoding="utf-8") == expected
    (tmp_path / "none.md").write_text("no markers\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="markers"):
        worked.main(["--update", str(tmp_path / "none.md")])


def test_every_number_of_the_worked_example_recomputes_from_its_q_k_v():
    t = parse_tables(worked_example_section())
    q, k, v = t["Q"], t["K"], t["V"]
    T, d_k = q.shape
    causal = np.tril(np.ones((T, T), dtype=bool))
    scores = q @ k.T
    scaled = scores / np.sqrt(d_k)
    masked = np.where(causal, scaled, -np.inf)
    record: list[np.ndarray] = []
    output = ref.attention(q[None, None], k[None, None], v[None, None], causal, record)[0, 0]
    weights = record[0][0, 0]
    np.testing.assert_allclose(weights, ref.softmax(masked), atol=1e-12)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0)
    half = 0.5e-3 + 1e-12  # tables are rounded to 3 decimals
    np.testing.assert_array_equal(t["Q Kᵀ"], scores)
    np.testing.assert_allclose(t["Q Kᵀ / √d_k"], scaled, atol=half, rtol=0)
    np.testing.assert_allclose(t["masked"], masked, atol=half, rtol=0)  # −∞ equals −∞
    np.testing.assert_allclose(t["weights"], weights, atol=half, rtol=0)
    np.testing.assert_allclose(t["output"], output, atol=half, rtol=0)
    np.testing.assert_array_equal(q, worked.Q)


def quoted_code_blocks() -> list[tuple[str, str, list[str]]]:
    """(file, function, lines) of each ```python block of the doc."""
    blocks = re.findall(r"```python\n(.*?)```", doc_text(), flags=re.S)
    assert blocks, "docs/attention.md should quote the code"
    quoted = []
    for block in blocks:
        header, *lines = block.splitlines()
        match = QUOTE_HEADER.fullmatch(header.strip())
        assert match, f"a quoted block must start with '# minillm/FILE.py, function()': {header}"
        quoted.append((match[1], match[2], [line for line in lines if line.strip()]))
    return quoted


def function_source_lines(path: Path, qualified_name: str) -> set[str]:
    """The stripped source lines of function `Class.method` or `function` in `path`."""
    source = path.read_text(encoding="utf-8")
    node: ast.AST = ast.parse(source)
    for part in qualified_name.split("."):
        children = [
            n
            for n in ast.iter_child_nodes(node)
            if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name == part
        ]
        assert children, f"{path.name} has no {qualified_name}"
        node = children[0]
    lines = source.splitlines()[node.lineno - 1 : node.end_lineno]
    return {line.strip() for line in lines}


@pytest.mark.parametrize("where", quoted_code_blocks(), ids=lambda w: f"{w[0]}:{w[1]}")
def test_quoted_code_lines_still_exist_in_the_function_they_cite(where):
    path, name, lines = where
    source = function_source_lines(ROOT / path, name)
    stale = [line.strip() for line in lines if line.strip() not in source]
    assert not stale, f"docs/attention.md quotes lines that are not in {path} {name}(): {stale}"


def test_commands_in_the_doc_parse(capsys, tmp_path):
    from minillm.cli import sample

    parser = sample.build_parser()
    commands = re.findall(r"^python (sample\.py|train\.py|docs/worked_example\.py)\b(.*)$",
                          doc_text(), flags=re.M)  # fmt: skip
    assert any(c[0] == "sample.py" and "--attention" in c[1] for c in commands)
    assert any(c[0] == "sample.py" and "--explain" in c[1] for c in commands)
    assert any(c[0] == "docs/worked_example.py" for c in commands)
    for program, rest in commands:
        argv = shlex.split(rest, comments=True)
        if program == "sample.py":
            args = parser.parse_args(argv)
            assert args.out is None or args.out.endswith(".html" if args.explore else ".png")
        elif program == "docs/worked_example.py" and "--masks" in argv:
            out = tmp_path / "masks.png"  # drawn here, not over the doc's figure
            assert worked.main([*argv[: argv.index("--out")], "--out", str(out)]) == 0
            assert out.stat().st_size > 1000
            capsys.readouterr()
        elif program == "docs/worked_example.py":
            assert worked.main(argv) == 0  # prints the walkthrough
            assert capsys.readouterr().out.strip() == worked.walkthrough_markdown()


def resolves(dotted: str) -> bool:
    """Whether `a.b.c` names a module, or an attribute of one (a function, a class)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attribute in parts[i:]:
            if not hasattr(obj, attribute):
                return False
            obj = getattr(obj, attribute)
        return True
    return False


def test_every_script_module_and_function_the_doc_names_exists():
    text = doc_text()
    for path in re.findall(r"^python ([\w/]+\.py)\b", text, flags=re.M):
        assert (ROOT / path).is_file(), f"docs/attention.md runs {path}, which is missing"
    for module in re.findall(r"python -m ([\w.]+)", text):
        spec = importlib.util.find_spec(module)
        runs = spec and '__name__ == "__main__"' in Path(spec.origin).read_text(encoding="utf-8")
        assert runs, f"docs/attention.md runs `python -m {module}`, which is not a script"
    for name in re.findall(r"`(minillm(?:\.\w+)+)`", text):
        assert resolves(name), f"docs/attention.md names `{name}`, which does not exist"


def test_figures_the_doc_shows_exist_and_are_small():
    for name in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", doc_text()):
        path = DOC.parent / name
        assert path.is_file(), f"docs/attention.md shows {name}, which is missing"
        assert path.stat().st_size < 200_000, f"{name} is over 200 KB"
        assert f"--out docs/{name}" in doc_text(), f"no command in the doc makes {name}"
