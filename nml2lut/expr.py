"""expr: LEMS expression text -> tree; evaluate on numpy; render as Brian2 text; dimensions.

Expressions come from untrusted files, so the text is read by the small
tokenizer and operator-precedence parser below (explicit stacks, no recursion)
and never by Python's own parser (no ``eval``, ``exec``, ``compile``,
``sympify``).  Text longer than `MAX_LENGTH` characters, or nested or building
a tree deeper than `MAX_DEPTH` levels, is refused with `ExpressionError`;
every tree walk checks the depth first, so none can hit ``RecursionError``.

Semantics follow jLEMS, the LEMS reference interpreter (repository LEMS/jLEMS,
``src/main/java/org/lemsml/jlems/core/expression/``), read for this module:

* ``Parser.java`` sorts operators by ``getPrecedence()`` (smaller claims its
  operands first) with a stable sort, so equal precedence is left-associative.
  ``UnaryMinusNode`` 0, ``PowerNode`` 1, ``DivideNode`` 2, ``TimesNode`` 3,
  ``MinusNode`` 4, ``PlusNode`` 5, the comparisons 10, ``AndNode`` and
  ``OrNode`` both 20.  Hence ``^`` is left-associative: ``2^3^2`` is 64.
  Splitting ``* /`` and ``+ -`` over two levels changes only rounding, so this
  parser uses the usual left-to-right ``a/b*c`` = ``(a/b)*c``.
* A ``-`` is a ``UnaryMinusNode`` only when the token before it is an operator
  (``Parser.tokenize``).  At the start of the text or after ``(`` it is a
  ``MinusNode`` with an implicit 0 on its left (``claimLeft``), which binds
  looser than ``^``, ``*`` and ``/``: ``-a^2`` is ``-(a^2)`` and
  ``exp(-x^2)`` is a Gaussian, but ``b*-a^2`` is ``b*((-a)^2)``.
* Comparisons take numbers and give booleans (``AbstractComparisonNode``), so
  ``a .lt. b .lt. c`` is invalid there; here it is refused.  ``.and.`` and
  ``.or.`` share one precedence in jLEMS while NEURON export translates them
  to C's ``&&``/``||``, so mixing them without parentheses is refused as
  ambiguous.  jLEMS has no ``.not.`` operator, so the text form is refused
  (``Unary("not", ...)`` trees built by code still work).
* Operators and function names are case-sensitive and lower case (``opHM``
  and ``stdFuncs`` in ``Parser.java``).  ``log`` is the natural logarithm like
  ``ln`` (``FunctionNode.java``, ``DFunc.java``).  ``ExpressionTest.java``
  pins ``H(-2)=0``, ``H(2)=1``, ``H(0)=0.5`` (as does ``NRNUtils.java`` of
  NeuroML/org.neuroml.export), plus ``ceil``, ``abs`` and ``factorial``.
  ``random`` is refused (not deterministic), as are ``sum`` and ``product``.
* ``ConstantNode`` treats a literal 0 as of any dimension (``setZero``).

Besides the jLEMS operators, ``> < >= <= == !=`` are accepted, and
``sinh cosh tanh floor`` are accepted as functions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple, NoReturn

import numpy as np

from .errors import ExpressionError, UnitError
from .units import DIMENSIONLESS, Dimension, dimension_name

__all__ = [
    "MAX_LENGTH", "MAX_DEPTH", "Num", "Sym", "Unary", "Binary", "Call", "Cond", "Node",
    "parse", "free_symbols", "substitute", "fold_constants", "evaluate", "to_brian2",
    "to_lems", "dimension_of", "walk", "switches", "DIVIDE_FUNCTION_NAME",
]  # fmt: skip

MAX_LENGTH = 10_000
MAX_DEPTH = 200

UNARY_OPS = frozenset({"-", "+", "not"})
COMPARISONS = frozenset({"<", ">", "<=", ">=", "==", "!="})
LOGIC = frozenset({"and", "or"})
BINARY_OPS = frozenset({"+", "-", "*", "/", "^"}) | COMPARISONS | LOGIC


@dataclass(frozen=True)
class Num:
    """A number literal."""

    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", float(self.value))


@dataclass(frozen=True)
class Sym:
    """A named quantity (parameter, variable, constant)."""

    name: str


@dataclass(frozen=True)
class Unary:
    """``-x``, ``+x`` or ``not x``."""

    op: str
    operand: Node

    def __post_init__(self) -> None:
        if self.op not in UNARY_OPS:
            raise ExpressionError(f"unknown unary operator {self.op!r}")


@dataclass(frozen=True)
class Binary:
    """An arithmetic, comparison or logic operator applied to two operands."""

    op: str
    left: Node
    right: Node

    def __post_init__(self) -> None:
        if self.op not in BINARY_OPS:
            raise ExpressionError(f"unknown binary operator {self.op!r}")


@dataclass(frozen=True)
class Call:
    """A function call such as ``exp(x)``."""

    func: str
    args: tuple[Node, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", tuple(self.args))


@dataclass(frozen=True)
class Cond:
    """The first case whose condition holds gives the value; else ``default``; else NaN.

    Built by callers for LEMS ``ConditionalDerivedVariable``; `parse` never makes one.
    """

    cases: tuple[tuple[Node, Node], ...]
    default: Node | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "cases", tuple((c, v) for c, v in self.cases))


Node = Num | Sym | Unary | Binary | Call | Cond


# ---------------------------------------------------------------- functions
class _Function(NamedTuple):
    numpy: Callable[[np.ndarray], np.ndarray]
    brian2: str | None  # None: no plain Brian2 function of that meaning
    dims: str = "none"  # "none": argument must be dimensionless; "same"; "sqrt"


def _heaviside(x: np.ndarray) -> np.ndarray:
    return np.heaviside(x, 0.5)


def _exprel(x: np.ndarray) -> np.ndarray:
    # expm1 keeps full precision near 0, where (exp(x)-1)/x cancels badly.
    out = np.ones(np.shape(x))
    np.divide(np.expm1(x), x, out=out, where=np.asarray(x) != 0)
    return out


with np.errstate(over="ignore"):
    _FACTORIALS = np.cumprod(np.r_[1.0, np.arange(1.0, 172.0)])  # 171! overflows to inf


def _factorial(x: np.ndarray) -> np.ndarray:
    whole = (x >= 0) & (x == np.floor(x))
    index = np.where(whole, np.minimum(x, 171), 0).astype(np.intp)
    return np.where(whole, _FACTORIALS[index], np.nan)


_FUNCTIONS: dict[str, _Function] = {
    "exp": _Function(np.exp, "exp"), "log": _Function(np.log, "log"),
    "ln": _Function(np.log, "log"), "sqrt": _Function(np.sqrt, "sqrt", "sqrt"),
    "sin": _Function(np.sin, "sin"), "cos": _Function(np.cos, "cos"),
    "tan": _Function(np.tan, "tan"), "sinh": _Function(np.sinh, "sinh"),
    "cosh": _Function(np.cosh, "cosh"), "tanh": _Function(np.tanh, "tanh"),
    "abs": _Function(np.abs, "abs", "same"), "ceil": _Function(np.ceil, "ceil", "same"),
    "floor": _Function(np.floor, "floor", "same"),
    "H": _Function(_heaviside, None), "factorial": _Function(_factorial, None),
}  # fmt: skip
# Only for trees built by code: x/(1-exp(-x)) is written 1/exprel(-x), finite at 0.
# Brian2's own exprel has no numpy implementation (its Python fallback checks
# units on every call); nml2lut_exprel is nml2lut's, see nml2lut.lookup.
_INTERNAL = {"exprel": _Function(_exprel, "nml2lut_exprel")}
_REFUSED = {
    "random": "it is not deterministic",
    "sum": "it sums over child components, which expressions here cannot see",
    "product": "it multiplies over child components, which expressions here cannot see",
}


def _function(name: str, allow_internal: bool = True) -> _Function:
    """The function called ``name``, or an `ExpressionError` saying why not."""
    if name in _FUNCTIONS:
        return _FUNCTIONS[name]
    if allow_internal and name in _INTERNAL:
        return _INTERNAL[name]
    if name in _REFUSED:
        raise ExpressionError(f"function {name!r} is not supported: {_REFUSED[name]}")
    hint = f" (names are case-sensitive: {name.lower()!r}?)" if name.lower() in _FUNCTIONS else ""
    known = ", ".join(sorted(_FUNCTIONS, key=str.lower))
    raise ExpressionError(f"unknown function {name!r}{hint}; known functions: {known}")


def _call_function(node: Call) -> _Function:
    function = _function(node.func)
    if len(node.args) != 1:
        raise ExpressionError(f"function {node.func!r} takes 1 argument, got {len(node.args)}")
    return function


# ---------------------------------------------------------------- parsing
class _Token(NamedTuple):
    kind: str  # "num", "name", "op", "(", ")", ",", "end"
    text: str  # as written
    pos: int
    op: str = ""  # operators: the canonical name ("<" for ".lt.")


_TOKEN = re.compile(
    r"(?P<space>\s+)"
    # A "." followed by letters and a "." starts an operator, as in 1.gt.x.
    r"|(?P<num>(?:[0-9]+(?:\.(?![A-Za-z]+\.)[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<dotted>\.[A-Za-z]+\.)"
    r"|(?P<sym>\*\*|<=|>=|==|!=|[-+*/^<>(),])",
    re.ASCII,
)
_DOTTED = {
    ".gt.": ">", ".lt.": "<", ".geq.": ">=", ".leq.": "<=", ".eq.": "==", ".neq.": "!=",
    ".and.": "and", ".or.": "or",
}  # fmt: skip
_LEMS_OPS = {v: k for k, v in _DOTTED.items()} | {op: op for op in "+-*/^"}
# Larger binds tighter.  A leading minus (jLEMS MinusNode with an implicit 0)
# takes everything that binds tighter than "+"; a minus after an operator
# (jLEMS UnaryMinusNode) binds tighter even than "^".
_BINDING = {"or": 1, "and": 1, "+": 3, "-": 3, "*": 4, "/": 4, "^": 5} | dict.fromkeys(
    COMPARISONS, 2
)
_LEADING_SIGN, _TIGHT_SIGN = 3, 6


class _Pending(NamedTuple):
    kind: str  # "binary", "sign", "paren", "call"
    token: _Token
    binding: int = 0
    base: int = 0  # calls: height of the operand stack when the call opened


class _Parser:
    """Operator-precedence parser with explicit stacks: no recursion, so no depth trap."""

    def __init__(self, text: str, where: str, allow_internal: bool):
        self.text, self.where, self.allow_internal = text, where, allow_internal
        self.pending: list[_Pending] = []
        # Each operand remembers the operator that built it outside parentheses,
        # to refuse a .lt. b .lt. c and unparenthesised .and./.or. mixtures.
        self.operands: list[tuple[Node, str | None]] = []
        self.nesting = 0

    def fail(self, message: str, pos: int) -> NoReturn:
        shown = self.text if len(self.text) <= 80 else self.text[:77] + "..."
        prefix = f"{self.where}: " if self.where else ""
        raise ExpressionError(f"{prefix}{message} at position {pos + 1} in {shown!r}")

    def tokenize(self) -> list[_Token]:
        tokens, pos = [], 0
        while pos < len(self.text):
            match = _TOKEN.match(self.text, pos)
            if match is None:
                self.fail(f"unexpected character {self.text[pos]!r}", pos)
            kind, text = match.lastgroup, match.group()
            if kind == "dotted":
                tokens.append(_Token("op", text, pos, self.dotted(text, pos)))
            elif text == "**":
                self.fail("'**' is not a LEMS operator (powers are written '^')", pos)
            elif kind == "sym":
                tokens.append(
                    _Token(text, text, pos) if text in "()," else _Token("op", text, pos, text)
                )
            elif kind != "space":
                tokens.append(_Token(kind, text, pos))
            pos = match.end()
        return [*tokens, _Token("end", "", len(self.text))]

    def dotted(self, text: str, pos: int) -> str:
        if text in _DOTTED:
            return _DOTTED[text]
        if text.lower() in _DOTTED:
            self.fail(f"operator {text!r} must be lower case ({text.lower()!r})", pos)
        if text == ".not.":
            self.fail("'.not.' is not a LEMS operator (jLEMS has none)", pos)
        self.fail(f"unknown operator {text!r}; known: {', '.join(_DOTTED)}", pos)

    def parse(self) -> Node:
        tokens = self.tokenize()
        if tokens[0].kind == "end":
            self.fail("empty expression", 0)
        want_operand, after_op, index = True, False, 0
        while tokens[index].kind != "end" or want_operand:
            token = tokens[index]
            if not want_operand:
                want_operand, after_op = self.operator(token)
            elif token.kind == "name" and tokens[index + 1].kind == "(":
                try:  # refuse unknown and non-deterministic functions before their arguments
                    _function(token.text, self.allow_internal)
                except ExpressionError as err:
                    self.fail(str(err), token.pos)
                self.open("call", token)
                after_op = False  # a sign right after "f(" is a leading sign, as after "("
                index += 1  # the "(" belongs to the call
                if tokens[index + 1].kind == ")":
                    self.fail(f"function {token.text!r} takes 1 argument, got 0", token.pos)
            else:
                want_operand, after_op = self.operand(token, tokens[index - 1], after_op)
            index += 1
        self.reduce(0)
        if self.pending:
            self.fail("unclosed '('", self.pending[-1].token.pos)
        node = self.operands[0][0]
        if _depth(node) > MAX_DEPTH:
            self.fail(f"expression tree deeper than {MAX_DEPTH} levels", 0)
        return node

    def operand(self, token: _Token, before: _Token, after_op: bool) -> tuple[bool, bool]:
        """Read a token where an operand must start; return (want_operand, after_op)."""
        if token.kind == "num":
            value = float(token.text)
            if not math.isfinite(value):
                self.fail(f"number {token.text!r} is out of range", token.pos)
            self.operands.append((Num(value), None))
        elif token.kind == "name":
            self.operands.append((Sym(token.text), None))
        elif token.kind == "(":
            self.open("paren", token)
            return True, False
        elif token.op in ("-", "+"):
            binding = _TIGHT_SIGN if after_op else _LEADING_SIGN
            self.pending.append(_Pending("sign", token, binding))
            return True, True
        elif token.kind == "end":
            self.fail(f"expression ends too early after {before.text!r}", token.pos)
        else:
            self.fail(
                f"unexpected {token.text!r} where a number, name or '(' was expected", token.pos
            )
        return False, False

    def operator(self, token: _Token) -> tuple[bool, bool]:
        """Read a token that follows a complete operand; return (want_operand, after_op)."""
        if token.kind == "op":
            self.reduce(_BINDING[token.op])
            built = self.operands[-1][1]
            if token.op in COMPARISONS and built in COMPARISONS:
                self.fail("comparisons do not chain; join them with .and.", token.pos)
            if token.op in LOGIC and built in LOGIC and built != token.op:
                self.fail("mixing .and. and .or. needs parentheses", token.pos)
            self.pending.append(_Pending("binary", token, _BINDING[token.op]))
            return True, True
        if token.kind in (")", ","):
            self.reduce(0)
            if token.kind == "," and (not self.pending or self.pending[-1].kind != "call"):
                self.fail("unexpected ',' outside the arguments of a function", token.pos)
            if not self.pending:
                self.fail("unmatched ')'", token.pos)
            if token.kind == ",":
                return True, False
            self.close(self.pending.pop())
            return False, False
        self.fail(f"unexpected {token.text!r} where an operator was expected", token.pos)

    def open(self, kind: str, token: _Token) -> None:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            self.fail(f"expression nested more than {MAX_DEPTH} levels deep", token.pos)
        self.pending.append(_Pending(kind, token, base=len(self.operands)))

    def close(self, opening: _Pending) -> None:
        self.nesting -= 1
        if opening.kind == "paren":
            self.operands[-1] = (self.operands[-1][0], None)
            return
        name = opening.token
        args = tuple(node for node, _ in self.operands[opening.base :])
        del self.operands[opening.base :]
        if len(args) != 1:
            self.fail(f"function {name.text!r} takes 1 argument, got {len(args)}", name.pos)
        self.operands.append((Call(name.text, args), None))

    def reduce(self, binding: int) -> None:
        """Apply pending operators that bind at least as tightly as ``binding``."""
        while self.pending and self.pending[-1].kind in ("binary", "sign"):
            if self.pending[-1].binding < binding:
                break
            entry = self.pending.pop()
            if entry.kind == "binary":
                (left, _), (right, _) = self.operands[-2:]
                self.operands[-2:] = [(Binary(entry.token.op, left, right), entry.token.op)]
            else:
                operand = self.operands.pop()[0]
                node = Unary("-", operand) if entry.token.op == "-" else operand
                self.operands.append((node, None))


def parse(text: str, *, where: str = "", allow_internal: bool = False) -> Node:
    """Read LEMS expression text into a tree.

    Parameters
    ----------
    text : str
        The expression, e.g. ``"rate * exp((v - midpoint)/scale)"``.
    where : str, optional
        Context (file, element, attribute) prefixed to error messages.
    allow_internal : bool, optional
        Also accept nml2lut's internal functions (``exprel``).

    Returns
    -------
    Node
        The expression tree.

    Raises
    ------
    ExpressionError
        Syntax error, unknown or refused function, wrong arity, text too long
        or nested too deeply.  The message quotes the text and the position.

    Examples
    --------
    >>> parse("-2^2")
    Unary(op='-', operand=Binary(op='^', left=Num(value=2.0), right=Num(value=2.0)))
    >>> parse("x .gt. 0 .and. x .lt. 1") == parse("x > 0 .and. x < 1")
    True
    """
    prefix = f"{where}: " if where else ""
    if not isinstance(text, str):
        raise ExpressionError(f"{prefix}expression must be text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"{prefix}expression of {len(text)} characters is longer than {MAX_LENGTH}: "
            f"{text[:40]!r}..."
        )
    return _Parser(text, where, allow_internal).parse()


# ---------------------------------------------------------------- tree walks
def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Cond):
        pairs = tuple(part for case in node.cases for part in case)
        return pairs if node.default is None else (*pairs, node.default)
    return ()


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree, parents before children (iterative)."""
    pending = [node]
    while pending:
        current = pending.pop()
        yield current
        pending.extend(reversed(_children(current)))


