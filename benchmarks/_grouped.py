"""Placeholder for the grouped-leaves prototype."""


def run(args):
    return {"markdown": []}
