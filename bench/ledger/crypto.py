"""Benchmark: encrypting and decrypting contact data, Fernet (before) against g1 (AES-256-GCM).

    uv run python bench/ledger/crypto.py [--values 100000 --repeat 3]

Each repeat encrypts then decrypts `values` NIR-like strings through `campaigns.ledger.crypto`
(g1, what is written now) and through the same keyring's Fernet (what was written before);
medians in µs per value, raw runs in bench/results/issue18/crypto.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--values", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from campaigns.ledger import crypto

    crypto.set_keys([crypto.new_key(), crypto.new_key()])
    ring = crypto.keyring()
    values = [f"1{i % 99:02d}0775{i:07d}" for i in range(args.values)]
    runs: dict[str, list[float]] = {k: [] for k in ("fernet_enc", "fernet_dec", "g1_enc", "g1_dec")}

    def timed(name: str, fn: object, items: list[str]) -> list[str]:
        t = time.perf_counter()
        out = [fn(v) for v in items]  # type: ignore[operator]
        runs[name].append((time.perf_counter() - t) * 1e6 / len(items))
        return out

    for _ in range(args.repeat):
        tokens = timed("fernet_enc", lambda v: ring.fernet.encrypt(v.encode()).decode(), values)
        back = timed("fernet_dec", lambda t: ring.fernet.decrypt(t.encode()).decode(), tokens)
        assert back == values
        tokens = timed("g1_enc", crypto.encrypt, values)
        back = timed("g1_dec", crypto.decrypt, tokens)
        assert back == values
    out = {
        "values": args.values,
        "runs_us_per_value": {k: [round(x, 2) for x in v] for k, v in runs.items()},
        "median_us_per_value": {k: round(statistics.median(v), 2) for k, v in runs.items()},
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }
    print(json.dumps(out, indent=2))
    dest = ROOT / "bench" / "results" / "issue18" / "crypto.json"
    dest.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
