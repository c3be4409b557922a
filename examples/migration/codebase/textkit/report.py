from textkit.legacy import fmt


def line_item(name, quantity, unit_price):
    return fmt("%-10s %3d x %7.2f = %8.2f", name, quantity, unit_price, quantity * unit_price)


def footer(total, count):
    return fmt("%d item(s), total %.2f", count, total)
