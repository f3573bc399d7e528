"""Values reach a resource template's manifest as data: every placeholder is a JSON-quoted Argo expression.

Argo fills `{{...}}` into a resource template's manifest as plain text before it parses the YAML, so a
parameter or step output written there as `'{{workflow.parameters.x}}'` can end its string and add keys
(a quote, a newline, then `securityContext: {privileged: true}`). Here a string holding placeholders
becomes one expression tag, `{{=toJson('literal' + workflow.parameters['x'])}}`, which Argo replaces by a
JSON string: a double-quoted YAML scalar that no value can end. A replica count becomes
`{{=asInt(workflow.parameters['n'])}}`, which is a number or makes Argo refuse the workflow.

`fill` does Argo's part for the strict checks: it evaluates exactly the expressions written here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.kubernetes import yamltext
from trainflow.workflows.kubernetes.yamltext import Raw

_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
# Argo resolves these variables in a resource template; an input parameter is fed by the caller.
_ROOTS = ("workflow.parameters.", "inputs.parameters.")
_GLOBALS = ("workflow.name", "workflow.namespace", "workflow.uid")
# What a literal may hold unescaped: never a quote, a backslash, a brace (it could close the tag), '?'
# (Argo reads an expression holding '?' and ':' as a ternary and splits it at the '?'), nor ' + '.
_PLAIN = re.compile(r"[A-Za-z0-9/._=:,@%~-]")
_ESCAPE = re.compile(r"\\u([0-9a-f]{4})|\\U([0-9a-f]{8})")
_TERM = re.compile(
    r"\s*(?:'((?:[^'\\]|\\.)*)'|([a-z]+\.(?:parameters\[(?:'(?:[^'\\]|\\.)*')\]|name|namespace|uid)))\s*"
)
_TO_JSON = re.compile(r"=toJson\((.*)\)", re.DOTALL)
_AS_INT = re.compile(r"=asInt\((.*)\)", re.DOTALL)


def literal(text: str) -> str:
    """`text` as a single-quoted expr string, escaping everything that is not plainly safe."""
    return "'%s'" % "".join(c if _PLAIN.fullmatch(c) else _escape(c) for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    return "\\u%04x" % code if code <= 0xFFFF else "\\U%08x" % code


def variable(tag: str) -> str:
    """A simple tag's variable as an expression: `workflow.parameters.a-b` -> `workflow.parameters['a-b']`."""
    name = tag.strip()
    for root in _ROOTS:
        if name.startswith(root):
            return f"{root[:-1]}[{literal(name[len(root) :])}]"
    if name in _GLOBALS:
        return name
    raise WorkflowError(f"a manifest holds the placeholder {{{{{name}}}}}, which has no value in a resource template")


def quoted(text: str) -> str:
    """`text`, holding placeholders, as one expression tag whose value is the whole string JSON-quoted."""
    terms, pos = [], 0
    for match in _TAG.finditer(text):
        if match.group(1).startswith("="):
            raise WorkflowError(f"a manifest string holds an expression tag: {text[:80]}")
        if match.start() > pos:
            terms.append(literal(text[pos : match.start()]))
        terms.append(variable(match.group(1)))
        pos = match.end()
    if pos < len(text):
        terms.append(literal(text[pos:]))
    return "{{=toJson(%s)}}" % " + ".join(terms)


def number(placeholder: str) -> Raw:
    """A count given by one placeholder as an expression Argo fills in as a whole number (or refuses)."""
    match = _TAG.fullmatch(placeholder.strip())
    if match is None or match.group(1).startswith("="):
        raise WorkflowError(f"a replica count must be a number or one parameter, not '{placeholder}'")
    return Raw("{{=asInt(%s)}}" % variable(match.group(1)))


def as_data(obj: Any) -> Any:
    """A manifest object with every placeholder turned into a quoted expression (see the module docstring)."""
    if isinstance(obj, Raw):  # a count given by one parameter (resources.Target.count)
        return number(obj)
    if isinstance(obj, str):
        return Raw(quoted(obj)) if "{{" in obj else obj
    if isinstance(obj, dict):
        for key in obj:
            if "{{" in str(key):
                raise WorkflowError(f"a manifest key holds a placeholder: {key}")
        return {key: as_data(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [as_data(item) for item in obj]
    return obj


def manifest(obj: Any) -> str:
    """The YAML text of a resource template's manifest, its placeholders as quoted expressions."""
    return yamltext.dump(as_data(obj))


def fill(text: str, lookup: Callable[[str], str | None]) -> str:
    """`text` with the tags this module writes (and simple tags) filled in as Argo would.

    `lookup` gives a variable's value (`workflow.parameters.x`) or None; a tag holding an unknown variable
    keeps it as `{{name}}` inside the filled-in string, so the manifest stays YAML.
    """

    def one(match: re.Match[str]) -> str:
        tag = match.group(1)
        to_json, as_int = _TO_JSON.fullmatch(tag), _AS_INT.fullmatch(tag)
        if to_json:
            return go_json("".join(_evaluate(t, lookup) for t in _terms(to_json.group(1))))
        if as_int:
            [term] = _terms(as_int.group(1))
            return _evaluate(term, lookup)
        value = lookup(tag.strip())
        return match.group(0) if value is None else value

    return _TAG.sub(one, text)


def go_json(text: str) -> str:
    """A JSON string as Go's json.Marshal (Argo's toJson) writes it: UTF-8 kept, <, >, & and U+2028/9 escaped."""
    return json.dumps(text, ensure_ascii=False).translate(_GO_ESCAPES)


_GO_ESCAPES = {ord(c): "\\u%04x" % ord(c) for c in "<>&\u2028\u2029"}


def _terms(expression: str) -> list[tuple[str | None, str | None]]:
    terms, pos = [], 0
    for part in expression.split(" + ") if expression else []:
        match = _TERM.fullmatch(part)
        if match is None:
            raise WorkflowError(f"cannot read the expression at {pos}: {expression[:80]}")
        terms.append((match.group(1), match.group(2)))
        pos += len(part) + 3
    return terms


def _evaluate(term: tuple[str | None, str | None], lookup: Callable[[str], str | None]) -> str:
    text, var = term
    if text is not None:
        return _unescape(text)
    assert var is not None
    root, _, rest = var.partition("[")
    name = f"{root}.{_unescape(rest[1:-2])}" if rest else root
    value = lookup(name)
    return "{{%s}}" % name if value is None else value


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)), text)


def values_of(workflow: Mapping[str, Any]) -> dict[str, str]:
    """What Argo knows of a workflow before it runs: its parameters' values, its name and namespace."""
    values = {
        f"workflow.parameters.{p['name']}": str(p.get("value", ""))
        for p in workflow["spec"].get("arguments", {}).get("parameters", [])
    }
    # Argo appends five characters to a generateName: names are checked at the length they will have.
    values["workflow.name"] = workflow["metadata"].get("name") or workflow["metadata"].get("generateName", "") + "xxxxx"
    values["workflow.namespace"] = workflow["metadata"].get("namespace", "default")
    return values
