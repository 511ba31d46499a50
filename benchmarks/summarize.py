"""Print speed-ups against the reference variant from a pytest-benchmark JSON file.

Interleaved groups (bench_drop.py, bench_mining.py) carry every variant's median in extra_info;
the other benchmarks have one variant per entry.

    pytest benchmarks/ --benchmark-json=results.json && python benchmarks/summarize.py results.json
"""

from __future__ import annotations

import argparse
import collections
import json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json_file", help="output of pytest --benchmark-json")
    parser.add_argument("--baseline", default="reference", help="variant the ratios are taken against")
    args = parser.parse_args()
    with open(args.json_file) as f:
        data = json.load(f)
    groups = collections.defaultdict(dict)
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        if "medians_s" in info:  # a group timed interleaved (bench_utils.record_group): every variant
            groups[bench["group"]].update(info["medians_s"])
        else:  # one variant per benchmark
            groups[bench["group"]][info.get("variant", bench["name"])] = bench["stats"]["median"]
    print(f"machine: {data['machine_info'].get('cpu', {}).get('brand_raw', '?')}; "
          f"python {data['machine_info'].get('python_version')}")
    for group, medians in sorted(groups.items()):
        base = medians.get(args.baseline)
        cells = []
        for variant, median in sorted(medians.items(), key=lambda kv: kv[1]):
            ratio = f" ({base / median:.2f}x)" if base else ""
            cells.append(f"{variant} {median * 1e3:.3f} ms{ratio}")
        print(f"{group}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
