"""The shape of the library's code: no long functions and no repeated code in src/xpnn.

Function length: a function (or method, or function nested in one) is measured from its
``def`` line to its last line, blank lines and comments included, its docstring's lines
excluded (a docstring says what the code does; it is not the code); decorators are not
counted. A nested function counts in its own length and in the enclosing one's. More than
``LONGEST`` lines fails, with every offender listed as ``file:qualified.name: length``.

Repeated code: every run of ``RUN`` consecutive statements inside a function (in any of
its blocks: the body, a branch, a loop, a ``with``) is reduced to its shape, its syntax
tree with every identifier, string, number and f-string replaced by a placeholder, so a
copy with other names and values still matches. Two runs of the same shape in different
places fail, listed as ``file:lines ~ file:lines``. A run made of fewer than ``KINDS``
different statement shapes is a list, not logic (``self.lr = lr``, ``self.epochs =
epochs``, ... in a scikit-learn constructor, which must store each argument as given) and
is left out. What this cannot see: repeats shorter than a run, and repeats within one
statement; those are left to review.
"""

from __future__ import annotations

import ast
import functools
import pathlib
import textwrap

ROOT = pathlib.Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "xpnn"

LONGEST = 60  # lines a function may have, docstring not counted
RUN = 5  # consecutive statements that make a repeat (4 matches the layers' forward: prepare, compute, save, return)
KINDS = 3  # different statement shapes a run needs to count


@functools.lru_cache(maxsize=None)
def _parse(path: pathlib.Path) -> ast.Module:
    """A file's syntax tree, parsed once for both checks."""
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


# ---- function length ---------------------------------------------------------------------


def _functions(tree: ast.AST, prefix: str = ""):
    """(qualified name, node) of every function and method in ``tree``, nested ones too."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:  # a def inside an if or a try at module level
            yield from _functions(node, prefix)


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def function_length(node) -> int:
    """Lines from ``def`` to the end, less the docstring's (see the module docstring)."""
    assert node.end_lineno is not None
    length = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if _is_docstring(first):
        length -= first.end_lineno - first.lineno + 1
    return length


