import re

from textkit.legacy import fmt


def slug(title):
    words = re.findall(r"[a-z0-9]+", title.lower())
    return "-".join(words)


def dated_slug(title, year, month):
    return fmt("%04d-%02d-%s", year, month, slug(title))