def switches(node: Node) -> list[Node]:
    """The subtrees whose sign or truth decides a branch: conditions, comparisons, ``H`` arguments.

    Where one of them flips, the expression may jump or bend.
    """
    found = []
    for current in walk(node):
        if isinstance(current, Cond):
            found.extend(condition for condition, _ in current.cases)
        elif isinstance(current, Binary) and current.op in COMPARISONS:
            found.append(current)
        elif isinstance(current, Call) and current.func in ("H", "abs"):
            found.append(Binary(">", current.args[0], Num(0.0)))
    return list(dict.fromkeys(found))


def _rebuild(node: Node, change: Callable[[Node], Node]) -> Node:
    """``node`` with ``change`` applied to each direct child."""
    if isinstance(node, Unary):
        return Unary(node.op, change(node.operand))
    if isinstance(node, Binary):
        return Binary(node.op, change(node.left), change(node.right))
    if isinstance(node, Call):
        return Call(node.func, tuple(map(change, node.args)))
    if isinstance(node, Cond):
        default = None if node.default is None else change(node.default)
        return Cond(tuple((change(c), change(v)) for c, v in node.cases), default)
    return node


def _depth(node: Node) -> int:
    # Iterative, so that it can guard the recursive walks below.
    deepest, stack = 0, [(node, 1)]
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in _children(current))
    return deepest


