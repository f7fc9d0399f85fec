# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRS models: VLM adapters, prompts and parsing, explorer, refiner, mask heads, detector."""
