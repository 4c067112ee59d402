"""SIMULATION — the claims and registry lines a goal leaves in the next extract.

A campaign whose goal is observed in the data (a care act, a médecin traitant declaration)
learns it from the extract, not from a feed. The demo plays the insurer's side of that: when a
simulated person is vaccinated or declares a médecin traitant, the line the SNDS would carry
(a care line with its pharmacy line, a declaration) is appended to the demo's extract, in the
shape `relance synth` writes, and the platform's own stages find it there.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

Key = tuple[str, int]

# Care lines the demo appends: their own emitter numbers, far from synth's, so the 9 join keys
# of a new line never meet an existing one.
_FIRST_EMITTER = 90_000_000
PHARMACIST = 50  # pse_spe_cod of a pharmacy line, as synth writes them
_NATURE = {"drug": 3317, "lab": 1311, "ccam": 1111, "specialty": 1111}
# The table holding the act's code, and its column, per source (specialty: er_prs_f itself).
_DETAIL = {
    "drug": ("er_pha_f", "pha_prs_c13"),
    "lab": ("er_bio_f", "bio_prs_ide"),
    "ccam": ("er_cam_f", "cam_prs_ide"),
}


@dataclass(frozen=True)
class CareAct:
    """One care act to write: whose, when, what (a source and one code of it)."""

    key: Key
    day: date
    source: str
    code: str


def drug_for(extract: Path, atc_prefixes: list[str]) -> str:
    """A CIP13 of the extract's drug referential whose ATC code starts with a prefix."""
    ref = pq.read_table(extract / "ir_pha_r.parquet").to_pylist()
    for row in sorted(ref, key=lambda r: str(r["pha_cip_c13"])):
        if any(str(row["pha_atc_c07"]).startswith(p) for p in atc_prefixes):
            return str(row["pha_cip_c13"])
    raise ValueError(f"ir_pha_r : aucun médicament de classe ATC {', '.join(atc_prefixes)}")


class ClaimsWriter:
    """Appends care lines and médecin traitant declarations to a Parquet extract.

    Lines are buffered and each touched table is rewritten once per `flush`, atomically.
    """

    def __init__(self, extract: Path) -> None:
        self.extract = extract
        self._rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._line = 0
        self.written: dict[str, int] = defaultdict(int)

    def _join_keys(self, key: Key, day: date) -> dict[str, Any]:
        n = self._line
        self._line += 1
        flux = date(day.year, day.month, 1) + timedelta(days=40)
        return {
            "dct_ord_num": n % 100_000,
            "flx_dis_dtd": flux,
            "flx_emt_num": _FIRST_EMITTER + n // 100_000,
            "flx_emt_ord": 0,
            "flx_emt_typ": 3,
            "flx_trt_dtd": flux - timedelta(days=3),
            "org_cle_num": "0175" + "0000",
            "prs_ord_num": 0,
            "rem_typ_aff": 0,
        }

    def add_care(self, act: CareAct) -> None:
        """A care line in er_prs_f and, but for a specialty, its detail line."""
        joins = self._join_keys(act.key, act.day)
        spe = int(act.code) if act.source == "specialty" else PHARMACIST
        if act.source in ("lab", "ccam"):
            spe = 0
        self._rows["er_prs_f"].append(
            {
                "ben_nir_psa": act.key[0],
                "ben_rng_gem": act.key[1],
                "prs_nat_ref": _NATURE[act.source],
                "exe_soi_dtd": act.day,
                "pse_spe_cod": spe,
                **joins,
            }
        )
        if act.source in _DETAIL:
            table, column = _DETAIL[act.source]
            detail: dict[str, Any] = {**joins, column: act.code}
            if table == "er_pha_f":
                detail["pha_act_qsn"] = 1
            self._rows[table].append(detail)

    def add_declaration(self, key: Key, day: date) -> None:
        """A médecin traitant declaration starting on `day`, open-ended, in ir_mtt_r."""
        self._rows["ir_mtt_r"].append(
            {"ben_nir_psa": key[0], "ben_rng_gem": key[1], "mtt_dep_dte": day, "mtt_fin_dte": None}
        )

    def flush(self) -> dict[str, int]:
        """Rewrite each table that gained lines; the counts of lines added."""
        added: dict[str, int] = {}
        for table, rows in sorted(self._rows.items()):
            if rows:
                self._append(table, rows)
                added[table] = len(rows)
                self.written[table] += len(rows)
        self._rows.clear()
        return added

    def _append(self, table: str, rows: list[dict[str, Any]]) -> None:
        path = self.extract / f"{table}.parquet"
        old = pq.read_table(path)
        names = old.schema.names
        new = pa.Table.from_pylist([{n: r.get(n) for n in names} for r in rows], schema=old.schema)
        merged = pa.concat_tables([old, new])
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(merged, tmp)
        tmp.chmod(path.stat().st_mode & 0o777)
        os.replace(tmp, path)
