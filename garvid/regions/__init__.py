"""What the user points at: label masks, boxes and points, validated and numbered on the
prompt frame; COCO-RLE mask helpers. Imports media and the shared basics."""
