"""Messages rendered from a campaign's templates: words, dates, and nothing sensitive."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from campaigns.definition.catalog import load_campaign
from campaigns.definition.rendering import (
    build_context,
    date_fr,
    date_short,
    refused_constructs,
    render_message,
    template_environment,
)

C = load_campaign("sophia-ald8")
D = C.definition


def _ctx(step: str, *, priority: bool = True, civilite: str = "M.") -> dict:
    gaps = ["gap_renal", "gap_dental", "gap_fundus"] if priority else []
    return build_context(
        definition=D,
        person={
            "civilite": civilite,
            "nom": "DUPONT",
            "prenom": "Jean",
            "age": 67,
            "address_lines": ["M. Jean DUPONT", "3 RUE DU MOULIN", "91100 CORBEIL-ESSONNES"],
            "departement": "91",
        },
        member={
            "anchor_date": date(2026, 7, 1),
            "priority": priority,
            "gaps": gaps,
            "echelon": "91",
            "channels_tried": ["phone", "mailbox"],
        },
        step_id=step,
        attempt=2,
        today=date(2026, 5, 4),
    )


@pytest.mark.parametrize(
    ("d", "long", "short"),
    [
        (date(2026, 7, 1), "1er juillet 2026", "01/07/2026"),
        (date(2026, 8, 15), "15 août 2026", "15/08/2026"),
        (date(2027, 2, 28), "28 février 2027", "28/02/2027"),
    ],
)
def test_french_dates(d: date, long: str, short: str) -> None:
    assert date_fr(d) == long
    assert date_short(d) == short


def test_call_script_shows_what_the_adviser_needs() -> None:
    subject, body = render_message(C.env, "call_script.md.j2", _ctx("call"))
    assert subject == "Appel sophia — M. Jean DUPONT"
    assert "67 ans (Essonne)" in body
    assert "1er juillet 2026" in body
    assert "**Prioritaire**" in body
    assert "pas de visite chez le dentiste l'an dernier" in body
    assert "Déjà tenté : appel téléphonique, message dans le compte ameli" in body
    assert "Tentative n° 2" in body


def test_a_person_without_gaps_is_not_told_about_them() -> None:
    _, body = render_message(C.env, "mailbox_message.md.j2", _ctx("mailbox", priority=False))
    assert "fond d'œil" not in body
    _, body = render_message(C.env, "mailbox_message.md.j2", _ctx("mailbox"))
    assert "fond d'œil" in body


def test_mailbox_message_is_addressed_formally() -> None:
    subject, body = render_message(C.env, "mailbox_message.md.j2", _ctx("mailbox", civilite="Mme"))
    assert subject.startswith("Votre prise en charge diabète")
    assert body.startswith("Madame,\n")
    assert "agréer, Madame, nos salutations" in body


HEALTH_WORDS = ("diab", "ald", "sophia", "rénal", "dentist", "fond d", "santé", "maladie chron")


def test_notification_email_carries_no_health_detail() -> None:
    subject, body = render_message(C.env, "notification_email.txt.j2", _ctx("mailbox_notice"))
    text = (subject + body).lower()
    assert "nouveau message" in text
    for word in HEALTH_WORDS:
        assert word not in text, word
    assert "DUPONT" not in body


def test_letter_escapes_data_and_places_the_address() -> None:
    ctx = _ctx("letter")
    ctx["person"]["address_lines"] = ["M. Jean <b>DUPONT</b>", "91100 CORBEIL-ESSONNES"]
    _, html = render_message(C.env, "letter.html.j2", ctx)
    assert "&lt;b&gt;DUPONT&lt;/b&gt;" in html
    assert 'class="address"' in html
    assert "Le 4 mai 2026" in html


def test_context_holds_no_identifier() -> None:
    ctx = _ctx("call")
    flat = repr(ctx)
    assert "nir" not in ctx["person"]
    assert "telephone" not in flat


def _env(tmp_path, **templates: str):  # type: ignore[no-untyped-def]
    from campaigns.definition.rendering import template_environment

    for name, text in templates.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return template_environment(tmp_path)


@pytest.mark.parametrize(
    ("template", "other", "same"),
    [
        # What the template reads decides: another name or date changes it, the rest not.
        ("Bonjour {{ person.nom }}", {"nom": "MARTIN"}, {"prenom": "Paul", "age": 30}),
        ("{{ person.nom.upper() }}", {"nom": "martin"}, {"prenom": "Paul"}),
        ("{{ person['nom'] }}", {"nom": "MARTIN"}, None),
        ("{% set p = person %}{{ p.nom }}", {"nom": "MARTIN"}, None),
        ("{{ member.anchor_date | date_fr }}", {"anchor": date(2026, 8, 1)}, {"nom": "X"}),
        ("Un message vous attend.", None, {"nom": "MARTIN", "anchor": date(2026, 8, 1)}),
    ],
)
def test_a_render_key_changes_exactly_when_the_text_may(
    tmp_path, template: str, other: dict | None, same: dict | None
) -> None:
    from campaigns.definition.rendering import render_key

    env = _env(tmp_path, **{"t.txt": template})

    def ctx(nom: str = "DUPONT", prenom: str = "Jean", age: int = 67, anchor=None) -> dict:
        c = _ctx("mailbox")
        c["person"].update(nom=nom, prenom=prenom, age=age)
        c["member"]["anchor_date"] = anchor or date(2026, 7, 1)
        return c

    base = ctx()
    key = render_key(env, "t.txt", base)
    assert key is not None
    for change, equal in ((other, False), (same, True)):
        if change is None:
            continue
        changed = ctx(**change)
        texts_equal = render_message(env, "t.txt", base) == render_message(env, "t.txt", changed)
        assert texts_equal is equal
        assert (render_key(env, "t.txt", changed) == key) is equal


def test_a_template_that_includes_another_gets_no_render_key(tmp_path) -> None:
    from campaigns.definition.rendering import render_key

    env = _env(tmp_path, **{"t.txt": "{% include 'p.txt' %}", "p.txt": "{{ person.nom }}"})
    assert render_key(env, "t.txt", _ctx("mailbox")) is None
    extra = {**_ctx("mailbox"), "autre": 1}
    assert render_key(_env(tmp_path, **{"u.txt": "x"}), "u.txt", extra) is None


@pytest.mark.parametrize(
    ("template", "fields"),
    [
        ("{{ person.nom }}", {"person.nom": "DUPONT"}),
        # What the template does to a value is its own: the field is the value.
        ("{{ person.nom.upper() }}", {"person.nom": "DUPONT"}),
        ("{{ today.year }}", {"today": "2026-07-01"}),
        ("{{ member.anchor_date | date_fr }}", {"member.anchor_date": "2026-07-15"}),
        ("{{ person.inconnu }}", {"person.inconnu": None}),
        ("Un message vous attend.", {}),
    ],
)
def test_merge_fields_carry_the_values_a_template_reads(
    tmp_path, template: str, fields: dict
) -> None:
    from campaigns.definition.rendering import merge_fields, merge_values

    env = _env(tmp_path, **{"t.txt": template})
    ctx = _ctx("mailbox")
    ctx["person"]["nom"] = "DUPONT"
    ctx["member"]["anchor_date"] = date(2026, 7, 15)
    ctx["today"] = date(2026, 7, 1)
    assert merge_values(ctx, merge_fields(env, "t.txt")) == fields


@pytest.mark.parametrize(
    ("template", "read"),
    [
        ("{{ member.channels_tried | join(', ') }}", True),
        ("{% if member.channels_tried %}oui{% endif %}", True),
        ("{{ member['channels_tried'] }}", True),  # read through `member` whole
        ("{{ member | tojson }}", True),
        ("{% include 'p.txt' %}", True),  # what the other template reads is not known here
        ("{{ member.anchor_date | date_fr }} {{ person.nom }}", False),
        ("Un message vous attend.", False),
    ],
)
def test_what_a_template_reads_decides_what_a_batch_fetches(
    tmp_path, template: str, read: bool
) -> None:
    from campaigns.definition.rendering import reads

    env = _env(tmp_path, **{"t.txt": template, "p.txt": "{{ person.nom }}"})
    assert reads(env, "t.txt", "member.channels_tried") is read


@pytest.mark.parametrize(
    ("source", "refused"),
    [
        ("{{ person.nom|upper }} {{ member.gap_texts|join(', ') }}", []),
        ("{{ today|date_fr }} {{ person.address_lines[0] }} {{ '{} {}'.format(a, b) }}", []),
        ("{% for k, v in presentation.items() %}{{ k }}{% endfor %}", []),
        ("{{ x.__class__ }}", [(1, "__class__")]),
        ("a\n{{ cycler.__init__.__globals__ }}", [(2, "__init__"), (2, "__globals__")]),
        ("{{ x['_secret'] }}", [(1, "_secret")]),
        ("{{ x|attr('__dict__') }}", [(1, "__dict__")]),
        ("{{ g.gi_frame }}", [(1, "gi_frame")]),
        ("{% if 0 %}\n{{ member.gaps.append(1) }}{% endif %}", [(2, "append")]),
        ("{{ d.update(a=1) }} {{ d.setdefault('k') }}", [(1, "update"), (1, "setdefault")]),
        ("{% set n = '_' ~ '_class__' %}{{ x[n] }}", []),  # built at run time: the sandbox's
    ],
)
def test_what_the_sandbox_refuses_is_found_in_the_text(
    source: str, refused: list[tuple[int, str]]
) -> None:
    env = template_environment(Path("."))
    assert refused_constructs(env, source) == refused