def long_functions(root: pathlib.Path, longest: int = LONGEST) -> list[str]:
    """``file:name: length`` for every function under ``root`` longer than ``longest``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for name, node in _functions(_parse(path)):
            length = function_length(node)
            if length > longest:
                found.append((length, f"{path.relative_to(root)}:{name}: {length} lines"))
    return [line for _, line in sorted(found, reverse=True)]


# ---- repeated code -----------------------------------------------------------------------

_PLACEHOLDERS = {ast.JoinedStr: "Constant(str)"}  # an f-string is a string, whatever it holds


def _shape(node, memo: dict) -> str:
    """The syntax tree of ``node`` with identifiers, strings and numbers as placeholders
    (memoised: a statement's shape is reused in the shapes of the blocks around it)."""
    if not isinstance(node, ast.AST):
        return repr(node) if isinstance(node, (bool, type(None))) else "_"
    found = memo.get(id(node))
    if found is not None:
        return found
    if type(node) in _PLACEHOLDERS:
        shape = _PLACEHOLDERS[type(node)]
    elif isinstance(node, ast.Constant):
        shape = f"Constant({type(node.value).__name__})"
    else:
        parts = []
        for field, value in ast.iter_fields(node):
            if field in ("ctx", "type_comment") or isinstance(value, str):  # str fields: identifiers
                continue
            if isinstance(value, list):
                parts.append(f"[{','.join(_shape(v, memo) for v in value)}]")
            else:
                parts.append(_shape(value, memo))
        shape = f"{type(node).__name__}({','.join(parts)})"
    memo[id(node)] = shape
    return shape


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _blocks(tree: ast.AST):
    """Every statement list inside a function: its body and the blocks nested in it."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _blocks_in(node)


def _blocks_in(node: ast.AST):
    """node's own statement lists and those below it, short of a nested def or class (whose
    blocks are their own)."""
    for field in ("body", "orelse", "finalbody"):
        block = getattr(node, field, None)
        if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
            yield [s for s in block if not _is_docstring(s)]
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, _DEFS):
            yield from _blocks_in(child)


def repeats(root: pathlib.Path, run: int = RUN, kinds: int = KINDS) -> list[str]:
    """``a.py:10-24 ~ b.py:40-54`` for every pair of places under ``root`` that share a run
    of ``run`` statements of the same shape (extended as far as the two go on alike)."""
    places: dict[str, list] = {}  # shape of a run -> [(block id, index in block)]
    blocks: list = []  # block id -> (file, statements)
    for path in sorted(root.rglob("*.py")):
        memo: dict = {}
        rel = str(path.relative_to(root))
        for block in _blocks(_parse(path)):
            shapes = [_shape(s, memo) for s in block]
            b = len(blocks)
            blocks.append((rel, block))
            for i in range(len(block) - run + 1):
                window = shapes[i : i + run]
                if len(set(window)) >= kinds:
                    places.setdefault("\n".join(window), []).append((b, i))
    pairs = set()
    for spots in places.values():
        for x in range(len(spots)):
            for y in range(x + 1, len(spots)):
                (b1, i1), (b2, i2) = spots[x], spots[y]
                if b1 == b2 and abs(i1 - i2) < run:
                    continue  # the same statements seen twice (a periodic run within one block)
                pairs.add((spots[x], spots[y]))
    found = []
    for (b1, i1), (b2, i2) in sorted(pairs):
        if ((b1, i1 - 1), (b2, i2 - 1)) in pairs:
            continue  # the continuation of a pair reported from its start
        n = 0
        while ((b1, i1 + n + 1), (b2, i2 + n + 1)) in pairs:
            n += 1
        (f1, s1), (f2, s2) = blocks[b1], blocks[b2]
        last1, last2 = s1[i1 + n + run - 1], s2[i2 + n + run - 1]
        found.append(f"{f1}:{s1[i1].lineno}-{last1.end_lineno} ~ {f2}:{s2[i2].lineno}-{last2.end_lineno}")
    return found


# ---- the checks on src/xpnn ----------------------------------------------------------------


def test_no_function_is_longer_than_the_limit():
    offenders = long_functions(SRC)
    assert not offenders, (
        f"functions over {LONGEST} lines (def to end, docstring not counted); split them into "
        f"well-named helpers:\n" + "\n".join(offenders)
    )


def test_no_code_is_repeated():
    found = repeats(SRC)
    assert not found, (
        f"runs of {RUN} statements repeated (names, strings and numbers aside); fold each into "
        f"one helper:\n" + "\n".join(found)
    )


# ---- the checks catch what they are for ------------------------------------------------------


def _tree(tmp_path, files: dict) -> pathlib.Path:
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path


def _lines(n: int, indent: str) -> str:
    return "".join(f"{indent}x{i} = {i}\n" for i in range(n))


def test_length_counts_code_not_the_docstring(tmp_path):
    doc = '    """' + "\n".join(["Docs."] * 30) + '"""\n'
    fits = f"def fits():\n{doc}{_lines(LONGEST - 2, '    ')}    return 0\n"  # LONGEST lines, the def's too
    too_long = f"class A:\n    @staticmethod\n    def too_long():\n{_lines(LONGEST, '        ')}"
    root = _tree(tmp_path, {"m.py": fits + "\n\n" + too_long})
    assert long_functions(root) == [f"m.py:A.too_long: {LONGEST + 1} lines"]


def test_length_counts_nested_functions_in_the_outer_one(tmp_path):
    source = f"def outer():\n    def inner():\n{_lines(LONGEST, '        ')}    return inner\n"
    root = _tree(tmp_path, {"m.py": source})
    assert long_functions(root) == [f"m.py:outer: {LONGEST + 3} lines", f"m.py:outer.inner: {LONGEST + 1} lines"]


PLANTED = '''
def first(xp, labels, num_classes):
    """Docstrings differ and do not count."""
    flat = xp.reshape(labels, (-1,))
    bad = (flat < 0) | (flat >= num_classes)
    k = int(xp.argmax(xp.astype(bad, xp.int8)))
    value = int(flat[k])
    raise ValueError(f"labels must be in [0, {num_classes}), found {value} at {k}")
'''

COPIED = '''
import math


class Embedding:
    def check(self, ids, size):
        """Another copy, inside an if, with other names, strings and numbers."""
        if size:
            np = self.xp
            flat_ids = np.reshape(ids, (-2,))
            wrong = (flat_ids < 1) | (flat_ids >= size)
            first = int(np.argmax(np.astype(wrong, np.int16)))
            found = int(flat_ids[first])
            raise IndexError(f"ids out of range: {found} at {first}")
        return math.pi
'''


def test_a_planted_repeat_is_found_with_both_places(tmp_path):
    root = _tree(tmp_path, {"a.py": PLANTED, "b.py": COPIED})
    assert repeats(root) == ["a.py:4-8 ~ b.py:10-14"]


def test_a_longer_repeat_is_one_row(tmp_path):
    longer = PLANTED.replace("    raise", "    print(value)\n    print(k, value)\n    raise")
    root = _tree(tmp_path, {"a.py": longer, "b.py": longer.replace("first", "second")})
    assert repeats(root) == ["a.py:4-10 ~ b.py:4-10"]


def test_different_code_and_lists_of_assignments_are_not_repeats(tmp_path):
    other = PLANTED.replace("k = int(xp.argmax(xp.astype(bad, xp.int8)))", "k = xp.argmax(bad)")
    params = "".join(f"        self.p{i} = p{i}\n" for i in range(8))
    estimator = f"class A:\n    def __init__(self, p0, p1, p2, p3, p4, p5, p6, p7):\n{params}"
    root = _tree(tmp_path, {"a.py": PLANTED, "b.py": other, "c.py": estimator, "d.py": estimator})
    assert repeats(root) == []