def _check_depth(node: Node) -> None:
    if _depth(node) > MAX_DEPTH:
        raise ExpressionError(f"expression tree deeper than {MAX_DEPTH} levels")


def free_symbols(node: Node) -> frozenset[str]:
    """The names of all `Sym` nodes in the tree.

    >>> sorted(free_symbols(parse("a * exp(b / a)")))
    ['a', 'b']
    """
    names, stack = set(), [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Sym):
            names.add(current.name)
        stack.extend(_children(current))
    return frozenset(names)


def substitute(node: Node, mapping: Mapping[str, Node]) -> Node:
    """Replace each symbol named in ``mapping`` by its subtree (not substituted again).

    >>> to_lems(substitute(parse("a + b"), {"a": parse("2*c")}))
    '((2.0) * (c)) + (b)'
    """
    _check_depth(node)

    def walk(current: Node) -> Node:
        if isinstance(current, Sym):
            return mapping.get(current.name, current)
        return _rebuild(current, walk)

    result = walk(node)
    _check_depth(result)
    return result


def fold_constants(node: Node) -> Node:
    """Replace subtrees without symbols by their value, where that value is finite.

    >>> fold_constants(parse("2 * 3 + x"))
    Binary(op='+', left=Num(value=6.0), right=Sym(name='x'))
    """
    _check_depth(node)
    return _fold(node)


