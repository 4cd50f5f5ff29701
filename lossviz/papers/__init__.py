"""Paper set-ups: one module per notebook whose toy set-up needs code beyond the families.

A module here is named after its notebook (``papers/n03_mixup.py`` for
``notebooks/collapse/N03_mixup.ipynb``) and cites the paper in full in its docstring. It may use
any family (:mod:`lossviz.landscape`, :mod:`lossviz.curvature`, :mod:`lossviz.collapse`,
:mod:`lossviz.ntk`, :mod:`lossviz.losses`) and the shared base; no family imports it. See
``ARCHITECTURE.md`` for the rule of where new code goes.
"""
