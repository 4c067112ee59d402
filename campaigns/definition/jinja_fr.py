"""Jinja's syntax and variable messages in French, for the manager who wrote the template."""

from __future__ import annotations

import re
from collections.abc import Callable

_TOKENS = {
    "end of print statement": "la fin d'expression « }} »",
    "end of statement block": "la fin de bloc « %} »",
    "end of template": "la fin du modèle",
    "name": "un nom",
    "begin of print statement": "le début d'expression « {{ »",
    "begin of statement block": "le début de bloc « {% »",
}


def _token(words: str) -> str:
    return _TOKENS.get(words, f"« {words} »")


def _tags(listing: str) -> str:
    return " ou ".join(f"« {t} »" for t in re.findall(r"'([^']+)'", listing))


def _unexpected_end(m: re.Match[str]) -> str:
    return (
        f"fin du modèle inattendue : un bloc « {m['block']} » n'est pas fermé "
        f"(attendu : {_tags(m['tags'])})"
    )


def _unknown_tag_in_block(m: re.Match[str]) -> str:
    return (
        f"balise inconnue ou mal placée « {m['tag']} » : le bloc « {m['block']} » "
        f"attend {_tags(m['tags'])}"
    )


_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (
        re.compile(
            r"Unexpected end of template\. Jinja was looking for the following tags: "
            r"(?P<tags>.+)\. The innermost block that needs to be closed is '(?P<block>[^']+)'\."
        ),
        _unexpected_end,
    ),
    (
        re.compile(
            r"Encountered unknown tag '(?P<tag>[^']+)'\. Jinja was looking for the following "
            r"tags: (?P<tags>.+)\. The innermost block that needs to be closed is "
            r"'(?P<block>[^']+)'\."
        ),
        _unknown_tag_in_block,
    ),
    (
        re.compile(r"Encountered unknown tag '(?P<tag>[^']+)'\."),
        lambda m: f"balise inconnue « {m['tag']} »",
    ),
    (
        re.compile(r"unexpected end of template, expected '(?P<want>[^']+)'\."),
        lambda m: f"fin du modèle inattendue : {_token(m['want'])} manque",
    ),
    (
        re.compile(r"expected token '(?P<want>[^']+)', got '(?P<got>[^']+)'"),
        lambda m: f"{_token(m['want'])} était attendue, « {m['got']} » trouvé",
    ),
    (
        re.compile(r"Expected an expression, got '(?P<got>[^']+)'"),
        lambda m: f"une expression était attendue, {_token(m['got'])} trouvée",
    ),
    (
        re.compile(r"unexpected '(?P<got>[^']+)', expected '(?P<want>[^']+)'"),
        lambda m: f"« {m['got']} » inattendu, « {m['want']} » était attendu",
    ),
    (re.compile(r"unexpected '(?P<got>[^']+)'"), lambda m: f"« {m['got']} » inattendu"),
    (
        re.compile(r"unexpected char (?P<q>['\"])(?P<got>.+?)(?P=q) at (?P<at>\d+)"),
        lambda m: f"caractère inattendu « {m['got']} » (position {m['at']})",
    ),
    (re.compile(r"expected name or number"), lambda m: "un nom ou un nombre était attendu"),
    (re.compile(r"No filter named '(?P<f>[^']+)'\."), lambda m: f"filtre inconnu « {m['f']} »"),
    (re.compile(r"No test named '(?P<f>[^']+)'\."), lambda m: f"test inconnu « {m['f']} »"),
    (re.compile(r"'(?P<v>[^']+)' is undefined"), lambda m: f"« {m['v']} » n'est pas défini"),
    (
        re.compile(r"access to attribute '(?P<a>[^']+)' of '(?P<obj>[^']+)' object is unsafe\."),
        lambda m: (
            f"accès interdit à « {m['a']} » ({_object(m['obj'])}) : un modèle affiche les "
            "variables de la campagne, il n'appelle ni ne modifie rien d'autre"
        ),
    ),
    (
        re.compile(r"'(?P<t>[^']+)' not found in search path: .*"),
        lambda m: f"modèle « {m['t']} » introuvable parmi les fichiers de la campagne",
    ),
    (
        re.compile(r"(?P<obj>.+) is not safely callable"),
        lambda m: f"appel interdit : {m['obj']}",
    ),
    (
        re.compile(r"'(?P<obj>[^']+)' has no attribute '(?P<a>[^']+)'"),
        lambda m: f"« {_object(m['obj'])} » n'a pas d'attribut « {m['a']} »",
    ),
]


def _object(words: str) -> str:
    kind = words.removesuffix(" object")
    names = {"dict": "dictionnaire", "list": "liste", "int": "nombre", "str": "texte"}
    return names.get(kind, kind)


def jinja_message_fr(message: str | None) -> str:
    """The French words for a Jinja message; an unknown one is quoted as Jinja wrote it."""
    text = (message or "").strip()
    for pattern, words in _RULES:
        m = pattern.fullmatch(text)
        if m is not None:
            return words(m)
    return f"message de Jinja non traduit : « {text} »"
