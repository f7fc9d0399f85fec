# Copyright (c) finers_mm contributors. All rights reserved.
"""Utilities: compatibility fixes, atomic writes, the run-config helpers of the tools."""
