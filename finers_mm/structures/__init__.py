# Copyright (c) finers_mm contributors. All rights reserved.
"""Coordinate frames and box / point / mask transforms (pure functions, heavily tested)."""
