# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRS metrics."""