def _fold(node: Node) -> Node:
    folded = _rebuild(node, _fold)
    children = _children(folded)
    if children and all(isinstance(child, Num) for child in children):
        with np.errstate(all="ignore"):
            value = float(_eval(folded, {}))
        if math.isfinite(value):  # keep 1/0 and friends visible
            return Num(value)
    return folded


# ---------------------------------------------------------------- evaluation
def _logic(func: Callable) -> Callable:
    return lambda a, b: func(a != 0, b != 0).astype(np.float64)


def _compare(func: Callable) -> Callable:
    return lambda a, b: func(a, b).astype(np.float64)


_NUMPY_BINARY = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power,
    "<": _compare(np.less), ">": _compare(np.greater), "<=": _compare(np.less_equal),
    ">=": _compare(np.greater_equal), "==": _compare(np.equal),
    "!=": _compare(np.not_equal), "and": _logic(np.logical_and), "or": _logic(np.logical_or),
}  # fmt: skip


def evaluate(node: Node, env: Mapping[str, float | np.ndarray]) -> np.ndarray:
    """Evaluate the tree on numpy arrays.

    Comparisons and logic give 0.0 or 1.0; any nonzero number counts as true.
    Invalid operations give NaN or inf silently (``np.errstate(all="ignore")``).

    Parameters
    ----------
    node : Node
        The expression.
    env : mapping of str to float or array
        A value for every symbol; arrays broadcast against each other.

    Returns
    -------
    numpy.ndarray
        float64, of the broadcast shape of all values in ``env``.

    Raises
    ------
    ExpressionError
        A symbol has no value in ``env``, or an unknown function.

    Examples
    --------
    >>> evaluate(parse("H(x)"), {"x": np.array([-1.0, 0.0, 2.0])})
    array([0. , 0.5, 1. ])
    """
    _check_depth(node)
    with np.errstate(all="ignore"):
        result = np.asarray(_eval(node, env), dtype=np.float64)
    shape = np.broadcast_shapes(result.shape, *(np.shape(value) for value in env.values()))
    return np.array(np.broadcast_to(result, shape), dtype=np.float64)


