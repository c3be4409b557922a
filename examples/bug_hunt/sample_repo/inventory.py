"""Stock levels for a small shop."""


def page(items, number, size=10):
    """Items on page `number` (1-based)."""
    start = number * size  # planted bug: page 1 skips the first page of items
    return items[start : start + size]


def restock(levels, item, amount, log=[]):  # planted bug: one log shared by every call
    levels[item] = levels.get(item, 0) + amount
    log.append((item, amount))
    return log


def low_stock(levels, threshold):
    """Items whose level is at or below the threshold."""
    return [item for item, level in levels.items() if level < threshold]  # planted bug: misses "at"
