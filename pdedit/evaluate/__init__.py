"""Measuring edits and models: `pdedit eval ...`.

`pdedit.evaluate.tau` measures how a PixelDance model's clips follow their first- and last-frame
instructions as tau varies (the paper's tau study, `pdedit eval tau`).
"""
