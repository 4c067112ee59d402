"""Hand-built extracts for targeting tests: an eligible person by default, edited per case."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from targeting.schema import JOIN_KEYS, TABLES
from tests.factories import valid_nir

D = date(2026, 3, 2)
IN_HORIZON = date(2026, 4, 15)
_ARROW = {"str": pa.string(), "int": pa.int64(), "date": pa.date32(), "bool": pa.bool_()}


@dataclass
class Extract:
    """Rows per table; `person()` adds someone eligible at D unless told otherwise."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {t: [] for t in TABLES})
    _lines: int = 0

    def person(
        self,
        psa: str,
        rng: int = 1,
        *,
        ben: dict[str, Any] | None = None,
        ald: list[dict[str, Any]] | None = None,
        mtt: list[dict[str, Any]] | None = None,
        contact: dict[str, Any] | None = None,
        no_contact: bool = False,
    ) -> Extract:
        """An adult diabetic with a renewal in the horizon, a GP, a contact record."""
        key = {"ben_nir_psa": psa, "ben_rng_gem": rng}
        self.rows["ir_ben_r"].append(
            {
                **key,
                "ben_sex_cod": 2,
                "ben_nai_ann": "1958",
                "ben_nai_moi": "06",
                "ben_res_dpt": "93",
                "ben_dcd_dte": None,
                **(ben or {}),
            }
        )
        default_ald = {
            "imb_ald_num": 8,
            "imb_ald_dtd": date(2021, 4, 16),
            "imb_ald_dtf": IN_HORIZON,
            "imb_etm_nat": 41,
            "med_mtf_cod": "E119",
        }
        for a in [{}] if ald is None else ald:
            self.rows["ir_imb_r"].append({**key, **default_ald, **a})
        for m in [{}] if mtt is None else mtt:
            self.rows["ir_mtt_r"].append(
                {**key, "mtt_dep_dte": date(2015, 1, 1), "mtt_fin_dte": None, **m}
            )
        if not no_contact:
            n = len(self.rows["contacts"])
            self.rows["contacts"].append(
                {
                    **key,
                    "nir": valid_nir(n, 2),
                    "civilite": "Mme",
                    "nom": "MARTIN",
                    "prenom": "Anne",
                    "adresse_l1": "MADAME ANNE MARTIN",
                    "adresse_l2": None,
                    "adresse_l3": None,
                    "adresse_l4": "3 RUE DES ECOLES",
                    "adresse_l5": None,
                    "adresse_l6": "93000 BOBIGNY",
                    "telephone": "+33612345678",
                    "email": None,
                    "compte_ameli": True,
                    "echelon": "93",
                    "caisse": "931",
                    **(contact or {}),
                }
            )
        return self

    def care(
        self,
        psa: str,
        on: date,
        *,
        rng: int = 1,
        specialty: int = 1,
        lab: list[str] | None = None,
        ccam: list[str] | None = None,
        cip: list[str] | None = None,
        break_key: str | None = None,
    ) -> Extract:
        """One care line, with its lab, CCAM and pharmacy rows joined by the 9 keys (or one off)."""
        self._lines += 1
        n = self._lines
        keys: dict[str, Any] = {
            "dct_ord_num": n,
            "flx_dis_dtd": date(on.year, on.month, 1),
            "flx_emt_num": 7,
            "flx_emt_ord": 0,
            "flx_emt_typ": 1,
            "flx_trt_dtd": date(on.year, on.month, 1),
            "org_cle_num": "01931000",
            "prs_ord_num": 0,
            "rem_typ_aff": 1,
        }
        assert set(keys) == set(JOIN_KEYS)
        self.rows["er_prs_f"].append(
            {
                "ben_nir_psa": psa,
                "ben_rng_gem": rng,
                "prs_nat_ref": 1111,
                "exe_soi_dtd": on,
                "pse_spe_cod": specialty,
                **keys,
            }
        )
        act_keys = dict(keys)
        if break_key:
            act_keys[break_key] = (
                "99999999"
                if break_key == "org_cle_num"
                else date(2000, 1, 1)
                if break_key.endswith("_dtd")
                else 12345
            )
        for code in lab or []:
            self.rows["er_bio_f"].append({**act_keys, "bio_prs_ide": code})
        for code in ccam or []:
            self.rows["er_cam_f"].append({**act_keys, "cam_prs_ide": code})
        for code in cip or []:
            self.rows["er_pha_f"].append({**act_keys, "pha_prs_c13": code, "pha_act_qsn": 1})
        return self

    def add(self, table: str, **row: Any) -> Extract:
        """A row of a fund table (sophia_adhesions, oppositions)."""
        self.rows[table].append(row)
        return self

    def write(self, folder: Path, fmt: str = "csv") -> Path:
        """Every table as <table>.csv or <table>.parquet."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, spec in TABLES.items():
            rows = self.rows[name]
            if fmt == "parquet":
                schema = pa.schema([pa.field(c.name, _ARROW[c.type]) for c in spec.columns])
                pq.write_table(
                    pa.Table.from_pylist(rows, schema=schema), folder / f"{name}.parquet"
                )
                continue
            with (folder / f"{name}.csv").open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=spec.column_names)
                w.writeheader()
                for r in rows:
                    w.writerow({k: _text(r.get(k)) for k in spec.column_names})
        return folder


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return v.isoformat() if isinstance(v, date) else str(v)
