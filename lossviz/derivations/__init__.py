"""Symbolic derivations (sympy) used by the notebooks, one module per track.

Each derivation returns sympy expressions and, where a notebook draws with it, a ``lambdify``'d
numeric function; the unit tests check symbolic == numeric against the lossviz implementation.
Modules: ``landscape``, ``collapse``, ``ntk``, ``temperature`` (imported on demand).
"""
