"""Print speed-ups against the reference variant from a pytest-benchmark JSON file.

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
        variant = bench["extra_info"].get("variant", bench["name"])
        groups[bench["group"]][variant] = bench["stats"]["median"]
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
