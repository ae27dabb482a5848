"""Answering a question or description request about regions of a video or an image:
keyframe planning, the temporal protocol and its prompt, answer types. Imports tracking,
gar and everything below."""
