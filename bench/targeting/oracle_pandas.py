"""An independent pandas interpreter of the whole targeting vocabulary: the tests' oracle.

It reads whole tables and evaluates each criterion, composite and window with pandas
operations (nothing here comes from the SQL compiler), so that a test can ask DuckDB and
this oracle the same question and compare the rows.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from targeting.rule import (
    Age,
    AldInForce,
    AldRenewal,
    Alive,
    AllOf,
    AnyOf,
    Care,
    HasContact,
    MedecinTraitant,
    NoCare,
    Node,
    NoOpposition,
    Not,
    NotEnrolled,
    Residence,
    Sex,
    Source,
    TargetingRule,
    Window,
)
from targeting.schema import JOIN_KEYS, TABLES, Table, programme_table

KEY = ["ben_nir_psa", "ben_rng_gem"]
SENTINEL = pd.Timestamp("1600-01-01")


def _read(extract: Path, spec: Table) -> pd.DataFrame:
    pq = extract / f"{spec.name}.parquet"
    if pq.exists():
        df = pd.read_parquet(pq)
    else:
        df = pd.read_csv(extract / f"{spec.name}.csv", dtype=str, keep_default_na=False)
        df = df.replace("", None)
    for c in spec.columns:
        if c.type == "date":
            df[c.name] = pd.to_datetime(df[c.name], format="%Y-%m-%d")
        elif c.type == "int":
            df[c.name] = pd.to_numeric(df[c.name]).astype("Int64")
        elif c.type == "bool" and df[c.name].dtype == object:
            df[c.name] = df[c.name].str.lower() == "true"
        elif c.type == "str":
            df[c.name] = df[c.name].astype("string")
    return df


class Oracle:
    """The rule's answer for every person of `ir_ben_r`, computed with pandas."""

    def __init__(self, rule: TargetingRule, extract: Path, as_of: date) -> None:
        self.rule, self.extract, self.as_of = rule, Path(extract), as_of
        self.d = pd.Timestamp(as_of)
        self.ben = self.table("ir_ben_r")
        self.ben["ben_rng_gem"] = self.ben["ben_rng_gem"].astype("int64")
        self.idx = self.keys(self.ben)
        self.ald_end = pd.Series(pd.NaT, index=self.idx, dtype="datetime64[s]")

    def table(self, name: str, date_column: str | None = None) -> pd.DataFrame:
        spec = programme_table(name, date_column) if date_column else TABLES[name]
        return _read(self.extract, spec)

    @staticmethod
    def keys(df: pd.DataFrame) -> pd.Index:
        return pd.MultiIndex.from_frame(df[KEY].astype({"ben_rng_gem": "int64"}))

    def among(self, df: pd.DataFrame) -> np.ndarray:
        """For each person: has a row in df."""
        return np.asarray(self.idx.isin(self.keys(df)))

    def code(self, mask: np.ndarray | pd.Series, code: str) -> pd.Series:
        return pd.Series(np.where(np.asarray(mask, dtype=bool), code, ""), index=self.idx)

    # -- windows and care acts -------------------------------------------------------------
    def window_mask(self, w: Window, dates: pd.Series) -> pd.Series:
        d = self.d
        if w.years is not None:
            years = {self.as_of.year + y for y in w.years}
            return dates.dt.year.isin(years) & (dates <= d)
        if w.days is not None:
            return (dates > d - pd.Timedelta(days=w.days)) & (dates <= d)
        if w.months is not None:
            return (dates > d - pd.DateOffset(months=w.months)) & (dates <= d)
        assert w.since is not None
        return (dates >= pd.Timestamp(self.rule.parameters[w.since])) & (dates <= d)

    def acts(self, source: Source, codes: list[str], w: Window) -> np.ndarray:
        prs = self.table("er_prs_f")
        lines = prs[self.window_mask(w, prs["exe_soi_dtd"])]
        if source == "specialty":
            hit = lines[lines["pse_spe_cod"].isin([int(x) for x in codes])]
        elif source == "drug":
            pha = self.table("er_pha_f")
            ref = self.table("ir_pha_r")
            atc = ref["pha_atc_c07"].fillna("")
            ok = ref[np.logical_or.reduce([atc.str.startswith(c) for c in codes])]
            pha = pha[pha["pha_prs_c13"].isin(ok["pha_cip_c13"])]
            hit = lines.merge(pha[list(JOIN_KEYS)], on=list(JOIN_KEYS))
        else:
            table, col = (
                ("er_bio_f", "bio_prs_ide") if source == "lab" else ("er_cam_f", "cam_prs_ide")
            )
            acts = self.table(table)
            acts = acts[acts[col].isin(codes)]
            hit = lines.merge(acts[list(JOIN_KEYS)], on=list(JOIN_KEYS))
        return self.among(hit)

    # -- criteria --------------------------------------------------------------------------
    def age(self, c: Age) -> pd.Series:
        year = pd.to_numeric(self.ben["ben_nai_ann"], errors="coerce")
        month = pd.to_numeric(self.ben["ben_nai_moi"], errors="coerce")
        unknown = (year.isna() | (year == 1600) | month.isna() | ~month.between(1, 12)).to_numpy()
        age = (self.as_of.year - year - (self.as_of.month < month).astype(int)).to_numpy()
        out = np.full(len(self.idx), "", dtype=object)
        checks = []
        if c.min_years is not None:
            checks.append((age < c.min_years, "under_age"))
        if c.max_years is not None:
            checks.append((age > c.max_years, "over_age"))
        if c.exact_years:
            checks.append((~np.isin(age, c.exact_years), "not_exact_age"))
        for mask, code in reversed(checks):
            out = np.where(~unknown & mask, code, out)
        out = np.where(unknown, "birth_date_unknown", out)
        return pd.Series(out, index=self.idx)

    def ald_renewal(self, c: AldRenewal) -> pd.Series:
        imb = self.table("ir_imb_r")
        kind = (imb["imb_ald_num"] == c.ald_num).fillna(False)
        for p in c.icd10_prefixes:
            kind |= imb["med_mtf_cod"].fillna("").str.startswith(p)
        ald = imb[kind & imb["imb_etm_nat"].isin(c.etm_nat) & (imb["imb_ald_dtd"] <= self.d)].copy()
        ald["open"] = ald["imb_ald_dtf"] == SENTINEL
        ald["end"] = ald["imb_ald_dtf"].where(~ald["open"])
        ald["ben_rng_gem"] = ald["ben_rng_gem"].astype("int64")
        g = ald.groupby(KEY).agg(open=("open", "any"), end=("end", "max")).reindex(self.idx)
        self.ald_end = g["end"]
        assert self.rule.horizon_days is not None
        horizon = self.d + pd.Timedelta(days=self.rule.horizon_days)
        outside = ~((g["end"] > self.d) & (g["end"] <= horizon))
        out = np.where(outside.to_numpy(), "renewal_outside_horizon", "")
        out = np.where((g["open"] == True).to_numpy(), "ald_open_ended", out)  # noqa: E712
        out = np.where(g["open"].isna().to_numpy(), "no_ald_period", out)
        return pd.Series(out, index=self.idx)

    def ald_in_force(self, c: AldInForce) -> pd.Series:
        imb = self.table("ir_imb_r")
        kind = pd.Series(not (c.ald_nums or c.icd10_prefixes), index=imb.index)
        kind |= imb["imb_ald_num"].isin(c.ald_nums).fillna(False).astype(bool)
        for p in c.icd10_prefixes:
            kind |= imb["med_mtf_cod"].fillna("").str.startswith(p)
        nature = imb["imb_etm_nat"].isin(c.etm_nat) if c.etm_nat else True
        on = (imb["imb_ald_dtd"] <= self.d) & (
            (imb["imb_ald_dtf"] == SENTINEL) | (imb["imb_ald_dtf"] >= self.d)
        )
        return self.code(~self.among(imb[kind & nature & on]), "no_ald_in_force")

    def medecin_traitant(self, c: MedecinTraitant) -> pd.Series:
        mtt = self.table("ir_mtt_r")
        end = mtt["mtt_fin_dte"]
        on = (mtt["mtt_dep_dte"] <= self.d) & (end.isna() | (end == SENTINEL) | (end >= self.d))
        has = self.among(mtt[on])
        if c.declared:
            return self.code(~has, "no_medecin_traitant")
        return self.code(has, "has_medecin_traitant")

    def leaf(self, c: Node) -> pd.Series:
        ben, d = self.ben, self.d
        if isinstance(c, Alive):
            dcd = ben["ben_dcd_dte"]
            return self.code((dcd.notna() & (dcd != SENTINEL) & (dcd <= d)).to_numpy(), "deceased")
        if isinstance(c, Age):
            return self.age(c)
        if isinstance(c, Sex):
            return self.code((~ben["ben_sex_cod"].isin(c.codes)).to_numpy(), "sex_not_targeted")
        if isinstance(c, Residence):
            bad = ~ben["ben_res_dpt"].isin(c.departements)
            return self.code(bad.to_numpy(), "residence_not_targeted")
        if isinstance(c, AldRenewal):
            return self.ald_renewal(c)
        if isinstance(c, AldInForce):
            return self.ald_in_force(c)
        if isinstance(c, MedecinTraitant):
            return self.medecin_traitant(c)
        if isinstance(c, Care):
            had = self.acts(c.source, c.codes, c.window)
            if c.present:
                return self.code(~had, f"care_missing:{c.id}")
            return self.code(had, f"care_found:{c.id}")
        if isinstance(c, NotEnrolled):
            enr = self.table(c.table, c.date_column)
            return self.code(self.among(enr[enr[c.date_column] <= d]), "already_enrolled")
        if isinstance(c, NoOpposition):
            opp = self.table("oppositions")
            hit = opp[(opp["date_opposition"] <= d) & opp["canal"].isin(c.channels)]
            return self.code(self.among(hit), "opposed")
        if isinstance(c, HasContact):
            return self.code(~self.among(self.table("contacts")), "no_contact_record")
        raise TypeError(c)

    def node(self, c: Node) -> pd.Series:
        """Reasons per person ('' when the criterion holds)."""
        if isinstance(c, AllOf):
            return _join([self.node(m) for m in c.all_of])
        if isinstance(c, AnyOf):
            parts = [self.node(m) for m in c.any_of]
            held = np.logical_or.reduce([p.to_numpy() == "" for p in parts])
            return _join(parts).where(~held, "")
        if isinstance(c, Not):
            return self.code(self.node(c.not_).to_numpy() == "", f"excluded:{c.not_.kind}")
        return self.leaf(c)

    def gap(self, g: NoCare) -> np.ndarray:
        return ~self.acts(g.source, g.codes, g.span)

    def run(self) -> pd.DataFrame:
        rule = self.rule
        out = pd.DataFrame(index=self.idx)
        reasons = _join([self.node(c) for c in rule.criteria])
        for name, g in rule.gaps.items():
            out[name] = self.gap(g)
        out["eligible"] = (reasons == "").to_numpy()
        prio = pd.Series(False, index=self.idx)
        p = rule.priority
        if p is not None and p.when is not None:
            prio = self.node(p.when) == ""
        elif p is not None and rule.gaps:
            prio = out[p.all_of].all(axis=1) if p.all_of else out[p.any_of or []].any(axis=1)
        out["priority"] = out["eligible"] & prio
        out["ald_end_date"] = self.ald_end.dt.date
        if rule.exact_ages:
            out["birth_date"] = self.birth_dates()
        contacts = self.table("contacts")
        contacts["ben_rng_gem"] = contacts["ben_rng_gem"].astype("int64")
        ech = contacts.groupby(KEY)["echelon"].min().reindex(self.idx)
        out["echelon"] = ech.fillna(pd.Series(self.ben["ben_res_dpt"].to_numpy(), index=self.idx))
        # Each reason once, in the order first given (two any_of branches may share one).
        out["reasons"] = [";".join(dict.fromkeys(r.split(";"))) if r else r for r in reasons]
        out = out.reset_index()
        cols = ["ben_nir_psa", "ben_rng_gem", "eligible", "priority", *rule.gaps, "ald_end_date"]
        cols += ["birth_date"] if rule.exact_ages else []
        return out[[*cols, "echelon", "reasons"]].sort_values(KEY).reset_index(drop=True)

    def birth_dates(self) -> np.ndarray:
        year = pd.to_numeric(self.ben["ben_nai_ann"], errors="coerce")
        month = pd.to_numeric(self.ben["ben_nai_moi"], errors="coerce")
        return np.array(
            [
                None
                if pd.isna(y) or pd.isna(m) or y == 1600 or not 1 <= m <= 12
                else date(int(y), int(m), 1)
                for y, m in zip(year, month, strict=True)
            ],
            dtype=object,
        )


def _join(parts: list[pd.Series]) -> pd.Series:
    """Non-empty reasons joined with ';', in order."""
    out = pd.Series("", index=parts[0].index if parts else None, dtype=object)
    for p in parts:
        out = pd.Series(
            np.where(p == "", out, np.where(out == "", p, out + ";" + p)), index=p.index
        )
    return out


def run_oracle(*, rule: TargetingRule, extract: Path, as_of: date) -> pd.DataFrame:
    """One row per person of ir_ben_r with the same columns as the engine's output."""
    return Oracle(rule, extract, as_of).run()
