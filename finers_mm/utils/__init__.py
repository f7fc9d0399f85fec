# Copyright (c) finers_mm contributors. All rights reserved.
"""Utilities: compatibility fixes and the tiny local models."""
