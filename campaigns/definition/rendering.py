"""Jinja2 rendering of every message, script and letter of a campaign."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
    nodes,
    select_autoescape,
)
from jinja2.exceptions import SecurityError
from jinja2.sandbox import (
    UNSAFE_ASYNC_GENERATOR_ATTRIBUTES,
    UNSAFE_COROUTINE_ATTRIBUTES,
    UNSAFE_GENERATOR_ATTRIBUTES,
    ImmutableSandboxedEnvironment,
)

from campaigns.definition.jinja_fr import jinja_message_fr
from campaigns.definition.model import CampaignDefinition, DefinitionError
from targeting.schema import ECHELONS

MONTHS_FR = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
CHANNEL_LABELS = {
    "phone": "appel téléphonique",
    "mailbox": "message dans le compte ameli",
    "email": "courriel",
    "letter": "courrier",
}
SALUTATIONS = {"M.": "Monsieur", "Mme": "Madame"}
# A message template may start with this line to give its subject; the rest is the body.
SUBJECT_PREFIX = "Objet :"


def date_fr(d: date | None) -> str:
    """`15 juin 2026`."""
    if d is None:
        return ""
    day = "1er" if d.day == 1 else str(d.day)
    return f"{day} {MONTHS_FR[d.month - 1]} {d.year}"


def date_short(d: date | None) -> str:
    """`15/06/2026`."""
    return d.strftime("%d/%m/%Y") if d else ""


def template_environment(folder: Path) -> Environment:
    """Templates of one campaign folder; an undefined variable is an error, never blank.

    Sandboxed: managers write templates in the console, and an ordinary environment lets
    `{{ cycler.__init__.__globals__.os }}` reach the server (every NIR, the keys); the
    immutable sandbox also refuses `.append`/`.update`, so one rendering cannot change what
    the next person's sees. Rendering costs the same (measured on the shipped templates).
    """
    env = ImmutableSandboxedEnvironment(
        loader=FileSystemLoader(folder),
        undefined=StrictUndefined,
        # Letters are HTML: escape what comes from data; text messages are not escaped.
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default=False),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["date_fr"] = date_fr
    env.filters["date_short"] = date_short
    return env


def build_context(
    *,
    definition: CampaignDefinition,
    person: dict[str, Any],
    member: dict[str, Any],
    step_id: str,
    attempt: int,
    today: date,
) -> dict[str, Any]:
    """Everything a template may use, and nothing more (no NIR, no phone number)."""
    labels = definition.presentation.gap_labels
    gaps = list(member.get("gaps", []))
    step_channel = _step_channel(definition, step_id)
    echelon = member.get("echelon", "")
    return {
        "campaign": {"id": definition.id, "name": definition.name},
        "presentation": definition.presentation.model_dump(),
        "person": {
            "civilite": person["civilite"],
            "salutation": SALUTATIONS.get(person["civilite"], "Madame, Monsieur"),
            "nom": person["nom"],
            "prenom": person["prenom"],
            "age": person.get("age", 0),
            "address_lines": list(person.get("address_lines", [])),
            "departement": person.get("departement", ""),
        },
        "member": {
            "anchor_date": member["anchor_date"],
            "priority": bool(member.get("priority", False)),
            "gaps": gaps,
            "gap_texts": [labels.get(g, g) for g in gaps],
            "echelon": echelon,
            "echelon_name": ECHELONS.get(echelon, echelon),
            "channels_tried": [CHANNEL_LABELS.get(c, c) for c in member.get("channels_tried", [])],
        },
        "step": {"id": step_id, "channel": step_channel, "attempt": attempt},
        "today": today,
    }


def _step_channel(definition: CampaignDefinition, step_id: str) -> str:
    for s in definition.cascade:
        if s.id == step_id:
            return s.channel
        if s.notify and step_id == f"{s.id}_notice":
            return s.notify.channel
    raise KeyError(f"{definition.id}: no step {step_id!r}")


def render_message(env: Environment, name: str, context: dict[str, Any]) -> tuple[str, str]:
    """Render a template; return (subject, body), the subject from an `Objet :` first line."""
    text = env.get_template(name).render(context)
    first, _, rest = text.partition("\n")
    if first.startswith(SUBJECT_PREFIX):
        return first[len(SUBJECT_PREFIX) :].strip(), rest.lstrip("\n")
    return "", text


def sample_context(definition: CampaignDefinition, step_id: str) -> dict[str, Any]:
    """A plausible context for checking and previewing templates."""
    gaps = list(definition.targeting.gaps)
    return build_context(
        definition=definition,
        person={
            "civilite": "Mme",
            "nom": "MARTIN",
            "prenom": "Claire",
            "age": 64,
            "address_lines": ["Mme Claire MARTIN", "12 RUE DES LILAS", "91000 EVRY-COURCOURONNES"],
            "departement": "91",
        },
        member={
            "anchor_date": date(2026, 6, 15),
            "priority": bool(gaps),
            "gaps": gaps,
            "echelon": "91",
            "channels_tried": ["phone"],
        },
        step_id=step_id,
        attempt=1,
        today=date(2026, 4, 16),
    )


def sample_variant(
    definition: CampaignDefinition, step_id: str, *, priority: bool
) -> dict[str, Any]:
    """The sample context as a priority person (with the rule's gaps) or not (without any)."""
    ctx = sample_context(definition, step_id)
    ctx["member"]["priority"] = priority
    if not priority:
        ctx["member"]["gaps"], ctx["member"]["gap_texts"] = [], []
    return ctx


def _step_templates(definition: CampaignDefinition) -> list[tuple[str, str]]:
    out = []
    for s in definition.cascade:
        out.append((s.id, s.template))
        if s.notify:
            out.append((f"{s.id}_notice", s.notify.template))
    return out


def check_templates(definition: CampaignDefinition, env: Environment, folder: Path) -> None:
    """Render every template of the campaign on a sample: fail with file and line, not later."""
    for problem in template_problems(definition, env, folder):
        raise DefinitionError(problem)


def template_problems(
    definition: CampaignDefinition,
    env: Environment,
    folder: Path,
    skip: frozenset[str] = frozenset(),
) -> list[str]:
    """Every template problem of the campaign (file and line, in French), none skipped silently.

    `skip`: template names already reported (a syntax error found by the caller).
    """
    problems: list[str] = []
    for step_id, name in _step_templates(definition):
        if name in skip:
            continue
        problem = _render_problem(definition, env, folder, step_id, name)
        if problem is not None and problem not in problems:
            problems.append(problem)
    return problems


# What the sandbox refuses, looked for in a template's text so that a refusal behind a
# condition the samples do not meet is reported at the check, not at one person's send.
_UNSAFE_ATTRIBUTES = (
    UNSAFE_GENERATOR_ATTRIBUTES | UNSAFE_COROUTINE_ATTRIBUTES | UNSAFE_ASYNC_GENERATOR_ATTRIBUTES
)
# The methods the immutable sandbox refuses on lists, dicts, sets and deques.
_MUTATING_METHODS = frozenset(
    [
        "add",
        "append",
        "appendleft",
        "clear",
        "difference_update",
        "discard",
        "extend",
        "extendleft",
        "insert",
        "pop",
        "popitem",
        "popleft",
        "remove",
        "reverse",
        "rotate",
        "setdefault",
        "sort",
        "symmetric_difference_update",
        "update",
    ]
)
_REFUSED = "un modèle affiche les variables de la campagne, il n'appelle ni ne modifie rien d'autre"


def _unsafe_name(value: object) -> str | None:
    if isinstance(value, str) and (value.startswith("_") or value in _UNSAFE_ATTRIBUTES):
        return value
    return None


def _refused_here(node: nodes.Node) -> str | None:
    """The attribute or method this node reaches that the sandbox would refuse, if any."""
    if isinstance(node, nodes.Getattr):
        return _unsafe_name(node.attr)
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        return _unsafe_name(node.arg.value)
    if isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
        arg = node.args[0]
        return _unsafe_name(arg.value) if isinstance(arg, nodes.Const) else None
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
        return node.node.attr if node.node.attr in _MUTATING_METHODS else None
    return None


def _refused_in_tree(tree: nodes.Template) -> list[tuple[int, str]]:
    """(line, attribute) of everything in a template's text the sandbox would refuse, on every
    branch, in reading order; a name built at run time is left to the sandbox itself."""
    found: list[tuple[int, str]] = []

    def visit(node: nodes.Node) -> None:
        for child in node.iter_child_nodes():  # innermost first: `a.__init__.__globals__`
            visit(child)
        name = _refused_here(node)
        if name is not None:
            found.append((node.lineno, name))

    visit(tree)
    return sorted(found, key=lambda f: f[0])


def refused_constructs(env: Environment, source: str) -> list[tuple[int, str]]:
    """What the sandbox would refuse in a template's text, as `_refused_in_tree` says."""
    return _refused_in_tree(env.parse(source))


def _templates_used(tree: nodes.Template) -> list[str]:
    """The templates this one includes, imports or extends by a name written in it."""
    names = []
    for node in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        template = getattr(node, "template", None)
        if isinstance(template, nodes.Const) and isinstance(template.value, str):
            names.append(template.value)
    return names


def _static_problem(env: Environment, folder: Path, name: str) -> str | None:
    """The first construct the sandbox would refuse in this template or those it uses."""
    assert env.loader is not None
    pending, seen = [name], set()
    while pending:
        current = pending.pop(0)
        if current in seen or not (folder / current).is_file():
            continue  # a missing include is reported by the rendering, in French
        seen.add(current)
        try:
            tree = env.parse(env.loader.get_source(env, current)[0])  # parsed once for both
            refused = _refused_in_tree(tree)
            pending += _templates_used(tree)
        except TemplateSyntaxError:
            continue  # reported with its line by the rendering below
        if refused:
            line, attribute = refused[0]
            return f"{folder / current}:{line}: accès interdit à « {attribute} » : {_REFUSED}"
    return None


def _render_problem(
    definition: CampaignDefinition, env: Environment, folder: Path, step_id: str, name: str
) -> str | None:
    path = folder / name
    if not path.is_file():
        return f"{path}: modèle de l'étape {step_id!r} introuvable"
    static = _static_problem(env, folder, name)
    if static is not None:
        return static
    for priority in (True, False):
        ctx = sample_variant(definition, step_id, priority=priority)
        try:
            render_message(env, name, ctx)
        except TemplateSyntaxError as e:
            return f"{path}:{e.lineno}: syntaxe du modèle : {jinja_message_fr(e.message)}"
        except UndefinedError as e:
            words = jinja_message_fr(e.message)
            return (
                f"{path}:{_template_line(e, name)}: variable inconnue : {words} "
                f"(variables : {', '.join(sorted(ctx))})"
            )
        except SecurityError as e:
            return f"{path}:{_template_line(e, name)}: {jinja_message_fr(str(e))}"
        except TemplateError as e:
            return f"{path}: modèle invalide : {jinja_message_fr(str(e))}"
    return None


def _template_line(err: Exception, name: str) -> str:
    """The template line a rendering error was raised at, from the traceback."""
    tb = err.__traceback__
    line = "?"
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(name):
            line = str(tb.tb_lineno)
        tb = tb.tb_next
    return line


# What a template reads of its context, as dotted paths: the print house's merge fields.
_MERGE_ROOTS = ("campaign", "presentation", "person", "member", "step", "today")


@lru_cache(maxsize=256)
def merge_fields(env: Environment, name: str) -> tuple[str, ...]:
    """The context paths a template uses (`person.salutation`, `today`…), sorted, once each."""
    from jinja2 import nodes

    assert env.loader is not None
    source = env.loader.get_source(env, name)[0]
    found: set[str] = set()

    def visit(node: nodes.Node) -> None:
        chain: list[str] = []
        inner: nodes.Node = node
        while isinstance(inner, nodes.Getattr):
            chain.append(inner.attr)
            inner = inner.node
        if isinstance(inner, nodes.Name) and inner.name in _MERGE_ROOTS:
            found.add(".".join([inner.name, *reversed(chain)]))
            return
        for child in node.iter_child_nodes():
            visit(child)

    visit(env.parse(source))
    return tuple(sorted(found))


def merge_values(context: dict[str, Any], paths: tuple[str, ...]) -> dict[str, Any]:
    """Each path's value in the context (dates as ISO text, lists kept as lists).

    A path is followed through dicts only: what the template does to a value (`nom.upper()`,
    `today.year`) is the template's, and the field is the value itself (`person.nom`,
    `today`), as the print house merges data, not method calls."""
    out: dict[str, Any] = {}
    for path in paths:
        value: Any = context
        field: list[str] = []
        for part in path.split("."):
            if not isinstance(value, dict):
                break
            value = value.get(part)
            field.append(part)
        out[".".join(field)] = value.isoformat() if isinstance(value, date) else value
    return out


@lru_cache(maxsize=256)
def _self_contained(env: Environment, name: str) -> bool:
    """Whether the template reads nothing but its own source (no include, import or extends)."""
    from jinja2 import nodes

    assert env.loader is not None
    tree = env.parse(env.loader.get_source(env, name)[0])
    return not any(tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)))


def reads(env: Environment, name: str, path: str) -> bool:
    """Whether the template may read `path` of its context: a field on that path or above it
    (`member` whole reads `member.channels_tried`), or any at all if it pulls in another
    template. What no template of a batch reads need not be fetched for it."""
    if not _self_contained(env, name):
        return True
    return any(
        f == path or path.startswith(f"{f}.") or f.startswith(f"{path}.")
        for f in merge_fields(env, name)
    )


def render_key(env: Environment, name: str, context: dict[str, Any]) -> tuple[Any, ...] | None:
    """What a rendering depends on: the values of the paths the template reads, or None.

    Two contexts with the same key render the same text, so a batch renders each distinct
    key once (a notice that names nobody: once per batch). Each path is followed only
    through dicts (`person.nom.upper()` keys on `person.nom`); None when the template pulls
    in another one or the context holds more than the known roots (no key is then safe).
    """
    if not set(context) <= set(_MERGE_ROOTS) or not _self_contained(env, name):
        return None
    key: list[Any] = [name]
    for path in merge_fields(env, name):
        value: Any = context
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                break
            value = value[part]
        key.append((path, repr(value)))
    return tuple(key)
