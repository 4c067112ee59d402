"""Every reason code the ledger writes, with the French words a user reads.

The planner, the policy, dispatch, the feeds, `relance why` and the console all take their
codes and words from here (tests/test_reasons.py fails on a code written without words).
A code is a member of `Reason`, or built by one of the `FAMILIES` around a value (a call
outcome, a step, a provider's status); `ALIASES` keep older codes readable in old ledgers.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from campaigns.definition.vocabulary import Channel


class Reason(StrEnum):
    """A reason code, as stored (action.reason, member.status_reason, event details)."""

    # The contact policy (decide), in its precedence order.
    DECEASED = "deceased"
    ENROLLED = "enrolled"
    OPPOSED = "opposed"
    OPPOSED_ALL = "opposed_all"
    OPPOSED_PHONE = "opposed_phone"
    OPPOSED_MAILBOX = "opposed_mailbox"
    OPPOSED_EMAIL = "opposed_email"
    OPPOSED_LETTER = "opposed_letter"
    NO_PHONE = "no_phone"
    NO_EMAIL = "no_email"
    NO_ADDRESS = "no_address"
    NO_COMPTE_AMELI = "no_compte_ameli"
    PRESSURE_CALLS = "pressure_calls"
    PRESSURE_CONTACTS = "pressure_contacts"
    OUTSIDE_CONTACT_HOURS = "outside_contact_hours"
    OUTSIDE_CONTACT_DAYS = "outside_contact_days"
    PUBLIC_HOLIDAY = "public_holiday"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    # The planner: why an action is due, why a step is over, why a member leaves.
    DUE = "due"
    CALLBACK_REQUESTED = "callback_requested"
    WINDOW_PASSED = "window_passed"
    SKIPPED = "skipped"
    CALLBACK_AFTER_WINDOW = "callback_after_window"
    MAX_ATTEMPTS_REACHED = "max_attempts_reached"
    NO_TIME_LEFT_IN_WINDOW = "no_time_left_in_window"
    HOLDOUT_WINDOW_CLOSED = "holdout_window_closed"
    CASCADE_FINISHED = "cascade_finished"
    # Step conditions (`requires` failing, `unless` holding) and the campaign's end.
    NOT_PRIORITY = "not_priority"
    NOT_REACHED_BY_PHONE = "not_reached_by_phone"
    MAILBOX_NOT_READ = "mailbox_not_read"
    STEP_NOT_SENT = "step_not_sent"
    HAS_PHONE = "has_phone"
    HAS_COMPTE_AMELI = "has_compte_ameli"
    HAS_EMAIL = "has_email"
    HAS_ADDRESS = "has_address"
    IS_PRIORITY = "is_priority"
    REACHED_BY_PHONE = "reached_by_phone"
    MAILBOX_READ = "mailbox_read"
    STEP_SENT = "step_sent"
    CAMPAIGN_ENDED = "campaign_ended"
    PASSWORD_CHANGED = "password_changed"
    OUTSIDE_CAMPAIGN_DATES = "outside_campaign_dates"
    # Targeting: the person's ALD was renewed, the campaign no longer concerns them.
    RENEWED = "renewed"
    # Targeting: why a person is not eligible (the `reasons` column of a targeting run).
    BIRTH_DATE_UNKNOWN = "birth_date_unknown"
    UNDER_AGE = "under_age"
    OVER_AGE = "over_age"
    NOT_EXACT_AGE = "not_exact_age"
    SEX_NOT_TARGETED = "sex_not_targeted"
    RESIDENCE_NOT_TARGETED = "residence_not_targeted"
    NO_ALD_PERIOD = "no_ald_period"
    ALD_OPEN_ENDED = "ald_open_ended"
    RENEWAL_OUTSIDE_HORIZON = "renewal_outside_horizon"
    NO_ALD_IN_FORCE = "no_ald_in_force"
    NO_MEDECIN_TRAITANT = "no_medecin_traitant"
    HAS_MEDECIN_TRAITANT = "has_medecin_traitant"
    ALREADY_ENROLLED = "already_enrolled"
    NO_CONTACT_RECORD = "no_contact_record"
    # Written qualified: `care_found:<criterion id>`, `excluded:<kind>` (see FAMILIES).
    CARE_FOUND = "care_found"
    CARE_MISSING = "care_missing"
    EXCLUDED_BY_RULE = "excluded"
    # Providers' final failures (dispatch records the adapter's code).
    FAILED = "failed"
    # The step's template failed to render for this person (sent to nobody else's harm).
    TEMPLATE_ERROR = "template_error"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"
    NO_ACCOUNT = "no_account"
    BAD_ANSWER = "bad_answer"
    NO_ANSWER = "no_answer"
    UNAUTHORIZED = "unauthorized"
    READ_STATUS = "read_status"
    INVALID_ADDRESS = "invalid_address"
    INVALID_EMAIL = "invalid_email"
    INVALID_NUMBER = "invalid_number"
    UNREACHABLE = "unreachable"
    UNAVAILABLE = "unavailable"
    RATE_LIMITED = "rate_limited"
    REFUSED_RECIPIENT = "refused_recipient"
    REFUSED_WITH_OTHERS = "refused_with_others"
    # E-mail events.
    HARD_BOUNCE = "hard_bounce"
    BLOCKED = "blocked"
    # A goal observed in the extract (a care act, a registry fact).
    GOAL_OBSERVED = "goal_observed"


LABELS: dict[Reason, str] = {
    Reason.DECEASED: "la personne est décédée",
    Reason.ENROLLED: "la personne est déjà inscrite au programme",
    Reason.OPPOSED: "la personne s'oppose à tout contact",
    Reason.OPPOSED_ALL: "la personne s'oppose à tout contact",
    Reason.OPPOSED_PHONE: "la personne s'oppose aux appels",
    Reason.OPPOSED_MAILBOX: "la personne s'oppose aux messages ameli",
    Reason.OPPOSED_EMAIL: "la personne s'oppose aux courriels",
    Reason.OPPOSED_LETTER: "la personne s'oppose aux courriers",
    Reason.NO_PHONE: "pas de numéro de téléphone valide",
    Reason.NO_EMAIL: "pas d'adresse électronique valide",
    Reason.NO_ADDRESS: "pas d'adresse postale valide",
    Reason.NO_COMPTE_AMELI: "pas de compte ameli",
    Reason.PRESSURE_CALLS: "trop d'appels récents (toutes campagnes)",
    Reason.PRESSURE_CONTACTS: "trop de contacts récents (toutes campagnes)",
    Reason.OUTSIDE_CONTACT_HOURS: "hors des heures d'appel",
    Reason.OUTSIDE_CONTACT_DAYS: "jour sans appel",
    Reason.PUBLIC_HOLIDAY: "jour férié dans le département",
    Reason.ATTEMPTS_EXHAUSTED: "nombre maximal de tentatives atteint",
    Reason.DUE: "étape prévue ce jour",
    Reason.CALLBACK_REQUESTED: "rappel demandé par la personne",
    Reason.WINDOW_PASSED: "la période de l'étape est passée",
    Reason.SKIPPED: "étape non jouée",
    Reason.CALLBACK_AFTER_WINDOW: "rappel demandé après la fin de la période de l'étape",
    Reason.MAX_ATTEMPTS_REACHED: "nombre maximal de tentatives atteint",
    Reason.NO_TIME_LEFT_IN_WINDOW: "plus de temps dans la période de l'étape",
    Reason.HOLDOUT_WINDOW_CLOSED: "groupe témoin : période de la campagne terminée",
    Reason.CASCADE_FINISHED: "toutes les étapes de la campagne ont été jouées",
    Reason.NOT_PRIORITY: "étape réservée aux personnes prioritaires",
    Reason.NOT_REACHED_BY_PHONE: "étape réservée aux personnes jointes par téléphone",
    Reason.MAILBOX_NOT_READ: "étape réservée aux personnes ayant lu le message ameli",
    Reason.STEP_NOT_SENT: "étape réservée aux personnes à qui l'étape précédente est parvenue",
    Reason.HAS_PHONE: "la personne a un numéro de téléphone",
    Reason.HAS_COMPTE_AMELI: "la personne a un compte ameli",
    Reason.HAS_EMAIL: "la personne a une adresse électronique",
    Reason.HAS_ADDRESS: "la personne a une adresse postale",
    Reason.IS_PRIORITY: "la personne est prioritaire",
    Reason.REACHED_BY_PHONE: "la personne a déjà été jointe par téléphone",
    Reason.MAILBOX_READ: "la personne a lu le message ameli",
    Reason.STEP_SENT: "une étape précédente est déjà parvenue à la personne",
    Reason.CAMPAIGN_ENDED: "la campagne est terminée",
    Reason.PASSWORD_CHANGED: "le mot de passe a été changé : les sessions ouvertes sont fermées",
    Reason.OUTSIDE_CAMPAIGN_DATES: "hors des dates de la campagne",
    Reason.RENEWED: "l'ALD a été renouvelée",
    Reason.BIRTH_DATE_UNKNOWN: "date de naissance inconnue",
    Reason.UNDER_AGE: "trop jeune pour la campagne",
    Reason.OVER_AGE: "trop âgée pour la campagne",
    Reason.NOT_EXACT_AGE: "n'a pas l'un des âges visés par la campagne",
    Reason.SEX_NOT_TARGETED: "sexe non visé par la campagne",
    Reason.RESIDENCE_NOT_TARGETED: "département de résidence non visé",
    Reason.NO_ALD_PERIOD: "aucune période d'ALD du type visé",
    Reason.ALD_OPEN_ENDED: "ALD sans date de fin : pas de renouvellement à préparer",
    Reason.RENEWAL_OUTSIDE_HORIZON: "renouvellement de l'ALD hors de l'horizon de la campagne",
    Reason.NO_ALD_IN_FORCE: "aucune ALD du type visé en vigueur",
    Reason.NO_MEDECIN_TRAITANT: "pas de médecin traitant déclaré",
    Reason.HAS_MEDECIN_TRAITANT: "a déjà un médecin traitant déclaré",
    Reason.ALREADY_ENROLLED: "déjà inscrite au programme",
    Reason.NO_CONTACT_RECORD: "absente du fichier de contacts de la caisse",
    Reason.CARE_FOUND: "le soin qui exclut de la campagne a été trouvé dans la période",
    Reason.CARE_MISSING: "le soin exigé par la campagne est absent de la période",
    Reason.EXCLUDED_BY_RULE: "exclue par une règle de la campagne",
    Reason.FAILED: "échec de l'envoi",
    Reason.TEMPLATE_ERROR: "le modèle de l'étape n'a pas pu être rendu pour cette personne",
    Reason.TEMPORARY: "échec temporaire chez le fournisseur",
    Reason.PERMANENT: "échec définitif chez le fournisseur",
    Reason.NO_ACCOUNT: "aucun compte ameli pour ce destinataire",
    Reason.BAD_ANSWER: "réponse incompréhensible du fournisseur",
    Reason.NO_ANSWER: "aucun résultat du fournisseur pour ce message (renvoyé plus tard)",
    Reason.UNAUTHORIZED: "accès refusé par le fournisseur",
    Reason.READ_STATUS: "statut de lecture illisible",
    Reason.INVALID_ADDRESS: "adresse postale invalide",
    Reason.INVALID_EMAIL: "adresse électronique invalide",
    Reason.INVALID_NUMBER: "numéro de téléphone invalide",
    Reason.UNREACHABLE: "fournisseur injoignable",
    Reason.UNAVAILABLE: "service du fournisseur indisponible",
    Reason.RATE_LIMITED: "trop de demandes : le fournisseur demande d'attendre",
    Reason.REFUSED_RECIPIENT: "destinataire refusé par le fournisseur",
    Reason.REFUSED_WITH_OTHERS: "envoi refusé avec d'autres destinataires",
    Reason.HARD_BOUNCE: "courriel rejeté définitivement (adresse invalide)",
    Reason.BLOCKED: "courriel bloqué par le serveur du destinataire",
    Reason.GOAL_OBSERVED: "objectif constaté dans les données (soin ou déclaration)",
}

# Older codes still found in existing ledgers, read as the code that replaced them.
ALIASES: dict[str, Reason] = {
    # The planner wrote this for the policy's `no_address` until both used one code.
    "no_valid_postal_address": Reason.NO_ADDRESS,
}

# What an adviser records after a call (the definition's outcome codes), in words.
OUTCOME_LABELS: dict[str, str] = {
    "enrolled_on_call": "joint — adhésion pendant l'appel",
    "will_enrol_online": "joint — adhérera en ligne",
    "refused": "joint — refus",
    "callback": "joint — rappeler (date et heure)",
    "no_answer": "pas de réponse",
    "busy": "occupé",
    "voicemail": "messagerie",
    "wrong_number": "faux numéro",
    "deceased": "décédé",
    "objects": "s'oppose à être contacté",
}

# The reasons an échelon may give to take someone off a list (seed 000's local review).
EXCLUSION_REASONS: dict[str, str] = {
    "deceased_not_known": "décès non encore connu",
    "hospitalised": "hospitalisé",
    "already_followed": "déjà suivi (autre accompagnement)",
    "other": "autre (préciser)",
}

_LIST_STATES = {"expired": "expirée sans validation", "rejected": "refusée"}
_MEMBER_STATUSES = {
    "goal": "objectif atteint",
    "exited": "sortie",
    "completed": "parcours terminé",
}


def _outcome(value: str) -> str:
    return OUTCOME_LABELS.get(value, value)


def _member(value: str) -> str:
    return _MEMBER_STATUSES.get(value) or reason_label(value)


def _as_is(value: str) -> str:
    return value


# Codes built around a value: (prefix, suffix, words with `{}` for the value's words).
FAMILIES: tuple[tuple[str, str, str, Callable[[str], str]], ...] = (
    ("outcome_", "", "issue de l'appel : {}", _outcome),
    ("retry_after_", "", "nouvel essai après « {} »", _outcome),
    ("unmapped_outcome_", "", "issue d'appel sans règle dans la campagne : {}", _outcome),
    ("call_", "", "appel non abouti (état {})", _as_is),
    ("member_", "", "la personne a quitté la campagne : {}", _member),
    ("excluded_", "", "retirée de la liste par son échelon : {}", lambda v: EXCLUSION_REASONS[v]),
    ("list_", "", "liste {}", lambda v: _LIST_STATES[v]),
    ("", "_sent", "avis après l'envoi de l'étape « {} »", _as_is),
    ("rejected_", "", "refusé par le fournisseur (statut {})", _as_is),
    ("http_", "", "refusé par le fournisseur (statut HTTP {})", _as_is),
    ("sendgrid_", "", "refusé par SendGrid (statut {})", _as_is),
    ("dropped: ", "", "courriel abandonné par le fournisseur : {}", _as_is),
    # Targeting, qualified by the criterion's id (care) or the excluded criterion's kind;
    # the campaign's own `label` of a care criterion is shown next to these words.
    ("care_found:", "", "soin trouvé dans la période, qui exclut de la campagne ({})", _as_is),
    ("care_missing:", "", "soin exigé absent de la période ({})", _as_is),
    ("excluded:", "", "exclue par la règle de la campagne (critère {})", _as_is),
)
# How each family's codes look in the source (`f"outcome_{x}"` is `outcome_{}`).
FAMILY_PATTERNS = frozenset(f"{prefix}{{}}{suffix}" for prefix, suffix, _, _ in FAMILIES)


_BY_VALUE: dict[str, Reason] = {r.value: r for r in Reason}


class UnknownReason(LookupError):
    """A reason code with no words: add it to `Reason` and `LABELS` (or to a family)."""


def reason_label(code: str) -> str:
    """The French words for a reason code; UnknownReason when it has none."""
    known = ALIASES.get(code) or _BY_VALUE.get(code)
    if known is not None:
        return LABELS[known]
    for prefix, suffix, words, inner in FAMILIES:
        if code.startswith(prefix) and code.endswith(suffix):
            value = code[len(prefix) : len(code) - len(suffix)]
            if value:
                try:
                    return words.format(inner(value))
                except LookupError:  # not a value this family knows
                    continue
    raise UnknownReason(code)


def explain(code: str) -> str:
    """The words for a reason code, or the code itself (a provider's free text) when none."""
    try:
        return reason_label(code)
    except UnknownReason:
        return code


def targeting_reason_label(code: str, labels: dict[str, str] | None = None) -> str:
    """The words for a targeting reason; a `care_…:<id>` one with the criterion's label
    (`labels`: criterion id -> the campaign's words) when the campaign gives one."""
    head, _, qualifier = code.partition(":")
    if qualifier and labels and qualifier in labels and head in ("care_found", "care_missing"):
        return f"{LABELS[Reason(head)]} : {labels[qualifier]}"
    return reason_label(code)


def canonical(code: str) -> str:
    """The code an older code now goes by (itself when current)."""
    return ALIASES.get(code, code)


def opposed_to(channel: str) -> Reason:
    """The reason for an opposition to one channel (or to every contact: `all`)."""
    return Reason(f"opposed_{channel}")


# The contact detail each channel needs, and the reason when it is missing.
MISSING_DETAIL: dict[Channel, Reason] = {
    Channel.PHONE: Reason.NO_PHONE,
    Channel.EMAIL: Reason.NO_EMAIL,
    Channel.LETTER: Reason.NO_ADDRESS,
    Channel.MAILBOX: Reason.NO_COMPTE_AMELI,
}
