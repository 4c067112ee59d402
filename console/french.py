"""Typer's and Click's own words in French: usage, help panels, the --help line, usage errors.

Typer vendors Click with its English strings written in place; they are replaced here, once,
on the objects that print them. The rich help printer is heavy (~0.2 s), so its strings are
replaced only when it is about to be used (`rich_help`), never at `import console.cli`.
"""

from __future__ import annotations

import re
from typing import Any

from typer._click import decorators, formatting

# Usage errors, English pattern → French (first match wins; applied to the whole message).
_ERRORS: tuple[tuple[str, str], ...] = (
    (r"Missing argument '([^']*)'\.", r"Argument manquant : « \1 »."),
    (r"Missing option '([^']*)'\.", r"Option manquante : « \1 »."),
    (r"Missing parameter: (\S+)", r"Paramètre manquant : \1"),
    (r"Missing (\w+)", r"\1 manquant"),
    (r"Invalid value for '([^']*)': ", r"Valeur invalide pour « \1 » : "),
    (r"Invalid value: ", r"Valeur invalide : "),
    (r"No such option: (\S+)", r"Option inconnue : \1"),
    (r"No such command '([^']*)'\.", r"Commande inconnue : « \1 »."),
    (r"Got unexpected extra arguments? \((.*)\)", r"Argument(s) en trop : \1"),
    (r"Option '([^']*)' requires an argument\.", r"L'option « \1 » attend une valeur."),
    (r"Option '([^']*)' requires (\d+) arguments\.", r"L'option « \1 » attend \2 valeurs."),
    (r"Option '([^']*)' does not take a value\.", r"L'option « \1 » ne prend pas de valeur."),
    (r"Argument '([^']*)' takes (\d+) values\.", r"L'argument « \1 » attend \2 valeurs."),
    (r"'([^']*)' is not a valid integer( range)?\.", r"« \1 » n'est pas un nombre entier."),
    (r"'([^']*)' is not a valid float( range)?\.", r"« \1 » n'est pas un nombre."),
    (r"'([^']*)' is not a valid boolean\.", r"« \1 » n'est pas oui/non (true/false)."),
    (r"Value '([^']*)' is not a valid (\w+)\.", r"« \1 » n'est pas une valeur \2 valide."),
    (r"'([^']*)' is not one of (.*)\.", r"« \1 » n'est pas l'une des valeurs \2."),
    (r"(File|Directory|Path) '([^']*)' does not exist\.", r"Le chemin « \2 » n'existe pas."),
    (r"Could not open file '([^']*)': ", r"Impossible d'ouvrir « \1 » : "),
    (r"\(Possible options: (.*)\)", r"(options possibles : \1)"),
    (r"Did you mean (.*)\?", r"Vouliez-vous dire \1 ?"),
    (r"'([^']*)' does not match the format", r"« \1 » ne suit pas le format"),
)
_COMPILED = tuple((re.compile(p), r) for p, r in _ERRORS)

# The few words Typer passes through gettext at run time (help extras, group errors).
_WORDS = {
    "(dynamic)": "(dynamique)",
    "Aborted!": "Abandon.",
    "Aborted.": "Abandon.",
    "Missing command.": "Commande manquante.",
    "No such command {name!r}.": "Commande inconnue : « {name} ».",
    "default: {default}": "défaut : {default}",
    "env var: {var}": "variable d'environnement : {var}",
    "required": "obligatoire",
    "Arguments": "Arguments",
    "Options": "Options",
    "Commands": "Commandes",
    "Error": "Erreur",
}


def translate(message: str) -> str:
    """An English usage message of Typer/Click in French (unchanged if no pattern knows it)."""
    for pattern, french in _COMPILED:
        message = pattern.sub(french, message)
    return message


def _words(text: str) -> str:
    return _WORDS.get(text, text)


def _usage(prog: str, args: str = "") -> str:
    return args.replace("COMMAND [ARGS]...", "COMMANDE [ARGUMENTS]...")


_write_usage = formatting.HelpFormatter.write_usage
_help_option = decorators.help_option


def _french_write_usage(self: Any, prog: str, args: str = "", prefix: str | None = None) -> None:
    _write_usage(self, prog, _usage(prog, args), "Utilisation : " if prefix is None else prefix)


def _french_help_option(param_decls: list[str]) -> Any:
    make = _help_option(param_decls)

    def apply(f: Any) -> Any:
        out = make(f)
        out.params[-1].help = "Afficher cette aide et quitter."  # type: ignore[attr-defined]
        return out

    return apply


def install() -> None:
    """The light part: usage line and the --help option, in French (no rich import)."""
    formatting.HelpFormatter.write_usage = _french_write_usage  # type: ignore[method-assign]
    decorators.help_option = _french_help_option


_RICH_DONE = False


def rich_help() -> None:
    """The rich printer's panel titles, hints and error messages in French (loads rich_utils)."""
    global _RICH_DONE
    if _RICH_DONE:
        return
    # heavy optional dependency: Typer's rich printer, only when help or an error is printed
    from typer import core, rich_utils

    rich_utils.COMMANDS_PANEL_TITLE = "Commandes"
    rich_utils.ERRORS_PANEL_TITLE = "Erreur"
    rich_utils.ABORTED_TEXT = "Abandon."
    rich_utils.RICH_HELP = "Essayez [blue]'{command_path} {help_option}'[/] pour l'aide."
    rich_utils.DEFAULT_STRING = "[défaut : {}]"
    rich_utils.ENVVAR_STRING = "[variable d'environnement : {}]"
    rich_utils.REQUIRED_LONG_STRING = "[obligatoire]"
    rich_utils.DEPRECATED_STRING = "(obsolète) "
    rich_utils._ = _words  # type: ignore[attr-defined,assignment]
    core._ = _words  # type: ignore[attr-defined,assignment]
    format_error = rich_utils.rich_format_error

    def french_error(e: Any) -> None:
        english = e.format_message
        e.format_message = lambda: translate(english())
        format_error(e)

    rich_utils.rich_format_error = french_error  # type: ignore[assignment]
    _RICH_DONE = True
