from textkit.legacy import fmt


def greeting(name, hour):
    part = "morning" if hour < 12 else "afternoon" if hour < 18 else "evening"
    return fmt("Good %s, %s!", part, name)


def farewell(name):
    return fmt("Goodbye, %s.", name)
