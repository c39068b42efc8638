"""Referring expressions from templates, each checked to pick out exactly one object.

A sentence is a template with a *description* of the target filled in: any subset of the
target's attributes in the fixed order size, texture, colour, shape ("the small striped red
circle"; "shape" stands in when the shape is left out: "the red shape", "the shape moving up").
Relation templates also describe a *reference* object, by the fewest attributes that single it
out in the clip. A filled template is kept only if (see :mod:`.facts`) the target satisfies it
and every other object matching the description clearly does not. Descriptions that need the
template's phrase to be unique are preferred, so motion, relation and time words carry
information rather than decorate an already unique "the red circle".
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, NamedTuple

import numpy as np

from .attributes import COLOURS, EXPRESSION_TYPES, SHAPES, SIZES, TEXTURES
from .facts import ObjectFacts, SceneFacts

__all__ = ["Caption", "Expression", "TEMPLATES", "Template", "describe", "parse_caption", "sample_expressions", "vocabulary"]

ATTRIBUTE_ORDER: tuple[str, ...] = ("size", "texture", "colour", "shape")
_SUBSETS: tuple[tuple[str, ...], ...] = tuple(
    keys for r in range(len(ATTRIBUTE_ORDER) + 1) for keys in itertools.combinations(ATTRIBUTE_ORDER, r)
)


class Expression(NamedTuple):
    """One sentence, its type (:data:`.attributes.EXPRESSION_TYPES`) and the id of the object it names.

    ``phrase_needed``: the target's description alone matches other objects of the clip too, so
    only the template's phrase (motion, relation, time) singles it out; always False for
    appearance sentences, which have no phrase.
    """

    text: str
    type: str
    target_id: int
    phrase_needed: bool = False


@dataclass(frozen=True)
class Template:
    """``text`` has a ``{target}`` slot and, for relations, a ``{reference}`` slot."""

    name: str
    type: str
    text: str


TEMPLATES: tuple[Template, ...] = (
    Template("appearance", "appearance", "the {target}"),
    Template("left_of", "relation", "the {target} left of the {reference}"),
    Template("right_of", "relation", "the {target} right of the {reference}"),
    Template("above", "relation", "the {target} above the {reference}"),
    Template("below", "relation", "the {target} below the {reference}"),
    Template("moving_up", "motion", "the {target} moving up"),
    Template("moving_down", "motion", "the {target} moving down"),
    Template("moving_left", "motion", "the {target} moving left"),
    Template("moving_right", "motion", "the {target} moving right"),
    Template("bounces", "motion", "the {target} that bounces"),
    Template("still", "motion", "the {target} that stays still"),
    Template("appears_later", "time", "the {target} that appears later"),
    Template("leaves", "time", "the {target} that leaves the frame"),
)
_RELATION_WORDS = {"left_of": "left of", "right_of": "right of", "above": "above", "below": "below"}


def vocabulary() -> tuple[str, ...]:
    """Every word a generated expression can contain, sorted."""
    words = {"shape", *COLOURS, *SHAPES, *SIZES, *TEXTURES}
    for t in TEMPLATES:
        words.update(w for w in t.text.split() if not w.startswith("{"))
    return tuple(sorted(words))


def describe(attributes: dict[str, str], keys: tuple[str, ...]) -> str:
    """The description of an object by the attributes in ``keys``, e.g. "small red shape"."""
    words = [attributes[k] for k in ATTRIBUTE_ORDER if k in keys]
    return " ".join(words if "shape" in keys else [*words, "shape"])


class Caption(NamedTuple):
    """What a generated sentence says: its template and the attributes it names of the target and,
    for relations, of the reference (``{}`` without one); a left-out attribute is absent."""

    template: Template
    target: dict[str, str]
    reference: dict[str, str]


def _description_pattern(prefix: str) -> str:
    """A regex for :func:`describe`'s output, its attributes in named groups ``prefix + key``."""
    words = {"size": SIZES, "texture": TEXTURES, "colour": COLOURS}
    parts = [f"(?:(?P<{prefix}{key}>{'|'.join(words[key])}) )?" for key in ATTRIBUTE_ORDER if key != "shape"]
    return "".join(parts) + f"(?:(?P<{prefix}shape>{'|'.join(SHAPES)})|shape)"


@lru_cache(maxsize=None)
def _template_patterns() -> tuple[tuple[Template, re.Pattern[str]], ...]:
    return tuple(
        (t, re.compile(re.escape(t.text).replace(r"\{target\}", _description_pattern("t_")).replace(r"\{reference\}", _description_pattern("r_"))))
        for t in TEMPLATES
    )


def parse_caption(text: str) -> Caption:
    """The template and attributes of a sentence this generator writes (or its left/right mirror,
    as a flip augmentation leaves it); ValueError for any other text."""
    sentence = " ".join(text.lower().split())
    for template, pattern in _template_patterns():
        match = pattern.fullmatch(sentence)
        if match:
            named = {k: v for k, v in match.groupdict().items() if v is not None}
            return Caption(template, {k[2:]: v for k, v in named.items() if k.startswith("t_")},
                           {k[2:]: v for k, v in named.items() if k.startswith("r_")})
    raise ValueError(f"{text!r} is not a sentence of the synthetic benchmark's templates")


