# Copyright (c) finers_mm contributors. All rights reserved.
"""Data transforms: high-res load, explorer view, refiner crop, GT targets per frame, packing."""
