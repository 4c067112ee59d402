"""Jinja's messages reach the campaign manager in French."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from campaigns.definition.jinja_fr import jinja_message_fr

ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined)


def _message(source: str, **ctx: object) -> str:
    try:
        ENV.from_string(source).render(**ctx)
    except (TemplateSyntaxError, UndefinedError, SecurityError) as e:
        return str(e.message)
    raise AssertionError(f"{source!r} did not fail")


@pytest.mark.parametrize(
    ("source", "ctx", "french"),
    [
        ("{{ a ", {}, "fin du modèle inattendue : la fin d'expression « }} » manque"),
        (
            "{% if x %}a",
            {},
            "fin du modèle inattendue : un bloc « if » n'est pas fermé "
            "(attendu : « elif » ou « else » ou « endif »)",
        ),
        ("{% foo %}", {}, "balise inconnue « foo »"),
        (
            "{% for x in y %}{% endif %}",
            {},
            "balise inconnue ou mal placée « endif » : le bloc « for » attend "
            "« endfor » ou « else »",
        ),
        ("{{ a b }}", {}, "la fin d'expression « }} » était attendue, « b » trouvé"),
        ("{{ a }", {}, "« } » inattendu"),
        ("{{ x | default( }}", {}, "« } » inattendu, « ) » était attendu"),
        ("{{ a | nofilter }}", {}, "filtre inconnu « nofilter »"),
        ("{{ a.  }}", {}, "un nom ou un nombre était attendu"),
        ("{{ a !! }}", {}, "caractère inattendu « ! » (position 5)"),
        ("{% if %}{% endif %}", {}, "une expression était attendue, la fin de bloc « %} » trouvée"),
        ("{{ a }}", {}, "« a » n'est pas défini"),
        ("{{ a.b }}", {"a": {}}, "« dictionnaire » n'a pas d'attribut « b »"),
        (
            "{{ a.update({}) }}",
            {"a": {}},
            "accès interdit à « update » (dictionnaire) : un modèle affiche les variables de la "
            "campagne, il n'appelle ni ne modifie rien d'autre",
        ),
        (
            "{{ a.__class__ }}",
            {"a": "x"},
            "accès interdit à « __class__ » (texte) : un modèle affiche les variables de la "
            "campagne, il n'appelle ni ne modifie rien d'autre",
        ),
    ],
)
def test_jinja_messages_in_french(source: str, ctx: dict[str, object], french: str) -> None:
    assert jinja_message_fr(_message(source, **ctx)) == french


def test_an_unknown_message_is_quoted_not_dropped() -> None:
    assert jinja_message_fr("something new") == "message de Jinja non traduit : « something new »"


def test_a_missing_included_template_is_named_in_french(tmp_path: Path) -> None:
    (tmp_path / "lettre.html.j2").write_text("{% include 'pied.html.j2' %}", encoding="utf-8")
    env = ImmutableSandboxedEnvironment(loader=FileSystemLoader(tmp_path))
    with pytest.raises(TemplateNotFound) as err:
        env.get_template("lettre.html.j2").render()
    assert jinja_message_fr(str(err.value.message)) == (
        "modèle « pied.html.j2 » introuvable parmi les fichiers de la campagne"
    )
