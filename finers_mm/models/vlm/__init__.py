# Copyright (c) finers_mm contributors. All rights reserved.
"""VLM adapters: Hugging Face image-text-to-text models loaded from local directories."""
