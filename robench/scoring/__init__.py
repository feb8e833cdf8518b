"""Scoring: the cross-model matrix (defense rate, agreement, relation) and the papers' probes."""


def matrix(*args, **kwargs):  # placeholder, replaced by the matrix module
    raise NotImplementedError


__all__ = ["matrix"]
