"""The docs site's content linter: prints one line per violation and exits 1 if there are any."""

import re
import sys

SECTIONS = ["Overview", "Key Concepts", "When to Use", "Further Reading"]


def lint(path):
    lines = open(path, encoding="utf-8").read().splitlines()
    problems = []
    if not lines or lines[0].strip() != "---":
        problems.append((1, "front matter must open the file"))
    found = [line[3:].strip() for line in lines if line.startswith("## ")]
    if [s for s in found if s in SECTIONS] != SECTIONS:
        problems.append((1, f"sections must be, in order: {', '.join(SECTIONS)}"))
    for number, line in enumerate(lines, 1):
        if line.strip().startswith("```"):
            problems.append((number, "no code blocks: link to the official docs instead"))
        if re.search(r"\$\s?\d", line):
            problems.append((number, "no specific dollar amounts: use relative comparisons"))
        previous = lines[number - 2] if number > 1 else ""
        if line.startswith("|") and previous.strip() and not previous.startswith("|"):
            problems.append((number, "blank line needed before a table"))
    for number, message in problems:
        print(f"{path}:{number}: {message}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(lint(sys.argv[1]))