def _eval(node: Node, env: Mapping[str, float | np.ndarray]) -> np.ndarray:
    if isinstance(node, Num):
        return np.float64(node.value)
    if isinstance(node, Sym):
        if node.name not in env:
            raise ExpressionError(f"symbol {node.name!r} has no value")
        return np.asarray(env[node.name], dtype=np.float64)
    if isinstance(node, Unary):
        value = _eval(node.operand, env)
        if node.op == "not":
            return (value == 0).astype(np.float64)
        return np.negative(value) if node.op == "-" else value
    if isinstance(node, Binary):
        return _NUMPY_BINARY[node.op](_eval(node.left, env), _eval(node.right, env))
    if isinstance(node, Call):
        return _call_function(node).numpy(_eval(node.args[0], env))
    conditions = [_eval(condition, env) != 0 for condition, _ in node.cases]
    values = [_eval(value, env) for _, value in node.cases]
    default = np.float64(np.nan) if node.default is None else _eval(node.default, env)
    if not conditions:
        return default
    *arrays, default = np.broadcast_arrays(*conditions, *values, default)
    return np.select(arrays[: len(conditions)], arrays[len(conditions) :], default)


# ---------------------------------------------------------------- rendering
def _is_boolean(node: Node) -> bool:
    if isinstance(node, Binary):
        return node.op in COMPARISONS or node.op in LOGIC
    return isinstance(node, Unary) and node.op == "not"


