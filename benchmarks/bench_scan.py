"""Files per second that ``dexcost scan`` reads from a generated project tree.

Budget: 2,000 files/s. The tree mixes modules with LLM calls, HTTP calls to a
catalog host, paid SDK calls and plain code, about 40 lines each.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import machine_header, median, table

from dexcost.scan import load_catalog, scan_path

BUDGET_FILES_PER_SECOND = 2000

_TEMPLATES = (
    """import openai\nfrom openai import OpenAI\n\nclient = OpenAI()\n\n\ndef answer_{n}(q):\n"""
    """    messages = [{{"role": "user", "content": q}}]\n"""
    """    return client.chat.completions.create(model="m", messages=messages)\n""",
    """import httpx\n\nBASE = "https://serpapi.com"\n\n\nasync def search_{n}(q):\n"""
    """    async with httpx.AsyncClient(base_url=BASE) as c:\n"""
    """        return await c.get(f"/search?q={{q}}")\n""",
    """import boto3\n\n\ndef ocr_{n}(doc):\n    textract = boto3.client("textract")\n"""
    """    return textract.analyze_document(Document=doc)\n""",
    """from dataclasses import dataclass\n\n\n@dataclass\nclass Row{n}:\n"""
    """    a: int\n    b: str\n\n"""
    """    def total(self):\n        return sum(range(self.a)) + len(self.b)\n""",
)
_FILLER = "".join(
    f"\n\ndef helper_{i}(x):\n    y = x * {i}\n    return [y, str(y)]\n" for i in range(6)
)
_CATALOG = [
    {
        "id": "serpapi",
        "name": "SerpApi",
        "hosts": ["serpapi.com"],
        "price_usd": "0.015",
        "per": 1,
        "unit": "search",
    }
]


def build_tree(root: Path, files: int) -> None:
    for number in range(files):
        folder = root / f"pkg{number // 200}"
        folder.mkdir(exist_ok=True)
        body = _TEMPLATES[number % len(_TEMPLATES)].format(n=number) + _FILLER
        (folder / f"module_{number}.py").write_text(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        catalog_path = root / "services.json"
        catalog_path.write_text(json.dumps(_CATALOG))
        tree = root / "tree"
        tree.mkdir()
        build_tree(tree, options.files)
        catalog = load_catalog(catalog_path)
        rates = []
        for _ in range(options.runs):
            start = time.perf_counter()
            result = scan_path(tree, catalog)
            rates.append(result.files_scanned / (time.perf_counter() - start))
    best, typical = max(rates), median(rates)
    verdict = "PASS" if typical >= BUDGET_FILES_PER_SECOND else "FAIL"
    print(machine_header())
    print(
        table(
            ("files", "findings", "median files/s", "best files/s", "budget", "result"),
            [
                (
                    options.files,
                    len(result.findings),
                    f"{typical:,.0f}",
                    f"{best:,.0f}",
                    f">= {BUDGET_FILES_PER_SECOND:,}",
                    verdict,
                )
            ],
        )
    )
    if options.json:
        options.json.write_text(
            json.dumps(
                {
                    "files": options.files,
                    "median_files_per_second": typical,
                    "best_files_per_second": best,
                }
            )
        )


if __name__ == "__main__":
    main()
