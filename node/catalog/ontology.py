"""An ontology subset: term ids, labels and the is_a hierarchy, for filters with descendants.

Beacon v2 ontology filters match a term and, unless `includeDescendantTerms` is false, every
term below it (Beacon v2 framework, filtering terms: "includeDescendantTerms" defaults to
true). Descendants come from a loaded hierarchy, never from terms an operator preloads:
the node ships a subset (`data/ontology.json`) and `fednode metadata load --ontology
FILE.obo|FILE.json` adds more.

File formats: OBO 1.4 `[Term]` stanzas (`id`, `name`, `is_a`, `is_obsolete`), or JSON
`{"terms": [{"id", "label", "is_a": [...]}]}` (the shipped format).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from node.errors import IngestError

__all__ = ["Ontology", "Term", "load_ontology_file"]


@dataclass(frozen=True, slots=True)
class Term:
    id: str
    label: str | None
    parents: tuple[str, ...] = ()


class Ontology:
    """An immutable is_a hierarchy. Unknown ids have no parents and no descendants."""

    def __init__(self, terms: Iterable[Term]) -> None:
        self._terms: dict[str, Term] = {}
        for term in terms:
            self._terms[term.id] = _merge(self._terms.get(term.id), term)
        self._children: dict[str, set[str]] = {}
        for term in self._terms.values():
            for parent in term.parents:
                self._children.setdefault(parent, set()).add(term.id)

    @classmethod
    def shipped(cls) -> Ontology:
        """The subset packaged with the node."""
        text = resources.files("node.catalog").joinpath("data/ontology.json").read_text()
        return cls(_terms_from_json(json.loads(text), "node/catalog/data/ontology.json"))

    def merged(self, other: Ontology) -> Ontology:
        return Ontology([*self._terms.values(), *other._terms.values()])

    def __contains__(self, term_id: object) -> bool:
        return term_id in self._terms

    def __iter__(self) -> Iterator[Term]:
        return iter(self._terms.values())

    def __len__(self) -> int:
        return len(self._terms)

    def label(self, term_id: str) -> str | None:
        term = self._terms.get(term_id)
        return term.label if term else None

    def descendants(self, term_id: str) -> frozenset[str]:
        """The term and every term below it (is_a, transitively; cycles are tolerated)."""
        return frozenset(_closure(term_id, self._children))

    def ancestors(self, term_id: str) -> frozenset[str]:
        """The term and every term above it."""
        parents = {t.id: set(t.parents) for t in self._terms.values()}
        return frozenset(_closure(term_id, parents))

    def to_json(self) -> dict[str, Any]:
        return {
            "terms": [
                {"id": t.id, "label": t.label, "is_a": list(t.parents)}
                for t in self._terms.values()
            ]
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], *, source: str = "<ontology>") -> Ontology:
        return cls(_terms_from_json(doc, source))


def _merge(old: Term | None, new: Term) -> Term:
    if old is None:
        return new
    parents = tuple(dict.fromkeys((*old.parents, *new.parents)))
    return Term(new.id, new.label or old.label, parents)


def _closure(start: str, edges: Mapping[str, set[str]]) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        for nxt in edges.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def load_ontology_file(path: Path) -> Ontology:
    """Read an OBO or JSON ontology file; errors name the file (and line for OBO)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IngestError(f"cannot read ontology file: {exc}", path=str(path)) from exc
    if path.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IngestError(f"not JSON: {exc.msg}", path=str(path), line=exc.lineno) from exc
        return Ontology(_terms_from_json(doc, str(path)))
    return Ontology(_terms_from_obo(text, str(path)))


def _terms_from_json(doc: Any, source: str) -> list[Term]:
    if not isinstance(doc, dict) or not isinstance(doc.get("terms"), list):
        raise IngestError('expected an object with a "terms" list', path=source)
    terms = []
    for index, raw in enumerate(doc["terms"]):
        ok = isinstance(raw, dict) and _is_curie(raw.get("id"))
        parents = raw.get("is_a", []) if isinstance(raw, dict) else None
        if not ok or not isinstance(parents, list) or not all(map(_is_curie, parents)):
            raise IngestError(f"term #{index}: needs a CURIE `id` and `is_a` CURIEs", path=source)
        label = raw.get("label")
        terms.append(Term(raw["id"], label if isinstance(label, str) else None, tuple(parents)))
    return terms


def _terms_from_obo(text: str, source: str) -> list[Term]:
    terms: list[Term] = []
    stanza: dict[str, Any] | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line.startswith("["):
            _close_stanza(stanza, terms)
            stanza = {"is_a": []} if line == "[Term]" else None
            continue
        if stanza is None or not line or line.startswith("!"):
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise IngestError(f"expected `tag: value`, got {line[:60]!r}", path=source, line=lineno)
        _obo_tag(stanza, key.strip(), _strip_comment(value), source, lineno)
    _close_stanza(stanza, terms)
    if not terms:
        raise IngestError("no [Term] stanzas found (OBO) ", path=source)
    return terms


def _obo_tag(stanza: dict[str, Any], key: str, value: str, source: str, lineno: int) -> None:
    if key in ("id", "is_a") and not _is_curie(value):
        raise IngestError(f"{key} is not a CURIE: {value!r}", path=source, line=lineno)
    if key == "is_a":
        stanza["is_a"].append(value)
    elif key in ("id", "name", "is_obsolete"):
        stanza[key] = value


def _close_stanza(stanza: dict[str, Any] | None, terms: list[Term]) -> None:
    if stanza and "id" in stanza and stanza.get("is_obsolete") != "true":
        terms.append(Term(stanza["id"], stanza.get("name"), tuple(stanza["is_a"])))


def _strip_comment(value: str) -> str:
    # OBO 1.4 §Trailing modifiers and comments: " ! label" after a value is a comment.
    return value.split(" !", 1)[0].strip()


def _is_curie(value: object) -> bool:
    if not isinstance(value, str):
        return False
    prefix, sep, local = value.partition(":")
    return bool(sep and prefix and local) and " " not in value
