"""Roles over records, the seed's comparison: 3 independent roles + 1 that needs the summary, per
document, against the fake server at 0.5 s per call (examples/roles/roles.toml, the same prompts
and answer budgets in every variant).

  (a) one generalist, sequential: the 4 calls of a document one after another, document after
      document (the seed's "sequential trap");
  (b) the 3 independent calls of a document with asyncio.gather, then the dependent one;
      documents one after another (the seed's fix);
  (c) `shoal map docs.jsonl --roles roles.toml` (the command users run) at --concurrency 32.

(a) and (b) take minutes over 500 documents (about 1000 s and 500 s), so they run on --subset
documents and are extrapolated linearly to --docs (they are strictly per-document loops: time is
documents x per-document time); (c) runs on all --docs.

    .venv/bin/python bench/roles.py [--docs 500] [--subset 25] [--concurrency 32] [--latency 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx2 as httpx

from shoal.fake import FakeLimits, FakeServer, FakeSettings
from shoal.map import Template

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "roles"
MODEL = "gpt-4o-mini"


def documents(count: int) -> list[dict[str, Any]]:
    base = [json.loads(line) for line in (EXAMPLE / "docs.jsonl").read_text().splitlines()]
    return [
        {**base[i % len(base)], "id": f"doc-{i:04d}", "text": f"(#{i}) " + base[i % len(base)]["text"]}
        for i in range(count)
    ]


class Generalist:
    """Plain chat-completion calls to the fake server, as a hand-written script would make them."""

    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self.client = client
        self.url = f"{base_url}/chat/completions"
        self.roles = tomllib.loads((EXAMPLE / "roles.toml").read_text())["roles"]

    async def call(self, role: str, values: dict[str, Any]) -> str:
        spec = self.roles[role]
        messages = [{"role": "system", "content": spec["system"]}] if "system" in spec else []
        messages.append({"role": "user", "content": Template(spec["prompt"]).render(values)})
        body = {"model": MODEL, "messages": messages, "max_tokens": spec.get("max_tokens", 256)}
        response = await self.client.post(self.url, json=body, headers={"Authorization": "Bearer k"})
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"]["content"])

    async def sequential(self, doc: dict[str, Any]) -> None:
        summary = await self.call("summary", doc)
        await self.call("tags", doc)
        await self.call("classify", doc)
        await self.call("refined", {**doc, "summary": summary})

    async def gathered(self, doc: dict[str, Any]) -> None:
        summary, _, _ = await asyncio.gather(
            self.call("summary", doc), self.call("tags", doc), self.call("classify", doc)
        )
        await self.call("refined", {**doc, "summary": summary})


async def baseline(base_url: str, docs: list[dict[str, Any]], variant: str) -> float:
    async with httpx.AsyncClient(timeout=60) as client:
        generalist = Generalist(client, base_url)
        work = generalist.sequential if variant == "a" else generalist.gathered
        started = time.monotonic()
        for doc in docs:  # documents one after another
            await work(doc)
        return time.monotonic() - started


def shoal_roles(base_url: str, docs: list[dict[str, Any]], concurrency: int) -> tuple[float, int, str]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for name in ("roles.toml", "tags.json", "classify.json"):
            shutil.copy(EXAMPLE / name, root / name)
        (root / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
        (root / "shoal.toml").write_text(f"[job]\nconcurrency = {concurrency}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
        env.update(OPENAI_API_KEY="k", OPENAI_BASE_URL=base_url)
        argv = [sys.executable, "-m", "shoal", "map", "docs.jsonl", "--roles", "roles.toml"]
        argv += ["--model", f"openai:{MODEL}", "--out", "out.jsonl"]
        started = time.monotonic()
        done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=1800)
        elapsed = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(f"shoal map --roles failed ({done.returncode}):\n{done.stderr}")
        lines = (root / "out.jsonl").read_text().splitlines()
        complete = sum(1 for line in lines if len(json.loads(line)["roles"]) == 4)
        status = subprocess.run(
            [sys.executable, "-m", "shoal", "status", "--json"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
        )
        stages = json.loads(status.stdout)["stages"]
        profile = ", ".join(
            f"{s['name']} {s['model_s'] / s['calls']:.2f}s model + {s['queue_s'] / s['calls']:.2f}s queue"
            for s in stages
            if s["calls"]
        )
        return elapsed, complete, profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=500)
    parser.add_argument("--subset", type=int, default=25, help="documents (a) and (b) really run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32], help="one (c) run per value")
    parser.add_argument("--latency", type=float, default=0.5)
    args = parser.parse_args()
    docs = documents(args.docs)
    settings = FakeSettings(limits=FakeLimits(rpm=600_000, tpm=500_000_000), latency_s=args.latency)
    load = os.getloadavg()
    print(
        f"{args.docs} documents x 4 roles (3 independent + 1 dependent), "
        f"fake server at {args.latency}s per call"
    )
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    with FakeServer(settings) as server:
        scale = args.docs / args.subset
        a_measured = asyncio.run(baseline(server.openai_base_url, docs[: args.subset], "a"))
        b_measured = asyncio.run(baseline(server.openai_base_url, docs[: args.subset], "b"))
        shoal_runs = [(n, *shoal_roles(server.openai_base_url, docs, n)) for n in args.concurrency]
        requests = server.backend.stats["requests"]
    a, b = a_measured * scale, b_measured * scale
    print(
        f"(a) generalist, sequential:   {a:8.1f} s  "
        f"(measured {a_measured:.1f} s on {args.subset} docs, x{scale:g})  1.0x"
    )
    print(
        f"(b) gather per document:      {b:8.1f} s  "
        f"(measured {b_measured:.1f} s on {args.subset} docs, x{scale:g})  {a / b:.1f}x"
    )
    for concurrency, c, complete, profile in shoal_runs:
        print(
            f"(c) shoal map --roles, c={concurrency}: {c:8.1f} s  "
            f"(measured, {complete}/{args.docs} records complete)  {a / c:.1f}x"
        )
        print(
            f"    ideal: {4 * args.docs * args.latency / concurrency:.1f} s (calls x latency / concurrency); "
            f"per role: {profile}"
        )
    print(f"    fake server requests, all variants: {requests}")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
