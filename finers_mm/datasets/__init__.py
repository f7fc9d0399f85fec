# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRS-4k dataset, its transforms and the synthetic FineRS-format data generator."""
