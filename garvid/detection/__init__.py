"""Objects by name: an open-vocabulary detector (Grounding DINO, SAM 3) finds each
``--object`` phrase on the prompt frame, before tracking. Imports regions, media and the
shared basics; torch and transformers load only when a detector is built."""