def _number_text(value: float) -> str:
    if not math.isfinite(value):
        raise ExpressionError(f"cannot write the non-finite number {value!r} as text")
    return repr(float(value))


#: Brian2 name of the IEEE division used inside the branches of a `Cond` (see nml2lut.lookup).
DIVIDE_FUNCTION_NAME = "nml2lut_divide"


def to_brian2(node: Node, symbols: Mapping[str, str]) -> str:
    """Render the tree as a Brian2 expression over plain floats.

    Every operand is parenthesised, so no precedence can be misread; ``^``
    becomes ``**``; a comparison used as a number is wrapped in ``int(...)``;
    a `Cond` becomes nested ``nml2lut_where(condition, value, otherwise)``
    calls and must have a default.

    Parameters
    ----------
    node : Node
        The expression.
    symbols : mapping of str to str
        Brian2 text for every symbol, e.g. ``{"v": "(v/volt)"}``.

    Raises
    ------
    ExpressionError
        A symbol missing from ``symbols``, a non-finite number or constant
        part (``log(-1)``), a `Cond` without default, or a function Brian2
        lacks (``factorial``).

    Examples
    --------
    >>> to_brian2(parse("2*-a^2"), {"a": "a"})
    '(2.0) * ((-(a)) ** (2.0))'
    >>> to_brian2(parse("x .gt. 0"), {"x": "x"})
    'int((x) > (0.0))'
    """
    _check_depth(node)
    # Brian2 simplifies constant parts symbolically, and turns log(-1) into a
    # bare "nan" its code generators cannot compile: refuse such parts here.
    stack = [fold_constants(node)]
    while stack:
        part = stack.pop()
        children = _children(part)
        if children and all(isinstance(child, Num) for child in children):
            raise ExpressionError(f"constant part {_show(part)} has no finite value")
        stack.extend(children)
    return _brian2(node, symbols, as_boolean=False)


