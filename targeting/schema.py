"""The shape of an extract: every table, its columns and their logical types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LogicalType = Literal["str", "int", "date", "bool"]

PERSON_KEY = ("ben_nir_psa", "ben_rng_gem")

JOIN_KEYS = (
    "dct_ord_num",
    "flx_dis_dtd",
    "flx_emt_num",
    "flx_emt_ord",
    "flx_emt_typ",
    "flx_trt_dtd",
    "org_cle_num",
    "prs_ord_num",
    "rem_typ_aff",
)

# SNDS writes an unknown or absent date as 1600-01-01.
SENTINEL_DATE = "1600-01-01"


@dataclass(frozen=True)
class Column:
    """One column of an extract table."""

    name: str
    type: LogicalType
    nullable: bool = False
    pattern: str | None = None  # a regular expression every text value must match


@dataclass(frozen=True)
class Table:
    """One table of an extract."""

    name: str
    columns: tuple[Column, ...]
    description: str
    # Read only by campaigns that need it: an extract without it serves the others.
    optional: bool = False

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _key() -> tuple[Column, ...]:
    return (Column("ben_nir_psa", "str"), Column("ben_rng_gem", "int"))


_JOIN_TYPES: dict[str, LogicalType] = {
    "dct_ord_num": "int",
    "flx_dis_dtd": "date",
    "flx_emt_num": "int",
    "flx_emt_ord": "int",
    "flx_emt_typ": "int",
    "flx_trt_dtd": "date",
    "org_cle_num": "str",
    "prs_ord_num": "int",
    "rem_typ_aff": "int",
}


def _join() -> tuple[Column, ...]:
    return tuple(Column(k, _JOIN_TYPES[k]) for k in JOIN_KEYS)


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "ir_ben_r",
            (
                *_key(),
                Column("ben_sex_cod", "int"),
                Column("ben_nai_ann", "str", pattern="[0-9]{4}"),  # YYYY, "1600" = unknown
                Column("ben_nai_moi", "str", pattern="[0-9]{2}"),  # MM
                Column("ben_res_dpt", "str"),
                Column("ben_dcd_dte", "date", nullable=True),  # empty or 1600-01-01 = alive
            ),
            "beneficiaries",
        ),
        Table(
            "ir_imb_r",
            (
                *_key(),
                Column("imb_ald_num", "int", nullable=True),
                Column("imb_ald_dtd", "date"),
                Column("imb_ald_dtf", "date"),  # 1600-01-01 = no end date
                Column("imb_etm_nat", "int"),
                Column("med_mtf_cod", "str", nullable=True),
            ),
            "ALD periods",
        ),
        Table(
            "ir_mtt_r",
            (
                *_key(),
                Column("mtt_dep_dte", "date"),
                Column("mtt_fin_dte", "date", nullable=True),  # empty = ongoing
            ),
            "médecin traitant declarations",
        ),
        Table(
            "er_prs_f",
            (
                *_key(),
                Column("prs_nat_ref", "int"),
                Column("exe_soi_dtd", "date"),
                Column("pse_spe_cod", "int"),
                *_join(),
            ),
            "care lines",
        ),
        Table("er_cam_f", (*_join(), Column("cam_prs_ide", "str")), "CCAM acts"),
        # A CIP13 has 13 digits like a NIR without its key: only person-key columns are
        # checked for identifier shapes, so it is never refused as one.
        Table(
            "er_pha_f",
            (
                *_join(),
                Column("pha_prs_c13", "str", pattern="[0-9]{13}"),
                Column("pha_act_qsn", "int"),
            ),
            "pharmacy lines",
            optional=True,
        ),
        Table(
            "ir_pha_r",
            (
                Column("pha_cip_c13", "str", pattern="[0-9]{13}"),
                Column("pha_atc_c07", "str", pattern="[A-Z][0-9]{2}[A-Z]{2}[0-9]{2}"),
            ),
            "drug referential",
            optional=True,
        ),
        Table("er_bio_f", (*_join(), Column("bio_prs_ide", "str")), "lab tests (NABM)"),
        Table(
            "contacts",
            (
                *_key(),
                Column("nir", "str"),
                Column("civilite", "str"),
                Column("nom", "str"),
                Column("prenom", "str"),
                Column("adresse_l1", "str", nullable=True),
                Column("adresse_l2", "str", nullable=True),
                Column("adresse_l3", "str", nullable=True),
                Column("adresse_l4", "str", nullable=True),
                Column("adresse_l5", "str", nullable=True),
                Column("adresse_l6", "str"),
                Column("telephone", "str", nullable=True),  # E.164
                Column("email", "str", nullable=True),
                Column("compte_ameli", "bool"),
                Column("echelon", "str"),
                Column("caisse", "str"),
            ),
            "the fund's contact file",
        ),
        Table(
            "sophia_adhesions",
            (*_key(), Column("date_adhesion", "date")),
            "programme enrolments",
        ),
        Table(
            "oppositions",
            (*_key(), Column("date_opposition", "date"), Column("canal", "str")),
            "oppositions (all, phone, mailbox, email, letter)",
        ),
    )
}


def programme_table(name: str, date_column: str = "date_adhesion") -> Table:
    """A programme's enrolment table, as a campaign names it: the person key and a date."""
    return Table(name, (*_key(), Column(date_column, "date")), "programme enrolments")


def table_spec(name: str, date_column: str | None = None) -> Table:
    """The spec of a table: a known one, or a programme table built from its date column."""
    if date_column is None and name in TABLES:
        return TABLES[name]
    return programme_table(name, date_column or "date_adhesion")


# Every extract holds these; the optional ones only when a campaign reads them.
REQUIRED_TABLES = tuple(name for name, t in TABLES.items() if not t.optional)

OPPOSITION_CHANNELS = ("all", "phone", "mailbox", "email", "letter")

# The eight local échelons of the DRSM Île-de-France, keyed by their département.
ECHELONS: dict[str, str] = {
    "75": "Paris",
    "77": "Seine-et-Marne",
    "78": "Yvelines",
    "91": "Essonne",
    "92": "Hauts-de-Seine",
    "93": "Seine-Saint-Denis",
    "94": "Val-de-Marne",
    "95": "Val-d'Oise",
}
