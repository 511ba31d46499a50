"""Summaries of benchmark results.

Two inputs:

- a pytest-benchmark JSON file: prints every variant's median and its ratio against the reference.
  Interleaved groups (bench_drop.py, bench_mining.py) carry every variant's median in extra_info; the other
  benchmarks have one variant per entry.
      pytest benchmarks/ --benchmark-json=results.json && python benchmarks/summarize.py results.json
- the OUTDIR of a GPU check (scripts/gpu_check.sh): prints the GPU tables, and with --write-readme
  puts them into the GPU section of benchmarks/README.md (between the gpu-table markers). GPU numbers
  get into the README only this way, never by hand; a CPU rehearsal's OUTDIR is refused unless
  --allow-rehearsal (for testing this script), and is then labelled as such.
      python benchmarks/summarize.py --gpu OUTDIR [--write-readme]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
from pathlib import Path
from typing import Any

__all__ = ["BEGIN", "END", "NOT_MEASURED", "gpu_tables", "replace_gpu_section"]

README = Path(__file__).resolve().parent / "README.md"
BEGIN = "<!-- gpu-table:begin (written by benchmarks/summarize.py --gpu OUTDIR --write-readme; never by hand) -->"
END = "<!-- gpu-table:end -->"
NOT_MEASURED = ("No GPU run has been measured yet: the table appears here when `scripts/gpu_check.sh` has run on "
                "a GPU and `python benchmarks/summarize.py --gpu OUTDIR --write-readme` has been run on its OUTDIR.")


def pytest_benchmark_summary(json_file: str, baseline: str) -> None:
    with open(json_file) as f:
        data = json.load(f)
    groups: dict[str, dict[str, float]] = collections.defaultdict(dict)
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        if "medians_s" in info:  # a group timed interleaved (bench_utils.record_group): every variant
            groups[bench["group"]].update(info["medians_s"])
        else:  # one variant per benchmark
            groups[bench["group"]][info.get("variant", bench["name"])] = bench["stats"]["median"]
    print(f"machine: {data['machine_info'].get('cpu', {}).get('brand_raw', '?')}; "
          f"python {data['machine_info'].get('python_version')}")
    for group, medians in sorted(groups.items()):
        base = medians.get(baseline)
        cells = []
        for variant, median in sorted(medians.items(), key=lambda kv: kv[1]):
            ratio = f" ({base / median:.2f}x)" if base else ""
            cells.append(f"{variant} {median * 1e3:.3f} ms{ratio}")
        print(f"{group}: " + "; ".join(cells))


def _load(outdir: Path, name: str) -> dict[str, Any] | None:
    try:
        return json.loads((outdir / f"{name}.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _us(variant: dict[str, Any] | None) -> str:
    if not variant:
        return "-"
    if "error" in variant:
        return "error"
    us = variant["median_us"]
    return f"{us / 1e3:.2f} ms" if us >= 1e4 else f"{us:.1f} us"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _num(value: Any, suffix: str = "") -> str:
    return "-" if value is None else f"{value}{suffix}"


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


def _ops_table(doc: dict[str, Any]) -> list[str]:
    copy = doc["results"].get("copy") or {}
    lines = [f"D2D copy of {_mib(copy.get('bytes', 0) // 2 or None)}: {_num(copy.get('gbps'), ' GB/s')} (read + write); "
             f"shape {'x'.join(map(str, doc['results'].get('shape', [])))}, rect {doc['results'].get('rect')}.", "",
             "| op | pass | layout | dtype | fused | GB/s | % of copy | predicted | % of floor | reference | compiled "
             "| reference / fused | compiled / fused |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in doc["results"].get("cases", []):
        v = r.get("variants", {})
        predicted = "-" if r.get("predicted_us") is None else f"{r['predicted_us']:.1f} us"
        lines.append(f"| {r['op']} | {r['pass']} | {r['layout']} | {r['dtype']} | {_us(v.get('fused'))} | "
                     f"{_num(r.get('gbps'))} | {_num(r.get('pct_of_copy_bw'), '%')} | {predicted} | "
                     f"{_num(r.get('pct_of_floor'), '%')} | {_us(v.get('reference'))} | {_us(v.get('compiled'))} | "
                     f"{_x(r.get('reference_over_fused'))} | {_x(r.get('compiled_over_fused'))} |")
    return lines


def _mining_table(doc: dict[str, Any]) -> list[str]:
    names = ["fused", "reference", "mask", "pml", "compiled"]
    lines = ["| N | D | pass | " + " | ".join(names) + " | predicted | % of floor | reference / fused | "
             "compiled / fused | peak fused | peak reference |", "| --- " * (len(names) + 9) + "|"]
    for r in doc["results"].get("cases", []):
        v = r.get("variants", {})
        predicted = "-" if r.get("predicted_us") is None else f"{r['predicted_us']:.1f} us"
        lines.append(f"| {r['N']} | {r['D']} | {r['pass']} | " + " | ".join(_us(v.get(n)) for n in names)
                     + f" | {predicted} | {_num(r.get('pct_of_floor'), '%')} | {_x(r.get('reference_over_fused'))} | {_x(r.get('compiled_over_fused'))} | "
                     f"{_mib((v.get('fused') or {}).get('peak_bytes'))} | {_mib((v.get('reference') or {}).get('peak_bytes'))} |")
    return lines


def _train_table(doc: dict[str, Any]) -> list[str]:
    res = doc["results"]
    shape = res.get("shape", {})
    v = res.get("variants", {})
    f, ref = v.get("fused") or {}, v.get("reference") or {}
    return ["| step | fused | reference | reference / fused | images/s fused | peak fused | peak reference |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            f"| {shape.get('backbone')} {shape.get('height')}x{shape.get('width')}, batch "
            f"{shape.get('ids', 0) * shape.get('k', 0)}, {res.get('amp')}, channels_last | {_us(f)} | {_us(ref)} | "
            f"{_x(res.get('reference_over_fused'))} | {_num(f.get('images_per_s'))} | {_mib(f.get('peak_bytes'))} | "
            f"{_mib(ref.get('peak_bytes'))} |"]


def _targets(docs: list[dict[str, Any]]) -> list[str]:
    missed = [t for d in docs for t in d["results"].get("targets", []) if not t["met"]]
    met = sum(1 for d in docs for t in d["results"].get("targets", []) if t["met"])
    lines = [f"kernels.md targets: {met} met, {len(missed)} missed."]
    lines += [f"- missed: {t['target']} (measured {t['value']})" for t in missed]
    return lines


def gpu_tables(outdir: Path, allow_rehearsal: bool = False) -> str:
    """The markdown of the GPU section's body from a GPU check's OUTDIR."""
    summary = _load(outdir, "summary")
    if summary is None:
        raise SystemExit(f"summarize: {outdir}/summary.json not found: not the OUTDIR of scripts/gpu_check.sh")
    if summary.get("rehearsal") and not allow_rehearsal:
        raise SystemExit(f"summarize: {outdir} holds a CPU rehearsal, not GPU numbers (--allow-rehearsal to test)")
    env = summary.get("environment") or {}
    stages = ", ".join(f"{s['name']} {s['status']}" for s in summary.get("stages", []))
    kind = "**CPU REHEARSAL (not GPU numbers)**" if summary.get("rehearsal") else "Measured"
    lines = [f"{kind} {summary.get('started')} on {env.get('gpu', 'no GPU')} (sm {env.get('capability', '-')}), "
             f"torch {env.get('torch')} (CUDA {env.get('torch_cuda')}), commit {env.get('commit')}. "
             f"Medians of interleaved CUDA-event timings; stages: {stages}.", ""]
    docs = []
    for name, title, table in (("bench_ops", "Batch DropBlock ops", _ops_table),
                               ("bench_mining", "Mining + soft-margin triplet loss (float32, K = 4)", _mining_table),
                               ("bench_train", "Training step", _train_table)):
        doc = _load(outdir, name)
        if doc is None:
            lines += [f"**{title}**: not measured (no {name}.json).", ""]
            continue
        docs.append(doc)
        status = "" if doc["status"] == "pass" else f" (stage {doc['status']}: partial)"
        lines += [f"**{title}**{status}", ""] + table(doc) + [""]
    return "\n".join(lines + _targets(docs))


def replace_gpu_section(text: str, body: str) -> str:
    """``text`` with everything between the gpu-table markers replaced by ``body``."""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit("summarize: the README has no gpu-table markers")
    return pattern.sub(lambda _: f"{BEGIN}\n{body}\n{END}", text, count=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json_file", nargs="?", help="output of pytest --benchmark-json")
    parser.add_argument("--baseline", default="reference", help="variant the ratios are taken against")
    parser.add_argument("--gpu", type=Path, metavar="OUTDIR", help="the OUTDIR of scripts/gpu_check.sh")
    parser.add_argument("--write-readme", action="store_true", help="with --gpu: update the README's GPU section")
    parser.add_argument("--readme", type=Path, default=README, help="the README to update (benchmarks/README.md)")
    parser.add_argument("--allow-rehearsal", action="store_true", help="accept a CPU rehearsal's OUTDIR (tests)")
    args = parser.parse_args()
    if args.gpu is None:
        if args.json_file is None:
            parser.error("give a pytest-benchmark JSON file or --gpu OUTDIR")
        pytest_benchmark_summary(args.json_file, args.baseline)
        return
    body = gpu_tables(args.gpu, args.allow_rehearsal)
    print(body)
    if args.write_readme:
        args.readme.write_text(replace_gpu_section(args.readme.read_text(), body))


if __name__ == "__main__":
    main()
