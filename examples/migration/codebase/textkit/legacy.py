"""The helper being migrated away from: printf-style formatting behind a function call.

New code uses f-strings; once no module imports `fmt`, this file goes.
"""


def fmt(template, *args):
    return template % args
