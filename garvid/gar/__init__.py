"""GAR, the region-aware language model: config, model, loading, image processing, RoI
replay, reference prompts and generation. Imports regions and the shared basics."""