def _brian2(node: Node, symbols: Mapping[str, str], as_boolean: bool, guarded: bool = False) -> str:
    def sub(child: Node, boolean: bool = False) -> str:
        return _brian2(child, symbols, boolean, guarded or isinstance(node, Cond))

    if isinstance(node, Num):
        text = _number_text(node.value)
    elif isinstance(node, Sym):
        if node.name not in symbols:
            raise ExpressionError(f"symbol {node.name!r} has no Brian2 name")
        text = symbols[node.name]
    elif isinstance(node, Unary):
        text = f"{'not ' if node.op == 'not' else node.op}({sub(node.operand, node.op == 'not')})"
    elif isinstance(node, Binary):
        boolean = node.op in LOGIC
        op = "**" if node.op == "^" else node.op
        if op == "/" and guarded:
            # Both branches of a case are computed; in Cython, whose division follows
            # Python, 0/0 in the branch not taken would raise: divide as C does.
            text = f"{DIVIDE_FUNCTION_NAME}({sub(node.left)}, {sub(node.right)})"
        else:
            text = f"({sub(node.left, boolean)}) {op} ({sub(node.right, boolean)})"
    elif isinstance(node, Call):
        text = _brian2_call(node, sub(node.args[0]) if len(node.args) == 1 else "")
    else:
        if node.default is None:
            raise ExpressionError("a conditional needs a default value to be written for Brian2")
        text = sub(node.default)
        for condition, value in reversed(node.cases):
            text = f"nml2lut_where({sub(condition, True)}, {sub(value)}, {text})"
    if _is_boolean(node) and not as_boolean:
        return f"int({text})"
    if as_boolean and not _is_boolean(node):
        return f"({text}) != 0.0"
    return text


def _brian2_call(node: Call, arg: str) -> str:
    function = _call_function(node)
    if node.func == "H":  # H(0) = 0.5 as in jLEMS; H(NaN) is 0 here but NaN in evaluate
        return f"int(({arg}) > 0.0) + 0.5 * int(({arg}) == 0.0)"
    if function.brian2 is None:
        raise ExpressionError(f"function {node.func!r} has no Brian2 equivalent")
    return f"{function.brian2}({arg})"


def to_lems(node: Node) -> str:
    """Render the tree as LEMS text, fully parenthesised, that `parse` reads back.

    ``not x`` is written ``x .eq. 0``; a `Cond` or a non-finite number has no
    LEMS text and raises `ExpressionError`.

    >>> to_lems(parse("-a^2 .gt. b"))
    '(-((a) ^ (2.0))) .gt. (b)'
    """
    _check_depth(node)
    return _lems(node, strict=True)


def _lems(node: Node, strict: bool) -> str:
    if isinstance(node, Num):
        return _number_text(node.value) if strict else repr(node.value)
    if isinstance(node, Sym):
        return node.name
    if isinstance(node, Unary):
        operand = _lems(node.operand, strict)
        return f"({operand}) .eq. 0.0" if node.op == "not" else f"{node.op}({operand})"
    if isinstance(node, Binary):
        op = _LEMS_OPS[node.op]
        return f"({_lems(node.left, strict)}) {op} ({_lems(node.right, strict)})"
    if isinstance(node, Call):
        return f"{node.func}({', '.join(_lems(arg, strict) for arg in node.args)})"
    if strict:
        raise ExpressionError("a conditional has no LEMS expression text")
    return "<conditional>"


