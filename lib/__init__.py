"""Compact reference implementations for the deep-generative-models workbook.

One module per idea; each is meant to be read top to bottom in one sitting.
Conventions used everywhere in the book:

* images are float tensors of shape ``(N, C, H, W)`` with values in ``[-1, 1]``
  unless a docstring says otherwise (binary models use ``{0, 1}``);
* 2-D point clouds are float tensors of shape ``(N, 2)``;
* every function checks what it is given and raises ``ValueError`` /
  ``TypeError`` naming what was expected (see :mod:`lib.checks`).
"""
