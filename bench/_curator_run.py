"""Run bespokelabs-curator over a JSONL dataset against an OpenAI-compatible server; print one JSON
line of figures. Executed by bench/curator_side_by_side.py with the Python of a separate virtualenv
that has curator installed (it is not a dependency of shoal).

    python bench/_curator_run.py --base-url URL --input in.jsonl --out DIR [--rpm N] [--tpm N]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--out", required=True, help="a fresh directory for curator's cache")
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rpm", type=int, default=None)
    parser.add_argument("--tpm", type=int, default=None)
    args = parser.parse_args()

    os.environ["CURATOR_CACHE_DIR"] = args.out
    # Offline start: tiktoken reads litellm's bundled encodings instead of downloading them.
    litellm = importlib.util.find_spec("litellm")
    if litellm is not None and litellm.origin is not None and "TIKTOKEN_CACHE_DIR" not in os.environ:
        bundled = Path(litellm.origin).parent / "litellm_core_utils" / "tokenizers"
        os.environ["TIKTOKEN_CACHE_DIR"] = str(bundled)
    os.environ.setdefault("TELEMETRY_ENABLED", "false")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("CURATOR_DISABLE_RICH_DISPLAY", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    started = time.perf_counter()
    from bespokelabs import curator
    from datasets import Dataset

    imported = time.perf_counter()
    rows = [json.loads(line) for line in open(args.input, encoding="utf-8") if line.strip()]

    class Summariser(curator.LLM):  # type: ignore[misc]
        def prompt(self, row: dict) -> str:  # type: ignore[type-arg]
            return f"Summarise {row['topic']}."

        def parse(self, row: dict, response: str) -> dict:  # type: ignore[type-arg]
            return {"id": row["id"], "output": response}

    backend_params: dict[str, object] = {
        "base_url": args.base_url,
        "api_key": "not-needed",
        "max_retries": 30,
        "max_concurrent_requests": args.concurrency,
        "require_all_responses": False,
        # Without limits curator starts from its own defaults; instant runs give it room.
        "max_requests_per_minute": args.rpm or 100_000_000,
        "max_tokens_per_minute": args.tpm or 10_000_000_000,
    }
    llm = Summariser(
        model_name=args.model,
        backend="openai",
        generation_params={"max_tokens": args.max_tokens},
        backend_params=backend_params,
    )
    began = time.perf_counter()
    result = llm(Dataset.from_list(rows))
    finished = time.perf_counter()
    dataset = getattr(result, "dataset", result)
    done = len(dataset)
    print(
        json.dumps(
            {
                "records": len(rows),
                "done": done,
                "wall_s": finished - started,
                "run_s": finished - began,
                "import_s": imported - started,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
