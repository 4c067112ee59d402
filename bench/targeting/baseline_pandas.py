"""A straightforward pandas implementation of a targeting rule: the benchmark's baseline
and the tests' oracle (it must give the same rows as the DuckDB engine).

It loads whole tables into memory, as an analyst's notebook would.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from targeting.rule import (
    Age,
    AldRenewal,
    Alive,
    HasContact,
    MedecinTraitant,
    NoOpposition,
    NotEnrolled,
    Residence,
    Sex,
    TargetingRule,
)
from targeting.schema import JOIN_KEYS, TABLES

KEY = ["ben_nir_psa", "ben_rng_gem"]
SENTINEL = pd.Timestamp("1600-01-01")


def _read(extract: Path, table: str) -> pd.DataFrame:
    pq = extract / f"{table}.parquet"
    if pq.exists():
        df = pd.read_parquet(pq)
    else:
        df = pd.read_csv(extract / f"{table}.csv", dtype=str, keep_default_na=False)
        df = df.replace("", None)
    for c in TABLES[table].columns:
        if c.type == "date":
            df[c.name] = pd.to_datetime(df[c.name], format="%Y-%m-%d")
        elif c.type == "int":
            df[c.name] = pd.to_numeric(df[c.name]).astype("Int64")
        elif c.type == "bool" and df[c.name].dtype == object:
            df[c.name] = df[c.name].str.lower() == "true"
        elif c.type == "str":
            df[c.name] = df[c.name].astype("string")
    return df


def _keys(df: pd.DataFrame) -> pd.Index:
    return pd.MultiIndex.from_frame(df[KEY].astype({"ben_rng_gem": "int64"}))


def run_baseline(*, rule: TargetingRule, extract: Path, as_of: date) -> pd.DataFrame:
    """One row per person of ir_ben_r with the same columns as the engine's output."""
    extract = Path(extract)
    d = pd.Timestamp(as_of)
    ben = _read(extract, "ir_ben_r")
    ben["ben_rng_gem"] = ben["ben_rng_gem"].astype("int64")
    idx = _keys(ben)
    reasons: list[pd.Series] = []
    ald_end = pd.Series(pd.NaT, index=idx, dtype="datetime64[s]")
    contacts = _read(extract, "contacts")
    echelon = contacts.groupby(KEY)["echelon"].min()
    has_contact = idx.isin(_keys(contacts))

    def reason(mask: object, code: str) -> pd.Series:
        return pd.Series(mask, index=idx).map({True: code, False: None})

    for c in rule.criteria:
        if isinstance(c, Alive):
            dead = (
                ben["ben_dcd_dte"].notna()
                & (ben["ben_dcd_dte"] != SENTINEL)
                & (ben["ben_dcd_dte"] <= d)
            )
            reasons.append(reason(dead.to_numpy(), "deceased"))
        elif isinstance(c, Age):
            year = pd.to_numeric(ben["ben_nai_ann"], errors="coerce")
            month = pd.to_numeric(ben["ben_nai_moi"], errors="coerce")
            unknown = year.isna() | (year == 1600) | month.isna() | ~month.between(1, 12)
            age = as_of.year - year - (as_of.month < month).astype(int)
            r = pd.Series(None, index=idx, dtype=object)
            if c.max_years is not None:
                r[(~unknown & (age > c.max_years)).to_numpy()] = "over_age"
            if c.min_years is not None:
                r[(~unknown & (age < c.min_years)).to_numpy()] = "under_age"
            r[unknown.to_numpy()] = "birth_date_unknown"
            reasons.append(r)
        elif isinstance(c, Sex):
            reasons.append(
                reason((~ben["ben_sex_cod"].isin(c.codes)).to_numpy(), "sex_not_targeted")
            )
        elif isinstance(c, Residence):
            reasons.append(
                reason(
                    (~ben["ben_res_dpt"].isin(c.departements)).to_numpy(), "residence_not_targeted"
                )
            )
        elif isinstance(c, AldRenewal):
            imb = _read(extract, "ir_imb_r")
            code = imb["med_mtf_cod"].fillna("")
            kind = (imb["imb_ald_num"] == c.ald_num).fillna(False)
            for p in c.icd10_prefixes:
                kind |= code.str.startswith(p)
            ald = imb[kind & imb["imb_etm_nat"].isin(c.etm_nat) & (imb["imb_ald_dtd"] <= d)].copy()
            ald["open"] = ald["imb_ald_dtf"] == SENTINEL
            ald["end"] = ald["imb_ald_dtf"].where(~ald["open"])
            g = ald.groupby(KEY).agg(open=("open", "any"), end=("end", "max"))
            g.index = g.index.set_levels(g.index.levels[1].astype("int64"), level=1)
            g = g.reindex(idx)
            ald_end = g["end"]
            r = pd.Series(None, index=idx, dtype=object)
            outside = ~((g["end"] > d) & (g["end"] <= d + timedelta(days=rule.horizon_days)))
            r[outside.to_numpy()] = "renewal_outside_horizon"
            r[(g["open"] == True).to_numpy()] = "ald_open_ended"  # noqa: E712
            r[g["open"].isna().to_numpy()] = "no_ald_period"
            reasons.append(r)
        elif isinstance(c, MedecinTraitant):
            mtt = _read(extract, "ir_mtt_r")
            on = (mtt["mtt_dep_dte"] <= d) & (
                mtt["mtt_fin_dte"].isna()
                | (mtt["mtt_fin_dte"] == SENTINEL)
                | (mtt["mtt_fin_dte"] >= d)
            )
            reasons.append(reason(~idx.isin(_keys(mtt[on])), "no_medecin_traitant"))
        elif isinstance(c, NotEnrolled):
            enr = _read(extract, c.table)
            reasons.append(
                reason(idx.isin(_keys(enr[enr["date_adhesion"] <= d])), "already_enrolled")
            )
        elif isinstance(c, NoOpposition):
            opp = _read(extract, "oppositions")
            hit = opp[(opp["date_opposition"] <= d) & opp["canal"].isin(c.channels)]
            reasons.append(reason(idx.isin(_keys(hit)), "opposed"))
        elif isinstance(c, HasContact):
            reasons.append(reason(~has_contact, "no_contact_record"))

    out = pd.DataFrame(index=idx)
    if rule.gaps:
        prs = _read(extract, "er_prs_f")
        for name, g in rule.gaps.items():
            years = [as_of.year + y for y in g.years]
            lines = prs[prs["exe_soi_dtd"].dt.year.isin(years)]
            if g.source == "specialty":
                hit = lines[lines["pse_spe_cod"].isin([int(x) for x in g.codes])]
            else:
                table, col = (
                    ("er_bio_f", "bio_prs_ide")
                    if g.source == "lab"
                    else ("er_cam_f", "cam_prs_ide")
                )
                acts = _read(extract, table)
                acts = acts[acts[col].isin(g.codes)]
                hit = lines.merge(acts[list(JOIN_KEYS)], on=list(JOIN_KEYS))
            out[name] = ~idx.isin(_keys(hit))
    text = np.full(len(idx), "", dtype=object)
    for r in reasons:
        hit = r.notna().to_numpy()
        code = r.fillna("").to_numpy(dtype=object)
        text = np.where(hit, np.where(text == "", code, text + ";" + code), text)
    out["reasons"] = text
    out["eligible"] = out["reasons"] == ""
    prio = pd.Series(False, index=idx)
    if rule.priority is not None:
        if rule.priority.all_of:
            prio = out[rule.priority.all_of].all(axis=1)
        else:
            prio = out[rule.priority.any_of or []].any(axis=1)
    out["priority"] = out["eligible"] & prio
    out["ald_end_date"] = ald_end.dt.date
    ech = echelon.copy()
    ech.index = ech.index.set_levels(ech.index.levels[1].astype("int64"), level=1)
    out["echelon"] = ech.reindex(idx).fillna(pd.Series(ben["ben_res_dpt"].to_numpy(), index=idx))
    out = out.reset_index()
    cols = [
        "ben_nir_psa",
        "ben_rng_gem",
        "eligible",
        "priority",
        *rule.gaps,
        "ald_end_date",
        "echelon",
        "reasons",
    ]
    return out[cols].sort_values(KEY).reset_index(drop=True)
