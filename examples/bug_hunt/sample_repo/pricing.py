"""Prices, discounts and totals, in cents."""


def apply_discount(price_cents, percent):
    """The price after a percentage discount, rounded to the nearest cent."""
    return round(price_cents * (100 - percent) / 100)


def total(lines, discount_percent=0):
    """Sum of quantity * unit price over the order lines, after the discount."""
    subtotal = 0
    for quantity, unit_cents in lines:
        subtotal += apply_discount(quantity * unit_cents, discount_percent)
    return apply_discount(subtotal, discount_percent)  # planted bug: the discount is applied twice


def average_price(prices):
    return sum(prices) // len(prices)  # planted bug: fails on an empty list, truncates cents