def _choose(rng: np.random.Generator, options: list[tuple[tuple[str, ...], float]]) -> tuple[str, ...] | None:
    if not options:
        return None
    weights = np.array([w for _, w in options])
    return options[int(rng.choice(len(options), p=weights / weights.sum()))][0]


def _target_keys(
    rng: np.random.Generator, facts: SceneFacts, target: ObjectFacts, holds: Callable[[ObjectFacts], bool | None]
) -> tuple[str, ...] | None:
    """Attributes describing ``target`` so that it is the only matching object that ``holds``."""
    if holds(target) is not True:
        return None
    options = []
    for keys in _SUBSETS:
        description = {k: target.attributes[k] for k in keys}
        candidates = [o for o in facts.objects if facts.matches(o, description)]
        if all(holds(o) is False for o in candidates if o is not target):
            needed = len(candidates) > 1
            options.append((keys, (3.0 if needed else 1.0) / (1 + len(keys))))
    return _choose(rng, options)


def _appearance_keys(
    rng: np.random.Generator, facts: SceneFacts, target: ObjectFacts, shortest: bool = False
) -> tuple[str, ...] | None:
    """Attributes that no other object shares; with ``shortest``, only the fewest that do."""
    options = []
    for keys in _SUBSETS[1:]:
        description = {k: target.attributes[k] for k in keys}
        if sum(facts.matches(o, description) for o in facts.objects) == 1:
            options.append((keys, (2.0 if "shape" in keys else 1.0) / len(keys)))
    if shortest and options:
        fewest = min(len(k) for k, _ in options)
        options = [(k, w) for k, w in options if len(k) == fewest]
    return _choose(rng, options)


def _predicate(facts: SceneFacts, name: str) -> Callable[[ObjectFacts], bool | None]:
    if name.startswith("moving_"):
        direction = name.removeprefix("moving_")
        return lambda o: facts.moving(o, direction)
    return {"bounces": facts.bounces, "still": facts.still, "appears_later": facts.appears_later, "leaves": facts.leaves}[name]


def _shared_description(facts: SceneFacts, target: ObjectFacts, keys: tuple[str, ...]) -> bool:
    """Whether another object of the clip matches the target's description by ``keys``."""
    description = {k: target.attributes[k] for k in keys}
    return sum(facts.matches(o, description) for o in facts.objects) > 1


def _candidates(rng: np.random.Generator, facts: SceneFacts) -> list[Expression]:
    """At most one expression per (target, template); at most one relation per target."""
    found: list[Expression] = []
    references = {}
    for ref in facts.objects:
        keys = _appearance_keys(rng, facts, ref, shortest=True)
        if keys is not None and facts.visible(ref)[0]:
            references[ref.object_id] = describe(ref.attributes, keys)
    for target in facts.objects:
        for template in TEMPLATES:
            if template.type == "relation":
                continue
            if template.type == "appearance":
                keys = _appearance_keys(rng, facts, target)
            else:
                keys = _target_keys(rng, facts, target, _predicate(facts, template.name))
            if keys is not None:
                text = template.text.format(target=describe(target.attributes, keys))
                needed = template.type != "appearance" and _shared_description(facts, target, keys)
                found.append(Expression(text, template.type, target.object_id, needed))
        relations = [(t, r) for t in TEMPLATES if t.type == "relation" for r in references if r != target.object_id]
        for k in rng.permutation(len(relations)):
            template, ref_id = relations[int(k)]
            ref, word = facts.by_id(ref_id), _RELATION_WORDS[template.name]
            keys = _target_keys(rng, facts, target, lambda o: facts.relation(o, ref, word))
            if keys is not None:
                text = template.text.format(target=describe(target.attributes, keys), reference=references[ref_id])
                found.append(Expression(text, template.type, target.object_id, _shared_description(facts, target, keys)))
                break
    return found


def sample_expressions(rng: np.random.Generator, facts: SceneFacts, count: int) -> list[Expression]:
    """Up to ``count`` distinct expressions, spread over types first and targets second.

    Types are visited round-robin in a random order; each visit takes the expression of that type
    whose target has been used least so far.
    """
    pools: dict[str, list[Expression]] = {t: [] for t in EXPRESSION_TYPES}
    for e in _candidates(rng, facts):
        pools[e.type].append(e)
    chosen: list[Expression] = []
    used: dict[int, int] = {}
    order = [EXPRESSION_TYPES[int(i)] for i in rng.permutation(len(EXPRESSION_TYPES))]
    while len(chosen) < count and any(pools.values()):
        for kind in order:
            pool = pools[kind]
            if not pool or len(chosen) >= count:
                continue
            fewest = min(used.get(e.target_id, 0) for e in pool)
            best = [e for e in pool if used.get(e.target_id, 0) == fewest]
            pick = best[int(rng.integers(len(best)))]
            pool.remove(pick)
            if all(pick.text != c.text for c in chosen):
                chosen.append(pick)
                used[pick.target_id] = used.get(pick.target_id, 0) + 1
    return chosen
