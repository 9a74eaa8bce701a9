"""Arithmetic, exactly: "what is 17 times 23", "2.5 plus 1", "5 squared", "square root of 144".

Spoken operators are read into a token list (numbers, + - * / % **, sqrt, parentheses and
nothing else); the tokens are parsed with `ast.parse` and the tree is walked over a whitelist
of node types with exact `Fraction` arithmetic. Nothing is ever passed to `eval`, and a tree
with any other node (a name, an attribute, a call other than sqrt/cbrt) is refused.
"""

from __future__ import annotations

import ast
import math
import re
from fractions import Fraction

from .base import SkillReply

_PREFIX = re.compile(r"(?:(?:what(?: is| a| as| are)?|how much is|calculate|compute|work out|solve|what do you get for)\s+)?"
                     r"(?:the (?:value|result|answer) (?:of|to) )?(?P<expr>.+?)(?:\s+(?:equals?|is)(?: to)?)?")
_TOKEN = re.compile(r"\s*(?:"
                    r"(?P<num>\d+(?:\.\d+)?)"
                    r"|(?P<fn>(?:the )?(?:square|cube) root of)"
                    r"|(?P<neg>negative)"
                    r"|(?P<op>plus|\+|added to|minus|-|−|take away|times|multiplied by|x|×|\*\*|\*"
                    r"|divided by|over|/|÷|to the power of|raised to the power of|raised to|to the|\^"
                    r"|squared|cubed|modulo|mod|percent of|percent|%)"
                    r"|(?P<paren>[()]))")
_OPS = {"plus": "+", "+": "+", "added to": "+", "minus": "-", "-": "-", "−": "-", "take away": "-",
        "times": "*", "multiplied by": "*", "x": "*", "×": "*", "*": "*", "divided by": "/", "over": "/",
        "/": "/", "÷": "/", "to the power of": "**", "raised to the power of": "**", "raised to": "**",
        "to the": "**", "^": "**", "**": "**", "squared": "**2", "cubed": "**3", "modulo": "%", "mod": "%",
        "percent of": "/100*", "percent": "/100", "%": "/100"}
_WORDS = {"+": "plus", "-": "minus", "*": "times", "/": "divided by", "**": "to the power of", "**2": "squared",
          "**3": "cubed", "%": "modulo", "/100*": "percent of", "/100": "percent", "sqrt": "the square root of",
          "cbrt": "the cube root of", "neg": "minus"}
_MAX_EXPONENT = 1000
_MAX_DIGITS = 30


class NotArithmetic(ValueError):
    """The text is not an arithmetic expression this skill computes."""


def tokens(expr: str) -> list[str]:
    """Python-syntax tokens of a spoken expression; NotArithmetic if any word is not arithmetic."""
    out: list[str] = []
    roots = 0  # root functions waiting for their operand to close
    pos = 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if not match or match.end() == pos:
            raise NotArithmetic(f"not arithmetic at {expr[pos:]!r}")
        pos = match.end()
        kind, text = match.lastgroup, match.group(match.lastgroup)
        if kind == "num":
            out.append(text)
            out.extend(")" * roots)
            roots = 0
        elif kind == "fn":
            out += ["sqrt" if "square" in text else "cbrt", "("]
            roots += 1
        elif kind == "neg":
            out.append("-")
        elif kind == "op":
            out.append(_OPS[text])
        else:
            out.append(text)
    if roots or not any(t in _WORDS or t in ("sqrt", "cbrt") for t in out):
        raise NotArithmetic("no operator")
    return out


def evaluate(source: str) -> Fraction | float:
    """The value of a Python-syntax arithmetic expression, walking its AST over a whitelist."""
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as e:
        raise NotArithmetic(f"not an expression: {source!r}") from e
    return _value(tree.body)


def _value(node: ast.AST) -> Fraction | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _value(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Mod, ast.Pow)):
        return _binary(node.op, _value(node.left), _value(node.right))
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("sqrt", "cbrt")
            and len(node.args) == 1 and not node.keywords):
        return _root(_value(node.args[0]), 2 if node.func.id == "sqrt" else 3)
    raise NotArithmetic(f"{type(node).__name__} is not arithmetic")


def _binary(op: ast.operator, a, b):
    if isinstance(op, ast.Add):
        return a + b
    if isinstance(op, ast.Sub):
        return a - b
    if isinstance(op, ast.Mult):
        return a * b
    if isinstance(op, (ast.Div, ast.Mod)) and b == 0:
        raise ZeroDivisionError
    if isinstance(op, ast.Div):
        return a / b if isinstance(a, Fraction) and isinstance(b, Fraction) else float(a) / float(b)
    if isinstance(op, ast.Mod):
        return a % b
    if isinstance(b, Fraction) and b.denominator == 1 and isinstance(a, Fraction):
        if abs(b) > _MAX_EXPONENT or (a != 0 and abs(b) * math.log10(max(abs(a), 1 / abs(a))) > _MAX_DIGITS * 2):
            raise OverflowError
        return a ** int(b)
    if a < 0:
        raise ValueError("a fractional power of a negative number")
    return float(a) ** float(b)


def _root(x, n: int):
    if n == 2 and x < 0:
        raise ValueError("the square root of a negative number")
    if isinstance(x, Fraction):
        r = [round(abs(p) ** (1 / n)) for p in (x.numerator, x.denominator)]
        if r[0] ** n == abs(x.numerator) and r[1] ** n == x.denominator:
            return Fraction(r[0], r[1]) * (-1 if x < 0 else 1)
    return math.copysign(abs(float(x)) ** (1 / n), float(x))


def say_number(x: Fraction | float) -> str:
    """Digits that Piper reads well: integers exact, others to at most 4 decimals."""
    if isinstance(x, Fraction) and x.denominator == 1:
        text = str(abs(x.numerator))
    else:
        text = f"{abs(float(x)):.4f}".rstrip("0").rstrip(".")
    if len(text.split(".")[0]) > _MAX_DIGITS:
        raise OverflowError
    return ("minus " if x < 0 and text != "0" else "") + text


def say_tokens(toks: list[str]) -> str:
    return " ".join(_WORDS.get(t, t) for t in toks if t not in ("(", ")"))


class ArithmeticSkill:
    name = "arithmetic"
    description = "do arithmetic like 17 times 23"

    def __init__(self, context) -> None:
        self.context = context

    def answer(self, text: str) -> SkillReply | None:
        match = _PREFIX.fullmatch(text)
        if not match:
            return None
        try:
            toks = tokens(match.group("expr"))
            value = evaluate(" ".join(toks))
            result = say_number(value)
            exact = isinstance(value, Fraction) and Fraction(result.replace("minus ", "-")) == value
            question = say_tokens(toks)
            return SkillReply(f"{question[0].upper()}{question[1:]} is {'' if exact else 'about '}{result}.")
        except NotArithmetic:
            return None
        except ZeroDivisionError:
            return SkillReply("You can't divide by zero.")
        except OverflowError:
            return SkillReply("That number is too big for me to say.")
        except ValueError as e:  # a root or power of a negative number
            return SkillReply(f"I can't work out {e}.")

    def close(self) -> None:
        pass