def _show(node: Node) -> str:
    text = _lems(node, strict=False)
    return repr(text if len(text) <= 100 else text[:97] + "...")


# ---------------------------------------------------------------- dimensions
def dimension_of(node: Node, dims: Mapping[str, Dimension]) -> Dimension:
    """The dimension of the expression, checking every operation on the way.

    A literal 0 may stand for any dimension in ``+``, ``-``, comparisons and
    conditional values, as in jLEMS.

    Raises
    ------
    UnitError
        Dimensions that must agree do not, a function argument or exponent
        is not dimensionless, or a dimensioned base has a non-constant power.
    ExpressionError
        A symbol missing from ``dims``, or an unknown function.

    Examples
    --------
    >>> from nml2lut.units import DIMENSIONS
    >>> d = dimension_of(parse("g * (v - e)"), {"g": DIMENSIONS["conductance"],
    ...     "v": DIMENSIONS["voltage"], "e": DIMENSIONS["voltage"]})
    >>> dimension_name(d)
    'current'
    """
    _check_depth(node)
    return _dim(node, dims)


def _dim(node: Node, dims: Mapping[str, Dimension]) -> Dimension:
    if isinstance(node, Num):
        return DIMENSIONLESS
    if isinstance(node, Sym):
        if node.name not in dims:
            raise ExpressionError(f"symbol {node.name!r} has no known dimension")
        return dims[node.name]
    if isinstance(node, Unary):
        inner = _dim(node.operand, dims)
        return DIMENSIONLESS if node.op == "not" else inner
    if isinstance(node, Binary):
        return _binary_dim(node, _dim(node.left, dims), _dim(node.right, dims))
    if isinstance(node, Call):
        return _call_dim(node, _dim(node.args[0], dims) if node.args else DIMENSIONLESS)
    for condition, _ in node.cases:
        _dim(condition, dims)
    values = [value for _, value in node.cases] + [node.default] * (node.default is not None)
    return _agree(node, [(value, _dim(value, dims)) for value in values])


def _is_zero(node: Node) -> bool:
    if isinstance(node, Unary) and node.op in "+-":
        return _is_zero(node.operand)
    return isinstance(node, Num) and node.value == 0.0


def _agree(node: Node, parts: list[tuple[Node, Dimension]]) -> Dimension:
    """The common dimension of ``parts``; literal zeros fit any dimension."""
    dimensioned = [(part, dim) for part, dim in parts if not _is_zero(part)]
    if not dimensioned:
        return DIMENSIONLESS
    first, want = dimensioned[0]
    for part, dim in dimensioned[1:]:
        if dim != want:
            raise UnitError(
                f"dimensions do not agree in {_show(node)}: {dimension_name(want)} "
                f"({_show(first)}) against {dimension_name(dim)} ({_show(part)})"
            )
    return want


def _binary_dim(node: Binary, left: Dimension, right: Dimension) -> Dimension:
    if node.op == "*":
        return left * right
    if node.op == "/":
        return left / right
    if node.op in LOGIC:
        return DIMENSIONLESS
    if node.op != "^":
        common = _agree(node, [(node.left, left), (node.right, right)])
        return DIMENSIONLESS if node.op in COMPARISONS else common
    if not right.is_dimensionless:
        raise UnitError(f"exponent in {_show(node)} is a {dimension_name(right)}, not a number")
    if left.is_dimensionless:
        return DIMENSIONLESS
    exponent = fold_constants(node.right)
    if not isinstance(exponent, Num):
        raise UnitError(
            f"base in {_show(node)} is a {dimension_name(left)}, so its exponent must be constant"
        )
    try:
        return left.power(exponent.value)
    except UnitError as err:
        raise UnitError(f"{err} in {_show(node)}") from err


def _call_dim(node: Call, arg: Dimension) -> Dimension:
    function = _call_function(node)
    if function.dims == "same":
        return arg
    if function.dims == "sqrt":
        try:
            return arg.power(0.5)
        except UnitError as err:
            raise UnitError(f"{err} in {_show(node)}") from err
    if not arg.is_dimensionless:
        raise UnitError(
            f"argument of {node.func} in {_show(node)} is a {dimension_name(arg)}; "
            "it must be dimensionless"
        )
    return DIMENSIONLESS
